//! `mqttguard passwd`: add, update or delete a user in a Mosquitto password file.
//!
//! The file is rewritten atomically (a temporary file in the same directory, then rename), with
//! every other line kept byte for byte and the file's mode and owner kept.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use mqttguard::passwd::hash::PBKDF2_MAX_ITERATIONS;
use mqttguard::passwd::hash::{
    hash_argon2id, hash_pbkdf2, ARGON2ID_M_KIB, ARGON2ID_P, ARGON2ID_T, PBKDF2_DEFAULT_ITERATIONS,
};
use mqttguard::passwd::{line_username, trim_c_space, PasswordDb};

use crate::{fail, Status, EXIT_OK};

/// Add, update (-b/--batch or prompt) or delete (--delete) a user in a Mosquitto password file.
#[derive(Args)]
#[command(
    long_about = long_about(),
    after_help = "Exit status: 0 written; 2 error (bad arguments or username, passwords that differ, \
                  FILE missing without --create, USER missing with --delete, I/O error): FILE \
                  is left unchanged.\n\
                  \nExamples:\n  mqttguard passwd --create /etc/mosquitto/passwd alice\n  \
                  mqttguard passwd --batch 's3cret' --scheme pbkdf2 /etc/mosquitto/passwd sensor1\n  \
                  mqttguard passwd --delete /etc/mosquitto/passwd alice"
)]
pub struct PasswdArgs {
    /// Mosquitto password file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Username to add, update or delete.
    #[arg(value_name = "USER")]
    user: String,
    /// Take the password from the command line instead of prompting (it is then visible to
    /// other local users in the process list and may stay in the shell history).
    #[arg(long, short = 'b', value_name = "PASSWORD")]
    batch: Option<String>,
    /// Delete USER instead of setting its password.
    #[arg(long, short = 'D', conflicts_with_all = ["batch", "create", "iterations"])]
    delete: bool,
    /// Create FILE, or overwrite it so that it holds only USER (mode and owner of an existing
    /// file are kept).
    #[arg(long, short = 'c')]
    create: bool,
    /// Hash scheme.
    #[arg(long, value_enum, default_value_t = Scheme::Argon2id)]
    scheme: Scheme,
    #[arg(
        long,
        short = 'I',
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(PBKDF2_MAX_ITERATIONS)),
        help = format!("PBKDF2 iterations, 1 to {PBKDF2_MAX_ITERATIONS} (only with --scheme pbkdf2) [default: {PBKDF2_DEFAULT_ITERATIONS}]")
    )]
    iterations: Option<u32>,
}

fn long_about() -> String {
    let (m, t, p) = (ARGON2ID_M_KIB, ARGON2ID_T, ARGON2ID_P);
    format!(
        "Add or update USER in the Mosquitto password file FILE, or delete it (--delete).\n\
         \nWithout --batch the password is read twice from the terminal, without echo. Hashes:\n\
         \n  argon2id (default): a PHC string `$argon2id$v=19$m={m},t={t},p={p}$SALT$HASH` \
         ({} MiB of memory, {t} passes, {p} lane, 16-byte random salt, 32-byte hash: OWASP's \
         recommendation). Verified by the mqttguard plugin; Mosquitto's own password_file does \
         not read it.\
         \n  pbkdf2: `$7$ITERATIONS$SALT$HASH`, PBKDF2-HMAC-SHA512 with a 12-byte random salt and \
         a 64-byte hash, exactly as mosquitto_passwd writes it: read by Mosquitto's own \
         password_file (2.0 and later) as well as by the plugin. --iterations defaults to \
         {PBKDF2_DEFAULT_ITERATIONS} (Mosquitto 2.1's default; 2.0 wrote 101).\n\
         \nFILE is rewritten atomically (temporary file in the same directory, then rename; a \
         symlink is followed and kept): other lines and comments are kept byte for byte, and so \
         are the file's mode and owner. The user's line is replaced in place (later duplicates \
         of it are removed); a new user is appended. A new file (--create) gets mode 0600. \
         Usernames may not be empty, contain ':' or control characters, start with '#' or start \
         or end with whitespace.",
        m / 1024
    )
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scheme {
    Argon2id,
    Pbkdf2,
}

/// Why a username cannot go in a password file, if it cannot.
pub fn username_problem(user: &str) -> Option<&'static str> {
    if user.is_empty() {
        Some("the username is empty")
    } else if user.contains(':') {
        Some("the username contains ':' (the separator of the password file)")
    } else if user.chars().any(char::is_control) {
        Some("the username contains a control character")
    } else if user.starts_with('#') {
        Some("the username starts with '#' (the line would be a comment)")
    } else if user.trim() != user || trim_c_space(user.as_bytes()) != user.as_bytes() {
        Some("the username starts or ends with whitespace (the password file trims it)")
    } else if user.starts_with('\u{feff}') {
        Some("the username starts with a byte order mark (U+FEFF)")
    } else if user.len() > 65535 {
        Some("the username is longer than MQTT allows (65535 bytes)")
    } else {
        None
    }
}

pub fn run(args: PasswdArgs) -> Status {
    match run_inner(&args) {
        Ok(message) => {
            println!("{message}");
            EXIT_OK
        }
        Err(e) => fail(e),
    }
}

