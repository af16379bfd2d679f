//! A deliberately naive reference for mqttguard's READ/WRITE decisions, written from the
//! README ("ACL file", "Differences from Mosquitto") and Mosquitto 2.0's list walk
//! (`mosquitto_acl_check_default`), with no trie, no templates and no cleverness: every check
//! walks every rule of the file in order.
//!
//! Shared by the stable property test (`tests/differential_prop.rs`) and the `differential`
//! fuzz target (`fuzz/fuzz_targets/differential.rs`, which includes this file by `#[path]`),
//! so CI checks the same property the fuzzer explores.
//!
//! The semantics, rule by rule:
//!
//! - A READ/WRITE of a topic that is empty or contains `+` or `#` is denied.
//! - The client's own list: the `topic` rules of its `user` blocks (merged), or, without a
//!   username, the `topic` rules before the first `user` line. Any matching `deny` denies;
//!   otherwise a matching rule whose access includes the request allows; otherwise undecided.
//!   A `topic` rule matches as Mosquitto's `mosquitto_topic_matches_sub` (a filter starting
//!   with `$` only matches topics starting with `$` and the reverse); `%c`/`%u` are literal.
//! - Undecided and at least one `pattern` line: a username or client id containing `+` or `#`
//!   is denied (Mosquitto's guard); no client id is denied. Then the patterns, `%u` patterns
//!   skipped for a client without username:
//!   - a `deny` pattern applies wherever Mosquitto 2.0 applies it: every `%c`/`%u` anywhere in
//!     the rule is replaced textually by the value (whatever it contains), and the result is
//!     matched as by `mosquitto_topic_matches_sub` (so for a `$` topic only if the substituted
//!     text starts with `$`);
//!   - an allow pattern follows mqttguard's stricter rules: it never matches when a value it
//!     uses is empty or contains `/`, `+` or `#`; for a topic starting with `$` only if its
//!     first level is a literal `$…` (no `%c`/`%u` in it); otherwise the (now single-level)
//!     values are substituted within their level and the result is matched as above.
//!
//!   Any matching deny denies; otherwise a match whose access includes the request allows.
//! - Nothing decided: denied.
//!
//! SUBSCRIBE and UNSUBSCRIBE are allowed with the default configuration (`check_subscribe`
//! off), as Mosquitto does.
//!
//! [`Semantics::Legacy`] is the behaviour of the core before two fixes (deny patterns were
//! skipped under the stricter allow rules; READ/WRITE of topics with wildcards or empty topics
//! were not refused). It is kept so the tests can show that the property tells the two apart;
//! see [`TOLERATE_IN_FLIGHT`].

#![allow(dead_code)]

use std::fmt::Write as _;

/// While two fixes to the core were being made (deny patterns applied wherever Mosquitto 2.0
/// applies them; READ/WRITE of an empty topic or one containing `+`/`#` denied), this was
/// `true` and a disagreement was tolerated when the core gave exactly the old answer
/// ([`Semantics::Legacy`]). Both fixes are in: it is `false`, so every disagreement fails the
/// property test and the `differential` fuzz target alike.
pub const TOLERATE_IN_FLIGHT: bool = false;

