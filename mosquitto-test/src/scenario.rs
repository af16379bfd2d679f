//! Differential scenarios: the same password file, ACL file and client steps run against the
//! built-in `password_file`/`acl_file` and against the plugin, observations compared.
//!
//! Every step has the outcome Mosquitto 2.0's built-in code produces (checked whenever the
//! scenario runs in built-in mode, so the scenario itself is validated against the real broker)
//! and, where the plugin is deliberately different (stricter, or a plugin-only feature), the
//! plugin's outcome. Delivery checks are deterministic: before reading a subscriber's messages,
//! every connected client does a PINGREQ/PINGRESP round trip (so every publish it sent has been
//! routed), then the subscriber does one (so everything routed to it has been received).

use std::fmt;

use crate::broker::{Broker, BrokerConfig, Mode};
use crate::client::{Client, ConnectOpts, Msg, Proto, Refused};
use crate::passwd::{passwd_file, Scheme};

/// What a step observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Obs {
    /// CONNACK code (0 = accepted); `None` = connection closed without CONNACK.
    Connack(Option<u8>),
    /// SUBACK codes.
    Suback(Vec<u8>),
    /// PUBACK/PUBREC reason (QoS 1/2); `None` for QoS 0.
    Puback(Option<u8>),
    /// Messages received since the previous `recv` of that client, sorted.
    Msgs(Vec<String>),
    /// Whether the connection is still open.
    Connected(bool),
    /// The step's client is not connected (its CONNECT was refused, or it was disconnected).
    NotConnected,
    /// The step has no observation (reload, file change, disconnect).
    Done,
    /// The broker closed the connection during the step.
    Closed,
}

impl Obs {
    /// Messages as `topic=payload` (with ` (retained)` for retained ones), in any order.
    pub fn msgs(list: &[&str]) -> Obs {
        let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        v.sort();
        Obs::Msgs(v)
    }
}

impl fmt::Display for Obs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Obs::Connack(Some(c)) => write!(f, "CONNACK 0x{c:02x}"),
            Obs::Connack(None) => write!(f, "closed without CONNACK"),
            Obs::Suback(c) => {
                write!(f, "SUBACK [")?;
                for (i, x) in c.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "0x{x:02x}")?;
                }
                write!(f, "]")
            }
            Obs::Puback(Some(c)) => write!(f, "PUBACK 0x{c:02x}"),
            Obs::Puback(None) => write!(f, "sent (QoS 0)"),
            Obs::Msgs(m) => write!(f, "received {m:?}"),
            Obs::Connected(b) => write!(f, "connected={b}"),
            Obs::NotConnected => write!(f, "client not connected"),
            Obs::Done => write!(f, "done"),
            Obs::Closed => write!(f, "connection closed by broker"),
        }
    }
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    Connect {
        name: String,
        opts: ConnectOpts,
    },
    Subscribe {
        name: String,
        filters: Vec<(String, u8)>,
    },
    Unsubscribe {
        name: String,
        filter: String,
    },
    Publish {
        name: String,
        topic: String,
        payload: String,
        qos: u8,
        retain: bool,
    },
    Recv {
        name: String,
    },
    IsConnected {
        name: String,
    },
    Disconnect {
        name: String,
    },
    /// Close the socket without DISCONNECT and wait until the broker logged it.
    DropConnection {
        name: String,
    },
    WriteAcl(String),
    WritePasswd(PasswdSpec),
    Reload,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Connect { name, opts } => write!(
                f,
                "{name}: connect {} id={:?} user={:?} pass={:?}",
                opts.proto,
                opts.client_id,
                opts.username,
                opts.password
                    .as_ref()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
            ),
            Action::Subscribe { name, filters } => write!(f, "{name}: subscribe {filters:?}"),
            Action::Unsubscribe { name, filter } => write!(f, "{name}: unsubscribe {filter:?}"),
            Action::Publish {
                name,
                topic,
                payload,
                qos,
                retain,
            } => write!(
                f,
                "{name}: publish {topic:?}={payload:?} qos{qos}{}",
                if *retain { " retain" } else { "" }
            ),
            Action::Recv { name } => write!(f, "{name}: messages received"),
            Action::IsConnected { name } => write!(f, "{name}: still connected?"),
            Action::Disconnect { name } => write!(f, "{name}: disconnect"),
            Action::DropConnection { name } => write!(f, "{name}: drop connection (no DISCONNECT)"),
            Action::WriteAcl(t) => write!(f, "rewrite ACL file: {t:?}"),
            Action::WritePasswd(_) => write!(f, "rewrite password file"),
            Action::Reload => write!(f, "SIGHUP"),
        }
    }
}

