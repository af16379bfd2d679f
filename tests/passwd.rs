//! Password files: vectors written by the real `mosquitto_passwd`, every refused line with its
//! line number, and the hashing functions the CLI uses.

use std::path::Path;

use mqttguard::passwd::hash::{hash_argon2id, hash_pbkdf2};
use mqttguard::passwd::{PasswdError, PasswordDb, Scheme, Verify};

/// Written by mosquitto_passwd 2.0.11: `-b` (alice, $7$ 101), `-I 1000` (bob), `-H sha512`
/// (carol); dave is PBKDF2-SHA512 with a 64-byte salt as Mosquitto 2.1 writes, computed with
/// Python's hashlib.pbkdf2_hmac.
const VECTORS: &str = "\
alice:$7$101$RKoC2V5B46k44pmS$FZVOkQea3OtVvX/Btq+3SsLcx9tRXF2QO9JbjOEjzAXfiUor7cssF52nC5NS9xQAEca5BEfuyQPBJ0hJUnC9ag==
bob:$7$1000$Pfa0rIdjylJDzmmq$DRooejuIvy2h3lmp8cyLhohOF96q8qWxS8wCk0GQszdGB3jbiO8rz/eItVSGrWRpdL/ZzFUnaQLFZBMqDLMZeQ==
carol:$6$1w32hjbDJ6DspDhN$PadttJOXUYKcTMAVfFaiEqWdEnrOiuzv8qwJKorESwVIPq9CI9Jek+8+qP0kLVUUqP+s05Gbt7FyAPoUdECbWQ==
dave:$7$1000$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$Iy52sBziyDIwfb1Cj4Pq8NbquUNzSosXSREe2ZeUjVmz44QNvrbcPyDLDBRh6ZyL3mRh1XVLPEf890CjFkSeAA==
";

/// argon2id (m=19456, t=2, p=1) of "argon pw", made with the argon2 crate.
const ARGON_PW: &str = "argon pw";

fn db(text: &str) -> PasswordDb {
    PasswordDb::parse(Path::new("passwd"), text.as_bytes()).expect("valid password file")
}

fn error(text: &str) -> (usize, PasswdError) {
    let e = PasswordDb::parse(Path::new("passwd"), text.as_bytes()).expect_err("invalid");
    (e.line, e.error)
}

#[test]
fn mosquitto_passwd_vectors_verify() {
    let d = db(VECTORS);
    assert_eq!(d.len(), 4);
    assert_eq!(d.verify("alice", b"correct horse"), Verify::Ok);
    assert_eq!(d.verify("alice", b"correct hors"), Verify::WrongPassword);
    assert_eq!(d.verify("alice", b""), Verify::WrongPassword);
    assert_eq!(d.verify("bob", b"b0b!"), Verify::Ok);
    assert_eq!(d.verify("carol", b"c4rol"), Verify::Ok);
    assert_eq!(d.verify("carol", b"C4rol"), Verify::WrongPassword);
    assert_eq!(d.verify("dave", b"long salt pw"), Verify::Ok);
    assert_eq!(d.verify("eve", b"x"), Verify::UnknownUser);
    assert_eq!(
        d.scheme("bob"),
        Some(Scheme::Pbkdf2Sha512 {
            iterations: 1000,
            salt_len: 12
        })
    );
    assert_eq!(
        d.scheme("dave"),
        Some(Scheme::Pbkdf2Sha512 {
            iterations: 1000,
            salt_len: 64
        })
    );
    assert_eq!(d.scheme("carol"), Some(Scheme::Sha512));
    let summary = d.schemes_summary();
    assert!(
        summary.contains("$7$ PBKDF2-SHA512 (1000 iterations) x2"),
        "{summary}"
    );
    assert!(!summary.contains("RKoC2V5B"), "never a hash in the summary");
}

#[test]
fn argon2id_round_trip() {
    let phc = hash_argon2id(ARGON_PW.as_bytes()).expect("hash");
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    let d = db(&format!("ann:{phc}\n"));
    assert_eq!(d.verify("ann", ARGON_PW.as_bytes()), Verify::Ok);
    assert_eq!(d.verify("ann", b"argon pW"), Verify::WrongPassword);
    assert_eq!(
        d.scheme("ann"),
        Some(Scheme::Argon2id {
            m_kib: 19456,
            t: 2,
            p: 1
        })
    );
    assert!(d.scheme("ann").is_some_and(Scheme::is_slow));
}

#[test]
fn argon2id_with_other_parameters_verifies_with_its_own() {
    // Mosquitto 2.1's parameters shape (t=1, p=1), smaller memory to keep the test quick.
    let params = argon2::Params::new(1024, 1, 1, Some(64)).expect("params");
    let salt = argon2::password_hash::SaltString::encode_b64(&[7u8; 16]).expect("salt");
    let phc = argon2::PasswordHasher::hash_password(
        &argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params),
        b"pw",
        &salt,
    )
    .expect("hash")
    .to_string();
    let d = db(&format!("x:{phc}\n"));
    assert_eq!(d.verify("x", b"pw"), Verify::Ok);
    assert_eq!(d.verify("x", b"pw2"), Verify::WrongPassword);
}

#[test]
fn pbkdf2_lines_have_mosquitto_passwd_shape_and_verify() {
    let line = hash_pbkdf2(b"s3cret", 101).expect("hash");
    let parts: Vec<&str> = line.split('$').collect();
    assert_eq!(parts[..3], ["", "7", "101"]);
    assert_eq!(parts[3].len(), 16, "12-byte salt");
    assert_eq!(parts[4].len(), 88, "64-byte hash");
    let d = db(&format!("u:{line}\n"));
    assert_eq!(d.verify("u", b"s3cret"), Verify::Ok);
    assert!(hash_pbkdf2(b"x", 0).is_err());
}

