//! The TOML configuration file (`plugin_opt_config`): settings beyond Mosquitto's own.

use std::path::Path;

use serde::Deserialize;

use crate::error::Located;

/// Why the configuration file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file is not UTF-8 text.
    #[error("not valid UTF-8")]
    NotUtf8,
    /// The TOML parser's message: bad syntax, an unknown key or a wrong type.
    #[error("{0}")]
    Toml(String),
}

/// All settings. Unknown keys are errors, so a typo never silently changes behaviour.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[acl]`: options of the ACL check.
    #[serde(default)]
    pub acl: AclConfig,
    /// `[auth]`: the verified-credential cache, login throttling and the verification queue.
    #[serde(default)]
    pub auth: AuthConfig,
    /// `[log]`: the denial log.
    #[serde(default)]
    pub log: LogConfig,
    /// `[identity]`: client certificates as identities. Absent: certificates are not used.
    #[serde(default)]
    pub identity: Option<crate::identity::IdentityConfig>,
    /// `[reload]`: noticing changed policy files without a SIGHUP.
    #[serde(default)]
    pub reload: ReloadConfig,
    /// `[metrics]`: counters of the auth layer.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `[reload]`: reloading without a signal.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Watch every policy file (password file, ACL file, this file, the revocation list) and
    /// reload, exactly as on SIGHUP, when one changes: an in-place rewrite, a rename over it,
    /// or a Kubernetes ConfigMap/Secret update (the `..data` symlink swap).
    pub watch: bool,
}

/// `[metrics]`: counters of the auth layer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Publish the counters as retained messages under `$SYS/broker/mqttguard/` this often, in
    /// seconds; 0 turns it off.
    pub sys_interval: u64,
    /// Also write them in the Prometheus text format to this file (atomically, every
    /// `sys_interval` seconds, or every 10 s when that is 0), for node_exporter's textfile
    /// collector.
    pub textfile: Option<std::path::PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            sys_interval: 10,
            textfile: None,
        }
    }
}

/// `[auth]`: the verified-credential cache, login throttling and the verification queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Remember successful verifications so repeat connects and the re-authentication of every
    /// client on SIGHUP skip the slow hash. 0 disables the cache.
    pub cache_seconds: u64,
    /// At most this many remembered credentials; the oldest are forgotten first.
    pub cache_entries: usize,
    /// Consecutive failed logins for one username from one client address before further
    /// attempts from there are refused without hashing for a backoff. 0 turns it off.
    pub failures_before_backoff: u32,
    /// Failed logins from one client address, whatever the usernames, before that address is
    /// backed off. 0 (the default) turns it off: many devices may share one address (NAT).
    pub address_failures_before_backoff: u32,
    /// The first backoff, in seconds; it doubles with each further failure.
    pub backoff_seconds: u64,
    /// The longest backoff, in seconds. Failures older than twice this are forgotten.
    pub max_backoff_seconds: u64,
    /// Mosquitto 2.1: slow-hash verifications queued or running at most; beyond this a login
    /// is refused at once ("server busy" for MQTT v5 clients, who retry).
    pub max_queued_verifications: usize,
    /// Mosquitto 2.1: slow-hash verifications queued or running for one username at most.
    pub max_verifications_per_user: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            cache_seconds: 3600,
            cache_entries: 100_000,
            failures_before_backoff: 5,
            address_failures_before_backoff: 0,
            backoff_seconds: 1,
            max_backoff_seconds: 300,
            max_queued_verifications: 256,
            max_verifications_per_user: 2,
        }
    }
}

impl AuthConfig {
    /// The throttling settings these options describe.
    pub(crate) fn throttle(&self) -> crate::throttle::ThrottleSettings {
        crate::throttle::ThrottleSettings {
            failures_per_user: self.failures_before_backoff,
            failures_per_address: self.address_failures_before_backoff,
            backoff: std::time::Duration::from_secs(self.backoff_seconds.max(1)),
            max_backoff: std::time::Duration::from_secs(
                self.max_backoff_seconds.max(self.backoff_seconds).max(1),
            ),
            max_entries: 100_000,
        }
    }
}

/// `[log]`: the denial log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Broker log level of the line written for each denial: "none", "debug", "info",
    /// "notice", "warning" or "error".
    pub denials: LogLevel,
    /// Denial lines per second at most (with a burst of twice that); the rest are counted and
    /// reported in one summary line.
    pub denials_per_second: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            denials: LogLevel::Notice,
            denials_per_second: 10,
        }
    }
}

/// A broker log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Not logged at all.
    None,
    /// Mosquitto's `debug` level.
    Debug,
    /// Mosquitto's `info` level.
    Info,
    /// Mosquitto's `notice` level.
    Notice,
    /// Mosquitto's `warning` level.
    Warning,
    /// Mosquitto's `error` level.
    Error,
}

/// `[acl]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// Refuse a SUBSCRIBE whose filter can match no topic the client may read. Mosquitto
    /// allows every subscription and filters at delivery; default false, like Mosquitto.
    #[serde(default)]
    pub check_subscribe: bool,
    /// Remember recent READ/WRITE allows (a fixed table of 16,384 per plugin instance,
    /// forgotten on every reload): a repeated question is answered without walking the rules.
    /// Denials are always decided afresh. Default true; false decides every check from the
    /// rules.
    #[serde(default = "yes")]
    pub memo_decisions: bool,
}

fn yes() -> bool {
    true
}

impl Default for AclConfig {
    fn default() -> Self {
        AclConfig {
            check_subscribe: false,
            memo_decisions: true,
        }
    }
}

impl Config {
    /// Parses the configuration file; a refusal names the line the TOML error points at, if any.
    pub fn parse(file: &Path, text: &[u8]) -> Result<Config, Located<ConfigError>> {
        let text =
            std::str::from_utf8(text).map_err(|_| Located::new(file, 0, ConfigError::NotUtf8))?;
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            Located::new(file, line, ConfigError::Toml(e.message().to_string()))
        })
    }
}
