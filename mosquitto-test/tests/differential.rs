//! The differential scenario suite.
//!
//! Each scenario (password file + ACL file + client steps with expected outcomes) runs for
//! MQTT v3.1.1 and v5. `<scenario>::builtin` runs it against Mosquitto's own `password_file` /
//! `acl_file` and checks every expectation (so the scenarios are validated against the real
//! broker without the plugin). `<scenario>::plugin` runs it against both and requires the
//! plugin to produce exactly what built-in produced, except on the steps marked `.plugin(..)`,
//! where the plugin is deliberately different (stricter, or argon2id support) and must produce
//! that instead.

use mosquitto_test::*;
use Scheme::*;

const PROTOS: [Proto; 2] = [Proto::V311, Proto::V5];

fn co(proto: Proto, id: &str) -> ConnectOpts {
    ConnectOpts::new(proto, id)
}

/// CONNACK "not authorised" for this protocol.
fn na(p: Proto) -> u8 {
    not_authorised(p)
}

/// PUBACK reason for a QoS 1 publish that was denied: 3.1.1 has no reason code (0); Mosquitto
/// 2.0 sends v5 clients 0x87.
fn denied_puback(p: Proto) -> Option<u8> {
    Some(match p {
        Proto::V311 => 0,
        Proto::V5 => 0x87,
    })
}

/// PUBACK reason for an allowed QoS 1 publish that reached at least one subscriber.
fn ok_puback() -> Option<u8> {
    Some(0)
}

fn mosquitto_version_payload() -> String {
    let mut command = match mosquitto_test::broker::chroot_root() {
        Some(root) => {
            let mut c = std::process::Command::new("chroot");
            c.arg(root).arg("/usr/sbin/mosquitto");
            c
        }
        None => std::process::Command::new(mosquitto_test::broker::mosquitto_bin()),
    };
    let out = command.arg("-h").output().expect("run mosquitto -h");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix("mosquitto version "))
        .expect("version line")
        .trim()
        .to_string();
    format!("mosquitto version {v}")
}

/// Like `scenario_tests!`, plus `plugin_acl_only`: the differential run of
/// [`Scenario::acl_only`] (no password file, everyone admitted, only the ACL decides), which
/// isolates ACL decisions from authentication.
macro_rules! acl_scenario_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[test]
            fn builtin() {
                for p in PROTOS {
                    super::$name(p).check(Mode::Builtin);
                }
            }
            #[test]
            fn plugin() {
                for p in PROTOS {
                    super::$name(p).differential();
                }
            }
            #[test]
            fn plugin_acl_only() {
                for p in PROTOS {
                    super::$name(p).acl_only().differential();
                }
            }
        }
    )*};
}

macro_rules! scenario_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[test]
            fn builtin() {
                for p in PROTOS {
                    super::$name(p).check(Mode::Builtin);
                }
            }
            #[test]
            fn plugin() {
                for p in PROTOS {
                    super::$name(p).differential();
                }
            }
        }
    )*};
}

scenario_tests!(
    auth_hash_schemes,
    auth_anonymous_allowed,
    auth_no_password_file,
    empty_username_is_anonymous,
    empty_username_with_password_file,
    empty_username_anonymous_allowed,
    stricter_client_id_with_slash,
    stricter_client_id_starting_with_dollar,
    reload_changed_password,
);

acl_scenario_tests!(
    anonymous_section,
    read_write_access,
    patterns_client_id_and_username,
    deny_rules,
    dollar_topics,
    wildcard_subscriptions_filtered_at_delivery,
    retained_messages,
    dangerous_ids_with_patterns,
    stricter_username_with_slash,
    deny_patterns_apply_as_in_2_0,
    empty_acl_denies_everything,
    no_acl_allows_everything,
    acl_grammar_edges,
    shared_subscriptions,
    wills,
    reload_changed_acl,
    reload_broken_acl,
);

/// `$7$` and `$6$` lines from `mosquitto_passwd`; argon2id only in the plugin (2.0 drops the
/// line, so the user is unknown there).
fn auth_hash_schemes(p: Proto) -> Scenario {
    Scenario::new(format!("auth_hash_schemes {p}"))
        .user("alice", "secret", Pbkdf2)
        .user("bob", "hunter2", Sha512)
        .user("carol", "argon-pw", Argon2id)
        .connect("a1", co(p, "a1").login("alice", "secret"), 0)
        .connect("a2", co(p, "a2").login("alice", "Secret"), na(p))
        .connect("a3", co(p, "a3").login("alice", "secret "), na(p))
        .connect("a4", co(p, "a4").login("alice", ""), na(p))
        .connect("a5", co(p, "a5").username("alice"), na(p))
        .connect("b1", co(p, "b1").login("bob", "hunter2"), 0)
        .connect("b2", co(p, "b2").login("bob", "hunter3"), na(p))
        .connect("u1", co(p, "u1").login("mallory", "secret"), na(p))
        .connect("u2", co(p, "u2").login("alice ", "secret"), na(p))
        .connect("u3", co(p, "u3").login("ALICE", "secret"), na(p))
        .connect("anon", co(p, "anon"), na(p))
        .connect("c1", co(p, "c1").login("carol", "argon-pw"), na(p))
        .plugin(Obs::Connack(Some(0)))
        .connect("c2", co(p, "c2").login("carol", "wrong"), na(p))
        // No ACL file: everything allowed to the authenticated clients.
        .sub("b1", "t/#", &[0])
        .publish("a1", "t/1", "from-alice")
        .recv("b1", &["t/1=from-alice"])
}

