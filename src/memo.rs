//! A memo of recent READ/WRITE allows, in front of [`Policy::decide`](crate::policy::Policy::decide).
//!
//! The broker asks the same questions over and over: every message on a topic is checked as a
//! WRITE for its publisher and as a READ for each subscriber, and a device publishes to the
//! same few topics all its life. The memo remembers recent allows in a fixed table, so a
//! repeated question costs one pass over its bytes and one comparison instead of checking
//! them, looking the user up and walking the rules.
//!
//! What makes this safe:
//! - A [`Question`] is the raw bytes the broker gave: the username (absent and empty told
//!   apart), the topic, and the access. Every check the plugin makes before deciding (UTF-8,
//!   topic name) and the decision itself are functions of exactly those bytes, the client id
//!   and the policy. An entry answers only a question equal to it word for word (its key: the
//!   shape, with every part's length, and the words, which hold every byte); the hash only
//!   picks the slot.
//! - The client id: an allow that read it (the `pattern` phase ran:
//!   [`Decision::read_client_id`](crate::acl::Decision)) is remembered with the id's bytes
//!   and answers for that id alone; one that did not (the user's own rules, the anonymous
//!   rules, a superuser) holds for every id and is remembered as such ([`ClientId`]). The id
//!   is read only when an entry needs it.
//! - Only allows are remembered, and only after the full check allowed them ([`Memo::remember`]
//!   is given that very question). A denial is always decided (and logged) afresh.
//! - Every entry carries the memo's epoch; [`Memo::forget_all`] moves to a new one, so its
//!   owner forgets everything at once whenever the policy changes. When the epoch counter
//!   wraps, the table is cleared, so an entry of an old epoch can never answer.
//! - Questions whose key does not fit an entry (sixteen words of eight bytes) and
//!   SUBSCRIBE/UNSUBSCRIBE are never remembered.
//! - The table is allocated once and never grows: a client asking endless new questions only
//!   evicts entries, and its questions are then decided as without the memo.

use std::ffi::CStr;

use crate::acl::Access;

/// log2 of the entries in the table.
const SLOT_BITS: u32 = 14;
/// Entries in the table: 2 MiB of address space, of which only the pages that entries land
/// on become resident. Room for the questions of a fan-out to some thousands of subscribers
/// (each subscriber's READ of a topic is one question).
const SLOTS: usize = 1 << SLOT_BITS;
/// An entry's words (128 bytes): the shape, the question's words, the id tag and the id's
/// words; a question and id with more are not remembered.
const ENTRY_WORDS: usize = 16;
/// Where the usual question's id tag is: after the shape, two words of username and four of
/// topic.
const USUAL_TAG: usize = 7;
/// The usual question, keyed at fixed places without loops: a username of up to
/// [`USUAL_NAME`] bytes and a topic of up to [`USUAL_TOPIC`], each counted with its NUL.
const USUAL_NAME: usize = 16;
/// See [`USUAL_NAME`].
const USUAL_TOPIC: usize = 32;
/// The id tag of an entry whose allow did not read the client id: it answers for every id.
const ANY_ID: u64 = 0;

/// One question to the ACL check, as the broker's strings. The client id is not part of it:
/// it is read only when an entry says the allow depended on it ([`ClientId`]).
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// The username; `None` when the client has none.
    pub username: Option<&'a CStr>,
    /// The topic.
    pub topic: &'a CStr,
    /// The access.
    pub access: Access,
}

/// What an allow read of the client id ([`Decision::read_client_id`](crate::acl::Decision)).
#[derive(Debug, Clone, Copy)]
pub enum ClientId<'a> {
    /// Nothing: the allow holds for every client id.
    Unread,
    /// The id (absent or not): the allow holds for this very id only.
    Read(Option<&'a CStr>),
}

