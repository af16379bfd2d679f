//! A topic trie of ACL rules, keyed by level. A topic is matched by walking only the branches
//! that can match it (its literal level, `+`, `#`, and any `%c`/`%u` templates), so the cost
//! depends on the topic's depth, not on the number of rules.

use ahash::AHashMap;

use super::template::{Template, Values};
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
    fn add(&mut self, t: &Option<Terminal>) {
        if let Some(t) = t {
            let h = &mut self.0;
            h.deny = max_opt(h.deny, t.deny);
            h.read = min_opt(h.read, t.read);
            h.write = min_opt(h.write, t.write);
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
    /// The first read-granting rule anywhere at or below this node (for subscription checks).
    subtree_read: Option<RuleId>,
}

/// Splits off the first level of a topic: `("a", Some("b/c"))` for `a/b/c`.
fn split_level(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        Some((level, rest)) => (level, Some(rest)),
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
                node.hash.get_or_insert_with(Terminal::default).add(access, id);
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
                node.terminal.get_or_insert_with(Terminal::default).add(access, id);
            }
        }
    }

    /// Computes the per-subtree summaries once all rules are in.
    pub(super) fn finish(&mut self) -> Option<RuleId> {
        let mut best = min_opt(
            self.terminal.and_then(|t| t.read),
            self.hash.and_then(|t| t.read),
        );
        for child in self.literal.values_mut() {
            best = min_opt(best, child.finish());
        }
        if let Some(child) = self.plus.as_mut() {
            best = min_opt(best, child.finish());
        }
        for (_, child) in self.templates.iter_mut() {
            best = min_opt(best, child.finish());
        }
        self.literal.shrink_to_fit();
        self.templates.shrink_to_fit();
        self.subtree_read = best;
        best
    }

    /// Collects every rule matching `topic`. A topic starting with `$` is matched only by
    /// rules whose first level is that literal (never `#`, `+` or a template).
    pub(super) fn match_topic(&self, topic: &str, values: &Values<'_>, hits: &mut Hits) {
        self.walk(topic, topic.starts_with('$'), values, hits);
    }

    fn walk(&self, rest: &str, literal_only: bool, values: &Values<'_>, hits: &mut Hits) {
        let (level, tail) = split_level(rest);
        if let Some(child) = self.literal.get(level) {
            child.descend(tail, values, hits);
        }
        if literal_only {
            return;
        }
        hits.add(&self.hash);
        if let Some(child) = self.plus.as_deref() {
            child.descend(tail, values, hits);
        }
        for (template, child) in &self.templates {
            if template.matches(level, values) {
                child.descend(tail, values, hits);
            }
        }
    }

    fn descend(&self, tail: Option<&str>, values: &Values<'_>, hits: &mut Hits) {
        match tail {
            Some(rest) => self.walk(rest, false, values, hits),
            None => {
                // The topic ends here: exact matches, and `x/#` matching its parent `x`.
                hits.add(&self.terminal);
                hits.add(&self.hash);
            }
        }
    }

    /// Subscription check for one rule list: a deny covering the whole filter decides deny;
    /// a read grant overlapping the filter decides allow; otherwise undecided.
    pub(super) fn match_filter(&self, filter: &str, values: &Values<'_>) -> Option<Decision> {
        let dollar = filter.starts_with('$');
        if let Some(id) = self.covering_deny(filter, dollar, values) {
            return Some(Decision::deny(Reason::Rule(id)));
        }
        self.overlapping_read(filter, true, dollar, values)
            .map(|id| Decision::allow(Reason::Rule(id)))
    }

    /// A deny rule that matches every topic the filter can match.
    fn covering_deny(&self, filter: &str, literal_only: bool, values: &Values<'_>) -> Option<RuleId> {
        let (level, tail) = split_level(filter);
        if !literal_only {
            if let Some(id) = self.hash.and_then(|t| t.deny) {
                return Some(id);
            }
        }
        if level == "#" {
            return None;
        }
        let at_end = |child: &Node| match tail {
            None => max_opt(
                child.terminal.and_then(|t| t.deny),
                child.hash.and_then(|t| t.deny),
            ),
            Some(rest) => child.covering_deny(rest, false, values),
        };
        let mut found = None;
        if level != "+" {
            if let Some(child) = self.literal.get(level) {
                found = max_opt(found, at_end(child));
            }
            if !literal_only {
                for (template, child) in &self.templates {
                    if template.matches(level, values) {
                        found = max_opt(found, at_end(child));
                    }
                }
            }
        }
        if !literal_only {
            if let Some(child) = self.plus.as_deref() {
                found = max_opt(found, at_end(child));
            }
        }
        found
    }

    /// A read-granting rule that matches at least one topic the filter can match.
    fn overlapping_read(
        &self,
        filter: &str,
        root: bool,
        literal_only: bool,
        values: &Values<'_>,
    ) -> Option<RuleId> {
        let (level, tail) = split_level(filter);
        let wildcard_rules = !(root && literal_only);
        let hash_read = if wildcard_rules {
            self.hash.and_then(|t| t.read)
        } else {
            None
        };
        if level == "#" {
            // Everything below this node, and (except at the root) the parent topic itself.
            let mut found = hash_read;
            if !root {
                found = min_opt(found, self.terminal.and_then(|t| t.read));
            }
            for (name, child) in &self.literal {
                if !(root && name.starts_with('$')) {
                    found = min_opt(found, child.subtree_read);
                }
            }
            if let Some(child) = self.plus.as_deref() {
                found = min_opt(found, child.subtree_read);
            }
            for (template, child) in &self.templates {
                if template.can_match(values) {
                    found = min_opt(found, child.subtree_read);
                }
            }
            return found;
        }
        let at_end = |child: &Node| match tail {
            None => min_opt(
                child.terminal.and_then(|t| t.read),
                child.hash.and_then(|t| t.read),
            ),
            Some(rest) => child.overlapping_read(rest, false, false, values),
        };
        let mut found = hash_read;
        if level == "+" {
            for (name, child) in &self.literal {
                if !(root && name.starts_with('$')) {
                    found = min_opt(found, at_end(child));
                }
            }
            for (template, child) in &self.templates {
                if template.can_match(values) {
                    found = min_opt(found, at_end(child));
                }
            }
        } else {
            if let Some(child) = self.literal.get(level) {
                found = min_opt(found, at_end(child));
            }
            if wildcard_rules {
                for (template, child) in &self.templates {
                    if template.matches(level, values) {
                        found = min_opt(found, at_end(child));
                    }
                }
            }
        }
        if wildcard_rules {
            if let Some(child) = self.plus.as_deref() {
                found = min_opt(found, at_end(child));
            }
        }
        found
    }
}
