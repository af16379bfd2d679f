//! The Mosquitto plugin layer (plugin API v5): entry points, callbacks and the broker's
//! functions. The only module with `unsafe`; each exported function and callback runs behind
//! the panic boundary in `boundary.rs` and fails closed. Only this file registers callbacks
//! (`auth.rs`, `acl.rs`, `reload.rs` never know about registration).

mod acl;
mod auth;
pub(crate) mod boundary;
mod broker;
mod cert;
mod current;
mod housekeeping;
mod instance;
mod reload;
mod sys;

use std::ffi::{c_int, c_void};

use boundary::ffi_guarded;
use broker::{c_str, Broker, Callback};
use instance::Instance;
use sys::{mosquitto_opt, mosquitto_plugin_id_t};

use crate::policy::{Needs, Options, Policy};

/// The callbacks for what a policy needs ([`Policy::needs`]); RELOAD and TICK always (TICK
/// answers delayed logins on 2.1, ends the re-authentication window of a reload and publishes
/// the `$SYS` counters). The only place that names the callbacks.
fn callbacks(needs: Needs) -> Vec<(u32, Callback)> {
    let mut wanted: Vec<(u32, Callback)> = vec![
        (sys::MOSQ_EVT_RELOAD, reload::on_reload),
        (sys::MOSQ_EVT_TICK, auth::on_tick),
    ];
    if needs.basic_auth {
        wanted.push((sys::MOSQ_EVT_BASIC_AUTH, auth::on_basic_auth));
    }
    if needs.acl {
        wanted.push((sys::MOSQ_EVT_ACL_CHECK, acl::on_acl_check));
    }
    wanted
}

/// Registers the callbacks the instance's policy needs, with the instance as userdata.
fn register(instance: &mut Instance) -> Result<(), u32> {
    let needs = instance.policy.load().needs();
    let userdata = instance as *mut Instance as *mut c_void;
    for (event, callback) in callbacks(needs) {
        // SAFETY: the identifier came from mosquitto_plugin_init; userdata is the instance,
        // which lives until cleanup unregisters these callbacks.
        let rc = unsafe {
            instance
                .broker
                .register(instance.identifier(), event, callback, userdata)
        };
        if rc != sys::MOSQ_ERR_SUCCESS {
            return Err(event);
        }
        instance.registered(event, callback, needs);
    }
    Ok(())
}

/// Unregisters every callback of the instance and stops its threads: after this nothing of
/// ours runs, so the broker may unload the library.
fn unregister(instance: &mut Instance) {
    for (event, callback) in instance.take_registered() {
        // SAFETY: the same identifier and callback that were registered.
        unsafe {
            instance
                .broker
                .unregister(instance.identifier(), event, callback)
        };
    }
    instance.stop_workers();
}

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
        instance::release_freed_memory();
        // SAFETY: identifier is the broker's, valid for the plugin's lifetime.
        unsafe { broker.set_info(identifier) };
        let mut instance = Box::new(Instance::new(broker, identifier, options, policy));
        instance.log_warnings(&instance.policy.load());
        instance.start_workers();
        if let Err(event) = register(&mut instance) {
            broker.log(sys::MOSQ_LOG_ERR, &format!("error: cannot register callback for event {event}"));
            unregister(&mut instance);
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
        unregister(&mut instance);
        sys::MOSQ_ERR_SUCCESS
    }
}