/// A question made into an entry's key: its shape and its words.
///
/// A part is read with its NUL (so that a short part takes fewer reads): its bytes then
/// number its length plus one, and an absent username has none. The shape holds the access,
/// the username's and the topic's numbers of bytes so counted and the memo's epoch (never 0,
/// so neither is a shape: an empty entry's shape is 0). The words hold every byte of the
/// username and the topic, at places that depend only on those numbers; so, given the shape,
/// different bytes make different words, and a key is the whole question. Two layouts,
/// chosen by the numbers alone (so two questions of one shape always share one):
/// - the usual question (username of up to 16 bytes, topic of up to 32, with their NULs):
///   two words for the username, four for the topic ([`places`]), zero where a part is
///   shorter or absent;
/// - any other: each part as `bytes.div_ceil(8)` words in turn ([`words_of`]).
///
/// After the words comes the id tag: [`ANY_ID`], or the id's number of bytes plus one (an
/// absent id 1) followed by the id's words ([`words_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    shape: u64,
    /// The words, then (in an entry) the id tag and the id's words.
    words: [u64; ENTRY_WORDS - 1],
    /// How many of `words` the question's own are.
    len: usize,
}

/// A part's bytes with its NUL; none for an absent part.
#[inline(always)]
fn bytes(part: Option<&CStr>) -> &[u8] {
    part.map_or(&[], CStr::to_bytes_with_nul)
}

/// Eight bytes of `part` from `at` (a place [`places`] gave: always in the part), as a word.
#[inline(always)]
fn window(part: &[u8], at: usize) -> u64 {
    part.get(at..)
        .and_then(<[u8]>::first_chunk::<8>)
        .map_or(0, |w| u64::from_le_bytes(*w))
}

/// Up to seven bytes as one word, each byte read (two overlapping reads of four or of two):
/// given the number of bytes, different bytes make a different word.
#[inline(always)]
fn small(part: &[u8]) -> u64 {
    let n = part.len();
    if n >= 4 {
        let lo = part
            .first_chunk::<4>()
            .map_or(0, |w| u32::from_le_bytes(*w));
        let hi = part.last_chunk::<4>().map_or(0, |w| u32::from_le_bytes(*w));
        u64::from(lo) | (u64::from(hi) << 32)
    } else if n >= 2 {
        let lo = part
            .first_chunk::<2>()
            .map_or(0, |w| u16::from_le_bytes(*w));
        let hi = part.last_chunk::<2>().map_or(0, |w| u16::from_le_bytes(*w));
        u64::from(lo) | (u64::from(hi) << 16)
    } else {
        part.first().map_or(0, |&b| u64::from(b))
    }
}

/// The first `N` words of a part at fixed places: for a part of at least eight bytes, the
/// eight-byte windows at 0, 8, 16, ..., none past the final eight bytes (the last windows
/// overlap, and cover every byte when the part has at most `8 * N`); a shorter part is one
/// word ([`small`]), then zeros.
#[inline(always)]
fn places<const N: usize>(part: &[u8]) -> [u64; N] {
    let mut words = [0; N];
    match part.len().checked_sub(8) {
        Some(last) => {
            for (k, w) in words.iter_mut().enumerate() {
                *w = window(part, (8 * k).min(last));
            }
        }
        None => words[0] = small(part),
    }
    words
}

/// Calls `f` with a part's words the general way: `bytes.div_ceil(8)` of them, the
/// eight-byte windows from its start with the last one its final eight bytes (overlapping
/// the one before), or one word ([`small`]) for a part of fewer than eight bytes.
#[inline(always)]
fn words_of(part: &[u8], mut f: impl FnMut(u64)) {
    let Some(last) = part.len().checked_sub(8) else {
        if !part.is_empty() {
            f(small(part));
        }
        return;
    };
    let mut at = 0;
    while at < last {
        f(window(part, at));
        at += 8;
    }
    f(window(part, last));
}

/// Multiplies a shape so that its small fields (access, lengths) do not cancel the low
/// bytes of a word in the hash.
#[inline(always)]
fn spread(shape: u64) -> u64 {
    shape.wrapping_mul(0xff51_afd7_ed55_8ccd)
}

