//! MOSQ_EVT_RELOAD (SIGHUP): re-read every file, swap atomically, keep the old policy on error.

use std::ffi::{c_int, c_void};

use super::boundary::ffi_guarded;
use super::instance::Instance;
use super::sys;

ffi_guarded! {
    pub(crate) fn on_reload(_event: c_int, _event_data: *mut c_void, userdata: *mut c_void) -> c_int,
    on_panic = sys::MOSQ_ERR_PLUGIN_DEFER,
    {
        // SAFETY: the broker passes back the userdata we registered.
        match unsafe { Instance::from_userdata(userdata) } {
            Some(instance) => {
                instance.reload();
                instance.reload_return_code()
            }
            None => sys::MOSQ_ERR_PLUGIN_DEFER,
        }
    }
}
