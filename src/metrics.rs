//! Counters of the auth layer, kept with relaxed atomic increments (the ACL hot path pays one
//! `fetch_add` and nothing else), and rendered two ways: `$SYS/broker/mqttguard/...` topics
//! (published by the plugin from TICK) and the Prometheus text format (a file for
//! node_exporter's textfile collector).
//!
//! The counters are the process's (all plugin instances of a broker add to the same ones).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a login was refused, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginDenied {
    /// The username is not in the password file.
    UnknownUser,
    /// The password does not match.
    WrongPassword,
    /// A username without a password.
    NoPassword,
    /// The client certificate gave no usable identity, or the username or client id did not
    /// match it.
    Certificate,
    /// The client certificate is revoked.
    Revoked,
    /// Refused by the failed-login throttle.
    Throttled,
    /// Not verified: the verification queue was full, the user already had verifications in
    /// flight, or the plugin was stopping.
    Busy,
}

impl LoginDenied {
    /// Every reason, in the order of the per-reason counters.
    pub const ALL: [LoginDenied; 7] = [
        LoginDenied::UnknownUser,
        LoginDenied::WrongPassword,
        LoginDenied::NoPassword,
        LoginDenied::Certificate,
        LoginDenied::Revoked,
        LoginDenied::Throttled,
        LoginDenied::Busy,
    ];

    /// The reason's name as a metric label, e.g. `unknown_user`.
    pub fn name(self) -> &'static str {
        match self {
            LoginDenied::UnknownUser => "unknown_user",
            LoginDenied::WrongPassword => "wrong_password",
            LoginDenied::NoPassword => "no_password",
            LoginDenied::Certificate => "certificate",
            LoginDenied::Revoked => "revoked",
            LoginDenied::Throttled => "throttled",
            LoginDenied::Busy => "busy",
        }
    }
}

/// The access of an ACL check, for the counters (index into the per-access arrays).
pub const ACCESS_NAMES: [&str; 4] = ["read", "write", "subscribe", "unsubscribe"];

/// The policy's size, as gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicySize {
    /// Users in the password file.
    pub password_users: u64,
    /// Distinct `user` blocks in the ACL file.
    pub acl_users: u64,
    /// Topic rules in the ACL file, over all users.
    pub topic_rules: u64,
    /// `pattern` rules in the ACL file.
    pub patterns: u64,
}

/// The auth layer's counters; [`METRICS`] is the process's one instance.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Logins allowed.
    pub logins_allowed: AtomicU64,
    logins_denied: [AtomicU64; 7],
    acl_allowed: [AtomicU64; 4],
    acl_denied: [AtomicU64; 4],
    /// Verified-credential cache hits.
    pub cache_hits: AtomicU64,
    /// Verified-credential cache misses.
    pub cache_misses: AtomicU64,
    /// Successful reloads.
    pub reloads_ok: AtomicU64,
    /// Reloads refused (the previous policy stayed in force).
    pub reloads_failed: AtomicU64,
    /// Unix seconds of the last successful load (start or reload).
    pub last_load: AtomicU64,
}

/// The process's counters.
pub static METRICS: Metrics = Metrics::new();

impl Metrics {
    /// All counters at zero.
    pub const fn new() -> Metrics {
        Metrics {
            logins_allowed: AtomicU64::new(0),
            logins_denied: [const { AtomicU64::new(0) }; 7],
            acl_allowed: [const { AtomicU64::new(0) }; 4],
            acl_denied: [const { AtomicU64::new(0) }; 4],
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            last_load: AtomicU64::new(0),
        }
    }