/// allow_anonymous true with a password file: anonymous clients in, wrong passwords still out.
fn auth_anonymous_allowed(p: Proto) -> Scenario {
    Scenario::new(format!("auth_anonymous_allowed {p}"))
        .anonymous(true)
        .user("alice", "secret", Pbkdf2)
        .connect("anon", co(p, "anon"), 0)
        .connect("a1", co(p, "a1").login("alice", "secret"), 0)
        .connect("a2", co(p, "a2").login("alice", "bad"), na(p))
        .connect("u1", co(p, "u1").login("nobody", "x"), na(p))
        .connect("u2", co(p, "u2").username("nobody"), na(p))
        .sub("anon", "#", &[0])
        .publish("a1", "x", "1")
        .recv("anon", &["x=1"])
}

/// Only an ACL file: no basic-auth callback at all, allow_anonymous decides for everyone.
fn auth_no_password_file(p: Proto) -> Scenario {
    Scenario::new(format!("auth_no_password_file {p}"))
        .anonymous(true)
        .acl("topic readwrite anon/#\nuser alice\ntopic readwrite alice/#\n")
        .connect("anon", co(p, "anon"), 0)
        .connect("alice", co(p, "alice").login("alice", "anything"), 0)
        .sub("anon", "#", &[0])
        .sub("alice", "#", &[0])
        .publish("anon", "anon/1", "a")
        .publish("alice", "alice/1", "b")
        .publish("alice", "anon/2", "c")
        .recv("anon", &["anon/1=a"])
        .recv("alice", &["alice/1=b"])
}

/// Topic lines before the first `user` apply only to clients without a username; a user with a
/// password but no `user` block gets nothing (no patterns here).
fn anonymous_section(p: Proto) -> Scenario {
    Scenario::new(format!("anonymous_section {p}"))
        .anonymous(true)
        .user("alice", "pa", Pbkdf2)
        .user("bob", "pb", Pbkdf2)
        .acl(
            "# anonymous section\n\
             topic readwrite anon/#\n\
             topic read shared/#\n\
             \n\
             user alice\n\
             topic readwrite alice/#\n\
             topic readwrite shared/#\n",
        )
        .connect("anon", co(p, "anon-1"), 0)
        .connect("alice", co(p, "alice-1").login("alice", "pa"), 0)
        .connect("bob", co(p, "bob-1").login("bob", "pb"), 0)
        .sub("anon", "#", &[0])
        .sub("alice", "#", &[0])
        .sub("bob", "#", &[0])
        .publish("anon", "anon/1", "from-anon")
        .publish("anon", "alice/1", "from-anon")
        .publish("anon", "shared/1", "from-anon")
        .publish("alice", "anon/2", "from-alice")
        .publish("alice", "alice/2", "from-alice")
        .publish("alice", "shared/2", "from-alice")
        .publish("bob", "anon/3", "from-bob")
        .publish("bob", "shared/3", "from-bob")
        .publish_q1("bob", "bob/3", "from-bob", denied_puback(p))
        .recv("anon", &["anon/1=from-anon", "shared/2=from-alice"])
        .recv("alice", &["alice/2=from-alice", "shared/2=from-alice"])
        .recv("bob", &[])
}

/// read / write / readwrite; a matching `read` rule does not grant WRITE; `topic X` alone is
/// readwrite.
fn read_write_access(p: Proto) -> Scenario {
    Scenario::new(format!("read_write_access {p}"))
        .user("alice", "pa", Sha512)
        .user("bob", "pb", Sha512)
        .acl(
            "user alice\n\
             topic read r/#\n\
             topic write w/#\n\
             topic readwrite rw/#\n\
             topic both/#\n\
             user bob\n\
             topic readwrite #\n",
        )
        .connect("alice", co(p, "alice").login("alice", "pa"), 0)
        .connect("bob", co(p, "bob").login("bob", "pb"), 0)
        .sub("alice", "#", &[0])
        .sub("bob", "#", &[0])
        .publish("alice", "r/1", "a")
        .publish("alice", "w/1", "a")
        .publish("alice", "rw/1", "a")
        .publish("alice", "both/1", "a")
        .publish("alice", "other/1", "a")
        .publish("bob", "r/2", "b")
        .publish("bob", "w/2", "b")
        .publish("bob", "rw/2", "b")
        .publish("bob", "both/2", "b")
        .publish("bob", "other/2", "b")
        .publish_q1("alice", "r/q1", "a", denied_puback(p))
        .publish_q1("alice", "w/q1", "a", ok_puback())
        .recv(
            "alice",
            &["r/2=b", "rw/1=a", "rw/2=b", "both/1=a", "both/2=b"],
        )
        .recv(
            "bob",
            &[
                "w/1=a",
                "rw/1=a",
                "both/1=a",
                "r/2=b",
                "w/2=b",
                "rw/2=b",
                "both/2=b",
                "other/2=b",
                "w/q1=a",
            ],
        )
}

