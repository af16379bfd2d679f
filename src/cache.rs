//! The verified-credential cache: after a slow hash verified a username and password, the same
//! pair is accepted without hashing again until the entry expires or the user's password line
//! changes. This is what keeps repeat connects and the re-authentication of every connected
//! client on SIGHUP cheap with argon2id or many-iteration PBKDF2.
//!
//! Entries are keyed by HMAC-SHA256 under a per-process random key over an unambiguous
//! (length-prefixed) encoding of username and password: never the plaintext, and no two
//! different pairs share an encoding. Failures are never cached.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

type Key = [u8; 32];

/// Hashes a [`Key`] by its first eight bytes: keys are HMAC outputs under a secret the
/// clients never see, so they are already uniformly spread and cannot be aimed at one bucket.
/// Saves a SipHash of 32 bytes per lookup.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as one write of its bytes (no length prefix for arrays).
        let mut word = [0u8; 8];
        for (w, b) in word.iter_mut().zip(bytes) {
            *w = *b;
        }
        self.0 ^= u64::from_le_bytes(word);
    }
}

type KeyMap<V> = HashMap<Key, V, BuildHasherDefault<KeyHasher>>;

#[derive(Debug)]
struct Entry {
    /// Identifies the password-file line that verified; any change invalidates the entry.
    fingerprint: u64,
    verified_at: Instant,
    seq: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: KeyMap<Entry>,
    /// Insertion order for eviction: (key, seq); stale pairs are skipped.
    order: VecDeque<(Key, u64)>,
    next_seq: u64,
}

/// Verified username/password pairs, bound to their password line, with a TTL and a size
/// bound.
#[derive(Debug)]
pub struct CredentialCache {
    /// `None` when the system gave no randomness: then nothing is cached.
    /// HMAC-SHA256 already keyed with the per-process secret (its inner and outer pad blocks
    /// hashed once), cloned for each key: two compressions per key instead of four.
    mac: Option<Hmac<Sha256>>,
    inner: Mutex<Inner>,
}

impl Default for CredentialCache {
    fn default() -> Self {
        Self::new()
    }
}

impl CredentialCache {
    /// An empty cache with a fresh random key.
    pub fn new() -> CredentialCache {
        let mut secret = [0u8; 32];
        let mac = getrandom::getrandom(&mut secret)
            .ok()
            .and_then(|()| <Hmac<Sha256> as Mac>::new_from_slice(&secret).ok());
        secret.fill(0);
        CredentialCache {
            mac,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn key(&self, username: &str, password: &[u8]) -> Option<Key> {
        let mut mac = self.mac.clone()?;
        mac.update(&(username.len() as u64).to_le_bytes());
        mac.update(username.as_bytes());
        mac.update(&(password.len() as u64).to_le_bytes());
        mac.update(password);
        Some(mac.finalize().into_bytes().into())
    }

    /// Whether this exact pair verified against this exact password line less than `ttl` ago. `fingerprint` identifies that line
    /// ([`crate::passwd::PasswordDb::entry_fingerprint`]).
    pub fn hit(&self, username: &str, password: &[u8], fingerprint: u64, ttl: Duration) -> bool {
        self.hit_at(username, password, fingerprint, ttl, Instant::now())
    }

    /// [`CredentialCache::hit`] at a given time.
    pub fn hit_at(
        &self,
        username: &str,
        password: &[u8],
        fingerprint: u64,
        ttl: Duration,
        now: Instant,
    ) -> bool {
        if ttl.is_zero() {
            return false;
        }
        let Some(key) = self.key(username, password) else {
            return false;
        };
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        match inner.entries.get(&key) {
            Some(e)
                if e.fingerprint == fingerprint
                    && now.saturating_duration_since(e.verified_at) < ttl =>
            {
                true
            }
            Some(_) => {
                inner.entries.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Remembers a successful verification; the oldest entries go first beyond `capacity`.
    pub fn insert(&self, username: &str, password: &[u8], fingerprint: u64, capacity: usize) {
        self.insert_at(username, password, fingerprint, capacity, Instant::now());
    }

    /// [`CredentialCache::insert`] at a given time.
    pub fn insert_at(
        &self,
        username: &str,
        password: &[u8],
        fingerprint: u64,
        capacity: usize,
        now: Instant,
    ) {
        if capacity == 0 {
            return;
        }
        let Some(key) = self.key(username, password) else {
            return;
        };
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.entries.insert(
            key,
            Entry {
                fingerprint,
                verified_at: now,
                seq,
            },
        );
        inner.order.push_back((key, seq));
        while inner.entries.len() > capacity || inner.order.len() > capacity.saturating_mul(2) {
            let Some((old, old_seq)) = inner.order.pop_front() else {
                break;
            };
            if inner.entries.get(&old).is_some_and(|e| e.seq == old_seq) {
                inner.entries.remove(&old);
            }
        }
    }

    /// Remembered credentials.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.entries.len()).unwrap_or(0)
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn hit_only_for_the_same_pair_and_line() {
        let c = CredentialCache::new();
        c.insert("alice", b"pw", 7, 10);
        assert!(c.hit("alice", b"pw", 7, HOUR));
        assert!(!c.hit("alice", b"pw2", 7, HOUR));
        assert!(
            !c.hit("alic", b"epw", 7, HOUR),
            "no concatenation ambiguity"
        );
        assert!(!c.hit("alice", b"pw", 8, HOUR), "changed line invalidates");
        assert!(!c.hit("alice", b"pw", 7, HOUR), "and the entry is gone");
    }

    #[test]
    fn expiry_and_capacity() {
        let c = CredentialCache::new();
        let t0 = Instant::now();
        c.insert_at("a", b"1", 1, 2, t0);
        assert!(c.hit_at("a", b"1", 1, HOUR, t0 + Duration::from_secs(10)));
        assert!(!c.hit_at(
            "a",
            b"1",
            1,
            Duration::from_secs(5),
            t0 + Duration::from_secs(10)
        ));
        assert!(!c.hit_at("a", b"1", 1, Duration::ZERO, t0));
        c.insert_at("a", b"1", 1, 2, t0);
        c.insert_at("b", b"1", 1, 2, t0);
        c.insert_at("c", b"1", 1, 2, t0);
        assert_eq!(c.len(), 2);
        assert!(!c.hit_at("a", b"1", 1, HOUR, t0));
        assert!(c.hit_at("c", b"1", 1, HOUR, t0));
        c.insert("d", b"1", 1, 0);
        assert!(!c.hit("d", b"1", 1, HOUR));
    }
}