fn run_inner(args: &PasswdArgs) -> Result<String, String> {
    if let Some(problem) = username_problem(&args.user) {
        return Err(format!("refusing username {:?}: {problem}", args.user));
    }
    if args.iterations.is_some() && args.scheme != Scheme::Pbkdf2 {
        return Err("--iterations is only for --scheme pbkdf2".to_string());
    }
    let display = args.file.display().to_string();
    // Write through a symlink (as mosquitto_passwd does), keeping the link.
    let path = match fs::symlink_metadata(&args.file) {
        Ok(meta) if meta.file_type().is_symlink() => fs::canonicalize(&args.file)
            .map_err(|e| format!("{display}: cannot resolve symlink: {e}"))?,
        _ => args.file.clone(),
    };
    let existing = match fs::metadata(&path) {
        Ok(meta) if !meta.is_file() => return Err(format!("{display}: not a regular file")),
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{display}: {e}")),
    };
    if existing.is_none() && !args.create {
        return Err(format!(
            "{display} does not exist (use --create to create it)"
        ));
    }
    let old: Vec<u8> = match (&existing, args.create) {
        (Some(_), false) => fs::read(&path).map_err(|e| format!("{display}: cannot read: {e}"))?,
        _ => Vec::new(),
    };

    let (new, message) = if args.delete {
        let (new, removed) = edit(&old, &args.user, None);
        if removed == 0 {
            return Err(format!("user {:?} is not in {display}", args.user));
        }
        (new, format!("deleted user {} from {display}", args.user))
    } else {
        let password = match &args.batch {
            Some(p) => p.clone(),
            None => prompt_password()?,
        };
        if password.is_empty() {
            return Err(
                "the password is empty (the broker treats an empty password as none)".to_string(),
            );
        }
        let (hash, scheme) = match args.scheme {
            Scheme::Argon2id => (hash_argon2id(password.as_bytes()), "argon2id"),
            Scheme::Pbkdf2 => (
                hash_pbkdf2(
                    password.as_bytes(),
                    args.iterations.unwrap_or(PBKDF2_DEFAULT_ITERATIONS),
                ),
                "pbkdf2",
            ),
        };
        let hash = hash.map_err(|e| format!("cannot hash the password: {e}"))?;
        let entry = format!("{}:{hash}", args.user);
        let (new, replaced) = edit(&old, &args.user, Some(&entry));
        let what = if replaced > 0 {
            format!("updated user {} in {display}", args.user)
        } else {
            format!("added user {} to {display}", args.user)
        };
        (new, format!("{what} ({scheme})"))
    };

    let keep = existing.map(|m| (m.permissions().mode() & 0o7777, m.uid(), m.gid()));
    write_atomic(&path, &new, keep).map_err(|e| format!("{display}: cannot write: {e}"))?;
    if let Err(e) = PasswordDb::parse(&args.file, &new) {
        eprintln!("mqttguard: warning: the plugin would refuse the file: {e}");
    }
    Ok(message)
}

fn prompt_password() -> Result<String, String> {
    let first = rpassword::prompt_password("Password: ")
        .map_err(|e| format!("cannot read the password from the terminal ({e}); use --batch"))?;
    let second = rpassword::prompt_password("Reenter password: ")
        .map_err(|e| format!("cannot read the password from the terminal ({e}); use --batch"))?;
    if first != second {
        return Err("the passwords do not match; nothing written".to_string());
    }
    Ok(first)
}

/// Rewrites `old` with `user`'s line replaced by `entry` in place (later lines of the same
/// user dropped), or appended when absent; `entry == None` removes the user. Returns the new
/// text and how many lines of the user there were. Every other byte is kept.
pub fn edit(old: &[u8], user: &str, entry: Option<&str>) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(old.len() + 128);
    let mut found = 0;
    for line in old.split_inclusive(|&b| b == b'\n') {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        // The username exactly as the plugin's parser reads it (one definition of whitespace).
        if line_username(content) != Some(user.as_bytes()) {
            out.extend_from_slice(line);
            continue;
        }
        found += 1;
        if let (Some(entry), 1) = (entry, found) {
            out.extend_from_slice(entry.as_bytes());
            // Keep the line's own ending (\n, \r\n, or none at the end of the file).
            out.extend_from_slice(&line[content.len()..]);
        }
    }
    if let (Some(entry), 0) = (entry, found) {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(entry.as_bytes());
        out.push(b'\n');
    }
    (out, found)
}

/// Writes `data` to a new file next to `path` and renames it over `path`. `keep` is the old
/// file's (mode, uid, gid), given to the new file; a new file gets 0600.
fn write_atomic(path: &Path, data: &[u8], keep: Option<(u32, u32, u32)>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?
        .to_string_lossy()
        .into_owned();
    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(
            ".{name}.mqttguard-{}-{attempt}",
            std::process::id()
        ));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let result = (|| {
        file.write_all(data)?;
        let (mode, owner) = match keep {
            Some((mode, uid, gid)) => (mode, Some((uid, gid))),
            None => (0o600, None),
        };
        if let Some((uid, gid)) = owner {
            let meta = file.metadata()?;
            if meta.uid() != uid || meta.gid() != gid {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
            }
        }
        // After chown, which may clear set-id bits.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
