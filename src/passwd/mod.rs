//! Mosquitto password files: `username:hash` lines, parsed once at load (hashes decoded, never
//! verified at load) and verified per connect in constant time.
//!
//! Stricter than Mosquitto 2.0, which silently drops lines it cannot use: here every such line
//! is an error naming the file and line, so a typo never locks a user out unnoticed.

pub mod hash;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher};
use std::path::Path;

use ahash::AHashMap;
use base64::Engine as _;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use crate::error::Located;
use hash::B64;

/// Why a password file line was refused. Messages never contain a hash or a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswdError {
    /// No `:` on the line.
    #[error("line has no ':' between username and hash")]
    MissingColon,
    /// A `#` after leading whitespace: not a comment, and not a user line either.
    #[error("'#' starts a comment only in the first column; this line is neither a comment nor username:hash")]
    IndentedComment,
    /// More than one `:` on the line.
    #[error("line has more than one ':' (neither usernames nor hashes contain ':')")]
    ExtraColon,
    /// Nothing before the `:`.
    #[error("empty username")]
    EmptyUsername,
    /// The username is not valid UTF-8.
    #[error("username is not valid UTF-8")]
    UsernameNotUtf8,
    /// No hash after the `:`; holds the username.
    #[error("empty password hash for user {0:?}")]
    EmptyHash(String),
    /// The hash is not `$6$`, `$7$` or `$argon2id$`; holds the username.
    #[error("unsupported password hash for user {0:?}: expected $6$, $7$ or $argon2id$ (plain-text passwords are not accepted)")]
    UnknownScheme(String),
    /// The scheme is known but the hash does not decode.
    #[error("malformed {scheme} hash for user {user:?}: {what}")]
    Malformed {
        /// The user whose line it is.
        user: String,
        /// The scheme, as named in the message.
        scheme: &'static str,
        /// What is wrong with the hash.
        what: &'static str,
    },
    #[error("user {user:?} is already defined on line {first_line}")]
    /// A second line for a username already defined.
    Duplicate {
        /// The username defined twice.
        user: String,
        /// The line of its first definition.
        first_line: usize,
    },
    /// A NUL byte anywhere in the file.
    #[error("NUL byte in the file")]
    Nul,
    /// A UTF-8 byte order mark at the start of the file.
    #[error("the file starts with a UTF-8 byte order mark, which would become part of the first username: save the file without it")]
    ByteOrderMark,
    /// A cost parameter above mqttguard's limit.
    #[error("{scheme} hash for user {user:?}: {what} {value} is above mqttguard's limit of {limit} (one login would take too long; see \"Password file\" in the README)")]
    TooCostly {
        /// The user whose line it is.
        user: String,
        /// The scheme, as named in the message.
        scheme: &'static str,
        /// The cost parameter that is too high.
        what: &'static str,
        /// Its value in the hash.
        value: u64,
        /// mqttguard's limit for it.
        limit: u64,
    },
}

/// The hash scheme of one user's line, with its cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `$6$`: one round of salted SHA-512 (weak).
    Sha512,
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512 {
        /// The PBKDF2 iteration count.
        iterations: u32,
        /// The salt's length in bytes.
        salt_len: usize,
    },
    /// `$argon2id$`, memory in KiB.
    Argon2id {
        /// Memory cost in KiB.
        m_kib: u32,
        /// Number of passes (time cost).
        t: u32,
        /// Degree of parallelism.
        p: u32,
    },
}

impl Scheme {
    /// Whether verifying costs enough (about a millisecond or more) to be worth doing off the
    /// broker's thread where the broker allows it.
    pub fn is_slow(self) -> bool {
        match self {
            Scheme::Sha512 => false,
            Scheme::Pbkdf2Sha512 { iterations, .. } => iterations >= 2000,
            Scheme::Argon2id { .. } => true,
        }
    }

    /// The scheme's short name: `sha512`, `pbkdf2-sha512` or `argon2id`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Sha512 => "sha512",
            Scheme::Pbkdf2Sha512 { .. } => "pbkdf2-sha512",
            Scheme::Argon2id { .. } => "argon2id",
        }
    }

    fn label(self) -> String {
        match self {
            Scheme::Sha512 => "$6$ SHA-512".to_string(),
            Scheme::Pbkdf2Sha512 { iterations, .. } => {
                format!("$7$ PBKDF2-SHA512 ({iterations} iterations)")
            }
            Scheme::Argon2id { m_kib, t, p } => format!("argon2id (m={m_kib},t={t},p={p})"),
        }
    }
}

/// The outcome of checking one username/password pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// The user exists and the password matches.
    Ok,
    /// No line for this username.
    UnknownUser,
    /// The user exists and the password does not match.
    WrongPassword,
}

