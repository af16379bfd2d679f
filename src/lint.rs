//! `mqttguard lint`: the plugin's own parse of the policy files (every error with file:line),
//! plus warnings about rules that load fine but do not do what their author probably meant.
//!
//! Nothing here decides access: the files are parsed by the same code the plugin runs
//! ([`AclPolicy::parse`], [`PasswordDb::parse`], [`Config::parse`]) and the warnings are about
//! the parsed rules. The only extra reading of the text is a light scan of the ACL file for
//! `user` lines (which [`AclPolicy`] does not keep) once the plugin's parser has accepted it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::acl::{AclPolicy, Rule, RuleAccess, RuleKind};
use crate::config::Config;
use crate::error::LoadError;
use crate::passwd::hash::{
    ARGON2ID_MIN_WORK, ARGON2ID_RECOMMENDED_MAX_WORK, PBKDF2_MAX_ITERATIONS,
    PBKDF2_RECOMMENDED_MAX_ITERATIONS,
};
use crate::passwd::{PasswordDb, Scheme};
use crate::policy::{Options, Policy};

/// `$7$` iteration counts below this are reported (Mosquitto 2.0 writes 101; 2.1 writes 1000).
pub const MIN_PBKDF2_ITERATIONS: u32 = crate::passwd::hash::PBKDF2_DEFAULT_ITERATIONS;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A warning: the plugin loads the file, but the rule probably does not do what was meant.
    Warning,
    /// The plugin refuses to load the file (the broker does not start).
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One problem, at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based line; 0 when the file as a whole is concerned.
    pub line: usize,
    /// A stable, kebab-case name for the kind of finding (see [`codes`]).
    pub code: &'static str,
    pub message: String,
}

impl Finding {
    fn warning(file: &Path, line: usize, code: &'static str, message: String) -> Finding {
        Finding {
            severity: Severity::Warning,
            file: file.to_path_buf(),
            line,
            code,
            message,
        }
    }
}

impl fmt::Display for Finding {
    /// `file:line: warning: message [code]` (no `:line` when the whole file is concerned).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        write!(
            f,
            ": {}: {} [{}]",
            self.severity.as_str(),
            self.message,
            self.code
        )
    }
}

/// The `code` of each kind of finding.
pub mod codes {
    /// A file cannot be read (missing, unreadable, not a regular file).
    pub const UNREADABLE: &str = "unreadable";
    /// The plugin's parser refused a line.
    pub const PARSE: &str = "parse";
    /// `topic read` with no topic: read as `readwrite` on a topic named `read`.
    pub const ACCESS_WORD_AS_TOPIC: &str = "access-word-as-topic";
    /// An allow rule every topic of which is covered by a deny rule in the same list.
    pub const SHADOWED_BY_DENY: &str = "shadowed-by-deny";
    /// The same rule twice in the same list.
    pub const DUPLICATE_RULE: &str = "duplicate-rule";
    /// A `pattern` with neither `%c` nor `%u`.
    pub const PATTERN_WITHOUT_SUBSTITUTION: &str = "pattern-without-substitution";
    /// `%c` / `%u` in a `topic` rule, where they are not substituted.
    pub const SUBSTITUTION_IN_TOPIC: &str = "substitution-in-topic";
    /// A `pattern` written inside a `user` block (it applies to every client).
    pub const PATTERN_IN_USER_BLOCK: &str = "pattern-in-user-block";
    /// A `user` with no `topic` rules at all.
    pub const USER_WITHOUT_RULES: &str = "user-without-rules";
    /// A user of the ACL file absent from the password file.
    pub const ACL_USER_NOT_IN_PASSWD: &str = "acl-user-not-in-passwd";
    /// A user of the password file with no `user` block in the ACL file.
    pub const PASSWD_USER_NOT_IN_ACL: &str = "passwd-user-not-in-acl";
    /// A `$6$` (salted SHA-512, Mosquitto 1.x) hash.
    pub const WEAK_HASH: &str = "weak-hash";
    /// A `$7$` hash with fewer than [`super::MIN_PBKDF2_ITERATIONS`] iterations.
    pub const LOW_ITERATIONS: &str = "low-iterations";
    /// A hash whose cost is above the recommended values (below the load limits): every
    /// login is slow.
    pub const SLOW_HASH: &str = "slow-hash";
    /// An argon2id hash whose memory × passes is below OWASP's weakest recommendation.
    pub const LOW_ARGON2ID_COST: &str = "low-argon2id-cost";
    /// A password file that every local user can read.
    pub const WORLD_READABLE: &str = "world-readable";
    /// Another warning the plugin itself logs when it loads the files.
    pub const PLUGIN_WARNING: &str = "plugin-warning";
}

/// Everything found in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// 0 clean, 1 warnings only, 2 errors.
    pub fn exit_code(&self) -> i32 {
        if self.errors() > 0 {
            2
        } else if self.warnings() > 0 {
            1
        } else {
            0
        }
    }
}

/// The files to lint; any may be absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs<'a> {
    pub acl: Option<&'a Path>,
    pub passwd: Option<&'a Path>,
    pub config: Option<&'a Path>,
}

