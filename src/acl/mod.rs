//! Mosquitto ACL files: parsed with Mosquitto 2.0's grammar, compiled once into per-user topic
//! tries and a pattern trie, then decided without allocation.

mod parse;
mod template;
mod trie;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ahash::AHashMap;

pub use parse::{AclError, RuleAccess, RuleKind, UserLine};

use crate::error::Located;
use trie::{Builder, Hits, NodeId, Subst, Trie};

/// What the broker asks about (`MOSQ_ACL_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// A message is about to be delivered to the client.
    Read,
    /// The client publishes (or its will is sent).
    Write,
    /// The client subscribes to a filter.
    Subscribe,
    /// The client unsubscribes from a filter.
    Unsubscribe,
}

impl std::str::FromStr for Access {
    type Err = String;

    /// `read`, `write`, `subscribe` or `unsubscribe` (what [`Access::as_str`] writes).
    fn from_str(word: &str) -> Result<Access, String> {
        Ok(match word {
            "read" => Access::Read,
            "write" => Access::Write,
            "subscribe" => Access::Subscribe,
            "unsubscribe" => Access::Unsubscribe,
            _ => {
                return Err(format!(
                    "invalid access \"{word}\": expected read, write, subscribe or unsubscribe"
                ))
            }
        })
    }
}

impl Access {
    /// Whether `topic` can be asked about with this access: a topic name for READ/WRITE
    /// (not empty, no `+`/`#`, no NUL), a valid filter for SUBSCRIBE/UNSUBSCRIBE. The broker
    /// never asks anything else; [`AclPolicy::check`] denies it.
    pub fn check_topic(self, topic: &str) -> Result<(), String> {
        match self {
            Access::Read | Access::Write => {
                if topic.is_empty() {
                    Err("the topic is empty".to_string())
                } else if !crate::topic::is_topic_name(topic) {
                    Err(format!(
                        "topic \"{topic}\" contains a wildcard: read and write are about a \
                         topic name (use subscribe for a topic filter)"
                    ))
                } else if topic.contains('\0') {
                    Err("the topic contains a NUL byte".to_string())
                } else {
                    Ok(())
                }
            }
            Access::Subscribe | Access::Unsubscribe => crate::topic::check_filter(topic)
                .map_err(|e| format!("topic filter \"{topic}\": {e}")),
        }
    }

    /// The word the denial log and `mqttguard check` use: `read`, `write`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Subscribe => "subscribe",
            Access::Unsubscribe => "unsubscribe",
        }
    }
}

/// Who is asking: the connected client as the broker knows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Client<'a> {
    /// The client id; `None` when the broker has none.
    pub id: Option<&'a str>,
    /// The username; `None` for an anonymous client.
    pub username: Option<&'a str>,
}

/// The topic (READ/WRITE) or filter (SUBSCRIBE/UNSUBSCRIBE) a check is about, with whether it
/// is a topic name worked out once ([`crate::topic::scan`]): the plugin learns that in the same
/// pass that checks the broker's bytes are UTF-8.
#[derive(Debug, Clone, Copy)]
pub struct Topic<'a> {
    text: &'a str,
    name: bool,
}

