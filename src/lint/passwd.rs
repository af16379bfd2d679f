//! Findings about the hashes of a parsed password file.

use std::path::Path;

use super::{codes, Finding, MIN_PBKDF2_ITERATIONS};
use crate::passwd::hash::{
    ARGON2ID_MIN_WORK, ARGON2ID_RECOMMENDED_MAX_WORK, PBKDF2_MAX_ITERATIONS,
    PBKDF2_RECOMMENDED_MAX_ITERATIONS,
};
use crate::passwd::{PasswordDb, Scheme};

/// One user of a parsed password file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// The username.
    pub name: String,
    /// The line the user is defined on.
    pub line: usize,
    /// The user's hash scheme, with its cost parameters.
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
