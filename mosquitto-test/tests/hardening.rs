//! The plugin under attack: each test reproduces a defect found by trying mqttguard
//! adversarially against a real broker (Mosquitto 2.1.2 unless it says 2.0), and checks the
//! fix. Attackers here only do what any MQTT client can: pick client ids and usernames, send
//! CONNECT and vanish, reconnect with the same id, guess passwords, flood.

use std::process::Command;
use std::time::Duration;

use mosquitto_test::broker::free_port;
use mosquitto_test::pki::Pki;
use mosquitto_test::*;
use Scheme::*;

fn connect(b: &Broker, opts: ConnectOpts) -> Client {
    Client::connect(b.port(), &opts)
        .unwrap_or_else(|e| panic!("connect {opts:?} refused: {e:?}; broker log:\n{}", b.log()))
}

/// A QoS 1 PUBACK that accepted the message (v5: 0x10 "no matching subscribers" too).
fn allowed(code: Option<u8>) -> bool {
    matches!(code, Some(0) | Some(0x10))
}

/// An argon2id line costly enough (hundreds of milliseconds in a test build) that a test can
/// act while the broker's verification threads are still hashing it.
fn slow_line(user: &str, password: &str) -> String {
    format!(
        "{user}:{}",
        argon2id_hash_with(password.as_bytes(), 32 * 1024, 12)
    )
}

/// #1 (critical, 2.1): a verification computed for one connection completed another one with
/// the same client id. Connection A (alice, right password) vanishes while its hash is being
/// verified; connection B takes the same client id as `admin` with a wrong password. B must
/// never be let in, however the two interleave.
#[test]
fn a_verified_result_never_logs_in_another_connection() {
    let mut pw = slow_line("alice", "alice-pw");
    pw.push('\n');
    pw.push_str(&passwd_line("admin", "admin-pw", Argon2id));
    pw.push('\n');
    let b = BrokerConfig::new(Mode::Plugin)
        .password_file(pw)
        .acl_file("user admin\ntopic readwrite admin/#\nuser alice\ntopic readwrite alice/#\n")
        .start();
    for round in 0..4 {
        for proto in [Proto::V311, Proto::V5] {
            let id = format!("X{round}");
            let a = Client::send_connect(
                b.port(),
                &ConnectOpts::new(proto, &id).login("alice", "alice-pw"),
            )
            .expect("send A's CONNECT");
            // Let the broker read A's CONNECT and start verifying, then vanish.
            std::thread::sleep(Duration::from_millis(40));
            a.drop_connection();
            std::thread::sleep(Duration::from_millis(40));
            let opts = ConnectOpts::new(proto, &id).login("admin", "wrong");
            match Client::connect(b.port(), &opts) {
                Ok(mut admin) => {
                    let code = admin.publish("admin/secret", b"x", 1, false);
                    panic!(
                        "round {round} {proto:?}: B logged in as admin with a wrong password \
                         (publish to admin/secret: {code:?}); log:\n{}",
                        b.log()
                    );
                }
                Err(Refused::Code(c)) => assert_eq!(c, not_authorised(proto)),
                Err(Refused::NoConnack(_)) => {} // the broker may refuse a duplicate id outright
            }
        }
    }
    // The plugin still answers the real users afterwards.
    let c = connect(&b, ConnectOpts::v5("alice-ok").login("alice", "alice-pw"));
    drop(c);
}

/// #1 with the login racing itself: the same client id reconnects as the same user with the
/// right password after the first attempt vanished. The second connection is answered for
/// itself (accepted), the first result is dropped.
#[test]
fn a_reconnect_with_the_same_id_is_answered_for_itself() {
    let mut pw = slow_line("alice", "alice-pw");
    pw.push('\n');
    let b = BrokerConfig::new(Mode::Plugin)
        .password_file(pw)
        .acl_file("user alice\ntopic readwrite alice/#\n")
        .start();
    let a = Client::send_connect(b.port(), &ConnectOpts::v311("same").login("alice", "wrong"))
        .expect("send A's CONNECT");
    std::thread::sleep(Duration::from_millis(40));
    a.drop_connection();
    std::thread::sleep(Duration::from_millis(40));
    let mut c = connect(&b, ConnectOpts::v311("same").login("alice", "alice-pw"));
    assert_eq!(c.publish("alice/x", b"1", 1, false), Some(0));
    assert!(
        c.is_connected(),
        "alice was disconnected; log:\n{}",
        b.log()
    );
}

