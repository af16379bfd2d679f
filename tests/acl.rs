//! ACL file grammar and decisions, against Mosquitto 2.0's semantics.

use std::path::Path;

use mqttguard::acl::{Access, AclError, AclPolicy, Client, Decision, Reason, RuleAccess, RuleKind};

fn policy(text: &str) -> AclPolicy {
    AclPolicy::parse(Path::new("acl"), text.as_bytes()).expect("valid ACL")
}

fn error(text: &str) -> (usize, AclError) {
    let e = AclPolicy::parse(Path::new("acl"), text.as_bytes()).expect_err("invalid ACL");
    assert_eq!(e.file, Path::new("acl"));
    (e.line, e.error)
}

fn user<'a>(name: &'a str, id: &'a str) -> Client<'a> {
    Client {
        id: Some(id),
        username: Some(name),
    }
}

fn anon(id: &str) -> Client<'_> {
    Client {
        id: Some(id),
        username: None,
    }
}

fn can(p: &AclPolicy, c: &Client<'_>, topic: &str, access: Access) -> bool {
    p.check(c, topic, access, false).allowed
}

fn deciding_line(p: &AclPolicy, d: Decision) -> Option<usize> {
    match d.reason {
        Reason::Rule(id) => Some(p.rule(id).line),
        _ => None,
    }
}

#[test]
fn grammar_basics() {
    let p = policy(
        "# comment\n\n   \ntopic read anon/#\nuser alice\ntopic write a/w\ntopic a/rw\n  topic   read   a/r  \r\npattern deny p/%c/secret\n",
    );
    let rules = p.rules();
    assert_eq!(rules.len(), 5);
    assert_eq!(rules[0].user, None);
    assert_eq!(rules[0].access, RuleAccess::Read);
    assert_eq!(rules[1].user.as_deref(), Some("alice"));
    assert_eq!(rules[2].access, RuleAccess::ReadWrite);
    assert_eq!(rules[3].topic, "a/r");
    assert_eq!(rules[3].line, 8);
    assert_eq!(rules[4].kind, RuleKind::Pattern);
    assert_eq!(rules[4].access, RuleAccess::Deny);
    assert_eq!(p.user_count(), 1);
    assert_eq!(p.pattern_count(), 1);
}

#[test]
fn topic_read_alone_is_readwrite_on_a_topic_named_read() {
    let p = policy("user u\ntopic read\ntopic write\n");
    assert_eq!(p.rules()[0].topic, "read");
    assert_eq!(p.rules()[0].access, RuleAccess::ReadWrite);
    let c = user("u", "c");
    assert!(can(&p, &c, "read", Access::Write));
    assert!(can(&p, &c, "write", Access::Read));
    assert!(!can(&p, &c, "other", Access::Read));
}

#[test]
fn topic_is_rest_of_line_with_inner_spaces_and_user_names_keep_spaces() {
    let p = policy("user alice bob\ntopic read foo bar\n");
    assert_eq!(p.rules()[0].topic, "foo bar");
    assert!(can(&p, &user("alice bob", "c"), "foo bar", Access::Read));
    assert!(!can(&p, &user("alice", "c"), "foo bar", Access::Read));
}

