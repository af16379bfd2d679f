//! The Mosquitto plugin layer (plugin API v5): entry points, callbacks and the broker's
//! functions. The only module with `unsafe`; each exported function and callback runs behind
//! the panic boundary in [`boundary`] and fails closed.

mod acl;
mod auth;
pub(crate) mod boundary;
mod broker;
mod cert;
mod housekeeping;
mod instance;
mod reload;
mod sys;

use std::ffi::{c_int, c_void};

use boundary::ffi_guarded;
use broker::{c_str, Broker};
use instance::Instance;
use sys::{mosquitto_opt, mosquitto_plugin_id_t};

use crate::policy::{Options, Policy};

ffi_guarded! {
    /// Accepts plugin API version 5 and nothing else.
    #[no_mangle]
    pub fn mosquitto_plugin_version(count: c_int, versions: *const c_int) -> c_int,
    on_panic = -1,
    {
        if versions.is_null() || count <= 0 {
            return -1;
        }
        // SAFETY: the broker passes `count` ints at `versions`.
        let offered = unsafe { std::slice::from_raw_parts(versions, count as usize) };
        if offered.contains(&(sys::MOSQ_PLUGIN_VERSION as c_int)) {
            sys::MOSQ_PLUGIN_VERSION as c_int
        } else {
            -1
        }
    }
}

/// The plugin_opt_* pairs as borrowed strings; `None` when a key or value is not UTF-8.
///
/// # Safety
/// `options` points to `count` valid `mosquitto_opt`, or is NULL with `count` 0.
unsafe fn read_options<'a>(
    options: *const mosquitto_opt,
    count: c_int,
) -> Option<Vec<(&'a str, &'a str)>> {
    if options.is_null() || count <= 0 {
        return Some(Vec::new());
    }
    // SAFETY: per the function contract.
    let options = unsafe { std::slice::from_raw_parts(options, count as usize) };
    options
        .iter()
        // SAFETY: keys and values are NUL-terminated strings owned by the broker's config.
        .map(|o| {
            Some((
                unsafe { c_str(o.key) }?,
                unsafe { c_str(o.value) }.unwrap_or(""),
            ))
        })
        .collect()
}

ffi_guarded! {
    /// Loads and compiles the policy; any error refuses the broker's start.
    #[no_mangle]
    pub fn mosquitto_plugin_init(
        identifier: *mut mosquitto_plugin_id_t,
        userdata: *mut *mut c_void,
        options: *mut mosquitto_opt,
        option_count: c_int,
    ) -> c_int,
    on_panic = sys::MOSQ_ERR_UNKNOWN,
    {
        let broker = match Broker::resolve() {
            Ok(broker) => broker,
            Err(_) => return sys::MOSQ_ERR_NOT_SUPPORTED,
        };
        if userdata.is_null() {
            return sys::MOSQ_ERR_INVAL;
        }
        // SAFETY: the broker passes option_count options.
        let Some(pairs) = (unsafe { read_options(options, option_count) }) else {
            broker.log(sys::MOSQ_LOG_ERR, "error: a plugin_opt_ line is not valid UTF-8");
            return sys::MOSQ_ERR_INVAL;
        };
        let loaded = Options::from_pairs(pairs.iter().copied())
            .map_err(crate::policy::LoadError::from)
            .and_then(|options| Policy::load(&options).map(|policy| (options, policy)));
        let (options, policy) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                broker.log(sys::MOSQ_LOG_ERR, &format!("error: {e}"));
                return sys::MOSQ_ERR_INVAL;
            }
        };
        broker.log(sys::MOSQ_LOG_INFO, &format!("loaded: {}", policy.summary(&options)));
        // SAFETY: identifier is the broker's, valid for the plugin's lifetime.
        unsafe { broker.set_info(identifier) };
        let mut instance = Box::new(Instance::new(broker, identifier, options, policy));
        instance.log_warnings(&instance.policy.load());
        if let Err(event) = instance.register_callbacks() {
            broker.log(sys::MOSQ_LOG_ERR, &format!("error: cannot register callback for event {event}"));
            instance.unregister_callbacks();
            return sys::MOSQ_ERR_UNKNOWN;
        }
        // SAFETY: userdata checked non-NULL above; the broker keeps it for our callbacks.
        unsafe { *userdata = Box::into_raw(instance) as *mut c_void };
        sys::MOSQ_ERR_SUCCESS
    }
}

ffi_guarded! {
    /// Unregisters the callbacks and frees the instance before the broker unloads us.
    #[no_mangle]
    pub fn mosquitto_plugin_cleanup(
        userdata: *mut c_void,
        _options: *mut mosquitto_opt,
        _option_count: c_int,
    ) -> c_int,
    on_panic = sys::MOSQ_ERR_UNKNOWN,
    {
        if userdata.is_null() {
            return sys::MOSQ_ERR_SUCCESS;
        }
        // SAFETY: userdata is the Box this plugin leaked in mosquitto_plugin_init, and the
        // broker calls cleanup once.
        let mut instance = unsafe { Box::from_raw(userdata as *mut Instance) };
        instance.unregister_callbacks();
        sys::MOSQ_ERR_SUCCESS
    }
}
