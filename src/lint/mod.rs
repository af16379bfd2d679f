//! `mqttguard lint`: the plugin's own load of the policy files (every error with file:line),
//! plus warnings about rules that load fine but do not do what their author probably meant.
//!
//! Nothing here decides access or reads text: each file is loaded once, by the same code the
//! plugin runs ([`load_file`] with [`AclPolicy::parse`], [`PasswordDb::parse`],
//! [`Config::parse`]; then [`Policy::from_loaded`]), and the warnings are about what those
//! parsers kept. One file per family of findings: `acl.rs` (rules), `passwd.rs` (hashes),
//! `cross.rs` (users across files).

mod acl;
mod cross;
mod passwd;

pub use acl::lint_acl;
pub use cross::cross_check;
pub use passwd::{lint_passwd, passwd_entries, PasswdEntry};

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::acl::AclPolicy;
use crate::config::Config;
use crate::passwd::PasswordDb;
use crate::policy::{load_file, LoadError, Options, Policy};

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
    /// `warning` or `error`, as printed.
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
    /// How bad it is.
    pub severity: Severity,
    /// The file it is in.
    pub file: PathBuf,
    /// 1-based line; 0 when the file as a whole is concerned.
    pub line: usize,
    /// A stable, kebab-case name for the kind of finding (see [`codes`]).
    pub code: &'static str,
    /// What is wrong, in one sentence.
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
    /// Every finding, in the order found.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The number of errors.
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    /// The number of warnings.
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
    /// The ACL file (`plugin_opt_acl_file`).
    pub acl: Option<&'a Path>,
    /// The password file (`plugin_opt_password_file`).
    pub passwd: Option<&'a Path>,
    /// The TOML configuration (`plugin_opt_config`).
    pub config: Option<&'a Path>,
}

/// Loads (once each) and checks the given files. Every file is checked even when another is
/// broken; checks across files (users in one but not the other) need both to load, and what
/// the plugin checks across files at load (the `[identity]` section, its revocation list) and
/// the warnings it logs then need all of them.
pub fn lint_files(inputs: Inputs<'_>) -> Report {
    let mut report = Report::default();

    let config = inputs
        .config
        .map(|path| load_file(path, Config::parse))
        .transpose()
        .unwrap_or_else(|e| {
            report
                .findings
                .push(load_error(inputs.config.unwrap_or(Path::new("")), e));
            None
        });
    let config_ok = inputs.config.is_none() || config.is_some();

    let acl = inputs
        .acl
        .and_then(|path| match load_file(path, AclPolicy::parse) {
            Ok(policy) => {
                report.findings.extend(lint_acl(&policy));
                Some(policy)
            }
            Err(e) => {
                report.findings.push(load_error(path, e));
                None
            }
        });

    let world = inputs.passwd.and_then(crate::error::world_readable_warning);
    let passwd = inputs.passwd.and_then(|path| {
        if let Some(message) = &world {
            let prefix = format!("{}: ", path.display());
            let message = message.strip_prefix(&prefix).unwrap_or(message);
            report.findings.push(Finding::warning(
                path,
                0,
                codes::WORLD_READABLE,
                message.to_string(),
            ));
        }
        match load_file(path, PasswordDb::parse) {
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

    if let (Some(policy), Some((path, db, entries))) = (&acl, &passwd) {
        report.findings.extend(cross_check(
            policy.file(),
            policy.user_lines(),
            path,
            db,
            entries,
        ));
    }
    let all_loaded = config_ok
        && (inputs.acl.is_none() || acl.is_some())
        && (inputs.passwd.is_none() || passwd.is_some());
    if all_loaded {
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
        let db = passwd.map(|(_, db, _)| db);
        match Policy::from_loaded(&options, config.unwrap_or_default(), db, acl) {
            Err(e) => report.findings.push(load_error(anchor, e)),
            Ok(policy) => {
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