#[test]
fn errors_name_their_line() {
    assert!(matches!(
        error("topic read a\n  # indented\n"),
        (2, AclError::InvalidLine)
    ));
    assert!(matches!(
        error("\ttopic read a\n"),
        (1, AclError::InvalidLine)
    ));
    assert!(matches!(
        error("topic\tread a\n"),
        (1, AclError::InvalidLine)
    ));
    assert!(matches!(
        error("TOPIC read a\n"),
        (1, AclError::InvalidLine)
    ));
    assert!(matches!(
        error("user a\ndeny a/b\n"),
        (2, AclError::InvalidLine)
    ));
    assert!(matches!(
        error("\n\ntopic foo bar\n"),
        (3, AclError::InvalidAccess(_))
    ));
    assert!(matches!(error("topic\n"), (1, AclError::EmptyTopic(_))));
    assert!(matches!(
        error("pattern   \n"),
        (1, AclError::EmptyTopic(_))
    ));
    assert!(matches!(error("user\n"), (1, AclError::MissingUsername)));
    assert!(matches!(error("user   \n"), (1, AclError::MissingUsername)));
    assert!(matches!(
        error("topic read a/#/b\n"),
        (1, AclError::InvalidTopic { .. })
    ));
    assert!(matches!(
        error("topic read a+\n"),
        (1, AclError::InvalidTopic { .. })
    ));
    assert!(matches!(
        error("pattern write a/b#\n"),
        (1, AclError::InvalidTopic { .. })
    ));
    assert!(matches!(
        error("topic read a\ntopic read b\0c\n"),
        (2, AclError::Nul)
    ));
    let e = AclPolicy::parse(Path::new("x"), b"topic read \xff\n").expect_err("not utf-8");
    assert_eq!((e.line, e.error), (1, AclError::NotUtf8));
    let shown = AclPolicy::parse(Path::new("/etc/acl"), b"topic foo bar\n")
        .expect_err("bad")
        .to_string();
    assert!(shown.starts_with("/etc/acl:1: "), "{shown}");
}

#[test]
fn empty_and_comment_only_files_deny_everything() {
    for text in ["", "# nothing\n", "\n\n"] {
        let p = policy(text);
        assert!(!can(&p, &user("u", "c"), "a", Access::Read));
        assert!(!can(&p, &anon("c"), "a", Access::Write));
    }
}

#[test]
fn anonymous_section_applies_only_without_username() {
    let p = policy("topic read public/#\nuser alice\ntopic read alice/#\n");
    assert!(can(&p, &anon("c"), "public/x", Access::Read));
    assert!(!can(&p, &anon("c"), "public/x", Access::Write));
    assert!(!can(&p, &user("alice", "c"), "public/x", Access::Read));
    assert!(can(&p, &user("alice", "c"), "alice/x", Access::Read));
    assert!(!can(&p, &anon("c"), "alice/x", Access::Read));
    // A named user without a block gets only patterns: none here.
    assert!(!can(&p, &user("bob", "c"), "public/x", Access::Read));
}

#[test]
fn repeated_user_blocks_merge() {
    let p = policy("user a\ntopic read x\nuser b\ntopic read y\nuser a\ntopic write z\n");
    let a = user("a", "c");
    assert!(can(&p, &a, "x", Access::Read));
    assert!(can(&p, &a, "z", Access::Write));
    assert!(!can(&p, &a, "y", Access::Read));
    assert_eq!(p.user_count(), 2);
}

#[test]
fn access_bits() {
    let p = policy("user u\ntopic read r\ntopic write w\ntopic readwrite rw\ntopic read both\ntopic write both\n");
    let c = user("u", "c");
    assert!(can(&p, &c, "r", Access::Read) && !can(&p, &c, "r", Access::Write));
    assert!(can(&p, &c, "w", Access::Write) && !can(&p, &c, "w", Access::Read));
    assert!(can(&p, &c, "rw", Access::Read) && can(&p, &c, "rw", Access::Write));
    assert!(can(&p, &c, "both", Access::Read) && can(&p, &c, "both", Access::Write));
}

#[test]
fn wildcards_match_as_mqtt() {
    let p = policy("user u\ntopic read a/+/c\ntopic read b/#\ntopic read +\ntopic read d/+\n");
    let c = user("u", "c");
    assert!(can(&p, &c, "a/b/c", Access::Read));
    assert!(can(&p, &c, "a//c", Access::Read));
    assert!(!can(&p, &c, "a/b/c/d", Access::Read));
    assert!(can(&p, &c, "b", Access::Read), "b/# matches its parent");
    assert!(can(&p, &c, "b/x/y", Access::Read));
    assert!(can(&p, &c, "top", Access::Read));
    assert!(!can(&p, &c, "top/x", Access::Read));
    assert!(can(&p, &c, "d/", Access::Read));
    assert!(
        can(&p, &c, "d", Access::Read),
        "+ matches the one-level topic d"
    );
    assert!(!can(&p, &c, "d/x/y", Access::Read));
    assert!(!can(&p, &c, "bx/y", Access::Read));
}