/// `%c` and `%u` patterns, also for anonymous clients (`%c` only), and within a level.
fn patterns_client_id_and_username(p: Proto) -> Scenario {
    Scenario::new(format!("patterns {p}"))
        .anonymous(true)
        .user("alice", "pa", Pbkdf2)
        .user("bob", "pb", Pbkdf2)
        .user("spy", "ps", Pbkdf2)
        .acl(
            "pattern readwrite dev/%c/#\n\
             pattern read users/%u/inbox\n\
             pattern write users/%u/outbox\n\
             pattern readwrite mid/id-%c/x\n\
             user alice\n\
             topic write users/bob/inbox\n\
             user spy\n\
             topic read #\n",
        )
        .connect("alice", co(p, "dev1").login("alice", "pa"), 0)
        .connect("bob", co(p, "dev2").login("bob", "pb"), 0)
        .connect("anon", co(p, "dev3"), 0)
        .connect("spy", co(p, "spy").login("spy", "ps"), 0)
        .sub("spy", "#", &[0])
        .sub("alice", "dev/#", &[0])
        .sub("bob", "users/#", &[0])
        .publish("alice", "dev/dev1/t", "own")
        .publish("alice", "dev/dev2/t", "foreign")
        .publish("bob", "dev/dev2/t", "bob-own")
        .publish("bob", "dev/dev1/t", "bob-foreign")
        .publish("anon", "dev/dev3/t", "anon-own")
        .publish("anon", "users/bob/outbox", "anon-outbox")
        .publish("alice", "users/bob/inbox", "to-bob")
        .publish("bob", "users/bob/outbox", "bob-out")
        .publish("bob", "users/bob/inbox", "bob-self")
        .publish("alice", "users/alice/outbox", "alice-out")
        .publish("alice", "mid/id-dev1/x", "mid")
        .publish("bob", "mid/id-dev1/x", "mid-foreign")
        .recv(
            "spy",
            &[
                "dev/dev1/t=own",
                "dev/dev2/t=bob-own",
                "dev/dev3/t=anon-own",
                "users/bob/inbox=to-bob",
                "users/bob/outbox=bob-out",
                "users/alice/outbox=alice-out",
                "mid/id-dev1/x=mid",
            ],
        )
        .recv("alice", &["dev/dev1/t=own"])
        .recv("bob", &["users/bob/inbox=to-bob"])
}

/// A user's deny beats everything (also their own allow, whatever the line order, and
/// patterns); a user's allow beats a pattern deny; pattern denies apply to everyone else.
fn deny_rules(p: Proto) -> Scenario {
    Scenario::new(format!("deny_rules {p}"))
        .user("alice", "pa", Pbkdf2)
        .user("bob", "pb", Pbkdf2)
        .user("admin", "pz", Pbkdf2)
        .user("spy", "ps", Pbkdf2)
        .acl(
            "pattern readwrite p/%u/#\n\
             pattern deny p/shared/secret\n\
             pattern readwrite p/shared/#\n\
             user alice\n\
             topic readwrite a/#\n\
             topic deny a/private/#\n\
             topic readwrite p/shared/secret\n\
             user bob\n\
             topic deny p/bob/locked\n\
             topic readwrite b/#\n\
             user admin\n\
             topic readwrite #\n\
             user spy\n\
             topic read #\n\
             topic deny a/private/hidden\n",
        )
        .connect("alice", co(p, "alice").login("alice", "pa"), 0)
        .connect("bob", co(p, "bob").login("bob", "pb"), 0)
        .connect("admin", co(p, "admin").login("admin", "pz"), 0)
        .connect("spy", co(p, "spy").login("spy", "ps"), 0)
        .sub("spy", "#", &[0])
        .sub("alice", "#", &[0])
        .sub("bob", "#", &[0])
        .publish("alice", "a/x", "1")
        .publish("alice", "a/private/x", "2")
        .publish("alice", "p/shared/secret", "3")
        .publish("alice", "p/shared/other", "4")
        .publish("bob", "p/bob/x", "5")
        .publish("bob", "p/bob/locked", "6")
        .publish("bob", "p/shared/secret", "7")
        .publish("bob", "p/shared/other", "8")
        .publish("admin", "a/private/y", "9")
        .publish("admin", "a/private/hidden", "10")
        .publish("admin", "p/shared/secret", "11")
        .publish("admin", "p/bob/locked", "12")
        .publish_q1("alice", "a/private/q", "13", denied_puback(p))
        .recv(
            "spy",
            &[
                "a/x=1",
                "p/shared/secret=3",
                "p/shared/other=4",
                "p/bob/x=5",
                "p/shared/other=8",
                "a/private/y=9",
                "p/shared/secret=11",
                "p/bob/locked=12",
            ],
        )
        .recv(
            "alice",
            &[
                "a/x=1",
                "p/shared/secret=3",
                "p/shared/other=4",
                "p/shared/other=8",
                "p/shared/secret=11",
            ],
        )
        .recv(
            "bob",
            &["p/bob/x=5", "p/shared/other=4", "p/shared/other=8"],
        )
}

