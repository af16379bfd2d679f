//! The ACL file grammar, line by line as Mosquitto 2.0 reads it.
//!
//! Differences, all stricter: a NUL byte or invalid UTF-8 is an error with its line (Mosquitto
//! silently stops at a NUL), and every error names the file and line.

use std::path::Path;

use super::Rule;
use crate::error::Located;
use crate::topic::{check_filter, FilterError};

/// Why an ACL line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A line that is not a comment, `topic`, `pattern` or `user`.
    #[error("invalid line: expected `topic`, `pattern` or `user` (keywords are lower case, separated by spaces, and a comment needs '#' in the first column)")]
    InvalidLine,
    /// `topic`/`pattern` (the keyword given) with nothing after it.
    #[error("empty topic after `{0}`")]
    EmptyTopic(&'static str),
    /// An access word other than read, write, readwrite or deny before a topic.
    #[error("invalid topic access type \"{0}\": expected read, write, readwrite or deny")]
    InvalidAccess(String),
    /// `user` with no name.
    #[error("missing username after `user`")]
    MissingUsername,
    /// A topic that is not a valid MQTT topic filter.
    #[error("invalid topic filter \"{topic}\": {reason}")]
    InvalidTopic {
        /// The topic as written.
        topic: String,
        /// What is wrong with it.
        reason: FilterError,
    },
    /// A NUL byte anywhere in the file.
    #[error("NUL byte in the file (Mosquitto would silently ignore every rule after it)")]
    Nul,
    /// A line that is not valid UTF-8.
    #[error("line is not valid UTF-8")]
    NotUtf8,
}

/// `topic` (per user / anonymous) or `pattern` (everyone, with `%c`/`%u`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// `topic`: in the block of the `user` above it, or anonymous before the first `user`.
    Topic,
    /// `pattern`: for every client, with `%c`/`%u` substituted.
    Pattern,
}

/// The access word of a rule. `topic X` alone is `ReadWrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleAccess {
    /// `read`: delivery (and, with `check_subscribe`, subscription).
    Read,
    /// `write`: publishing.
    Write,
    /// `readwrite`, or no access word.
    ReadWrite,
    /// `deny`: refuses both, checked before the allow rules of its list.
    Deny,
}

impl RuleAccess {
    /// Whether a matching rule with this access allows READ.
    pub fn grants_read(self) -> bool {
        matches!(self, RuleAccess::Read | RuleAccess::ReadWrite)
    }
    /// Whether a matching rule with this access allows WRITE.
    pub fn grants_write(self) -> bool {
        matches!(self, RuleAccess::Write | RuleAccess::ReadWrite)
    }
    /// The access word as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAccess::Read => "read",
            RuleAccess::Write => "write",
            RuleAccess::ReadWrite => "readwrite",
            RuleAccess::Deny => "deny",
        }
    }
}

/// A `user NAME` line of the ACL file (a name may have several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLine {
    /// The username, as the parser trimmed it.
    pub name: String,
    /// 1-based line number.
    pub line: usize,
}

/// What a rule or `user` line says, borrowed from the file's text.
#[derive(Debug, Clone, Copy)]
pub(super) enum Line<'t> {
    /// `user NAME`: the name, trimmed.
    User(&'t str),
    /// `topic` / `pattern`: the filter as written, checked.
    Rule {
        kind: RuleKind,
        access: RuleAccess,
        topic: &'t str,
    },
}

/// Where a [`Line`] stands in the file.
#[derive(Debug, Clone, Copy)]
pub(super) struct At<'t> {
    /// 1-based line number.
    pub line: usize,
    /// Byte offset of the line's start in the text.
    pub offset: usize,
    /// The line as written, trailing whitespace removed.
    pub text: &'t str,
}