#[test]
fn deny_beats_allow_within_a_list_whatever_the_order() {
    for text in [
        "user u\ntopic readwrite a/#\ntopic deny a/secret\n",
        "user u\ntopic deny a/secret\ntopic readwrite a/#\n",
    ] {
        let p = policy(text);
        let c = user("u", "c");
        assert!(!can(&p, &c, "a/secret", Access::Read));
        assert!(!can(&p, &c, "a/secret", Access::Write));
        assert!(can(&p, &c, "a/open", Access::Write));
    }
}

#[test]
fn user_allow_beats_pattern_deny_and_user_deny_beats_pattern_allow() {
    let p = policy("user bob\ntopic readwrite p/deny/#\ntopic deny q/x\npattern deny p/deny/x\npattern readwrite q/#\n");
    let bob = user("bob", "c");
    assert!(can(&p, &bob, "p/deny/x", Access::Write));
    assert!(!can(&p, &bob, "q/x", Access::Write));
    assert!(can(&p, &bob, "q/y", Access::Write));
    let other = user("carol", "c");
    assert!(!can(&p, &other, "p/deny/x", Access::Write));
}

#[test]
fn a_matching_read_rule_does_not_stop_a_write_check() {
    let p = policy("user u\ntopic read a/#\npattern write a/%u/x\n");
    assert!(can(&p, &user("u", "c"), "a/u/x", Access::Write));
}

#[test]
fn dollar_topics_need_dollar_rules() {
    let p = policy(
        "user u\ntopic readwrite #\ntopic read +/x\nuser s\ntopic read $SYS/#\npattern read #\n",
    );
    let u = user("u", "c");
    assert!(can(&p, &u, "a/b", Access::Read));
    assert!(!can(&p, &u, "$SYS/broker/uptime", Access::Read));
    assert!(!can(&p, &u, "$SYS/x", Access::Read));
    assert!(!can(&p, &u, "$CONTROL/x", Access::Write));
    let s = user("s", "c");
    assert!(can(&p, &s, "$SYS/broker/uptime", Access::Read));
    assert!(!can(&p, &s, "$SYSX/a", Access::Read));
}

#[test]
fn patterns_substitute_client_id_and_username() {
    let p =
        policy("pattern readwrite dev/%c/#\npattern read users/%u/in\npattern write id-%c-%u/x\n");
    let c = user("bob", "dev1");
    assert!(can(&p, &c, "dev/dev1/t", Access::Write));
    assert!(can(&p, &c, "dev/dev1", Access::Read));
    assert!(!can(&p, &c, "dev/dev2/t", Access::Write));
    assert!(can(&p, &c, "users/bob/in", Access::Read));
    assert!(!can(&p, &c, "users/bob/in", Access::Write));
    assert!(can(&p, &c, "id-dev1-bob/x", Access::Write));
    assert!(!can(&p, &c, "id-dev1-bo/x", Access::Write));
    // Patterns apply to anonymous clients too, but %u never matches without a username.
    let a = anon("dev1");
    assert!(can(&p, &a, "dev/dev1/t", Access::Write));
    assert!(!can(&p, &a, "users//in", Access::Read));
    assert!(!can(&p, &a, "users/%u/in", Access::Read));
}

#[test]
fn percent_in_topic_rules_is_literal() {
    let p = policy("user u\ntopic read a/%c\n");
    assert!(can(&p, &user("u", "c"), "a/%c", Access::Read));
    assert!(!can(&p, &user("u", "c"), "a/c", Access::Read));
}