/// `#` never grants or delivers `$SYS`/`$foo` topics; `topic read $SYS/#` does; `$SYS` writes
/// are refused whatever the ACL says.
fn dollar_topics(p: Proto) -> Scenario {
    let version = format!(
        "$SYS/broker/version={} (retained)",
        mosquitto_version_payload()
    );
    Scenario::new(format!("dollar_topics {p}"))
        .user("alice", "pa", Pbkdf2)
        .user("sysmon", "ps", Pbkdf2)
        .user("dollar", "pd", Pbkdf2)
        .acl(
            "user alice\n\
             topic readwrite #\n\
             user sysmon\n\
             topic read $SYS/#\n\
             user dollar\n\
             topic readwrite $foo/#\n\
             topic readwrite $SYS/#\n",
        )
        .connect("alice", co(p, "alice").login("alice", "pa"), 0)
        .connect("sysmon", co(p, "sysmon").login("sysmon", "ps"), 0)
        .connect("dollar", co(p, "dollar").login("dollar", "pd"), 0)
        .sub("alice", "#", &[0])
        .sub("alice", "$SYS/broker/version", &[0])
        .sub("alice", "$foo/#", &[0])
        .sub("sysmon", "$SYS/broker/version", &[0])
        .sub("dollar", "$foo/#", &[0])
        .sub("dollar", "$SYS/test/#", &[0])
        .publish("alice", "$foo/from-alice", "1")
        .publish("dollar", "$foo/from-dollar", "2")
        .publish("dollar", "$SYS/test/x", "3")
        .publish("alice", "plain", "4")
        .recv("alice", &["plain=4"])
        .recv("sysmon", &[version.as_str()])
        .recv("dollar", &["$foo/from-dollar=2"])
}

/// Subscriptions are never refused by the built-in ACL; delivery is filtered by READ.
fn wildcard_subscriptions_filtered_at_delivery(p: Proto) -> Scenario {
    Scenario::new(format!("wildcards {p}"))
        .user("alice", "pa", Pbkdf2)
        .user("writer", "pw", Pbkdf2)
        .acl(
            "user alice\n\
             topic read sensors/+/temp\n\
             topic read sensors/own/#\n\
             user writer\n\
             topic readwrite #\n",
        )
        .connect("alice", co(p, "alice").login("alice", "pa"), 0)
        .connect("writer", co(p, "writer").login("writer", "pw"), 0)
        .sub("alice", "#", &[0])
        .sub_qos("alice", "forbidden/#", 1, &[1])
        .publish("writer", "sensors/a/temp", "1")
        .publish("writer", "sensors/a/hum", "2")
        .publish("writer", "sensors/own/x/y", "3")
        .publish("writer", "sensors/own", "4")
        .publish("writer", "forbidden/z", "5")
        .publish("writer", "sensors/a/temp/deeper", "6")
        .recv(
            "alice",
            &["sensors/a/temp=1", "sensors/own/x/y=3", "sensors/own=4"],
        )
        .unsub("alice", "#")
        .sub("alice", "sensors/+/+", &[0])
        .publish("writer", "sensors/b/temp", "7")
        .publish("writer", "sensors/b/hum", "8")
        .recv("alice", &["sensors/b/temp=7"])
}

/// Retained messages are stored only if the publisher may write, and delivered at subscribe
/// time only if the subscriber may read.
fn retained_messages(p: Proto) -> Scenario {
    Scenario::new(format!("retained {p}"))
        .user("writer", "pw", Pbkdf2)
        .user("limited", "pl", Pbkdf2)
        .user("reader", "pr", Pbkdf2)
        .user("all", "pa", Pbkdf2)
        .acl(
            "user writer\n\
             topic readwrite r/#\n\
             user limited\n\
             topic write r/public/limited\n\
             user reader\n\
             topic read r/public/#\n\
             user all\n\
             topic read r/#\n",
        )
        .connect("writer", co(p, "writer").login("writer", "pw"), 0)
        .connect("limited", co(p, "limited").login("limited", "pl"), 0)
        .publish_retained("writer", "r/public/1", "pub")
        .publish_retained("writer", "r/secret/1", "sec")
        .publish_retained("limited", "r/public/limited", "ok")
        .publish_retained("limited", "r/public/2", "not-stored")
        .recv("writer", &[])
        .recv("limited", &[])
        .connect("reader", co(p, "reader").login("reader", "pr"), 0)
        .connect("all", co(p, "all").login("all", "pa"), 0)
        .sub("reader", "r/#", &[0])
        .sub("all", "r/#", &[0])
        .recv(
            "reader",
            &[
                "r/public/1=pub (retained)",
                "r/public/limited=ok (retained)",
            ],
        )
        .recv(
            "all",
            &[
                "r/public/1=pub (retained)",
                "r/public/limited=ok (retained)",
                "r/secret/1=sec (retained)",
            ],
        )
}