/// #5 (2.1): a connection waiting for its verification when the password file changes and
/// SIGHUP arrives must be judged by the new file: the old password no longer works.
#[test]
fn a_pending_login_is_judged_by_the_policy_in_force_when_answered() {
    let mut b = BrokerConfig::new(Mode::Plugin)
        .password_file(format!("{}\n", slow_line("alice", "old-pw")))
        .acl_file("user alice\ntopic readwrite alice/#\n")
        .start();
    let pending = Client::send_connect(
        b.port(),
        &ConnectOpts::v5("alice-1").login("alice", "old-pw"),
    )
    .expect("send CONNECT");
    std::thread::sleep(Duration::from_millis(30));
    b.write_passwd(format!("{}\n", passwd_line("alice", "new-pw", Argon2id)));
    b.reload();
    match pending.await_connack() {
        // On 2.0 the verification runs on the broker's thread, so the CONNACK may have been
        // sent before the reload; the reload's re-authentication must then disconnect it.
        Ok(mut c) => assert!(
            !c.is_connected(),
            "the old password was accepted after the password file changed; log:\n{}",
            b.log()
        ),
        Err(Refused::Code(c)) => assert_eq!(c, not_authorised(Proto::V5)),
        Err(Refused::NoConnack(e)) => panic!("no CONNACK ({e}); log:\n{}", b.log()),
    }
    connect(&b, ConnectOpts::v5("alice-2").login("alice", "new-pw"));
}

const THROTTLE: &str = "[auth]\nfailures_before_backoff = 3\nbackoff_seconds = 60\n";

/// #3 (2.0 and 2.1): a password guesser is slowed: after repeated failures, attempts for that
/// username from that address are refused without hashing, even with the right password; the
/// real user connecting from another address still gets in, and the refusal is logged with
/// its reason and the client's address.
#[test]
fn repeated_failures_are_throttled_per_username_and_address() {
    let pw = passwd_file(&[
        ("admin", "admin-pw", Argon2id),
        ("other", "other-pw", Pbkdf2),
    ]);
    let b = BrokerConfig::new(Mode::Plugin)
        .password_file(pw)
        .toml(THROTTLE)
        .acl_file("user admin\ntopic readwrite admin/#\nuser other\ntopic readwrite other/#\n")
        .start();
    let guess = |pw: &str, from: &str| {
        Client::connack_code(
            b.port(),
            &ConnectOpts::v5("guesser")
                .login("admin", pw)
                .from_address(from),
        )
    };
    for n in 0..3 {
        assert_eq!(
            guess(&format!("guess-{n}"), "127.0.0.1"),
            Some(not_authorised(Proto::V5))
        );
    }
    // The attacker now has the right password: still refused from that address.
    assert_eq!(
        guess("admin-pw", "127.0.0.1"),
        Some(not_authorised(Proto::V5)),
        "a throttled address was let in; log:\n{}",
        b.log()
    );
    let log = b.log();
    assert!(
        log.contains("throttled") && log.contains("127.0.0.1"),
        "no throttled denial line naming the address; log:\n{log}"
    );
    // The real admin from another address, and another user from the attacker's address.
    connect(
        &b,
        ConnectOpts::v5("admin-real")
            .login("admin", "admin-pw")
            .from_address("127.0.0.2"),
    );
    connect(
        &b,
        ConnectOpts::v311("other")
            .login("other", "other-pw")
            .from_address("127.0.0.1"),
    );
}

/// #2 (2.1) and #3: a flood of CONNECTs with 64 KB wrong passwords for one user does a
/// bounded number of hashes (the rest are refused unhashed: throttled, or over the per-user
/// limit of verifications in flight), does not keep a legitimate argon2id login made right
/// after it from getting in, and the broker still stops. (The figures are measured by
/// mosquitto-test/bench/flood.py.)
#[test]
fn a_login_flood_does_bounded_work_and_does_not_starve_a_real_user() {
    let pw = passwd_file(&[
        ("admin", "admin-pw", Argon2id),
        ("carol", "carol-pw", Argon2id),
    ]);
    let mut b = BrokerConfig::new(Mode::Plugin)
        .password_file(pw)
        .acl_file("user carol\ntopic readwrite carol/#\n")
        // A backoff longer than the test, so how many logins are hashed does not depend on
        // how fast the flood is sent: at most the 5 failures before backoff plus the 2
        // verifications per user already in flight.
        .toml("[log]\ndenials_per_second = 100000\n[auth]\nbackoff_seconds = 300\n")
        .start();
    let port = b.port();
    let big = vec![b'x'; 65_000];
    let flood: Vec<Client> = (0..300)
        .filter_map(|i| {
            Client::send_connect(
                port,
                &ConnectOpts::v311(format!("f{i}")).login("admin", &big),
            )
            .ok()
        })
        .collect();
    let mut carol = connect(
        &b,
        ConnectOpts::v5("carol")
            .login("carol", "carol-pw")
            .from_address("127.0.0.2"),
    );
    assert!(allowed(carol.publish("carol/x", b"1", 1, false)));
    // Every flood connection is answered, and only a few were hashed.
    let mut answered = 0;
    for c in flood {
        if let Err(Refused::Code(_) | Refused::NoConnack(_)) = c.await_connack() {
            answered += 1;
        }
    }
    assert_eq!(
        answered,
        300,
        "a flood login was accepted; log:\n{}",
        b.log()
    );
    let log = b.log();
    let hashed = log
        .lines()
        .filter(|l| l.contains("denied connect") && l.contains("wrong password"))
        .count();
    let unhashed = log
        .lines()
        .filter(|l| l.contains("denied connect") && (l.contains("throttled") || l.contains("busy")))
        .count();
    assert!(
        hashed <= 7 && hashed + unhashed >= 290,
        "{hashed} flood logins were hashed, {unhashed} refused unhashed; log:\n{log}"
    );
    let status = b.stop().expect("broker was running");
    assert!(
        status.success() || status.code().is_some(),
        "broker did not exit cleanly: {status:?}"
    );
}