/// A decoded hash, ready to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredHash {
    /// `$6$`: one round of SHA-512 over password and salt.
    Sha512 {
        /// The salt, as decoded from the line.
        salt: Vec<u8>,
        /// The SHA-512 digest.
        hash: Vec<u8>,
    },
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512 {
        /// The PBKDF2 iteration count.
        iterations: u32,
        /// The salt, as decoded from the line.
        salt: Vec<u8>,
        /// The derived key.
        hash: Vec<u8>,
    },
    /// The PHC string, decoded and validated at load.
    Argon2id {
        /// The whole `$argon2id$...` string from the line.
        phc: String,
        /// Memory cost in KiB.
        m_kib: u32,
        /// Number of passes (time cost).
        t: u32,
        /// Degree of parallelism.
        p: u32,
        /// 16 or 19 (0x13).
        version: u32,
        /// The salt, as decoded from the PHC string.
        salt: Vec<u8>,
        /// The expected output of the hash.
        hash: Vec<u8>,
    },
}

impl StoredHash {
    /// The scheme, with its cost parameters.
    pub fn scheme(&self) -> Scheme {
        match self {
            StoredHash::Sha512 { .. } => Scheme::Sha512,
            StoredHash::Pbkdf2Sha512 {
                iterations, salt, ..
            } => Scheme::Pbkdf2Sha512 {
                iterations: *iterations,
                salt_len: salt.len(),
            },
            StoredHash::Argon2id { m_kib, t, p, .. } => Scheme::Argon2id {
                m_kib: *m_kib,
                t: *t,
                p: *p,
            },
        }
    }

    /// Verifies a password; the final comparison is constant-time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            StoredHash::Sha512 { salt, hash } => {
                let mut digest = Sha512::new();
                digest.update(password);
                digest.update(salt);
                bool::from(digest.finalize().as_slice().ct_eq(hash))
            }
            StoredHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                bool::from(out.as_slice().ct_eq(hash))
            }
            StoredHash::Argon2id {
                m_kib,
                t,
                p,
                version,
                salt,
                hash,
                ..
            } => hash::verify_argon2id(*version, (*m_kib, *t, *p), salt, hash, password),
        }
    }
}

#[derive(Debug)]
struct Entry {
    hash: StoredHash,
    line: usize,
    /// Changes whenever this user's line changes (for the credential cache).
    fingerprint: u64,
}

/// A parsed password file: username to hash.
#[derive(Debug, Default)]
pub struct PasswordDb {
    users: AHashMap<String, Entry>,
}