/// A password file: `(user, password, scheme)` entries written with `mosquitto_passwd`, or raw
/// text.
#[derive(Debug, Clone)]
pub enum PasswdSpec {
    Users(Vec<(String, String, Scheme)>),
    Raw(String),
}

impl PasswdSpec {
    pub fn text(&self) -> String {
        match self {
            PasswdSpec::Raw(t) => t.clone(),
            PasswdSpec::Users(u) => {
                let refs: Vec<(&str, &str, Scheme)> = u
                    .iter()
                    .map(|(a, b, s)| (a.as_str(), b.as_str(), *s))
                    .collect();
                passwd_file(&refs)
            }
        }
    }
}

/// One step with its expected observations.
#[derive(Debug, Clone)]
pub struct Step {
    pub action: Action,
    /// What Mosquitto 2.0's built-in files produce (checked in built-in mode; in plugin mode too
    /// unless `plugin_expect` is set). `None`: not asserted, only compared across modes.
    pub expect: Option<Obs>,
    /// Where the plugin deliberately differs: what it must produce instead.
    pub plugin_expect: Option<Obs>,
}

/// A scenario: files, broker options and steps.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub passwd: Option<PasswdSpec>,
    pub acl: Option<String>,
    pub allow_anonymous: bool,
    /// Plugin-mode-only TOML config.
    pub toml: Option<String>,
    pub steps: Vec<Step>,
}

/// One mode's run: the observation of each step.
pub type Transcript = Vec<Obs>;

impl Scenario {
    pub fn new(name: impl Into<String>) -> Self {
        Scenario {
            name: name.into(),
            passwd: None,
            acl: None,
            allow_anonymous: false,
            toml: None,
            steps: Vec::new(),
        }
    }

    // ---- files and options ----