/// #4: a reload that adds `[identity]` (with a revocation list) to a plugin started without
/// basic auth cannot be enforced without the basic-auth callback: it is refused, logged, and
/// the previous policy stays in force. The log never claims what is not enforced.
#[test]
fn a_reload_that_needs_other_broker_callbacks_is_refused() {
    let mut b = BrokerConfig::new(Mode::Plugin)
        .allow_anonymous(true)
        .acl_file("topic readwrite a/#\n")
        .toml("[log]\ndenials = \"notice\"\n")
        .file("revoked", "01\n")
        .start();
    let mut c = connect(&b, ConnectOpts::v5("anon"));
    assert!(allowed(c.publish("a/1", b"x", 1, false)));
    b.write_acl("topic readwrite b/#\n");
    std::fs::write(
        b.dir().join("mqttguard.toml"),
        format!(
            "[identity]\nsource = \"cn\"\nrevoked = \"{}\"\n",
            broker_path(&b.dir().join("revoked")).display()
        ),
    )
    .expect("write toml");
    b.reload();
    let log = b.log();
    assert!(
        !log.contains("revoked certificates"),
        "the log claims a revocation list that no callback enforces:\n{log}"
    );
    assert!(
        log.contains("reload refused") || log.contains("reload failed"),
        "no refusal logged:\n{log}"
    );
    // The whole previous policy stays: a/# still allowed, b/# not yet.
    let mut c = connect(&b, ConnectOpts::v5("anon2"));
    assert!(allowed(c.publish("a/1", b"x", 1, false)));
    assert_eq!(
        c.publish("b/1", b"x", 1, false),
        Some(0x87),
        "log:\n{}",
        b.log()
    );
}

/// #6: a certificate whose CN is a T61String with byte 0xE9 becomes, under
/// `use_identity_as_username`, a username that is not UTF-8. It is a username all the same:
/// the anonymous rules never apply to it.
#[test]
fn a_username_that_is_not_utf8_never_gets_the_anonymous_rules() {
    let pki = Pki::new();
    // string_mask nombstr: a Latin-1 byte makes openssl choose a T61String.
    let mut conf =
        b"[req]\nprompt = no\nstring_mask = nombstr\ndistinguished_name = dn\n[dn]\nCN = caf"
            .to_vec();
    conf.push(0xE9);
    conf.push(b'\n');
    pki.issue_with_config("cafe", &conf);
    let asn1 = Command::new("openssl")
        .args(["asn1parse", "-in"])
        .arg(pki.path("cafe.crt"))
        .output()
        .expect("asn1parse");
    let asn1 = String::from_utf8_lossy(&asn1.stdout).to_string();
    assert!(
        asn1.contains("T61STRING"),
        "openssl made no T61String CN:\n{asn1}"
    );

    let tls_port = free_port();
    let pw = passwd_file(&[("obs", "obs-pw", Pbkdf2)]);
    let read = |f: &str| pki.read(f);
    let b = BrokerConfig::new(Mode::Plugin)
        .password_file(pw)
        .acl_file("topic readwrite anon/#\nuser obs\ntopic read #\n")
        .file("ca.crt", read("ca.crt"))
        .file("server.crt", read("server.crt"))
        .file("server.key", read("server.key"))
        .extra(&format!(
            "listener {tls_port} 127.0.0.1\ncafile {{dir}}/ca.crt\ncertfile {{dir}}/server.crt\n\
             keyfile {{dir}}/server.key\nrequire_certificate true\nuse_identity_as_username true\n"
        ))
        .start();
    let mut obs = connect(&b, ConnectOpts::v311("obs").login("obs", "obs-pw"));
    assert_eq!(obs.subscribe("anon/#", 1), vec![1]);
    let out = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &tls_port.to_string(),
            "-q",
            "1",
            "-i",
            "cafe",
        ])
        .args(["--cafile", &pki.path("ca.crt").display().to_string()])
        .args(["--cert", &pki.path("cafe.crt").display().to_string()])
        .args(["--key", &pki.path("cafe.key").display().to_string()])
        .args(["-t", "anon/leak", "-m", "x"])
        .output()
        .expect("run mosquitto_pub");
    obs.sync();
    std::thread::sleep(Duration::from_millis(200));
    obs.sync();
    let got: Vec<String> = obs.drain().iter().map(Msg::to_string).collect();
    assert!(
        got.is_empty(),
        "a non-UTF-8 username was given the anonymous rules ({got:?}); mosquitto_pub: {}; log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        b.log()
    );
}

