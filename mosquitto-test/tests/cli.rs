//! Password files written by the `mqttguard` command, used by the real broker: a `$7$` line
//! logs in through Mosquitto's own `password_file`, an argon2id line through the plugin.

use std::process::Command;

use mosquitto_test::*;

fn passwd(args: &[&str]) {
    let out = Command::new(mqttguard_cli())
        .arg("passwd")
        .args(args)
        .output()
        .expect("run mqttguard passwd");
    assert!(
        out.status.success(),
        "mqttguard passwd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn code(b: &Broker, user: &str, password: &str) -> Option<u8> {
    Client::connack_code(b.port(), &ConnectOpts::v311("c").login(user, password))
}

#[test]
fn pbkdf2_user_logs_in_to_mosquittos_own_password_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("passwd");
    let f = file.to_str().expect("utf-8 path");
    passwd(&[
        "--create",
        f,
        "sensor1",
        "--batch",
        "s3cret pw",
        "--scheme",
        "pbkdf2",
    ]);
    passwd(&[
        f, "sensor2", "-b", "other", "--scheme", "pbkdf2", "-I", "101",
    ]);
    let b = BrokerConfig::new(Mode::Builtin)
        .password_file(std::fs::read(&file).expect("read password file"))
        .start();
    assert_eq!(
        code(&b, "sensor1", "s3cret pw"),
        Some(0),
        "right password refused"
    );
    assert_eq!(
        code(&b, "sensor2", "other"),
        Some(0),
        "101 iterations refused"
    );
    assert_eq!(
        code(&b, "sensor1", "wrong"),
        Some(not_authorised(Proto::V311))
    );
    assert_eq!(
        code(&b, "nobody", "s3cret pw"),
        Some(not_authorised(Proto::V311))
    );
}

#[test]
fn argon2id_user_logs_in_through_the_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("passwd");
    let f = file.to_str().expect("utf-8 path");
    passwd(&["--create", f, "alice", "--batch", "pw-alice"]);
    let b = BrokerConfig::new(Mode::Plugin)
        .password_file(std::fs::read(&file).expect("read password file"))
        .start();
    assert_eq!(
        code(&b, "alice", "pw-alice"),
        Some(0),
        "right password refused"
    );
    assert_eq!(
        code(&b, "alice", "pw-bob"),
        Some(not_authorised(Proto::V311))
    );
}
