//! MOSQ_EVT_BASIC_AUTH: username/password against the password file, with the credential
//! cache and login throttling; on Mosquitto 2.1, slow hashes are verified on worker threads
//! and answered from TICK, each result only for the attempt it was computed for.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use zeroize::Zeroizing;

use super::boundary::ffi_guarded;
use super::broker::{c_bytes, c_str, event_ref};
use super::instance::Instance;
use super::sys;
use crate::denial::Denial;
use crate::identity::IdentityError;
use crate::metrics::{LoginDenied, METRICS};
use crate::policy::{AuthFailure, AuthOutcome, AuthStep, CertificateLogin, PendingVerify, Policy};
use crate::pool::{new_ticket, Job, Parked, Refusal, Ticket};
use crate::throttle::Throttle;

/// Mosquitto 2.1's MOSQ_ERR_AUTH_DELAYED (absent from 2.0's headers).
const MOSQ_ERR_AUTH_DELAYED: c_int = -5;
/// Mosquitto 2.1's MOSQ_ERR_SERVER_BUSY: CONNACK "server busy" (0x89) for MQTT v5 clients,
/// "not authorised" for 3.x. Only returned on 2.1 (the verification queue exists only there).
const MOSQ_ERR_SERVER_BUSY: c_int = 137;
/// How often TICK is asked for while verifications are in flight (2.1 honours the request).
const TICK_WHILE_BUSY_MS: i64 = 10;

/// Which login attempt each parked client id waits for, for every instance of the process:
/// the broker parks delayed logins in one table keyed by client id.
pub(crate) static PARKED: LazyLock<Parked> = LazyLock::new(Parked::new);

/// A login attempt whose hash is verified off the broker's thread: what it needs to be judged
/// again if the policy changes before its answer is delivered.
pub(crate) struct Attempt {
    username: String,
    password: Zeroizing<Vec<u8>>,
    address: String,
    /// The policy the verification ran under.
    policy: Arc<Policy>,
    /// The username was checked against a client certificate under `policy`.
    certificate: bool,
}

/// What a worker hands back to TICK.
pub(crate) struct Verified {
    outcome: AuthOutcome,
    attempt: Attempt,
}

/// Who is logging in, for the denial log.
struct Who<'a> {
    client_id: Option<&'a str>,
    username: &'a str,
    address: &'a str,
}

/// Counts a refused login and writes its denial line.
fn log_refusal(instance: &Instance, policy: &Policy, who: &Who<'_>, kind: LoginDenied, why: &str) {
    METRICS.login_denied(kind);
    instance.log_denial(policy, || {
        Denial {
            action: "connect",
            topic: None,
            address: Some(who.address),
            client_id: who.client_id,
            username: (!who.username.is_empty()).then_some(who.username),
            reason: why,
        }
        .to_string()
    });
}

fn failure_kind(why: AuthFailure) -> LoginDenied {
    match why {
        AuthFailure::UnknownUser => LoginDenied::UnknownUser,
        AuthFailure::NoPassword => LoginDenied::NoPassword,
        AuthFailure::WrongPassword => LoginDenied::WrongPassword,
    }
}

/// Feeds a hashed login's outcome to the throttle: a failure counts towards the backoff, a
/// success clears that username's failures from that address.
fn count_for_throttle(
    throttle: &Throttle,
    policy: &Policy,
    username: &str,
    address: &str,
    outcome: AuthOutcome,
) {
    match outcome {
        AuthOutcome::Allow => throttle.succeeded(username.as_bytes(), address),
        AuthOutcome::Deny(_) => throttle.failed(
            &policy.config.auth.throttle(),
            username.as_bytes(),
            address,
            Instant::now(),
        ),
        AuthOutcome::Defer => {}
    }
}

