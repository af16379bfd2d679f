//! Starting and stopping a real `mosquitto` process on a free loopback port.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How the broker enforces the password and ACL files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Mosquitto's own `password_file` / `acl_file` options.
    Builtin,
    /// `plugin libmqttguard.so` with `plugin_opt_password_file` / `plugin_opt_acl_file`.
    Plugin,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Builtin => "built-in",
            Mode::Plugin => "plugin",
        })
    }
}

/// The mosquitto executable: env `MOSQUITTO` or `/usr/sbin/mosquitto`.
pub fn mosquitto_bin() -> PathBuf {
    std::env::var_os("MOSQUITTO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/mosquitto"))
}

/// The version of the broker the tests run (`mosquitto -h`'s first line), e.g. `2.1.2`.
pub fn broker_version() -> String {
    let out = match chroot_root() {
        Some(root) => Command::new("chroot")
            .arg(root)
            .arg("/usr/sbin/mosquitto")
            .arg("-h")
            .output(),
        None => Command::new(mosquitto_bin()).arg("-h").output(),
    }
    .expect("run mosquitto -h");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// Whether the broker the tests run is a 2.1 (delayed basic auth, the HTTP API, ...).
pub fn broker_is_2_1() -> bool {
    broker_version().starts_with("2.1")
}

/// A Debian tree holding another Mosquitto version (made by `debootstrap`), given by
/// `MQTTGUARD_MOSQUITTO_ROOT`: brokers then run as `chroot ROOT mosquitto`, with their files
/// under `ROOT/tmp`. Clients still connect to 127.0.0.1 (a chroot shares the network).
pub fn chroot_root() -> Option<PathBuf> {
    std::env::var_os("MQTTGUARD_MOSQUITTO_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A fresh temp dir for a broker's files: inside the chroot tree when there is one.
/// A temp dir the broker can see (inside the Debian tree when the broker runs chrooted).
pub fn broker_tempdir() -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    builder.prefix("mqttguard-e2e-");
    match chroot_root() {
        Some(root) => builder.tempdir_in(root.join("tmp")),
        None => builder.tempdir(),
    }
    .expect("create temp dir")
}

/// The path under which the broker sees a host path (the same path without a chroot).
pub fn broker_path(host: &Path) -> PathBuf {
    match chroot_root() {
        Some(root) => match host.strip_prefix(&root) {
            Ok(inside) => Path::new("/").join(inside),
            Err(_) => host.to_path_buf(),
        },
        None => host.to_path_buf(),
    }
}

/// The plugin as the broker loads it: copied once into the chroot tree when there is one.
fn broker_plugin_path() -> PathBuf {
    static COPIED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    match chroot_root() {
        None => plugin_path(),
        Some(root) => COPIED
            .get_or_init(|| {
                let dir = root.join("opt/mqttguard-test");
                fs::create_dir_all(&dir).expect("create plugin dir in the chroot");
                let dest = dir.join(format!("libmqttguard-{}.so", std::process::id()));
                fs::copy(plugin_path(), &dest).expect("copy the plugin into the chroot");
                broker_path(&dest)
            })
            .clone(),
    }
}

/// How long to wait for a broker to start, to exit, or to process a reload.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// [`START_TIMEOUT`], or [`VALGRIND_START_TIMEOUT`] when brokers run under memcheck.
pub fn start_timeout() -> Duration {
    if valgrind() {
        VALGRIND_START_TIMEOUT
    } else {
        START_TIMEOUT
    }
}

/// Under memcheck a broker starts, reloads and exits (leak check) tens of times slower.
pub const VALGRIND_START_TIMEOUT: Duration = Duration::from_secs(120);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("mosquitto-test lives inside the workspace")
        .to_path_buf()
}

/// The plugin under test.
///
/// `MQTTGUARD_PLUGIN` if set; otherwise the newer of `release/libmqttguard.so` and
/// `debug/libmqttguard.so` in `$CARGO_TARGET_DIR` (relative to the workspace if relative) when
/// that is set, else in `<workspace>/target`; failing that, in the target directory of the
/// running test binary. Panics with instructions if none exists.
pub fn plugin_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MQTTGUARD_PLUGIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "MQTTGUARD_PLUGIN={} does not name an existing file",
            p.display()
        );
        return p;
    }
    let primary = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => {
            let t = PathBuf::from(t);
            if t.is_absolute() {
                t
            } else {
                workspace_root().join(t)
            }
        }
        None => workspace_root().join("target"),
    };
    let mut dirs = vec![primary];
    // <target>/debug/deps/<test-binary>
    if let Ok(exe) = std::env::current_exe() {
        if let Some(target) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            dirs.push(target.to_path_buf());
        }
    }
    let mut tried = Vec::new();
    for dir in &dirs {
        let mut best: Option<(SystemTime, PathBuf)> = None;
        for profile in ["release", "debug"] {
            let p = dir.join(profile).join("libmqttguard.so");
            tried.push(p.display().to_string());
            if let Ok(mtime) = fs::metadata(&p).and_then(|m| m.modified()) {
                if best.as_ref().is_none_or(|(t, _)| mtime > *t) {
                    best = Some((mtime, p));
                }
            }
        }
        if let Some((_, p)) = best {
            return p;
        }
    }
    panic!(
        "libmqttguard.so not found (looked at: {}). Build the plugin first: `cargo build -p mqttguard` \
         (with the same CARGO_TARGET_DIR), or set MQTTGUARD_PLUGIN=/path/to/libmqttguard.so",
        tried.join(", ")
    )
}