/// C `isspace` in the "C" locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Reads the file line by line, handing every `user` and rule line to `each` in file order;
/// stops at the first bad line. Nothing is copied: what `each` gets borrows from `text`.
pub(super) fn scan<'t>(
    file: &Path,
    text: &'t [u8],
    mut each: impl FnMut(At<'t>, Line<'t>),
) -> Result<(), Located<AclError>> {
    // When the whole text has no NUL and is UTF-8, so has every line ('\n' never occurs
    // inside a multi-byte character), and the lines are cut from it without checking each;
    // otherwise each line is checked in turn, so the first bad line is the one reported.
    let whole = if text.contains(&0) {
        None
    } else {
        std::str::from_utf8(text).ok()
    };
    let mut offset = 0usize;
    let mut line_no = 0usize;
    loop {
        line_no += 1;
        let rest = text.get(offset..).unwrap_or_default();
        let len = find_newline(rest);
        let raw = &rest[..len.unwrap_or(rest.len())];
        let err = |e| Located::new(file, line_no, e);
        let line = match whole.and_then(|s| s.get(offset..offset + raw.len())) {
            Some(line) => line,
            None => {
                if raw.contains(&0) {
                    return Err(err(AclError::Nul));
                }
                std::str::from_utf8(raw).map_err(|_| err(AclError::NotUtf8))?
            }
        };
        let line = line.trim_end_matches(is_c_space);
        if let Some(what) = read_line(line).map_err(err)? {
            each(
                At {
                    line: line_no,
                    offset,
                    text: line,
                },
                what,
            );
        }
        match len {
            Some(len) => offset += len + 1,
            None => return Ok(()),
        }
    }
}

/// Where the first `\n` of `s` is. Eight bytes at a time (the "has a zero byte" test on the
/// word XOR `\n`): a line is a few words.
fn find_newline(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_le_bytes([b'\n'; 8]);
    let mut at = 0;
    while let Some(word) = s.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let x = u64::from_le_bytes(*word) ^ NEWLINES;
        // The lowest flagged byte is exactly the first zero byte (borrows only go upwards).
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    s.get(at..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| at + p)
}

/// One line of the file, trailing whitespace removed: `None` for a blank line or a comment.
fn read_line(line: &str) -> Result<Option<Line<'_>>, AclError> {
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    // strtok(" "): leading spaces skipped; only the space character separates.
    let body = line.trim_start_matches(' ');
    if body.is_empty() {
        return Ok(None);
    }
    let (keyword, rest) = match split_space(body) {
        Some((k, r)) => (k, r.trim_start_matches(' ')),
        None => (body, ""),
    };
    let kind = match keyword {
        "topic" => RuleKind::Topic,
        "pattern" => RuleKind::Pattern,
        "user" => {
            let name = rest.trim_matches(is_c_space);
            if name.is_empty() {
                return Err(AclError::MissingUsername);
            }
            return Ok(Some(Line::User(name)));
        }
        _ => return Err(AclError::InvalidLine),
    };
    if rest.is_empty() {
        return Err(AclError::EmptyTopic(keyword_of(kind)));
    }
    let (access, topic) = match split_space(rest) {
        None => (RuleAccess::ReadWrite, rest),
        Some((word, topic)) => {
            let access = match word {
                "read" => RuleAccess::Read,
                "write" => RuleAccess::Write,
                "readwrite" => RuleAccess::ReadWrite,
                "deny" => RuleAccess::Deny,
                other => return Err(AclError::InvalidAccess(other.to_string())),
            };
            (access, topic.trim_matches(is_c_space))
        }
    };
    check_filter(topic).map_err(|reason| AclError::InvalidTopic {
        topic: topic.to_string(),
        reason,
    })?;
    Ok(Some(Line::Rule {
        kind,
        access,
        topic,
    }))
}

/// `s.split_once(' ')`, as a plain byte scan.
fn split_space(s: &str) -> Option<(&str, &str)> {
    let at = s.bytes().position(|b| b == b' ')?;
    Some((s.get(..at)?, s.get(at + 1..)?))
}

fn keyword_of(kind: RuleKind) -> &'static str {
    match kind {
        RuleKind::Topic => "topic",
        RuleKind::Pattern => "pattern",
    }
}

