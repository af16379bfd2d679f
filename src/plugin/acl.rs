//! MOSQ_EVT_ACL_CHECK: the hot path. Borrowed strings, a lock-free policy load, no allocation.

use std::ffi::{c_int, c_void};

use super::boundary::ffi_guarded;
use super::broker::{c_str, event_ref};
use super::instance::Instance;
use super::sys;
use crate::acl::{Access, Client};
use crate::denial::Denial;
use crate::metrics::METRICS;
use crate::policy::Policy;

fn access_from(value: c_int) -> Option<Access> {
    match value as u32 {
        sys::MOSQ_ACL_READ => Some(Access::Read),
        sys::MOSQ_ACL_WRITE => Some(Access::Write),
        sys::MOSQ_ACL_SUBSCRIBE => Some(Access::Subscribe),
        sys::MOSQ_ACL_UNSUBSCRIBE => Some(Access::Unsubscribe),
        _ => None,
    }
}

/// Logs a denied check within the log budget; the client's address and id are read, and the
/// reason made, only when the line is written.
///
/// # Safety
/// `client` must be the client of the current ACL check.
unsafe fn log_denied(
    instance: &Instance,
    policy: &Policy,
    client: *const sys::mosquitto,
    access: Access,
    topic: &str,
    username: Option<&str>,
    reason: impl FnOnce() -> String,
) {
    instance.log_denial(policy, || {
        // SAFETY: per the function contract, valid during this callback.
        let address = unsafe { instance.broker.client_address(client) };
        // SAFETY: as above.
        let id = unsafe { instance.broker.client_id(client) };
        Denial {
            action: access.as_str(),
            topic: Some(topic),
            address: Some(address),
            client_id: id.ok().flatten(),
            username,
            reason: &reason(),
        }
        .to_string()
    });
}

ffi_guarded! {
    /// Answers only SUCCESS or ACL_DENIED: any other code makes Mosquitto disconnect the client.
    pub(crate) fn on_acl_check(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int,
    on_panic = sys::MOSQ_ERR_ACL_DENIED,
    {
        // SAFETY: the broker passes back the userdata we registered.
        let Some(instance) = (unsafe { Instance::from_userdata(userdata) }) else {
            return sys::MOSQ_ERR_ACL_DENIED;
        };
        // SAFETY: for MOSQ_EVT_ACL_CHECK the broker passes a mosquitto_evt_acl_check.
        let Some(event) = (unsafe { event_ref::<sys::mosquitto_evt_acl_check>(event_data) }) else {
            return sys::MOSQ_ERR_ACL_DENIED;
        };
        // SAFETY: NUL-terminated topic owned by the broker for this call.
        let (Some(topic), Some(access)) = (unsafe { c_str(event.topic) }, access_from(event.access)) else {
            return sys::MOSQ_ERR_ACL_DENIED;
        };
        let policy = instance.policy.load();
        // SAFETY: event.client is the client this check is about.
        let username = unsafe { instance.broker.client_username(event.client) };
        // The client id is read only when a rule can use it (`pattern` lines): a decision
        // never depends on it otherwise. (The broker only accepts UTF-8 client ids.)
        let id = match policy.acl.as_ref() {
            // SAFETY: as above.
            Some(acl) if acl.uses_client_id() => unsafe { instance.broker.client_id(event.client) },
            _ => Ok(None),
        };
        // A username or client id that is present but not UTF-8 matches no rule, and a
        // present username is never taken for an absent one (the anonymous rules).
        let (Ok(id), Ok(username)) = (id, username) else {
            METRICS.acl(access as usize, false);
            // SAFETY: event.client is the client of this check.
            unsafe {
                log_denied(instance, &policy, event.client, access, topic, username.ok().flatten(), || {
                    "the client's id or username is not UTF-8".to_string()
                })
            };
            return sys::MOSQ_ERR_ACL_DENIED;
        };
        let client = Client { id, username };
        match (policy.check(&client, topic, access), policy.acl.as_ref()) {
            (Some(decision), _) if decision.allowed => {
                METRICS.acl(access as usize, true);
                sys::MOSQ_ERR_SUCCESS
            }
            (Some(decision), Some(acl)) => {
                METRICS.acl(access as usize, false);
                // SAFETY: event.client is the client of this check.
                unsafe {
                    log_denied(instance, &policy, event.client, access, topic, username, || {
                        acl.describe(decision.reason)
                    })
                };
                sys::MOSQ_ERR_ACL_DENIED
            }
            _ => {
                METRICS.acl(access as usize, false);
                sys::MOSQ_ERR_ACL_DENIED
            }
        }
    }
}
