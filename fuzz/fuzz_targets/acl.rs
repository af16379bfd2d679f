//! The ACL parser and the compiled checks: arbitrary bytes as an ACL file; when it parses,
//! checks for fuzzed clients, topics and accesses, with and without `check_subscribe`.
//!
//! Input: `<ACL file> [NUL <queries>]`; each query line is `<access><client id>|<username>|<topic>`
//! where `<access>` is `r`, `w`, `s` or `u` and a username `-` means none. Topics made from
//! the file's own rules (placeholders filled with the client's values, wildcards with `x`)
//! are checked too, so rules are hit without the fuzzer having to guess them.
//!
//! Never panics; also asserts what every decision must satisfy (a rule that allows grants the
//! access, a rule that denies is a deny rule, unchecked subscriptions are allowed).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mqttguard::acl::{Access, AclPolicy, Client, Reason, RuleAccess};

fuzz_target!(|data: &[u8]| {
    let (text, queries) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(acl) = AclPolicy::parse(Path::new("fuzz.acl"), text) else {
        return;
    };
    let _ = (
        acl.user_count(),
        acl.pattern_count(),
        acl.topic_rule_count(),
    );
    let queries = String::from_utf8_lossy(queries);
    let mut asked = 0;
    for line in queries.lines().take(32) {
        let mut chars = line.chars();
        let access = match chars.next() {
            Some('r') => Access::Read,
            Some('w') => Access::Write,
            Some('s') => Access::Subscribe,
            Some('u') => Access::Unsubscribe,
            _ => continue,
        };
        let mut fields = chars.as_str().splitn(3, '|');
        let id = fields.next();
        let username = fields.next().filter(|u| *u != "-");
        let topic = fields.next().unwrap_or("a");
        let client = Client { id, username };
        ask(&acl, &client, topic, access);
        for rule in acl.rules().iter().take(16) {
            let topic = from_rule(&rule.topic, id.unwrap_or(""), username);
            for access in [Access::Read, Access::Write, Access::Subscribe] {
                ask(&acl, &client, &topic, access);
            }
        }
        asked += 1;
    }
    if asked == 0 {
        let client = Client {
            id: Some("c1"),
            username: acl.rules().iter().find_map(|r| r.user.as_deref()),
        };
        for rule in acl.rules().iter().take(16) {
            let topic = from_rule(&rule.topic, "c1", client.username);
            ask(&acl, &client, &topic, Access::Read);
            ask(&acl, &client, &topic, Access::Write);
            ask(&acl, &client, &rule.topic, Access::Subscribe);
        }
    }
});

/// A topic the rule matches for this client (when its values are substituted as-is).
fn from_rule(filter: &str, id: &str, username: Option<&str>) -> String {
    let t = filter.replace("%c", id);
    let t = match username {
        Some(u) => t.replace("%u", u),
        None => t,
    };
    t.split('/')
        .map(|l| if l == "+" || l == "#" { "x" } else { l })
        .collect::<Vec<_>>()
        .join("/")
}

fn ask(acl: &AclPolicy, client: &Client<'_>, topic: &str, access: Access) {
    for check_subscribe in [false, true] {
        let d = acl.check(client, topic, access, check_subscribe);
        let _ = acl.describe(d.reason);
        if matches!(access, Access::Unsubscribe)
            || (matches!(access, Access::Subscribe) && !check_subscribe)
        {
            assert!(d.allowed, "unchecked {access:?} refused: {d:?}");
            continue;
        }
        if let Reason::Rule(id) = d.reason {
            let rule = acl.rule(id);
            if d.allowed {
                let grants = match access {
                    Access::Read | Access::Subscribe => rule.access.grants_read(),
                    Access::Write => rule.access.grants_write(),
                    Access::Unsubscribe => true,
                };
                assert!(
                    grants,
                    "{access:?} allowed by a rule that does not grant it: {}",
                    rule.text
                );
            } else {
                assert_eq!(
                    rule.access,
                    RuleAccess::Deny,
                    "denied by an allow rule: {}",
                    rule.text
                );
            }
        }
    }
}