/// Everything needed to write one broker's configuration and files.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub mode: Mode,
    pub allow_anonymous: bool,
    /// Contents of the password file; `None` = no password file option at all.
    pub password_file: Option<Vec<u8>>,
    /// Contents of the ACL file; `None` = no ACL file option at all.
    pub acl_file: Option<Vec<u8>>,
    /// Contents of the plugin's TOML config (plugin mode only); `None` = no `plugin_opt_config`.
    pub toml: Option<String>,
    /// Extra `plugin_opt_<key> <value>` lines (plugin mode only).
    pub extra_plugin_opts: Vec<(String, String)>,
    /// Extra raw lines appended to mosquitto.conf. `{dir}` is replaced by the broker's
    /// directory, `{plugin}` by [`plugin_path`].
    pub extra_conf: String,
    /// Extra files written into the broker's directory: (file name, contents).
    pub files: Vec<(String, Vec<u8>)>,
    /// Raw lines written before every other option (after the `listener` line), e.g.
    /// `per_listener_settings true`.
    pub prelude: String,
}

impl BrokerConfig {
    pub fn new(mode: Mode) -> Self {
        BrokerConfig {
            mode,
            allow_anonymous: false,
            password_file: None,
            acl_file: None,
            toml: None,
            extra_plugin_opts: Vec::new(),
            extra_conf: String::new(),
            files: Vec::new(),
            prelude: String::new(),
        }
    }
    pub fn allow_anonymous(mut self, yes: bool) -> Self {
        self.allow_anonymous = yes;
        self
    }
    pub fn password_file(mut self, text: impl AsRef<[u8]>) -> Self {
        self.password_file = Some(text.as_ref().to_vec());
        self
    }
    pub fn acl_file(mut self, text: impl AsRef<[u8]>) -> Self {
        self.acl_file = Some(text.as_ref().to_vec());
        self
    }
    pub fn toml(mut self, text: impl Into<String>) -> Self {
        self.toml = Some(text.into());
        self
    }
    pub fn plugin_opt(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_plugin_opts.push((key.into(), value.into()));
        self
    }
    /// Raw lines placed before all other options (see [`BrokerConfig::prelude`]).
    pub fn prelude(mut self, lines: &str) -> Self {
        self.prelude.push_str(lines);
        if !self.prelude.ends_with('\n') {
            self.prelude.push('\n');
        }
        self
    }
    /// Writes an extra file `name` into the broker's directory (refer to it as `{dir}/name`).
    pub fn file(mut self, name: &str, contents: impl AsRef<[u8]>) -> Self {
        self.files.push((name.into(), contents.as_ref().to_vec()));
        self
    }
    pub fn extra(mut self, lines: &str) -> Self {
        self.extra_conf.push_str(lines);
        if !self.extra_conf.ends_with('\n') {
            self.extra_conf.push('\n');
        }
        self
    }