impl<'a> Topic<'a> {
    /// Looks at `text` once.
    pub fn new(text: &'a str) -> Topic<'a> {
        Topic {
            text,
            name: crate::topic::is_topic_name(text),
        }
    }

    /// A topic already scanned: `name` is what [`crate::topic::scan`] said of its bytes.
    pub(crate) fn scanned(text: &'a str, scan: crate::topic::Scan) -> Topic<'a> {
        Topic {
            text,
            name: scan.name,
        }
    }

    /// The text as asked.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// Whether it is a topic name ([`crate::topic::is_topic_name`]).
    pub fn is_name(&self) -> bool {
        self.name
    }
}

/// Index of a rule in [`AclPolicy::rules`], in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleId(pub u32);

/// One `topic` or `pattern` line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// 1-based line number.
    pub line: usize,
    /// `topic` or `pattern`.
    pub kind: RuleKind,
    /// The access word (`readwrite` when there is none).
    pub access: RuleAccess,
    /// The topic filter as written (patterns keep their `%c`/`%u`).
    pub topic: String,
    /// The `user` block the rule stands in; `None` for the anonymous section and for patterns.
    pub user: Option<String>,
    /// The line as written, trailing whitespace removed.
    pub text: String,
}

/// Why a decision came out the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// This rule decided (a deny, or an allow whose access includes the request).
    Rule(RuleId),
    /// No rule matched; the default is deny.
    NoMatch,
    /// Patterns were consulted and the username or client id contains `+` or `#`
    /// (Mosquitto's own guard, CVE-2017-7650).
    DangerousIdentity,
    /// The client has no client id.
    NoClientId,
    /// SUBSCRIBE/UNSUBSCRIBE are not checked (Mosquitto's behaviour); READ filters delivery.
    SubscribeUnchecked,
    /// The client is a configured superuser.
    Superuser,
    /// READ/WRITE of a topic that is empty or contains `+` or `#`, or SUBSCRIBE/UNSUBSCRIBE
    /// of an empty filter: never a valid request.
    InvalidTopic,
}

impl Reason {
    /// A stable name for the kind of reason (`mqttguard check --json`).
    pub fn kind(self) -> &'static str {
        match self {
            Reason::Rule(_) => "rule",
            Reason::NoMatch => "no_match",
            Reason::DangerousIdentity => "dangerous_identity",
            Reason::NoClientId => "no_client_id",
            Reason::SubscribeUnchecked => "subscribe_unchecked",
            Reason::Superuser => "superuser",
            Reason::InvalidTopic => "invalid_topic",
        }
    }
}

/// The answer to one ACL question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the access is allowed.
    pub allowed: bool,
    /// What decided it.
    pub reason: Reason,
    /// Whether the client id took part: the `pattern` phase ran (its guards and `%c` read
    /// the id). When false, every client id gets this same decision; the user's own rules,
    /// the anonymous rules and superusers never look at it.
    pub read_client_id: bool,
}

impl Decision {
    const fn deny(reason: Reason) -> Self {
        Decision {
            allowed: false,
            reason,
            read_client_id: false,
        }
    }
    const fn allow(reason: Reason) -> Self {
        Decision {
            allowed: true,
            reason,
            read_client_id: false,
        }
    }
    /// This decision, made by the `pattern` phase.
    const fn of_patterns(self) -> Self {
        Decision {
            read_client_id: true,
            ..self
        }
    }
}

/// A compiled ACL file.
#[derive(Debug)]
pub struct AclPolicy {
    file: PathBuf,
    /// The file as read: rules are kept as places in it, and [`AclPolicy::rules`] parses it
    /// again on first use (tools only; the broker never needs the rule records).
    source: Box<[u8]>,
    /// Per rule, in file order: the byte offset of its line in `source` and its line number.
    places: Vec<(usize, u32)>,
    rule_count: usize,
    pattern_count: usize,
    rules: OnceLock<Vec<Rule>>,
    /// Every rule list below, compiled into one set of arrays.
    trie: Trie,
    /// `topic` rules inside `user` blocks: a node whose literal children, keyed by username,
    /// are the roots of each user's list.
    users: NodeId,
    /// `topic` rules before the first `user` line: clients without a username.
    anonymous: Option<NodeId>,
    /// Every `pattern` rule: deny patterns substitute as Mosquitto 2.0 does, allow patterns
    /// with the stricter rules (see [`Subst`]).
    patterns: Option<NodeId>,
    /// Usernames that have a `user` block (some may have no rules).
    user_count: usize,
    /// Every `user` line, in file order (for `mqttguard lint`).
    user_lines: Vec<UserLine>,
}

