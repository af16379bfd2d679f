//! Password files: vectors written by the real `mosquitto_passwd` and by libargon2 (the
//! reference implementation Mosquitto 2.1 links), every refused line with its line number,
//! comments/whitespace/CRLF, and the hashing functions the CLI uses.

use std::collections::BTreeSet;
use std::path::Path;

use mqttguard::passwd::hash::{hash_argon2id, hash_pbkdf2, ARGON2ID_M_KIB, ARGON2ID_P, ARGON2ID_T};
use mqttguard::passwd::{PasswdError, PasswordDb, Scheme, Verify};
use mqttguard::policy::{load_file, LoadError};

// --- Vectors -----------------------------------------------------------------------------------

/// `mosquitto_passwd -b -c FILE alice 'correct horse'` (2.0.11: $7$, 101 iterations, 12-byte salt).
const ALICE: &str = "alice:$7$101$RKoC2V5B46k44pmS$FZVOkQea3OtVvX/Btq+3SsLcx9tRXF2QO9JbjOEjzAXfiUor7cssF52nC5NS9xQAEca5BEfuyQPBJ0hJUnC9ag==";
/// `mosquitto_passwd -b -I 1000 FILE bob 'b0b!'`.
const BOB: &str = "bob:$7$1000$Pfa0rIdjylJDzmmq$DRooejuIvy2h3lmp8cyLhohOF96q8qWxS8wCk0GQszdGB3jbiO8rz/eItVSGrWRpdL/ZzFUnaQLFZBMqDLMZeQ==";
/// `mosquitto_passwd -b -H sha512 FILE carol c4rol` ($6$, 12-byte salt).
const CAROL: &str = "carol:$6$1w32hjbDJ6DspDhN$PadttJOXUYKcTMAVfFaiEqWdEnrOiuzv8qwJKorESwVIPq9CI9Jek+8+qP0kLVUUqP+s05Gbt7FyAPoUdECbWQ==";
/// `mosquitto_passwd -b FILE 'dan the man' 'pw with spaces'`: spaces inside a username are kept.
const DAN: &str = "dan the man:$7$101$gJ071g/U2nsBKv0w$5cibnO+qEPXmRKTqvmaWm1u5KHV1Ay+8N5pCykBYnlPVQWv9Jv4Fr7UvCM6zeSYcv7KCo30JpiRIWaBDP6npLA==";
/// `mosquitto_passwd -b FILE binpw $'p\xffw\xc3'`: password bytes are not necessarily UTF-8.
const BINPW: &str = "binpw:$7$101$FRKGAsT+vy97tQEU$sBQseGfB1NqASDl7m0vMRda9FszaW9MMXHoEH7ISlpUwz2iqNXHrvekrZnF+KKt6DOXUCFW9QaG4hkUSgD/GIg==";
/// `mosquitto_passwd -b FILE 'ünï' 'pässwörd'`: UTF-8 username and password.
const UNI: &str = "ünï:$7$101$xK64ZX+fTUj/Vsq4$zn7ri5U8SQwGGoO1Licd2b54H53rIGXrhTEoYpehLyi4QH6f5d4EUB6ZdNCbWZ1xExeJTGrIFSi/T1k4TRSjLQ==";
/// $7$ with a 64-byte salt (bytes 0..=63) and 1000 iterations as Mosquitto 2.1 writes it,
/// password "long salt pw"; computed and cross-checked with Python's hashlib.pbkdf2_hmac.
const DAVE: &str = "dave:$7$1000$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$Iy52sBziyDIwfb1Cj4Pq8NbquUNzSosXSREe2ZeUjVmz44QNvrbcPyDLDBRh6ZyL3mRh1XVLPEf890CjFkSeAA==";
/// $6$ with a 64-byte salt (bytes 64..=127; Mosquitto 2.1 accepts it), password "erin pw",
/// computed with Python's hashlib.sha512(password + salt).
const ERIN: &str = "erin:$6$QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9gYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+fw==$ar2b8z2kjatB4Es+YjCFwfCBYAiXrN8rXBde82n1gGkHupoRMdfss5nBTRtX/PN/I5fHrzvt37/FU9abQ1LdXg==";

