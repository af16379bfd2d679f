//! Operating mqttguard: policies that follow their files (`[reload] watch`), including the
//! kubelet's ConfigMap/Secret swap and a small fleet sharing one policy; denial lines that
//! fail2ban can act on; counters under `$SYS` and in a Prometheus textfile.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mosquitto_test::broker::broker_tempdir;
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

/// Waits (bounded) until the broker's log holds `n` lines containing `needle`.
fn wait_log(b: &Broker, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while b.log().matches(needle).count() < n {
        assert!(
            Instant::now() < deadline,
            "no {n} x {needle:?} in the log within 15 s:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A volume as the kubelet lays out a ConfigMap or Secret: the files live in a timestamped
/// directory, `..data` is a symlink to it, and each file is a symlink through `..data`. An
/// update writes a new timestamped directory, points `..data_tmp` at it, renames that over
/// `..data` (atomic) and removes the old directory.
struct KubeVolume {
    dir: tempfile::TempDir,
    generation: std::cell::Cell<u32>,
}

impl KubeVolume {
    fn new(files: &[(&str, String)]) -> KubeVolume {
        let v = KubeVolume {
            dir: broker_tempdir(),
            generation: std::cell::Cell::new(0),
        };
        let data = v.write_generation(files);
        symlink(&data, v.dir.path().join("..data")).expect("..data symlink");
        for (name, _) in files {
            symlink(format!("..data/{name}"), v.dir.path().join(name)).expect("file symlink");
        }
        v
    }

    fn write_generation(&self, files: &[(&str, String)]) -> String {
        let g = self.generation.get() + 1;
        self.generation.set(g);
        let name = format!("..2026_11_30_21_00_0{g}.{}", 100_000 + g);
        let dir = self.dir.path().join(&name);
        std::fs::create_dir(&dir).expect("timestamped dir");
        for (file, text) in files {
            std::fs::write(dir.join(file), text).expect("write file");
        }
        name
    }

    fn swap(&self, files: &[(&str, String)]) {
        let old = std::fs::read_link(self.dir.path().join("..data")).expect("read ..data");
        let new = self.write_generation(files);
        let tmp = self.dir.path().join("..data_tmp");
        symlink(&new, &tmp).expect("..data_tmp");
        std::fs::rename(&tmp, self.dir.path().join("..data")).expect("swap ..data");
        std::fs::remove_dir_all(self.dir.path().join(old)).expect("remove old generation");
    }

    /// The path the broker uses for `name`.
    fn broker_path(&self, name: &str) -> String {
        broker_path(&self.dir.path().join(name))
            .display()
            .to_string()
    }
}

const WATCH: &str = "[reload]\nwatch = true\n";

fn policy_files(passwd: &str, acl: &str) -> Vec<(&'static str, String)> {
    vec![
        ("passwd", passwd.to_string()),
        ("acl", acl.to_string()),
        ("mqttguard.toml", WATCH.to_string()),
    ]
}

fn broker_on(volume: &KubeVolume) -> Broker {
    BrokerConfig::new(Mode::Plugin)
        .plugin_opt("password_file", volume.broker_path("passwd"))
        .plugin_opt("acl_file", volume.broker_path("acl"))
        .plugin_opt("config", volume.broker_path("mqttguard.toml"))
        .start()
}

/// The kubelet's swap, reproduced exactly, with a broker whose config points into the volume:
/// with `[reload] watch = true` the new rule is enforced and a removed user is disconnected
/// without any signal; a broken update is ignored with a log line naming file:line.
#[test]
fn a_kubelet_swap_reloads_the_policy_without_a_signal() {
    let pw = passwd_file(&[("alice", "pa", Pbkdf2), ("bob", "pb", Pbkdf2)]);
    let alice_only = passwd_file(&[("alice", "pa", Pbkdf2)]);
    let acl1 = "user alice\ntopic readwrite a/#\nuser bob\ntopic readwrite b/#\n";
    let acl2 =
        "user alice\ntopic readwrite a/#\ntopic readwrite x/#\nuser bob\ntopic readwrite b/#\n";
    let volume = KubeVolume::new(&policy_files(&pw, acl1));
    let b = broker_on(&volume);
    let mut alice = connect(&b, ConnectOpts::v5("alice").login("alice", "pa"));
    let mut bob = connect(&b, ConnectOpts::v5("bob").login("bob", "pb"));
    assert_eq!(alice.publish("x/1", b"1", 1, false), Some(0x87));

    volume.swap(&policy_files(&alice_only, acl2));
    wait_log(&b, "mqttguard: reloaded", 1);
    assert!(
        allowed(alice.publish("x/1", b"2", 1, false)),
        "new rule not enforced; log:\n{}",
        b.log()
    );
    // Mosquitto re-authenticates every client on reload: bob's line is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while bob.is_connected() {
        assert!(
            Instant::now() < deadline,
            "bob stayed connected; log:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        Client::connack_code(b.port(), &ConnectOpts::v5("bob2").login("bob", "pb")),
        Some(not_authorised(Proto::V5))
    );

    // A broken update: logged with file:line, the previous policy stays.
    volume.swap(&policy_files(
        &alice_only,
        "user alice\ntopic readwrite a/#\nbogus line\n",
    ));
    wait_log(&b, "reload failed", 1);
    let at = format!("{}:3", volume.broker_path("acl"));
    assert!(
        b.log().contains(&at),
        "the error does not name {at}:\n{}",
        b.log()
    );
    assert!(allowed(alice.publish("x/1", b"3", 1, false)));
    assert!(alice.is_connected());
}

/// A small fleet: three brokers on one shared policy volume all converge after one swap.
#[test]
fn a_fleet_converges_after_one_swap() {
    let pw = passwd_file(&[("alice", "pa", Pbkdf2)]);
    let volume = KubeVolume::new(&policy_files(&pw, "user alice\ntopic readwrite a/#\n"));
    let fleet: Vec<Broker> = (0..3).map(|_| broker_on(&volume)).collect();
    for b in &fleet {
        let mut c = connect(b, ConnectOpts::v5("alice").login("alice", "pa"));
        assert_eq!(c.publish("fleet/1", b"1", 1, false), Some(0x87));
    }
    volume.swap(&policy_files(
        &pw,
        "user alice\ntopic readwrite a/#\ntopic write fleet/#\n",
    ));
    for b in &fleet {
        wait_log(b, "mqttguard: reloaded", 1);
        let mut c = connect(b, ConnectOpts::v5("alice").login("alice", "pa"));
        assert!(
            allowed(c.publish("fleet/1", b"2", 1, false)),
            "log:\n{}",
            b.log()
        );
    }
}

/// Plain files: an in-place rewrite of the ACL and a rename over the password file (what
/// `mqttguard passwd` does) are both picked up; a file written in several steps is loaded
/// once, complete.
#[test]
fn in_place_rewrites_and_renames_are_picked_up() {
    let b = BrokerConfig::new(Mode::Plugin)
        .password_file(passwd_file(&[("alice", "old", Pbkdf2)]))
        .acl_file("user alice\ntopic readwrite a/#\n")
        .toml(WATCH)
        .start();
    let mut alice = connect(&b, ConnectOpts::v5("alice").login("alice", "old"));
    assert_eq!(alice.publish("y/1", b"1", 1, false), Some(0x87));
    // In place, in several steps: the same file, truncated and written piecewise.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(b.dir().join("acl"))
            .expect("open acl");
        f.write_all(b"user alice\ntopic readwrite a/#\n")
            .expect("write");
        f.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(100));
        f.write_all(b"topic readwrite y/#\n").expect("write");
    }
    wait_log(&b, "mqttguard: reloaded", 1);
    assert!(
        allowed(alice.publish("y/1", b"2", 1, false)),
        "log:\n{}",
        b.log()
    );
    assert_eq!(
        b.log().matches("reload failed").count(),
        0,
        "a half-written file was loaded:\n{}",
        b.log()
    );
    // Rename over, by the command.
    let out = Command::new(mqttguard_cli())
        .args(["passwd", "-b", "new", "--scheme", "pbkdf2"])
        .arg(b.dir().join("passwd"))
        .arg("alice")
        .output()
        .expect("run mqttguard passwd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_log(&b, "mqttguard: reloaded", 2);
    connect(&b, ConnectOpts::v5("alice-new").login("alice", "new"));
    assert_eq!(
        Client::connack_code(
            b.port(),
            &ConnectOpts::v5("alice-old").login("alice", "old")
        ),
        Some(not_authorised(Proto::V5))
    );
}

/// Watching works with `per_listener_settings true` too (each listener's instance watches its
/// own files; one SIGHUP reloads all).
#[test]
fn watching_works_per_listener() {
    let port2 = mosquitto_test::broker::free_port();
    let conf = format!(
        "plugin {{plugin}}\nplugin_opt_acl_file {{dir}}/acl1\nplugin_opt_config {{dir}}/watch.toml\n\
         listener {port2} 127.0.0.1\nallow_anonymous true\n\
         plugin {{plugin}}\nplugin_opt_acl_file {{dir}}/acl2\nplugin_opt_config {{dir}}/watch.toml\n"
    );
    let b = BrokerConfig::new(Mode::Builtin)
        .prelude("per_listener_settings true")
        .allow_anonymous(true)
        .file("acl1", "topic readwrite one/#\n")
        .file("acl2", "topic readwrite two/#\n")
        .file("watch.toml", WATCH)
        .extra(&conf)
        .start();
    let mut c2 = Client::connect(port2, &ConnectOpts::v5("l2")).expect("connect l2");
    assert_eq!(c2.publish("three/x", b"1", 1, false), Some(0x87));
    write_atomically(
        &b.dir().join("acl2"),
        "topic readwrite two/#\ntopic readwrite three/#\n",
    );
    wait_log(&b, "mqttguard: reloaded", 2);
    let mut c2 = Client::connect(port2, &ConnectOpts::v5("l2b")).expect("connect l2");
    assert!(
        allowed(c2.publish("three/x", b"2", 1, false)),
        "log:\n{}",
        b.log()
    );
    let mut c1 = Client::connect(b.port(), &ConnectOpts::v5("l1")).expect("connect l1");
    assert_eq!(
        c1.publish("three/x", b"3", 1, false),
        Some(0x87),
        "listeners leaked"
    );
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write tmp");
    std::fs::rename(&tmp, path).expect("rename");
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// fail2ban, fed the broker's own log: its filter finds exactly the failed logins, with the
/// addresses they came from, and none of the successful ones.
#[test]
fn fail2ban_finds_exactly_the_failed_logins() {
    if Command::new("fail2ban-regex")
        .arg("--help")
        .output()
        .is_err()
    {
        panic!("fail2ban-regex is missing: install the Debian package fail2ban (scripts/install-deps.sh does)");
    }
    let b = BrokerConfig::new(Mode::Plugin)
        .password_file(passwd_file(&[
            ("alice", "pa", Pbkdf2),
            ("bob", "pb", Pbkdf2),
        ]))
        .acl_file("user alice\ntopic readwrite a/#\nuser bob\ntopic readwrite b/#\n")
        .toml("[log]\ndenials_per_second = 1000\n")
        .start();
    let code = |user: &str, pw: &str, from: &str, id: &str| {
        Client::connack_code(
            b.port(),
            &ConnectOpts::v5(id).login(user, pw).from_address(from),
        )
    };
    // Failures: wrong password, unknown user, hostile strings in the client id and username.
    assert_eq!(
        code("alice", "x", "127.0.0.2", "a1"),
        Some(not_authorised(Proto::V5))
    );
    assert_eq!(
        code("alice", "y", "127.0.0.2", "a2"),
        Some(not_authorised(Proto::V5))
    );
    assert_eq!(
        code("nobody", "z", "127.0.0.3", "x\" from 127.0.0.9 client \"y"),
        Some(not_authorised(Proto::V5))
    );
    assert_eq!(
        code("bob\" from 127.0.0.8", "z", "127.0.0.4", "b1"),
        Some(not_authorised(Proto::V5))
    );
    // Successes, and an ACL denial (not a login failure).
    let mut ok = connect(
        &b,
        ConnectOpts::v5("ok1")
            .login("alice", "pa")
            .from_address("127.0.0.5"),
    );
    assert_eq!(ok.publish("b/1", b"1", 1, false), Some(0x87));
    connect(
        &b,
        ConnectOpts::v5("ok2")
            .login("bob", "pb")
            .from_address("127.0.0.6"),
    );

    let log = b.dir().join("f2b.log");
    std::fs::write(&log, b.log()).expect("write log copy");
    let filter = repo_root().join("examples/fail2ban/filter.d/mqttguard.conf");
    let out = Command::new("fail2ban-regex")
        .args(["--print-all-matched", "-v"])
        .arg(&log)
        .arg(&filter)
        .output()
        .expect("run fail2ban-regex");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "fail2ban-regex failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let matched: usize = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Lines: ")
                .and_then(|r| r.split(", ").nth(2))
        })
        .and_then(|m| m.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Lines: summary in fail2ban-regex output:\n{text}"));
    assert_eq!(matched, 4, "fail2ban-regex output:\n{text}");
    // The addresses fail2ban extracted: exactly the failing ones, never an injected one.
    let mut hosts: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("|  ")
                .or_else(|| l.trim().strip_prefix("| "))
        })
        .filter_map(|l| l.split_whitespace().next())
        .filter(|h| h.starts_with("127."))
        .collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(
        hosts,
        vec!["127.0.0.2", "127.0.0.3", "127.0.0.4"],
        "fail2ban-regex output:\n{text}"
    );
}

