//! One plugin instance: what `mosquitto_plugin_init` creates and hands the broker as
//! `userdata`. With `per_listener_settings true` there is one per listener, so all state lives
//! here and none in statics.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use super::auth::Verified;
use super::broker::{Broker, BrokerVersion, Callback};
use super::current::CurrentPolicy;
use super::housekeeping::{Housekeeping, Shared};
use super::sys::{self, mosquitto_plugin_id_t};
use crate::cache::CredentialCache;
use crate::config::LogLevel;
use crate::metrics::METRICS;
use crate::policy::{Needs, Options, Policy};
use crate::pool::{PoolLimits, VerifyPool};
use crate::ratelimit::{Permit, RateLimiter};
use crate::throttle::Throttle;

/// Threads verifying slow hashes on 2.1: one per core of this project's 2-core machines,
/// leaving the broker's own thread its core most of the time.
const VERIFY_THREADS: usize = 2;

/// A queued verification older than this is answered as a refusal without hashing: its
/// client has most likely given up (the broker tells plugins nothing when a parked client
/// leaves).
const MAX_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// How long after RELOAD basic-auth calls count as the broker's re-authentication of
/// connected clients when no TICK arrives to end it (2.0 with per_listener_settings).
const REVALIDATION_WINDOW: Duration = Duration::from_secs(2);