impl Question<'_> {
    /// The username's and the topic's numbers of bytes with their NULs (0: no username).
    #[inline(always)]
    fn lengths(&self) -> (usize, usize) {
        (
            bytes(self.username).len(),
            self.topic.to_bytes_with_nul().len(),
        )
    }

    /// The shape under the epoch's bits (see [`Key`]). Only for READ and WRITE questions
    /// whose words fit an entry ([`Question::fits`]), so every number of bytes fits its eight
    /// bits.
    #[inline(always)]
    fn shape(&self, epoch: u64) -> u64 {
        let (user, topic) = self.lengths();
        self.access as u64 | ((user as u64) << 8) | ((topic as u64) << 16) | epoch
    }

    /// Whether the question is ever remembered: READ or WRITE, with its words and the id tag
    /// fitting an entry.
    #[inline(always)]
    fn fits(&self) -> bool {
        let (user, topic) = self.lengths();
        user.div_ceil(8) + topic.div_ceil(8) < ENTRY_WORDS - 1
            && matches!(self.access, Access::Read | Access::Write)
    }

    /// Whether the question is keyed the usual way (see [`Key`]); only READ and WRITE are.
    #[inline(always)]
    fn is_usual(&self) -> bool {
        let (user, topic) = self.lengths();
        user <= USUAL_NAME
            && topic <= USUAL_TOPIC
            && matches!(self.access, Access::Read | Access::Write)
    }

    /// The usual question's key words with its hash.
    #[inline(always)]
    fn usual_key(&self, epoch: u64) -> (u64, [u64; 6], u64) {
        let shape = self.shape(epoch);
        let [u0, u1] = places::<2>(bytes(self.username));
        let [t0, t1, t2, t3] = places::<4>(self.topic.to_bytes_with_nul());
        // Each word multiplied by its own odd number (under 2^31: one instruction), so that a
        // byte that differs in one word does not cancel one that differs at the same place of
        // another (a user `pub` reading `sensors/pub/x` and `sub` reading `sensors/sub/x` must
        // not share a slot).
        let hash = spread(shape)
            ^ u0
            ^ u1.wrapping_mul(0x2545_f491)
            ^ t0.wrapping_mul(0x1b87_3593)
            ^ t1.wrapping_mul(0x5bd1_e995)
            ^ t2.wrapping_mul(0x27d4_eb2f)
            ^ t3.wrapping_mul(0x1656_67b1);
        (shape, [u0, u1, t0, t1, t2, t3], hash)
    }

    /// The key of the question (either layout) with its hash, or `None` when it does not fit.
    #[inline(never)]
    fn key(&self, epoch: u64) -> Option<(Key, u64)> {
        if !self.fits() {
            return None;
        }
        let mut key = Key {
            shape: self.shape(epoch),
            words: [0; ENTRY_WORDS - 1],
            len: 0,
        };
        if self.is_usual() {
            let (_, words, hash) = self.usual_key(epoch);
            key.words[..words.len()].copy_from_slice(&words);
            key.len = words.len();
            return Some((key, hash));
        }
        let mut hash = spread(key.shape);
        for part in [bytes(self.username), self.topic.to_bytes_with_nul()] {
            words_of(part, |w| {
                if let Some(slot) = key.words.get_mut(key.len) {
                    *slot = w;
                }
                key.len += 1;
                hash = hash.rotate_left(9) ^ w;
            });
        }
        Some((key, hash))
    }
}

/// The id tag of a client id (see [`Key`]).
#[inline(always)]
fn id_tag(id: Option<&CStr>) -> u64 {
    bytes(id).len() as u64 + 1
}

/// Whether an entry's id tag and words (`tail`, from the tag on) answer for the client id.
#[inline]
fn id_matches(tail: &[u64], id: Option<&CStr>) -> bool {
    let Some((&tag, words)) = tail.split_first() else {
        return false;
    };
    if tag != id_tag(id) {
        return false;
    }
    let mut at = 0;
    let mut same = true;
    words_of(bytes(id), |w| {
        same &= words.get(at) == Some(&w);
        at += 1;
    });
    same
}