#[test]
fn comments_whitespace_and_crlf() {
    let d = db("# comment\n\n   \n  alice  :  $7$101$RKoC2V5B46k44pmS$FZVOkQea3OtVvX/Btq+3SsLcx9tRXF2QO9JbjOEjzAXfiUor7cssF52nC5NS9xQAEca5BEfuyQPBJ0hJUnC9ag==\r\n");
    assert_eq!(d.len(), 1);
    assert_eq!(d.line("alice"), Some(4));
    assert_eq!(d.verify("alice", b"correct horse"), Verify::Ok);
    // An indented '#' is not a comment: Mosquitto reads it as a user named "# x".
    assert!(db("  # x:$7$101$RKoC2V5B46k44pmS$FZVOkQea3OtVvX/Btq+3SsLcx9tRXF2QO9JbjOEjzAXfiUor7cssF52nC5NS9xQAEca5BEfuyQPBJ0hJUnC9ag==\n").contains("# x"));
}

#[test]
fn refused_lines_name_their_line() {
    let good = "alice:$7$101$RKoC2V5B46k44pmS$FZVOkQea3OtVvX/Btq+3SsLcx9tRXF2QO9JbjOEjzAXfiUor7cssF52nC5NS9xQAEca5BEfuyQPBJ0hJUnC9ag==\n";
    type Expect = fn(&PasswdError) -> bool;
    let cases: Vec<(String, Expect)> = vec![
        (format!("{good}justaname\n"), |e| *e == PasswdError::MissingColon),
        (format!("{good}bob:\n"), |e| matches!(e, PasswdError::EmptyHash(_))),
        (format!("{good}bob:   \n"), |e| matches!(e, PasswdError::EmptyHash(_))),
        (format!("{good}:$7$1$a$b\n"), |e| *e == PasswdError::EmptyUsername),
        (format!("{good}bob:plaintext\n"), |e| matches!(e, PasswdError::UnknownScheme(_))),
        (format!("{good}bob:$1$abc$def\n"), |e| matches!(e, PasswdError::UnknownScheme(_))),
        (format!("{good}bob:$7$0$RKoC2V5B46k44pmS$FZVOkQea3OtVvX/Btq+3SsLcx9tRXF2QO9JbjOEjzAXfiUor7cssF52nC5NS9xQAEca5BEfuyQPBJ0hJUnC9ag==\n"), |e| matches!(e, PasswdError::Malformed { .. })),
        (format!("{good}bob:$7$1x$RKoC2V5B46k44pmS$FZVOkQea3OtVvX/Btq+3SsLcx9tRXF2QO9JbjOEjzAXfiUor7cssF52nC5NS9xQAEca5BEfuyQPBJ0hJUnC9ag==\n"), |e| matches!(e, PasswdError::Malformed { .. })),
        (format!("{good}bob:$7$101$!!!!$FZVOkQea3OtVvX/Btq+3SsLcx9tRXF2QO9JbjOEjzAXfiUor7cssF52nC5NS9xQAEca5BEfuyQPBJ0hJUnC9ag==\n"), |e| matches!(e, PasswdError::Malformed { .. })),
        (format!("{good}bob:$7$101$RKoC2V5B46k44pmS$FZVOkQea\n"), |e| matches!(e, PasswdError::Malformed { .. })),
        (format!("{good}bob:$7$101$AAAA$FZVOkQea3OtVvX/Btq+3SsLcx9tRXF2QO9JbjOEjzAXfiUor7cssF52nC5NS9xQAEca5BEfuyQPBJ0hJUnC9ag==\n"), |e| matches!(e, PasswdError::Malformed { .. })),
        (format!("{good}bob:$6$RKoC2V5B46k44pmS\n"), |e| matches!(e, PasswdError::Malformed { .. })),
        (format!("{good}bob:$argon2id$v=19$m=19456,t=2,p=1$bad\n"), |e| matches!(e, PasswdError::Malformed { .. })),
        (format!("{good}bob:$argon2i$v=19$m=4096,t=3,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A\n"), |e| matches!(e, PasswdError::UnknownScheme(_))),
        (format!("{good}bob:a:b\n"), |e| *e == PasswdError::ExtraColon),
        (format!("{good}{good}"), |e| matches!(e, PasswdError::Duplicate { first_line: 1, .. })),
        (format!("{good}bob\0:x\n"), |e| *e == PasswdError::Nul),
    ];
    for (text, expected) in cases {
        let (line, e) = error(&text);
        assert_eq!(line, 2, "{text:?}");
        assert!(expected(&e), "{text:?}: {e:?}");
        let shown = format!("{e}");
        assert!(
            !shown.contains("FZVOkQea"),
            "never a hash in an error: {shown}"
        );
    }
    let e = PasswordDb::parse(Path::new("/etc/mosquitto/passwd"), b"x:y\n").expect_err("bad");
    assert!(
        e.to_string().starts_with("/etc/mosquitto/passwd:1: "),
        "{e}"
    );
}

#[test]
fn fingerprint_changes_with_the_line() {
    let a = db(VECTORS);
    let b = db(&VECTORS.replace("alice:$7$101$RKoC", "alice:$7$102$RKoC"));
    assert_ne!(a.entry_fingerprint("alice"), b.entry_fingerprint("alice"));
    assert_eq!(a.entry_fingerprint("bob"), b.entry_fingerprint("bob"));
    assert_eq!(a.entry_fingerprint("nobody"), None);
}
