//! A memo of recent READ/WRITE allows, in front of [`Policy::decide`].
//!
//! The broker asks the same questions over and over: every message on a topic is checked as a
//! WRITE for its publisher and as a READ for each subscriber, and a device publishes to the
//! same few topics all its life. The memo remembers recent allows in a fixed table, so a
//! repeated question costs one hash and one comparison of its bytes instead of checking them,
//! looking the user up and walking the rules.
//!
//! What makes this safe:
//! - A [`Question`] is the raw bytes the broker gave: the username (absent and empty told
//!   apart), the client id when the policy can use it (`pattern` rules), the topic, and the
//!   access. Every check the plugin makes before deciding (UTF-8, topic name) and the decision
//!   itself are functions of exactly those bytes and the policy. An entry answers only a
//!   question equal to it word for word; the hash only picks the slot.
//! - Only allows are remembered, and only after the full check allowed them ([`Memo::remember`]
//!   is given that very question). A denial is always decided (and logged) afresh.
//! - Every entry carries the generation of the policy that allowed it; an entry of another
//!   generation is never used. A reload therefore forgets everything at once.
//! - Questions whose key does not fit an entry ([`KEY_WORDS`] words of eight bytes) and SUBSCRIBE/UNSUBSCRIBE
//!   are never remembered.
//! - The table is allocated once and never grows: a client asking endless new questions only
//!   evicts entries, and its questions are then decided as without the memo.

use crate::acl::Access;

/// Entries in the table (a power of two): 1.4 MB of address space, of which only the pages
/// that entries land on become resident. Room for the questions of a fan-out to some
/// thousands of subscribers (each subscriber's READ of a topic is one question).
const SLOTS: usize = 16384;
/// Words in an entry's key: username, client id (when used) and topic, each taking
/// `len.div_ceil(8)` words; a longer question is not remembered.
const KEY_WORDS: usize = 8;

/// One question to the ACL check, as the broker's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// The username; `None` when the client has none.
    pub username: Option<&'a [u8]>,
    /// The client id, only when the policy can use it (otherwise `None`).
    pub id: Option<&'a [u8]>,
    /// The topic.
    pub topic: &'a [u8],
    /// The access.
    pub access: Access,
}

impl Question<'_> {
    /// The access, and each part's length (plus one for the username and the id, so that an
    /// absent part differs from an empty one): with the key words, the whole question. Only
    /// made for questions whose parts are under 64 bytes each (they fit the key), so every
    /// length fits its eight bits.
    #[inline(always)]
    fn shape(&self) -> u64 {
        (self.access as u64)
            | (self.username.map_or(0, |u| u.len() as u64 + 1) << 8)
            | (self.id.map_or(0, |i| i.len() as u64 + 1) << 16)
            | ((self.topic.len() as u64) << 24)
    }

    /// Calls `f` with the question's key words in order: each part (username, id, topic) as
    /// `len.div_ceil(8)` words of eight bytes, the last zero-padded (the part's final eight
    /// bytes shifted down when it is that long: one load).
    #[inline(always)]
    fn words(&self, mut f: impl FnMut(u64)) {
        for part in [
            self.username.unwrap_or_default(),
            self.id.unwrap_or_default(),
            self.topic,
        ] {
            let mut rest = part;
            while let Some((w, tail)) = rest.split_first_chunk::<8>() {
                f(u64::from_le_bytes(*w));
                rest = tail;
            }
            if !rest.is_empty() {
                f(last_word(part, rest.len()));
            }
        }
    }
}

/// One entry, as words (so that a new table is zeroed memory the system hands out lazily):
/// the key's hash with the low bit set (0 for an empty entry), the generation of the policy
/// that allowed, the shape (see [`Probe`]), then the question's words ([`Question::words`]),
/// zero after the last.
type Entry = [u64; 3 + KEY_WORDS];

/// The memo: one per plugin instance, used by one thread at a time.
pub struct Memo {
    entries: Box<[Entry]>,
}

impl Default for Memo {
    fn default() -> Self {
        Memo::new()
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self.entries.iter().filter(|e| e[0] != 0).count();
        write!(f, "Memo({used} of {SLOTS} entries used)")
    }
}