/// Topics built from the policy's own filters, with the client's values substituted as
/// Mosquitto 2.0 does and wildcards filled in, so that rules are hit often.
pub fn topics_from_rules(acl: &Acl, client: &Client, fill: &str) -> Vec<String> {
    let id = client.id.as_deref().unwrap_or("c1");
    acl.lines
        .iter()
        .filter_map(|l| match l {
            Line::Topic { filter, .. } | Line::Pattern { filter, .. } => Some(filter),
            Line::User(_) => None,
        })
        .map(|f| {
            let t = substitute(f, id, client.username.as_deref());
            t.split('/')
                .map(|level| {
                    if level == "+" || level == "#" {
                        fill
                    } else {
                        level
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

/// Access word of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAccess {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl RuleAccess {
    pub const ALL: [RuleAccess; 4] = [
        RuleAccess::Read,
        RuleAccess::Write,
        RuleAccess::ReadWrite,
        RuleAccess::Deny,
    ];

    fn word(self) -> &'static str {
        match self {
            RuleAccess::Read => "read",
            RuleAccess::Write => "write",
            RuleAccess::ReadWrite => "readwrite",
            RuleAccess::Deny => "deny",
        }
    }

    fn grants(self, access: Access) -> bool {
        matches!(
            (self, access),
            (RuleAccess::Read | RuleAccess::ReadWrite, Access::Read)
                | (RuleAccess::Write | RuleAccess::ReadWrite, Access::Write)
        )
    }
}

/// One line of a generated ACL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    User(String),
    /// `topic [ACCESS] FILTER`; `implicit` writes `topic FILTER` (readwrite, no access word).
    Topic {
        access: RuleAccess,
        filter: String,
        implicit: bool,
    },
    Pattern {
        access: RuleAccess,
        filter: String,
    },
}

/// A generated ACL file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    pub lines: Vec<Line>,
}

impl Acl {
    /// The file as Mosquitto's grammar writes it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::User(name) => writeln!(out, "user {name}"),
                Line::Topic {
                    access,
                    filter,
                    implicit: true,
                } if *access == RuleAccess::ReadWrite => writeln!(out, "topic {filter}"),
                Line::Topic { access, filter, .. } => {
                    writeln!(out, "topic {} {filter}", access.word())
                }
                Line::Pattern { access, filter } => {
                    writeln!(out, "pattern {} {filter}", access.word())
                }
            }
            .expect("write to String");
        }
        out
    }
}

/// The client as the broker knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: Option<String>,
    pub username: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Subscribe,
    Unsubscribe,
}

/// Which behaviour to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantics {
    /// The documented behaviour (see the module comment).
    Fixed,
    /// Deny patterns under the stricter allow rules, wildcard/empty topics not refused.
    Legacy,
}