    /// Writes the policy files into `dir` and returns the config body (everything except the
    /// `listener` and logging lines).
    fn write_files(&self, dir: &Path) -> String {
        let mut body = self.prelude.clone();
        writeln!(
            body,
            "allow_anonymous {}",
            if self.allow_anonymous {
                "true"
            } else {
                "false"
            }
        )
        .unwrap();
        let pw = self.password_file.as_ref().map(|t| {
            let p = dir.join("passwd");
            fs::write(&p, t).expect("write password file");
            p
        });
        let acl = self.acl_file.as_ref().map(|t| {
            let p = dir.join("acl");
            fs::write(&p, t).expect("write acl file");
            p
        });
        match self.mode {
            Mode::Builtin => {
                assert!(
                    self.toml.is_none() && self.extra_plugin_opts.is_empty(),
                    "plugin options given for a built-in broker"
                );
                if let Some(p) = pw {
                    writeln!(body, "password_file {}", broker_path(&p).display()).unwrap();
                }
                if let Some(p) = acl {
                    writeln!(body, "acl_file {}", broker_path(&p).display()).unwrap();
                }
            }
            Mode::Plugin => {
                writeln!(body, "plugin {}", broker_plugin_path().display()).unwrap();
                if let Some(p) = pw {
                    writeln!(
                        body,
                        "plugin_opt_password_file {}",
                        broker_path(&p).display()
                    )
                    .unwrap();
                }
                if let Some(p) = acl {
                    writeln!(body, "plugin_opt_acl_file {}", broker_path(&p).display()).unwrap();
                }
                if let Some(t) = &self.toml {
                    let p = dir.join("mqttguard.toml");
                    // `{dir}` in the TOML too (e.g. a revocation list path).
                    let t = t.replace("{dir}", &broker_path(dir).display().to_string());
                    fs::write(&p, t).expect("write toml");
                    writeln!(body, "plugin_opt_config {}", broker_path(&p).display()).unwrap();
                }
                for (k, v) in &self.extra_plugin_opts {
                    let v = v.replace("{dir}", &broker_path(dir).display().to_string());
                    writeln!(body, "plugin_opt_{k} {v}").unwrap();
                }
            }
        }
        for (name, contents) in &self.files {
            fs::write(dir.join(name), contents).expect("write extra file");
        }
        let mut extra = self
            .extra_conf
            .replace("{dir}", &broker_path(dir).display().to_string());
        if extra.contains("{plugin}") {
            extra = extra.replace("{plugin}", &broker_plugin_path().display().to_string());
        }
        body.push_str(&extra);
        body
    }

    /// Starts a broker with this configuration (see [`Broker::start`]).
    pub fn start(&self) -> Broker {
        let dir = broker_tempdir();
        let body = self.write_files(dir.path());
        Broker::start_in(dir, &body, self.mode)
    }

    /// Starts a broker that is expected to refuse to start (see [`Broker::start_expect_failure`]).
    pub fn start_expect_failure(&self) -> StartFailure {
        let dir = broker_tempdir();
        let body = self.write_files(dir.path());
        Broker::start_expect_failure_in(dir, &body)
    }
}

/// A running mosquitto child process. Killed (by its own pid) and reaped on drop.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    log_path: PathBuf,
    mode: Mode,
}