#[test]
fn pattern_without_placeholders_is_global() {
    let p = policy("pattern read public/#\nuser u\ntopic read own\n");
    assert!(can(&p, &user("u", "c"), "public/x", Access::Read));
    assert!(can(&p, &user("v", "c"), "public/x", Access::Read));
    assert!(can(&p, &anon("c"), "public/x", Access::Read));
}

#[test]
fn dangerous_identities_are_refused_by_patterns_but_keep_their_own_rules() {
    let p =
        policy("pattern read public/#\npattern readwrite dev/%c/#\nuser x+y\ntopic read own/#\n");
    for (u, id) in [
        (Some("a+b"), "c"),
        (Some("a#b"), "c"),
        (None, "c+d"),
        (None, "c#d"),
    ] {
        let c = Client {
            id: Some(id),
            username: u,
        };
        let d = p.check(&c, "public/x", Access::Read, false);
        assert_eq!(
            d,
            Decision {
                allowed: false,
                reason: Reason::DangerousIdentity,
                read_client_id: true,
            }
        );
    }
    // Mosquitto checks the user list first: x+y keeps its grants.
    assert!(can(&p, &user("x+y", "id"), "own/a", Access::Read));
    assert!(!can(&p, &user("x+y", "id"), "public/a", Access::Read));
}

#[test]
fn stricter_than_mosquitto_2_0_for_unsafe_substitutions() {
    let p = policy("pattern readwrite dev/%c/#\npattern readwrite u/%u\npattern readwrite %c/#\n");
    // 2.0 expands a client id "a/b" into two levels; we never match.
    assert!(!can(&p, &anon("a/b"), "dev/a/b/t", Access::Write));
    // Empty username: 2.0 substitutes the empty string; we never match.
    assert!(!can(&p, &user("", "c"), "u/", Access::Write));
    // A client id starting with '$' cannot reach $ topics through a pattern.
    assert!(!can(&p, &anon("$foo"), "$foo/x", Access::Write));
    assert!(can(&p, &anon("foo"), "foo/x", Access::Write));
}

#[test]
fn subscribe_and_unsubscribe_are_allowed_by_default() {
    let p = policy("user u\ntopic read a\n");
    let c = user("u", "c");
    for access in [Access::Subscribe, Access::Unsubscribe] {
        let d = p.check(&c, "#", access, false);
        assert_eq!(
            d,
            Decision {
                allowed: true,
                reason: Reason::SubscribeUnchecked,
                read_client_id: false,
            }
        );
    }
}

#[test]
fn checked_subscriptions_need_a_readable_topic() {
    let p = policy(
        "user u\ntopic read sensors/own/#\ntopic readwrite cmd/+/in\ntopic deny sensors/own/secret/#\ntopic write w/#\npattern read dev/%c/#\n",
    );
    let c = user("u", "d1");
    let sub = |f: &str| p.check(&c, f, Access::Subscribe, true).allowed;
    assert!(!sub("#"));
    assert!(
        sub("sensors/own/#"),
        "a partial deny still filters delivery"
    );
    assert!(sub("sensors/own/t"));
    assert!(!sub("sensors/+/t"), "not every match is readable");
    assert!(!sub("sensors/other/t"));
    assert!(sub("cmd/x/in"));
    assert!(!sub("cmd/#"));
    assert!(sub("cmd/+/in"));
    assert!(!sub("cmd/x/out"));
    assert!(!sub("sensors/own/secret/#"));
    assert!(!sub("sensors/own/secret/a"));
    assert!(!sub("w/x"), "write-only is not readable");
    assert!(sub("dev/d1/#"));
    assert!(!sub("dev/+/x"));
    assert!(!sub("dev/d2/x"));
    assert!(sub("$share/g/sensors/own/t"));
    assert!(!sub("$share/g/#"));
    assert!(!sub("a/#/b"));
    // Unsubscribe stays unchecked.
    assert!(p.check(&c, "#", Access::Unsubscribe, true).allowed);
}