/// The last `n` bytes of `part` (1 to 8 of them) as one word, zero-padded: the final eight
/// bytes loaded at once and shifted down when the part is that long; a shorter part is all
/// of its last `n` bytes, gathered.
#[inline(always)]
fn last_word(part: &[u8], n: usize) -> u64 {
    match part.last_chunk::<8>() {
        Some(last) => u64::from_le_bytes(*last) >> (8 * (8 - n)),
        None => crate::topic::short_word(part),
    }
}

/// Up to 16 bytes as two words, zero-padded: the words [`Question::words`] makes of them.
#[inline(always)]
fn two_words(b: &[u8]) -> (u64, u64) {
    match b.first_chunk::<8>() {
        Some(first) if b.len() > 8 => (u64::from_le_bytes(*first), last_word(b, b.len() - 8)),
        Some(first) => (u64::from_le_bytes(*first), 0),
        None => (crate::topic::short_word(b), 0),
    }
}

/// FxHash-style mixing of one word.
#[inline(always)]
fn mix(h: u64, w: u64) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    (h.rotate_left(5) ^ w).wrapping_mul(K)
}

/// A question made into an entry's key ([`Probe::new`]).
#[derive(Debug, Clone, Copy)]
struct Probe {
    generation: u64,
    /// Access, and each part's length (plus one for the username and the id, so that an
    /// absent part differs from an empty one). With the words, it is the whole question.
    shape: u64,
    /// The question's words ([`Question::words`]), zero after the last.
    words: [u64; KEY_WORDS],
    /// The hash of shape and words, with the low bit set; 0 when the question is never
    /// remembered (too long, or not READ/WRITE).
    hash: u64,
}

impl Probe {
    /// The probe of `q` for the policy of `generation` (the caller changes it whenever the
    /// policy changes).
    #[inline(always)]
    fn new(generation: u64, q: &Question<'_>) -> Probe {
        Probe::usual(generation, q).unwrap_or_else(|| Probe::general(generation, q))
    }

    /// The usual question: a username and a client id (when asked) of up to 16 bytes and a
    /// topic of up to 32, keyed without loops, each part at a fixed place (two words, two
    /// words, four words), zero-padded. `None` for any other question. Which way a question
    /// takes depends only on its shape, so two questions with one shape are always keyed the
    /// same way.
    #[inline(always)]
    fn usual(generation: u64, q: &Question<'_>) -> Option<Probe> {
        let (Some(name), id, t) = (q.username, q.id, q.topic) else {
            return None;
        };
        if !(1..=16).contains(&name.len())
            || id.is_some_and(|i| i.len() > 16)
            || t.len() > 32
            || !matches!(q.access, Access::Read | Access::Write)
        {
            return None;
        }
        let shape = q.shape();
        let (u0, u1) = two_words(name);
        let (i0, i1) = match id {
            Some(id) => two_words(id),
            None => (0, 0),
        };
        let (t0, t1, t2, t3) = match t.get(16..) {
            Some(rest) if !rest.is_empty() => {
                let (t0, t1) = two_words(t.get(..16).unwrap_or(t));
                let (t2, t3) = two_words(rest);
                (t0, t1, t2, t3)
            }
            _ => {
                let (t0, t1) = two_words(t);
                (t0, t1, 0, 0)
            }
        };
        let h = mix(shape ^ u0, u1 ^ i0.rotate_left(17) ^ i1.rotate_left(41));
        let hash = mix(mix(h, t0 ^ t2.rotate_left(29)), t1 ^ t3.rotate_left(29)) | 1;
        Some(Probe {
            generation,
            shape,
            words: [u0, u1, i0, i1, t0, t1, t2, t3],
            hash,
        })
    }

    /// Any other question: each part as `len.div_ceil(8)` words ([`Question::words`]), one
    /// after the other; hash 0 (never remembered) when they do not fit or the access is not
    /// READ/WRITE.
    #[inline(never)]
    fn general(generation: u64, q: &Question<'_>) -> Probe {
        let mut probe = Probe {
            generation,
            shape: 0,
            words: [0; KEY_WORDS],
            hash: 0,
        };
        let user = q.username.map_or(0, <[u8]>::len);
        let id = q.id.map_or(0, <[u8]>::len);
        let t = q.topic.len();
        if user.div_ceil(8) + id.div_ceil(8) + t.div_ceil(8) > KEY_WORDS
            || !matches!(q.access, Access::Read | Access::Write)
        {
            return probe;
        }
        probe.shape = q.shape();
        let mut hash = mix(0, probe.shape);
        let mut at = 0usize;
        q.words(|w| {
            probe.words[at % KEY_WORDS] = w;
            at += 1;
            hash = mix(hash, w);
        });
        probe.hash = hash | 1;
        probe
    }