/// C `isspace` in the "C" locale (space, `\t`, `\n`, `\v`, `\f`, `\r`): what Mosquitto trims
/// around usernames and hashes. Rust's `is_ascii_whitespace` lacks `\v`.
pub fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// `bytes` without leading and trailing [`is_c_space`] bytes.
pub fn trim_c_space(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_c_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_c_space(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The username of one password-file line (without its `\n`) exactly as [`PasswordDb::parse`]
/// reads it: the bytes before the first `:`, trimmed with [`trim_c_space`]. `None` for a
/// comment (`#` in the first column) and a line without `:`. Not validated (it may be empty or
/// not UTF-8, which the parser refuses).
pub fn line_username(line: &[u8]) -> Option<&[u8]> {
    if line.first() == Some(&b'#') {
        return None;
    }
    let colon = line.iter().position(|&b| b == b':')?;
    Some(trim_c_space(&line[..colon]))
}

/// The UTF-8 byte order mark.
pub const BOM: &[u8] = b"\xef\xbb\xbf";

impl PasswordDb {
    /// Parses a whole password file; the first refused line is the error, located in `file`.
    pub fn parse(file: &Path, text: &[u8]) -> Result<Self, Located<PasswdError>> {
        let mut users: AHashMap<String, Entry> = AHashMap::default();
        for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line_no = index + 1;
            let err = |e| Located::new(file, line_no, e);
            if raw.contains(&0) {
                return Err(err(PasswdError::Nul));
            }
            if line_no == 1 && raw.starts_with(BOM) {
                return Err(err(PasswdError::ByteOrderMark));
            }
            let Some(name) = line_username(raw) else {
                if raw.first() == Some(&b'#') {
                    continue;
                }
                return match trim_c_space(raw).first() {
                    None => continue,
                    Some(b'#') => Err(err(PasswdError::IndentedComment)),
                    Some(_) => Err(err(PasswdError::MissingColon)),
                };
            };
            let rest = &raw[raw
                .iter()
                .position(|&b| b == b':')
                .map_or(raw.len(), |c| c + 1)..];
            if rest.contains(&b':') {
                return Err(err(PasswdError::ExtraColon));
            }
            let name = std::str::from_utf8(name).map_err(|_| err(PasswdError::UsernameNotUtf8))?;
            if name.is_empty() {
                return Err(err(PasswdError::EmptyUsername));
            }
            // A hash is ASCII; anything else is malformed, reported as an unknown scheme.
            let hash_text = std::str::from_utf8(trim_c_space(rest))
                .map_err(|_| err(PasswdError::UnknownScheme(name.to_string())))?;
            let hash = decode_hash(name, hash_text).map_err(err)?;
            if let Some(first) = users.get(name) {
                return Err(err(PasswdError::Duplicate {
                    user: name.to_string(),
                    first_line: first.line,
                }));
            }
            let mut h = DefaultHasher::new();
            (name, hash_text).hash(&mut h);
            users.insert(
                name.to_string(),
                Entry {
                    hash,
                    line: line_no,
                    fingerprint: h.finish(),
                },
            );
        }
        Ok(PasswordDb { users })
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether the file has a line for `username`.
    pub fn contains(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// Every username, in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// The user's decoded hash, e.g. to verify it off the broker's thread.
    pub fn stored_hash(&self, username: &str) -> Option<&StoredHash> {
        self.users.get(username).map(|e| &e.hash)
    }

    /// The scheme of the user's hash, if the user exists.
    pub fn scheme(&self, username: &str) -> Option<Scheme> {
        self.users.get(username).map(|e| e.hash.scheme())
    }

    /// The line number of the user's entry.
    pub fn line(&self, username: &str) -> Option<usize> {
        self.users.get(username).map(|e| e.line)
    }

    /// A value that changes whenever the user's line changes; the credential cache binds its
    /// entries to it.
    pub fn entry_fingerprint(&self, username: &str) -> Option<u64> {
        self.users.get(username).map(|e| e.fingerprint)
    }

    /// The user's decoded hash and [`PasswordDb::entry_fingerprint`], in one lookup (what a
    /// login needs).
    pub fn hash_and_fingerprint(&self, username: &str) -> Option<(&StoredHash, u64)> {
        self.users.get(username).map(|e| (&e.hash, e.fingerprint))
    }

    /// Checks `password` against the user's hash (compared in constant time).
    pub fn verify(&self, username: &str, password: &[u8]) -> Verify {
        match self.users.get(username) {
            None => Verify::UnknownUser,
            Some(e) if e.hash.verify(password) => Verify::Ok,
            Some(_) => Verify::WrongPassword,
        }
    }

    /// A short description of the hash schemes in use, for the load log line.
    pub fn schemes_summary(&self) -> String {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for entry in self.users.values() {
            let label = entry.hash.scheme().label();
            match counts.iter_mut().find(|(l, _)| *l == label) {
                Some((_, n)) => *n += 1,
                None => counts.push((label, 1)),
            }
        }
        counts.sort();
        if counts.is_empty() {
            return "no users".to_string();
        }
        counts
            .iter()
            .map(|(label, n)| format!("{label} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn malformed(user: &str, scheme: &'static str, what: &'static str) -> PasswdError {
    PasswdError::Malformed {
        user: user.to_string(),
        scheme,
        what,
    }
}

fn decode_b64(
    user: &str,
    scheme: &'static str,
    what: &'static str,
    s: &str,
) -> Result<Vec<u8>, PasswdError> {
    B64.decode(s).map_err(|_| malformed(user, scheme, what))
}

fn decode_hash(user: &str, text: &str) -> Result<StoredHash, PasswdError> {
    if text.is_empty() {
        return Err(PasswdError::EmptyHash(user.to_string()));
    }
    if let Some(rest) = text.strip_prefix("$6$") {
        let (salt, hash) = rest
            .split_once('$')
            .ok_or_else(|| malformed(user, "$6$", "expected $6$salt$hash"))?;
        let salt = decode_b64(user, "$6$", "salt is not base64", salt)?;
        let hash = decode_b64(user, "$6$", "hash is not base64", hash)?;
        check_lengths(user, "$6$", &salt, &hash)?;
        return Ok(StoredHash::Sha512 { salt, hash });
    }
    if let Some(rest) = text.strip_prefix("$7$") {
        let mut parts = rest.split('$');
        let (Some(iterations), Some(salt), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(user, "$7$", "expected $7$iterations$salt$hash"));
        };
        let iterations = hash::decimal(iterations)
            .filter(|&n| n >= 1)
            .ok_or_else(|| {
                malformed(
                    user,
                    "$7$",
                    "iterations must be a whole number of at least 1",
                )
            })?;
        if iterations > hash::PBKDF2_MAX_ITERATIONS {
            return Err(PasswdError::TooCostly {
                user: user.to_string(),
                scheme: "$7$",
                what: "iterations",
                value: iterations.into(),
                limit: hash::PBKDF2_MAX_ITERATIONS.into(),
            });
        }
        let salt = decode_b64(user, "$7$", "salt is not base64", salt)?;
        let hash = decode_b64(user, "$7$", "hash is not base64", hash)?;
        check_lengths(user, "$7$", &salt, &hash)?;
        return Ok(StoredHash::Pbkdf2Sha512 {
            iterations,
            salt,
            hash,
        });
    }
    if text.starts_with("$argon2id$") {
        let parts = hash::parse_argon2id(text).map_err(|what| malformed(user, "argon2id", what))?;
        if let Some((what, value, limit)) = hash::argon2id_over_limit(parts.m_kib, parts.t, parts.p)
        {
            return Err(PasswdError::TooCostly {
                user: user.to_string(),
                scheme: "argon2id",
                what,
                value,
                limit,
            });
        }
        return Ok(StoredHash::Argon2id {
            phc: text.to_string(),
            m_kib: parts.m_kib,
            t: parts.t,
            p: parts.p,
            version: parts.version,
            salt: parts.salt,
            hash: parts.hash,
        });
    }
    Err(PasswdError::UnknownScheme(user.to_string()))
}

/// Mosquitto writes 12-byte (2.0) or 64-byte (2.1) salts and 64-byte SHA-512 outputs.
fn check_lengths(
    user: &str,
    scheme: &'static str,
    salt: &[u8],
    hash: &[u8],
) -> Result<(), PasswdError> {
    if salt.len() != 12 && salt.len() != 64 {
        return Err(malformed(
            user,
            scheme,
            "salt must decode to 12 or 64 bytes",
        ));
    }
    if hash.len() != 64 {
        return Err(malformed(user, scheme, "hash must decode to 64 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mosquitto_passwd 2.0.11, `-b ... alice 'correct horse'`.
    const ALICE: &str = "$7$101$RKoC2V5B46k44pmS$FZVOkQea3OtVvX/Btq+3SsLcx9tRXF2QO9JbjOEjzAXfiUor7cssF52nC5NS9xQAEca5BEfuyQPBJ0hJUnC9ag==";

    fn parse(text: &[u8]) -> Result<PasswordDb, Located<PasswdError>> {
        PasswordDb::parse(Path::new("p"), text)
    }

    #[test]
    fn c_whitespace_is_trimmed_and_blank_lines_skipped() {
        // C isspace: space, \t, \n, \v, \f, \r (Rust's is_ascii_whitespace lacks \v).
        let text = format!("\x0b\x0c\t \r\n\x0balice\x0c:\x0b{ALICE}\x0c\r\n\x0b\n");
        let db = parse(text.as_bytes()).unwrap();
        assert_eq!(db.line("alice"), Some(2));
        assert_eq!(db.verify("alice", b"correct horse"), Verify::Ok);
    }

    #[test]
    fn line_usernames_trim_as_c_isspace() {
        assert_eq!(line_username(b"alice\x0b:x"), Some(&b"alice"[..]));
        assert_eq!(
            line_username(b" \t\x0c\ralice \x0b:x:y"),
            Some(&b"alice"[..])
        );
        assert_eq!(line_username(b"#alice:x"), None);
        assert_eq!(line_username(b" #alice:x"), Some(&b"#alice"[..]));
        assert_eq!(line_username(b"alice"), None);
        assert_eq!(line_username(b":x"), Some(&b""[..]));
        assert_eq!(trim_c_space(b" \x0b "), b"");
        assert_eq!(trim_c_space(b"a\xc2\xa0"), b"a\xc2\xa0");
    }

    #[test]
    fn iterations_are_plain_decimals() {
        let good = parse(format!("a:{ALICE}").replace("$101$", "$0101$").as_bytes()).unwrap();
        assert_eq!(good.verify("a", b"correct horse"), Verify::Ok);
        for bad in ["$+101$", "$ 101$", "$101 $", "$-1$", "$4294967296$", "$$"] {
            let text = format!("a:{ALICE}").replace("$101$", bad);
            let e = parse(text.as_bytes()).map(|_| ()).unwrap_err();
            assert!(matches!(e.error, PasswdError::Malformed { .. }), "{bad}");
        }
    }

    #[test]
    fn usernames_in_messages_are_escaped() {
        let e = parse(b"al\rice\x1b[31m:plain\n").map(|_| ()).unwrap_err();
        let shown = e.to_string();
        assert!(
            !shown.contains('\r') && !shown.contains('\x1b'),
            "{shown:?}"
        );
    }

    #[test]
    fn scheme_names() {
        let db = parse(format!("a:{ALICE}\n").as_bytes()).unwrap();
        assert_eq!(db.scheme("a").map(Scheme::name), Some("pbkdf2-sha512"));
        assert_eq!(Scheme::Sha512.name(), "sha512");
    }
}