/// Where the entry of a question (whose own slot's hash is `hash`) for one client id lives
/// when the question's own slot holds it for another id: the hash of both, so that the
/// clients of one question that a `pattern` allowed (one username, several client ids) do not
/// evict each other.
fn id_slot(hash: u64, id: Option<&CStr>) -> usize {
    let mut h = hash ^ spread(id_tag(id));
    words_of(bytes(id), |w| {
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
    });
    slot(h)
}

/// One entry: the key's shape (0 for an empty entry), words, id tag and id words, zero after
/// the last (an entry is always written whole).
type Entry = [u64; ENTRY_WORDS];

/// The memo: one per plugin instance, used by one thread at a time.
pub struct Memo {
    entries: Box<[Entry; SLOTS]>,
    /// The epoch of the entries that answer (never 0), in the shape's high half.
    epoch: u64,
}

impl Default for Memo {
    fn default() -> Self {
        Memo::new()
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self
            .entries
            .iter()
            .filter(|e| e[0] >> 32 == self.epoch >> 32)
            .count();
        write!(f, "Memo({used} of {SLOTS} entries used)")
    }
}

/// Where a key lives: its hash, multiplied so that every bit reaches the top ones, which
/// pick the slot.
#[inline(always)]
fn slot(hash: u64) -> usize {
    (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SLOT_BITS)) as usize
}

/// The first epoch, in the shape's high half.
const FIRST_EPOCH: u64 = 1 << 32;

impl Memo {
    /// An empty memo (the one allocation it ever makes; zeroed memory).
    pub fn new() -> Memo {
        let entries: Box<[Entry]> = vec![[0; ENTRY_WORDS]; SLOTS].into_boxed_slice();
        Memo {
            entries: entries
                .try_into()
                .unwrap_or_else(|_| unreachable!("SLOTS entries")),
            epoch: FIRST_EPOCH,
        }
    }

    /// Forgets every entry: call it whenever the policy the memo answers for changes.
    pub fn forget_all(&mut self) {
        self.epoch = self.epoch.wrapping_add(FIRST_EPOCH);
        if self.epoch == 0 {
            // Entries of every epoch but this one are ignored; before an epoch comes back,
            // none may be left.
            self.entries.fill([0; ENTRY_WORDS]);
            self.epoch = FIRST_EPOCH;
        }
    }