/// The broker code for an outcome; with `count`, the outcome is fed to the throttle too.
fn answer(
    instance: &Instance,
    policy: &Policy,
    who: &Who<'_>,
    outcome: AuthOutcome,
    count: bool,
) -> c_int {
    if count {
        count_for_throttle(
            &instance.throttle,
            policy,
            who.username,
            who.address,
            outcome,
        );
    }
    match outcome {
        AuthOutcome::Allow => {
            METRICS.logins_allowed.fetch_add(1, Ordering::Relaxed);
            sys::MOSQ_ERR_SUCCESS
        }
        AuthOutcome::Defer => sys::MOSQ_ERR_PLUGIN_DEFER,
        AuthOutcome::Deny(why) => {
            log_refusal(instance, policy, who, failure_kind(why), why.as_str());
            sys::MOSQ_ERR_AUTH
        }
    }
}

ffi_guarded! {
    /// Answers only SUCCESS, AUTH or DEFER (and AUTH_DELAYED and SERVER_BUSY on 2.1): any
    /// other code makes Mosquitto drop the connection without a CONNACK.
    pub(crate) fn on_basic_auth(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int,
    on_panic = sys::MOSQ_ERR_AUTH,
    {
        // SAFETY: the broker passes back the userdata we registered.
        let Some(instance) = (unsafe { Instance::from_userdata(userdata) }) else {
            return sys::MOSQ_ERR_AUTH;
        };
        // SAFETY: for MOSQ_EVT_BASIC_AUTH the broker passes a mosquitto_evt_basic_auth.
        let Some(event) = (unsafe { event_ref::<sys::mosquitto_evt_basic_auth>(event_data) }) else {
            return sys::MOSQ_ERR_AUTH;
        };
        // Only the broker's main thread may be answered later (2.1's HTTP API calls basic auth
        // from its own thread); the re-authentication of a reload must be answered now.
        let on_main_thread = instance.on_main_thread();
        let revalidating = on_main_thread && instance.revalidating();
        let may_delay = on_main_thread && !revalidating;
        // SAFETY: event.client is the client being authenticated.
        let (client_id, _) = unsafe { instance.broker.client_identity(event.client) };
        let Ok(client_id) = client_id else {
            return sys::MOSQ_ERR_AUTH;
        };
        if may_delay {
            // A new login under this id: the broker has no other connection parked under it
            // (it refuses a CONNECT whose id is parked), so an earlier attempt's result must
            // never be applied.
            if let Some(id) = client_id {
                PARKED.supersede(id);
            }
        }
        // SAFETY: NULL or NUL-terminated strings owned by the broker for this call.
        let username_bytes = unsafe { c_bytes(event.username) };
        // SAFETY: as above.
        let username = unsafe { c_str(event.username) };
        // SAFETY: as above. The password is the bytes before the first NUL, as Mosquitto's.
        let password = unsafe { c_bytes(event.password) };
        // SAFETY: event.client as above.
        let address = unsafe { instance.broker.client_address(event.client) };
        if username.is_none() && username_bytes.is_some_and(|u| !u.is_empty()) {
            // A username that is not UTF-8 can match no entry.
            return sys::MOSQ_ERR_AUTH;
        }
        let policy = instance.policy.load_full();
        let who = Who { client_id, username: username.unwrap_or_default(), address };
        let mut certificate = false;
        // A client certificate, where `[identity]` is configured and the listener requires one.
        if policy.config.identity.is_some() {
            // SAFETY: event.client is the client being authenticated.
            let der = unsafe { super::cert::client_certificate_der(&instance.broker, event.client) };
            match der.and_then(|der| policy.certificate_login(&der, client_id, username)) {
                None => {}
                Some(CertificateLogin::AsIdentity(identity)) => {
                    // SAFETY: event.client as above; the name is a NUL-free valid string.
                    return match unsafe { instance.broker.set_client_username(event.client, &identity.name) } {
                        true => {
                            METRICS.logins_allowed.fetch_add(1, Ordering::Relaxed);
                            sys::MOSQ_ERR_SUCCESS
                        }
                        false => sys::MOSQ_ERR_AUTH,
                    };
                }
                Some(CertificateLogin::CheckPassword(_)) => certificate = true,
                Some(refused) => {
                    let kind = match refused {
                        CertificateLogin::Refused(IdentityError::Revoked(_)) => LoginDenied::Revoked,
                        _ => LoginDenied::Certificate,
                    };
                    log_refusal(instance, &policy, &who, kind, &refused.refusal().unwrap_or_default());
                    return sys::MOSQ_ERR_AUTH;
                }
            }
        }
        if policy.passwd.is_none() {
            return sys::MOSQ_ERR_PLUGIN_DEFER;
        }
        // Throttling comes before the cache: otherwise a throttled guesser could still test
        // guesses against remembered credentials.
        let has_username = username.is_some_and(|u| !u.is_empty());
        if has_username && !revalidating {
            let settings = policy.config.auth.throttle();
            if let Some(throttled) =
                instance.throttle.check(&settings, who.username.as_bytes(), address, Instant::now())
            {
                log_refusal(instance, &policy, &who, LoginDenied::Throttled, &throttled.describe());
                return sys::MOSQ_ERR_AUTH;
            }
        }
        let count = has_username && !revalidating;
        let pending = match policy.begin_auth(&instance.cache, username, password) {
            AuthStep::Done(outcome) => {
                if outcome == AuthOutcome::Allow {
                    METRICS.cache_hits.fetch_add(1, Ordering::Relaxed);
                }
                return answer(instance, &policy, &who, outcome, count);
            }
            AuthStep::Verify(pending) => pending,
        };
        if !pending.is_decoy() {
            METRICS.cache_misses.fetch_add(1, Ordering::Relaxed);
        }
        let password = password.unwrap_or_default();
        if pending.is_slow() && may_delay {
            if let (Some(pool), Some(id)) = (&instance.pool, client_id) {
                let attempt = Attempt {
                    username: who.username.to_string(),
                    password: Zeroizing::new(password.to_vec()),
                    address: address.to_string(),
                    policy: Arc::clone(&policy),
                    certificate,
                };
                return match delay(instance, pool, id, new_ticket(), pending, attempt) {
                    Ok(()) => MOSQ_ERR_AUTH_DELAYED,
                    Err(refusal) => {
                        log_refusal(instance, &policy, &who, LoginDenied::Busy, busy_reason(refusal));
                        busy_code(refusal)
                    }
                };
            }
        }
        let outcome = pending.verify(&instance.cache, who.username, password);
        answer(instance, &policy, &who, outcome, count)
    }
}

fn busy_reason(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::Full => "busy: the verification queue is full",
        Refusal::UserBusy => "busy: this username already has verifications in flight",
        Refusal::Closed => "the plugin is shutting down",
    }
}