    /// Counts one refused login.
    pub fn login_denied(&self, why: LoginDenied) {
        self.logins_denied[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// One ACL decision; `access` indexes [`ACCESS_NAMES`].
    #[inline]
    pub fn acl(&self, access: usize, allowed: bool) {
        let counters = if allowed {
            &self.acl_allowed
        } else {
            &self.acl_denied
        };
        if let Some(c) = counters.get(access) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets `last_load` to now.
    pub fn loaded_now(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_load.store(now, Ordering::Relaxed);
    }

    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Every value as (`$SYS` subtopic, value), in a fixed order.
    pub fn sys_topics(&self, gauges: &Gauges) -> Vec<(String, u64)> {
        let mut out = vec![(
            "logins/allowed".to_string(),
            Self::get(&self.logins_allowed),
        )];
        for why in LoginDenied::ALL {
            out.push((
                format!("logins/denied/{}", why.name()),
                Self::get(&self.logins_denied[why as usize]),
            ));
        }
        for (i, name) in ACCESS_NAMES.iter().enumerate() {
            out.push((
                format!("acl/{name}/allowed"),
                Self::get(&self.acl_allowed[i]),
            ));
            out.push((format!("acl/{name}/denied"), Self::get(&self.acl_denied[i])));
        }
        out.push(("cache/hits".into(), Self::get(&self.cache_hits)));
        out.push(("cache/misses".into(), Self::get(&self.cache_misses)));
        out.push(("verifications/queued".into(), gauges.queued));
        out.push(("verifications/running".into(), gauges.running));
        out.push(("reloads/ok".into(), Self::get(&self.reloads_ok)));
        out.push(("reloads/failed".into(), Self::get(&self.reloads_failed)));
        out.push(("last_load".into(), Self::get(&self.last_load)));
        out.push(("policy/password_users".into(), gauges.policy.password_users));
        out.push(("policy/acl_users".into(), gauges.policy.acl_users));
        out.push(("policy/topic_rules".into(), gauges.policy.topic_rules));
        out.push(("policy/patterns".into(), gauges.policy.patterns));
        out
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self, gauges: &Gauges) -> String {
        let mut s = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(s, "# HELP mqttguard_{name} {help}");
            let _ = writeln!(s, "# TYPE mqttguard_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(s, "mqttguard_{name}{labels} {value}");
            }
        };
        family(
            "logins_allowed_total",
            "counter",
            "Logins accepted by mqttguard.",
            &[("", Self::get(&self.logins_allowed))],
        );
        let denied: Vec<(String, u64)> = LoginDenied::ALL
            .iter()
            .map(|w| {
                (
                    format!("{{reason=\"{}\"}}", w.name()),
                    Self::get(&self.logins_denied[*w as usize]),
                )
            })
            .collect();
        let denied: Vec<(&str, u64)> = denied.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(
            "logins_denied_total",
            "counter",
            "Logins refused by mqttguard, by reason.",
            &denied,
        );
        let mut acl = Vec::new();
        for (i, name) in ACCESS_NAMES.iter().enumerate() {
            acl.push((
                format!("{{access=\"{name}\",result=\"allowed\"}}"),
                Self::get(&self.acl_allowed[i]),
            ));
            acl.push((
                format!("{{access=\"{name}\",result=\"denied\"}}"),
                Self::get(&self.acl_denied[i]),
            ));
        }
        let acl: Vec<(&str, u64)> = acl.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(
            "acl_checks_total",
            "counter",
            "ACL checks answered by mqttguard, by access and result.",
            &acl,
        );
        family(
            "credential_cache_total",
            "counter",
            "Credential cache lookups that needed a hash (miss) or not (hit).",
            &[
                ("{result=\"hit\"}", Self::get(&self.cache_hits)),
                ("{result=\"miss\"}", Self::get(&self.cache_misses)),
            ],
        );
        family(
            "verifications",
            "gauge",
            "Slow-hash verifications queued or running (Mosquitto 2.1).",
            &[
                ("{state=\"queued\"}", gauges.queued),
                ("{state=\"running\"}", gauges.running),
            ],
        );
        family(
            "reloads_total",
            "counter",
            "Policy reloads, by result.",
            &[
                ("{result=\"ok\"}", Self::get(&self.reloads_ok)),
                ("{result=\"failed\"}", Self::get(&self.reloads_failed)),
            ],
        );
        family(
            "last_load_timestamp_seconds",
            "gauge",
            "Unix time of the last successful policy load.",
            &[("", Self::get(&self.last_load))],
        );
        family(
            "policy_size",
            "gauge",
            "Size of the loaded policy.",
            &[
                ("{part=\"password_users\"}", gauges.policy.password_users),
                ("{part=\"acl_users\"}", gauges.policy.acl_users),
                ("{part=\"topic_rules\"}", gauges.policy.topic_rules),
                ("{part=\"patterns\"}", gauges.policy.patterns),
            ],
        );
        s
    }
}

/// Values read at publication time rather than counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Logins waiting in the verification queue.
    pub queued: u64,
    /// Verifications running on the workers.
    pub running: u64,
    /// The size of the policy in force.
    pub policy: PolicySize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::new();
        m.logins_allowed.fetch_add(3, Ordering::Relaxed);
        m.login_denied(LoginDenied::Throttled);
        m.acl(1, false);
        m.acl(1, false);
        m.acl(0, true);
        m.acl(9, true); // out of range: ignored
        let g = Gauges {
            queued: 2,
            running: 1,
            policy: PolicySize {
                password_users: 5,
                acl_users: 4,
                topic_rules: 10,
                patterns: 1,
            },
        };
        let text = m.prometheus(&g);
        assert!(text.contains("mqttguard_logins_allowed_total 3\n"));
        assert!(text.contains("mqttguard_logins_denied_total{reason=\"throttled\"} 1\n"));
        assert!(text.contains("mqttguard_acl_checks_total{access=\"write\",result=\"denied\"} 2\n"));
        assert!(text.contains("mqttguard_acl_checks_total{access=\"read\",result=\"allowed\"} 1\n"));
        assert!(text.contains("mqttguard_verifications{state=\"queued\"} 2\n"));
        assert!(text.contains("mqttguard_policy_size{part=\"topic_rules\"} 10\n"));
        let sys = m.sys_topics(&g);
        assert!(sys.contains(&("acl/write/denied".to_string(), 2)));
        assert!(sys.contains(&("logins/denied/throttled".to_string(), 1)));
    }
}
