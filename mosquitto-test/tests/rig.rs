//! Self-tests of the rig, against Mosquitto's built-in options (no plugin needed).

use std::time::Duration;

use mosquitto_test::*;

fn pid_alive(pid: u32) -> bool {
    // A zombie would still have /proc/<pid>; Drop reaps, so absence means gone.
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn broker_starts_on_loopback_and_stops_by_pid() {
    let mut b = BrokerConfig::new(Mode::Builtin)
        .allow_anonymous(true)
        .start();
    let port = b.port();
    assert!(b.log().contains(&format!("listen socket on port {port}")));
    assert!(b.is_running());
    let pid = b.pid();
    assert!(pid_alive(pid));
    let c = Client::connect(port, &ConnectOpts::v311("rig-1")).expect("anonymous connect");
    c.disconnect();
    let st = b.stop().expect("was running");
    assert!(st.success() || st.code().is_none(), "exit status {st}");
    assert!(!pid_alive(pid));
}

#[test]
fn drop_kills_the_child() {
    let b = Broker::start("allow_anonymous true\n", Mode::Builtin);
    let pid = b.pid();
    assert!(pid_alive(pid));
    drop(b);
    assert!(!pid_alive(pid), "mosquitto {pid} still alive after drop");
}

#[test]
fn parallel_brokers_get_distinct_ports() {
    let brokers: Vec<Broker> = (0..4)
        .map(|_| Broker::start("allow_anonymous true\n", Mode::Builtin))
        .collect();
    let mut ports: Vec<u16> = brokers.iter().map(Broker::port).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 4);
}

#[test]
fn reload_is_detected_in_the_log() {
    let mut b = Broker::start("allow_anonymous true\n", Mode::Builtin);
    b.reload();
    b.reload();
    assert_eq!(b.log().matches("Reloading config").count(), 2);
    assert!(b.is_running());
}

#[test]
fn start_failure_reports_status_and_log() {
    let f = BrokerConfig::new(Mode::Builtin)
        .acl_file("user alice\ntopic readwrite a/#\nbogus line\n")
        .start_expect_failure();
    assert!(f.refused());
    assert!(
        f.log.contains("Invalid line in acl_file"),
        "log:\n{}",
        f.log
    );
}

#[test]
fn password_lines_have_mosquitto_formats() {
    let l7 = passwd_line("alice", "secret", Scheme::Pbkdf2);
    let parts: Vec<&str> = l7.split('$').collect();
    assert!(l7.starts_with("alice:$7$101$"), "{l7}");
    assert_eq!(parts[3].len(), 16, "{l7}");
    assert_eq!(parts[4].len(), 88, "{l7}");
    let l6 = passwd_line("bob", "pw", Scheme::Sha512);
    assert!(l6.starts_with("bob:$6$"), "{l6}");
    let la = passwd_line("carol", "pw", Scheme::Argon2id);
    assert!(la.starts_with("carol:$argon2id$v=19$m="), "{la}");
}

#[test]
fn mosquitto_passwd_lines_work_with_builtin() {
    let pw = passwd_file(&[
        ("alice", "secret", Scheme::Pbkdf2),
        ("bob", "hunter2", Scheme::Sha512),
    ]);
    let b = BrokerConfig::new(Mode::Builtin).password_file(pw).start();
    for proto in [Proto::V311, Proto::V5] {
        let ok = |u: &str, p: &str| {
            Client::connack_code(b.port(), &ConnectOpts::new(proto, "c").login(u, p))
        };
        assert_eq!(ok("alice", "secret"), Some(0));
        assert_eq!(ok("bob", "hunter2"), Some(0));
        assert_eq!(ok("alice", "wrong"), Some(not_authorised(proto)));
        assert_eq!(ok("nobody", "x"), Some(not_authorised(proto)));
    }
}

#[test]
fn client_round_trip_v311_and_v5() {
    let b = Broker::start("allow_anonymous true\n", Mode::Builtin);
    for proto in [Proto::V311, Proto::V5] {
        let mut sub = Client::connect(b.port(), &ConnectOpts::new(proto, "sub")).unwrap();
        let mut publ = Client::connect(b.port(), &ConnectOpts::new(proto, "pub")).unwrap();
        assert_eq!(sub.subscribe("t/#", 1), vec![1]);
        assert_eq!(publ.publish("t/a", b"one", 0, false), None);
        // v5 PUBACK 0 (there is a subscriber); v3.1.1 PUBACK has no reason (0).
        assert_eq!(publ.publish("t/b", b"two", 1, false), Some(0));
        let m = sub
            .wait_message("t/b", Duration::from_secs(10))
            .expect("t/b arrives");
        assert_eq!(m.payload, b"two");
        let m = sub
            .wait_message("t/a", Duration::from_secs(10))
            .expect("t/a arrives");
        assert_eq!(m.payload_str(), "one");
        // Nothing else: sync both, then nothing is left.
        publ.sync();
        assert!(sub.drain().is_empty());
        if proto == Proto::V5 {
            assert_eq!(
                publ.publish("nobody/listens", b"x", 1, false),
                Some(codes::V5_NO_MATCHING_SUBSCRIBERS)
            );
        }
        assert_eq!(
            sub.unsubscribe("t/#").len(),
            usize::from(proto == Proto::V5)
        );
        sub.disconnect();
        publ.disconnect();
    }
}

#[test]
fn sync_barrier_sees_messages_without_sleeping() {
    let b = Broker::start("allow_anonymous true\n", Mode::Builtin);
    let mut sub = Client::connect(b.port(), &ConnectOpts::v5("s")).unwrap();
    let mut publ = Client::connect(b.port(), &ConnectOpts::v311("p")).unwrap();
    sub.subscribe("x/#", 0);
    for i in 0..50 {
        publ.publish(&format!("x/{i}"), b"m", 0, false);
    }
    publ.sync();
    assert_eq!(sub.drain().len(), 50);
}

#[test]
fn zero_length_username_is_sent() {
    // With no password file, Mosquitto lets anyone in when allow_anonymous is true.
    let b = Broker::start("allow_anonymous true\n", Mode::Builtin);
    let opts = ConnectOpts::v5("z").username("");
    assert_eq!(opts.encode()[9] & 0x80, 0x80, "username flag set");
    assert_eq!(Client::connack_code(b.port(), &opts), Some(0));
}