/// The outcome of a start that was expected to fail.
#[derive(Debug)]
pub struct StartFailure {
    pub status: ExitStatus,
    pub log: String,
    /// The (already removed) directory the broker's files were written to.
    pub dir: PathBuf,
    /// The broker did not refuse: it logged "running" (it was then killed).
    pub started: bool,
}

impl StartFailure {
    /// The broker refused to start: it exited by itself, with a non-zero status.
    pub fn refused(&self) -> bool {
        !self.started && !self.status.success()
    }

    /// Whether some log line names `<dir>/<file>:<line>` (the `file:line` form mqttguard logs).
    pub fn names_line(&self, file: &str, line: usize) -> bool {
        let needle = format!("{}:{line}", broker_path(&self.dir.join(file)).display());
        self.log.lines().any(|l| {
            l.match_indices(&needle).any(|(i, _)| {
                // not a prefix of a longer number (":3" vs ":30")
                !l[i + needle.len()..].starts_with(|c: char| c.is_ascii_digit())
            })
        })
    }
}

/// Binds 127.0.0.1:0, reads the port and releases it.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

fn write_conf(dir: &Path, port: u16, body: &str) -> (PathBuf, PathBuf) {
    let conf = dir.join("mosquitto.conf");
    let log = dir.join("mosquitto.log");
    let mut text = String::new();
    writeln!(text, "listener {port} 127.0.0.1").unwrap();
    // Running as root, mosquitto 2.0 would otherwise switch to the `mosquitto` user and lose
    // access to the temp dir; ignored when not root.
    text.push_str("user root\n");
    text.push_str("persistence false\n");
    text.push_str("log_dest stderr\n");
    text.push_str("log_type all\n");
    text.push_str(body);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    fs::write(&conf, text).expect("write mosquitto.conf");
    (conf, log)
}

