//! A topic trie of ACL rules, keyed by level. A topic is matched by walking only the branches
//! that can match it (its literal level, `+`, `#`, and any `%c`/`%u` templates), so the cost
//! depends on the topic's depth, not on the number of rules.

use ahash::AHashMap;

use super::template::{Met, Template, Values};

/// The client's values for one walk over a rule list: deny patterns substitute with `deny`
/// (Mosquitto 2.0's textual substitution), allow patterns with `grant` (the stricter rules).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subst<'a> {
    pub(super) deny: Values<'a>,
    pub(super) grant: Values<'a>,
    /// Both substitute the same (the usual case: every value is safe), so a template is met
    /// once for deny and allow rules alike.
    pub(super) same: bool,
}

impl Subst<'_> {
    /// Whether the client id or username holds `+` or `#` (Mosquitto's "dangerous id").
    pub(crate) fn has_wildcard(&self) -> bool {
        self.deny.has_wildcard()
    }
}

impl<'a> Subst<'a> {
    /// For per-user rules, which have no placeholders.
    pub(crate) const NONE: Subst<'static> = Subst {
        deny: Values::NONE,
        grant: Values::NONE,
        same: true,
    };

    pub(crate) fn new(client_id: &'a str, username: Option<&'a str>) -> Subst<'a> {
        let deny = Values::denials(client_id, username);
        let grant = Values::grants(client_id, username);
        Subst {
            deny,
            grant,
            same: deny.same_as(&grant),
        }
    }
}

/// Which rules a walk collects below the templates it went through: a template met with the
/// deny values leads only to deny rules, one met with the grant values only to allow rules.
/// A const parameter of the walk, so the per-user walk (always `BOTH`) pays nothing for it.
type Want = u8;
const BOTH: Want = 0;
const DENY: Want = 1;
const GRANT: Want = 2;
use super::{Access, Decision, Reason, RuleAccess, RuleId};

/// The rules that end at one place in the trie, reduced to what a decision needs.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Terminal {
    /// The deny Mosquitto would meet first: denies are prepended, so the last in the file.
    deny: Option<RuleId>,
    /// The first rule in file order granting read / write.
    read: Option<RuleId>,
    write: Option<RuleId>,
}

impl Terminal {
    fn add(&mut self, access: RuleAccess, id: RuleId) {
        let first = |slot: &mut Option<RuleId>| *slot = Some(slot.map_or(id, |s| s.min(id)));
        match access {
            RuleAccess::Deny => self.deny = Some(self.deny.map_or(id, |d| d.max(id))),
            RuleAccess::Read => first(&mut self.read),
            RuleAccess::Write => first(&mut self.write),
            RuleAccess::ReadWrite => {
                first(&mut self.read);
                first(&mut self.write);
            }
        }
    }
}

/// Matches collected during one walk.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Hits(Terminal);

impl Hits {
    fn add<const WANT: Want>(&mut self, t: &Option<Terminal>) {
        if let Some(t) = t {
            let h = &mut self.0;
            if WANT != GRANT {
                h.deny = max_opt(h.deny, t.deny);
            }
            if WANT != DENY {
                h.read = min_opt(h.read, t.read);
                h.write = min_opt(h.write, t.write);
            }
        }
    }

    /// Mosquitto's order inside one rule list: any matching deny decides; then a match whose
    /// access includes the request; otherwise undecided.
    pub(super) fn decide(&self, access: Access) -> Option<Decision> {
        if let Some(id) = self.0.deny {
            return Some(Decision::deny(Reason::Rule(id)));
        }
        let grant = match access {
            Access::Read => self.0.read,
            Access::Write => self.0.write,
            Access::Subscribe | Access::Unsubscribe => None,
        };
        grant.map(|id| Decision::allow(Reason::Rule(id)))
    }
}

fn min_opt(a: Option<RuleId>, b: Option<RuleId>) -> Option<RuleId> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) | (None, x) => x,
    }
}

