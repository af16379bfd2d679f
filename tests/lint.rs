//! `mqttguard::lint`: the checks on parsed policies, one by one.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use mqttguard::acl::AclPolicy;
use mqttguard::acl::UserLine;
use mqttguard::lint::{
    codes, lint_acl, lint_files, lint_passwd, passwd_entries, Finding, Inputs, PasswdEntry, Report,
    Severity,
};
use mqttguard::passwd::hash::{hash_argon2id, hash_pbkdf2};
use mqttguard::passwd::{PasswordDb, Scheme};
use mqttguard::topic::filter_covers;

fn acl_findings(text: &str) -> Vec<Finding> {
    let policy = AclPolicy::parse(Path::new("acl"), text.as_bytes()).expect("valid ACL");
    lint_acl(&policy)
}

/// (line, code) of every finding.
fn found(text: &str) -> Vec<(usize, &'static str)> {
    acl_findings(text)
        .into_iter()
        .map(|f| {
            assert_eq!(f.severity, Severity::Warning);
            assert_eq!(f.file, Path::new("acl"));
            (f.line, f.code)
        })
        .collect()
}

#[test]
fn coverage_of_filters() {
    for (general, specific) in [
        ("#", "#"),
        ("#", "a/b"),
        ("#", "+/b/#"),
        ("a/#", "a"),
        ("a/#", "a/#"),
        ("a/#", "a/+/c"),
        ("+/b", "a/b"),
        ("+/b", "+/b"),
        ("a/+/#", "a/b/c/#"),
        ("+/#", "a"),
        ("$SYS/#", "$SYS/broker/x"),
        ("a/b", "a/b"),
        ("+/secret", "%c/secret"),
        ("dev/%c/#", "dev/%c/x"),
    ] {
        assert!(
            filter_covers(general, specific),
            "{general} should cover {specific}"
        );
    }
    for (general, specific) in [
        ("a/b", "a/#"),
        ("a/+", "a/#"),
        ("a/+", "a"),
        ("a/+/#", "a"),
        ("a/b", "a/+"),
        ("a/b", "a/c"),
        ("a/b", "a/b/c"),
        ("a/b/c", "a/b"),
        ("#", "$SYS/x"),
        ("+/x", "$SYS/x"),
        ("dev/%c", "dev/x"),
        ("dev/%c", "dev/%u"),
        ("a//b", "a/b"),
    ] {
        assert!(
            !filter_covers(general, specific),
            "{general} should not cover {specific}"
        );
    }
}

#[test]
fn access_word_without_topic() {
    assert_eq!(
        found("topic read\nuser a\ntopic write\ntopic deny\npattern read\ntopic readwrite\n"),
        [
            (1, codes::ACCESS_WORD_AS_TOPIC),
            (3, codes::ACCESS_WORD_AS_TOPIC),
            (4, codes::ACCESS_WORD_AS_TOPIC),
            (5, codes::ACCESS_WORD_AS_TOPIC),
            (5, codes::PATTERN_WITHOUT_SUBSTITUTION),
            // A `topic` rule of `user a` follows it.
            (5, codes::PATTERN_IN_USER_BLOCK),
            (6, codes::ACCESS_WORD_AS_TOPIC),
        ]
    );
    // With an access word and a topic named like a word, all is as written.
    assert_eq!(
        found("user a\ntopic read read\ntopic readwrite write/x\n"),
        []
    );
    let f = &acl_findings("topic   write  \n")[0];
    assert!(
        f.message.contains("`topic write` has no topic"),
        "{}",
        f.message
    );
    assert!(f.message.contains("topic named \"write\""), "{}", f.message);
}

#[test]
fn allow_shadowed_by_a_deny_of_the_same_list() {
    let text = "\
user a
topic read x/y
topic deny x/#
topic write z/+/w
topic deny z/+/+
user b
topic read x/y
pattern deny z/%c/#
pattern write z/%c/w
pattern read q/+/%u
";
    assert_eq!(
        found(text),
        [
            (2, codes::SHADOWED_BY_DENY),
            (4, codes::SHADOWED_BY_DENY),
            (9, codes::SHADOWED_BY_DENY),
        ]
    );
    let f = acl_findings(text);
    assert!(
        f[0].message.contains("line 3: topic deny x/#"),
        "{}",
        f[0].message
    );
    assert!(
        f[1].message.contains("line 5: topic deny z/+/+"),
        "{}",
        f[1].message
    );
    assert!(
        f[2].message.contains("line 8: pattern deny z/%c/#"),
        "{}",
        f[2].message
    );
    // `user b`'s x/y is not in `user a`'s list; a partial deny shadows nothing.
    assert_eq!(found("topic read a/#\ntopic deny a/b\n"), []);
    // A deny in the anonymous list does not shadow a user's rules, nor patterns.
    assert_eq!(
        found("topic deny #\nuser a\ntopic read a/#\npattern read p/%c\n"),
        []
    );
}

