//! MQTT topic and topic-filter rules, as Mosquitto applies them.

/// Mosquitto's limit on the number of `/` separators in a topic filter (TOPIC_HIERARCHY_LIMIT).
pub const HIERARCHY_LIMIT: usize = 200;
/// The longest topic MQTT can carry.
pub const MAX_TOPIC_LEN: usize = 65535;

/// Why a topic filter is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Nothing at all.
    #[error("topic filter is empty")]
    Empty,
    /// Longer than an MQTT string can be.
    #[error("topic filter is longer than 65535 bytes")]
    TooLong,
    /// More levels than Mosquitto accepts.
    #[error("topic filter has more than 200 levels")]
    TooDeep,
    /// A `+` with other characters in its level.
    #[error("'+' must fill a whole topic level")]
    BadPlus,
    /// A `#` that is not the whole last level.
    #[error("'#' must fill the last topic level")]
    BadHash,
    /// A NUL byte.
    #[error("topic filter contains a NUL byte")]
    Nul,
}

/// Checks a subscription/ACL topic filter exactly as `mosquitto_sub_topic_check` does, and
/// additionally refuses an empty filter and NUL bytes.
pub fn check_filter(filter: &str) -> Result<(), FilterError> {
    if filter.is_empty() {
        return Err(FilterError::Empty);
    }
    if filter.len() > MAX_TOPIC_LEN {
        return Err(FilterError::TooLong);
    }
    let mut separators = 0usize;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('\0') {
            return Err(FilterError::Nul);
        }
        if level.contains('+') && level != "+" {
            return Err(FilterError::BadPlus);
        }
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(FilterError::BadHash);
        }
        if levels.peek().is_some() {
            separators += 1;
        }
    }
    if separators > HIERARCHY_LIMIT {
        return Err(FilterError::TooDeep);
    }
    Ok(())
}

/// Whether `topic` can be a topic name (what a PUBLISH carries and a READ/WRITE check is
/// about): not empty, and no `+` or `#` (Mosquitto never matches such a topic). The broker
/// never passes one; the ACL check refuses it anyway.
pub fn is_topic_name(topic: &str) -> bool {
    scan(topic.as_bytes()).name
}

/// What one pass over a topic's bytes found (see [`scan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Every byte is ASCII (so the bytes are UTF-8 without further checking).
    pub ascii: bool,
    /// The bytes are a topic name as [`is_topic_name`] says: not empty, no `+` or `#`.
    pub name: bool,
}

/// Looks at a topic's bytes once, eight at a time (SWAR), for both facts the ACL hot path
/// needs: whether they are ASCII and whether they are a topic name. (`+` and `#` are ASCII, so
/// they never occur inside a multi-byte UTF-8 sequence: the answer about them holds for any
/// UTF-8 text.)
#[inline]
pub fn scan(bytes: &[u8]) -> Scan {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const PLUS: u64 = u64::from_ne_bytes([b'+'; 8]);
    const HASH: u64 = u64::from_ne_bytes([b'#'; 8]);
    // A byte of `x` is zero => the "has zero byte" test sets its high bit (it may also flag
    // a 0x01 byte above a zero byte, but only when some byte really is zero). Both tests are
    // or-ed without branching; one test per word.
    let wild = |w: u64| {
        let (p, h) = (w ^ PLUS, w ^ HASH);
        (p.wrapping_sub(ONES) & !p | h.wrapping_sub(ONES) & !h) & HIGHS
    };
    let (mut wilds, mut highs) = (0u64, 0u64);
    if bytes.len() < 8 {
        for &b in bytes {
            wilds |= u64::from(b == b'+' || b == b'#');
            highs |= u64::from(b);
        }
        return Scan {
            ascii: highs & 0x80 == 0,
            name: !bytes.is_empty() && wilds == 0,
        };
    }
    let mut rest = bytes;
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        let w = u64::from_ne_bytes(*word);
        wilds |= wild(w);
        highs |= w;
        rest = tail;
    }
    // The last bytes: the final eight, overlapping what was already looked at.
    if !rest.is_empty() {
        if let Some(word) = bytes.last_chunk::<8>() {
            let w = u64::from_ne_bytes(*word);
            wilds |= wild(w);
            highs |= w;
        }
    }
    Scan {
        ascii: highs & HIGHS == 0,
        name: wilds == 0,
    }
}

