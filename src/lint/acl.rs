//! Findings about the rules of a parsed ACL file.

use std::path::Path;

use super::{codes, Finding};
use crate::acl::{AclPolicy, Rule, RuleAccess, RuleKind, UserLine};
use crate::topic::filter_covers;

/// The `user` block a pattern stands among the rules of: a `topic` rule of the same block
/// follows it. (Patterns after the last rule of a block, typically at the end of the file, are
/// Mosquitto's usual layout and are not reported.)
fn pattern_amid_user_rules<'u>(
    rules: &[Rule],
    users: &'u [UserLine],
    pattern: &Rule,
) -> Option<&'u UserLine> {
    let index = users.iter().take_while(|u| u.line < pattern.line).count();
    let block = users.get(index.checked_sub(1)?)?;
    let end = users.get(index).map_or(usize::MAX, |next| next.line);
    rules
        .iter()
        .any(|r| r.kind == RuleKind::Topic && r.line > pattern.line && r.line < end)
        .then_some(block)
}

/// Warnings about a parsed ACL file.
pub fn lint_acl(policy: &AclPolicy) -> Vec<Finding> {
    let users = policy.user_lines();
    let file = policy.file();
    let mut out = Vec::new();
    let rules = policy.rules();

    for rule in rules {
        if let Some(message) = access_word_as_topic(rule) {
            out.push(Finding::warning(
                file,
                rule.line,
                codes::ACCESS_WORD_AS_TOPIC,
                message,
            ));
        }
        let substitutes = rule.topic.contains("%c") || rule.topic.contains("%u");
        match rule.kind {
            RuleKind::Pattern if !substitutes => out.push(Finding::warning(
                file,
                rule.line,
                codes::PATTERN_WITHOUT_SUBSTITUTION,
                format!(
                    "pattern `{}` has no %c or %u: it applies the same to every client, \
                     whatever its username (use `topic` for rules of one user or of anonymous clients)",
                    rule.topic
                ),
            )),
            RuleKind::Topic if substitutes => out.push(Finding::warning(
                file,
                rule.line,
                codes::SUBSTITUTION_IN_TOPIC,
                format!(
                    "`topic` rules do not substitute %c/%u: `{}` matches only a topic with \
                     that literal text (use `pattern`)",
                    rule.topic
                ),
            )),
            _ => {}
        }
        if rule.kind == RuleKind::Pattern {
            if let Some(block) = pattern_amid_user_rules(rules, users, rule) {
                out.push(Finding::warning(
                    file,
                    rule.line,
                    codes::PATTERN_IN_USER_BLOCK,
                    format!(
                        "pattern rules apply to every client: this one is not limited to \
                         `user {}` (line {}) although it stands among its rules",
                        block.name, block.line
                    ),
                ));
            }
        }
    }

    // Shadowing and duplicates, within each list the broker consults as one: a user's topic
    // rules (all its blocks), the anonymous topic rules, the patterns.
    let mut lists: Vec<(RuleKind, Option<&str>)> = Vec::new();
    for rule in rules {
        let key = (rule.kind, rule.user.as_deref());
        if !lists.contains(&key) {
            lists.push(key);
        }
    }
    for key in lists {
        let list: Vec<&Rule> = rules
            .iter()
            .filter(|r| (r.kind, r.user.as_deref()) == key)
            .collect();
        out.extend(lint_list(file, &list));
    }

    // Users with no topic rules at all (reported once, at their first `user` line).
    let mut reported: Vec<&str> = Vec::new();
    for user in users {
        if reported.contains(&user.name.as_str()) {
            continue;
        }
        reported.push(&user.name);
        let has_rules = rules
            .iter()
            .any(|r| r.kind == RuleKind::Topic && r.user.as_deref() == Some(user.name.as_str()));
        if !has_rules {
            let fallback = if policy.pattern_count() > 0 {
                "only the pattern rules apply to it"
            } else {
                "and there are no pattern rules: it is denied everything"
            };
            out.push(Finding::warning(
                file,
                user.line,
                codes::USER_WITHOUT_RULES,
                format!("`user {}` has no topic rules; {fallback}", user.name),
            ));
        }
    }

    out.sort_by_key(|f| f.line);
    out
}

/// `topic read` (nothing after the access word): Mosquitto, like the plugin, reads the word as
/// the topic, with access readwrite.
fn access_word_as_topic(rule: &Rule) -> Option<String> {
    let words: Vec<&str> = rule.text.split_whitespace().collect();
    let is_word = matches!(rule.topic.as_str(), "read" | "write" | "readwrite" | "deny");
    (is_word && rule.access == RuleAccess::ReadWrite && words.len() == 2).then(|| {
        format!(
            "`{}` has no topic: Mosquitto reads it as readwrite on the topic named \"{}\"",
            words.join(" "),
            rule.topic
        )
    })
}

/// Duplicates and allows shadowed by a deny, within one list of rules. Deny rules are checked
/// before allow rules wherever they stand in the list, so an allow whose every topic a deny
/// also matches never grants anything.
fn lint_list(file: &Path, list: &[&Rule]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, rule) in list.iter().enumerate() {
        if let Some(first) = list[..i]
            .iter()
            .find(|r| r.access == rule.access && r.topic == rule.topic)
        {
            out.push(Finding::warning(
                file,
                rule.line,
                codes::DUPLICATE_RULE,
                format!("duplicate of line {}: {}", first.line, first.text),
            ));
            continue;
        }
        if rule.access == RuleAccess::Deny {
            continue;
        }
        if let Some(deny) = list
            .iter()
            .find(|r| r.access == RuleAccess::Deny && filter_covers(&r.topic, &rule.topic))
        {
            out.push(Finding::warning(
                file,
                rule.line,
                codes::SHADOWED_BY_DENY,
                format!(
                    "never grants anything: every topic it matches is denied by line {}: {} \
                     (deny rules are checked first)",
                    deny.line, deny.text
                ),
            ));
        }
    }
    out
}