    fn slot(&self) -> usize {
        (self.hash >> 32) as usize & (SLOTS - 1)
    }
}

impl Memo {
    /// An empty memo (the one allocation it ever makes; zeroed memory).
    pub fn new() -> Memo {
        Memo {
            entries: vec![[0; 3 + KEY_WORDS]; SLOTS].into_boxed_slice(),
        }
    }

    /// Whether the policy of `generation` (the caller changes it whenever the policy changes)
    /// allowed this very question before.
    #[inline(always)]
    pub fn knows(&self, generation: u64, q: &Question<'_>) -> bool {
        // Compared on each way separately, so that the usual probe stays in registers.
        match Probe::usual(generation, q) {
            Some(probe) => self.holds(&probe),
            None => self.holds(&Probe::general(generation, q)),
        }
    }

    /// Whether the entry the probe picks holds exactly it.
    #[inline(always)]
    fn holds(&self, probe: &Probe) -> bool {
        let Some(e) = self.entries.get(probe.slot()) else {
            return false;
        };
        // Every word, unused ones included (zero on both sides).
        let mut diff = (e[0] ^ probe.hash) | (e[1] ^ probe.generation) | (e[2] ^ probe.shape);
        for (a, b) in e[3..].iter().zip(&probe.words) {
            diff |= a ^ b;
        }
        diff == 0 && probe.hash != 0
    }