/// Reads, parses and checks the given files. Every file is checked even when another is
/// broken; checks across files (users in one but not the other) need both to load.
pub fn lint_files(inputs: Inputs<'_>) -> Report {
    let mut report = Report::default();

    if let Some(path) = inputs.config {
        if let Err(e) = crate::error::read_policy_file(path)
            .and_then(|text| Config::parse(path, &text).map_err(LoadError::from))
        {
            report.findings.push(load_error(path, e));
        }
    }

    let acl = inputs.acl.and_then(|path| {
        match crate::error::read_policy_file(path).and_then(|text| {
            let policy = AclPolicy::parse(path, &text)?;
            Ok((policy, text))
        }) {
            Ok((policy, text)) => {
                let users = scan_acl_users(&text);
                report.findings.extend(lint_acl(&policy, &users));
                Some((policy, users))
            }
            Err(e) => {
                report.findings.push(load_error(path, e));
                None
            }
        }
    });

    let passwd = inputs.passwd.and_then(|path| {
        if let Some(message) = crate::error::world_readable_warning(path) {
            let prefix = format!("{}: ", path.display());
            let message = message.strip_prefix(&prefix).unwrap_or(&message);
            report.findings.push(Finding::warning(
                path,
                0,
                codes::WORLD_READABLE,
                message.to_string(),
            ));
        }
        match PasswordDb::load(path) {
            Ok(db) => {
                let entries = passwd_entries(&db);
                report.findings.extend(lint_passwd(path, &entries));
                Some((path, db, entries))
            }
            Err(e) => {
                report.findings.push(load_error(path, e));
                None
            }
        }
    });

    if let (Some((policy, users)), Some((path, db, entries))) = (&acl, &passwd) {
        report
            .findings
            .extend(cross_check(policy.file(), users, path, db, entries));
    }
    // What the plugin checks across files at load (e.g. the `[identity]` section and its
    // revocation list), and the warnings it logs then.
    if report.errors() == 0 {
        let options = Options {
            password_file: inputs.passwd.map(Path::to_path_buf),
            acl_file: inputs.acl.map(Path::to_path_buf),
            config: inputs.config.map(Path::to_path_buf),
        };
        let anchor = inputs
            .config
            .or(inputs.acl)
            .or(inputs.passwd)
            .unwrap_or(Path::new(""));
        match Policy::load(&options) {
            Err(e) => report.findings.push(load_error(anchor, e)),
            Ok(policy) => {
                let world = inputs.passwd.and_then(crate::error::world_readable_warning);
                for warning in policy.warnings(&options) {
                    if Some(&warning) != world.as_ref() {
                        report.findings.push(Finding::warning(
                            anchor,
                            0,
                            codes::PLUGIN_WARNING,
                            warning,
                        ));
                    }
                }
            }
        }
    }

    // Group by file (config, ACL, password file), then by line.
    let rank = |file: &Path| {
        [inputs.config, inputs.acl, inputs.passwd]
            .iter()
            .position(|p| *p == Some(file))
            .unwrap_or(3)
    };
    report.findings.sort_by_key(|f| (rank(&f.file), f.line));
    report
}

/// A load error as a finding, keeping the file and line the parser named.
pub fn load_error(path: &Path, e: LoadError) -> Finding {
    let (file, line, code, message) = match e {
        LoadError::Io { file, source } => (file, 0, codes::UNREADABLE, source.to_string()),
        LoadError::Acl(l) => (l.file, l.line, codes::PARSE, l.error.to_string()),
        LoadError::Passwd(l) => (l.file, l.line, codes::PARSE, l.error.to_string()),
        LoadError::Config(l) => (l.file, l.line, codes::PARSE, l.error.to_string()),
        LoadError::Identity(l) => (l.file, l.line, codes::PARSE, l.error.to_string()),
        LoadError::Option(o) => (path.to_path_buf(), 0, codes::PARSE, o.to_string()),
    };
    Finding {
        severity: Severity::Error,
        file,
        line,
        code,
        message,
    }
}

/// A `user NAME` line of the ACL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLine {
    pub name: String,
    pub line: usize,
}

/// The `user` lines of an ACL file the plugin's parser accepted, in file order (a name may
/// appear more than once). Follows the same tokenising as the parser: only the text is
/// re-read, no rule is.
pub fn scan_acl_users(text: &[u8]) -> Vec<UserLine> {
    let is_c_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r');
    let mut users = Vec::new();
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let Ok(line) = std::str::from_utf8(raw) else {
            continue;
        };
        let line = line.trim_end_matches(is_c_space);
        if line.starts_with('#') {
            continue;
        }
        let body = line.trim_start_matches(' ');
        if let Some(rest) = body.strip_prefix("user ") {
            let name = rest.trim_matches(is_c_space);
            if !name.is_empty() {
                users.push(UserLine {
                    name: name.to_string(),
                    line: index + 1,
                });
            }
        }
    }
    users
}

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

