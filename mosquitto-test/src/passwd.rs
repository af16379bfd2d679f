//! Writing password files the way Mosquitto users do: with `mosquitto_passwd`.

use std::process::Command;

/// A hash scheme for one password file line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `$7$`: PBKDF2-SHA512, `mosquitto_passwd -b` (the 2.0 default, 101 iterations).
    Pbkdf2,
    /// `$6$`: salted SHA-512, `mosquitto_passwd -H sha512 -b`.
    Sha512,
    /// `$argon2id$`: PHC string (plugin only; Mosquitto 2.0 drops such lines).
    Argon2id,
}

/// The `mosquitto_passwd` executable: env `MOSQUITTO_PASSWD` or `mosquitto_passwd` on PATH.
pub fn mosquitto_passwd_bin() -> String {
    std::env::var("MOSQUITTO_PASSWD").unwrap_or_else(|_| "mosquitto_passwd".into())
}

/// One `user:hash` line (without newline) as `mosquitto_passwd` writes it; argon2id lines are
/// made with the RustCrypto `argon2` crate (m=4096 KiB, t=2, p=1: cheap for unoptimised test
/// builds; the parameters are in the PHC string).
pub fn passwd_line(user: &str, password: &str, scheme: Scheme) -> String {
    match scheme {
        Scheme::Argon2id => format!("{user}:{}", argon2id_hash(password.as_bytes())),
        Scheme::Pbkdf2 | Scheme::Sha512 => {
            let dir = tempfile::tempdir().expect("temp dir");
            let file = dir.path().join("pw");
            std::fs::write(&file, b"").expect("create empty password file");
            let mut cmd = Command::new(mosquitto_passwd_bin());
            if scheme == Scheme::Sha512 {
                cmd.args(["-H", "sha512"]);
            }
            let out = cmd
                .arg("-b")
                .arg(&file)
                .arg(user)
                .arg(password)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", mosquitto_passwd_bin()));
            assert!(
                out.status.success(),
                "mosquitto_passwd failed for user {user:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = std::fs::read_to_string(&file).expect("read password file");
            let line = text.lines().next().expect("mosquitto_passwd wrote no line");
            let prefix = match scheme {
                Scheme::Pbkdf2 => "$7$",
                _ => "$6$",
            };
            assert!(
                line.starts_with(&format!("{user}:{prefix}")),
                "unexpected mosquitto_passwd output: {line}"
            );
            line.to_string()
        }
    }
}

/// An argon2id PHC string for `password` (fresh random-looking salt from the clock and a
/// counter; tests do not need cryptographic salts).
pub fn argon2id_hash(password: &[u8]) -> String {
    argon2id_hash_with(password, 4096, 2)
}

/// An argon2id PHC string with memory `m_kib` KiB and `passes` passes (p=1): a costlier hash keeps
/// a verification running long enough for a test to act while it runs.
pub fn argon2id_hash_with(password: &[u8], m_kib: u32, passes: u32) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut salt = [0u8; 16];
    salt[..8].copy_from_slice(&t.to_le_bytes());
    salt[8..].copy_from_slice(&(n ^ u64::from(std::process::id())).to_le_bytes());
    let salt = SaltString::encode_b64(&salt).expect("salt");
    let params = argon2::Params::new(m_kib, passes, 1, None).expect("argon2 params");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password, &salt)
        .expect("argon2id hash")
        .to_string()
}

/// Builds a password file text from `(user, password, scheme)` entries.
pub fn passwd_file(entries: &[(&str, &str, Scheme)]) -> String {
    let mut s = String::new();
    for (u, p, sch) in entries {
        s.push_str(&passwd_line(u, p, *sch));
        s.push('\n');
    }
    s
}