#[test]
fn duplicates() {
    assert_eq!(
        found("user a\ntopic read x\ntopic write x\ntopic read x\nuser b\ntopic read x\nuser a\ntopic read x\n"),
        [(4, codes::DUPLICATE_RULE), (8, codes::DUPLICATE_RULE)]
    );
    let f = &acl_findings("topic deny x\ntopic deny x\n")[0];
    assert_eq!((f.line, f.code), (2, codes::DUPLICATE_RULE));
    assert!(f.message.contains("line 1: topic deny x"));
}

#[test]
fn patterns_and_substitution() {
    assert_eq!(
        found("pattern read all/#\npattern read dev/%c/#\npattern write in/%u\npattern read x/id-%c\ntopic read dev/%c\nuser a\ntopic write %u/x\n"),
        [
            (1, codes::PATTERN_WITHOUT_SUBSTITUTION),
            (5, codes::SUBSTITUTION_IN_TOPIC),
            (7, codes::SUBSTITUTION_IN_TOPIC),
        ]
    );
}

#[test]
fn pattern_among_the_rules_of_a_user_block() {
    let text = "\
user a
topic read a/#
pattern read p/%c
topic write a/w
user b
topic read b/#
pattern write q/%c
pattern read r/%u
";
    let f = acl_findings(text);
    assert_eq!(
        f.iter().map(|f| (f.line, f.code)).collect::<Vec<_>>(),
        [(3, codes::PATTERN_IN_USER_BLOCK)]
    );
    assert!(
        f[0].message.contains("`user a` (line 1)"),
        "{}",
        f[0].message
    );
}

#[test]
fn users_without_rules() {
    let f = acl_findings("user a\nuser b\ntopic read b\nuser c\n  user   a\n");
    assert_eq!(
        f.iter().map(|f| (f.line, f.code)).collect::<Vec<_>>(),
        [
            (1, codes::USER_WITHOUT_RULES),
            (4, codes::USER_WITHOUT_RULES)
        ]
    );
    assert!(f[0]
        .message
        .contains("no pattern rules: it is denied everything"));
    // With patterns, the patterns are what is left for the user.
    let f = acl_findings("user a\npattern read p/%c\n");
    assert_eq!(f.len(), 1);
    assert!(
        f[0].message.contains("only the pattern rules apply"),
        "{}",
        f[0].message
    );
    // A user with rules in a later block of the same name is fine.
    assert_eq!(
        found("user a\nuser b\ntopic read b\nuser a\ntopic read a\n"),
        []
    );
}

#[test]
fn the_parser_keeps_user_lines() {
    let text = b"# user commented\nuser alice\n  user  bob  \r\ntopic read user x\nuser a b\n";
    let policy = AclPolicy::parse(Path::new("acl"), text).expect("valid ACL");
    assert_eq!(
        policy.user_lines(),
        [
            UserLine {
                name: "alice".into(),
                line: 2
            },
            UserLine {
                name: "bob".into(),
                line: 3
            },
            UserLine {
                name: "a b".into(),
                line: 5
            },
        ]
    );
}

/// A `$6$` hash of "pw" (salt "0123456789ab").
const SHA512_PW: &str = "$6$MDEyMzQ1Njc4OWFi$8/vLlIBNWDWQNrOsnABF7HBJVefyJvNB1+8wiFDgRR4kb+nKGzWaXywQa+GaVEC8ptdoroDyOZKpi4iEm1M3Ww==";