/// Every rule of the file as a full record, in file order (for the tools; loading a policy
/// uses [`scan`] and keeps no records).
pub(super) fn rules(file: &Path, text: &[u8]) -> Result<Vec<Rule>, Located<AclError>> {
    let mut rules = Vec::new();
    let mut current_user: Option<&str> = None;
    scan(file, text, |at, line| match line {
        Line::User(name) => current_user = Some(name),
        Line::Rule {
            kind,
            access,
            topic,
        } => rules.push(Rule {
            line: at.line,
            kind,
            access,
            topic: topic.to_string(),
            user: match kind {
                RuleKind::Topic => current_user.map(str::to_string),
                RuleKind::Pattern => None,
            },
            text: at.text.to_string(),
        }),
    })?;
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::super::{Access, AclPolicy, Client};
    use super::*;

    fn error(text: &[u8]) -> (usize, AclError) {
        let e = AclPolicy::parse(Path::new("f.acl"), text).expect_err("refused");
        (e.line, e.error)
    }

    /// The parser before it scanned into borrowed records, line by line with a `String` per
    /// field: what the scanner must still say, errors included.
    #[allow(clippy::type_complexity)]
    fn reference(
        file: &Path,
        text: &[u8],
    ) -> Result<(Vec<Rule>, Vec<UserLine>), Located<AclError>> {
        let mut rules = Vec::new();
        let mut user_lines = Vec::new();
        let mut current_user: Option<String> = None;
        for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line_no = index + 1;
            let err = |e| Located::new(file, line_no, e);
            if raw.contains(&0) {
                return Err(err(AclError::Nul));
            }
            let line = std::str::from_utf8(raw).map_err(|_| err(AclError::NotUtf8))?;
            let line = line.trim_end_matches(is_c_space);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let body = line.trim_start_matches(' ');
            if body.is_empty() {
                continue;
            }
            let (keyword, rest) = match body.split_once(' ') {
                Some((k, r)) => (k, r.trim_start_matches(' ')),
                None => (body, ""),
            };
            match keyword {
                "topic" | "pattern" => {
                    let kind = if keyword == "topic" {
                        RuleKind::Topic
                    } else {
                        RuleKind::Pattern
                    };
                    if rest.is_empty() {
                        return Err(err(AclError::EmptyTopic(keyword_of(kind))));
                    }
                    let (access, topic) = match rest.split_once(' ') {
                        None => (RuleAccess::ReadWrite, rest),
                        Some((word, topic)) => {
                            let access = match word {
                                "read" => RuleAccess::Read,
                                "write" => RuleAccess::Write,
                                "readwrite" => RuleAccess::ReadWrite,
                                "deny" => RuleAccess::Deny,
                                other => {
                                    return Err(err(AclError::InvalidAccess(other.to_string())))
                                }
                            };
                            (access, topic.trim_matches(is_c_space))
                        }
                    };
                    check_filter(topic).map_err(|reason| {
                        err(AclError::InvalidTopic {
                            topic: topic.to_string(),
                            reason,
                        })
                    })?;
                    rules.push(Rule {
                        line: line_no,
                        kind,
                        access,
                        topic: topic.to_string(),
                        user: match kind {
                            RuleKind::Topic => current_user.clone(),
                            RuleKind::Pattern => None,
                        },
                        text: line.to_string(),
                    });
                }
                "user" => {
                    let name = rest.trim_matches(is_c_space);
                    if name.is_empty() {
                        return Err(err(AclError::MissingUsername));
                    }
                    user_lines.push(UserLine {
                        name: name.to_string(),
                        line: line_no,
                    });
                    current_user = Some(name.to_string());
                }
                _ => return Err(err(AclError::InvalidLine)),
            }
        }
        Ok((rules, user_lines))
    }

    /// Pieces of a line: leading spaces, keyword, separator, access word, filter or name,
    /// trailing whitespace. Mostly valid, so that many texts parse.
    const LEADS: &[&[u8]] = &[b"", b"", b"", b" ", b"  "];
    const KEYWORDS: &[&[u8]] = &[
        b"topic", b"topic", b"pattern", b"user", b"user", b"# c", b"", b"bogus", b"Topic",
    ];
    const SEPARATORS: &[&[u8]] = &[b" ", b" ", b" ", b"  ", b"\t", b""];
    const WORDS: &[&[u8]] = &[
        b"",
        b"",
        b"read ",
        b"write ",
        b"readwrite ",
        b"deny ",
        b"deny  ",
        b"bad ",
    ];
    const FILTERS: &[&[u8]] = &[
        b"a/b",
        b"bob",
        b"#",
        b"x/#",
        b"a/+/c",
        b"%c/%u",
        b"+",
        b"a#",
        b"",
        b"\xc3\xa9/x",
        b"\xff",
        b"\xc3",
        b"a\0b",
        b"a b",
    ];
    const TRAILS: &[&[u8]] = &[b"", b"", b"", b" ", b"\t", b"\r", b" \x0b", b"\n"];

    fn line() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::strategy::Strategy;
        (
            0..LEADS.len(),
            0..KEYWORDS.len(),
            0..SEPARATORS.len(),
            0..WORDS.len(),
            0..FILTERS.len(),
            0..TRAILS.len(),
        )
            .prop_map(|(l, k, s, w, f, t)| {
                [
                    LEADS[l],
                    KEYWORDS[k],
                    SEPARATORS[s],
                    WORDS[w],
                    FILTERS[f],
                    TRAILS[t],
                ]
                .concat()
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]
        /// Records, user lines, places and errors are the reference parser's, on texts made of
        /// keywords, filters, spaces, newlines and bad bytes.
        #[test]
        fn scanner_agrees_with_the_reference(
            lines in proptest::collection::vec(line(), 0..12),
            final_newline: bool,
        ) {
            let mut text = lines.join(&b'\n');
            if final_newline {
                text.push(b'\n');
            }
            let file = Path::new("f.acl");
            let policy = AclPolicy::parse(file, &text);
            match reference(file, &text) {
                Err(e) => {
                    proptest::prop_assert_eq!(policy.err(), Some(e.clone()));
                    proptest::prop_assert_eq!(super::rules(file, &text).err(), Some(e));
                }
                Ok((rules, user_lines)) => {
                    let policy = policy.expect("the reference parsed it");
                    proptest::prop_assert_eq!(super::rules(file, &text).ok(), Some(rules.clone()));
                    proptest::prop_assert_eq!(policy.rules(), &rules[..]);
                    proptest::prop_assert_eq!(policy.user_lines(), &user_lines[..]);
                    for (i, rule) in rules.iter().enumerate() {
                        proptest::prop_assert_eq!(
                            policy.describe(super::super::Reason::Rule(super::super::RuleId(i as u32))),
                            format!("f.acl:{}: {}", rule.line, rule.text)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn find_newline_agrees_with_a_byte_search() {
        let texts: &[&[u8]] = &[
            b"",
            b"\n",
            b"abc",
            b"abcdefg\n",
            b"abcdefgh\n",
            b"abcdefghijklmnopq\nr\n",
            b"\x8a\x0a\xff\x0b",
            b"0123456789abcdef",
            b"0123456789abcdef0123\n",
        ];
        for text in texts {
            for start in 0..text.len() {
                let s = &text[start..];
                assert_eq!(find_newline(s), s.iter().position(|&b| b == b'\n'), "{s:?}");
            }
        }
    }

    /// The first bad line is the one reported, whether the bad bytes (NUL, invalid UTF-8) come
    /// before or after a line with a syntax error.
    #[test]
    fn first_bad_line_wins() {
        assert_eq!(
            error(b"topic a\nbogus\ntopic \xff\n"),
            (2, AclError::InvalidLine)
        );
        assert_eq!(
            error(b"topic a\nbogus\ntopic b\0\n"),
            (2, AclError::InvalidLine)
        );
        assert_eq!(error(b"topic a\ntopic b\0\nbogus\n"), (2, AclError::Nul));
        assert_eq!(error(b"topic \xff\nbogus\n"), (1, AclError::NotUtf8));
        assert_eq!(
            error(b"user \xc3\xa9\ntopic \xc3\xbc/#\nuser\n"),
            (3, AclError::MissingUsername)
        );
        // A character cut by nothing but itself: the text is checked whole, then per line.
        assert_eq!(error(b"topic a\n\xc3\ntopic b\n"), (2, AclError::NotUtf8));
    }

    /// The records the tools get say what the compiled policy says: user blocks (repeated
    /// ones too), the anonymous section, patterns, lines and offsets.
    #[test]
    fn records_follow_the_blocks() {
        let text = "topic read anon/#\nuser bob\ntopic b/1\n\npattern write p/%c\nuser al\n\
                    topic a/1\nuser bob\ntopic deny b/2\n";
        let rules = super::rules(Path::new("f.acl"), text.as_bytes()).expect("parses");
        let summary: Vec<_> = rules
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.kind,
                    r.access,
                    r.topic.as_str(),
                    r.user.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (1, RuleKind::Topic, RuleAccess::Read, "anon/#", None),
                (
                    3,
                    RuleKind::Topic,
                    RuleAccess::ReadWrite,
                    "b/1",
                    Some("bob")
                ),
                (5, RuleKind::Pattern, RuleAccess::Write, "p/%c", None),
                (7, RuleKind::Topic, RuleAccess::ReadWrite, "a/1", Some("al")),
                (9, RuleKind::Topic, RuleAccess::Deny, "b/2", Some("bob")),
            ]
        );
        let p = AclPolicy::parse(Path::new("f.acl"), text.as_bytes()).expect("parses");
        assert_eq!(
            (p.user_count(), p.pattern_count(), p.topic_rule_count()),
            (2, 1, 4)
        );
        let bob = Client {
            id: Some("c"),
            username: Some("bob"),
        };
        assert!(p.check(&bob, "b/1", Access::Write, false).allowed);
        assert!(!p.check(&bob, "b/2", Access::Write, false).allowed);
        assert!(p.check(&bob, "p/c", Access::Write, false).allowed);
        assert!(!p.check(&bob, "a/1", Access::Write, false).allowed);
    }

    /// A node with more children than are searched along a list: rules added to a child after
    /// the node became wide land in the same child.
    #[test]
    fn wide_nodes_keep_one_child_per_level() {
        let mut text = String::from("user u\n");
        for i in 0..40 {
            text.push_str(&format!("topic read w/{i}/#\n"));
        }
        for i in (0..40).rev() {
            text.push_str(&format!("topic write w/{i}\ntopic deny w/{i}/no\n"));
        }
        text.push_str("pattern read t/%c/a\npattern write t/x%c/a\npattern write t/%c/a\n");
        let p = AclPolicy::parse(Path::new("f.acl"), text.as_bytes()).expect("parses");
        let u = Client {
            id: Some("c"),
            username: Some("u"),
        };
        for i in 0..40 {
            let topic = format!("w/{i}");
            assert!(p.check(&u, &topic, Access::Read, false).allowed, "{topic}");
            assert!(p.check(&u, &topic, Access::Write, false).allowed, "{topic}");
            assert!(
                p.check(&u, &format!("{topic}/yes"), Access::Read, false)
                    .allowed
            );
            assert!(
                !p.check(&u, &format!("{topic}/no"), Access::Read, false)
                    .allowed
            );
        }
        let v = Client {
            id: Some("c"),
            username: Some("v"),
        };
        assert!(p.check(&v, "t/c/a", Access::Read, false).allowed);
        assert!(p.check(&v, "t/c/a", Access::Write, false).allowed);
        assert!(p.check(&v, "t/xc/a", Access::Write, false).allowed);
        assert!(!p.check(&v, "t/xc/a", Access::Read, false).allowed);
    }
}
