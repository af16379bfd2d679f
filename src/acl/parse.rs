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

pub(super) struct Parsed {
    pub rules: Vec<Rule>,
    /// Distinct names of `user` blocks, first appearance order.
    pub users: Vec<String>,
    /// Every `user` line, in file order.
    pub user_lines: Vec<UserLine>,
}

/// C `isspace` in the "C" locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

pub(super) fn parse(file: &Path, text: &[u8]) -> Result<Parsed, Located<AclError>> {
    let mut rules = Vec::new();
    let mut users: Vec<String> = Vec::new();
    let mut user_lines: Vec<UserLine> = Vec::new();
    let mut seen_users = ahash::AHashSet::new();
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
        // strtok(" "): leading spaces skipped; only the space character separates.
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
                    return Err(err(AclError::EmptyTopic(if kind == RuleKind::Topic {
                        "topic"
                    } else {
                        "pattern"
                    })));
                }
                let (access, topic) = match rest.split_once(' ') {
                    None => (RuleAccess::ReadWrite, rest),
                    Some((word, topic)) => {
                        let access = match word {
                            "read" => RuleAccess::Read,
                            "write" => RuleAccess::Write,
                            "readwrite" => RuleAccess::ReadWrite,
                            "deny" => RuleAccess::Deny,
                            other => return Err(err(AclError::InvalidAccess(other.to_string()))),
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
                if seen_users.insert(name.to_string()) {
                    users.push(name.to_string());
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
    Ok(Parsed {
        rules,
        users,
        user_lines,
    })
}