#[test]
fn password_hash_warnings() {
    let text = format!(
        "# comment\nold:{SHA512_PW}\nmqtt20:{}\n\nmqtt21:{}\nnew:{}\n",
        hash_pbkdf2(b"pw", 101).unwrap(),
        hash_pbkdf2(b"pw", 1000).unwrap(),
        hash_argon2id(b"pw").unwrap(),
    );
    let db = PasswordDb::parse(Path::new("passwd"), text.as_bytes()).expect("valid file");
    let entries = passwd_entries(&db);
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.name.as_str(), e.line))
            .collect::<Vec<_>>(),
        [("old", 2), ("mqtt20", 3), ("mqtt21", 5), ("new", 6)]
    );
    assert_eq!(entries[0].scheme, Scheme::Sha512);
    let f = lint_passwd(Path::new("passwd"), &entries);
    assert_eq!(
        f.iter().map(|f| (f.line, f.code)).collect::<Vec<_>>(),
        [(2, codes::WEAK_HASH), (3, codes::LOW_ITERATIONS)]
    );
    assert!(f[0].message.contains("user old"), "{}", f[0].message);
    assert!(f[1].message.contains("101"), "{}", f[1].message);
    let none: [PasswdEntry; 0] = [];
    assert!(lint_passwd(Path::new("p"), &none).is_empty());
}

/// Above the recommended costs (below the load limits) a line is slow; below OWASP's weakest
/// argon2id setting it is weak.
#[test]
fn password_cost_warnings() {
    let salt_hash = &hash_pbkdf2(b"pw", 1).unwrap()["$7$1$".len()..];
    let argon = |m: u32, t: u32| {
        format!("$argon2id$v=19$m={m},t={t},p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI")
    };
    let text = format!(
        "at:$7$210000${salt_hash}\n         above:$7$210001${salt_hash}\n         limit:$7$1000000${salt_hash}\n         rfc:{}\n         big:{}\n         owasp7:{}\n         weak:{}\n         tiny:{}\n         mo21:{}\n",
        argon(65_536, 3),
        argon(65_536, 4),
        argon(7_168, 5),
        argon(7_168, 4),
        argon(64, 1),
        argon(47_104, 1),
    );
    let db = PasswordDb::parse(Path::new("passwd"), text.as_bytes()).expect("valid file");
    let f = lint_passwd(Path::new("passwd"), &passwd_entries(&db));
    assert_eq!(
        f.iter().map(|f| (f.line, f.code)).collect::<Vec<_>>(),
        [
            (2, codes::SLOW_HASH),
            (3, codes::SLOW_HASH),
            (5, codes::SLOW_HASH),
            (7, codes::LOW_ARGON2ID_COST),
            (8, codes::LOW_ARGON2ID_COST),
        ]
    );
    assert!(
        f[0].message.contains("user above") && f[0].message.contains("210001"),
        "{}",
        f[0].message
    );
    assert!(
        f[2].message.contains("m=65536") && f[2].message.contains("t=4"),
        "{}",
        f[2].message
    );
    // The CLI's own default is not weak.
    let own = format!("u:{}\n", hash_argon2id(b"pw").unwrap());
    let db = PasswordDb::parse(Path::new("p"), own.as_bytes()).unwrap();
    assert!(lint_passwd(Path::new("p"), &passwd_entries(&db)).is_empty());
}

#[test]
fn report_exit_codes_and_display() {
    let warning = Finding {
        severity: Severity::Warning,
        file: "acl".into(),
        line: 3,
        code: codes::DUPLICATE_RULE,
        message: "duplicate of line 2: topic read x".into(),
    };
    assert_eq!(
        warning.to_string(),
        "acl:3: warning: duplicate of line 2: topic read x [duplicate-rule]"
    );
    let error = Finding {
        severity: Severity::Error,
        file: "passwd".into(),
        line: 0,
        code: codes::UNREADABLE,
        message: "No such file or directory (os error 2)".into(),
    };
    assert_eq!(
        error.to_string(),
        "passwd: error: No such file or directory (os error 2) [unreadable]"
    );
    let mut report = Report::default();
    assert_eq!(report.exit_code(), 0);
    report.findings.push(warning);
    assert_eq!(
        (report.warnings(), report.errors(), report.exit_code()),
        (1, 0, 1)
    );
    report.findings.push(error);
    assert_eq!(
        (report.warnings(), report.errors(), report.exit_code()),
        (1, 1, 2)
    );
}