/// The reference `argon2` CLI (libargon2 20171227, Debian package `argon2`):
/// `printf 'argon pw' | argon2 mqttguardsalt16B -id -t 2 -k 19456 -p 1 -l 32 -e` (our defaults).
const ANN: &str = "ann:$argon2id$v=19$m=19456,t=2,p=1$bXF0dGd1YXJkc2FsdDE2Qg$e5m70Swk5qDP67jESlX5NeydB6c1T7DLLenV6ebhbwI";
/// Mosquitto 2.1's shape (t=1, p=1, 64-byte salt, 64-byte tag; memory cut to 1 MiB for speed):
/// `printf 'm2.1 pw' | argon2 sixty-four-byte-salt-like-mosquitto-2.1-writes-0123456789abcdefg
/// -id -t 1 -k 1024 -p 1 -l 64 -e`. A 64-byte salt is longer than `password_hash` accepts.
const MO21: &str = "mo21:$argon2id$v=19$m=1024,t=1,p=1$c2l4dHktZm91ci1ieXRlLXNhbHQtbGlrZS1tb3NxdWl0dG8tMi4xLXdyaXRlcy0wMTIzNDU2Nzg5YWJjZGVmZw$tSnWVOn4+u8+SPVixUSMRHvbakgg87n/gEWdkwMCoFWYFvPNZfS5MF6uBAF0tCQBigVZV18M8oaLwmE4910qOQ";
/// `printf lanes | argon2 somesaltsomesalt -id -t 3 -k 256 -p 4 -l 32 -e`: four lanes.
const LANES: &str = "lanes:$argon2id$v=19$m=256,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$hNy0T7Q2RmkNMAo5Alhq0eYs7mrl2qI/AFVULTuB4QI";
/// `printf old | argon2 somesaltsomesalt -id -v 10 -t 1 -k 64 -p 1 -e`: Argon2 version 1.0.
const OLD: &str = "old:$argon2id$v=16$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI";
/// The same with `-i` and `-d`: argon2i and argon2d are refused.
const ARGON2I: &str =
    "$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$DpdiMf6kMIhD4D04dMPf09l54bnWW3mQgJXG6L3OvnY";
const ARGON2D: &str =
    "$argon2d$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$B7zOrLNouJ/mheSkivRqMtgwDMmBDlJ2UaWqybBCsAY";

/// The hash of `ALICE`, for building other lines.
fn alice_hash() -> &'static str {
    ALICE.split_once(':').map_or("", |(_, h)| h)
}

fn db(text: &str) -> PasswordDb {
    db_bytes(text.as_bytes())
}

fn db_bytes(text: &[u8]) -> PasswordDb {
    match PasswordDb::parse(Path::new("passwd"), text) {
        Ok(db) => db,
        Err(e) => panic!("valid password file refused: {e}"),
    }
}

/// The line number and error of a refused file.
fn error(text: &[u8]) -> (usize, PasswdError) {
    match PasswordDb::parse(Path::new("passwd"), text) {
        Ok(_) => panic!("accepted: {:?}", String::from_utf8_lossy(text)),
        Err(e) => (e.line, e.error),
    }
}

