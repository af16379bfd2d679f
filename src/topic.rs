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
///
/// One pass, eight bytes at a time (SWAR), so it stays cheap on the ACL hot path.
pub fn is_topic_name(topic: &str) -> bool {
    !topic.is_empty() && !has_wildcard(topic.as_bytes())
}

/// Whether `bytes` contains `+` or `#`.
fn has_wildcard(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const PLUS: u64 = u64::from_ne_bytes([b'+'; 8]);
    const HASH: u64 = u64::from_ne_bytes([b'#'; 8]);
    // A byte of `x` is zero => the "has zero byte" test sets its high bit (it may also flag
    // a 0x01 byte above a zero byte, but only when some byte really is zero). Both tests are
    // or-ed without branching; one test per word.
    let flags = |w: u64| {
        let (p, h) = (w ^ PLUS, w ^ HASH);
        (p.wrapping_sub(ONES) & !p | h.wrapping_sub(ONES) & !h) & HIGHS
    };
    if bytes.len() < 8 {
        return bytes.iter().any(|&b| b == b'+' || b == b'#');
    }
    let mut rest = bytes;
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        if flags(u64::from_ne_bytes(*word)) != 0 {
            return true;
        }
        rest = tail;
    }
    // The last bytes: the final eight, overlapping what was already checked.
    !rest.is_empty()
        && bytes
            .last_chunk::<8>()
            .is_some_and(|word| flags(u64::from_ne_bytes(*word)) != 0)
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
