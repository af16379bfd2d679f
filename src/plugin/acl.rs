//! MOSQ_EVT_ACL_CHECK: the hot path. Borrowed strings, a lock-free policy load, no allocation.

use std::ffi::{c_int, c_void};

use super::boundary::ffi_guarded;
use super::broker::{broker_str, c_bytes, event_ref, topic_str};
use super::current::Hot;
use super::instance::Instance;
use super::sys;
use crate::acl::{Access, AclPolicy, Client, Topic};
use crate::denial::Denial;
use crate::memo::{Memo, Question};
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
        // SAFETY: NUL-terminated topic owned by the broker for this call.
        let (Some(topic), Some(access)) = (unsafe { c_bytes(event.topic) }, access_from(event.access)) else {
            return sys::MOSQ_ERR_ACL_DENIED;
        };
        // SAFETY: event.client is the client of this check, valid during this callback.
        instance.policy.with(|hot| unsafe { check(instance, hot, event.client, topic, access) })
    }
}

/// The check itself, with the policy in force: the memo first (a repeated question that was
/// allowed), else the broker's strings checked and the policy's decision.
///
/// # Safety
/// `client` must be the client of the current ACL check.
#[inline(always)]
unsafe fn check(
    instance: &Instance,
    hot: Hot<'_>,
    client: *const sys::mosquitto,
    topic: &[u8],
    access: Access,
) -> c_int {
    let policy = hot.policy;
    let Some(acl) = policy.acl.as_ref() else {
        METRICS.acl(access as usize, false);
        return sys::MOSQ_ERR_ACL_DENIED;
    };
    // SAFETY: per the function contract.
    let username = unsafe { instance.broker.client_username_bytes(client) };
    // The client id is read only when a rule can use it (`pattern` lines): a decision never
    // depends on it otherwise.
    let id = if acl.uses_client_id() {
        // SAFETY: as above.
        unsafe { instance.broker.client_id_bytes(client) }
    } else {
        None
    };
    let question = Question {
        username,
        id,
        topic,
        access,
    };
    match hot.memo.filter(|_| policy.config.acl.memo_decisions) {
        Some((memo, generation)) => {
            if memo.knows(generation, &question) {
                METRICS.acl(access as usize, true);
                return sys::MOSQ_ERR_SUCCESS;
            }
            // SAFETY: as above.
            unsafe {
                decide(
                    instance,
                    policy,
                    acl,
                    client,
                    question,
                    Some((memo, generation)),
                )
            }
        }
        // SAFETY: as above.
        None => unsafe { decide(instance, policy, acl, client, question, None) },
    }
}

/// A question the memo did not answer: the broker's strings checked, then the policy's
/// decision; an allow is remembered (with `memo`), a denial logged. `acl` is the policy's ACL.
///
/// # Safety
/// `client` must be the client of the current ACL check.
#[inline(never)]
unsafe fn decide(
    instance: &Instance,
    policy: &Policy,
    acl: &AclPolicy,
    client: *const sys::mosquitto,
    question: Question<'_>,
    memo: Option<(&mut Memo, u64)>,
) -> c_int {
    let Question {
        username,
        id,
        topic,
        access,
    } = question;
    // A topic, username or client id that is present but not UTF-8 matches no rule, and a
    // present username is never taken for an absent one (the anonymous rules).
    let (Some((topic, scan)), Ok(username), Ok(id)) =
        (topic_str(topic), broker_str(username), broker_str(id))
    else {
        let topic = String::from_utf8_lossy(topic);
        let username = username.map(String::from_utf8_lossy);
        // SAFETY: as above.
        return unsafe {
            deny(
                instance,
                policy,
                client,
                access,
                &topic,
                username.as_deref(),
                || "the topic, the client's id or its username is not UTF-8".to_string(),
            )
        };
    };
    let topic = Topic::scanned(topic, scan);
    let who = Client { id, username };
    match policy.decide(&who, topic, access) {
        Some(decision) if decision.allowed => {
            METRICS.acl(access as usize, true);
            if let Some((memo, generation)) = memo {
                memo.remember(generation, &question);
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
                || acl.describe(decision.reason),
            )
        },
        None => {
            METRICS.acl(access as usize, false);
            sys::MOSQ_ERR_ACL_DENIED
        }
    }
}