/// Warnings about a parsed ACL file. `users` is [`scan_acl_users`] of the same text.
pub fn lint_acl(policy: &AclPolicy, users: &[UserLine]) -> Vec<Finding> {
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

/// Whether every topic that filter `specific` matches is also matched by filter `general`
/// (both valid filters, compared as [`crate::topic::filter_matches`] matches topics: `+` is one
/// level, `#` the rest including the parent, wildcards at the first level never match topics
/// starting with `$`). `%c` / `%u` levels are compared as text, which is exact for two
/// patterns of the same client: a `+` covers them, and equal templates cover each other.
pub fn filter_covers(general: &str, specific: &str) -> bool {
    if specific.starts_with('$') && !general.starts_with('$') {
        return false;
    }
    let mut g = general.split('/');
    let mut s = specific.split('/');
    loop {
        match (g.next(), s.next()) {
            (Some("#"), _) => return true,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(_), Some("+")) => return false,
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// One user of a parsed password file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub line: usize,
    pub scheme: Scheme,
}

/// The users of a parsed password file, in file order, with their hash schemes.
pub fn passwd_entries(db: &PasswordDb) -> Vec<PasswdEntry> {
    let mut out: Vec<PasswdEntry> = db
        .users()
        .filter_map(|name| {
            Some(PasswdEntry {
                name: name.to_string(),
                line: db.line(name)?,
                scheme: db.scheme(name)?,
            })
        })
        .collect();
    out.sort_by_key(|e| e.line);
    out
}

/// Warnings about the hashes of a parsed password file.
pub fn lint_passwd(file: &Path, entries: &[PasswdEntry]) -> Vec<Finding> {
    let mut out = Vec::new();
    for e in entries {
        match e.scheme {
            Scheme::Sha512 => out.push(Finding::warning(
                file,
                e.line,
                codes::WEAK_HASH,
                format!(
                    "user {}: `$6$` is a single round of salted SHA-512 (Mosquitto 1.x), fast to \
                     brute-force: set the password again with `mqttguard passwd`",
                    e.name
                ),
            )),
            Scheme::Pbkdf2Sha512 { iterations, .. } if iterations < MIN_PBKDF2_ITERATIONS => out
                .push(Finding::warning(
                    file,
                    e.line,
                    codes::LOW_ITERATIONS,
                    format!(
                        "user {}: `$7$` hash with {iterations} PBKDF2 iterations (fewer than \
                         {MIN_PBKDF2_ITERATIONS}): set the password again with `mqttguard passwd`",
                        e.name
                    ),
                )),
            Scheme::Pbkdf2Sha512 { iterations, .. }
                if iterations > PBKDF2_RECOMMENDED_MAX_ITERATIONS =>
            {
                out.push(Finding::warning(
                    file,
                    e.line,
                    codes::SLOW_HASH,
                    format!(
                        "user {}: `$7$` hash with {iterations} PBKDF2 iterations (more than the \
                         {PBKDF2_RECOMMENDED_MAX_ITERATIONS} OWASP recommends): every login costs \
                         the broker up to {} ms; the limit is {PBKDF2_MAX_ITERATIONS}",
                        e.name,
                        u64::from(iterations) * 8 / 10_000
                    ),
                ))
            }
            Scheme::Argon2id { m_kib, t, .. } => {
                let work = u64::from(m_kib) * u64::from(t);
                if work > ARGON2ID_RECOMMENDED_MAX_WORK {
                    out.push(Finding::warning(
                        file,
                        e.line,
                        codes::SLOW_HASH,
                        format!(
                            "user {}: argon2id with m={m_kib} KiB and t={t} (memory x passes above \
                             RFC 9106's m=65536, t=3): every login costs the broker up to {} ms \
                             and {} MiB",
                            e.name,
                            work * 3 / 2048,
                            m_kib / 1024
                        ),
                    ));
                } else if work < ARGON2ID_MIN_WORK {
                    out.push(Finding::warning(
                        file,
                        e.line,
                        codes::LOW_ARGON2ID_COST,
                        format!(
                            "user {}: argon2id with m={m_kib} KiB and t={t} (memory x passes below \
                             OWASP's weakest recommendation, m=7168, t=5): set the password again \
                             with `mqttguard passwd`",
                            e.name
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// Users of the ACL file absent from the password file, and the reverse.
pub fn cross_check(
    acl_file: &Path,
    acl_users: &[UserLine],
    passwd_file: &Path,
    db: &PasswordDb,
    entries: &[PasswdEntry],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for user in acl_users {
        if seen.contains(&user.name.as_str()) {
            continue;
        }
        seen.push(&user.name);
        if !db.contains(&user.name) {
            out.push(Finding::warning(
                acl_file,
                user.line,
                codes::ACL_USER_NOT_IN_PASSWD,
                format!(
                    "user {} is not in the password file {}: it cannot log in",
                    user.name,
                    passwd_file.display()
                ),
            ));
        }
    }
    for entry in entries {
        if !seen.contains(&entry.name.as_str()) {
            out.push(Finding::warning(
                passwd_file,
                entry.line,
                codes::PASSWD_USER_NOT_IN_ACL,
                format!(
                    "user {} has no `user` block in the ACL file {}: only the pattern rules apply to it",
                    entry.name,
                    acl_file.display()
                ),
            ));
        }
    }
    out
}