/// Up to seven bytes as one little-endian word, zero-padded: two overlapping four-byte reads,
/// or three single bytes, instead of a loop.
#[inline(always)]
pub(crate) fn short_word(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 4 {
        let lo = b.first_chunk::<4>().map_or(0, |w| u32::from_le_bytes(*w));
        let hi = b.last_chunk::<4>().map_or(0, |w| u32::from_le_bytes(*w));
        u64::from(lo) | (u64::from(hi) << (8 * (n - 4)))
    } else if n > 0 {
        let at = |i: usize| u64::from(b.get(i).copied().unwrap_or(0)) << (8 * i);
        at(0) | at(n / 2) | at(n - 1)
    } else {
        0
    }
}

/// Whether `filter` matches `topic` under MQTT rules (as `mosquitto_topic_matches_sub`):
/// `+` matches one level, `#` the rest including the parent level, and a wildcard at the first
/// level never matches a topic that starts with `$`. Used by tools and tests; the broker's hot
/// path uses the compiled matcher in [`crate::acl`].
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') != filter.starts_with('$') {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic that filter `specific` matches is also matched by filter `general`
/// (both valid filters, compared as [`filter_matches`] matches topics: `+` is one
/// level, `#` the rest including the parent, wildcards at the first level never match topics
/// starting with `$`). `%c` / `%u` levels are compared as text, which is exact for two
/// patterns of the same client: a `+` covers them, and equal templates cover each other.
pub fn filter_covers(general: &str, specific: &str) -> bool {
    if specific.starts_with('$') && !general.starts_with('$') {
        return false;
    }
    let mut g = general.split('/');
    let mut s = specific.split('/');
    loop {
        match (g.next(), s.next()) {
            (Some("#"), _) => return true,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(_), Some("+")) => return false,
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        for ok in ["a", "#", "+", "a/+/b", "a/#", "/", "a//b", "$SYS/#", "+/+"] {
            assert_eq!(check_filter(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_filter("a/#/b"), Err(FilterError::BadHash));
        assert_eq!(check_filter("a#"), Err(FilterError::BadHash));
        assert_eq!(check_filter("a+"), Err(FilterError::BadPlus));
        assert_eq!(check_filter("+a/b"), Err(FilterError::BadPlus));
        assert_eq!(check_filter(""), Err(FilterError::Empty));
        assert_eq!(check_filter(&"a/".repeat(200)), Ok(()));
        assert_eq!(check_filter(&"a/".repeat(201)), Err(FilterError::TooDeep));
    }

    #[test]
    fn topic_names() {
        for ok in [
            "a",
            "/",
            "a/b",
            "$SYS/x",
            "a b",
            "é/ü",
            "abcdefgh",
            "abcdefghi",
        ] {
            assert!(is_topic_name(ok), "{ok}");
        }
        for bad in [
            "",
            "+",
            "#",
            "a/+",
            "a/#",
            "a+b",
            "abcdefg#",
            "abcdefgh+",
            "+bcdefgh",
        ] {
            assert!(!is_topic_name(bad), "{bad}");
        }
        // Every position in and around a word.
        for len in 1..24 {
            for at in 0..len {
                for c in ['+', '#'] {
                    let mut t: Vec<u8> = vec![b'a'; len];
                    t[at] = c as u8;
                    let t = String::from_utf8(t).unwrap();
                    assert!(!is_topic_name(&t), "{t}");
                }
            }
            assert!(is_topic_name(&"*".repeat(len)));
            assert!(is_topic_name(&"\x01".repeat(len)));
        }
        // Bytes next to '+' (0x2b) and '#' (0x23), and 0x01/0x00 neighbours.
        assert!(is_topic_name("\x22\x24\x2a\x2c\x01\x01\x01\x01\x01"));
    }

    /// `scan` against the plain definitions, a non-ASCII or wildcard byte at every position.
    #[test]
    fn scan_agrees_with_the_plain_checks() {
        for len in 0..26 {
            for at in (0..len).map(Some).chain([None]) {
                for c in ["+", "#", "é", "\u{7f}", "\0", "/", "x"] {
                    let mut t = "a".repeat(len);
                    if let Some(at) = at {
                        t.replace_range(at..at + 1, c);
                    }
                    let plain_name = !t.is_empty() && !t.contains(['+', '#']);
                    assert_eq!(
                        scan(t.as_bytes()),
                        Scan {
                            ascii: t.is_ascii(),
                            name: plain_name
                        },
                        "{t:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn matching() {
        assert!(filter_matches("a/#", "a"));
        assert!(filter_matches("a/#", "a/b/c"));
        assert!(filter_matches("a/+/#", "a/b"));
        assert!(filter_matches("a/+", "a/"));
        assert!(!filter_matches("a/+", "a"));
        assert!(!filter_matches("#", "$SYS/x"));
        assert!(!filter_matches("+/x", "$SYS/x"));
        assert!(filter_matches("$SYS/#", "$SYS/x"));
        assert!(filter_matches("#", "/a"));
    }
}