/// `mosquitto_topic_matches_sub`, level by level, for a topic without wildcards.
pub fn matches_sub(filter: &str, topic: &str) -> bool {
    if filter.starts_with('$') != topic.starts_with('$') {
        return false;
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    let mut i = 0;
    loop {
        match (f.get(i), t.get(i)) {
            (Some(&"#"), _) => return i + 1 == f.len(),
            (Some(&"+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
        i += 1;
    }
}

/// Mosquitto 2.0's textual substitution: every `%c` by the client id, every `%u` by the
/// username (when there is one), scanning left to right without rescanning what was inserted.
pub fn substitute(rule: &str, id: &str, username: Option<&str>) -> String {
    let bytes = rule.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 1 < bytes.len() {
            if bytes[i + 1] == b'c' {
                out.push_str(id);
                i += 2;
                continue;
            }
            if bytes[i + 1] == b'u' {
                if let Some(u) = username {
                    out.push_str(u);
                    i += 2;
                    continue;
                }
            }
        }
        // Rule text is ASCII-free of multi-byte issues only at '%': copy one char.
        let ch = rule[i..].chars().next().expect("char boundary");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn unsafe_value(v: &str) -> bool {
    v.is_empty() || v.contains(['/', '+', '#'])
}

/// Whether a pattern rule matches `topic` for this client (id present; `%u` rules already
/// skipped when there is no username).
fn pattern_matches(
    access: RuleAccess,
    filter: &str,
    id: &str,
    username: Option<&str>,
    topic: &str,
    semantics: Semantics,
) -> bool {
    let strict = access != RuleAccess::Deny || semantics == Semantics::Legacy;
    if !strict {
        return matches_sub(&substitute(filter, id, username), topic);
    }
    if filter.contains("%c") && unsafe_value(id) {
        return false;
    }
    if filter.contains("%u") && username.is_none_or(unsafe_value) {
        return false;
    }
    if topic.starts_with('$') {
        let first = filter.split('/').next().unwrap_or_default();
        if !first.starts_with('$') || first.contains("%c") || first.contains("%u") {
            return false;
        }
    }
    matches_sub(&substitute(filter, id, username), topic)
}

/// Walks one rule list as Mosquitto does: deny first, then the first grant.
fn decide<'a>(
    rules: impl Iterator<Item = (RuleAccess, &'a str)> + Clone,
    access: Access,
    matches: impl Fn(RuleAccess, &str) -> bool,
) -> Option<bool> {
    if rules
        .clone()
        .any(|(a, f)| a == RuleAccess::Deny && matches(a, f))
    {
        return Some(false);
    }
    if rules
        .into_iter()
        .any(|(a, f)| a != RuleAccess::Deny && a.grants(access) && matches(a, f))
    {
        return Some(true);
    }
    None
}

/// Whether the check is allowed.
pub fn check(
    acl: &Acl,
    client: &Client,
    topic: &str,
    access: Access,
    semantics: Semantics,
) -> bool {
    if matches!(access, Access::Subscribe | Access::Unsubscribe) {
        // Mosquitto accepts every subscription (delivery is checked as READ); mqttguard also
        // refuses an empty filter, which no MQTT client can send.
        return semantics != Semantics::Fixed || !topic.is_empty();
    }
    if semantics == Semantics::Fixed && (topic.is_empty() || topic.contains(['+', '#'])) {
        return false;
    }
    // The client's own list.
    let mut own: Vec<(RuleAccess, &str)> = Vec::new();
    let mut current: Option<&str> = None;
    for line in &acl.lines {
        match line {
            Line::User(name) => current = Some(name.as_str()),
            Line::Topic { access, filter, .. } if current == client.username.as_deref() => {
                own.push((*access, filter.as_str()));
            }
            _ => {}
        }
    }
    if let Some(decision) = decide(own.iter().copied(), access, |_, f| matches_sub(f, topic)) {
        return decision;
    }
    // The patterns.
    let patterns: Vec<(RuleAccess, &str)> = acl
        .lines
        .iter()
        .filter_map(|l| match l {
            Line::Pattern { access, filter } => Some((*access, filter.as_str())),
            _ => None,
        })
        .collect();
    if patterns.is_empty() {
        return false;
    }
    let dangerous = |s: &Option<String>| s.as_deref().is_some_and(|s| s.contains(['+', '#']));
    if dangerous(&client.username) || dangerous(&client.id) {
        return false;
    }
    let Some(id) = client.id.as_deref() else {
        return false;
    };
    let username = client.username.as_deref();
    let applicable = patterns
        .into_iter()
        .filter(|(_, f)| username.is_some() || !f.contains("%u"));
    decide(applicable, access, |a, f| {
        pattern_matches(a, f, id, username, topic, semantics)
    })
    .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------
// Small alphabets, shared by the property test and the fuzz target so that generated
// policies, clients and topics meet often.

/// Names for `user` lines.
pub const USER_NAMES: &[&str] = &["alice", "bob", "a/b", "$x", "u+v"];

/// Usernames of clients (`None`: no username).
pub const USERNAMES: &[Option<&str>] = &[
    None,
    Some("alice"),
    Some("bob"),
    Some("a/b"),
    Some("$x"),
    Some(""),
    Some("u+v"),
    Some("w#"),
    Some("a"),
    Some("%c"),
];

/// Client ids (`None`: no client id).
pub const CLIENT_IDS: &[Option<&str>] = &[
    Some("a"),
    Some("c1"),
    Some("a/b"),
    Some("$x"),
    Some("$SYS"),
    Some(""),
    Some("c+"),
    Some("c#"),
    Some("alice"),
    Some("%u"),
    None,
];

/// Levels of rule filters (besides `+`, `#` and the placeholders below).
pub const FILTER_LEVELS: &[&str] = &["a", "b", "c1", "alice", "$x", "$SYS", "", "x-a"];

/// Levels with placeholders, for patterns (and, literally, for topic rules).
pub const TEMPLATE_LEVELS: &[&str] = &["%c", "%u", "x-%c", "%c%u", "$%c", "%u-y", "%%c"];

/// Levels of checked topics: the filter levels plus what substitution produces.
pub const TOPIC_LEVELS: &[&str] = &[
    "a", "b", "c1", "alice", "$x", "$SYS", "", "x-a", "x-c1", "c1alice", "$c1", "$a", "bob-y",
    "alice-y", "%c", "%u", "x-%c", "%c1",
];
