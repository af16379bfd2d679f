//! Broken files at startup. Mosquitto refuses every ACL file its parser rejects; the plugin must
//! refuse the same files and name `file:line` in the log. Password-file lines that Mosquitto 2.0
//! silently drops (it starts anyway), and a NUL byte in the ACL file (Mosquitto silently ignores
//! the rest of the file), are errors in the plugin: deliberately stricter.

use mosquitto_test::*;

/// (ACL text, line the plugin must name). Mosquitto 2.0 refuses each of these too.
const BROKEN_ACLS: &[(&str, usize)] = &[
    ("user alice\ntopic readwrite a/#\nbogus line\n", 3),
    ("topic foo bar\n", 1),
    ("user alice\n  # indented comment\n", 2),
    ("topic read a/#/b\n", 1),
    ("topic read a+\n", 1),
    ("user alice\n\ttopic read x\n", 2),
    ("user alice\ntopic read x\nTOPIC read y\n", 3),
    ("topic read x\nuser\n", 2),
    ("pattern readwrite dev/%c/#\npattern\n", 2),
];

#[test]
fn broken_acl_builtin_refuses_to_start() {
    for (acl, _) in BROKEN_ACLS {
        let f = BrokerConfig::new(Mode::Builtin)
            .acl_file(acl)
            .start_expect_failure();
        assert!(
            f.refused(),
            "built-in accepted ACL {acl:?}; log:\n{}",
            f.log
        );
    }
}