    /// Adds a user to the password file (created on first use).
    pub fn user(mut self, name: &str, password: &str, scheme: Scheme) -> Self {
        match &mut self.passwd {
            Some(PasswdSpec::Users(u)) => u.push((name.into(), password.into(), scheme)),
            _ => {
                self.passwd = Some(PasswdSpec::Users(vec![(
                    name.into(),
                    password.into(),
                    scheme,
                )]))
            }
        }
        self
    }
    /// Raw password file text.
    pub fn passwd_raw(mut self, text: &str) -> Self {
        self.passwd = Some(PasswdSpec::Raw(text.into()));
        self
    }
    pub fn acl(mut self, text: &str) -> Self {
        self.acl = Some(text.into());
        self
    }
    pub fn anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }
    pub fn toml(mut self, text: &str) -> Self {
        self.toml = Some(text.into());
        self
    }

    // ---- steps ----

    fn push(mut self, action: Action, expect: Option<Obs>) -> Self {
        self.steps.push(Step {
            action,
            expect,
            plugin_expect: None,
        });
        self
    }

    /// Connects client `name`; expects CONNACK `code` (0 = accepted).
    pub fn connect(self, name: &str, opts: ConnectOpts, code: u8) -> Self {
        self.push(
            Action::Connect {
                name: name.into(),
                opts,
            },
            Some(Obs::Connack(Some(code))),
        )
    }
    /// Subscribes `name` to `filter` (QoS 0); expects SUBACK `codes`.
    pub fn sub(self, name: &str, filter: &str, codes: &[u8]) -> Self {
        self.sub_qos(name, filter, 0, codes)
    }
    pub fn sub_qos(self, name: &str, filter: &str, qos: u8, codes: &[u8]) -> Self {
        self.push(
            Action::Subscribe {
                name: name.into(),
                filters: vec![(filter.into(), qos)],
            },
            Some(Obs::Suback(codes.to_vec())),
        )
    }
    pub fn unsub(self, name: &str, filter: &str) -> Self {
        self.push(
            Action::Unsubscribe {
                name: name.into(),
                filter: filter.into(),
            },
            None,
        )
    }
    /// QoS 0 publish (no observation beyond "sent").
    pub fn publish(self, name: &str, topic: &str, payload: &str) -> Self {
        self.push(
            Action::Publish {
                name: name.into(),
                topic: topic.into(),
                payload: payload.into(),
                qos: 0,
                retain: false,
            },
            Some(Obs::Puback(None)),
        )
    }
    /// QoS 0 retained publish.
    pub fn publish_retained(self, name: &str, topic: &str, payload: &str) -> Self {
        self.push(
            Action::Publish {
                name: name.into(),
                topic: topic.into(),
                payload: payload.into(),
                qos: 0,
                retain: true,
            },
            Some(Obs::Puback(None)),
        )
    }
    /// QoS 1 publish; expects PUBACK reason `reason` (`None`: compared across modes only).
    pub fn publish_q1(self, name: &str, topic: &str, payload: &str, reason: Option<u8>) -> Self {
        self.push(
            Action::Publish {
                name: name.into(),
                topic: topic.into(),
                payload: payload.into(),
                qos: 1,
                retain: false,
            },
            reason.map(|r| Obs::Puback(Some(r))),
        )
    }
    /// Expects `name` to have received exactly `msgs` (`topic=payload`, any order) since its
    /// previous `recv`.
    pub fn recv(self, name: &str, msgs: &[&str]) -> Self {
        self.push(Action::Recv { name: name.into() }, Some(Obs::msgs(msgs)))
    }
    /// Expects `name` to be still connected (or not).
    pub fn connected(self, name: &str, yes: bool) -> Self {
        self.push(
            Action::IsConnected { name: name.into() },
            Some(Obs::Connected(yes)),
        )
    }
    pub fn disconnect(self, name: &str) -> Self {
        self.push(Action::Disconnect { name: name.into() }, Some(Obs::Done))
    }
    /// Closes `name`'s socket without DISCONNECT (its will is published) and waits until the
    /// broker has handled it.
    pub fn drop_connection(self, name: &str) -> Self {
        self.push(
            Action::DropConnection { name: name.into() },
            Some(Obs::Done),
        )
    }
    pub fn write_acl(self, text: &str) -> Self {
        self.push(Action::WriteAcl(text.into()), Some(Obs::Done))
    }
    pub fn write_passwd(self, spec: PasswdSpec) -> Self {
        self.push(Action::WritePasswd(spec), Some(Obs::Done))
    }
    pub fn reload(self) -> Self {
        self.push(Action::Reload, Some(Obs::Done))
    }

    /// The previous step's plugin outcome differs from built-in 2.0 on purpose: `obs`.
    pub fn plugin(mut self, obs: Obs) -> Self {
        let last = self.steps.last_mut().expect("plugin() after a step");
        last.plugin_expect = Some(obs);
        self
    }
    /// Shorthand: the previous `recv` step gets `msgs` in plugin mode.
    pub fn plugin_recv(self, msgs: &[&str]) -> Self {
        self.plugin(Obs::msgs(msgs))
    }

    /// The same scenario without a password file and with `allow_anonymous true`, so every
    /// client gets in with whatever username it sends (no basic-auth callback in either mode)
    /// and only the ACL decides. Connect steps that expected a refusal are dropped.
    pub fn acl_only(&self) -> Scenario {
        let mut s = self.clone();
        s.name = format!("{} [acl only]", self.name);
        s.passwd = None;
        s.allow_anonymous = true;
        s.steps.retain(|st| {
            !matches!(
                (&st.action, &st.expect),
                (Action::Connect { .. }, Some(Obs::Connack(Some(c)))) if *c != 0
            ) && !matches!(st.action, Action::WritePasswd(_))
        });
        s
    }

    /// Whether any step is expected to differ between the modes.
    pub fn has_differences(&self) -> bool {
        self.steps.iter().any(|s| s.plugin_expect.is_some())
    }

    // ---- running ----

    fn broker_config(&self, mode: Mode) -> BrokerConfig {
        let mut cfg = BrokerConfig::new(mode).allow_anonymous(self.allow_anonymous);
        if let Some(p) = &self.passwd {
            cfg = cfg.password_file(p.text());
        }
        if let Some(a) = &self.acl {
            cfg = cfg.acl_file(a.as_bytes());
        }
        if mode == Mode::Plugin {
            if let Some(t) = &self.toml {
                cfg = cfg.toml(t.clone());
            }
        }
        cfg
    }

    /// Runs every step against a fresh broker in `mode`; returns the observations.
    pub fn run(&self, mode: Mode) -> Transcript {
        let mut broker = self.broker_config(mode).start();
        let mut clients: Vec<(String, Client)> = Vec::new();
        let mut out = Vec::new();
        for step in &self.steps {
            let obs = exec(&mut broker, &mut clients, &step.action);
            out.push(obs);
        }
        for (_, c) in clients {
            c.disconnect();
        }
        drop(broker);
        out
    }

    /// What `mode` must produce for step `i`.
    fn expected(&self, i: usize, mode: Mode) -> Option<&Obs> {
        let s = &self.steps[i];
        match mode {
            Mode::Plugin => s.plugin_expect.as_ref().or(s.expect.as_ref()),
            Mode::Builtin => s.expect.as_ref(),
        }
    }

    /// Runs in `mode` only and asserts every step's expectation for that mode.
    pub fn check(&self, mode: Mode) -> Transcript {
        let t = self.run(mode);
        let mut errors = Vec::new();
        for (i, got) in t.iter().enumerate() {
            if let Some(want) = self.expected(i, mode) {
                if want != got {
                    errors.push(format!(
                        "  step {i} [{}]: expected {want}, got {got}",
                        self.steps[i].action
                    ));
                }
            }
        }
        if !errors.is_empty() {
            panic!(
                "scenario {:?} ({mode}): {} step(s) differ from expectations:\n{}\ntranscript:\n{}",
                self.name,
                errors.len(),
                errors.join("\n"),
                self.render(&t)
            );
        }
        t
    }

    /// The differential check: runs built-in and plugin; built-in must meet `expect`, the plugin
    /// must produce exactly what built-in produced, except on steps with `plugin_expect`, where
    /// the plugin must produce that instead.
    ///
    /// With `MQTTGUARD_NO_BUILTIN_REFERENCE=1` (the matrix runs against Mosquitto 2.1, whose
    /// built-in files decide differently by design) only the plugin runs, and it must meet the
    /// scenario's Mosquitto 2.0 expectations: the plugin behaves the same on every version.
    pub fn differential(&self) {
        if std::env::var_os("MQTTGUARD_NO_BUILTIN_REFERENCE").is_some_and(|v| v == "1") {
            self.check(Mode::Plugin);
            return;
        }
        let b = self.run(Mode::Builtin);
        let p = self.run(Mode::Plugin);
        let mut errors = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            if let Some(want) = &step.expect {
                if &b[i] != want {
                    errors.push(format!(
                        "  step {i} [{}]: built-in expected {want}, got {} (scenario is wrong about Mosquitto)",
                        step.action, b[i]
                    ));
                }
            }
            match &step.plugin_expect {
                Some(want) => {
                    if &p[i] != want {
                        errors.push(format!(
                            "  step {i} [{}]: plugin expected {want} (deliberate difference; built-in gave {}), got {}",
                            step.action, b[i], p[i]
                        ));
                    }
                }
                None => {
                    if p[i] != b[i] {
                        errors.push(format!(
                            "  step {i} [{}]: DISAGREEMENT built-in {} vs plugin {}",
                            step.action, b[i], p[i]
                        ));
                    }
                }
            }
        }
        if !errors.is_empty() {
            let mut rows = String::new();
            for (i, step) in self.steps.iter().enumerate() {
                rows.push_str(&format!(
                    "  {i:>2} {:<60} | built-in: {} | plugin: {}\n",
                    step.action.to_string(),
                    b[i],
                    p[i]
                ));
            }
            panic!(
                "scenario {:?}: {} problem(s):\n{}\nsteps:\n{rows}",
                self.name,
                errors.len(),
                errors.join("\n")
            );
        }
    }

    fn render(&self, t: &Transcript) -> String {
        let mut s = String::new();
        for (i, (step, obs)) in self.steps.iter().zip(t).enumerate() {
            s.push_str(&format!(
                "  {i:>2} {:<60} => {obs}\n",
                step.action.to_string()
            ));
        }
        s
    }
}

