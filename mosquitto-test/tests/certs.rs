//! Client certificates as identities (`[identity]`), end to end: a TLS listener with
//! `require_certificate true`, a CA, server and client certificates made at test time with
//! openssl, and libmosquitto's clients (`mosquitto_pub` / `mosquitto_sub`) presenting them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mosquitto_test::pki::Pki;
use mosquitto_test::*;

/// A plugin broker whose (only) listener requires a client certificate signed by the test CA.
fn tls_config(pki: &Pki, acl: &str, toml: &str) -> BrokerConfig {
    BrokerConfig::new(Mode::Plugin)
        .acl_file(acl)
        .toml(toml)
        .file("ca.crt", pki.read("ca.crt"))
        .file("server.crt", pki.read("server.crt"))
        .file("server.key", pki.read("server.key"))
        .extra(
            "cafile {dir}/ca.crt\ncertfile {dir}/server.crt\nkeyfile {dir}/server.key\n\
             require_certificate true\n",
        )
}

fn tls_broker(pki: &Pki, passwd: Option<String>, acl: &str, toml: &str) -> Broker {
    let config = tls_config(pki, acl, toml);
    match passwd {
        Some(p) => config.password_file(p).start(),
        None => config.start(),
    }
}

/// libmosquitto client arguments for a TLS connection with `cert`'s certificate.
fn tls_args(b: &Broker, pki: &Pki, cert: &str, client_id: &str) -> Vec<String> {
    vec![
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        b.port().to_string(),
        "--cafile".into(),
        pki.path("ca.crt").display().to_string(),
        "--cert".into(),
        pki.path(&format!("{cert}.crt")).display().to_string(),
        "--key".into(),
        pki.path(&format!("{cert}.key")).display().to_string(),
        "-i".into(),
        client_id.into(),
    ]
}