/// #1 (2.1): the HTTP API calls basic auth from its own thread, for a client whose id is
/// always `http-api`. Such a call is answered there and then: never delayed (a delayed answer
/// is a refusal to the HTTP client) and never completing an MQTT connection parked under the
/// id `http-api`.
#[test]
fn basic_auth_off_the_main_thread_is_answered_synchronously() {
    if !broker_is_2_1() {
        return; // 2.0 has neither an HTTP API nor delayed basic auth
    }
    let http_port = free_port();
    let mut pw = slow_line("admin", "admin-pw");
    pw.push('\n');
    pw.push_str(&passwd_line("alice", "alice-pw", Argon2id));
    pw.push('\n');
    let b = BrokerConfig::new(Mode::Plugin)
        .password_file(pw)
        .acl_file("user admin\ntopic readwrite admin/#\nuser alice\ntopic read /api/#\n")
        .extra(&format!(
            "listener {http_port} 127.0.0.1\nprotocol http_api\n"
        ))
        .start();
    for round in 0..3 {
        // An MQTT client parked under the id the HTTP API uses, with a wrong password.
        let parked = Client::send_connect(
            b.port(),
            &ConnectOpts::v5("http-api").login("admin", "wrong"),
        )
        .expect("send CONNECT");
        std::thread::sleep(Duration::from_millis(20));
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-u",
                "alice:alice-pw",
            ])
            .arg(format!("http://127.0.0.1:{http_port}/api/v1/version"))
            .output()
            .expect("run curl");
        let status = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            status,
            "200",
            "round {round}: HTTP API login refused; log:\n{}",
            b.log()
        );
        match parked.await_connack() {
            Ok(_) => panic!(
                "round {round}: the HTTP API's login completed the MQTT client parked as \
                 admin; log:\n{}",
                b.log()
            ),
            Err(Refused::Code(c)) => assert_eq!(c, not_authorised(Proto::V5)),
            Err(Refused::NoConnack(e)) => panic!("no CONNACK ({e}); log:\n{}", b.log()),
        }
    }
}

/// #3: the throttle is asked before the credential cache: once an address is throttled for a
/// username, even the right password, remembered by the cache from an earlier login, is
/// refused (a guesser cannot test guesses against remembered credentials).
#[test]
fn a_cached_password_is_still_throttled() {
    let pw = passwd_file(&[("admin", "admin-pw", Argon2id)]);
    let b = BrokerConfig::new(Mode::Plugin)
        .password_file(pw)
        .toml(THROTTLE)
        .acl_file("user admin\ntopic readwrite admin/#\n")
        .start();
    let login = |pw: &str| {
        Client::connack_code(
            b.port(),
            &ConnectOpts::v5("guesser")
                .login("admin", pw)
                .from_address("127.0.0.1"),
        )
    };
    assert_eq!(login("admin-pw"), Some(0), "log:\n{}", b.log());
    assert_eq!(login("admin-pw"), Some(0), "cached; log:\n{}", b.log());
    for n in 0..3 {
        assert_eq!(
            login(&format!("guess-{n}")),
            Some(not_authorised(Proto::V5))
        );
    }
    assert_eq!(
        login("admin-pw"),
        Some(not_authorised(Proto::V5)),
        "a throttled address got a cached credential accepted; log:\n{}",
        b.log()
    );
    assert!(b.log().contains("throttled"), "log:\n{}", b.log());
}