fn busy_code(refusal: Refusal) -> c_int {
    match refusal {
        Refusal::Full => MOSQ_ERR_SERVER_BUSY,
        Refusal::UserBusy | Refusal::Closed => sys::MOSQ_ERR_AUTH,
    }
}

/// Queues a verification for the attempt parked under `client_id` with `ticket`.
fn delay(
    instance: &Instance,
    pool: &crate::pool::VerifyPool<Verified>,
    client_id: &str,
    ticket: Ticket,
    pending: PendingVerify,
    attempt: Attempt,
) -> Result<(), Refusal> {
    let cancelled = Arc::new(AtomicBool::new(false));
    let cache = Arc::clone(&instance.cache);
    let throttle = Arc::clone(&instance.throttle);
    let job = Job::new(
        ticket,
        client_id.to_string(),
        pool.user_key(&attempt.username),
        Arc::clone(&cancelled),
        Box::new(move || {
            let outcome = pending.verify(&cache, &attempt.username, &attempt.password);
            // Counted here, as soon as it is known, not when TICK hands it back: a flood
            // must meet the backoff after the configured number of hashes, however busy the
            // broker's thread is. (TICK does not count it again.)
            count_for_throttle(
                &throttle,
                &attempt.policy,
                &attempt.username,
                &attempt.address,
                outcome,
            );
            Verified { outcome, attempt }
        }),
    );
    // Parked before it is queued, so a result can never arrive for an unknown ticket.
    PARKED.park(client_id, ticket, instance.owner(), Arc::clone(&cancelled));
    pool.submit(job).inspect_err(|_| {
        PARKED.take(client_id, ticket);
    })
}