/// Client ids / usernames containing `+` or `#` are denied by every pattern (the user's own
/// rules still apply) once any pattern exists; without patterns they are ordinary.
fn dangerous_ids_with_patterns(p: Proto) -> Scenario {
    Scenario::new(format!("dangerous_ids {p}"))
        .anonymous(true)
        .user("h#sh", "ph", Pbkdf2)
        .user("pl+s", "pp", Pbkdf2)
        .user("spy", "ps", Pbkdf2)
        .acl(
            "pattern readwrite open/#\n\
             pattern readwrite dev/%c/#\n\
             user h#sh\n\
             topic readwrite hash/#\n\
             user spy\n\
             topic read #\n",
        )
        .connect("spy", co(p, "spy").login("spy", "ps"), 0)
        .connect("plain", co(p, "plain"), 0)
        .connect("plus", co(p, "x+y"), 0)
        .connect("hashid", co(p, "x#y"), 0)
        .connect("hashuser", co(p, "hu").login("h#sh", "ph"), 0)
        .connect("plususer", co(p, "pu").login("pl+s", "pp"), 0)
        .sub("spy", "#", &[0])
        .publish("plain", "open/plain", "1")
        .publish("plus", "open/plus", "2")
        .publish("hashid", "open/hashid", "3")
        .publish("hashuser", "open/hashuser", "4")
        .publish("hashuser", "hash/own", "5")
        .publish("plususer", "open/plususer", "6")
        .publish("plususer", "dev/pu/x", "7")
        .publish("plain", "dev/plain/x", "8")
        .recv("spy", &["open/plain=1", "hash/own=5", "dev/plain/x=8"])
}

/// Deliberately stricter: 2.0 expands client id `a/b` in `dev/%c/#` into two levels.
fn stricter_client_id_with_slash(p: Proto) -> Scenario {
    Scenario::new(format!("stricter_client_id_with_slash {p}"))
        .anonymous(true)
        .user("spy", "ps", Pbkdf2)
        .acl("pattern readwrite dev/%c/#\nuser spy\ntopic read #\n")
        .connect("spy", co(p, "spy"), 0)
        .connect("slash", co(p, "a/b"), 0)
        .connect("plain", co(p, "a"), 0)
        .sub("slash", "dev/#", &[0])
        .publish("slash", "dev/a/b/t", "slash")
        .publish("plain", "dev/a/t", "plain")
        .recv("slash", &["dev/a/b/t=slash"])
        .plugin_recv(&[])
}

/// Deliberately stricter: 2.0 expands username `org/alice` in `u/%u/#` into two levels; the
/// user's own rules still apply in the plugin.
fn stricter_username_with_slash(p: Proto) -> Scenario {
    Scenario::new(format!("stricter_username_with_slash {p}"))
        .user("org/alice", "pa", Pbkdf2)
        .user("spy", "ps", Pbkdf2)
        .acl(
            "pattern readwrite u/%u/#\n\
             user org/alice\n\
             topic readwrite own/#\n\
             user spy\n\
             topic read #\n",
        )
        .connect("spy", co(p, "spy").login("spy", "ps"), 0)
        .connect("alice", co(p, "alice").login("org/alice", "pa"), 0)
        .sub("spy", "#", &[0])
        .publish("alice", "u/org/alice/x", "pattern")
        .publish("alice", "own/x", "own")
        .recv("spy", &["u/org/alice/x=pattern", "own/x=own"])
        .plugin_recv(&["own/x=own"])
}

