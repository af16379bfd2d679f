//! MOSQ_EVT_BASIC_AUTH: username/password against the password file.

use std::ffi::{c_int, c_void};

use super::boundary::ffi_guarded;
use super::broker::{c_bytes, c_str};
use super::instance::Instance;
use super::sys;
use crate::policy::AuthOutcome;

ffi_guarded! {
    /// Answers only SUCCESS, AUTH or DEFER: any other code makes Mosquitto drop the connection
    /// without a CONNACK.
    pub(crate) fn on_basic_auth(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int,
    on_panic = sys::MOSQ_ERR_AUTH,
    {
        // SAFETY: the broker passes back the userdata we registered.
        let Some(instance) = (unsafe { Instance::from_userdata(userdata) }) else {
            return sys::MOSQ_ERR_AUTH;
        };
        // SAFETY: for MOSQ_EVT_BASIC_AUTH the broker passes a mosquitto_evt_basic_auth.
        let Some(event) = (unsafe { (event_data as *const sys::mosquitto_evt_basic_auth).as_ref() }) else {
            return sys::MOSQ_ERR_AUTH;
        };
        // SAFETY: NULL or NUL-terminated strings owned by the broker for this call.
        let username_bytes = unsafe { c_bytes(event.username) };
        // SAFETY: as above.
        let username = unsafe { c_str(event.username) };
        // SAFETY: as above. The password is the bytes before the first NUL, as Mosquitto's.
        let password = unsafe { c_bytes(event.password) };
        if username.is_none() && username_bytes.is_some_and(|u| !u.is_empty()) {
            // A username that is not UTF-8 can match no entry.
            return sys::MOSQ_ERR_AUTH;
        }
        let policy = instance.policy.load();
        match policy.authenticate(username, password) {
            AuthOutcome::Allow => sys::MOSQ_ERR_SUCCESS,
            AuthOutcome::Defer => sys::MOSQ_ERR_PLUGIN_DEFER,
            AuthOutcome::Deny(why) => {
                instance.log_denial(&policy, || {
                    format!(
                        "denied connect for username \"{}\": {}",
                        username.unwrap_or_default().escape_debug(),
                        why.as_str()
                    )
                });
                sys::MOSQ_ERR_AUTH
            }
        }
    }
}
