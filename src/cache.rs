//! The verified-credential cache: after a slow hash verified a username and password, the same
//! pair is accepted without hashing again until the entry expires or the user's password line
//! changes. This is what keeps repeat connects and the re-authentication of every connected
//! client on SIGHUP cheap with argon2id or many-iteration PBKDF2.
//!
//! Entries are keyed by a 128-bit keyed hash (SipHash-2-4 with 128-bit output)
//! under a per-process random key, over an unambiguous (length-prefixed) encoding of username
//! and password: never the plaintext, and no two different pairs share an encoding. Failures
//! are never cached.
//!
//! Why a keyed SipHash is enough here (it replaced HMAC-SHA256, which cost ~15 times more per
//! connect): the cache key is never a public value. It is computed from a secret key drawn
//! from the system's randomness when the cache is made, which never leaves this process's
//! memory, and the cache keys themselves are never logged, written or sent. What the cache
//! must guarantee is that a password not verified for a user is never accepted: that needs
//! an attacker, who sees neither the secret key nor any output, to find a (username, password)
//! whose 128-bit output equals that of a remembered pair (with the same password line). For a
//! PRF under an unknown key — what SipHash is designed and analysed to be — each online guess
//! succeeds with probability at most (remembered entries) / 2^128, and every guess that misses
//! the cache is verified against the real hash and counted by the throttle. Collision-
//! resistance (what an unkeyed hash would need) is not required: collisions are useless
//! without the key. A memory disclosure that reveals the secret key would also reveal the
//! process's memory, in which clients' passwords pass anyway; the cache stores no password,
//! and recovering one from an entry still needs a guess per candidate, as with the hash file.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use siphasher::sip128::Hasher128;
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Key = [u8; 16];

/// SipHash-2-4 with 128-bit output, from the `siphasher` crate.
type Sip128 = siphasher::sip128::SipHasher24;

/// Hashes a table key as itself, for keys that are already keyed-hash outputs under a secret
/// the clients never see (this cache's [`Key`]s, the throttle's digests): they are uniformly
/// spread and cannot be aimed at one bucket, so a second SipHash per lookup would buy nothing.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 16]` key hashes as one write of its bytes (no length prefix for arrays).
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

type KeyMap<V> = HashMap<Key, V, BuildHasherDefault<Prehashed>>;

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
pub struct CredentialCache {
    /// The hash already keyed with the per-process secret, cloned for each key; `None` when
    /// the system gave no randomness: then nothing is cached.
    keyed: Option<Sip128>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for CredentialCache {
    /// Never the secret key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache").finish_non_exhaustive()
    }
}

impl Default for CredentialCache {
    fn default() -> Self {
        Self::new()
    }
}

impl CredentialCache {
    /// An empty cache with a fresh random key.
    pub fn new() -> CredentialCache {
        let mut secret = [0u8; 16];
        let keyed = getrandom::getrandom(&mut secret).ok().map(|()| {
            let (k0, k1) = secret.split_at(8);
            let word = |k: &[u8]| {
                let mut w = [0u8; 8];
                w.copy_from_slice(k);
                u64::from_le_bytes(w)
            };
            Sip128::new_with_keys(word(k0), word(k1))
        });
        secret.fill(0);
        CredentialCache {
            keyed,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn key(&self, username: &str, password: &[u8]) -> Option<Key> {
        // Both lengths first, in one word (MQTT strings are at most 65,535 bytes; longer
        // ones are simply not cached), then the username and the password: the lengths fix
        // where one ends, so no two pairs are encoded alike.
        let (Ok(u), Ok(p)) = (u32::try_from(username.len()), u32::try_from(password.len())) else {
            return None;
        };
        let mut h = self.keyed?;
        h.write(&(u64::from(u) | (u64::from(p) << 32)).to_le_bytes());
        h.write(username.as_bytes());
        h.write(password);
        Some(h.finish128().as_bytes())
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

    fn hex(s: &str) -> Key {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// The reference key 00 01 .. 0f.
    fn reference() -> Sip128 {
        Sip128::new_with_keys(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908)
    }

    #[test]
    fn sip128_matches_the_reference_vectors() {
        // `vectors_sip128` of the SipHash reference implementation: the key 00 01 .. 0f over
        // the messages 00 01 .. (len - 1).
        let message: Vec<u8> = (0..64).collect();
        for (len, expected) in [
            (0, "a3817f04ba25a8e66df67214c7550293"),
            (1, "da87c1d86b99af44347659119b22fc45"),
            (7, "a1f1ebbed8dbc153c0b84aa61ff08239"),
            (8, "3b62a9ba6258f5610f83e264f31497b4"),
            (9, "264499060ad9baabc47f8b02bb6d71ed"),
            (15, "5493e99933b0a8117e08ec0f97cfc3d9"),
            (16, "6ee2a4ca67b054bbfd3315bf85230577"),
            (63, "5150d1772f50834a503e069a973fbd7c"),
        ] {
            let mut h = reference();
            h.write(&message[..len]);
            assert_eq!(h.finish128().as_bytes(), hex(expected), "length {len}");
            // Fed in pieces that cross word boundaries: the same output.
            for split in [1, 3, 8, 11] {
                let mut h = reference();
                for piece in message[..len].chunks(split) {
                    h.write(piece);
                }
                assert_eq!(
                    h.finish128().as_bytes(),
                    hex(expected),
                    "length {len} in pieces of {split}"
                );
            }
        }
    }

    #[test]
    fn keys_differ_between_caches() {
        // Each cache draws its own secret: the same pair has another key in another process.
        let (a, b) = (CredentialCache::new(), CredentialCache::new());
        assert_ne!(a.key("alice", b"pw"), b.key("alice", b"pw"));
        assert_eq!(a.key("alice", b"pw"), a.key("alice", b"pw"));
        assert_ne!(a.key("alice", b"pw"), a.key("alice", b"pw\0"));
    }

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