fn lines(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

// --- Verification ------------------------------------------------------------------------------

#[test]
fn mosquitto_passwd_vectors_verify() {
    let d = db(&lines(&[ALICE, BOB, CAROL, DAN, BINPW, UNI, DAVE, ERIN]));
    assert_eq!(d.len(), 8);
    assert!(!d.is_empty());
    let ok: [(&str, &[u8]); 8] = [
        ("alice", b"correct horse"),
        ("bob", b"b0b!"),
        ("carol", b"c4rol"),
        ("dan the man", b"pw with spaces"),
        ("binpw", b"p\xffw\xc3"),
        ("ünï", "pässwörd".as_bytes()),
        ("dave", b"long salt pw"),
        ("erin", b"erin pw"),
    ];
    for (user, password) in ok {
        assert!(d.contains(user), "{user}");
        assert_eq!(d.verify(user, password), Verify::Ok, "{user}");
        // One byte more, one byte less, one bit flipped, empty.
        let mut longer = password.to_vec();
        longer.push(b'x');
        assert_eq!(d.verify(user, &longer), Verify::WrongPassword, "{user}");
        assert_eq!(
            d.verify(user, &password[..password.len() - 1]),
            Verify::WrongPassword
        );
        let mut flipped = password.to_vec();
        flipped[0] ^= 0x20;
        assert_eq!(d.verify(user, &flipped), Verify::WrongPassword, "{user}");
        assert_eq!(d.verify(user, b""), Verify::WrongPassword, "{user}");
    }
}

#[test]
fn password_bytes_are_used_as_given() {
    // The plugin layer cuts at the first NUL; here a NUL is an ordinary byte.
    let d = db(&lines(&[ALICE, CAROL]));
    assert_eq!(d.verify("carol", b"c4rol\0"), Verify::WrongPassword);
    assert_eq!(
        d.verify("alice", b"correct horse\0junk"),
        Verify::WrongPassword
    );
    // HMAC zero-pads short keys, so for PBKDF2 trailing NULs do not matter (OpenSSL, thus
    // Mosquitto, computes the same); harmless since passwords reach us cut at the first NUL.
    assert_eq!(d.verify("alice", b"correct horse\0"), Verify::Ok);
}

#[test]
fn unknown_users() {
    let d = db(&lines(&[ALICE, DAN]));
    assert_eq!(d.verify("eve", b"correct horse"), Verify::UnknownUser);
    // Usernames are exact: case-sensitive, no trimming at lookup.
    assert_eq!(d.verify("Alice", b"correct horse"), Verify::UnknownUser);
    assert_eq!(d.verify(" alice", b"correct horse"), Verify::UnknownUser);
    assert_eq!(d.verify("dan", b"pw with spaces"), Verify::UnknownUser);
    assert_eq!(d.verify("", b""), Verify::UnknownUser);
    assert!(!d.contains("eve"));
    assert_eq!(d.scheme("eve"), None);
    assert_eq!(d.line("eve"), None);
    assert_eq!(d.entry_fingerprint("eve"), None);
}

#[test]
fn libargon2_vectors_verify() {
    let d = db(&lines(&[ANN, MO21, LANES, OLD]));
    let cases: [(&str, &[u8]); 4] = [
        ("ann", b"argon pw"),
        ("mo21", b"m2.1 pw"),
        ("lanes", b"lanes"),
        ("old", b"old"),
    ];
    for (user, password) in cases {
        assert_eq!(d.verify(user, password), Verify::Ok, "{user}");
        assert_eq!(d.verify(user, b"wrong"), Verify::WrongPassword, "{user}");
        assert_eq!(d.verify(user, b""), Verify::WrongPassword, "{user}");
    }
    assert_eq!(
        d.scheme("ann"),
        Some(Scheme::Argon2id {
            m_kib: 19456,
            t: 2,
            p: 1
        })
    );
    assert_eq!(
        d.scheme("lanes"),
        Some(Scheme::Argon2id {
            m_kib: 256,
            t: 3,
            p: 4
        })
    );
}

#[test]
fn argon2id_without_version_means_version_16() {
    // libargon2's decoder treats a missing `v=` as version 1.0 (0x10).
    let d = db(&OLD.replace("$v=16$", "$"));
    assert_eq!(d.verify("old", b"old"), Verify::Ok);
}

// --- Accessors ---------------------------------------------------------------------------------

#[test]
fn schemes_lines_and_users() {
    let d = db(&lines(&[
        "# header", ALICE, BOB, CAROL, "", DAVE, ANN, ERIN,
    ]));
    let users: BTreeSet<&str> = d.users().collect();
    assert_eq!(
        users,
        BTreeSet::from(["alice", "ann", "bob", "carol", "dave", "erin"])
    );
    assert_eq!(d.line("alice"), Some(2));
    assert_eq!(d.line("dave"), Some(6));
    assert_eq!(d.line("erin"), Some(8));
    assert_eq!(
        d.scheme("alice"),
        Some(Scheme::Pbkdf2Sha512 {
            iterations: 101,
            salt_len: 12
        })
    );
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
    assert_eq!(d.scheme("erin"), Some(Scheme::Sha512));
    let names: Vec<&str> = ["alice", "carol", "ann"]
        .iter()
        .filter_map(|u| d.scheme(u))
        .map(Scheme::name)
        .collect();
    assert_eq!(names, ["pbkdf2-sha512", "sha512", "argon2id"]);
    assert!(d.stored_hash("alice").is_some());
    assert!(!d.scheme("carol").is_some_and(Scheme::is_slow));
    assert!(!d.scheme("alice").is_some_and(Scheme::is_slow));
    assert!(d.scheme("ann").is_some_and(Scheme::is_slow));
}

#[test]
fn schemes_summary_counts_without_hashes() {
    let d = db(&lines(&[ALICE, BOB, CAROL, DAN, DAVE, ANN, ERIN]));
    assert_eq!(
        d.schemes_summary(),
        "$6$ SHA-512 x2, $7$ PBKDF2-SHA512 (1000 iterations) x2, \
         $7$ PBKDF2-SHA512 (101 iterations) x2, argon2id (m=19456,t=2,p=1) x1"
    );
    assert_eq!(db("# nothing\n").schemes_summary(), "no users");
}

#[test]
fn fingerprint_follows_the_users_line() {
    let base = db(&lines(&[ALICE, BOB]));
    let fp = |d: &PasswordDb, u: &str| d.entry_fingerprint(u);
    // Same text again, other lines moved or added, whitespace and CRLF: unchanged.
    let same = db(&format!(
        "# moved\n\n{BOB}\r\n  {}\t\r\n{CAROL}\n",
        ALICE.replace(':', " : ")
    ));
    assert_eq!(fp(&base, "alice"), fp(&same, "alice"));
    assert_eq!(fp(&base, "bob"), fp(&same, "bob"));
    // Any change to the hash changes it: iterations, salt, a new hash of the same password.
    let iterations = db(&ALICE.replace("$101$", "$102$"));
    assert_ne!(fp(&base, "alice"), fp(&iterations, "alice"));
    let rehashed = match hash_pbkdf2(b"correct horse", 101) {
        Ok(h) => db(&format!("alice:{h}\n")),
        Err(e) => panic!("{e}"),
    };
    assert_ne!(fp(&base, "alice"), fp(&rehashed, "alice"));
    // Two users with the same hash line differ.
    let twin = db(&format!("{ALICE}\nalice2:{}\n", alice_hash()));
    assert_ne!(fp(&twin, "alice"), fp(&twin, "alice2"));
}

#[test]
fn load_reads_the_file_and_names_it() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let good = dir.path().join("passwd");
    let bad = dir.path().join("bad");
    let write = |p: &Path, t: &str| {
        if let Err(e) = std::fs::write(p, t) {
            panic!("{e}")
        }
    };
    write(&good, &lines(&[ALICE, CAROL]));
    write(&bad, &lines(&["# c", ALICE, "carol:plain"]));
    match load_file(&good, PasswordDb::parse) {
        Ok(d) => assert_eq!(d.verify("carol", b"c4rol"), Verify::Ok),
        Err(e) => panic!("{e}"),
    }
    match load_file(&bad, PasswordDb::parse) {
        Err(LoadError::Passwd(e)) => {
            assert_eq!((e.line, e.file.as_path()), (3, bad.as_path()));
            assert!(e.to_string().starts_with(&format!("{}:3: ", bad.display())));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        load_file(&dir.path().join("missing"), PasswordDb::parse),
        Err(LoadError::Io { .. })
    ));
    assert!(matches!(
        load_file(dir.path(), PasswordDb::parse),
        Err(LoadError::Io { .. })
    ));
}