#[test]
fn checked_subscriptions_respect_dollar_topics() {
    let p = policy("user u\ntopic read $SYS/#\ntopic read a\n");
    let c = user("u", "c");
    assert!(
        p.check(&c, "$SYS/broker/#", Access::Subscribe, true)
            .allowed
    );
    assert!(!p.check(&c, "#", Access::Subscribe, true).allowed);
    assert!(p.check(&c, "a", Access::Subscribe, true).allowed);
    let q = policy("user u\ntopic read $SYS/#\n");
    assert!(!q.check(&c, "#", Access::Subscribe, true).allowed);
    assert!(!q.check(&c, "+/broker", Access::Subscribe, true).allowed);
}

#[test]
fn decisions_name_the_deciding_rule() {
    let p = policy("user u\ntopic read a/#\ntopic deny a/x\ntopic deny a/+\ntopic read a/y\n");
    let c = user("u", "c");
    // Mosquitto meets the last deny first (denies are prepended).
    assert_eq!(
        deciding_line(&p, p.check(&c, "a/x", Access::Read, false)),
        Some(4)
    );
    assert_eq!(
        deciding_line(&p, p.check(&c, "a", Access::Read, false)),
        Some(2)
    );
    let none = p.check(&c, "b", Access::Read, false);
    assert_eq!(
        none,
        Decision {
            allowed: false,
            reason: Reason::NoMatch,
            read_client_id: false,
        }
    );
}

#[test]
fn no_client_id_denies_patterns() {
    let p = policy("pattern read #\n");
    let c = Client {
        id: None,
        username: Some("u"),
    };
    assert_eq!(
        p.check(&c, "a", Access::Read, false).reason,
        Reason::NoClientId
    );
}

#[test]
fn large_policies_compile() {
    let mut text = String::new();
    for u in 0..2000 {
        text.push_str(&format!("user user{u}\n"));
        for r in 0..10 {
            text.push_str(&format!("topic readwrite site/{u}/dev{r}/#\n"));
        }
    }
    for i in 0..1000 {
        text.push_str(&format!("pattern read p{i}/%c/#\n"));
    }
    let p = policy(&text);
    assert_eq!(p.user_count(), 2000);
    assert!(can(
        &p,
        &user("user1999", "c"),
        "site/1999/dev9/x",
        Access::Write
    ));
    assert!(!can(
        &p,
        &user("user1999", "c"),
        "site/1998/dev9/x",
        Access::Write
    ));
    assert!(can(&p, &user("user5", "c"), "p999/c/x", Access::Read));
}