impl AclPolicy {
    /// Parses and compiles an ACL file's contents; `file` names it in errors.
    pub fn parse(file: &Path, text: &[u8]) -> Result<AclPolicy, Located<AclError>> {
        /// Rule lists: the anonymous one, the patterns, then one per user name.
        const ANONYMOUS: u32 = 0;
        const PATTERNS: u32 = 1;
        const FIRST_USER: u32 = 2;
        /// A rule until its list is built: its filter in the text, its list, its access.
        struct Pending<'t> {
            topic: &'t str,
            list: u32,
            access: RuleAccess,
        }
        // One pass over the text. A rule takes a line of at least eight bytes with its
        // newline (`topic a`): reserve for that many, so the records are not copied while
        // they grow.
        let lines = text.iter().filter(|&&b| b == b'\n').count() + 1;
        let most = lines.min(text.len() / 8 + 1);
        let mut pending: Vec<Pending<'_>> = Vec::with_capacity(most);
        let mut places: Vec<(usize, u32)> = Vec::with_capacity(most);
        let mut user_lines: Vec<UserLine> = Vec::new();
        // Names of the `user` blocks in first-appearance order; list `FIRST_USER + i`.
        let mut names: Vec<&str> = Vec::new();
        let mut list_of: AHashMap<&str, u32> = AHashMap::default();
        let mut current = ANONYMOUS;
        parse::scan(file, text, |at, line| match line {
            parse::Line::User(name) => {
                current = *list_of.entry(name).or_insert_with(|| {
                    names.push(name);
                    FIRST_USER + u32::try_from(names.len() - 1).unwrap_or(u32::MAX)
                });
                user_lines.push(UserLine {
                    name: name.to_string(),
                    line: at.line,
                });
            }
            parse::Line::Rule {
                kind,
                access,
                topic,
            } => {
                let list = match kind {
                    RuleKind::Pattern => PATTERNS,
                    RuleKind::Topic => current,
                };
                pending.push(Pending {
                    topic,
                    list,
                    access,
                });
                places.push((at.offset, u32::try_from(at.line).unwrap_or(u32::MAX)));
            }
        })?;
        drop(list_of);
        // The rules of each list in file order (a counting sort by list), so each list is
        // built and frozen before the next and only one build structure exists at a time.
        let list_count = FIRST_USER as usize + names.len();
        let mut starts = vec![0u32; list_count + 1];
        for rule in &pending {
            starts[rule.list as usize + 1] += 1;
        }
        for at in 1..starts.len() {
            starts[at] += starts[at - 1];
        }
        let mut by_list = vec![0u32; pending.len()];
        let mut fill = starts.clone();
        for (id, rule) in pending.iter().enumerate() {
            let slot = &mut fill[rule.list as usize];
            by_list[*slot as usize] = id as u32;
            *slot += 1;
        }
        drop(fill);
        let list = |l: u32| {
            let l = l as usize;
            &by_list[starts[l] as usize..starts[l + 1] as usize]
        };
        let mut trie = Trie::default();
        let build = |trie: &mut Trie, ids: &[u32], templated: bool| {
            let mut builder = Builder::default();
            for &id in ids {
                let rule = &pending[id as usize];
                builder.insert(rule.topic, templated, rule.access, RuleId(id));
            }
            trie.add(builder)
        };
        let mut named: Vec<(&str, NodeId)> = Vec::with_capacity(names.len());
        for (at, name) in names.iter().enumerate() {
            let root = build(&mut trie, list(FIRST_USER + at as u32), false);
            named.push((name, root));
        }
        let users = trie.add_named(&named);
        drop(named);
        let anonymous = list(ANONYMOUS);
        let anonymous = (!anonymous.is_empty()).then(|| build(&mut trie, anonymous, false));
        let pattern_count = list(PATTERNS).len();
        let patterns = (pattern_count > 0).then(|| build(&mut trie, list(PATTERNS), true));
        let rule_count = pending.len();
        drop(by_list);
        drop(pending);
        trie.shrink();
        places.shrink_to_fit();
        Ok(AclPolicy {
            file: file.to_path_buf(),
            user_count: names.len(),
            user_lines,
            source: text.into(),
            places,
            rule_count,
            pattern_count,
            rules: OnceLock::new(),
            trie,
            users,
            anonymous,
            patterns,
        })
    }

    /// Every `user NAME` line, in file order (a name may appear more than once).
    pub fn user_lines(&self) -> &[UserLine] {
        &self.user_lines
    }

    /// The file the policy was parsed from, as named at load.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Every rule, in file order.
    pub fn rules(&self) -> &[Rule] {
        self.rules.get_or_init(|| {
            // The same text parsed successfully when the policy was made.
            parse::rules(&self.file, &self.source).unwrap_or_default()
        })
    }

    /// The rule a [`Reason::Rule`] names.
    pub fn rule(&self, id: RuleId) -> &Rule {
        &self.rules()[id.0 as usize]
    }

    /// Says why a decision came out as it did: the deciding rule as `file:line: text`, or the
    /// guard that refused.
    pub fn describe(&self, reason: Reason) -> String {
        match reason {
            Reason::Rule(id) => {
                let (line, text) = self.rule_line(id);
                format!("{}:{}: {}", self.file.display(), line, text)
            }
            Reason::NoMatch => "no rule matched".to_string(),
            Reason::DangerousIdentity => {
                "username or client id contains '+' or '#', which pattern rules refuse".to_string()
            }
            Reason::NoClientId => "client has no client id".to_string(),
            Reason::SubscribeUnchecked => "subscriptions are not checked".to_string(),
            Reason::Superuser => "superuser".to_string(),
            Reason::InvalidTopic => {
                "not a valid topic name (empty, or containing '+' or '#')".to_string()
            }
        }
    }

    /// Whether a decision can depend on the client id: only `pattern` rules use it. When
    /// this is false the broker's plugin does not read the id for a check.
    pub fn uses_client_id(&self) -> bool {
        self.patterns.is_some()
    }

    /// Whether the file has a `user NAME` block.
    pub fn has_user(&self, name: &str) -> bool {
        self.trie.literal(self.users, name).is_some()
    }

    /// Number of distinct `user` blocks.
    pub fn user_count(&self) -> usize {
        self.user_count
    }

    /// `pattern` rules in the file.
    pub fn pattern_count(&self) -> usize {
        self.pattern_count
    }

    /// `topic` rules in the file (anonymous and in `user` blocks).
    pub fn topic_rule_count(&self) -> usize {
        self.rule_count - self.pattern_count
    }

    /// A rule's line number and text (as [`Rule::line`] and [`Rule::text`]) from the kept
    /// file, without the rule records.
    fn rule_line(&self, id: RuleId) -> (u32, &str) {
        let Some(&(offset, line)) = self.places.get(id.0 as usize) else {
            return (0, "");
        };
        let rest = self.source.get(offset..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let text = std::str::from_utf8(&rest[..end]).unwrap_or_default();
        (
            line,
            text.trim_end_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']),
        )
    }

    /// Decides a READ or WRITE as Mosquitto 2.0 does, with the stricter `%c`/`%u` rules for
    /// allow patterns documented in the README (deny patterns apply wherever 2.0 applies
    /// them). SUBSCRIBE/UNSUBSCRIBE are allowed unless `check_subscribe`.
    ///
    /// READ/WRITE of something that is not a topic name (empty, or containing `+` or `#`) and
    /// SUBSCRIBE/UNSUBSCRIBE of an empty filter are denied ([`Reason::InvalidTopic`]).
    ///
    /// Allocation-free: this runs for every message published and every delivery.
    pub fn check(
        &self,
        client: &Client<'_>,
        topic: &str,
        access: Access,
        check_subscribe: bool,
    ) -> Decision {
        self.decide(client, Topic::new(topic), access, check_subscribe)
    }

    /// [`AclPolicy::check`] of a topic already scanned.
    #[inline]
    pub fn decide(
        &self,
        client: &Client<'_>,
        topic: Topic<'_>,
        access: Access,
        check_subscribe: bool,
    ) -> Decision {
        match access {
            Access::Read | Access::Write if !topic.is_name() => {
                Decision::deny(Reason::InvalidTopic)
            }
            Access::Read | Access::Write => self.check_topic(client, topic.as_str(), access),
            Access::Subscribe | Access::Unsubscribe if topic.as_str().is_empty() => {
                Decision::deny(Reason::InvalidTopic)
            }
            Access::Subscribe if check_subscribe => self.check_subscription(client, topic.as_str()),
            Access::Subscribe | Access::Unsubscribe => Decision::allow(Reason::SubscribeUnchecked),
        }
    }

    fn own_rules(&self, client: &Client<'_>) -> Option<NodeId> {
        match client.username {
            Some(name) => self.trie.literal(self.users, name),
            None => self.anonymous,
        }
    }

    fn check_topic(&self, client: &Client<'_>, topic: &str, access: Access) -> Decision {
        if let Some(own) = self.own_rules(client) {
            let mut hits = Hits::default();
            self.trie.match_plain(own, topic, &mut hits);
            if let Some(decision) = hits.decide(access) {
                return decision;
            }
        }
        self.check_patterns(client, |trie, patterns, subst, hits| {
            trie.match_topic(patterns, topic, subst, hits);
            hits.decide(access)
        })
    }

    /// The pattern phase shared by topic and subscription checks: Mosquitto's guards, then
    /// the pattern trie with the client's values.
    fn check_patterns(
        &self,
        client: &Client<'_>,
        decide: impl FnOnce(&Trie, NodeId, &Subst<'_>, &mut Hits) -> Option<Decision>,
    ) -> Decision {
        let Some(patterns) = self.patterns else {
            return Decision::deny(Reason::NoMatch);
        };
        // Mosquitto's guard (CVE-2017-7650), before the client id check as in 2.0.
        let subst = Subst::new(client.id.unwrap_or(""), client.username);
        if subst.has_wildcard() {
            return Decision::deny(Reason::DangerousIdentity).of_patterns();
        }
        if client.id.is_none() {
            return Decision::deny(Reason::NoClientId).of_patterns();
        }
        let mut hits = Hits::default();
        decide(&self.trie, patterns, &subst, &mut hits)
            .unwrap_or(Decision::deny(Reason::NoMatch))
            .of_patterns()
    }

    /// Optional SUBSCRIBE check: allowed when one read rule covers every topic the filter can
    /// match (so `#` is refused to a client that may read only `sensors/own/#`), unless a deny
    /// rule covers the whole filter. Denies that cover part of it still filter delivery.
    fn check_subscription(&self, client: &Client<'_>, filter: &str) -> Decision {
        let filter = strip_shared(filter);
        if crate::topic::check_filter(filter).is_err() {
            return Decision::deny(Reason::NoMatch);
        }
        if let Some(own) = self.own_rules(client) {
            if let Some(decision) = self.trie.match_filter(own, filter, &Subst::NONE) {
                return decision;
            }
        }
        self.check_patterns(client, |trie, patterns, subst, _| {
            trie.match_filter(patterns, filter, subst)
        })
    }
}

/// `$share/<group>/<filter>` is checked as `<filter>`: the broker passes the raw filter.
fn strip_shared(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_, inner)| inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The denial log's description, made from the kept file without the rule records, is
    /// the record's `file:line: text` (CRLF, tabs, comments, blank lines, no final newline).
    #[test]
    fn describe_matches_the_rule_records() {
        let text = "# c\r\n\r\ntopic read a/b \t\r\n  user bob\ntopic  deny   x/#\n\n\
                    pattern write %c/y\x0b\nuser al\ntopic z";
        let p = AclPolicy::parse(Path::new("f.acl"), text.as_bytes()).expect("parses");
        assert_eq!(p.rules().len(), 4);
        assert_eq!(p.pattern_count(), 1);
        assert_eq!(p.topic_rule_count(), 3);
        for (i, rule) in p.rules().iter().enumerate() {
            assert_eq!(
                p.describe(Reason::Rule(RuleId(i as u32))),
                format!("f.acl:{}: {}", rule.line, rule.text)
            );
        }
        assert_eq!(
            p.describe(Reason::Rule(RuleId(1))),
            "f.acl:5: topic  deny   x/#"
        );
    }
}