// --- Format ------------------------------------------------------------------------------------

#[test]
fn comments_whitespace_and_crlf() {
    let text = format!(
        "# comment: with colons $7$ and anything\r\n\
         #\n\
         \n\
         \x20\t\r\n\
         \x0b\x0c\n\
         \x20 alice \t:\t {} \r\n\
         {CAROL}\r\n\
         \t{DAN}\x20\n\
         \x20 # x:{}\n\
         {BOB}",
        alice_hash(),
        alice_hash()
    );
    let d = db(&text);
    assert_eq!(d.len(), 5);
    assert_eq!(d.line("alice"), Some(6));
    assert_eq!(d.line("carol"), Some(7));
    assert_eq!(d.line("bob"), Some(10), "last line without a newline");
    assert_eq!(d.verify("alice", b"correct horse"), Verify::Ok);
    assert_eq!(d.verify("carol", b"c4rol"), Verify::Ok);
    assert_eq!(d.verify("dan the man", b"pw with spaces"), Verify::Ok);
    assert_eq!(d.verify("bob", b"b0b!"), Verify::Ok);
    // Only column 0 starts a comment: Mosquitto reads `  # x:...` as the user "# x".
    assert_eq!(d.verify("# x", b"correct horse"), Verify::Ok);
}

#[test]
fn comments_may_hold_anything_but_nul() {
    let d = db_bytes(b"#\xff\xfe not utf-8 : : :\n#plain:text\n");
    assert!(d.is_empty());
    assert_eq!(error(b"# a\n#\0\n").0, 2);
}

#[test]
fn empty_files() {
    for text in ["", "\n", "\r\n", "# only\n", " \n\t\n"] {
        let d = db(text);
        assert!(d.is_empty(), "{text:?}");
        assert_eq!(d.len(), 0);
        assert_eq!(d.users().count(), 0);
    }
}

