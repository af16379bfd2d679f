//! Mosquitto ACL files: parsed with Mosquitto 2.0's grammar, compiled once into per-user topic
//! tries and a pattern trie, then decided without allocation.

mod parse;
mod template;
mod trie;

use std::path::{Path, PathBuf};

use ahash::AHashMap;

pub use parse::{AclError, RuleAccess, RuleKind};

use crate::error::{LoadError, Located};
use trie::{Builder, Hits, NodeId, Subst, Trie};

/// What the broker asks about (`MOSQ_ACL_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
    Subscribe,
    Unsubscribe,
}

impl Access {
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
    pub id: Option<&'a str>,
    pub username: Option<&'a str>,
}

/// Index of a rule in [`AclPolicy::rules`], in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleId(pub u32);

/// One `topic` or `pattern` line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// 1-based line number.
    pub line: usize,
    pub kind: RuleKind,
    pub access: RuleAccess,
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

/// The answer to one ACL question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
}

impl Decision {
    const fn deny(reason: Reason) -> Self {
        Decision {
            allowed: false,
            reason,
        }
    }
    const fn allow(reason: Reason) -> Self {
        Decision {
            allowed: true,
            reason,
        }
    }
}

/// A compiled ACL file.
#[derive(Debug)]
pub struct AclPolicy {
    file: PathBuf,
    rules: Vec<Rule>,
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
}

impl AclPolicy {
    /// Parses and compiles an ACL file's contents; `file` names it in errors.
    pub fn parse(file: &Path, text: &[u8]) -> Result<AclPolicy, Located<AclError>> {
        let parsed = parse::parse(file, text)?;
        let mut users: AHashMap<Box<str>, Builder> = AHashMap::default();
        let mut anonymous: Option<Builder> = None;
        let mut patterns: Option<Builder> = None;
        for name in &parsed.users {
            users.entry(name.as_str().into()).or_default();
        }
        for (index, rule) in parsed.rules.iter().enumerate() {
            let id = RuleId(index as u32);
            let target = match (rule.kind, &rule.user) {
                (RuleKind::Pattern, _) => patterns.get_or_insert_with(Builder::default),
                (RuleKind::Topic, None) => anonymous.get_or_insert_with(Builder::default),
                (RuleKind::Topic, Some(user)) => users.entry(user.as_str().into()).or_default(),
            };
            target.insert(&rule.topic, rule.kind == RuleKind::Pattern, rule.access, id);
        }
        let mut trie = Trie::default();
        let roots = trie.add_named(users);
        let anonymous = anonymous.map(|b| trie.add(b));
        let patterns = patterns.map(|b| trie.add(b));
        trie.shrink();
        Ok(AclPolicy {
            file: file.to_path_buf(),
            user_count: parsed.users.len(),
            rules: parsed.rules,
            trie,
            users: roots,
            anonymous,
            patterns,
        })
    }

    /// Reads, parses and compiles an ACL file.
    pub fn load(path: &Path) -> Result<AclPolicy, LoadError> {
        let text = crate::error::read_policy_file(path)?;
        Ok(Self::parse(path, &text)?)
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Every rule, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn rule(&self, id: RuleId) -> &Rule {
        &self.rules[id.0 as usize]
    }

    /// Says why a decision came out as it did: the deciding rule as `file:line: text`, or the
    /// guard that refused.
    pub fn describe(&self, reason: Reason) -> String {
        match reason {
            Reason::Rule(id) => {
                let rule = self.rule(id);
                format!("{}:{}: {}", self.file.display(), rule.line, rule.text)
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

    pub fn pattern_count(&self) -> usize {
        self.rules
            .iter()
            .filter(|r| r.kind == RuleKind::Pattern)
            .count()
    }

    pub fn topic_rule_count(&self) -> usize {
        self.rules.len() - self.pattern_count()
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
        match access {
            Access::Read | Access::Write if !crate::topic::is_topic_name(topic) => {
                Decision::deny(Reason::InvalidTopic)
            }
            Access::Read | Access::Write => self.check_topic(client, topic, access),
            Access::Subscribe | Access::Unsubscribe if topic.is_empty() => {
                Decision::deny(Reason::InvalidTopic)
            }
            Access::Subscribe if check_subscribe => self.check_subscription(client, topic),
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
            self.trie.match_topic(own, topic, &Subst::NONE, &mut hits);
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
            return Decision::deny(Reason::DangerousIdentity);
        }
        if client.id.is_none() {
            return Decision::deny(Reason::NoClientId);
        }
        let mut hits = Hits::default();
        decide(&self.trie, patterns, &subst, &mut hits).unwrap_or(Decision::deny(Reason::NoMatch))
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