ffi_guarded! {
    /// Hands finished off-thread verifications back to the broker, on its thread (2.1), each
    /// only to the attempt it was computed for and judged by the policy now in force; ends the
    /// re-authentication window of a reload.
    pub(crate) fn on_tick(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int,
    on_panic = sys::MOSQ_ERR_SUCCESS,
    {
        // SAFETY: the broker passes back the userdata we registered.
        let Some(instance) = (unsafe { Instance::from_userdata(userdata) }) else {
            return sys::MOSQ_ERR_SUCCESS;
        };
        instance.end_revalidation();
        instance.publish_metrics();
        let Some(pool) = &instance.pool else {
            return sys::MOSQ_ERR_SUCCESS;
        };
        for done in pool.take_done() {
            if !PARKED.take(&done.client_id, done.ticket) {
                continue; // superseded: that connection is gone; the password is zeroised
            }
            complete(instance, pool, &done.client_id, done.ticket, done.result);
        }
        if pool.busy() {
            // SAFETY: for MOSQ_EVT_TICK the broker passes a mosquitto_evt_tick, which it reads
            // back after the call. Its third field is `next_ms` in 2.1 (`next_ns` in 2.0's
            // header, same type and offset); the pool exists only on 2.1.
            if let Some(tick) = unsafe { (event_data as *mut sys::mosquitto_evt_tick).as_mut() } {
                tick.next_ns = TICK_WHILE_BUSY_MS as _;
            }
        }
        sys::MOSQ_ERR_SUCCESS
    }
}

/// Answers the parked attempt `ticket` under `client_id` (its entry already taken).
fn complete(
    instance: &Instance,
    pool: &crate::pool::VerifyPool<Verified>,
    client_id: &str,
    ticket: Ticket,
    result: Option<Verified>,
) {
    let current = instance.policy.load_full();
    // Refuses the parked client for a reason that is not its password.
    let refuse = |username: &str, address: &str, why: &str| {
        let who = Who {
            client_id: Some(client_id),
            username,
            address,
        };
        log_refusal(instance, &current, &who, LoginDenied::Busy, why);
        instance
            .broker
            .complete_basic_auth(client_id, sys::MOSQ_ERR_AUTH);
    };
    let Some(Verified { outcome, attempt }) = result else {
        refuse("", "", "verification expired or failed");
        return;
    };
    let who = Who {
        client_id: Some(client_id),
        username: &attempt.username,
        address: &attempt.address,
    };
    if Arc::ptr_eq(&attempt.policy, &current) {
        // Already counted for throttling by the worker.
        let code = answer(instance, &current, &who, outcome, false);
        instance.broker.complete_basic_auth(client_id, code);
        return;
    }
    // The policy changed while the hash was verified: judge the attempt again.
    if attempt.certificate {
        refuse(
            who.username,
            who.address,
            "policy reloaded during verification; refused, the client may retry",
        );
        return;
    }
    match current.begin_auth(
        &instance.cache,
        Some(&attempt.username),
        Some(&attempt.password),
    ) {
        AuthStep::Done(outcome) => {
            let code = answer(instance, &current, &who, outcome, false);
            instance.broker.complete_basic_auth(client_id, code);
        }
        AuthStep::Verify(pending) => {
            let (username, address) = (attempt.username.clone(), attempt.address.clone());
            let attempt = Attempt {
                policy: Arc::clone(&current),
                ..attempt
            };
            if let Err(refusal) = delay(instance, pool, client_id, ticket, pending, attempt) {
                refuse(&username, &address, busy_reason(refusal));
            }
        }
    }
}