#[test]
fn base64_padding_may_be_left_out() {
    let unpadded = ALICE.trim_end_matches('=');
    let d = db(unpadded);
    assert_eq!(d.verify("alice", b"correct horse"), Verify::Ok);
    let salt_unpadded = DAVE.replacen("Pw==$", "Pw$", 1);
    assert_eq!(
        db(&salt_unpadded).verify("dave", b"long salt pw"),
        Verify::Ok
    );
}

// --- Refused lines -----------------------------------------------------------------------------

type Expect = fn(&PasswdError) -> bool;

fn malformed(e: &PasswdError) -> bool {
    matches!(e, PasswdError::Malformed { user, .. } if user == "bob")
}

fn unknown(e: &PasswdError) -> bool {
    matches!(e, PasswdError::UnknownScheme(user) if user == "bob")
}

/// Every refused line, placed after a comment, a blank CRLF line and a valid user so its line
/// number is 4.
#[test]
fn refused_lines_name_their_line() {
    let h = alice_hash();
    let (salt12, hash64) = ("RKoC2V5B46k44pmS", &h[h.len() - 88..]);
    let cases: Vec<(String, Expect)> = vec![
        // Structure.
        ("justaname".into(), |e| *e == PasswdError::MissingColon),
        ("  justaname  ".into(), |e| *e == PasswdError::MissingColon),
        ("  # indented comment".into(), |e| {
            *e == PasswdError::IndentedComment
        }),
        (format!("bob:{h}:"), |e| *e == PasswdError::ExtraColon),
        (format!("bob:x:{h}"), |e| *e == PasswdError::ExtraColon),
        (format!("bob:{h}:more"), |e| *e == PasswdError::ExtraColon),
        (format!(":{h}"), |e| *e == PasswdError::EmptyUsername),
        (format!(" \t :{h}"), |e| *e == PasswdError::EmptyUsername),
        ("bob:".into(), |e| *e == PasswdError::EmptyHash("bob".into())),
        ("bob: \t ".into(), |e| *e == PasswdError::EmptyHash("bob".into())),
        // Schemes.
        ("bob:secret".into(), unknown),
        ("bob:$1$abcdefgh$OqVsVzEk1rYs3Drsx1sLO/".into(), unknown),
        ("bob:$5$salt$hash".into(), unknown),
        ("bob:$2y$10$abcdefghijklmnopqrstuu5Z1N2b5bP2xj1wz6n0p5J2X8oV7eEq2".into(), unknown),
        (format!("bob:{ARGON2I}"), unknown),
        (format!("bob:{ARGON2D}"), unknown),
        ("bob:$6".into(), unknown),
        ("bob:6$x$y".into(), unknown),
        // $6$.
        (format!("bob:$6${salt12}"), malformed),
        (format!("bob:$6${salt12}$"), malformed),
        (format!("bob:$6$${hash64}"), malformed),
        (format!("bob:$6$!!!!{salt12}${hash64}"), malformed),
        (format!("bob:$6${salt12}${}", &hash64[..84]), malformed),
        (format!("bob:$6$AAAA${hash64}"), malformed),
        (format!("bob:$6${salt12}${hash64}$x"), malformed),
        // $7$.
        (format!("bob:$7$0${salt12}${hash64}"), malformed),
        (format!("bob:$7$${salt12}${hash64}"), malformed),
        (format!("bob:$7$1x${salt12}${hash64}"), malformed),
        (format!("bob:$7$-5${salt12}${hash64}"), malformed),
        (format!("bob:$7$+5${salt12}${hash64}"), malformed),
        (format!("bob:$7$ 5${salt12}${hash64}"), malformed),
        (format!("bob:$7$99999999999${salt12}${hash64}"), malformed),
        (format!("bob:$7${salt12}${hash64}"), malformed),
        (format!("bob:$7$101${salt12}"), malformed),
        (format!("bob:$7$101${salt12}${hash64}$"), malformed),
        (format!("bob:$7$101$RKoC2V5B46k4*pmS${hash64}"), malformed),
        (format!("bob:$7$101${salt12}${}", hash64.replace('F', "-")), malformed),
        (format!("bob:$7$101${salt12}${}", hash64.replacen('Z', " Z", 1)), malformed),
        // Non-canonical trailing bits: "Zw==" is canonical for one byte, "Zx==" is not.
        (format!("bob:$7$101${salt12}${}Zx==", &hash64[..84]), malformed),
        // Wrong decoded lengths: salt 3 or 16 bytes, hash 63 or 32 bytes.
        (format!("bob:$7$101$AAAA${hash64}"), malformed),
        (format!("bob:$7$101$AAAAAAAAAAAAAAAAAAAAAA==${hash64}"), malformed),
        (format!("bob:$7$101${salt12}${}", &hash64[..84]), malformed),
        (format!("bob:$7$101${salt12}${}", &hash64[..44]), malformed),
        // argon2id.
        ("bob:$argon2id$".into(), malformed),
        ("bob:$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA".into(), malformed),
        ("bob:$argon2id$v=19$m=64,t=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI".into(), malformed),
        ("bob:$argon2id$v=19$m=64,t=0,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI".into(), malformed),
        ("bob:$argon2id$v=18$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI".into(), malformed),
        ("bob:$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI".into(), |e| matches!(e, PasswdError::TooCostly { .. })),
        ("bob:$argon2id$v=19$m=64,t=1,p=1$c2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI".into(), malformed),
        ("bob:$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S".into(), malformed),
        ("bob:$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtI*oXBOmUod/FTFKUeki7Zdz6qukI".into(), malformed),
        ("bob:$argon2id$v=19$m=64,t=1,p=1,keyid=AAAA$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI".into(), malformed),
        // Duplicates, also after trimming.
        (ALICE.into(), |e| {
            *e == PasswdError::Duplicate {
                user: "alice".into(),
                first_line: 3,
            }
        }),
        (format!("  alice\t:{}", BOB.split_once(':').map_or("", |p| p.1)), |e| {
            matches!(e, PasswdError::Duplicate { first_line: 3, .. })
        }),
    ];
    for (line, expected) in cases {
        let text = format!("# header\r\n\r\n{ALICE}\r\n{line}\n{CAROL}\n");
        let (number, e) = error(text.as_bytes());
        assert_eq!(number, 4, "{line:?}: {e:?}");
        assert!(expected(&e), "{line:?}: {e:?}");
        let shown = e.to_string();
        for secret in [
            salt12,
            &hash64[..16],
            &hash64[70..],
            "secret",
            "c29tZXNhbHRz",
            "lv7S",
        ] {
            assert!(
                !shown.contains(secret),
                "{line:?}: hash in message {shown:?}"
            );
        }
    }
}

