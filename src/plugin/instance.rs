//! One plugin instance: what `mosquitto_plugin_init` creates and hands the broker as
//! `userdata`. With `per_listener_settings true` there is one per listener, so all state lives
//! here and none in statics.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::broker::{Broker, BrokerVersion, Callback};
use super::sys::{self, mosquitto_plugin_id_t};
use crate::cache::CredentialCache;
use crate::config::LogLevel;
use crate::policy::{Options, Policy};
use crate::pool::VerifyPool;
use crate::ratelimit::{Permit, RateLimiter};

/// Threads verifying slow hashes on 2.1: one per core of this project's 2-core machines,
/// leaving the broker's own thread its core most of the time.
const VERIFY_THREADS: usize = 2;

pub(crate) struct Instance {
    pub(crate) broker: Broker,
    identifier: *mut mosquitto_plugin_id_t,
    pub(crate) options: Options,
    /// Swapped whole on reload; readers never block and never see a half-loaded policy.
    pub(crate) policy: ArcSwap<Policy>,
    registered: Vec<(u32, Callback)>,
    /// Budget for denial log lines.
    denials: RateLimiter,
    /// Verified credentials; survives reloads (entries are bound to the password line).
    pub(crate) cache: Arc<CredentialCache>,
    /// Slow-hash workers, on brokers that can answer basic auth later (2.1) only.
    pub(crate) pool: Option<VerifyPool>,
    /// Set by RELOAD until the next TICK: the broker is re-authenticating every connected
    /// client, which must be answered synchronously (a delayed answer disconnects it).
    pub(crate) revalidating: AtomicBool,
}

impl Instance {
    pub(crate) fn new(
        broker: Broker,
        identifier: *mut mosquitto_plugin_id_t,
        options: Options,
        policy: Policy,
    ) -> Instance {
        let denials = RateLimiter::new(policy.config.log.denials_per_second);
        Instance {
            denials,
            cache: Arc::new(CredentialCache::new()),
            pool: None,
            revalidating: AtomicBool::new(false),
            broker,
            identifier,
            options,
            policy: ArcSwap::from_pointee(policy),
            registered: Vec::new(),
        }
    }

    /// Registers the callbacks this policy needs: basic auth only with a password file, ACL
    /// only with an ACL file (so the broker behaves as with the built-in option absent).
    pub(crate) fn register_callbacks(&mut self) -> Result<(), u32> {
        let policy = self.policy.load();
        let mut wanted: Vec<(u32, Callback)> =
            vec![(sys::MOSQ_EVT_RELOAD, super::reload::on_reload)];
        if policy.passwd.is_some() || policy.config.identity.is_some() {
            wanted.push((sys::MOSQ_EVT_BASIC_AUTH, super::auth::on_basic_auth));
            if self.broker.can_delay_auth() {
                match VerifyPool::new(VERIFY_THREADS) {
                    Ok(pool) => {
                        self.pool = Some(pool);
                        wanted.push((sys::MOSQ_EVT_TICK, super::auth::on_tick));
                    }
                    Err(e) => self.broker.log(
                        sys::MOSQ_LOG_WARNING,
                        &format!("no verification threads ({e}); hashes are verified inline"),
                    ),
                }
            }
        }
        if policy.acl.is_some() {
            wanted.push((sys::MOSQ_EVT_ACL_CHECK, super::acl::on_acl_check));
        }
        drop(policy);
        let userdata = self as *mut Instance as *mut c_void;
        for (event, callback) in wanted {
            // SAFETY: identifier came from mosquitto_plugin_init; userdata is this instance,
            // which lives until cleanup unregisters these callbacks.
            let rc = unsafe {
                self.broker
                    .register(self.identifier, event, callback, userdata)
            };
            if rc != sys::MOSQ_ERR_SUCCESS {
                return Err(event);
            }
            self.registered.push((event, callback));
        }
        Ok(())
    }

    /// Unregisters every callback and joins the verification threads: after this nothing of
    /// ours runs, so the broker may unload the library.
    pub(crate) fn unregister_callbacks(&mut self) {
        for (event, callback) in self.registered.drain(..) {
            // SAFETY: the same identifier and callback that were registered.
            unsafe { self.broker.unregister(self.identifier, event, callback) };
        }
        self.pool = None;
    }

    /// Loads the policy again; on any error keeps the old one in force and says why.
    pub(crate) fn reload(&self) {
        if self.pool.is_some() {
            self.revalidating.store(true, Ordering::Relaxed);
        }
        match Policy::load(&self.options) {
            Ok(policy) => {
                self.broker.log(
                    sys::MOSQ_LOG_NOTICE,
                    &format!("reloaded: {}", policy.summary(&self.options)),
                );
                self.log_warnings(&policy);
                self.denials.set_rate(policy.config.log.denials_per_second);
                self.policy.store(Arc::new(policy));
            }
            Err(e) => self.broker.log(
                sys::MOSQ_LOG_ERR,
                &format!("reload failed, previous policy stays in force: {e}"),
            ),
        }
    }

    /// What a reload callback must return: DEFER on 2.0 so other plugins' reload callbacks
    /// still run; 0 on 2.1, which exits on anything else.
    pub(crate) fn reload_return_code(&self) -> i32 {
        match self.broker.version {
            BrokerVersion::V2_0 => sys::MOSQ_ERR_PLUGIN_DEFER,
            BrokerVersion::V2_1 => sys::MOSQ_ERR_SUCCESS,
        }
    }

    pub(crate) fn log_warnings(&self, policy: &Policy) {
        for warning in policy.warnings(&self.options) {
            self.broker
                .log(sys::MOSQ_LOG_WARNING, &format!("warning: {warning}"));
        }
    }

    /// Logs one denial at the configured level, within the rate budget. `line` is only built
    /// when the line is actually written.
    pub(crate) fn log_denial(&self, policy: &Policy, line: impl FnOnce() -> String) {
        let level = match policy.config.log.denials {
            LogLevel::None => return,
            LogLevel::Debug => sys::MOSQ_LOG_DEBUG,
            LogLevel::Info => sys::MOSQ_LOG_INFO,
            LogLevel::Notice => sys::MOSQ_LOG_NOTICE,
            LogLevel::Warning => sys::MOSQ_LOG_WARNING,
            LogLevel::Error => sys::MOSQ_LOG_ERR,
        };
        if let Permit::Log { suppressed } = self.denials.permit() {
            if suppressed > 0 {
                self.broker.log(
                    level,
                    &format!("{suppressed} denial lines suppressed (over log.denials_per_second)"),
                );
            }
            self.broker.log(level, &line());
        }
    }

    /// # Safety
    /// `userdata` must be NULL or the pointer `mosquitto_plugin_init` handed the broker.
    pub(crate) unsafe fn from_userdata<'a>(userdata: *mut c_void) -> Option<&'a Instance> {
        // SAFETY: per the function contract; the broker passes it back unchanged.
        unsafe { (userdata as *const Instance).as_ref() }
    }
}