/// Publishes one QoS 1 message; true when the broker accepted the connection.
fn publish(
    b: &Broker,
    pki: &Pki,
    cert: &str,
    client_id: &str,
    login: Option<(&str, &str)>,
    topic: &str,
) -> bool {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(tls_args(b, pki, cert, client_id))
        .args(["-t", topic, "-m", "m", "-q", "1"]);
    if let Some((u, p)) = login {
        cmd.args(["-u", u, "-P", p]);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("mosquitto_pub")
        .success()
}

/// Subscribes with `cert`, then has `publisher` publish to `topic`; true if it arrived.
fn delivered(
    b: &Broker,
    pki: &Pki,
    cert: &str,
    client_id: &str,
    filter: &str,
    publisher: &str,
    topic: &str,
) -> bool {
    let sub = Command::new("mosquitto_sub")
        .args(tls_args(b, pki, cert, client_id))
        .args(["-t", filter, "-C", "1", "-W", "5", "-q", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub");
    wait_log(b, &format!("as {client_id} "));
    std::thread::sleep(Duration::from_millis(200)); // SUBSCRIBE follows CONNACK
    assert!(
        publish(b, pki, publisher, &format!("{publisher}-pub"), None, topic),
        "publisher refused"
    );
    let out = sub.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stdout).contains('m')
}

fn wait_log(b: &Broker, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

const FLEET_ACL: &str = "pattern readwrite devices/%u/#\nuser dev2\ntopic read firmware/#\n";

#[test]
fn identity_from_common_name_with_suffix_drives_the_acl() {
    let pki = Pki::new();
    pki.issue("dev1", "/CN=dev1.clients.mqtt.example.com", None);
    pki.issue("dev2", "/CN=dev2.clients.mqtt.example.com", None);
    pki.issue("stranger", "/CN=dev3.clients.evil.example.com", None);
    pki.issue("slash", "/CN=a\\/b.clients.mqtt.example.com", None);
    pki.issue("platform", "/CN=platform.clients.mqtt.example.com", None);
    let b = tls_broker(
        &pki,
        None,
        FLEET_ACL,
        "[identity]\nstrip_suffix = \".clients.mqtt.example.com\"\nsuperusers = [\"platform\"]\n",
    );
    assert!(publish(&b, &pki, "dev1", "c1", None, "devices/dev1/t"));
    assert!(
        !publish(&b, &pki, "stranger", "c3", None, "devices/dev3/t"),
        "suffix mismatch"
    );
    assert!(
        !publish(&b, &pki, "slash", "c4", None, "x"),
        "'/' in the identity"
    );
    wait_log(&b, "does not end with");
    // %u is the identity: dev1 reads its own tree, not dev2's; `user dev2` rules apply.
    assert!(delivered(
        &b,
        &pki,
        "dev1",
        "s1",
        "devices/dev1/#",
        "platform",
        "devices/dev1/cmd"
    ));
    assert!(!delivered(
        &b,
        &pki,
        "dev1",
        "s2",
        "devices/#",
        "platform",
        "devices/dev2/cmd"
    ));
    assert!(delivered(
        &b,
        &pki,
        "dev2",
        "s3",
        "firmware/#",
        "platform",
        "firmware/v2"
    ));
    // The superuser reads everything.
    assert!(delivered(
        &b,
        &pki,
        "platform",
        "s4",
        "devices/#",
        "platform",
        "devices/dev2/cmd"
    ));
}

#[test]
fn identity_from_dns_subject_alt_name() {
    let pki = Pki::new();
    pki.issue(
        "multi",
        "/CN=ignored",
        Some("DNS:bad/one.devices.example.com,DNS:dev7.devices.example.com"),
    );
    pki.issue("nosan", "/CN=dev8", None);
    pki.issue("platform", "/CN=platform", None);
    let b = tls_broker(
        &pki,
        None,
        FLEET_ACL,
        "[identity]\nsource = \"san_dns\"\nstrip_suffix = \".devices.example.com\"\n",
    );
    assert!(publish(&b, &pki, "multi", "c1", None, "devices/dev7/t"));
    assert!(!publish(&b, &pki, "nosan", "c2", None, "devices/dev8/t"));
    wait_log(&b, "the certificate has no DNS subjectAltName");
}

#[test]
fn password_required_with_the_certificate() {
    let pki = Pki::new();
    pki.issue("dev1", "/CN=dev1", None);
    let b = tls_broker(
        &pki,
        Some(passwd_file(&[
            ("dev1", "pw1", Scheme::Pbkdf2),
            ("other", "pw2", Scheme::Pbkdf2),
        ])),
        FLEET_ACL,
        "[identity]\npassword = \"require\"\n",
    );
    assert!(publish(
        &b,
        &pki,
        "dev1",
        "c1",
        Some(("dev1", "pw1")),
        "devices/dev1/t"
    ));
    assert!(!publish(
        &b,
        &pki,
        "dev1",
        "c2",
        Some(("dev1", "wrong")),
        "devices/dev1/t"
    ));
    assert!(!publish(&b, &pki, "dev1", "c3", None, "devices/dev1/t"));
    assert!(!publish(
        &b,
        &pki,
        "dev1",
        "c4",
        Some(("other", "pw2")),
        "devices/dev1/t"
    ));
    wait_log(&b, "username must equal the certificate identity");
}

#[test]
fn client_id_bound_to_the_identity() {
    let pki = Pki::new();
    pki.issue("dev1", "/CN=dev1", None);
    let equal = tls_broker(&pki, None, FLEET_ACL, "[identity]\nclientid = \"equal\"\n");
    assert!(publish(
        &equal,
        &pki,
        "dev1",
        "dev1",
        None,
        "devices/dev1/t"
    ));
    assert!(!publish(
        &equal,
        &pki,
        "dev1",
        "dev2",
        None,
        "devices/dev1/t"
    ));
    assert!(!publish(
        &equal,
        &pki,
        "dev1",
        "dev1-ui",
        None,
        "devices/dev1/t"
    ));
    let prefix = tls_broker(&pki, None, FLEET_ACL, "[identity]\nclientid = \"prefix\"\n");
    assert!(publish(
        &prefix,
        &pki,
        "dev1",
        "dev1-ui",
        None,
        "devices/dev1/t"
    ));
    assert!(!publish(
        &prefix,
        &pki,
        "dev1",
        "dev10",
        None,
        "devices/dev1/t"
    ));
}

#[test]
fn revoked_certificates_are_refused_and_kicked_on_reload() {
    let pki = Pki::new();
    let serial1 = pki.issue("dev1", "/CN=dev1", None);
    let serial2 = pki.issue("dev2", "/CN=dev2", None);
    let mut b = tls_config(&pki, FLEET_ACL, "[identity]\nrevoked = \"{dir}/revoked\"\n")
        .file("revoked", format!("# stolen\n{serial1}\n"))
        .start();
    assert!(
        !publish(&b, &pki, "dev1", "c1", None, "devices/dev1/t"),
        "revoked at connect"
    );
    wait_log(&b, "the certificate is revoked");
    // dev2 connects and stays; then its certificate is revoked and the broker reloads.
    let mut sub = Command::new("mosquitto_sub")
        .args(tls_args(&b, &pki, "dev2", "dev2-live"))
        .args(["-t", "devices/dev2/#", "-W", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub");
    wait_log(&b, "as dev2-live ");
    std::fs::write(b.dir().join("revoked"), format!("{serial1}\n{serial2}\n")).expect("write");
    b.reload();
    wait_log(
        &b,
        &format!(
            "revoked (serial {})",
            serial2.trim_start_matches('0').to_lowercase()
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let kicked = loop {
        let log = b.log();
        let after_reload = log.rsplit("Reloading config").next().unwrap_or("");
        if after_reload
            .lines()
            .any(|l| l.contains("dev2-live") && l.contains("disconnected"))
        {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = sub.kill();
    let _ = sub.wait();
    assert!(
        kicked,
        "dev2-live was not disconnected after the reload; log:\n{}",
        b.log()
    );
}