/// The counters: a Prometheus textfile that the official client's parser reads, with values
/// matching what the test did; and `$SYS/broker/mqttguard/...` retained messages readable
/// only by a client the ACL lets read them.
#[test]
fn counters_in_a_textfile_and_under_sys() {
    let b = BrokerConfig::new(Mode::Plugin)
        .password_file(passwd_file(&[
            ("alice", "pa", Pbkdf2),
            ("ops", "po", Pbkdf2),
        ]))
        .acl_file("user alice\ntopic readwrite a/#\nuser ops\ntopic read $SYS/broker/mqttguard/#\n")
        .toml("[metrics]\nsys_interval = 1\ntextfile = \"{dir}/mqttguard.prom\"\n")
        .start();
    let mut alice = connect(&b, ConnectOpts::v5("alice").login("alice", "pa"));
    assert_eq!(alice.publish("z/1", b"1", 1, false), Some(0x87));
    assert_eq!(alice.publish("z/2", b"1", 1, false), Some(0x87));
    assert!(allowed(alice.publish("a/1", b"1", 1, false)));
    for pw in ["w1", "w2"] {
        assert_eq!(
            Client::connack_code(b.port(), &ConnectOpts::v5("bad").login("alice", pw)),
            Some(not_authorised(Proto::V5))
        );
    }
    assert_eq!(
        Client::connack_code(b.port(), &ConnectOpts::v5("who").login("mallory", "x")),
        Some(not_authorised(Proto::V5))
    );
    // Wait for a textfile written after all of that (the counters only grow).
    let prom = b.dir().join("mqttguard.prom");
    let parse = || -> Option<prom::Samples> { prom::parse(&prom) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let samples = loop {
        if let Some(s) = parse() {
            if s.get("mqttguard_logins_denied_total", "reason", "unknown_user") >= 1.0 {
                break s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no textfile with the counters; log:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        samples.get("mqttguard_logins_denied_total", "reason", "wrong_password"),
        2.0
    );
    assert_eq!(samples.get("mqttguard_logins_allowed_total", "", ""), 1.0);
    assert_eq!(
        samples.get2("mqttguard_acl_checks_total", "write", "denied"),
        2.0
    );
    assert_eq!(
        samples.get2("mqttguard_acl_checks_total", "write", "allowed"),
        1.0
    );
    assert_eq!(
        samples.get("mqttguard_policy_size", "part", "password_users"),
        2.0
    );
    assert!(samples.get("mqttguard_last_load_timestamp_seconds", "", "") > 1.7e9);

    // $SYS: ops may read it, alice may not.
    let mut ops = connect(&b, ConnectOpts::v5("ops").login("ops", "po"));
    ops.subscribe("$SYS/broker/mqttguard/#", 0);
    // The first message may be the retained value of an earlier publication; the counters are
    // published again every second.
    let topic = "$SYS/broker/mqttguard/logins/denied/wrong_password";
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = ops.wait_message(topic, Duration::from_secs(2));
        if got.as_ref().is_some_and(|m| m.payload_str() == "2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ops got no $SYS counter of 2 (last: {got:?}); log:\n{}",
            b.log()
        );
        ops.sync();
    }
    let mut alice2 = connect(&b, ConnectOpts::v5("alice2").login("alice", "pa"));
    alice2.subscribe("$SYS/broker/mqttguard/#", 0);
    assert!(
        alice2
            .wait_message(
                "$SYS/broker/mqttguard/logins/allowed",
                Duration::from_secs(3)
            )
            .is_none(),
        "a client without read access got the $SYS counters"
    );
}

/// Reading the textfile with the official Python client's parser (`prometheus-client`).
mod prom {
    use std::path::Path;
    use std::process::Command;

    /// (name, labels, value) of one sample.
    type Sample = (String, Vec<(String, String)>, f64);

    pub struct Samples(Vec<Sample>);

    impl Samples {
        pub fn get(&self, name: &str, label: &str, value: &str) -> f64 {
            self.0
                .iter()
                .find(|(n, labels, _)| {
                    n == name
                        && (label.is_empty() && labels.is_empty()
                            || labels.iter().any(|(k, v)| k == label && v == value))
                })
                .map_or(f64::NAN, |(_, _, v)| *v)
        }

        pub fn get2(&self, name: &str, access: &str, result: &str) -> f64 {
            self.0
                .iter()
                .find(|(n, labels, _)| {
                    n == name
                        && labels.contains(&("access".into(), access.into()))
                        && labels.contains(&("result".into(), result.into()))
                })
                .map_or(f64::NAN, |(_, _, v)| *v)
        }
    }

    const PARSER: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}\t{labels}\t{s.value}")
"#;

    pub fn parse(path: &Path) -> Option<Samples> {
        if !path.exists() {
            return None;
        }
        let out = Command::new("python3")
            .arg("-c")
            .arg(PARSER)
            .arg(path)
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "prometheus-client could not parse the textfile (pip install prometheus-client): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        Some(Samples(
            text.lines()
                .filter_map(|l| {
                    let mut f = l.split('\t');
                    let name = f.next()?.to_string();
                    let labels = f
                        .next()?
                        .split(',')
                        .filter(|kv| !kv.is_empty())
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    let value = f.next()?.parse().ok()?;
                    Some((name, labels, value))
                })
                .collect(),
        ))
    }
}