pub(crate) struct Instance {
    pub(crate) broker: Broker,
    identifier: *mut mosquitto_plugin_id_t,
    pub(crate) options: Options,
    /// Swapped whole on reload; readers never block and never see a half-loaded policy.
    pub(crate) policy: CurrentPolicy,
    registered: Vec<(u32, Callback)>,
    /// What the registered callbacks cover; a reload that needs more or less is refused.
    needs: Needs,
    /// Budget for denial log lines.
    denials: RateLimiter,
    /// Verified credentials; survives reloads (entries are bound to the password line).
    pub(crate) cache: Arc<CredentialCache>,
    /// Slow-hash workers, on brokers that can answer basic auth later (2.1) only.
    pub(crate) pool: Option<VerifyPool<Verified>>,
    /// Failed-login counters.
    pub(crate) throttle: Arc<Throttle>,
    /// File watching and the metrics textfile; `None` if its thread could not start.
    housekeeping: Option<Housekeeping>,
    /// When this instance publishes its `$SYS` counters next (milliseconds as
    /// [`Instance::now_ms`]; 0: at the first tick).
    next_sys_publish: AtomicU64,
    /// The broker's main thread (the one that loaded us): only its basic-auth calls may be
    /// answered later, and only it may complete them.
    main_thread: ThreadId,
    started: Instant,
    /// Set by RELOAD (milliseconds since `started`, plus one) until the next TICK: the broker
    /// is re-authenticating every connected client, which must be answered synchronously (a
    /// delayed answer disconnects it) and is neither throttled nor counted as a failure.
    revalidating_since: AtomicU64,
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
            throttle: Arc::new(Throttle::new()),
            housekeeping: None,
            next_sys_publish: AtomicU64::new(0),
            main_thread: std::thread::current().id(),
            started: Instant::now(),
            revalidating_since: AtomicU64::new(0),
            broker,
            identifier,
            options,
            policy: CurrentPolicy::new(policy),
            registered: Vec::new(),
            needs: Needs::default(),
        }
    }

    /// Starts what runs beside the callbacks: on a broker that can answer basic auth later
    /// (2.1) and a policy with basic auth, the verification threads; the housekeeping thread
    /// (file watching, the metrics textfile).
    pub(crate) fn start_workers(&mut self) {
        let policy = self.policy.load_full();
        if self.broker.can_delay_auth() && policy.needs().basic_auth {
            let auth = &policy.config.auth;
            let limits = PoolLimits {
                threads: VERIFY_THREADS,
                capacity: auth.max_queued_verifications.max(1),
                per_user: auth.max_verifications_per_user.max(1),
                max_wait: MAX_QUEUE_WAIT,
            };
            match VerifyPool::new(limits) {
                Ok(pool) => self.pool = Some(pool),
                Err(e) => self.broker.log(
                    sys::MOSQ_LOG_WARNING,
                    &format!("no verification threads ({e}); hashes are verified inline"),
                ),
            }
        }
        let load = match &self.pool {
            Some(pool) => pool.load_probe(),
            None => Arc::new(|| (0, 0)),
        };
        match Housekeeping::start(Shared {
            policy: self.policy.shared(),
            options: self.options.clone(),
            load,
        }) {
            Ok(h) => self.housekeeping = Some(h),
            Err(e) => self.broker.log(
                sys::MOSQ_LOG_WARNING,
                &format!(
                    "no housekeeping thread ({e}): [reload] watch and [metrics] textfile are off"
                ),
            ),
        }
        METRICS.loaded_now();
    }

    /// Drops this instance's parked logins and joins its threads: with the callbacks
    /// unregistered, nothing of ours runs after this, so the broker may unload the library.
    pub(crate) fn stop_workers(&mut self) {
        self.housekeeping = None;
        super::auth::PARKED.forget_owner(self.owner());
        self.pool = None;
    }

    /// The identifier the broker gave this instance.
    pub(crate) fn identifier(&self) -> *mut mosquitto_plugin_id_t {
        self.identifier
    }

    /// Remembers a registered callback (for cleanup, and for what reloads may change).
    pub(crate) fn registered(&mut self, event: u32, callback: Callback, needs: Needs) {
        self.registered.push((event, callback));
        self.needs = needs;
    }

    /// The registered callbacks, forgotten.
    pub(crate) fn take_registered(&mut self) -> Vec<(u32, Callback)> {
        std::mem::take(&mut self.registered)
    }

    /// Publishes the counters under `$SYS/broker/mqttguard/` if `[metrics] sys_interval` has
    /// passed since the last time. Called from TICK, on the broker's thread.
    pub(crate) fn publish_metrics(&self) {
        // Ticks come several times per connect on 2.0: the usual tick reads the interval
        // through the hot slot, the clock, and one atomic, and takes no lock.
        let interval = self
            .policy
            .with(|hot| hot.policy.config.metrics.sys_interval);
        if interval == 0 {
            return;
        }
        let now = self.now_ms();
        let next = self.next_sys_publish.load(Ordering::Relaxed);
        if now < next
            || self
                .next_sys_publish
                .compare_exchange(
                    next,
                    now + interval * 1000,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let policy = self.policy.load();
        let gauges = policy.gauges(self.pool.as_ref().map_or((0, 0), |p| p.load()));
        for (topic, value) in METRICS.sys_topics(&gauges) {
            self.broker.publish_retained(
                &format!("$SYS/broker/mqttguard/{topic}"),
                &value.to_string(),
            );
        }
    }

    /// Identifies this instance's parked logins.
    pub(crate) fn owner(&self) -> usize {
        self as *const Instance as usize
    }

    /// Whether the caller runs on the broker's main thread.
    pub(crate) fn on_main_thread(&self) -> bool {
        std::thread::current().id() == self.main_thread
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64 + 1
    }

    /// Whether basic auth is being called for the re-authentication of a reload.
    pub(crate) fn revalidating(&self) -> bool {
        let since = self.revalidating_since.load(Ordering::Relaxed);
        since != 0 && self.now_ms().saturating_sub(since) < REVALIDATION_WINDOW.as_millis() as u64
    }

    /// Ends the re-authentication window (the broker's first TICK after a reload).
    pub(crate) fn end_revalidation(&self) {
        self.revalidating_since.store(0, Ordering::Relaxed);
    }

    /// Loads the policy again and swaps it in, or keeps the old one in force and says why.
    /// A policy that would need other broker callbacks than the ones registered at start (a
    /// password file, `[identity]` or an ACL file added or removed) is refused: its
    /// protections could not all be enforced, and the log must never claim one that is not.
    pub(crate) fn reload(&self) {
        self.revalidating_since
            .store(self.now_ms(), Ordering::Relaxed);
        let policy = match Policy::load(&self.options) {
            Ok(policy) => policy,
            Err(e) => {
                METRICS.reloads_failed.fetch_add(1, Ordering::Relaxed);
                self.broker.log(
                    sys::MOSQ_LOG_ERR,
                    &format!("reload failed, previous policy stays in force: {e}"),
                );
                return;
            }
        };
        if policy.needs() != self.needs {
            let describe = |needs: Needs| needs.describe();
            self.broker.log(
                sys::MOSQ_LOG_ERR,
                &format!(
                    "reload refused, previous policy stays in force: the new policy needs the \
                     broker callbacks [{}] but the plugin was started with [{}] (a password \
                     file, [identity] or an ACL file was added or removed); restart the broker \
                     to apply it",
                    describe(policy.needs()),
                    describe(self.needs)
                ),
            );
            METRICS.reloads_failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        METRICS.reloads_ok.fetch_add(1, Ordering::Relaxed);
        METRICS.loaded_now();
        self.broker.log(
            sys::MOSQ_LOG_NOTICE,
            &format!("reloaded: {}", policy.summary(&self.options)),
        );
        self.log_warnings(&policy);
        self.denials.set_rate(policy.config.log.denials_per_second);
        self.policy.store(Arc::new(policy));
        release_freed_memory();
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

/// Gives the memory a load freed (the parser's temporary rule records, the previous policy
/// once its last reader is done) back to the system, so it does not stay in the broker's RSS.
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system; it takes no pointer and
    // is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