/// The stricter substitution rules only ever remove grants: a `deny` pattern applies wherever
/// Mosquitto 2.0 applies it (textual substitution of every `%c`/`%u`, and a `$` topic skipped
/// only when the substituted rule does not start with `$`).
#[test]
fn deny_patterns_apply_wherever_mosquitto_2_0_applies_them() {
    let p = policy(
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
         pattern readwrite $adm/#\n",
    );
    let w = |c: &Client<'_>, t: &str| can(&p, c, t, Access::Write);
    let line = |c: &Client<'_>, t: &str| deciding_line(&p, p.check(c, t, Access::Write, false));
    // Client id with '/': 2.0 expands it into two levels, and so does the deny.
    let slash = anon("a/b");
    assert!(!w(&slash, "dev/a/b/secret"));
    assert_eq!(line(&slash, "dev/a/b/secret"), Some(1));
    assert!(!w(&slash, "dev/id-a/b/secret"));
    assert_eq!(line(&slash, "dev/id-a/b/secret"), Some(2));
    assert!(w(&slash, "dev/a/b/other"));
    assert!(w(&slash, "dev/a/secret"));
    // Trailing and leading '/' in the value.
    assert!(!w(&anon("a/"), "dev/a//secret"));
    assert!(w(&anon("a/"), "dev/a/secret"));
    assert!(!w(&anon("/a"), "dev//a/secret"));
    // Deny patterns reach '$' topics when the substituted rule starts with '$'.
    let app = anon("app");
    assert!(!w(&app, "$app/secret"));
    assert_eq!(line(&app, "$app/secret"), Some(3));
    assert!(w(&app, "$app/other"));
    let dollar = anon("$app");
    assert!(!w(&dollar, "$app/private"));
    assert_eq!(line(&dollar, "$app/private"), Some(4));
    assert!(w(&dollar, "$app/other"));
    // An empty client id (a plugin could set one) is substituted as the empty string.
    let empty = anon("");
    assert!(!w(&empty, "dev//secret"));
    assert!(!w(&empty, "dev/id-/secret"));
    assert!(w(&empty, "dev/x/secret"));
    // %u: '/', '$', empty.
    let org = user("org/alice", "c1");
    assert!(!w(&org, "u/org/alice/secret"));
    assert!(!w(&org, "u/pre-org/alice-post/secret"));
    assert!(w(&org, "u/org/alice/other"));
    let adm = user("adm", "c2");
    assert!(
        w(&adm, "$adm/secret"),
        "pattern deny $%c/secret is about the client id"
    );
    let dadm = user("$adm", "c3");
    assert!(!w(&dadm, "$adm/private"));
    assert!(w(&dadm, "$adm/other"));
    let eu = user("", "c4");
    assert!(!w(&eu, "u//secret"));
    assert!(!w(&eu, "u/pre--post/secret"));
    // No username: %u rules are skipped, as in 2.0.
    assert!(w(&anon("c5"), "u//secret"));
    // Reading is denied the same way.
    assert!(!can(&p, &slash, "dev/a/b/secret", Access::Read));
}

#[test]
fn deny_patterns_with_long_values_stay_bounded() {
    let p = policy("pattern deny dev/%c/secret\npattern deny %u/x\npattern readwrite #\n");
    let id = "a/".repeat(32 * 1024);
    let topic = format!("dev/{id}/secret");
    assert!(!can(&p, &anon(&id), &topic, Access::Write));
    assert!(can(
        &p,
        &anon(&id),
        &format!("dev/{id}/other"),
        Access::Write
    ));
    let plus = "+".repeat(64 * 1024);
    let d = p.check(&anon(&plus), "dev/x/secret", Access::Write, false);
    assert_eq!(d.reason, Reason::DangerousIdentity);
    let d = p.check(&user(&plus, "c"), "a/x", Access::Write, false);
    assert_eq!(d.reason, Reason::DangerousIdentity);
}

#[test]
fn checked_subscriptions_honour_deny_patterns_like_delivery() {
    let p = policy(
        "pattern deny dev/%c/secret\npattern deny $%c/#\npattern read #\npattern read $app/#\n",
    );
    let sub = |id: &str, f: &str| p.check(&anon(id), f, Access::Subscribe, true).allowed;
    assert!(!sub("a/b", "dev/a/b/secret"));
    assert!(sub("a/b", "dev/a/b/other"));
    assert!(!sub("app", "$app/x"));
    assert!(!sub("app", "$app/#"));
}

/// Topic names: READ and WRITE of a topic that is empty or contains a wildcard are denied;
/// SUBSCRIBE/UNSUBSCRIBE take filters, where wildcards are legal but an empty filter is not.
#[test]
fn topics_that_are_not_topic_names_are_denied() {
    let p = policy("user u\ntopic readwrite #\ntopic write a/+\npattern readwrite #\n");
    let c = user("u", "c");
    for access in [Access::Read, Access::Write] {
        for t in ["", "a/#", "a/+", "+", "#", "a/b+", "x#"] {
            assert!(!can(&p, &c, t, access), "{access:?} {t:?}");
            assert!(!can(&p, &anon("c"), t, access), "{access:?} {t:?}");
        }
        assert!(can(&p, &c, "a/b", access));
    }
    for access in [Access::Subscribe, Access::Unsubscribe] {
        assert!(!p.check(&c, "", access, false).allowed, "{access:?}");
        assert!(!p.check(&c, "", access, true).allowed, "{access:?}");
        assert!(p.check(&c, "a/+", access, false).allowed, "{access:?}");
        assert!(p.check(&c, "#", access, false).allowed, "{access:?}");
    }
}