/// The stricter substitution rules only ever remove grants: a `deny` pattern applies wherever
/// 2.0 applies it. 2.0 substitutes every `%c`/`%u` textually (a value with `/` spans levels, an
/// empty one is the empty string, whole-level or inside a level) and skips a rule for a `$`
/// topic only when the substituted rule does not start with `$`. Values with `+`/`#` meet the
/// "dangerous id" guard first; an empty client id is replaced by the broker's own, and a
/// zero-length username is no username, so neither reaches a pattern empty.
fn deny_patterns_apply_as_in_2_0(p: Proto) -> Scenario {
    Scenario::new(format!("deny_patterns_apply_as_in_2_0 {p}"))
        .anonymous(true)
        .user("org/alice", "pa", Pbkdf2)
        .user("$adm", "pd", Pbkdf2)
        .user("h#sh", "ph", Pbkdf2)
        .user("spy", "ps", Pbkdf2)
        .acl(
            "pattern deny dev/%c/secret\n\
             pattern deny dev/id-%c/secret\n\
             pattern deny $%c/secret\n\
             pattern deny %c/private\n\
             pattern deny u/%u/secret\n\
             pattern deny u/pre-%u-post/secret\n\
             pattern deny %u/private\n\
             pattern readwrite dev/#\n\
             pattern readwrite u/#\n\
             pattern readwrite $app/#\n\
             pattern readwrite $adm/#\n\
             user spy\n\
             topic read #\n\
             topic read $app/#\n\
             topic read $adm/#\n",
        )
        .connect("spy", co(p, "spy").login("spy", "ps"), 0)
        .sub("spy", "#", &[0])
        .sub("spy", "$app/#", &[0])
        .sub("spy", "$adm/#", &[0])
        .connect("slash", co(p, "a/b"), 0)
        .connect("app", co(p, "app"), 0)
        .connect("dollar", co(p, "$app"), 0)
        .connect("org", co(p, "org1").login("org/alice", "pa"), 0)
        .connect("adm", co(p, "adm1").login("$adm", "pd"), 0)
        .connect("plus", co(p, "+"), 0)
        .connect("hashid", co(p, "#"), 0)
        .connect("hashuser", co(p, "h1").login("h#sh", "ph"), 0)
        .connect("noid", co(p, ""), 0)
        .connect("nouser", co(p, "nu").username(""), 0)
        // Client id with '/', whole level and inside a level.
        .publish_q1("slash", "dev/a/b/secret", "1", denied_puback(p))
        .publish_q1("slash", "dev/id-a/b/secret", "2", denied_puback(p))
        .publish_q1("slash", "dev/a/b/ok", "3", ok_puback())
        // `$` topics: the rule starts with `$`, or the value does.
        .publish_q1("app", "$app/secret", "4", denied_puback(p))
        .publish_q1("app", "$app/ok", "5", ok_puback())
        .publish_q1("dollar", "$app/private", "6", denied_puback(p))
        .publish_q1("dollar", "$app/ok", "7", ok_puback())
        // Username with '/' and starting with '$'.
        .publish_q1("org", "u/org/alice/secret", "8", denied_puback(p))
        .publish_q1("org", "u/pre-org/alice-post/secret", "9", denied_puback(p))
        .publish_q1("org", "u/org/alice/ok", "10", ok_puback())
        .publish_q1("adm", "$adm/private", "11", denied_puback(p))
        .publish_q1("adm", "$adm/ok", "12", ok_puback())
        // '+' / '#' in a client id or username: the guard denies every pattern.
        .publish_q1("plus", "dev/x/ok", "13", denied_puback(p))
        .publish_q1("hashid", "dev/x/ok", "14", denied_puback(p))
        .publish_q1("hashuser", "u/x/ok", "15", denied_puback(p))
        // No empty value reaches a pattern.
        .publish_q1("noid", "dev//secret", "16", ok_puback())
        .publish_q1("noid", "dev/id-/secret", "17", ok_puback())
        .publish_q1("nouser", "u//secret", "18", ok_puback())
        .publish_q1("nouser", "u/pre--post/secret", "19", ok_puback())
        .recv(
            "spy",
            &[
                "dev/a/b/ok=3",
                "$app/ok=5",
                "$app/ok=7",
                "u/org/alice/ok=10",
                "$adm/ok=12",
                "dev//secret=16",
                "dev/id-/secret=17",
                "u//secret=18",
                "u/pre--post/secret=19",
            ],
        )
}

/// Deliberately stricter: `%c/#` with client id `$foo` grants `$foo/...` in 2.0; the plugin
/// never lets a pattern match a `$` topic unless its first level is a literal `$...`.
fn stricter_client_id_starting_with_dollar(p: Proto) -> Scenario {
    Scenario::new(format!("stricter_client_id_starting_with_dollar {p}"))
        .anonymous(true)
        .acl("pattern readwrite %c/#\n")
        .connect("dollar", co(p, "$foo"), 0)
        .connect("plain", co(p, "foo"), 0)
        .sub("dollar", "$foo/#", &[0])
        .sub("plain", "foo/#", &[0])
        .publish("dollar", "$foo/x", "d")
        .publish("plain", "foo/x", "p")
        .recv("dollar", &["$foo/x=d"])
        .plugin_recv(&[])
        .recv("plain", &["foo/x=p"])
}

