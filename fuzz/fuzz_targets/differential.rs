//! Differential: `Policy::check` (the plugin's entry point) against the naive reference in
//! `tests/reference/mod.rs` (shared with the stable property test
//! `tests/differential_prop.rs`), on policies, clients and topics built from the fuzz input
//! over small alphabets, so that rules and topics meet often.
//!
//! A disagreement panics with the ACL file and the check. While the reference's
//! `TOLERATE_IN_FLIGHT` is on, disagreements that are exactly the core's old behaviour (the
//! fixes in progress) are not reported.

#![no_main]

#[path = "../../tests/reference/mod.rs"]
mod reference;

use std::path::Path;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mqttguard::acl::{self, AclPolicy};
use mqttguard::policy::Policy;

use reference::{
    Access, Acl, Client, Line, RuleAccess, Semantics, CLIENT_IDS, FILTER_LEVELS, TEMPLATE_LEVELS,
    TOLERATE_IN_FLIGHT, TOPIC_LEVELS, USERNAMES, USER_NAMES,
};

fn pick<T: Copy>(u: &mut Unstructured<'_>, from: &[T]) -> Result<T> {
    Ok(*u.choose(from)?)
}

fn filter(u: &mut Unstructured<'_>, templated: bool) -> Result<String> {
    let n = u.int_in_range(1..=4)?;
    let mut levels = Vec::new();
    for _ in 0..n {
        let level = match u.int_in_range(0..=9)? {
            0 | 1 => "+",
            2..=5 if templated => pick(u, TEMPLATE_LEVELS)?,
            _ => pick(u, FILTER_LEVELS)?,
        };
        levels.push(level);
    }
    let mut f = levels.join("/");
    if u.ratio(1, 4)? {
        f.push_str("/#");
    }
    if f.is_empty() {
        f.push('#');
    }
    Ok(f)
}

fn access(u: &mut Unstructured<'_>) -> Result<RuleAccess> {
    pick(u, &RuleAccess::ALL)
}

fn acl_file(u: &mut Unstructured<'_>) -> Result<Acl> {
    let n = u.int_in_range(0..=10)?;
    let mut lines = Vec::new();
    for _ in 0..n {
        lines.push(match u.int_in_range(0..=7)? {
            0 => Line::User(pick(u, USER_NAMES)?.to_string()),
            1..=3 => Line::Topic {
                access: access(u)?,
                filter: filter(u, false)?,
                implicit: u.arbitrary()?,
            },
            _ => Line::Pattern {
                access: access(u)?,
                filter: filter(u, true)?,
            },
        });
    }
    Ok(Acl { lines })
}

fn topic(u: &mut Unstructured<'_>) -> Result<String> {
    let n = u.int_in_range(0..=5)?;
    let mut levels = Vec::new();
    for _ in 0..n {
        levels.push(match u.int_in_range(0..=19)? {
            0 => "+",
            1 => "#",
            _ => pick(u, TOPIC_LEVELS)?,
        });
    }
    Ok(levels.join("/"))
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let acl = acl_file(u)?;
    let text = acl.render();
    let parsed = AclPolicy::parse(Path::new("generated.acl"), text.as_bytes())
        .unwrap_or_else(|e| panic!("generated ACL does not parse: {e}\n{text}"));
    let policy = Policy::from_parts(None, Some(parsed), Default::default(), None);
    let clients = u.int_in_range(1..=4)?;
    for _ in 0..clients {
        let client = Client {
            id: pick(u, CLIENT_IDS)?.map(str::to_string),
            username: pick(u, USERNAMES)?.map(str::to_string),
        };
        let mut topics = reference::topics_from_rules(&acl, &client, "a");
        topics.extend(reference::topics_from_rules(&acl, &client, "$x"));
        for _ in 0..u.int_in_range(1..=8)? {
            topics.push(topic(u)?);
        }
        for topic in &topics {
            for access in [
                Access::Read,
                Access::Write,
                Access::Subscribe,
                Access::Unsubscribe,
            ] {
                compare(&policy, &acl, &client, topic, access);
            }
        }
    }
    Ok(())
}

fn compare(policy: &Policy, acl: &Acl, client: &Client, topic: &str, access: Access) {
    let c = acl::Client {
        id: client.id.as_deref(),
        username: client.username.as_deref(),
    };
    let core_access = match access {
        Access::Read => acl::Access::Read,
        Access::Write => acl::Access::Write,
        Access::Subscribe => acl::Access::Subscribe,
        Access::Unsubscribe => acl::Access::Unsubscribe,
    };
    let core = policy
        .check(&c, topic, core_access)
        .expect("an ACL file is configured")
        .allowed;
    let want = reference::check(acl, client, topic, access, Semantics::Fixed);
    if core == want {
        return;
    }
    if TOLERATE_IN_FLIGHT && core == reference::check(acl, client, topic, access, Semantics::Legacy)
    {
        return;
    }
    panic!(
        "core {} but the reference {}: {access:?} {topic:?} for client id {:?}, username {:?}\n--- ACL ---\n{text}",
        if core { "allows" } else { "denies" },
        if core { "denies" } else { "allows" },
        client.id,
        client.username,
        text = acl.render()
    );
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
