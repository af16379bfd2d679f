//! Plugin options, loading a whole policy, and basic authentication with the cache.

use std::io::Write;
use std::path::{Path, PathBuf};

use mqttguard::cache::CredentialCache;
use mqttguard::config::{Config, ConfigError};
use mqttguard::passwd::hash::hash_pbkdf2;
use mqttguard::policy::LoadError;
use mqttguard::policy::{AuthFailure, AuthOutcome, AuthStep, OptionError, Options, Policy};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(text.as_bytes()).expect("write");
    path
}

#[test]
fn options_are_strict() {
    let ok = Options::from_pairs([
        ("password_file", "/p"),
        ("acl_file", "/a"),
        ("config", "/c"),
    ])
    .expect("valid");
    assert_eq!(ok.acl_file.as_deref(), Some(Path::new("/a")));
    assert_eq!(
        Options::from_pairs([("acl_fle", "/a")]),
        Err(OptionError::Unknown("acl_fle".into()))
    );
    assert_eq!(
        Options::from_pairs([("acl_file", "/a"), ("acl_file", "/b")]),
        Err(OptionError::Duplicate("acl_file".into()))
    );
    assert_eq!(
        Options::from_pairs([("acl_file", "")]),
        Err(OptionError::Empty("acl_file".into()))
    );
    assert_eq!(Options::from_pairs([]), Ok(Options::default()));
}

#[test]
fn config_rejects_unknown_keys_with_their_line() {
    let e = Config::parse(
        Path::new("m.toml"),
        b"[acl]\ncheck_subscribe = true\nchek = 1\n",
    )
    .expect_err("unknown key");
    assert_eq!(e.line, 3);
    assert!(matches!(e.error, ConfigError::Toml(_)));
    let c = Config::parse(
        Path::new("m.toml"),
        b"[auth]\ncache_seconds = 0\n[log]\ndenials = \"none\"\n",
    )
    .expect("valid");
    assert_eq!(c.auth.cache_seconds, 0);
    assert_eq!(c.auth.cache_entries, 100_000);
    assert!(!c.acl.check_subscribe);
}

#[test]
fn load_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let acl = write(dir.path(), "acl", "user a\ntopic read ok\ntopic raed x\n");
    let options = Options {
        acl_file: Some(acl.clone()),
        ..Options::default()
    };
    let e = Policy::load(&options).expect_err("broken ACL");
    assert!(matches!(e, LoadError::Acl(_)));
    assert!(
        e.to_string().starts_with(&format!("{}:3: ", acl.display())),
        "{e}"
    );

    let missing = Options {
        password_file: Some(dir.path().join("nope")),
        ..Options::default()
    };
    let e = Policy::load(&missing).expect_err("missing file");
    assert!(matches!(e, LoadError::Io { .. }), "{e}");
    assert!(e.to_string().contains("nope"), "{e}");

    let not_a_file = Options {
        acl_file: Some(dir.path().to_path_buf()),
        ..Options::default()
    };
    assert!(Policy::load(&not_a_file).is_err());
}

#[test]
fn symlinked_files_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A Kubernetes ConfigMap mount: file -> ..data/file -> ..2026_11_22/file
    std::fs::create_dir(dir.path().join("..2026_11_22")).expect("dir");
    write(
        &dir.path().join("..2026_11_22"),
        "acl",
        "topic read public/#\n",
    );
    std::os::unix::fs::symlink("..2026_11_22", dir.path().join("..data")).expect("link");
    std::os::unix::fs::symlink("..data/acl", dir.path().join("acl")).expect("link");
    let options = Options {
        acl_file: Some(dir.path().join("acl")),
        ..Options::default()
    };
    let policy = Policy::load(&options).expect("symlinked ACL loads");
    assert_eq!(policy.acl.as_ref().map(|a| a.topic_rule_count()), Some(1));
}