/// A zero-length username: Mosquitto 2.0.11 treats the client as anonymous (it gets the
/// anonymous section, `%u` patterns do not apply, allow_anonymous decides). The plugin must
/// agree (its `%u` strictness for empty usernames is then moot).
fn empty_username_is_anonymous(p: Proto) -> Scenario {
    Scenario::new(format!("empty_username_is_anonymous {p}"))
        .anonymous(true)
        .acl(
            "topic readwrite anon/#\n\
             pattern readwrite u/%u\n\
             pattern readwrite c/%c\n",
        )
        .connect("empty", co(p, "e1").username(""), 0)
        .connect("anon", co(p, "a1"), 0)
        .sub("empty", "u/", &[0])
        .sub("empty", "anon/#", &[0])
        .sub("empty", "c/e1", &[0])
        .sub("anon", "anon/#", &[0])
        .publish("empty", "u/", "empty-u")
        .publish("empty", "anon/e", "empty-anon")
        .publish("empty", "c/e1", "empty-c")
        .publish("anon", "anon/a", "anon-anon")
        .recv(
            "empty",
            &["anon/a=anon-anon", "anon/e=empty-anon", "c/e1=empty-c"],
        )
        .recv("anon", &["anon/a=anon-anon", "anon/e=empty-anon"])
}

/// A zero-length username with a password file: counts as no username, so allow_anonymous
/// decides.
fn empty_username_with_password_file(p: Proto) -> Scenario {
    Scenario::new(format!("empty_username_with_password_file {p}"))
        .user("alice", "pa", Pbkdf2)
        .connect("e1", co(p, "e1").username(""), na(p))
        .connect("e2", co(p, "e2").login("", "pa"), na(p))
        .connect("a", co(p, "a").login("alice", "pa"), 0)
}

/// The same with allow_anonymous true.
fn empty_username_anonymous_allowed(p: Proto) -> Scenario {
    Scenario::new(format!("empty_username_anonymous_allowed {p}"))
        .anonymous(true)
        .user("alice", "pa", Pbkdf2)
        .connect("e1", co(p, "e1").username(""), 0)
        .connect("e2", co(p, "e2").login("", "whatever"), 0)
}

/// An ACL file with only comments denies everything (CVE-2018-12550).
fn empty_acl_denies_everything(p: Proto) -> Scenario {
    Scenario::new(format!("empty_acl {p}"))
        .anonymous(true)
        .user("alice", "pa", Pbkdf2)
        .acl("# nothing here\n\n")
        .connect("alice", co(p, "alice").login("alice", "pa"), 0)
        .connect("anon", co(p, "anon"), 0)
        .sub("alice", "#", &[0])
        .sub("anon", "#", &[0])
        .publish("alice", "x", "1")
        .publish("anon", "y", "2")
        .publish_q1("alice", "z", "3", denied_puback(p))
        .recv("alice", &[])
        .recv("anon", &[])
}

/// Without an ACL file every authenticated client may do everything.
fn no_acl_allows_everything(p: Proto) -> Scenario {
    Scenario::new(format!("no_acl {p}"))
        .user("alice", "pa", Pbkdf2)
        .connect("alice", co(p, "alice").login("alice", "pa"), 0)
        .sub("alice", "#", &[0])
        .publish("alice", "x/y", "1")
        .publish_q1("alice", "z", "2", ok_puback())
        .recv("alice", &["x/y=1", "z=2"])
}

/// Grammar corners Mosquitto accepts: `topic read` alone is readwrite on the topic `read`;
/// topics with inner spaces; trailing whitespace and CRLF; repeated `user` blocks merge;
/// usernames with inner spaces; `pattern` without `%c`/`%u` is global.
fn acl_grammar_edges(p: Proto) -> Scenario {
    Scenario::new(format!("acl_grammar {p}"))
        .user("alice", "pa", Pbkdf2)
        .user("bob smith", "pb", Pbkdf2)
        .user("spy", "ps", Pbkdf2)
        .acl(
            "user alice\r\n\
             topic read\r\n\
             topic write   foo bar  \r\n\
             user bob smith\n\
             topic readwrite bob/#\t \n\
             user spy\n\
             topic read #\n\
             user alice\n\
             topic readwrite merged/#\n\
             pattern write global/all\n",
        )
        .connect("alice", co(p, "alice").login("alice", "pa"), 0)
        .connect("bob", co(p, "bob").login("bob smith", "pb"), 0)
        .connect("spy", co(p, "spy").login("spy", "ps"), 0)
        .sub("spy", "#", &[0])
        .publish("alice", "read", "1")
        .publish("alice", "foo bar", "2")
        .publish("alice", "foo", "3")
        .publish("alice", "merged/x", "4")
        .publish("bob", "bob/x", "5")
        .publish("alice", "global/all", "6")
        .publish("spy", "global/all", "7")
        .recv(
            "spy",
            &[
                "read=1",
                "foo bar=2",
                "merged/x=4",
                "bob/x=5",
                "global/all=6",
                "global/all=7",
            ],
        )
}

