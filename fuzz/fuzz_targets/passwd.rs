//! The password-file parser and verification: arbitrary bytes as a password file; when it
//! parses, each user (at most 4) is verified with the fuzzed password.
//!
//! Input: `<password file> [NUL <password>]`. Hashes whose parameters make one verification
//! expensive (`$7$` above 64 iterations, argon2id above m=64 KiB, t=2, p=2) are parsed but
//! not verified, so the fuzzer does not stall on them; the parser's own caps bound what is
//! accepted at load.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mqttguard::passwd::{PasswordDb, Scheme, Verify};

fn cheap(scheme: Scheme) -> bool {
    match scheme {
        Scheme::Sha512 => true,
        Scheme::Pbkdf2Sha512 { iterations, .. } => iterations <= 64,
        Scheme::Argon2id { m_kib, t, p } => m_kib <= 64 && t <= 2 && p <= 2,
    }
}

fuzz_target!(|data: &[u8]| {
    let (text, password) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"password"[..]),
    };
    let Ok(db) = PasswordDb::parse(Path::new("fuzz.passwd"), text) else {
        return;
    };
    let _ = db.schemes_summary();
    let users: Vec<String> = db.users().map(str::to_string).collect();
    assert_eq!(users.len(), db.len());
    for user in users.iter().take(4) {
        let hash = db.stored_hash(user).expect("listed user has a hash");
        let _ = (db.line(user), db.entry_fingerprint(user), db.scheme(user));
        if !cheap(hash.scheme()) {
            continue;
        }
        let first = db.verify(user, password);
        assert_ne!(first, Verify::UnknownUser, "listed user {user:?} unknown");
        assert_eq!(first == Verify::Ok, hash.verify(password));
    }
    assert_eq!(db.verify("\u{1}not-a-user", password), Verify::UnknownUser);
});
