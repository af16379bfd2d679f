//! The `mqttguard` command, run as a program: passwd, check, lint. (Its password files with
//! the real broker: mosquitto-test/tests/cli.rs.)

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mqttguard::passwd::{PasswordDb, Verify};
use mqttguard::policy::load_file;
use serde_json::Value;

fn mqttguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqttguard"))
}

/// Runs `mqttguard ARGS` with `stdin` and returns (exit code, stdout, stderr).
fn run_with_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = mqttguard()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mqttguard");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    result(out)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = mqttguard()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run mqttguard");
    result(out)
}

fn result(out: Output) -> (i32, String, String) {
    (
        out.status.code().expect("exited normally"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mqttguard-cli-")
        .tempdir()
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn verify(file: &Path, user: &str, password: &str) -> Verify {
    let db = load_file(file, PasswordDb::parse).expect("the plugin loads the file");
    db.verify(user, password.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// passwd

#[test]
fn passwd_create_makes_a_0600_file_and_needs_create_for_a_new_file() {
    let dir = tempdir();
    let file = dir.path().join("passwd");
    let (code, _, err) = run(&["passwd", s(&file), "alice", "--batch", "pw-alice"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(!file.exists());

    let (code, out, err) = run(&[
        "passwd",
        "--create",
        s(&file),
        "alice",
        "--batch",
        "pw-alice",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("added user alice"), "{out}");
    assert_eq!(mode(&file), 0o600);
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("alice:$argon2id$"), "{text}");
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "{text:?}"
    );
    assert_eq!(verify(&file, "alice", "pw-alice"), Verify::Ok);
    assert_eq!(verify(&file, "alice", "wrong"), Verify::WrongPassword);
    // No temporary file left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn passwd_round_trip_keeps_other_lines_comments_and_mode() {
    let dir = tempdir();
    let original = "# managed by hand\n\
                    bob:$7$101$l4HAXFATaNYdVTsS$40yKiht6QsFUEf3vF4vcZ/zqhgwMha10HxSbHDDcrX94UOkIl7K904XdLzVcb5AmtOO6HLFcj4Q5GW8QHassqg==\n\
                    \n\
                    # sensors\r\n\
                    carol:$7$101$rp4mNMrTn3S3/fR/$P0zORZzQpedBoHX5WwORGCMxnp/pCYiXwy0LK5o532nm3TBZxAGz4BUgyGL/GezH2fzdkA21a1Szh4OFdclDwQ==\n\
                    # trailing comment without newline";
    let file = write(dir.path(), "passwd", original);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();

    // Add: appended after a newline; every other byte kept.
    let (code, out, err) = run(&["passwd", s(&file), "alice", "-b", "pw-alice"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("added user alice"), "{out}");
    let text = fs::read_to_string(&file).unwrap();
    let (head, added) = text.split_at(original.len());
    assert_eq!(head, original);
    assert!(
        added.starts_with("\nalice:$argon2id$") && added.ends_with('\n'),
        "{added:?}"
    );
    assert_eq!(mode(&file), 0o640);
    assert_eq!(verify(&file, "alice", "pw-alice"), Verify::Ok);

    // Update a user in the middle: replaced in place, pbkdf2 with chosen iterations.
    let (code, out, err) = run(&[
        "passwd",
        s(&file),
        "bob",
        "-b",
        "pw-bob",
        "--scheme",
        "pbkdf2",
        "--iterations",
        "2000",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("updated user bob"), "{out}");
    let text = fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines[0], "# managed by hand");
    assert!(lines[1].starts_with("bob:$7$2000$"), "{}", lines[1]);
    assert_eq!(lines[2], "");
    assert_eq!(lines[3], "# sensors\r");
    assert!(lines[4].starts_with("carol:$7$101$rp4m"));
    assert_eq!(lines[5], "# trailing comment without newline");
    assert!(lines[6].starts_with("alice:$argon2id$"));
    assert_eq!(mode(&file), 0o640);
    assert_eq!(verify(&file, "bob", "pw-bob"), Verify::Ok);
    assert_eq!(verify(&file, "alice", "pw-alice"), Verify::Ok);

    // Delete: only that line goes.
    let before = fs::read_to_string(&file).unwrap();
    let (code, out, err) = run(&["passwd", "--delete", s(&file), "bob"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted user bob"), "{out}");
    let after = fs::read_to_string(&file).unwrap();
    let expected: String = before
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("bob:"))
        .collect();
    assert_eq!(after, expected);
    assert_eq!(mode(&file), 0o640);
    assert_eq!(verify(&file, "bob", "pw-bob"), Verify::UnknownUser);

    // Deleting an absent user is an error that leaves the file alone.
    let (code, _, err) = run(&["passwd", "-D", s(&file), "bob"]);
    assert_eq!(code, 2);
    assert!(err.contains("not in"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), after);

    // --create overwrites: only the new user, mode kept.
    let (code, _, err) = run(&["passwd", "-c", s(&file), "dave", "-b", "pw-dave"]);
    assert_eq!(code, 0, "{err}");
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("dave:$argon2id$") && text.lines().count() == 1,
        "{text}"
    );
    assert_eq!(mode(&file), 0o640);
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temp file left"
    );
}

#[test]
fn passwd_merges_duplicates_and_warns_about_lines_the_plugin_refuses() {
    let dir = tempdir();
    let file = write(
        dir.path(),
        "passwd",
        "alice:$7$101$old\nnot a valid line\nalice:$7$101$older\n",
    );
    let (code, _, err) = run(&["passwd", s(&file), "alice", "-b", "pw"]);
    assert_eq!(code, 0, "{err}");
    let text = fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("alice:$argon2id$"), "{text}");
    assert_eq!(lines[1], "not a valid line");
    assert!(
        err.contains(&format!(
            "warning: the plugin would refuse the file: {}:2: ",
            file.display()
        )),
        "{err}"
    );
}

/// `mqttguard passwd` finds a user's line exactly as the parser reads it (C `isspace` around
/// the name, `\v` included): it updates that line instead of appending a second one.
#[test]
fn passwd_reads_usernames_as_the_parser_does() {
    let dir = tempdir();
    let old = hash_line_for("old-pw");
    for (name, spaced) in [
        ("vt", "alice\x0b"),
        ("ff", "\x0calice"),
        ("mixed", " \t\x0b\x0calice \x0b\r"),
    ] {
        let file = write(
            dir.path(),
            name,
            &format!("# users\n{spaced}:{old}\nbob:{old}\n"),
        );
        assert_eq!(verify(&file, "alice", "old-pw"), Verify::Ok, "{name}");
        let (code, out, err) = run(&[
            "passwd",
            s(&file),
            "alice",
            "-b",
            "new-pw",
            "--scheme",
            "pbkdf2",
        ]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.contains("updated user alice"), "{name}: {out}");
        assert!(!err.contains("warning"), "{name}: {err}");
        let text = fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 3, "{name}: {text:?}");
        assert_eq!(verify(&file, "alice", "new-pw"), Verify::Ok, "{name}");
        assert_eq!(verify(&file, "bob", "old-pw"), Verify::Ok, "{name}");
        let (code, _, err) = run(&["passwd", s(&file), "alice", "--delete"]);
        assert_eq!(code, 0, "{name}: {err}");
        let db = load_file(&file, PasswordDb::parse).expect("loads");
        assert!(!db.contains("alice") && db.contains("bob"), "{name}");
    }
    // A name the parser would trim differently is refused, not written.
    let file = write(dir.path(), "p", "");
    for bad in ["alice\x0b", "\x0balice", "alice ", "\u{feff}alice"] {
        let (code, _, err) = run(&["passwd", s(&file), bad, "-b", "pw"]);
        assert_eq!(code, 2, "{bad:?} accepted: {err}");
    }
    // --iterations above the load limit would write a line the plugin refuses.
    let (code, _, err) = run(&[
        "passwd",
        s(&file),
        "carol",
        "-b",
        "pw",
        "--scheme",
        "pbkdf2",
        "--iterations",
        "1000001",
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "");
}

/// A `$7$` hash of `password` (101 iterations: cheap), as `mqttguard passwd` writes it.
fn hash_line_for(password: &str) -> String {
    mqttguard::passwd::hash::hash_pbkdf2(password.as_bytes(), 101).unwrap()
}

/// Runs `mqttguard ARGS` on a pseudo-terminal (util-linux `script`), answering each prompt
/// in turn once it has appeared; returns the exit code and everything the terminal showed.
fn on_terminal(args: &[&str], answers: &[&str]) -> (i32, String) {
    use std::io::Read;
    let command = std::iter::once(env!("CARGO_BIN_EXE_mqttguard"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run script(1)");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut shown = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, answer) in answers.iter().enumerate() {
        // Wait for the (i+1)-th prompt, which ends with ": ".
        while shown.matches("assword: ").count() <= i {
            let chunk = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no prompt {}; terminal showed {shown:?}", i + 1));
            shown.push_str(&String::from_utf8_lossy(&chunk));
        }
        // The prompt is written just before echo is switched off; type like a person would,
        // not in the same microsecond (else the terminal itself may still echo the input).
        std::thread::sleep(Duration::from_millis(200));
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let status = child.wait().unwrap();
    drop(stdin);
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(500)) {
        shown.push_str(&String::from_utf8_lossy(&chunk));
    }
    (status.code().expect("exited normally"), shown)
}

#[test]
fn passwd_prompts_twice_without_echo() {
    let dir = tempdir();
    let file = dir.path().join("passwd");
    let (code, shown) = on_terminal(
        &["passwd", "--create", s(&file), "alice"],
        &["hunter2 secret", "hunter2 secret"],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("Password: ") && shown.contains("Reenter password: "),
        "{shown}"
    );
    assert!(
        !shown.contains("hunter2"),
        "the password was echoed: {shown:?}"
    );
    assert_eq!(verify(&file, "alice", "hunter2 secret"), Verify::Ok);

    // Two different answers: nothing written.
    let before = fs::read(&file).unwrap();
    let (code, shown) = on_terminal(&["passwd", s(&file), "alice"], &["one", "two"]);
    assert_eq!(code, 2, "{shown}");
    assert!(shown.contains("do not match"), "{shown}");
    assert_eq!(fs::read(&file).unwrap(), before);
}

#[test]
fn passwd_writes_through_a_symlink_and_keeps_it() {
    let dir = tempdir();
    let target = write(dir.path(), "real", "bob:$7$101$l4HAXFATaNYdVTsS$40yKiht6QsFUEf3vF4vcZ/zqhgwMha10HxSbHDDcrX94UOkIl7K904XdLzVcb5AmtOO6HLFcj4Q5GW8QHassqg==\n");
    let link = dir.path().join("passwd");
    std::os::unix::fs::symlink("real", &link).unwrap();
    let (code, _, err) = run(&["passwd", s(&link), "alice", "-b", "pw"]);
    assert_eq!(code, 0, "{err}");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::read_to_string(&target)
        .unwrap()
        .contains("\nalice:$argon2id$"));
}

#[test]
fn passwd_refuses_bad_usernames_and_arguments() {
    let dir = tempdir();
    let original = "# keep me\n";
    let file = write(dir.path(), "passwd", original);
    for user in [
        "",
        "a:b",
        "tab\tuser",
        "new\nline",
        "bell\u{7}",
        "#comment",
        " lead",
        "trail ",
    ] {
        let (code, _, err) = run(&["passwd", s(&file), user, "--batch", "pw"]);
        assert_eq!(code, 2, "{user:?} accepted");
        assert!(err.contains("refusing username"), "{user:?}: {err}");
    }
    let (code, _, err) = run(&["passwd", s(&file), "alice", "--batch", ""]);
    assert_eq!(code, 2, "empty password accepted");
    assert!(err.contains("empty"), "{err}");
    let (code, _, err) = run(&[
        "passwd",
        s(&file),
        "alice",
        "-b",
        "pw",
        "--iterations",
        "5000",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--iterations"), "{err}");
    // No terminal to prompt on: an error, not a hang or an empty password.
    let (code, _, err) = run(&["passwd", s(&file), "alice"]);
    assert_eq!(code, 2);
    assert!(err.contains("--batch"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), original);
}

// ---------------------------------------------------------------------------------------------
// check

const ACL: &str = "\
# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic deny alice/secret/#
topic read shared/#

user bob
topic write bob/out

pattern write devices/%c/#
pattern read inbox/%u/#
pattern deny devices/%c/locked
";

fn check(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let acl = dir.join("acl");
    if !acl.exists() {
        fs::write(&acl, ACL).unwrap();
    }
    let mut args = vec!["check", "--acl", s(&acl)];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn check_names_the_deciding_rule_and_exits_by_decision() {
    let dir = tempdir();
    let d = dir.path();
    let acl = d.join("acl").display().to_string();
    let cases: &[(&[&str], i32, &str, String)] = &[
        (
            &[
                "--user",
                "alice",
                "--client-id",
                "c1",
                "--topic",
                "alice/x",
                "--access",
                "write",
            ],
            0,
            "ALLOW write \"alice/x\" for user \"alice\", client id \"c1\"",
            format!("rule: {acl}:5: topic readwrite alice/#"),
        ),
        (
            &[
                "--user",
                "alice",
                "--client-id",
                "c1",
                "--topic",
                "alice/secret/k",
                "--access",
                "read",
            ],
            1,
            "DENY read",
            format!("rule: {acl}:6: topic deny alice/secret/#"),
        ),
        (
            &["-u", "alice", "-i", "c1", "-t", "shared/a", "-a", "write"],
            1,
            "DENY write",
            "reason: no rule matched (the default is deny)".to_string(),
        ),
        (
            &[
                "-u",
                "bob",
                "-i",
                "dev7",
                "-t",
                "devices/dev7/temp",
                "-a",
                "write",
            ],
            0,
            "ALLOW",
            format!("rule: {acl}:12: pattern write devices/%c/#"),
        ),
        (
            &[
                "-u",
                "bob",
                "-i",
                "dev7",
                "-t",
                "devices/dev7/locked",
                "-a",
                "write",
            ],
            1,
            "DENY",
            format!("rule: {acl}:14: pattern deny devices/%c/locked"),
        ),
        (
            &["-u", "bob", "-i", "dev7", "-t", "inbox/bob/1", "-a", "read"],
            0,
            "ALLOW",
            format!("rule: {acl}:13: pattern read inbox/%u/#"),
        ),
        (
            &["-i", "anon1", "-t", "public/news", "-a", "read"],
            0,
            "for anonymous client (no username), client id \"anon1\"",
            format!("rule: {acl}:2: topic read public/#"),
        ),
        (
            &["-i", "anon1", "-t", "public/news", "-a", "write"],
            1,
            "DENY",
            "no rule matched".to_string(),
        ),
        (
            &["-u", "bob", "-i", "dev+", "-t", "devices/x", "-a", "write"],
            1,
            "DENY",
            "guard: username or client id contains '+' or '#'".to_string(),
        ),
        (
            &["-u", "alice", "-i", "c1", "-t", "#", "-a", "subscribe"],
            0,
            "ALLOW subscribe \"#\"",
            "subscriptions are not checked".to_string(),
        ),
    ];
    for (args, code, first, second) in cases {
        let (got, out, err) = check(d, args);
        assert_eq!(got, *code, "{args:?}: {out}{err}");
        let mut lines = out.lines();
        let line1 = lines.next().unwrap_or_default();
        assert!(
            line1.starts_with(if *code == 0 { "ALLOW " } else { "DENY " }),
            "{args:?}: {out}"
        );
        assert!(line1.contains(first), "{args:?}: {out}");
        assert!(
            lines.next().unwrap_or_default().contains(second.as_str()),
            "{args:?}: {out}"
        );
    }
}

/// READ/WRITE are about topic names: an empty topic or one with `+`/`#` is never answered
/// ALLOW (the core denies it; the command refuses the question, exit 2); an empty filter
/// neither.
#[test]
fn check_never_allows_what_is_not_a_topic_name() {
    let dir = tempdir();
    let acl = write(
        dir.path(),
        "all.acl",
        "user u\ntopic readwrite #\ntopic write a/+\npattern readwrite #\n",
    );
    for (topic, access) in [
        ("", "read"),
        ("", "write"),
        ("a/#", "write"),
        ("a/+", "write"),
        ("#", "read"),
        ("a/b+", "read"),
        ("x#", "write"),
        ("", "subscribe"),
        ("", "unsubscribe"),
    ] {
        for user in [&["-u", "u"][..], &[][..]] {
            let mut args = vec![
                "check",
                "--acl",
                s(&acl),
                "-i",
                "c",
                "-t",
                topic,
                "-a",
                access,
            ];
            args.extend_from_slice(user);
            let (code, out, err) = run(&args);
            assert_eq!(code, 2, "{topic:?} {access}: {out}{err}");
            assert!(!out.contains("ALLOW"), "{out}");
        }
    }
    let (code, out, _) = run(&[
        "check",
        "--acl",
        s(&acl),
        "-u",
        "u",
        "-i",
        "c",
        "-t",
        "a/b",
        "-a",
        "write",
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(&[
        "check",
        "--acl",
        s(&acl),
        "-u",
        "u",
        "-i",
        "c",
        "-t",
        "a/+",
        "-a",
        "subscribe",
    ]);
    assert_eq!(code, 0, "{out}");
    let queries = write(dir.path(), "q", "u c read a/+\n");
    let (code, out, err) = run(&["check", "--acl", s(&acl), "--queries", s(&queries)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains(":1:"), "{err}");
}

#[test]
fn check_subscribe_follows_the_config() {
    let dir = tempdir();
    let config = write(
        dir.path(),
        "mqttguard.toml",
        "[acl]\ncheck_subscribe = true\n",
    );
    let (code, out, _) = check(
        dir.path(),
        &[
            "--config",
            s(&config),
            "-u",
            "alice",
            "-i",
            "c1",
            "-t",
            "#",
            "-a",
            "subscribe",
        ],
    );
    assert_eq!(code, 1, "{out}");
    let (code, out, _) = check(
        dir.path(),
        &[
            "--config",
            s(&config),
            "-u",
            "alice",
            "-i",
            "c1",
            "-t",
            "shared/+/x",
            "-a",
            "subscribe",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("topic read shared/#"), "{out}");
}

#[test]
fn check_json_shape() {
    let dir = tempdir();
    let (code, out, _) = check(
        dir.path(),
        &[
            "--json",
            "-u",
            "alice",
            "-i",
            "c1",
            "-t",
            "alice/secret/k",
            "-a",
            "read",
        ],
    );
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["allowed"], false);
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["acl_allowed"], false);
    assert_eq!(v["user"], "alice");
    assert_eq!(v["client_id"], "c1");
    assert_eq!(v["access"], "read");
    assert_eq!(v["topic"], "alice/secret/k");
    assert_eq!(v["reason"]["kind"], "rule");
    assert_eq!(v["reason"]["line"], 6);
    assert_eq!(v["reason"]["rule"], "topic deny alice/secret/#");
    assert_eq!(v["reason"]["file"], s(&dir.path().join("acl")));
    assert!(v["authentication"].is_null());

    let (code, out, _) = check(
        dir.path(),
        &["--json", "-i", "x", "-t", "nowhere", "-a", "write"],
    );
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["user"].is_null());
    assert_eq!(v["reason"]["kind"], "no_match");
    assert!(v["reason"].get("line").is_none());
}

#[test]
fn check_reports_authentication() {
    let dir = tempdir();
    let file = dir.path().join("passwd");
    let (code, _, err) = run(&[
        "passwd",
        "-c",
        s(&file),
        "alice",
        "-b",
        "pw-alice",
        "--scheme",
        "pbkdf2",
    ]);
    assert_eq!(code, 0, "{err}");
    let base = [
        "--passwd",
        s(&file),
        "-u",
        "alice",
        "-i",
        "c1",
        "-t",
        "alice/x",
        "-a",
        "write",
    ];

    let mut args = base.to_vec();
    args.extend(["--password", "pw-alice"]);
    let (code, out, _) = check(dir.path(), &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("authentication: password accepted"), "{out}");

    let mut args = base.to_vec();
    args.extend(["--password", "nope", "--json"]);
    let (code, out, _) = check(dir.path(), &args);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["allowed"], false);
    assert_eq!(v["acl_allowed"], true);
    assert_eq!(v["authentication"]["outcome"], "deny");
    assert_eq!(v["authentication"]["detail"], "refused: wrong password");

    // --password needs --passwd.
    let (code, _, _) = check(
        dir.path(),
        &[
            "-u",
            "alice",
            "-i",
            "c1",
            "-t",
            "a",
            "-a",
            "read",
            "--password",
            "x",
        ],
    );
    assert_eq!(code, 2);
}

#[test]
fn check_errors_exit_2_with_file_and_line() {
    let dir = tempdir();
    let bad = write(dir.path(), "bad.acl", "user a\ntopic raed x/#\n");
    let (code, out, err) = run(&[
        "check",
        "--acl",
        s(&bad),
        "-i",
        "c",
        "-t",
        "x/y",
        "-a",
        "read",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains(&format!(
            "{}:2: invalid topic access type \"raed\"",
            bad.display()
        )),
        "{err}"
    );
    let (code, _, err) = run(&[
        "check",
        "--acl",
        "/nonexistent/acl",
        "-i",
        "c",
        "-t",
        "x",
        "-a",
        "read",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/acl"), "{err}");
    // A publish cannot name a wildcard topic.
    let (code, _, err) = check(dir.path(), &["-i", "c", "-t", "a/+", "-a", "write"]);
    assert_eq!(code, 2, "{err}");
    // Missing arguments: clap's usage error, also 2.
    let (code, _, _) = check(dir.path(), &["-i", "c", "-a", "write"]);
    assert_eq!(code, 2);
}

#[test]
fn check_queries_from_file_and_stdin() {
    let dir = tempdir();
    let queries = "\
# user client access topic [expect]
alice c1 write alice/x
alice c1 read alice/secret/k deny
-     anon read public/news allow
bob   dev7 write devices/dev7/t
";
    let qfile = write(dir.path(), "queries", queries);
    let (code, out, err) = check(dir.path(), &["--queries", s(&qfile)]);
    assert_eq!(code, 0, "{out}{err}");
    let acl = dir.path().join("acl").display().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            format!("ALLOW alice c1 write alice/x: {acl}:5: topic readwrite alice/#"),
            format!("DENY alice c1 read alice/secret/k: {acl}:6: topic deny alice/secret/#"),
            format!("ALLOW - anon read public/news: {acl}:2: topic read public/#"),
            format!("ALLOW bob dev7 write devices/dev7/t: {acl}:12: pattern write devices/%c/#"),
        ]
    );
    assert!(
        err.contains("4 queries: 3 allowed, 1 denied, 0 failed"),
        "{err}"
    );

    // From stdin; a denial without expectation, and an unmet expectation, fail the run.
    let acl_path = dir.path().join("acl");
    let (code, out, err) = run_with_stdin(
        &["check", "--acl", s(&acl_path), "--queries", "-"],
        "alice c1 write bob/out\nbob c2 write bob/out deny\n",
    );
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("DENY alice c1 write bob/out: no rule matched"),
        "{out}"
    );
    assert!(lines[1].starts_with("ALLOW bob c2 write bob/out:"), "{out}");
    assert!(lines[1].ends_with("[UNEXPECTED: expected deny]"), "{out}");
    assert!(err.contains("2 failed"), "{err}");

    // JSON lines.
    let (code, out, _) = check(dir.path(), &["--queries", s(&qfile), "--json"]);
    assert_eq!(code, 0);
    let values: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(values.len(), 4);
    assert_eq!(values[1]["line"], 3);
    assert_eq!(values[1]["expected"], "deny");
    assert_eq!(values[1]["failed"], false);
    assert_eq!(values[1]["decision"], "deny");
    assert!(values[2]["user"].is_null());

    // A malformed line is an error naming it; nothing is decided.
    let bad = write(
        dir.path(),
        "bad-queries",
        "alice c1 write a\nalice c1 publish a\n",
    );
    let (code, out, err) = check(dir.path(), &["--queries", s(&bad)]);
    assert_eq!(code, 2);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!("{}:2: invalid access \"publish\"", bad.display())),
        "{err}"
    );
    // Single-query options do not mix with --queries.
    let (code, _, _) = check(dir.path(), &["--queries", s(&qfile), "-u", "alice"]);
    assert_eq!(code, 2);
}

/// A self-signed certificate with this CN and serial, as PEM.
fn certificate_pem(cn: &str, serial: &[u8]) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
    params.self_signed(&key).expect("certificate").pem()
}

#[test]
fn check_maps_a_certificate_to_its_identity() {
    let dir = tempdir();
    let d = dir.path();
    let revoked = write(d, "revoked", "# revoked devices\n0x0bad\n");
    let config = write(
        d,
        "mqttguard.toml",
        &format!(
            "[identity]\nsource = \"cn\"\nclientid = \"equal\"\nsuperusers = [\"admin\"]\nrevoked = \"{}\"\n",
            revoked.display()
        ),
    );
    let good = write(d, "dev7.pem", &certificate_pem("dev7", &[0x01, 0x07]));
    let bad = write(d, "old.pem", &certificate_pem("dev8", &[0x0b, 0xad]));
    let acl = d.join("acl").display().to_string();
    let base = [
        "--config",
        s(&config),
        "-t",
        "devices/dev7/t",
        "-a",
        "write",
    ];

    // The identity becomes the username (password = "ignore"): --user is replaced.
    let mut args = base.to_vec();
    args.extend(["--cert", s(&good), "-i", "dev7", "-u", "someone-else"]);
    let (code, out, err) = check(d, &args);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "ALLOW write \"devices/dev7/t\" for user \"dev7\", client id \"dev7\""
    );
    assert!(
        lines[1].starts_with("  certificate: identity \"dev7\" (serial 107, sha256 "),
        "{out}"
    );
    assert_eq!(
        lines[2],
        format!("  rule: {acl}:12: pattern write devices/%c/#")
    );

    // The client id is bound to the identity.
    let mut args = base.to_vec();
    args.extend(["--cert", s(&good), "-i", "dev9", "--json"]);
    let (code, out, _) = check(d, &args);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["allowed"], false);
    assert_eq!(v["certificate"]["outcome"], "refused");
    assert_eq!(
        v["certificate"]["detail"],
        "client id \"dev9\" is not bound to identity \"dev7\""
    );

    // A revoked certificate.
    let mut args = base.to_vec();
    args.extend(["--cert", s(&bad), "-i", "dev8"]);
    let (code, out, _) = check(d, &args);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("certificate: refused: the certificate is revoked (serial bad)"),
        "{out}"
    );

    // Superusers are allowed everything, and said so.
    let (code, out, _) = check(
        d,
        &[
            "--config",
            s(&config),
            "-u",
            "admin",
            "-i",
            "a1",
            "-t",
            "alice/secret/x",
            "-a",
            "write",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("reason: superuser"), "{out}");

    // --cert needs a config with [identity].
    let (code, _, _) = check(
        d,
        &["--cert", s(&good), "-i", "dev7", "-t", "x", "-a", "read"],
    );
    assert_eq!(code, 2);
    let plain = write(d, "plain.toml", "[acl]\ncheck_subscribe = false\n");
    let (code, _, err) = check(
        d,
        &[
            "--config",
            s(&plain),
            "--cert",
            s(&good),
            "-i",
            "dev7",
            "-t",
            "x",
            "-a",
            "read",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("[identity]"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// lint

const BAD_ACL: &str = "\
topic read
topic read public/#

user alice
topic readwrite alice/#
topic deny alice/#
pattern read inbox/%u/#
topic read alice/x
topic read alice/x

user bob

user carol
topic write sensors/%c/data

pattern write devices/#
pattern deny devices/+/config
pattern write devices/+/config
";

#[test]
fn lint_reports_a_deliberately_bad_policy() {
    let dir = tempdir();
    let acl = write(dir.path(), "acl", BAD_ACL);
    let passwd = write(
        dir.path(),
        "passwd",
        "alice:$6$4CwOh6nlEpdyG6hR$/KV0fBcfs0IF9RqmhGTfHbaJTdVi2ho4UUNyU9pAEpcF/sdDp6hEzgDuBEL7YaHQgy6hwFhIGT/a+v0Rf2tFtg==\n\
         carol:$7$101$l4HAXFATaNYdVTsS$40yKiht6QsFUEf3vF4vcZ/zqhgwMha10HxSbHDDcrX94UOkIl7K904XdLzVcb5AmtOO6HLFcj4Q5GW8QHassqg==\n\
         dave:$7$101$rp4mNMrTn3S3/fR/$P0zORZzQpedBoHX5WwORGCMxnp/pCYiXwy0LK5o532nm3TBZxAGz4BUgyGL/GezH2fzdkA21a1Szh4OFdclDwQ==\n",
    );
    fs::set_permissions(&passwd, fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, err) = run(&["lint", "--acl", s(&acl), "--passwd", s(&passwd)]);
    assert_eq!(code, 1, "{out}{err}");
    let a = acl.display().to_string();
    let p = passwd.display().to_string();
    for (place, code) in [
        (format!("{a}:1:"), "[access-word-as-topic]"),
        (format!("{a}:5:"), "[shadowed-by-deny]"),
        (format!("{a}:7:"), "[pattern-in-user-block]"),
        (format!("{a}:8:"), "[shadowed-by-deny]"),
        (format!("{a}:9:"), "[duplicate-rule]"),
        (format!("{a}:11:"), "[user-without-rules]"),
        (format!("{a}:11:"), "[acl-user-not-in-passwd]"),
        (format!("{a}:14:"), "[substitution-in-topic]"),
        (format!("{a}:16:"), "[pattern-without-substitution]"),
        (format!("{a}:18:"), "[shadowed-by-deny]"),
        (format!("{p}:"), "[world-readable]"),
        (format!("{p}:1:"), "[weak-hash]"),
        (format!("{p}:2:"), "[low-iterations]"),
        (format!("{p}:3:"), "[passwd-user-not-in-acl]"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&place) && l.contains(" warning: ") && l.ends_with(code)),
            "no {code} at {place}:\n{out}"
        );
    }
    // Patterns after a block's rules are Mosquitto's usual layout: not reported.
    assert!(
        !out.contains(&format!("{a}:16: warning: pattern rules apply")),
        "{out}"
    );
    // alice and carol are in both files.
    assert!(
        !out.contains("user alice is not in the password file"),
        "{out}"
    );
    assert!(err.contains("0 errors"), "{err}");

    let (code, out, _) = run(&["lint", "--acl", s(&acl), "--passwd", s(&passwd), "--json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["errors"], 0);
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(v["warnings"], findings.len());
    let f = &findings[0];
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["file"], a.as_str());
    assert_eq!(f["line"], 1);
    assert_eq!(f["code"], "access-word-as-topic");
    assert!(f["message"]
        .as_str()
        .unwrap()
        .contains("topic named \"read\""));
}

#[test]
fn lint_clean_policy_exits_0_and_errors_exit_2() {
    let dir = tempdir();
    let acl = write(
        dir.path(),
        "acl",
        "topic read public/#\nuser alice\ntopic readwrite alice/#\npattern write devices/%c/#\n",
    );
    let passwd = dir.path().join("passwd");
    let (code, _, err) = run(&["passwd", "-c", s(&passwd), "alice", "-b", "pw"]);
    assert_eq!(code, 0, "{err}");
    let config = write(
        dir.path(),
        "mqttguard.toml",
        "[acl]\ncheck_subscribe = true\n",
    );
    let (code, out, err) = run(&[
        "lint",
        "--acl",
        s(&acl),
        "--passwd",
        s(&passwd),
        "--config",
        s(&config),
    ]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(err.contains("0 errors, 0 warnings"), "{err}");

    // Errors in every file are all reported, with file:line.
    let bad_acl = write(
        dir.path(),
        "bad.acl",
        "user a\ntopic read a/#\ntopic readwrite a/#/b\n",
    );
    let bad_pw = write(dir.path(), "bad.passwd", "alice\n");
    let bad_cfg = write(dir.path(), "bad.toml", "[acl]\ncheck_subscrbe = true\n");
    let (code, out, _) = run(&[
        "lint",
        "--acl",
        s(&bad_acl),
        "--passwd",
        s(&bad_pw),
        "--config",
        s(&bad_cfg),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("{}:3: error: ", bad_acl.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}:1: error: ", bad_pw.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}:2: error: ", bad_cfg.display())),
        "{out}"
    );
    let (code, _, err) = run(&["lint"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = run(&["lint", "--acl", "/nonexistent/acl"]);
    assert_eq!(code, 2);
    assert!(out.contains("/nonexistent/acl: error: "), "{out}");
}

#[test]
fn help_documents_every_command_and_exit_codes() {
    for args in [
        &["--help"][..],
        &["passwd", "--help"],
        &["check", "--help"],
        &["lint", "--help"],
    ] {
        let (code, out, _) = run(args);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Exit status"), "{args:?}:\n{out}");
    }
    let (_, out, _) = run(&["passwd", "--help"]);
    assert!(out.contains("m=19456,t=2,p=1"), "{out}");
    let (_, out, _) = run(&["check", "--help"]);
    assert!(
        out.contains("USER CLIENT_ID ACCESS TOPIC [EXPECT]"),
        "{out}"
    );
}