/// The compiled tries against a naive statement of the semantics, on many small random
/// policies: deny patterns substitute every `%c`/`%u` textually and match as Mosquitto 2.0
/// (`$` compared on the substituted rule); allow patterns never match with an empty value or
/// one holding `/`, `+`, `#`, nor through a first level with a placeholder on a `$` topic.
#[test]
fn patterns_agree_with_a_naive_reference() {
    use mqttguard::topic::filter_matches;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let rule_levels = ["a", "b", "$a", "%c", "%u", "x-%c", "%c%u", "+", "$%c"];
    let values = ["a", "b", "a/b", "", "$a", "/a", "a/", "x-a", "b/x-a"];
    let topic_levels = ["a", "b", "$a", "x-a", "", "ab", "x-"];
    for _ in 0..20_000 {
        let mut rules: Vec<(bool, String)> = Vec::new();
        for _ in 0..1 + next(4) {
            let depth = 1 + next(3);
            let mut levels: Vec<&str> = (0..depth)
                .map(|_| rule_levels[next(rule_levels.len())])
                .enumerate()
                .map(|(i, l)| if i > 0 && l.starts_with('$') { "b" } else { l })
                .collect();
            if next(4) == 0 {
                levels.push("#");
            }
            rules.push((next(2) == 0, levels.join("/")));
        }
        let text: String = rules
            .iter()
            .map(|(deny, t)| format!("pattern {} {t}\n", if *deny { "deny" } else { "readwrite" }))
            .collect();
        let p = policy(&text);
        let id = values[next(values.len())];
        let username = [None, Some(values[next(values.len())])][next(2)];
        let topic: Vec<&str> = (0..1 + next(4))
            .map(|_| topic_levels[next(topic_levels.len())])
            .collect();
        let topic = topic.join("/");
        let safe = |v: &str| !v.is_empty() && !v.contains(['/', '+', '#']);
        let subst = |t: &str| {
            t.replace("%c", "\u{1}")
                .replace("%u", "\u{2}")
                .replace('\u{1}', id)
                .replace('\u{2}', username.unwrap_or(""))
        };
        let matches = |deny: bool, t: &str| {
            if t.contains("%u") && username.is_none() {
                return false;
            }
            if deny {
                return filter_matches(&subst(t), &topic);
            }
            let uses_c = t.contains("%c");
            let uses_u = t.contains("%u");
            if (uses_c && !safe(id)) || (uses_u && !username.is_some_and(safe)) {
                return false;
            }
            let first = t.split('/').next().unwrap_or("");
            if topic.starts_with('$') && (first.contains("%c") || first.contains("%u")) {
                return false;
            }
            filter_matches(&subst(t), &topic)
        };
        let denied = rules.iter().any(|(d, t)| *d && matches(true, t));
        let granted = rules.iter().any(|(d, t)| !*d && matches(false, t));
        // The empty topic is not a topic name: always denied.
        let expected = !topic.is_empty() && !denied && granted;
        let client = Client {
            id: Some(id),
            username,
        };
        let got = p.check(&client, &topic, Access::Write, false);
        assert_eq!(
            got.allowed, expected,
            "{text}id {id:?} username {username:?} topic {topic:?}: {got:?}"
        );
        if denied && !topic.is_empty() {
            assert!(matches!(got.reason, Reason::Rule(_)), "{got:?}");
        }
    }
}