#[test]
fn files_parse_errors_and_cross_checks() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    let passwd = dir.path().join("passwd");
    let config = dir.path().join("mqttguard.toml");

    // Parse errors keep the parser's file and line.
    fs::write(&acl, "user a\ntopic read a/#\ntopic raed b\n").unwrap();
    fs::write(&config, "[acl]\n\nnope = 1\n").unwrap();
    let report = lint_files(Inputs {
        acl: Some(&acl),
        passwd: None,
        config: Some(&config),
    });
    let errors: Vec<(&Path, usize, &str)> = report
        .findings
        .iter()
        .map(|f| (f.file.as_path(), f.line, f.code))
        .collect();
    assert_eq!(
        errors,
        [
            (config.as_path(), 3, codes::PARSE),
            (acl.as_path(), 3, codes::PARSE)
        ]
    );
    assert!(report.findings[1].message.contains("raed"));
    assert_eq!(report.exit_code(), 2);

    // Missing files.
    let report = lint_files(Inputs {
        passwd: Some(&dir.path().join("missing")),
        ..Inputs::default()
    });
    assert_eq!(report.findings[0].code, codes::UNREADABLE);
    assert_eq!(report.findings[0].line, 0);

    // Cross checks and file mode.
    fs::write(
        &acl,
        "user alice\ntopic read a/#\nuser bob\ntopic read b/#\n",
    )
    .unwrap();
    fs::write(
        &passwd,
        "alice:$7$1000$l4HAXFATaNYdVTsS$40yKiht6QsFUEf3vF4vcZ/zqhgwMha10HxSbHDDcrX94UOkIl7K904XdLzVcb5AmtOO6HLFcj4Q5GW8QHassqg==\n\
         carol:$7$1000$rp4mNMrTn3S3/fR/$P0zORZzQpedBoHX5WwORGCMxnp/pCYiXwy0LK5o532nm3TBZxAGz4BUgyGL/GezH2fzdkA21a1Szh4OFdclDwQ==\n",
    )
    .unwrap();
    fs::set_permissions(&passwd, fs::Permissions::from_mode(0o600)).unwrap();
    let inputs = Inputs {
        acl: Some(&acl),
        passwd: Some(&passwd),
        config: None,
    };
    let report = lint_files(inputs);
    let got: Vec<(&Path, usize, &str)> = report
        .findings
        .iter()
        .map(|f| (f.file.as_path(), f.line, f.code))
        .collect();
    assert_eq!(
        got,
        [
            (acl.as_path(), 3, codes::ACL_USER_NOT_IN_PASSWD),
            (passwd.as_path(), 2, codes::PASSWD_USER_NOT_IN_ACL),
        ]
    );
    assert_eq!(report.exit_code(), 1);

    fs::set_permissions(&passwd, fs::Permissions::from_mode(0o644)).unwrap();
    let report = lint_files(inputs);
    assert!(report
        .findings
        .iter()
        .any(|f| f.file == passwd && f.line == 0 && f.code == codes::WORLD_READABLE));
    fs::set_permissions(&passwd, fs::Permissions::from_mode(0o640)).unwrap();
    let report = lint_files(inputs);
    assert!(!report
        .findings
        .iter()
        .any(|f| f.code == codes::WORLD_READABLE));
}

#[test]
fn checks_the_plugin_makes_across_files_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    let config = dir.path().join("mqttguard.toml");
    fs::write(&acl, "user alice\ntopic read a/#\n").unwrap();
    let inputs = Inputs {
        acl: Some(&acl),
        passwd: None,
        config: Some(&config),
    };

    // The revocation list named by [identity] is read at load.
    let revoked = dir.path().join("revoked");
    fs::write(
        &config,
        format!("[identity]\nrevoked = \"{}\"\n", revoked.display()),
    )
    .unwrap();
    let report = lint_files(inputs);
    assert_eq!(report.exit_code(), 2);
    assert_eq!(report.findings[0].file, revoked);
    assert_eq!(report.findings[0].code, codes::UNREADABLE);
    fs::write(&revoked, "0x01\nnot-hex\n").unwrap();
    let report = lint_files(inputs);
    assert_eq!(
        (report.findings[0].file.as_path(), report.findings[0].line),
        (revoked.as_path(), 2)
    );

    // The plugin's own load warnings are passed on.
    fs::write(&config, "[identity]\nsuperusers = [\"root\", \"alice\"]\n").unwrap();
    let report = lint_files(inputs);
    let warnings: Vec<&Finding> = report.findings.iter().collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].code, codes::PLUGIN_WARNING);
    assert_eq!(warnings[0].file, config);
    assert!(warnings[0].message.contains("superuser \"root\""));
}