#[test]
fn broken_acl_plugin_refuses_to_start_naming_the_line() {
    let mut problems = Vec::new();
    for (acl, line) in BROKEN_ACLS {
        let f = BrokerConfig::new(Mode::Plugin)
            .acl_file(acl)
            .start_expect_failure();
        if !f.refused() {
            problems.push(format!(
                "ACL {acl:?}: not refused ({}); log:\n{}",
                f.status, f.log
            ));
        } else if !f.names_line("acl", *line) {
            problems.push(format!(
                "ACL {acl:?}: log does not name acl:{line}; log:\n{}",
                f.log
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn nul_byte_in_acl_builtin_ignores_rest_plugin_refuses() {
    let acl = "user alice\ntopic read x\0\ntopic readwrite #\n";
    // Mosquitto 2.0 starts (and silently drops everything after the NUL).
    let b = BrokerConfig::new(Mode::Builtin).acl_file(acl).start();
    drop(b);
    let f = BrokerConfig::new(Mode::Plugin)
        .acl_file(acl)
        .start_expect_failure();
    assert!(f.refused());
    assert!(f.names_line("acl", 2), "log:\n{}", f.log);
}

fn good_line(user: &str) -> String {
    passwd_line(user, "pw", Scheme::Pbkdf2)
}

/// (password file text, line the plugin must name). Mosquitto 2.0 drops these lines and starts.
fn broken_passwds() -> Vec<(String, usize)> {
    let alice = good_line("alice");
    let zero_iter = good_line("dave").replacen("$7$101$", "$7$0$", 1);
    let six = passwd_line("erin", "pw", Scheme::Sha512);
    let bad_b64 = {
        // erin:$6$<salt>$<hash> with the hash's base64 broken
        let (head, _) = six.rsplit_once('$').unwrap();
        format!("{head}$!!!not-base64!!!")
    };
    vec![
        (format!("{alice}\nbob:\n"), 2),
        (format!("{alice}\ncarol:plaintext\n"), 2),
        (format!("{zero_iter}\n"), 1),
        (format!("{alice}\n{bad_b64}\n"), 2),
        (format!("{alice}\nfrank:$5$abc$def\n"), 2),
        (format!("{alice}\n{}\n", good_line("alice")), 2),
        (format!("{alice}\njustaname\n"), 2),
        // Cost parameters above mqttguard's limits (a login would stall the broker).
        (
            format!(
                "{alice}\n{}\n",
                good_line("dave").replacen("$7$101$", "$7$1000001$", 1)
            ),
            2,
        ),
        (format!("{alice}\n{ARGON_SLOW}\n"), 2),
        (
            format!(
                "{alice}\n{}\n",
                ARGON_SLOW
                    .replace("t=4294967295", "t=1")
                    .replace("m=65536", "m=2097152")
            ),
            2,
        ),
        (
            format!(
                "{alice}\n{}\n",
                ARGON_SLOW
                    .replace("t=4294967295", "t=1")
                    .replace("p=1", "p=64")
            ),
            2,
        ),
        // A UTF-8 byte order mark would become part of the first username.
        (format!("\u{feff}{alice}\n{}\n", good_line("bob")), 1),
    ]
}

/// An argon2id line whose passes would make one login last for days.
const ARGON_SLOW: &str = "frank:$argon2id$v=19$m=65536,t=4294967295,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI";

/// The refusal says which limit, so the operator can fix the line.
#[test]
fn costly_hash_refusal_names_the_limit() {
    let alice = good_line("alice");
    for (pw, words) in [
        (
            format!(
                "{alice}\n{}\n",
                good_line("dave").replacen("$7$101$", "$7$1000001$", 1)
            ),
            "iterations 1000001 is above mqttguard's limit of 1000000",
        ),
        (
            format!("{alice}\n{ARGON_SLOW}\n"),
            "passes (t) 4294967295 is above mqttguard's limit of 16",
        ),
    ] {
        let f = BrokerConfig::new(Mode::Plugin)
            .password_file(&pw)
            .start_expect_failure();
        assert!(f.refused(), "log:\n{}", f.log);
        assert!(f.names_line("passwd", 2), "log:\n{}", f.log);
        assert!(f.log.contains(words), "expected {words:?}; log:\n{}", f.log);
    }
    let f = BrokerConfig::new(Mode::Plugin)
        .password_file(format!("\u{feff}{alice}\n"))
        .start_expect_failure();
    assert!(f.refused(), "log:\n{}", f.log);
    assert!(f.names_line("passwd", 1), "log:\n{}", f.log);
    assert!(f.log.contains("byte order mark"), "log:\n{}", f.log);
}

#[test]
fn broken_password_file_builtin_starts_anyway() {
    for (pw, _) in broken_passwds() {
        let b = BrokerConfig::new(Mode::Builtin).password_file(&pw).start();
        drop(b);
    }
}

#[test]
fn broken_password_file_plugin_refuses_naming_the_line() {
    let mut problems = Vec::new();
    for (pw, line) in broken_passwds() {
        let f = BrokerConfig::new(Mode::Plugin)
            .password_file(&pw)
            .start_expect_failure();
        if !f.refused() {
            problems.push(format!(
                "passwd {pw:?}: not refused ({}); log:\n{}",
                f.status, f.log
            ));
        } else if !f.names_line("passwd", line) {
            problems.push(format!(
                "passwd {pw:?}: log does not name passwd:{line}; log:\n{}",
                f.log
            ));
        }
        // Never a password or a hash in the log.
        for l in pw.lines() {
            if let Some((_, hash)) = l.split_once(':') {
                if hash.len() > 8 && f.log.contains(hash) {
                    problems.push(format!("log contains a hash: {hash}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn missing_files_refuse_to_start() {
    for (key, file) in [("acl_file", "acl"), ("password_file", "passwd")] {
        let f = BrokerConfig::new(Mode::Plugin)
            .plugin_opt(key, "{dir}/does-not-exist")
            .start_expect_failure();
        assert!(f.refused(), "{key}: log:\n{}", f.log);
        assert!(
            f.log.contains("does-not-exist"),
            "{key} ({file}): log does not name the file:\n{}",
            f.log
        );
    }
}

#[test]
fn unknown_plugin_opt_refuses_to_start() {
    let f = BrokerConfig::new(Mode::Plugin)
        .acl_file("topic read x\n")
        .plugin_opt("acl_fil", "/etc/mosquitto/acl")
        .start_expect_failure();
    assert!(f.refused(), "log:\n{}", f.log);
    assert!(
        f.log.contains("acl_fil"),
        "log does not name the option:\n{}",
        f.log
    );
}

#[test]
fn broken_toml_config_refuses_to_start() {
    for (toml, line) in [
        ("[acl]\ncheck_subscribe = true\ncheck_subscrbe = true\n", 3),
        ("[acl]\ncheck_subscribe = maybe\n", 2),
        ("[acll]\n", 1),
    ] {
        let f = BrokerConfig::new(Mode::Plugin)
            .acl_file("topic read x\n")
            .toml(toml)
            .start_expect_failure();
        assert!(f.refused(), "{toml:?}: log:\n{}", f.log);
        assert!(
            f.names_line("mqttguard.toml", line),
            "{toml:?}: log does not name mqttguard.toml:{line}:\n{}",
            f.log
        );
    }
}

/// The same limits on SIGHUP: a password file with a costly line (or a byte order mark) is
/// refused naming its line, and the previous one stays in force.
#[test]
fn costly_hash_or_bom_on_reload_keeps_the_previous_file() {
    let alice = good_line("alice");
    let mut b = BrokerConfig::new(Mode::Plugin)
        .password_file(format!("{alice}\n"))
        .start();
    let login = |user: &str| ConnectOpts::v311(format!("c-{user}")).login(user, "pw");
    assert_eq!(Client::connack_code(b.port(), &login("alice")), Some(0));
    for (text, line) in [
        (format!("{}\n{ARGON_SLOW}\n", good_line("carol")), 2),
        (format!("\u{feff}{}\n", good_line("carol")), 1),
    ] {
        b.write_passwd(&text);
        b.reload();
        assert!(b.log_names_line("passwd", line), "log:\n{}", b.log());
        assert_eq!(Client::connack_code(b.port(), &login("alice")), Some(0));
        assert_ne!(Client::connack_code(b.port(), &login("carol")), Some(0));
    }
}