#[test]
fn authentication_outcomes_and_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line = hash_pbkdf2(b"pw", 101).expect("hash");
    let passwd = write(dir.path(), "passwd", &format!("alice:{line}\n"));
    std::fs::set_permissions(&passwd, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let options = Options {
        password_file: Some(passwd.clone()),
        ..Options::default()
    };
    let policy = Policy::load(&options).expect("loads");
    assert!(policy.warnings(&options).is_empty());
    let cache = CredentialCache::new();
    let auth = |u: Option<&str>, p: Option<&[u8]>| policy.authenticate_cached(&cache, u, p);
    assert_eq!(auth(None, None), AuthOutcome::Defer);
    assert_eq!(auth(Some(""), Some(b"pw")), AuthOutcome::Defer);
    assert_eq!(
        auth(Some("bob"), Some(b"pw")),
        AuthOutcome::Deny(AuthFailure::UnknownUser)
    );
    assert_eq!(
        auth(Some("alice"), None),
        AuthOutcome::Deny(AuthFailure::NoPassword)
    );
    assert_eq!(
        auth(Some("alice"), Some(b"")),
        AuthOutcome::Deny(AuthFailure::NoPassword)
    );
    assert_eq!(
        auth(Some("alice"), Some(b"px")),
        AuthOutcome::Deny(AuthFailure::WrongPassword)
    );
    assert!(cache.is_empty(), "failures are never cached");
    assert_eq!(auth(Some("alice"), Some(b"pw")), AuthOutcome::Allow);
    assert_eq!(cache.len(), 1);
    assert!(matches!(
        policy.begin_auth(&cache, Some("alice"), Some(b"pw")),
        AuthStep::Done(AuthOutcome::Allow)
    ));
    // A different password for the same user is verified again (and fails).
    assert!(matches!(
        policy.begin_auth(&cache, Some("alice"), Some(b"pw2")),
        AuthStep::Verify(_)
    ));
    // A changed password line invalidates the cached entry.
    let line2 = hash_pbkdf2(b"new", 101).expect("hash");
    write(dir.path(), "passwd", &format!("alice:{line2}\n"));
    let reloaded = Policy::load(&options).expect("reloads");
    assert!(matches!(
        reloaded.begin_auth(&cache, Some("alice"), Some(b"pw")),
        AuthStep::Verify(_)
    ));
    std::fs::set_permissions(&passwd, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    assert_eq!(reloaded.warnings(&options).len(), 1);
}

#[test]
fn without_a_password_file_everything_defers_and_without_acl_nothing_is_checked() {
    let policy = Policy::default();
    let cache = CredentialCache::new();
    assert_eq!(
        policy.authenticate_cached(&cache, Some("x"), Some(b"y")),
        AuthOutcome::Defer
    );
    let client = mqttguard::acl::Client {
        id: Some("c"),
        username: None,
    };
    assert_eq!(
        policy.check(&client, "a", mqttguard::acl::Access::Write),
        None
    );
}

#[test]
fn password_require_needs_a_password_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(dir.path(), "m.toml", "[identity]\npassword = \"require\"\n");
    let options = Options {
        config: Some(config.clone()),
        ..Options::default()
    };
    let e = Policy::load(&options).expect_err("require without passwd");
    assert!(e.to_string().contains("plugin_opt_password_file"), "{e}");
    assert!(
        e.to_string().starts_with(&config.display().to_string()),
        "{e}"
    );
}

/// An unknown username costs the same work as a wrong password (a hash of the file's most
/// common kind is verified), so the time to refusal does not tell who exists.
#[test]
fn unknown_users_are_verified_against_a_decoy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = hash_pbkdf2(b"pw", 2000).expect("hash");
    let b = hash_pbkdf2(b"pw2", 2000).expect("hash");
    let passwd = write(dir.path(), "passwd", &format!("alice:{a}\nbob:{b}\n"));
    let options = Options {
        password_file: Some(passwd),
        ..Options::default()
    };
    let policy = Policy::load(&options).expect("loads");
    let cache = CredentialCache::new();
    let AuthStep::Verify(unknown) = policy.begin_auth(&cache, Some("mallory"), Some(b"pw")) else {
        panic!("an unknown user was refused without hashing");
    };
    let AuthStep::Verify(known) = policy.begin_auth(&cache, Some("alice"), Some(b"nope")) else {
        panic!("a wrong password was refused without hashing");
    };
    assert_eq!(unknown.is_slow(), known.is_slow());
    // Even the password that matches the decoy's own user is refused, and nothing is cached.
    for pw in [&b"pw"[..], b"pw2", b"x"] {
        assert_eq!(
            unknown.verify(&cache, "mallory", pw),
            AuthOutcome::Deny(AuthFailure::UnknownUser)
        );
    }
    assert!(cache.is_empty());
    // Without a password there is nothing to verify for anyone.
    assert!(matches!(
        policy.begin_auth(&cache, Some("mallory"), None),
        AuthStep::Done(AuthOutcome::Deny(AuthFailure::UnknownUser))
    ));
}

/// A superuser may do everything with a topic, but what is not a topic name (empty, or `+`/`#`
/// in a READ/WRITE) is denied to a superuser too.
#[test]
fn superusers_get_topic_names_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let acl = write(dir.path(), "acl", "user root\ntopic readwrite #\n");
    let config = write(
        dir.path(),
        "mqttguard.toml",
        "[identity]\nsource = \"cn\"\nsuperusers = [\"root\"]\n",
    );
    let options = Options {
        acl_file: Some(acl),
        config: Some(config),
        ..Options::default()
    };
    let policy = Policy::load(&options).expect("loads");
    let root = mqttguard::acl::Client {
        id: Some("c"),
        username: Some("root"),
    };
    use mqttguard::acl::Access::*;
    let allowed = |topic: &str, access| policy.check(&root, topic, access).map(|d| d.allowed);
    assert_eq!(allowed("a/b", Write), Some(true));
    assert_eq!(allowed("$SYS/x", Read), Some(true));
    assert_eq!(allowed("a/+", Write), Some(false));
    assert_eq!(allowed("#", Read), Some(false));
    assert_eq!(allowed("", Read), Some(false));
    assert_eq!(allowed("a/#", Subscribe), Some(true));
    assert_eq!(allowed("", Subscribe), Some(false));
}
