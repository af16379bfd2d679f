//! MOSQ_EVT_BASIC_AUTH: username/password against the password file, with the credential
//! cache; on Mosquitto 2.1, slow hashes are verified on worker threads and answered from TICK.

use std::ffi::{c_int, c_void};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::boundary::ffi_guarded;
use super::broker::{c_bytes, c_str, event_ref};
use super::instance::Instance;
use super::sys;
use crate::identity::PasswordPolicy;
use crate::policy::{AuthOutcome, AuthStep, Policy};
use crate::pool::Job;

/// Mosquitto 2.1's MOSQ_ERR_AUTH_DELAYED (absent from 2.0's headers).
const MOSQ_ERR_AUTH_DELAYED: c_int = -5;

fn log_refusal(instance: &Instance, policy: &Policy, username: &str, why: &str) {
    instance.log_denial(policy, || {
        format!(
            "denied connect for username \"{}\": {why}",
            username.escape_debug()
        )
    });
}

fn answer(instance: &Instance, policy: &Policy, username: &str, outcome: AuthOutcome) -> c_int {
    match outcome {
        AuthOutcome::Allow => sys::MOSQ_ERR_SUCCESS,
        AuthOutcome::Defer => sys::MOSQ_ERR_PLUGIN_DEFER,
        AuthOutcome::Deny(why) => {
            log_refusal(instance, policy, username, why.as_str());
            sys::MOSQ_ERR_AUTH
        }
    }
}

ffi_guarded! {
    /// Answers only SUCCESS, AUTH or DEFER (and AUTH_DELAYED on 2.1): any other code makes
    /// Mosquitto drop the connection without a CONNACK.
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
        let mut name = username.unwrap_or_default();
        // A client certificate, where `[identity]` is configured and the listener requires one.
        if let Some(cfg) = policy.config.identity.as_ref() {
            // SAFETY: event.client is the client being authenticated.
            let der = unsafe { super::cert::client_certificate_der(&instance.broker, event.client) };
            if let Some(der) = der {
                // SAFETY: as above.
                let (client_id, _) = unsafe { instance.broker.client_identity(event.client) };
                let identity = match policy.certificate_identity(&der, client_id) {
                    Some(Ok(identity)) => identity,
                    Some(Err(why)) => {
                        log_refusal(instance, &policy, name, &format!("certificate: {why}"));
                        return sys::MOSQ_ERR_AUTH;
                    }
                    None => return sys::MOSQ_ERR_AUTH,
                };
                if cfg.password == PasswordPolicy::Ignore {
                    // SAFETY: event.client as above; the name is a NUL-free valid string.
                    return match unsafe { instance.broker.set_client_username(event.client, &identity.name) } {
                        true => sys::MOSQ_ERR_SUCCESS,
                        false => sys::MOSQ_ERR_AUTH,
                    };
                }
                if username != Some(identity.name.as_str()) {
                    log_refusal(instance, &policy, name, &format!(
                        "username must equal the certificate identity \"{}\"", identity.name));
                    return sys::MOSQ_ERR_AUTH;
                }
                name = username.unwrap_or_default();
            }
        }
        if policy.passwd.is_none() {
            return sys::MOSQ_ERR_PLUGIN_DEFER;
        }
        let pending = match policy.begin_auth(&instance.cache, username, password) {
            AuthStep::Done(outcome) => return answer(instance, &policy, name, outcome),
            AuthStep::Verify(pending) => pending,
        };
        let password = password.unwrap_or_default();
        if pending.is_slow() && !instance.revalidating.load(Ordering::Relaxed) {
            if let Some(pool) = &instance.pool {
                // SAFETY: event.client is the client being authenticated.
                let (client_id, _) = unsafe { instance.broker.client_identity(event.client) };
                if let Some(client_id) = client_id {
                    let cache = Arc::clone(&instance.cache);
                    let user = name.to_string();
                    let secret = Zeroizing::new(password.to_vec());
                    let job = Job {
                        client_id: client_id.to_string(),
                        work: Box::new(move || {
                            pending.verify(&cache, &user, &secret) == AuthOutcome::Allow
                        }),
                    };
                    if pool.submit(job) {
                        return MOSQ_ERR_AUTH_DELAYED;
                    }
                    return sys::MOSQ_ERR_AUTH;
                }
            }
        }
        answer(instance, &policy, name, pending.verify(&instance.cache, name, password))
    }
}

ffi_guarded! {
    /// 2.1 only: hands finished off-thread verifications back to the broker, on its thread.
    pub(crate) fn on_tick(_event: c_int, _event_data: *mut c_void, userdata: *mut c_void) -> c_int,
    on_panic = sys::MOSQ_ERR_SUCCESS,
    {
        // SAFETY: the broker passes back the userdata we registered.
        let Some(instance) = (unsafe { Instance::from_userdata(userdata) }) else {
            return sys::MOSQ_ERR_SUCCESS;
        };
        instance.revalidating.store(false, Ordering::Relaxed);
        let Some(pool) = &instance.pool else {
            return sys::MOSQ_ERR_SUCCESS;
        };
        let done = pool.take_done();
        if done.is_empty() {
            return sys::MOSQ_ERR_SUCCESS;
        }
        let policy = instance.policy.load();
        for result in done {
            let code = if result.verified {
                sys::MOSQ_ERR_SUCCESS
            } else {
                instance.log_denial(&policy, || {
                    format!(
                        "denied connect for client \"{}\": wrong password",
                        result.client_id.escape_debug()
                    )
                });
                sys::MOSQ_ERR_AUTH
            };
            instance.broker.complete_basic_auth(&result.client_id, code);
        }
        sys::MOSQ_ERR_SUCCESS
    }
}