fn max_opt(a: Option<RuleId>, b: Option<RuleId>) -> Option<RuleId> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) | (None, x) => x,
    }
}

#[derive(Debug, Default)]
pub(super) struct Node {
    literal: AHashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    templates: Vec<(Template, Node)>,
    /// Rules whose filter ends exactly here.
    terminal: Option<Terminal>,
    /// Rules whose filter continues with `#` here: they match this level and everything below.
    hash: Option<Terminal>,
    /// The deny Mosquitto would meet first among every rule at or below this node (set by
    /// [`Node::finish`]); used when a deny template matches "anything" (see [`Met::Anything`]).
    subtree_deny: Option<RuleId>,
}

/// Splits off the first level of a topic: `("a", Some("b/c"))` for `a/b/c`.
///
/// A plain byte scan: topic levels are short, and `str::split_once` would go through the
/// generic char searcher on this hot path.
fn split_level(s: &str) -> (&str, Option<&str>) {
    match s.bytes().position(|b| b == b'/') {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    }
}

impl Node {
    /// Adds a rule. `templated` enables `%c`/`%u` levels (pattern rules only).
    pub(super) fn insert(&mut self, filter: &str, templated: bool, access: RuleAccess, id: RuleId) {
        let mut node = self;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" {
                node.hash
                    .get_or_insert_with(Terminal::default)
                    .add(access, id);
                return;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else if let Some(template) = templated.then(|| Template::parse(level)).flatten() {
                let at = match node.templates.iter().position(|(t, _)| *t == template) {
                    Some(at) => at,
                    None => {
                        node.templates.push((template, Node::default()));
                        node.templates.len() - 1
                    }
                };
                &mut node.templates[at].1
            } else {
                node.literal.entry(level.into()).or_default()
            };
            if levels.peek().is_none() {
                node.terminal
                    .get_or_insert_with(Terminal::default)
                    .add(access, id);
            }
        }
    }

    /// Trims spare capacity once all rules are in, and records each node's subtree deny.
    pub(super) fn finish(&mut self) {
        self.literal.shrink_to_fit();
        self.templates.shrink_to_fit();
        let mut deny = max_opt(
            self.terminal.and_then(|t| t.deny),
            self.hash.and_then(|t| t.deny),
        );
        for child in self.literal.values_mut() {
            child.finish();
            deny = max_opt(deny, child.subtree_deny);
        }
        if let Some(child) = self.plus.as_mut() {
            child.finish();
            deny = max_opt(deny, child.subtree_deny);
        }
        for (_, child) in self.templates.iter_mut() {
            child.finish();
            deny = max_opt(deny, child.subtree_deny);
        }
        self.subtree_deny = deny;
    }

    /// Collects every rule matching `topic`. A topic starting with `$` is matched only by
    /// rules whose first level is a literal starting with `$` (never `#` or `+`); deny rules
    /// also by a first-level template whose substituted text starts with `$` (Mosquitto 2.0
    /// checks the `$` of the substituted pattern).
    pub(super) fn match_topic(&self, topic: &str, subst: &Subst<'_>, hits: &mut Hits) {
        self.walk::<BOTH>(topic, topic.starts_with('$'), subst, hits);
    }

    fn walk<const WANT: Want>(
        &self,
        rest: &str,
        dollar_root: bool,
        s: &Subst<'_>,
        hits: &mut Hits,
    ) {
        let (level, tail) = split_level(rest);
        if let Some(child) = self.literal.get(level) {
            child.descend::<WANT>(tail, s, hits);
        }
        if !dollar_root {
            hits.add::<WANT>(&self.hash);
            if let Some(child) = self.plus.as_deref() {
                child.descend::<WANT>(tail, s, hits);
            }
        }
        if self.templates.is_empty() {
            return;
        }
        let denies = WANT != GRANT;
        let grants = WANT != DENY && !dollar_root;
        for (template, child) in &self.templates {
            if denies && grants && s.same {
                child.meet::<WANT>(template, rest, &s.deny, s, hits);
                continue;
            }
            if denies {
                child.meet::<DENY>(template, rest, &s.deny, s, hits);
            }
            if grants {
                child.meet::<GRANT>(template, rest, &s.grant, s, hits);
            }
        }
    }

    /// Goes on below `template` (self is its child) if it meets `rest` with `values`.
    fn meet<const WANT: Want>(
        &self,
        template: &Template,
        rest: &str,
        values: &Values<'_>,
        s: &Subst<'_>,
        hits: &mut Hits,
    ) {
        match template.meet(rest, values) {
            Met::No => {}
            Met::Rest(after) => self.descend::<WANT>(after, s, hits),
            Met::Anything if WANT != GRANT => {
                hits.0.deny = max_opt(hits.0.deny, self.subtree_deny);
            }
            Met::Anything => {}
        }
    }

    fn descend<const WANT: Want>(&self, tail: Option<&str>, s: &Subst<'_>, hits: &mut Hits) {
        match tail {
            Some(rest) => self.walk::<WANT>(rest, false, s, hits),
            None => {
                // The topic ends here: exact matches, and `x/#` matching its parent `x`.
                hits.add::<WANT>(&self.terminal);
                hits.add::<WANT>(&self.hash);
            }
        }
    }

    /// Subscription check for one rule list: a deny covering the whole filter decides deny;
    /// a read grant covering the whole filter decides allow; otherwise undecided. "Covering"
    /// is Mosquitto 2.1's `mosquitto_sub_matches_acl`: every topic the filter can match.
    pub(super) fn match_filter(&self, filter: &str, s: &Subst<'_>) -> Option<Decision> {
        let dollar = filter.starts_with('$');
        // Deny rules with the deny values (templates may reach a `$` filter), grants with the
        // grant values (never through a template at the first level of a `$` filter).
        let deny = self.covering(filter, dollar, true, &s.deny, |t| t.deny, max_opt);
        if let Some(id) = deny {
            return Some(Decision::deny(Reason::Rule(id)));
        }
        self.covering(filter, dollar, false, &s.grant, |t| t.read, min_opt)
            .map(|id| Decision::allow(Reason::Rule(id)))
    }

    /// The rule (as `pick` selects from a terminal, `best` between two) that matches every
    /// topic the filter can match. `dollar_root` at the root for `$` filters, as in
    /// [`Node::match_topic`]; `dollar_templates`: templates may still match there.
    fn covering(
        &self,
        filter: &str,
        dollar_root: bool,
        dollar_templates: bool,
        values: &Values<'_>,
        pick: fn(&Terminal) -> Option<RuleId>,
        best: fn(Option<RuleId>, Option<RuleId>) -> Option<RuleId>,
    ) -> Option<RuleId> {
        let (level, tail) = split_level(filter);
        let mut found = None;
        if !dollar_root {
            found = self.hash.as_ref().and_then(pick);
        }
        if level == "#" {
            return found;
        }
        let at_end = |child: &Node, tail: Option<&str>| match tail {
            None => best(
                child.terminal.as_ref().and_then(pick),
                child.hash.as_ref().and_then(pick),
            ),
            Some(rest) => child.covering(rest, false, dollar_templates, values, pick, best),
        };
        if level != "+" {
            if let Some(child) = self.literal.get(level) {
                found = best(found, at_end(child, tail));
            }
            if !dollar_root || dollar_templates {
                for (template, child) in &self.templates {
                    match template.meet(filter, values) {
                        Met::No => {}
                        Met::Rest(after) => found = best(found, at_end(child, after)),
                        // Only deny values match "anything": the subtree's deny covers.
                        Met::Anything if dollar_templates => {
                            found = best(found, child.subtree_deny)
                        }
                        Met::Anything => {}
                    }
                }
            }
        }
        if !dollar_root {
            if let Some(child) = self.plus.as_deref() {
                found = best(found, at_end(child, tail));
            }
        }
        found
    }
}