fn spawn(conf: &Path, log: &Path) -> Child {
    // Appending: a retried start keeps the earlier attempt's log for diagnosis.
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log file");
    let err = out.try_clone().expect("dup log file");
    let mut command = match (chroot_root(), valgrind()) {
        (Some(root), false) => {
            let mut c = Command::new("chroot");
            c.arg(root).arg("/usr/sbin/mosquitto");
            c
        }
        (None, false) => Command::new(mosquitto_bin()),
        (None, true) => {
            let mut c = Command::new("valgrind");
            c.args(memcheck::args(conf.parent().expect("conf in a dir")))
                .arg(mosquitto_bin());
            c
        }
        (Some(root), true) => {
            // Valgrind needs /proc, which the tree lacks: mount one in a private mount
            // namespace (invisible outside this process), then chroot and run valgrind there.
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                .arg(r#"r=$1; shift; mount -t proc proc "$r/proc" && exec chroot "$r" "$@""#)
                .arg("sh")
                .arg(root)
                .arg("valgrind")
                .args(memcheck::args(conf.parent().expect("conf in a dir")))
                .arg("/usr/sbin/mosquitto");
            c
        }
    };
    // chroot(1), unshare(1), sh's exec and valgrind all exec, so the child's pid is the
    // broker's.
    command
        .arg("-c")
        .arg(broker_path(conf))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", mosquitto_bin().display()))
}

/// Whether the broker logged "mosquitto version X running" (2.1 also logs "Info: running
/// mosquitto as user: …" before loading plugins, which is not it).
fn logged_running(log: &str) -> bool {
    log.lines()
        .any(|l| l.contains("mosquitto version") && l.trim_end().ends_with(" running"))
}

fn read_log(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

impl Broker {
    /// Starts mosquitto with `body` (the configuration without `listener` and logging lines;
    /// `{dir}` is replaced by the broker's temp dir) on a free loopback port and waits until it
    /// accepts connections. Panics, with the log, if it does not come up within
    /// [`START_TIMEOUT`].
    pub fn start(body: &str, mode: Mode) -> Broker {
        let dir = broker_tempdir();
        let body = body.replace("{dir}", &broker_path(dir.path()).display().to_string());
        Broker::start_in(dir, &body, mode)
    }

    fn start_in(dir: tempfile::TempDir, body: &str, mode: Mode) -> Broker {
        let mut last_log = String::new();
        // Another test may grab the port between our release and mosquitto's bind: retry.
        for _attempt in 0..5 {
            let port = free_port();
            let (conf, log_path) = write_conf(dir.path(), port, body);
            let log_start = fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0) as usize;
            let mut child = spawn(&conf, &log_path);
            let deadline = Instant::now() + start_timeout();
            loop {
                let log = read_log(&log_path);
                let own = log.get(log_start..).unwrap_or("");
                if let Some(status) = child.try_wait().expect("try_wait") {
                    last_log = log.clone();
                    if own.contains("Address already in use") {
                        break; // retry on another port
                    }
                    panic!(
                        "mosquitto ({mode}) exited during startup with {status}; log:\n{log}\nconfig:\n{}",
                        fs::read_to_string(&conf).unwrap_or_default()
                    );
                }
                // "running" is logged after every listener is bound; only then is the port ours.
                if logged_running(own) && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Broker {
                        child: Some(child),
                        port,
                        dir,
                        log_path,
                        mode,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "mosquitto ({mode}) did not accept connections on 127.0.0.1:{port} within {:?}; log:\n{}",
                        start_timeout(),
                        read_log(&log_path)
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("mosquitto could not bind a free port after 5 attempts; log:\n{last_log}");
    }

    /// Starts mosquitto with `body` expecting it to refuse to start; returns its exit status
    /// and log. Panics if it is still running after [`START_TIMEOUT`] (then it is killed).
    pub fn start_expect_failure(body: &str) -> StartFailure {
        let dir = broker_tempdir();
        let body = body.replace("{dir}", &broker_path(dir.path()).display().to_string());
        Broker::start_expect_failure_in(dir, &body)
    }

    fn start_expect_failure_in(dir: tempfile::TempDir, body: &str) -> StartFailure {
        let port = free_port();
        let (conf, log_path) = write_conf(dir.path(), port, body);
        let mut child = spawn(&conf, &log_path);
        let deadline = Instant::now() + start_timeout();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                if valgrind() {
                    memcheck::check_dir(dir.path());
                }
                return StartFailure {
                    status,
                    log: read_log(&log_path),
                    dir: dir.path().to_path_buf(),
                    started: false,
                };
            }
            if logged_running(&read_log(&log_path)) {
                let status = if valgrind() {
                    let _ = Command::new("kill")
                        .arg("-TERM")
                        .arg(child.id().to_string())
                        .status();
                    let status = child.wait().expect("wait");
                    memcheck::check_dir(dir.path());
                    status
                } else {
                    let _ = child.kill();
                    child.wait().expect("wait")
                };
                return StartFailure {
                    status,
                    log: read_log(&log_path),
                    dir: dir.path().to_path_buf(),
                    started: true,
                };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "mosquitto was expected to refuse to start but is still running after {:?}; log:\n{}",
                    start_timeout(),
                    read_log(&log_path)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The broker's temp dir (holds `passwd`, `acl`, `mqttguard.toml`, `mosquitto.conf`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id of the mosquitto child.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker stopped").id()
    }

    /// The log so far.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// Whether some log line names `<dir>/<file>:<line>` (see [`StartFailure::names_line`]).
    pub fn log_names_line(&self, file: &str, line: usize) -> bool {
        StartFailure {
            status: std::os::unix::process::ExitStatusExt::from_raw(0),
            log: self.log(),
            dir: self.dir.path().to_path_buf(),
            started: true,
        }
        .names_line(file, line)
    }

    /// Replaces the ACL file (takes effect on [`Broker::reload`]).
    pub fn write_acl(&self, text: impl AsRef<[u8]>) {
        write_atomically(&self.dir.path().join("acl"), text.as_ref());
    }

    /// Replaces the password file (takes effect on [`Broker::reload`]).
    pub fn write_passwd(&self, text: impl AsRef<[u8]>) {
        write_atomically(&self.dir.path().join("passwd"), text.as_ref());
    }

    /// Sends SIGHUP to this broker's pid and waits until the log shows the reload was processed.
    ///
    /// Mosquitto logs "Reloading config." at the start of its reload block and runs the whole
    /// block (config, password/ACL files, plugin RELOAD events, re-authentication of connected
    /// clients) synchronously on its single network thread before it reads any socket again;
    /// so every MQTT packet a test sends after this returns is handled under the new policy.
    pub fn reload(&mut self) {
        let before = self.log().matches("Reloading config").count();
        let pid = self.pid();
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(pid.to_string())
            .status()
            .expect("run kill -HUP");
        assert!(status.success(), "kill -HUP {pid} failed");
        let deadline = Instant::now() + start_timeout();
        while self.log().matches("Reloading config").count() <= before {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                panic!(
                    "mosquitto exited with {status} after SIGHUP; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not log a reload within {:?} of SIGHUP; log:\n{}",
                start_timeout(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        if valgrind() {
            // Under memcheck the block takes long enough that a test would read the log before
            // its end: a CONNECT round trip (no username, so no plugin verification) is
            // answered only after the block.
            let _ = crate::client::Client::connack_code(
                self.port,
                &crate::client::ConnectOpts::v311("mqttguard-rig-reload-barrier"),
            );
        }
        // The block is synchronous (see above); a short settle only helps a human reading the
        // log, it is not needed for correctness. Probe: a TCP connect is accepted after the block.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            self.child
                .as_mut()
                .unwrap()
                .try_wait()
                .expect("try_wait")
                .is_none(),
            "mosquitto exited after SIGHUP; log:\n{}",
            self.log()
        );
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// Sends SIGTERM, waits (bounded) for exit, returns the exit status. Kills if it hangs.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let deadline = Instant::now() + start_timeout();
        let status = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if valgrind() {
            memcheck::check_dir(self.dir.path());
        }
        status
    }
}

fn write_atomically(path: &Path, text: &[u8]) {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).expect("create temp file");
    f.write_all(text).expect("write temp file");
    f.sync_all().ok();
    drop(f);
    fs::rename(&tmp, path).expect("rename temp file");
}

impl Drop for Broker {
    fn drop(&mut self) {
        if valgrind() {
            // SIGTERM, so that memcheck runs its leak check; then judge the report.
            self.stop();
            return;
        }
        if let Some(mut child) = self.child.take() {
            // Child::kill sends SIGKILL to this child's own pid.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether brokers run under valgrind memcheck: env `MQTTGUARD_VALGRIND=1`.
///
/// Every broker is then `valgrind --tool=memcheck … mosquitto` (inside the chroot tree for
/// `MQTTGUARD_MOSQUITTO_ROOT`, which then needs valgrind installed in it), gets
/// [`VALGRIND_START_TIMEOUT`], and is stopped with SIGTERM instead of SIGKILL so that the leak
/// check runs. When it has exited, its memcheck report is read: an error or definite leak with
/// a frame in libmqttguard fails the test (see [`memcheck`]).
pub fn valgrind() -> bool {
    std::env::var("MQTTGUARD_VALGRIND").is_ok_and(|v| v == "1")
}

/// Memcheck under the rig: the valgrind options, and reading and judging its XML reports.
///
/// Errors are counted per context (each `<error>` of the XML report): memcheck reports every
/// distinct error once, with its stacks. One is *ours* when some frame of any of its stacks
/// (the error's, the allocation's, the free's) is in libmqttguard. Reports are kept when
/// `MQTTGUARD_VALGRIND_LOGS` names a host directory: `<test>-<n>.xml`, `<test>-<n>.log` and
/// one line per broker in `summary.tsv` (test, version, error contexts, ours, definite leaks,
/// ours, complete) for `scripts/memcheck.sh`.
pub mod memcheck {
    use super::*;

    /// The suppressions file, if the test crate has one.
    fn suppressions() -> Option<PathBuf> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("valgrind.supp");
        p.is_file().then_some(p)
    }

    /// Valgrind options for a broker whose files are in `dir` (a host path).
    pub fn args(dir: &Path) -> Vec<String> {
        let d = broker_path(dir).display().to_string();
        let mut a: Vec<String> = [
            "--tool=memcheck",
            "--leak-check=full",
            "--show-leak-kinds=definite",
            "--errors-for-leak-kinds=definite",
            "--num-callers=40",
            // Keep the plugin's symbols when the broker unloads it, for leak stacks.
            "--keep-debuginfo=yes",
            "--child-silent-after-fork=yes",
            "--xml=yes",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(format!("--xml-file={d}/memcheck-%p.xml"));
        a.push(format!("--log-file={d}/memcheck-%p.log"));
        if let Some(supp) = suppressions() {
            // Copied next to the config: inside the chroot tree when there is one.
            fs::copy(&supp, dir.join("valgrind.supp")).expect("copy valgrind.supp");
            a.push(format!("--suppressions={d}/valgrind.supp"));
        }
        a
    }

    /// One error context of a memcheck report.
    #[derive(Debug, Clone)]
    pub struct Issue {
        /// Memcheck's kind, e.g. `InvalidRead`, `UninitCondition`, `Leak_DefinitelyLost`.
        pub kind: String,
        /// Its description (`what` or `xwhat/text`).
        pub what: String,
        /// Every frame of every stack, `function (file:line) [object]`, stacks separated by
        /// a `--` line.
        pub frames: Vec<String>,
        /// Some frame is in libmqttguard.
        pub ours: bool,
    }

    impl Issue {
        pub fn is_leak(&self) -> bool {
            self.kind.starts_with("Leak_")
        }
    }

    impl std::fmt::Display for Issue {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            writeln!(f, "{}: {}", self.kind, self.what)?;
            for fr in &self.frames {
                writeln!(f, "    {fr}")?;
            }
            Ok(())
        }
    }

    /// One memcheck report (one broker process).
    #[derive(Debug, Clone, Default)]
    pub struct Report {
        pub issues: Vec<Issue>,
        /// The report was closed (`</valgrindoutput>`): the process exited and, for a normal
        /// exit, the leak check ran. Not so after SIGKILL.
        pub complete: bool,
    }

    impl Report {
        pub fn errors(&self) -> impl Iterator<Item = &Issue> {
            self.issues.iter().filter(|i| !i.is_leak())
        }
        pub fn leaks(&self) -> impl Iterator<Item = &Issue> {
            self.issues.iter().filter(|i| i.is_leak())
        }
        /// Errors and definite leaks with a frame in libmqttguard.
        pub fn ours(&self) -> impl Iterator<Item = &Issue> {
            self.issues.iter().filter(|i| i.ours)
        }
    }

    fn unescape(s: &str) -> String {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    }

    /// The text of the first `<tag>…</tag>` in `s`.
    fn element<'a>(s: &'a str, tag: &str) -> Option<&'a str> {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = s.find(&open)? + open.len();
        let len = s[start..].find(&close)?;
        Some(&s[start..start + len])
    }

    /// Parses memcheck's XML output (`--xml=yes`); an unfinished file (the broker was killed)
    /// gives the errors written so far.
    pub fn parse(xml: &str) -> Report {
        let mut report = Report {
            issues: Vec::new(),
            complete: xml.contains("</valgrindoutput>"),
        };
        let mut rest = xml;
        while let Some(start) = rest.find("<error>") {
            let Some(len) = rest[start..].find("</error>") else {
                break;
            };
            let block = &rest[start..start + len];
            rest = &rest[start + len..];
            let kind = element(block, "kind").unwrap_or("?").to_string();
            let what = element(block, "what")
                .or_else(|| element(block, "xwhat").and_then(|x| element(x, "text")))
                .map(unescape)
                .unwrap_or_default();
            let mut frames = Vec::new();
            let mut ours = false;
            for (i, stack) in block.split("<stack>").skip(1).enumerate() {
                if i > 0 {
                    frames.push("--".to_string());
                }
                let stack = stack.split("</stack>").next().unwrap_or("");
                for frame in stack.split("<frame>").skip(1) {
                    let obj = element(frame, "obj").map(unescape).unwrap_or_default();
                    let func = element(frame, "fn").map(unescape).unwrap_or("???".into());
                    ours |= obj.contains("libmqttguard");
                    let at = match (element(frame, "file"), element(frame, "line")) {
                        (Some(file), Some(line)) => format!(" ({}:{line})", unescape(file)),
                        _ => String::new(),
                    };
                    frames.push(format!("{func}{at} [{obj}]"));
                }
            }
            report.issues.push(Issue {
                kind,
                what,
                frames,
                ours,
            });
        }
        report
    }

    /// Reads, keeps (see the module doc) and judges every memcheck report in `dir` (a broker
    /// that has exited). Panics, unless the thread is already panicking, when a report has an
    /// error or leak of ours.
    pub(super) fn check_dir(dir: &Path) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let mut xmls: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("memcheck-") && n.ends_with(".xml"))
            })
            .collect();
        xmls.sort();
        let mut ours = Vec::new();
        for xml_path in xmls {
            let xml =
                String::from_utf8_lossy(&fs::read(&xml_path).unwrap_or_default()).into_owned();
            let report = parse(&xml);
            let kept = keep(&xml_path, &report);
            for i in report.ours() {
                ours.push(format!("{i}(report: {kept})"));
            }
        }
        if !ours.is_empty() && !std::thread::panicking() {
            panic!(
                "memcheck found {} error(s) with a frame in libmqttguard:\n{}",
                ours.len(),
                ours.join("\n")
            );
        }
    }

    /// Copies a report into `MQTTGUARD_VALGRIND_LOGS` and adds its summary line; returns
    /// where it is kept (or where it was).
    fn keep(xml_path: &Path, report: &Report) -> String {
        let Some(logs) = std::env::var_os("MQTTGUARD_VALGRIND_LOGS").map(PathBuf::from) else {
            return xml_path.display().to_string();
        };
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        fs::create_dir_all(&logs).expect("create MQTTGUARD_VALGRIND_LOGS");
        let binary = std::env::current_exe()
            .ok()
            .and_then(|e| e.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let binary = binary.split('-').next().unwrap_or_default().to_string();
        let test = std::thread::current()
            .name()
            .unwrap_or("main")
            .replace("::", ".");
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{binary}.{test}-{}-{n}", std::process::id());
        let dest = logs.join(format!("{name}.xml"));
        let _ = fs::copy(xml_path, &dest);
        let _ = fs::copy(
            xml_path.with_extension("log"),
            logs.join(format!("{name}.log")),
        );
        let mut text = String::new();
        for i in &report.issues {
            writeln!(text, "{i}").unwrap();
        }
        let _ = fs::write(logs.join(format!("{name}.txt")), text);
        let line = format!(
            "{name}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            super::broker_version(),
            report.errors().count(),
            report.errors().filter(|i| i.ours).count(),
            report.leaks().count(),
            report.leaks().filter(|i| i.ours).count(),
            if report.complete {
                "complete"
            } else {
                "incomplete"
            },
        );
        if let Ok(mut f) = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join("summary.tsv"))
        {
            let _ = f.write_all(line.as_bytes());
        }
        dest.display().to_string()
    }
}