    /// Whether the policy in force (since the last [`Memo::forget_all`]) allowed this very
    /// question before, for the client whose id `id` reads (called only when the allow
    /// remembered read the id).
    #[inline(always)]
    pub fn knows<'i>(&self, q: &Question<'_>, id: impl FnOnce() -> Option<&'i CStr>) -> bool {
        if !q.is_usual() {
            return self.knows_general(*q, id);
        }
        // Compared here, word by word, so that the key stays in registers.
        let (shape, [u0, u1, t0, t1, t2, t3], hash) = q.usual_key(self.epoch);
        let e = &self.entries[slot(hash)];
        e[0] == shape
            && e[1] == u0
            && e[2] == u1
            && e[3] == t0
            && e[4] == t1
            && e[5] == t2
            && e[6] == t3
            && (e[USUAL_TAG] == ANY_ID || self.knows_id(e, USUAL_TAG, hash, id))
    }

    /// The question whose key is `e[..tag_at]` (its own slot's entry `e`, hash `hash`) was
    /// allowed for some client id: whether for this one, in its own slot or in the id's
    /// ([`id_slot`]). Out of line: most entries answer for every id, and the usual key's
    /// registers stay free of the id's.
    #[inline(never)]
    fn knows_id<'i>(
        &self,
        e: &Entry,
        tag_at: usize,
        hash: u64,
        id: impl FnOnce() -> Option<&'i CStr>,
    ) -> bool {
        let id = id();
        let (key, tail) = e.split_at(tag_at);
        id_matches(tail, id) || self.knows_other_id(key, hash, id)
    }

    /// [`Memo::knows_id`] in the id's slot.
    #[inline(never)]
    fn knows_other_id(&self, key: &[u64], hash: u64, id: Option<&CStr>) -> bool {
        let other = &self.entries[id_slot(hash, id)];
        let (other_key, other_tail) = other.split_at(key.len());
        other_key == key && id_matches(other_tail, id)
    }

    /// [`Memo::knows`] for a question that is not the usual one.
    #[inline(never)]
    fn knows_general<'i>(&self, q: Question<'_>, id: impl FnOnce() -> Option<&'i CStr>) -> bool {
        let Some((key, hash)) = q.key(self.epoch) else {
            return false;
        };
        let e = &self.entries[slot(hash)];
        let tag_at = 1 + key.len;
        e[0] == key.shape
            && e[1..tag_at] == key.words[..key.len]
            && e.get(tag_at)
                .is_some_and(|&tag| tag == ANY_ID || self.knows_id(e, tag_at, hash, id))
    }

    /// Remembers that the policy in force allowed the question `q`, for every client id or
    /// for one ([`ClientId`]). Call it only after an allow.
    pub fn remember(&mut self, q: &Question<'_>, id: ClientId<'_>) {
        let Some((mut key, hash)) = q.key(self.epoch) else {
            return;
        };
        let tag_at = 1 + key.len;
        let mut at = slot(hash);
        match id {
            ClientId::Unread => {
                if let Some(tag) = key.words.get_mut(key.len) {
                    *tag = ANY_ID;
                }
            }
            ClientId::Read(id) => {
                let mut next = key.len;
                let mut put = |w| {
                    if let Some(word) = key.words.get_mut(next) {
                        *word = w;
                    }
                    next += 1;
                };
                put(id_tag(id));
                words_of(bytes(id), &mut put);
                if next > key.words.len() {
                    return;
                }
                // The question's own slot holding it for another client id keeps it; this
                // id's allow goes to the id's slot.
                let own = &self.entries[at];
                if own[0] == key.shape
                    && own[1..tag_at] == key.words[..key.len]
                    && own[tag_at] != ANY_ID
                    && !id_matches(&own[tag_at..], id)
                {
                    at = id_slot(hash, id);
                }
            }
        }
        let e = &mut self.entries[at];
        e[0] = key.shape;
        e[1..].copy_from_slice(&key.words);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{Client, Topic};
    use crate::policy::{Options, Policy};
    use std::collections::HashMap;
    use std::ffi::CString;

    fn c(bytes: &[u8]) -> CString {
        CString::new(bytes).expect("no NUL")
    }

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
    /// a miss decide and remember an allow with what it read of the client id.
    fn ask(memo: &mut Memo, p: &Policy, q: Question<'_>, id: Option<&CStr>) -> bool {
        fn utf8(b: &[u8]) -> Result<&str, ()> {
            std::str::from_utf8(b).map_err(|_| ())
        }
        let decide = || {
            let (Ok(username), Ok(topic)) = (
                q.username.map(|u| utf8(u.to_bytes())).transpose(),
                utf8(q.topic.to_bytes()),
            ) else {
                return None;
            };
            // As the plugin: an id that is not UTF-8 is read as none.
            let id = id.and_then(|i| utf8(i.to_bytes()).ok());
            p.decide(&Client { id, username }, Topic::new(topic), q.access)
        };
        let fresh = decide().is_some_and(|d| d.allowed);
        let remembered = memo.knows(&q, || id) || {
            let decision = decide();
            if let Some(d) = decision.filter(|d| d.allowed) {
                let read = if d.read_client_id {
                    ClientId::Read(id)
                } else {
                    ClientId::Unread
                };
                memo.remember(&q, read);
            }
            decision.is_some_and(|d| d.allowed)
        };
        assert_eq!(remembered, fresh, "{q:?} {id:?}");
        remembered
    }

    fn text(n: usize, salt: u8) -> Vec<u8> {
        (0..n)
            .map(|i| b'a' + ((i as u8).wrapping_mul(7) ^ salt) % 26)
            .collect()
    }

    /// `base` and each text that differs from it in one byte.
    fn one_byte_off(base: &[u8]) -> Vec<Vec<u8>> {
        let mut all = vec![base.to_vec()];
        for at in 0..base.len() {
            let mut v = base.to_vec();
            v[at] ^= 0x20;
            all.push(v);
        }
        all
    }

    const LENS: [usize; 20] = [
        0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 40, 64, 65,
    ];

    /// Two different questions never make the same key (shape and words): every length of
    /// username and topic around the word boundaries, the usual layout's limits and an
    /// entry's, with bytes that differ at one place, at every place.
    #[test]
    fn different_questions_have_different_keys() {
        let mut seen = HashMap::new();
        for ulen in LENS.iter().take(12).copied().map(Some).chain([None]) {
            for tlen in LENS {
                let users: Vec<Option<Vec<u8>>> = match ulen {
                    Some(n) => one_byte_off(&text(n, 0)).into_iter().map(Some).collect(),
                    None => vec![None],
                };
                let topics = one_byte_off(&text(tlen, 1));
                for user in &users {
                    // A username that varies with the topic's base text.
                    for topic in topics.iter().take(if user.as_ref() == users[0].as_ref() {
                        usize::MAX
                    } else {
                        1
                    }) {
                        let (cu, ct) = (user.as_deref().map(c), c(topic));
                        for access in [Access::Read, Access::Write] {
                            let q = Question {
                                username: cu.as_deref(),
                                topic: &ct,
                                access,
                            };
                            let Some((key, _)) = q.key(FIRST_EPOCH) else {
                                assert!(!q.fits());
                                continue;
                            };
                            if !q.is_usual() {
                                // Each part's bytes with its NUL, in words.
                                let expected = user.as_ref().map_or(0, |u| u.len() + 1).div_ceil(8)
                                    + (topic.len() + 1).div_ceil(8);
                                assert_eq!(key.len, expected);
                            }
                            assert!(key.len < ENTRY_WORDS - 1);
                            let key = (key.shape, key.words[..key.len].to_vec());
                            let question = (user.clone(), topic.clone(), access);
                            if let Some(other) = seen.insert(key, question.clone()) {
                                assert_eq!(other, question, "two questions, one key");
                            }
                        }
                    }
                }
            }
        }
        assert!(seen.len() > 1000);
        // And the client id: two ids (or an id and none) never make the same tag and words.
        let mut ids = HashMap::new();
        let mut each = |id: Option<&[u8]>| {
            let cid = id.map(c);
            let mut words = vec![id_tag(cid.as_deref())];
            words_of(bytes(cid.as_deref()), |w| words.push(w));
            assert_ne!(words[0], ANY_ID);
            if let Some(other) = ids.insert(words, id.map(<[u8]>::to_vec)) {
                assert_eq!(other.as_deref(), id, "two ids, one key");
            }
        };
        each(None);
        for n in LENS {
            for id in one_byte_off(&text(n, 3)) {
                each(Some(&id));
            }
        }
    }

    /// Every answer through the memo equals the policy's own, over questions that repeat, that
    /// differ only in where the username ends and the topic begins, in an absent versus an
    /// empty username or id, in access, in bytes that are not UTF-8, in the client id alone
    /// (allows of the user's own rules hold for every id, those of `pattern` rules for one),
    /// and across a change of policy (the memo told to forget, as the plugin does).
    #[test]
    fn the_memo_answers_as_the_policy_does() {
        let dir = std::env::temp_dir().join(format!("mqttguard-memo-{}", std::process::id()));
        let a = policy(
            &dir.join("a"),
            "topic read pub/#\nuser ab\ntopic write c/d\ntopic read x\nuser a\ntopic write bc/d\n\
             pattern write %c/%u/+\npattern deny %u/secret\npattern read %c/in\n",
        );
        let b = policy(&dir.join("b"), "user a\ntopic readwrite #\n");
        let users: [Option<&[u8]>; 9] = [
            None,
            Some(b""),
            Some(b"a"),
            Some(b"ab"),
            Some(b"abc"),
            Some(b"a\xff"),
            Some(b"abcdefg"),
            Some(b"abcdefgh"),
            Some(b"abcdefghijklmnop"),
        ];
        let ids: [Option<&[u8]>; 8] = [
            None,
            Some(b"c"),
            Some(b"cd"),
            Some(b"a"),
            Some(b""),
            Some(b"c+"),
            Some(b"c\xff"),
            Some(b"a-client-id-longer-than-sixteen"),
        ];
        let topics: [&[u8]; 17] = [
            b"c/d",
            b"bc/d",
            b"x",
            b"pub/1",
            b"a/secret",
            b"c/a/1",
            b"cd/ab/z",
            b"c/in",
            b"a-client-id-longer-than-sixteen/in",
            b"a",
            b"ab",
            b"$x",
            b"a/+",
            b"",
            b"pub/\xc3",
            b"abcdefgh/ijklmnop/q",
            b"verylongtopic/that/goes/on/past/the/memo/key/limit/of/fifteen/words/of/eight/bytes/each/x",
        ];
        let users: Vec<Option<CString>> = users.iter().map(|u| u.map(c)).collect();
        let ids: Vec<Option<CString>> = ids.iter().map(|i| i.map(c)).collect();
        let topics: Vec<CString> = topics.iter().map(|t| c(t)).collect();
        let mut memo = Memo::new();
        let mut hits = 0;
        for p in [&a, &b, &a] {
            memo.forget_all();
            // Twice: the second time, the allows come from the memo.
            for _round in 0..2 {
                for username in &users {
                    for id in &ids {
                        for topic in &topics {
                            for access in [Access::Read, Access::Write, Access::Subscribe] {
                                let q = Question {
                                    username: username.as_deref(),
                                    topic,
                                    access,
                                };
                                if memo.knows(&q, || id.as_deref()) {
                                    hits += 1;
                                }
                                ask(&mut memo, p, q, id.as_deref());
                            }
                        }
                    }
                }
            }
        }
        assert!(hits > 100, "the memo answered {hits} questions");
    }

    /// An allow is known until the memo forgets, and also after its epoch counter wraps: the
    /// wrap clears the table, so the entry of the epoch that comes back is gone.
    #[test]
    fn forgetting_is_final_even_when_the_epoch_wraps() {
        let q = Question {
            username: Some(c"dev"),
            topic: c"sensors/dev/temp",
            access: Access::Write,
        };
        let no_id = || None;
        let mut memo = Memo::new();
        memo.remember(&q, ClientId::Unread);
        assert!(memo.knows(&q, no_id));
        memo.forget_all();
        assert!(!memo.knows(&q, no_id));
        memo.remember(&q, ClientId::Unread);
        assert!(memo.knows(&q, no_id));
        // As if forget_all had run 2^32 - 2 times more: the next one wraps back to the first
        // epoch, where the first entry was made.
        let mut memo = Memo::new();
        memo.remember(&q, ClientId::Unread);
        memo.epoch = !(FIRST_EPOCH - 1);
        memo.forget_all();
        assert_eq!(memo.epoch, FIRST_EPOCH);
        assert!(!memo.knows(&q, no_id));
    }

    /// An allow that read the client id answers for that id only (absent included), and only
    /// then is the id read; one that did not answers for every id without reading it.
    #[test]
    fn the_client_id_is_read_only_when_the_allow_read_it() {
        for topic in [c"t", c"a/topic/longer/than/thirty-two/bytes"] {
            let q = Question {
                username: Some(c"u"),
                topic,
                access: Access::Read,
            };
            let mut memo = Memo::new();
            memo.remember(&q, ClientId::Read(Some(c"dev-1")));
            assert!(memo.knows(&q, || Some(c"dev-1")));
            for other in [
                Some(c"dev-2"),
                Some(c"dev-1x"),
                Some(c"dev-"),
                Some(c""),
                None,
            ] {
                assert!(!memo.knows(&q, || other), "{other:?}");
            }
            memo.remember(&q, ClientId::Read(None));
            assert!(memo.knows(&q, || None));
            assert!(!memo.knows(&q, || Some(c"")));
            memo.remember(&q, ClientId::Unread);
            assert!(memo.knows(&q, || -> Option<&CStr> { panic!("the id was read") }));
        }
    }

    /// The clients of one question that only a pattern allows (one username, several client
    /// ids) are all remembered at once, each for its own id, instead of evicting each other
    /// from the question's slot; an id never remembered is never answered.
    #[test]
    fn several_ids_of_one_question_are_remembered_together() {
        for topic in [c"sensors/pub/temp", c"a/topic/longer/than/thirty-two/bytes"] {
            let q = Question {
                username: Some(c"sub"),
                topic,
                access: Access::Read,
            };
            let ids: Vec<CString> = (0..6).map(|i| c(format!("sub{i}").as_bytes())).collect();
            let mut memo = Memo::new();
            for id in &ids {
                memo.remember(&q, ClientId::Read(Some(id)));
            }
            for id in &ids {
                assert!(memo.knows(&q, || Some(id)), "{id:?}");
            }
            assert!(!memo.knows(&q, || Some(c"sub9")));
            assert!(!memo.knows(&q, || None));
        }
    }

    /// Questions that land on one slot evict each other and are then decided afresh; they
    /// never answer for each other.
    #[test]
    fn a_slot_holds_one_question_at_a_time() {
        let mut memo = Memo::new();
        let topics: Vec<CString> = (0..SLOTS * 2)
            .map(|i| c(format!("t/{i}").as_bytes()))
            .collect();
        fn ask(t: &CStr) -> Question<'_> {
            Question {
                username: Some(c"u"),
                topic: t,
                access: Access::Read,
            }
        }
        for t in &topics {
            memo.remember(&ask(t), ClientId::Unread);
        }
        // More questions than slots: some were evicted, none is answered unless remembered.
        let known = topics
            .iter()
            .filter(|t| memo.knows(&ask(t), || None))
            .count();
        assert!(known < topics.len() && known > SLOTS / 2, "{known}");
        let never = Question {
            username: Some(c"v"),
            ..ask(&topics[0])
        };
        assert!(!memo.knows(&never, || None));
    }

    /// The questions of a fan-out (every device writes its own topic and a few users read
    /// them all) spread over the slots as if at random: how often they share one is a matter
    /// of speed only, but questions that differ in one byte at the same place of two parts
    /// (user `pub` on `sensors/pub/x` and user `sub` on `sensors/sub/x`) must not pile up.
    #[test]
    fn the_questions_of_a_fan_out_spread_over_the_slots() {
        let mut questions: Vec<(CString, CString, Access)> = Vec::new();
        for d in 0..1000 {
            let topic = c(format!("sensors/dev{d:04}/temp").as_bytes());
            questions.push((
                c(format!("dev{d:04}").as_bytes()),
                topic.clone(),
                Access::Write,
            ));
            for reader in [&b"pub"[..], b"sub", b"dashboard", b"recorder"] {
                questions.push((c(reader), topic.clone(), Access::Read));
            }
        }
        let slot_of = |q: &Question<'_>| slot(q.key(FIRST_EPOCH).expect("fits").1);
        let slots: std::collections::HashSet<usize> = questions
            .iter()
            .map(|(u, t, access)| {
                slot_of(&Question {
                    username: Some(u),
                    topic: t,
                    access: *access,
                })
            })
            .collect();
        // 5,000 questions at random over 16,384 slots fill about 4,300 of them.
        assert!(slots.len() > 4100, "{} slots used", slots.len());
        let pair = [(c"pub", Access::Write), (c"sub", Access::Read)].map(|(u, access)| {
            slot_of(&Question {
                username: Some(u),
                topic: c"sensors/pub/temp",
                access,
            })
        });
        assert_ne!(pair[0], pair[1]);
    }
}