#[test]
fn bytes_that_are_refused() {
    let h = alice_hash();
    let cases: Vec<(Vec<u8>, Expect)> = vec![
        (format!("bo\0b:{h}").into_bytes(), |e| {
            *e == PasswdError::Nul
        }),
        (format!("bob:{h}\0").into_bytes(), |e| {
            *e == PasswdError::Nul
        }),
        (b"\0".to_vec(), |e| *e == PasswdError::Nul),
        ([b"b\xffob:", h.as_bytes()].concat(), |e| {
            *e == PasswdError::UsernameNotUtf8
        }),
        ([b"\xc3:", h.as_bytes()].concat(), |e| {
            *e == PasswdError::UsernameNotUtf8
        }),
        ([b"bob:", h.as_bytes(), b"\xff"].concat(), unknown),
        (b"bob:\xe2\x82\xac".to_vec(), unknown),
    ];
    for (line, expected) in cases {
        let text = [ALICE.as_bytes(), b"\n", &line, b"\n"].concat();
        let (number, e) = error(&text);
        assert_eq!(number, 2, "{line:?}");
        assert!(expected(&e), "{line:?}: {e:?}");
    }
}

#[test]
fn first_and_last_lines_are_numbered() {
    assert_eq!(error(b"x:y").0, 1);
    assert_eq!(error(b"x:y\n").0, 1);
    let text = format!("{ALICE}\r\n{CAROL}\r\n\r\nbroken");
    assert_eq!(error(text.as_bytes()), (4, PasswdError::MissingColon));
}

