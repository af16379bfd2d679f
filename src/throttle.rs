//! Login throttling: after repeated failed logins, attempts are refused without hashing for a
//! growing backoff.
//!
//! Two tables, one rule: failures are counted per (username, client address), so a guesser
//! is slowed down without locking the real user out (who connects from another address), and
//! per client address alone with a higher threshold, so spraying many usernames from one
//! address is slowed too. A success clears the (username, address) entry. Keys are keyed
//! SipHash digests, so a 64 KB username costs 8 bytes of memory, and each table is bounded:
//! when it is full of live entries, new keys are not tracked (they are still verified).
//!
//! Called from basic auth only (not the ACL hot path); a mutex is enough. While no failure is
//! remembered (the usual state), a check and a success cost a lock and no digest.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};

use crate::cache::Prehashed;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Throttling settings (`[auth]` in the TOML).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Consecutive failures for one username from one address before backoff starts; 0 = off.
    pub failures_per_user: u32,
    /// Failures from one address (any usernames) before backoff starts; 0 = off.
    pub failures_per_address: u32,
    /// The first backoff; each further failure doubles it.
    pub backoff: Duration,
    /// The longest backoff; also how long a quiet entry is remembered (twice this).
    pub max_backoff: Duration,
    /// Entries per table at most.
    pub max_entries: usize,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            failures_per_user: 5,
            failures_per_address: 0,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Instant,
}

#[derive(Debug, Default)]
struct Table {
    /// Keyed by SipHash digests under this process's random keys: hashed as themselves.
    entries: HashMap<u64, Entry, BuildHasherDefault<Prehashed>>,
}

impl Table {
    fn blocked(&self, key: u64, now: Instant) -> Option<Duration> {
        let entry = self.entries.get(&key)?;
        (entry.blocked_until > now).then(|| entry.blocked_until - now)
    }

    fn fail(&mut self, key: u64, threshold: u32, s: &ThrottleSettings, now: Instant) {
        if threshold == 0 {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= s.max_entries {
            let forget = s.max_backoff * 2;
            self.entries
                .retain(|_, e| now.saturating_duration_since(e.last_failure) < forget);
            if self.entries.len() >= s.max_entries {
                return;
            }
        }
        let entry = self.entries.entry(key).or_insert(Entry {
            failures: 0,
            last_failure: now,
            blocked_until: now,
        });
        // A long quiet period starts the count again.
        if now.saturating_duration_since(entry.last_failure) >= s.max_backoff * 2 {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.failures >= threshold {
            let doublings = (entry.failures - threshold).min(30);
            let backoff = s
                .backoff
                .saturating_mul(1u32 << doublings)
                .min(s.max_backoff);
            entry.blocked_until = now + backoff;
        }
    }
}

/// Why an attempt is refused without hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// Too many failures for this username from this address.
    UserAtAddress(Duration),
    /// Too many failures from this address.
    Address(Duration),
}

impl Throttled {
    /// For the denial log.
    pub fn describe(self) -> String {
        match self {
            Throttled::UserAtAddress(d) => format!(
                "throttled: repeated failures for this username from this address, {} s left",
                d.as_secs().max(1)
            ),
            Throttled::Address(d) => format!(
                "throttled: repeated failures from this address, {} s left",
                d.as_secs().max(1)
            ),
        }
    }
}

/// The failure counters of one plugin instance.
#[derive(Debug)]
pub struct Throttle {
    keys: RandomState,
    tables: Mutex<(Table, Table)>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

impl Throttle {
    /// An empty throttle, with random hash keys for its tables.
    pub fn new() -> Throttle {
        Throttle {
            keys: RandomState::new(),
            tables: Mutex::new((Table::default(), Table::default())),
        }
    }

    fn user_key(&self, username: &[u8], address: &str) -> u64 {
        self.keys
            .hash_one((username.len(), username, address.as_bytes()))
    }

    fn address_key(&self, address: &str) -> u64 {
        self.keys.hash_one((u8::MAX, address.as_bytes()))
    }

    /// `Some` if an attempt for `username` from `address` must be refused now, without hashing.
    pub fn check(
        &self,
        s: &ThrottleSettings,
        username: &[u8],
        address: &str,
        now: Instant,
    ) -> Option<Throttled> {
        if s.failures_per_user == 0 && s.failures_per_address == 0 {
            return None;
        }
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        // An empty table blocks nobody: its key need not be computed.
        if !tables.0.entries.is_empty() {
            if let Some(left) = tables.0.blocked(self.user_key(username, address), now) {
                return Some(Throttled::UserAtAddress(left));
            }
        }
        if tables.1.entries.is_empty() {
            return None;
        }
        tables
            .1
            .blocked(self.address_key(address), now)
            .map(Throttled::Address)
    }

    /// Counts a failed login.
    pub fn failed(&self, s: &ThrottleSettings, username: &[u8], address: &str, now: Instant) {
        if s.failures_per_user == 0 && s.failures_per_address == 0 {
            return;
        }
        let (user_key, address_key) = (self.user_key(username, address), self.address_key(address));
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        tables.0.fail(user_key, s.failures_per_user, s, now);
        tables.1.fail(address_key, s.failures_per_address, s, now);
    }