/// Shared subscriptions: delivery to a `$share/group/...` member is filtered by READ on the
/// message topic.
fn shared_subscriptions(p: Proto) -> Scenario {
    Scenario::new(format!("shared_subscriptions {p}"))
        .user("alice", "pa", Pbkdf2)
        .user("writer", "pw", Pbkdf2)
        .acl(
            "user alice\n\
             topic read s/#\n\
             user writer\n\
             topic readwrite #\n",
        )
        .connect("alice", co(p, "alice").login("alice", "pa"), 0)
        .connect("writer", co(p, "writer").login("writer", "pw"), 0)
        .sub("alice", "$share/g/s/#", &[0])
        .sub("alice", "$share/g/x/#", &[0])
        .publish("writer", "s/1", "1")
        .publish("writer", "x/1", "2")
        .recv("alice", &["s/1=1"])
}

/// Wills are checked as WRITE when they are sent: a will on a topic the client may not write
/// is dropped.
fn wills(p: Proto) -> Scenario {
    Scenario::new(format!("wills {p}"))
        .user("alice", "pa", Pbkdf2)
        .user("spy", "ps", Pbkdf2)
        .acl(
            "user alice\n\
             topic write will/alice\n\
             user spy\n\
             topic read #\n",
        )
        .connect("spy", co(p, "spy").login("spy", "ps"), 0)
        .sub("spy", "#", &[0])
        .connect(
            "ok",
            co(p, "will-ok")
                .login("alice", "pa")
                .will("will/alice", b"gone", 0, false),
            0,
        )
        .connect(
            "bad",
            co(p, "will-bad")
                .login("alice", "pa")
                .will("will/other", b"gone", 0, false),
            0,
        )
        .connect(
            "ret",
            co(p, "will-ret")
                .login("alice", "pa")
                .will("will/alice", b"kept", 0, true),
            0,
        )
        .drop_connection("ok")
        .drop_connection("bad")
        .recv("spy", &["will/alice=gone"])
        .drop_connection("ret")
        .recv("spy", &["will/alice=kept"])
}

/// A changed ACL takes effect on SIGHUP, including for existing subscriptions (READ is
/// re-checked at delivery).
fn reload_changed_acl(p: Proto) -> Scenario {
    Scenario::new(format!("reload_changed_acl {p}"))
        .user("alice", "pa", Pbkdf2)
        .user("spy", "ps", Pbkdf2)
        .acl("user alice\ntopic readwrite a/#\nuser spy\ntopic read #\n")
        .connect("alice", co(p, "alice").login("alice", "pa"), 0)
        .connect("spy", co(p, "spy").login("spy", "ps"), 0)
        .sub("alice", "#", &[0])
        .sub("spy", "#", &[0])
        .publish("alice", "a/1", "before")
        .publish("alice", "b/1", "before")
        .recv("spy", &["a/1=before"])
        .recv("alice", &["a/1=before"])
        .write_acl("user alice\ntopic readwrite b/#\nuser spy\ntopic read #\n")
        .reload()
        .connected("alice", true)
        .publish("alice", "a/2", "after")
        .publish("alice", "b/2", "after")
        .publish("spy", "a/3", "spy-cannot-write")
        .recv("spy", &["b/2=after"])
        .recv("alice", &["b/2=after"])
}

/// A changed password: Mosquitto re-authenticates every connected client on SIGHUP and drops
/// the ones that fail; the new password works.
fn reload_changed_password(p: Proto) -> Scenario {
    Scenario::new(format!("reload_changed_password {p}"))
        .user("alice", "old", Pbkdf2)
        .user("bob", "pb", Sha512)
        .connect("alice", co(p, "alice").login("alice", "old"), 0)
        .connect("bob", co(p, "bob").login("bob", "pb"), 0)
        .write_passwd(PasswdSpec::Users(vec![
            ("alice".into(), "new".into(), Pbkdf2),
            ("bob".into(), "pb".into(), Sha512),
        ]))
        .reload()
        .connected("alice", false)
        .connected("bob", true)
        .connect("alice-old", co(p, "alice2").login("alice", "old"), na(p))
        .connect("alice-new", co(p, "alice3").login("alice", "new"), 0)
}

/// A broken ACL on SIGHUP: Mosquitto 2.0 fails open (no ACL callback until the next good
/// reload); the plugin keeps the previous policy.
fn reload_broken_acl(p: Proto) -> Scenario {
    Scenario::new(format!("reload_broken_acl {p}"))
        .user("alice", "pa", Pbkdf2)
        .user("spy", "ps", Pbkdf2)
        .acl("user alice\ntopic readwrite a/#\nuser spy\ntopic read #\n")
        .connect("alice", co(p, "alice").login("alice", "pa"), 0)
        .connect("spy", co(p, "spy").login("spy", "ps"), 0)
        .sub("spy", "#", &[0])
        .write_acl("user alice\ntopic readwrite a/#\nbogus line\nuser spy\ntopic read #\n")
        .reload()
        .publish("alice", "a/1", "allowed")
        .publish("alice", "x/1", "forbidden")
        .recv("spy", &["a/1=allowed", "x/1=forbidden"])
        .plugin_recv(&["a/1=allowed"])
        .connect("anon", co(p, "anon"), na(p))
}