    /// Remembers that the policy of `generation` allowed the question `q`. Call it only after
    /// an allow.
    pub fn remember(&mut self, generation: u64, q: &Question<'_>) {
        let probe = Probe::new(generation, q);
        if probe.hash == 0 {
            return;
        }
        if let Some(e) = self.entries.get_mut(probe.slot()) {
            e[0] = probe.hash;
            e[1] = probe.generation;
            e[2] = probe.shape;
            e[3..].copy_from_slice(&probe.words);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{Client, Topic};
    use crate::policy::{Options, Policy};

    fn policy(dir: &std::path::Path, acl: &str) -> Policy {
        std::fs::create_dir_all(dir).expect("dir");
        std::fs::write(dir.join("acl"), acl).expect("acl");
        Policy::load(&Options {
            acl_file: Some(dir.join("acl")),
            ..Options::default()
        })
        .expect("loads")
    }

    /// The plugin's use of the memo, with the policy's own decision beside it: recall, and on
    /// a miss decide and remember an allow.
    fn ask(memo: &mut Memo, generation: u64, p: &Policy, q: Question<'_>) -> bool {
        fn utf8(b: &[u8]) -> Result<&str, ()> {
            std::str::from_utf8(b).map_err(|_| ())
        }
        let decide = || {
            let (Ok(username), Ok(id), Ok(topic)) = (
                q.username.map(utf8).transpose(),
                q.id.map(utf8).transpose(),
                utf8(q.topic),
            ) else {
                return false;
            };
            p.decide(&Client { id, username }, Topic::new(topic), q.access)
                .is_some_and(|d| d.allowed)
        };
        let fresh = decide();
        let remembered = memo.knows(generation, &q) || {
            let allowed = decide();
            if allowed {
                memo.remember(generation, &q);
            }
            allowed
        };
        assert_eq!(remembered, fresh, "{q:?}");
        remembered
    }

    /// Two different questions never make the same key (shape and words), whichever way the
    /// probe is made (the fixed places of the usual question, or one part after the other):
    /// every length of username, id and topic around the word boundaries and the limits of
    /// the usual question, with bytes that differ only at one end.
    #[test]
    fn different_questions_have_different_keys() {
        let mut seen = std::collections::HashMap::new();
        let text = |n: usize, salt: u8| -> Vec<u8> {
            (0..n)
                .map(|i| b'a' + ((i as u8).wrapping_mul(7) ^ salt) % 26)
                .collect()
        };
        let lens = [0, 1, 3, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 40];
        // The base question of a shape, and each question that differs from it in one byte.
        let variants = |u: Option<usize>, i: Option<usize>, t: usize| {
            let base = (u.map(|n| text(n, 0)), i.map(|n| text(n, 3)), text(t, 1));
            let mut all = vec![base.clone()];
            for at in 0..u.unwrap_or(0) {
                let mut v = base.clone();
                if let Some(b) = v.0.as_mut() {
                    b[at] ^= 0x20;
                }
                all.push(v);
            }
            for at in 0..i.unwrap_or(0) {
                let mut v = base.clone();
                if let Some(b) = v.1.as_mut() {
                    b[at] ^= 0x20;
                }
                all.push(v);
            }
            for at in 0..t {
                let mut v = base.clone();
                v.2[at] ^= 0x20;
                all.push(v);
            }
            all
        };
        for ulen in lens.iter().take(10).copied().map(Some).chain([None]) {
            for ilen in [None, Some(0), Some(3), Some(9), Some(16), Some(17)] {
                for tlen in lens {
                    for (user, id, topic) in variants(ulen, ilen, tlen) {
                        for access in [Access::Read, Access::Write] {
                            let q = Question {
                                username: user.as_deref(),
                                id: id.as_deref(),
                                topic: &topic,
                                access,
                            };
                            let probe = Probe::new(7, &q);
                            if probe.hash == 0 {
                                continue;
                            }
                            let key = (probe.shape, probe.words);
                            let question = (user.clone(), id.clone(), topic.clone(), access);
                            if let Some(other) = seen.insert(key, question.clone()) {
                                assert_eq!(other, question, "two questions, one key");
                            }
                        }
                    }
                }
            }
        }
        assert!(seen.len() > 1000);
    }

    /// Every answer through the memo equals the policy's own, over questions that repeat, that
    /// differ only in where the username ends and the topic begins, in an absent versus an
    /// empty username or id, in access, in bytes that are not UTF-8, and across a change of
    /// policy (generation).
    #[test]
    fn the_memo_answers_as_the_policy_does() {
        let dir = std::env::temp_dir().join(format!("mqttguard-memo-{}", std::process::id()));
        let a = policy(
            &dir.join("a"),
            "topic read pub/#\nuser ab\ntopic write c/d\ntopic read x\nuser a\ntopic write bc/d\n\
             pattern write %c/%u/+\npattern deny %u/secret\n",
        );
        let b = policy(&dir.join("b"), "user a\ntopic readwrite #\n");
        let users: [Option<&[u8]>; 7] = [
            None,
            Some(b""),
            Some(b"a"),
            Some(b"ab"),
            Some(b"abc"),
            Some(b"a\xff"),
            Some(b"abcdefgh"),
        ];
        let ids: [Option<&[u8]>; 4] = [None, Some(b"c"), Some(b"cd"), Some(b"a")];
        let topics: [&[u8]; 15] = [
            b"c/d",
            b"bc/d",
            b"x",
            b"pub/1",
            b"a/secret",
            b"c/a/1",
            b"cd/ab/z",
            b"a",
            b"ab",
            b"$x",
            b"a/+",
            b"",
            b"pub/\xc3",
            b"abcdefgh/ijklmnop/q",
            b"verylongtopic/that/goes/on/past/the/memo/key/limit/of/seven/words",
        ];
        let mut memo = Memo::new();
        let mut hits = 0;
        for round in 0..3u64 {
            for (generation, p) in [(1, &a), (2, &b), (1, &a)] {
                for username in users {
                    for id in ids {
                        for topic in topics {
                            for access in [Access::Read, Access::Write, Access::Subscribe] {
                                let q = Question {
                                    username,
                                    id,
                                    topic,
                                    access,
                                };
                                let g = generation + round * 10;
                                if memo.knows(g, &q) {
                                    hits += 1;
                                }
                                ask(&mut memo, g, p, q);
                            }
                        }
                    }
                }
            }
        }
        // Each round asks policy a twice: the second time its allows come from the memo.
        assert!(hits > 20, "the memo answered {hits} questions");
    }
}