    /// A successful login clears that username's failures from that address.
    pub fn succeeded(&self, username: &[u8], address: &str) {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if tables.0.entries.is_empty() {
            return;
        }
        let key = self.user_key(username, address);
        tables.0.entries.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ThrottleSettings {
        ThrottleSettings {
            failures_per_user: 3,
            failures_per_address: 10,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            max_entries: 4,
        }
    }

    #[test]
    fn backs_off_per_user_and_address_and_doubles() {
        let s = ThrottleSettings {
            failures_per_address: 0,
            ..settings()
        };
        let t = Throttle::new();
        let t0 = Instant::now();
        for _ in 0..2 {
            t.failed(&s, b"admin", "10.0.0.1", t0);
        }
        assert_eq!(t.check(&s, b"admin", "10.0.0.1", t0), None);
        t.failed(&s, b"admin", "10.0.0.1", t0);
        assert!(matches!(
            t.check(&s, b"admin", "10.0.0.1", t0),
            Some(Throttled::UserAtAddress(_))
        ));
        // Other address, other user: not affected.
        assert_eq!(t.check(&s, b"admin", "10.0.0.2", t0), None);
        assert_eq!(t.check(&s, b"bob", "10.0.0.1", t0), None);
        // After the first backoff one attempt goes through; its failure doubles the wait.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(t.check(&s, b"admin", "10.0.0.1", t1), None);
        t.failed(&s, b"admin", "10.0.0.1", t1);
        assert!(t
            .check(&s, b"admin", "10.0.0.1", t1 + Duration::from_millis(1500))
            .is_some());
        assert_eq!(
            t.check(&s, b"admin", "10.0.0.1", t1 + Duration::from_secs(2)),
            None
        );
        // Capped at max_backoff.
        let mut now = t1;
        for _ in 0..20 {
            t.failed(&s, b"admin", "10.0.0.1", now);
            now += Duration::from_millis(1);
        }
        assert_eq!(
            t.check(&s, b"admin", "10.0.0.1", now + Duration::from_secs(8)),
            None
        );
        // A success clears it.
        t.succeeded(b"admin", "10.0.0.1");
        assert_eq!(t.check(&s, b"admin", "10.0.0.1", now), None);
    }

    #[test]
    fn address_threshold_catches_spraying() {
        let s = settings();
        let t = Throttle::new();
        let now = Instant::now();
        for n in 0..10u8 {
            t.failed(&s, &[b'u', n], "10.0.0.9", now);
        }
        assert!(matches!(
            t.check(&s, b"fresh", "10.0.0.9", now),
            Some(Throttled::Address(_))
        ));
        assert_eq!(t.check(&s, b"fresh", "10.0.0.8", now), None);
    }

    #[test]
    fn each_table_blocks_while_the_other_is_empty() {
        // Only the address table counts: the user table stays empty and is skipped.
        let s = ThrottleSettings {
            failures_per_user: 0,
            failures_per_address: 2,
            ..settings()
        };
        let t = Throttle::new();
        let now = Instant::now();
        assert_eq!(t.check(&s, b"a", "10.0.0.1", now), None);
        t.failed(&s, b"a", "10.0.0.1", now);
        t.failed(&s, b"b", "10.0.0.1", now);
        assert!(t.tables.lock().unwrap().0.entries.is_empty());
        assert!(matches!(
            t.check(&s, b"c", "10.0.0.1", now),
            Some(Throttled::Address(_))
        ));
        // A success with an empty user table leaves the address count alone.
        t.succeeded(b"c", "10.0.0.1");
        assert!(t.check(&s, b"c", "10.0.0.1", now).is_some());
        // Only the user table counts: the address table stays empty and is skipped.
        let s = ThrottleSettings {
            failures_per_user: 2,
            failures_per_address: 0,
            ..settings()
        };
        let t = Throttle::new();
        t.failed(&s, b"a", "10.0.0.1", now);
        t.failed(&s, b"a", "10.0.0.1", now);
        assert!(t.tables.lock().unwrap().1.entries.is_empty());
        assert!(matches!(
            t.check(&s, b"a", "10.0.0.1", now),
            Some(Throttled::UserAtAddress(_))
        ));
        assert_eq!(t.check(&s, b"b", "10.0.0.1", now), None);
        t.succeeded(b"a", "10.0.0.1");
        assert_eq!(t.check(&s, b"a", "10.0.0.1", now), None);
    }

    #[test]
    fn bounded_and_off() {
        let s = settings();
        let t = Throttle::new();
        let now = Instant::now();
        for n in 0..100u32 {
            for _ in 0..3 {
                t.failed(&s, &n.to_le_bytes(), "a", now);
            }
        }
        let tables = t.tables.lock().unwrap();
        assert!(tables.0.entries.len() <= 4 && tables.1.entries.len() <= 4);
        drop(tables);
        let off = ThrottleSettings {
            failures_per_user: 0,
            failures_per_address: 0,
            ..s
        };
        for _ in 0..10 {
            t.failed(&off, b"x", "b", now);
        }
        assert_eq!(t.check(&off, b"x", "b", now), None);
    }
}