#[test]
fn errors_name_file_and_line() {
    let e = match PasswordDb::parse(Path::new("/etc/mosquitto/passwd"), b"\n\nbob:plain\n") {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    assert_eq!(
        e.to_string(),
        "/etc/mosquitto/passwd:3: unsupported password hash for user \"bob\": expected $6$, \
         $7$ or $argon2id$ (plain-text passwords are not accepted)"
    );
    let dup = format!("{ALICE}\n{ALICE}\n");
    let (_, e) = error(dup.as_bytes());
    assert_eq!(e.to_string(), "user \"alice\" is already defined on line 1");
}

/// Loading never verifies: 10,000 users whose hashes are at the cost limits load at once.
#[test]
fn load_decodes_without_verifying() {
    let (salt, hash) = ("RKoC2V5B46k44pmS", &alice_hash()[alice_hash().len() - 88..]);
    let mut text = String::new();
    for i in 0..10_000 {
        if i % 2 == 0 {
            text.push_str(&format!("user{i}:$7$1000000${salt}${hash}\n"));
        } else {
            text.push_str(&format!(
                "user{i}:$argon2id$v=19$m=32768,t=16,p=16$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI\n"
            ));
        }
    }
    // Verifying even one of these would take seconds; loading all of them only parses.
    let d = db(&text);
    assert_eq!(d.len(), 10_000);
    assert_eq!(
        d.scheme("user0"),
        Some(Scheme::Pbkdf2Sha512 {
            iterations: 1_000_000,
            salt_len: 12
        })
    );
}

/// Cost parameters above the documented limits are refused at load, naming the line: one line
/// must not be able to stall the broker on a login.
#[test]
fn costs_above_the_limits_are_refused() {
    use mqttguard::passwd::hash::{
        ARGON2ID_MAX_M_KIB, ARGON2ID_MAX_P, ARGON2ID_MAX_T, ARGON2ID_MAX_WORK,
        PBKDF2_MAX_ITERATIONS,
    };
    assert_eq!(PBKDF2_MAX_ITERATIONS, 1_000_000);
    assert_eq!(
        (
            ARGON2ID_MAX_M_KIB,
            ARGON2ID_MAX_T,
            ARGON2ID_MAX_P,
            ARGON2ID_MAX_WORK
        ),
        (1 << 19, 16, 16, 1 << 19)
    );
    let (salt, hash) = ("RKoC2V5B46k44pmS", &alice_hash()[alice_hash().len() - 88..]);
    let pbkdf2 = |n: u64| format!("x:$7${n}${salt}${hash}");
    let argon = |m: u64, t: u64, p: u64| {
        format!("x:$argon2id$v=19$m={m},t={t},p={p}$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI")
    };
    // At the limits: accepted (not verified at load).
    for ok in [
        pbkdf2(1_000_000),
        argon(1 << 19, 1, 1),
        argon(32_768, 16, 1),
        argon(32_768, 16, 16),
        argon(4096, 3, 16),
    ] {
        db(&lines(&[ALICE, &ok]));
    }
    let cases: [(String, &str, u64, u64); 7] = [
        (pbkdf2(1_000_001), "iterations", 1_000_001, 1_000_000),
        (
            pbkdf2(u64::from(u32::MAX)),
            "iterations",
            u32::MAX.into(),
            1_000_000,
        ),
        (
            argon((1 << 19) + 1, 1, 1),
            "memory (m, KiB)",
            (1 << 19) + 1,
            1 << 19,
        ),
        (
            argon(2_097_152, 1, 1),
            "memory (m, KiB)",
            2_097_152,
            1 << 19,
        ),
        (argon(64, 17, 1), "passes (t)", 17, 16),
        (argon(256, 1, 17), "lanes (p)", 17, 16),
        (argon(1 << 18, 3, 1), "work (m x t)", 3 << 18, 1 << 19),
    ];
    for (line, what, value, limit) in cases {
        let (at, e) = error(lines(&[ALICE, &line]).as_bytes());
        assert_eq!(at, 2, "{line}");
        match &e {
            PasswdError::TooCostly {
                user,
                what: w,
                value: v,
                limit: l,
                ..
            } => assert_eq!(
                (user.as_str(), *w, *v, *l),
                ("x", what, value, limit),
                "{line}"
            ),
            other => panic!("{line}: {other:?}"),
        }
        let shown = e.to_string();
        assert!(
            shown.contains(&format!("{value} is above mqttguard's limit of {limit}")),
            "{shown}"
        );
        assert!(!shown.contains("lv7S4Da2"), "{shown}");
    }
}

/// A UTF-8 byte order mark at the start of the file would become part of the first username
/// (Mosquitto does that): refused, naming line 1. Elsewhere it is just a byte of a name.
#[test]
fn byte_order_mark_is_refused() {
    let text = format!("\u{feff}{ALICE}\n{BOB}\n");
    let (line, e) = error(text.as_bytes());
    assert_eq!((line, e), (1, PasswdError::ByteOrderMark));
    let e = PasswordDb::parse(Path::new("/etc/mosquitto/passwd"), text.as_bytes())
        .map(|_| ())
        .unwrap_err();
    assert!(
        e.to_string().starts_with("/etc/mosquitto/passwd:1: "),
        "{e}"
    );
    assert!(e.to_string().contains("byte order mark"), "{e}");
    // Also before a comment or an empty first line.
    assert_eq!(error(b"\xef\xbb\xbf# comment\n").0, 1);
    assert_eq!(error(b"\xef\xbb\xbf\n").0, 1);
    // A file without one is fine.
    assert_eq!(db(&format!("{ALICE}\n")).len(), 1);
}

/// The parser's whitespace is C `isspace`, shared with `mqttguard passwd` through
/// `line_username`.
#[test]
fn username_whitespace_is_c_isspace() {
    use mqttguard::passwd::{line_username, trim_c_space};
    let text = format!("alice\x0b:{}\n", alice_hash());
    let d = db(&text);
    assert_eq!(d.verify("alice", b"correct horse"), Verify::Ok);
    for line in [
        format!("alice\x0b:{}", alice_hash()),
        format!("\x0c alice\t\r:{}", alice_hash()),
    ] {
        assert_eq!(line_username(line.as_bytes()), Some(&b"alice"[..]));
    }
    assert_eq!(line_username(b"# alice:x"), None);
    assert_eq!(line_username(b"alice"), None);
    // Non-ASCII spaces are not trimmed (nor by Mosquitto).
    assert_eq!(
        trim_c_space("\u{a0}a\u{a0}".as_bytes()),
        "\u{a0}a\u{a0}".as_bytes()
    );
}

// --- Hashing for the CLI -----------------------------------------------------------------------

#[test]
fn hash_pbkdf2_writes_what_mosquitto_passwd_writes() {
    for iterations in [101, 1000] {
        let hash = match hash_pbkdf2(b"s3cret", iterations) {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        };
        // Same shape as ALICE's hash from mosquitto_passwd: $7$<n>$<16 chars>$<88 chars>.
        let parts: Vec<&str> = hash.split('$').collect();
        let reference: Vec<&str> = alice_hash().split('$').collect();
        assert_eq!(parts.len(), reference.len());
        assert_eq!(parts[..2], ["", "7"]);
        assert_eq!(parts[2], iterations.to_string());
        assert_eq!(parts[3].len(), reference[3].len(), "12-byte salt");
        assert_eq!(parts[4].len(), reference[4].len(), "64-byte hash");
        assert!(parts[4].ends_with("=="));
        let d = db(&format!("u:{hash}\n"));
        assert_eq!(d.verify("u", b"s3cret"), Verify::Ok);
        assert_eq!(d.verify("u", b"s3cres"), Verify::WrongPassword);
        assert_eq!(
            d.scheme("u"),
            Some(Scheme::Pbkdf2Sha512 {
                iterations,
                salt_len: 12
            })
        );
    }
    // A fresh salt each time.
    assert_ne!(hash_pbkdf2(b"x", 101).ok(), hash_pbkdf2(b"x", 101).ok());
    assert!(hash_pbkdf2(b"x", 0).is_err());
    // Passwords are bytes: non-UTF-8 passwords round-trip.
    let hash = hash_pbkdf2(b"p\xffw", 101).unwrap_or_default();
    assert_eq!(db(&format!("u:{hash}")).verify("u", b"p\xffw"), Verify::Ok);
}

#[test]
fn hash_argon2id_uses_the_documented_defaults_and_verifies() {
    let phc = match hash_argon2id(b"argon pw") {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    };
    let prefix = format!("$argon2id$v=19$m={ARGON2ID_M_KIB},t={ARGON2ID_T},p={ARGON2ID_P}$");
    assert_eq!(prefix, "$argon2id$v=19$m=19456,t=2,p=1$");
    let rest = phc.strip_prefix(&prefix).unwrap_or_default();
    let (salt, tag) = rest.split_once('$').unwrap_or_default();
    assert_eq!(salt.len(), 22, "16-byte salt, unpadded");
    assert_eq!(tag.len(), 43, "32-byte tag, unpadded");
    let d = db(&format!("ann:{phc}\n"));
    assert_eq!(d.verify("ann", b"argon pw"), Verify::Ok);
    assert_eq!(d.verify("ann", b"argon pW"), Verify::WrongPassword);
    assert_eq!(
        d.scheme("ann"),
        Some(Scheme::Argon2id {
            m_kib: 19456,
            t: 2,
            p: 1
        })
    );
    assert_ne!(hash_argon2id(b"x").ok(), hash_argon2id(b"x").ok());
}