fn find<'a>(clients: &'a mut [(String, Client)], name: &str) -> Option<&'a mut Client> {
    clients.iter_mut().find(|(n, _)| n == name).map(|(_, c)| c)
}

fn exec(broker: &mut Broker, clients: &mut Vec<(String, Client)>, action: &Action) -> Obs {
    match action {
        Action::Connect { name, opts } => {
            assert!(
                find(clients, name).is_none(),
                "client {name} connected twice in one scenario"
            );
            match Client::connect(broker.port(), opts) {
                Ok(c) => {
                    clients.push((name.clone(), c));
                    Obs::Connack(Some(0))
                }
                Err(Refused::Code(c)) => Obs::Connack(Some(c)),
                Err(Refused::NoConnack(_)) => Obs::Connack(None),
            }
        }
        Action::Subscribe { name, filters } => {
            let Some(c) = find(clients, name) else {
                return Obs::NotConnected;
            };
            let f: Vec<(&str, u8)> = filters.iter().map(|(a, q)| (a.as_str(), *q)).collect();
            match c.try_subscribe_many(&f) {
                Ok(codes) => Obs::Suback(codes),
                Err(_) => Obs::Closed,
            }
        }
        Action::Unsubscribe { name, filter } => {
            let Some(c) = find(clients, name) else {
                return Obs::NotConnected;
            };
            c.unsubscribe(filter);
            Obs::Done
        }
        Action::Publish {
            name,
            topic,
            payload,
            qos,
            retain,
        } => {
            let Some(c) = find(clients, name) else {
                return Obs::NotConnected;
            };
            match c.try_publish(topic, payload.as_bytes(), *qos, *retain) {
                Ok(r) => Obs::Puback(r),
                Err(_) => Obs::Closed,
            }
        }
        Action::Recv { name } => {
            // Everyone else first: their publishes are routed once their round trip returns.
            for (n, c) in clients.iter_mut() {
                if n != name && c.closed().is_none() {
                    let _ = c.try_sync();
                }
            }
            let Some(c) = find(clients, name) else {
                return Obs::NotConnected;
            };
            match c.try_sync() {
                Ok(()) => {
                    let mut v: Vec<String> = c.take_received().iter().map(Msg::to_string).collect();
                    v.sort();
                    Obs::Msgs(v)
                }
                Err(_) => Obs::Closed,
            }
        }
        Action::IsConnected { name } => {
            let Some(c) = find(clients, name) else {
                return Obs::NotConnected;
            };
            Obs::Connected(c.try_sync().is_ok())
        }
        Action::Disconnect { name } => {
            if let Some(i) = clients.iter().position(|(n, _)| n == name) {
                let (_, c) = clients.remove(i);
                c.disconnect();
            }
            Obs::Done
        }
        Action::DropConnection { name } => {
            if let Some(i) = clients.iter().position(|(n, _)| n == name) {
                let (_, c) = clients.remove(i);
                let id = c.client_id().to_string();
                // 2.0: "Client ID closed its connection."; 2.1: "Client ID [addr] disconnected".
                let prefix = format!("Client {id} ");
                let gone = |log: String| {
                    log.lines()
                        .filter(|l| {
                            l.contains(&prefix)
                                && (l.contains("closed its connection")
                                    || l.contains("disconnected"))
                        })
                        .count()
                };
                let needle = format!("{prefix}closed its connection / disconnected");
                let before = gone(broker.log());
                c.drop_connection();
                // Mosquitto logs this line and publishes the will in the same handler.
                let deadline = std::time::Instant::now() + crate::broker::START_TIMEOUT;
                while gone(broker.log()) <= before {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "broker did not log {needle:?}; log:\n{}",
                        broker.log()
                    );
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
            Obs::Done
        }
        Action::WriteAcl(t) => {
            broker.write_acl(t);
            Obs::Done
        }
        Action::WritePasswd(spec) => {
            broker.write_passwd(spec.text());
            Obs::Done
        }
        Action::Reload => {
            broker.reload();
            Obs::Done
        }
    }
}

/// CONNACK code for "not authorised" in `proto` (3.1.1: 5, v5: 0x87).
pub fn not_authorised(proto: Proto) -> u8 {
    match proto {
        Proto::V311 => 5,
        Proto::V5 => 0x87,
    }
}

/// SUBACK failure code in `proto` when the subscription is refused for authorisation
/// (3.1.1: 0x80, v5: 0x87).
pub fn suback_denied(proto: Proto) -> u8 {
    match proto {
        Proto::V311 => 0x80,
        Proto::V5 => 0x87,
    }
}
