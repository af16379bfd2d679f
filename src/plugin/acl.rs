//! MOSQ_EVT_ACL_CHECK: the hot path. Borrowed strings, a lock-free policy load, no allocation.

use std::ffi::{c_int, c_void, CStr};

use super::boundary::ffi_guarded;
use super::broker::{broker_cstr, c_cstr, event_ref, topic_str};
use super::current::Hot;
use super::instance::Instance;
use super::sys;
use crate::acl::{Access, Client, Reason, Topic};
use crate::denial::Denial;
use crate::memo::{ClientId, Memo, Question};
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

/// Denies a check: counts it, and logs it within the log budget (the client's address and id
/// are read, and the reason made, only when the line is written).
///
/// # Safety
/// `client` must be the client of the current ACL check.
unsafe fn deny(
    instance: &Instance,
    policy: &Policy,
    client: *const sys::mosquitto,
    access: Access,
    topic: &str,
    username: Option<&str>,
    reason: impl FnOnce() -> String,
) -> c_int {
    METRICS.acl(access as usize, false);
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
    sys::MOSQ_ERR_ACL_DENIED
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
        let Some(access) = access_from(event.access) else {
            return sys::MOSQ_ERR_ACL_DENIED;
        };
        // SAFETY: NUL-terminated topic owned by the broker for this call.
        let Some(topic) = (unsafe { c_cstr(event.topic) }) else {
            return sys::MOSQ_ERR_ACL_DENIED;
        };
        // SAFETY: event.client is the client of this check, valid during this callback.
        instance.policy.with(|hot| unsafe { check(instance, hot, event.client, topic, access) })
    }
}

/// The check itself, with the policy in force: the memo first (a repeated question that was
/// allowed), else [`decide`].
///
/// # Safety
/// `client` must be the client of the current ACL check.
#[inline(always)]
unsafe fn check(
    instance: &Instance,
    hot: Hot<'_>,
    client: *const sys::mosquitto,
    topic: &CStr,
    access: Access,
) -> c_int {
    let Some(memo) = hot.memo else {
        // SAFETY: per the function contract.
        return unsafe { decide(instance, hot.policy, client, topic, access, None) };
    };
    let question = Question {
        // SAFETY: per the function contract.
        username: unsafe { instance.broker.client_username_cstr(client) },
        topic,
        access,
    };
    // The client id is read only when the remembered allow depended on it.
    // SAFETY: as above.
    if memo.knows(&question, || unsafe {
        instance.broker.client_id_cstr(client)
    }) {
        METRICS.acl(access as usize, true);
        return sys::MOSQ_ERR_SUCCESS;
    }
    // SAFETY: as above.
    unsafe { decide(instance, hot.policy, client, topic, access, Some(memo)) }
}

/// A question the memo did not answer: the broker's strings read and checked, then the
/// policy's decision; an allow is remembered (with `memo`), a denial logged.
///
/// # Safety
/// `client` must be the client of the current ACL check.
#[inline(never)]
unsafe fn decide(
    instance: &Instance,
    policy: &Policy,
    client: *const sys::mosquitto,
    topic_c: &CStr,
    access: Access,
    memo: Option<&mut Memo>,
) -> c_int {
    let Some(acl) = policy.acl.as_ref() else {
        METRICS.acl(access as usize, false);
        return sys::MOSQ_ERR_ACL_DENIED;
    };
    // SAFETY: per the function contract.
    let username_c = unsafe { instance.broker.client_username_cstr(client) };
    // The client id is read only when a rule can use it (`pattern` lines): a decision never
    // depends on it otherwise.
    let id_c = if acl.uses_client_id() {
        // SAFETY: as above.
        unsafe { instance.broker.client_id_cstr(client) }
    } else {
        None
    };
    // A topic or username that is present but not UTF-8 matches no rule, and a present
    // username is never taken for an absent one (the anonymous rules). A client id that is
    // not UTF-8 is read as none: the user's own rules never look at the id (as Mosquitto's),
    // and `pattern` rules refuse a client without one.
    let id = broker_cstr(id_c).unwrap_or(None);
    let (Some((topic, scan)), Ok(username)) =
        (topic_str(topic_c.to_bytes()), broker_cstr(username_c))
    else {
        let topic = String::from_utf8_lossy(topic_c.to_bytes());
        let username = username_c.map(CStr::to_string_lossy);
        // SAFETY: as above.
        return unsafe {
            deny(
                instance,
                policy,
                client,
                access,
                &topic,
                username.as_deref(),
                || "the topic or the client's username is not UTF-8".to_string(),
            )
        };
    };
    let topic = Topic::scanned(topic, scan);
    let who = Client { id, username };
    match policy.decide(&who, topic, access) {
        Some(decision) if decision.allowed => {
            METRICS.acl(access as usize, true);
            if let Some(memo) = memo {
                let question = Question {
                    username: username_c,
                    topic: topic_c,
                    access,
                };
                let id = if decision.read_client_id {
                    ClientId::Read(id_c)
                } else {
                    ClientId::Unread
                };
                memo.remember(&question, id);
            }
            sys::MOSQ_ERR_SUCCESS
        }
        // SAFETY: as above.
        Some(decision) => unsafe {
            deny(
                instance,
                policy,
                client,
                access,
                topic.as_str(),
                username,
                || match (decision.reason, id_c, id) {
                    (Reason::NoClientId, Some(_), None) => "the client id is not UTF-8".to_string(),
                    (reason, ..) => acl.describe(reason),
                },
            )
        },
        None => {
            METRICS.acl(access as usize, false);
            sys::MOSQ_ERR_ACL_DENIED
        }
    }
}
