//! `%c` / `%u` substitution inside one topic level of a `pattern` rule, matched in place.
//!
//! Allow and deny patterns substitute differently (see [`Values`]): the stricter rules only
//! ever remove grants, so a deny pattern applies wherever Mosquitto 2.0 would apply it.

/// One piece of a templated level: `id-%c` is `[Lit("id-"), ClientId]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Piece {
    Lit(Box<str>),
    ClientId,
    Username,
}

/// A topic level of a pattern that contains `%c` or `%u`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Template(Box<[Piece]>);

/// How a template met the topic (or filter) text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Met<'t> {
    /// No match.
    No,
    /// Matched up to the end of a level: `None` when the text ended there, else the text after
    /// the `/`.
    Rest(Option<&'t str>),
    /// Deny patterns only: a substituted value holds `+` or `#`, which Mosquitto 2.0 would
    /// turn into wildcards; every rule through this template is taken to match (denying at
    /// least what 2.0 denies). Unreachable behind the "dangerous id" guard.
    Anything,
}

impl Template {
    /// Splits a level into pieces; `None` when it holds no `%c`/`%u` (a plain literal).
    /// Left to right as Mosquitto 2.0 substitutes: `%%c` is `%` followed by the client id.
    pub(super) fn parse(level: &str) -> Option<Template> {
        if !level.contains("%c") && !level.contains("%u") {
            return None;
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = level.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            let next = chars.peek().map(|&(_, n)| n);
            let placeholder = match (c, next) {
                ('%', Some('c')) => Some(Piece::ClientId),
                ('%', Some('u')) => Some(Piece::Username),
                _ => None,
            };
            match placeholder {
                Some(piece) => {
                    chars.next();
                    if !literal.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut literal).into()));
                    }
                    pieces.push(piece);
                }
                None => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Lit(literal.into()));
        }
        Some(Template(pieces.into()))
    }

    /// Matches this level, with the client's values substituted, at the start of `text` (the
    /// rest of a topic or filter, from the start of a level). The substituted text must be
    /// followed by a `/` or the end of `text`. With grant values (never empty, never holding
    /// `/`) this is exactly "the level equals the substituted template"; with deny values a
    /// value holding `/` spans several levels, as in Mosquitto 2.0's textual substitution.
    ///
    /// No allocation; the cost is at most the length of `text` plus the literal pieces.
    pub(super) fn meet<'t>(&self, text: &'t str, values: &Values<'_>) -> Met<'t> {
        let mut rest = text;
        for piece in self.0.iter() {
            let expected = match piece {
                Piece::Lit(s) => s,
                Piece::ClientId => match values.client_id {
                    Some(_) if values.client_id_wild => return Met::Anything,
                    Some(v) => v,
                    None => return Met::No,
                },
                Piece::Username => match values.username {
                    Some(_) if values.username_wild => return Met::Anything,
                    Some(v) => v,
                    None => return Met::No,
                },
            };
            match rest.strip_prefix(expected) {
                Some(r) => rest = r,
                None => return Met::No,
            }
        }
        if rest.is_empty() {
            Met::Rest(None)
        } else if let Some(after) = rest.strip_prefix('/') {
            Met::Rest(Some(after))
        } else {
            Met::No
        }
    }
}

/// The client's substitution values for one rule list: `None` where a placeholder cannot match
/// (no username for `%u`; for grants also an unsafe value).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Values<'a> {
    client_id: Option<&'a str>,
    username: Option<&'a str>,
    client_id_wild: bool,
    username_wild: bool,
}

impl<'a> Values<'a> {
    /// For per-user rules, which have no placeholders.
    pub(crate) const NONE: Values<'static> = Values {
        client_id: None,
        username: None,
        client_id_wild: false,
        username_wild: false,
    };

    /// For allow patterns: a value may be substituted only if it stays inside one level, is
    /// not empty and adds no wildcard; otherwise the placeholder never matches.
    pub(crate) fn grants(client_id: &'a str, username: Option<&'a str>) -> Values<'a> {
        Values {
            client_id: safe(client_id),
            username: username.and_then(safe),
            client_id_wild: false,
            username_wild: false,
        }
    }

    /// For deny patterns: Mosquitto 2.0's textual substitution of the value as it is (empty,
    /// with `/`, starting with `$`). A value holding `+` or `#` makes the template match
    /// anything (2.0 would substitute wildcards; the "dangerous id" guard refuses such
    /// clients before patterns are consulted anyway).
    pub(crate) fn denials(client_id: &'a str, username: Option<&'a str>) -> Values<'a> {
        // Byte scans: the generic char searcher behind `str::contains([..])` is slower here.
        let wild = |s: &str| s.bytes().any(|b| b == b'+' || b == b'#');
        Values {
            client_id: Some(client_id),
            username,
            client_id_wild: wild(client_id),
            username_wild: username.is_some_and(wild),
        }
    }
}

impl Values<'_> {
    /// Whether the client id or username holds `+` or `#` (deny values only).
    pub(crate) fn has_wildcard(&self) -> bool {
        self.client_id_wild || self.username_wild
    }

    /// Whether both substitute every placeholder identically.
    pub(crate) fn same_as(&self, other: &Values<'_>) -> bool {
        self.client_id_wild == other.client_id_wild
            && self.username_wild == other.username_wild
            && self.client_id.map(str::len) == other.client_id.map(str::len)
            && self.username.map(str::len) == other.username.map(str::len)
    }
}

/// A value may be substituted into an allow pattern only if it stays inside one level and
/// adds no wildcard.
fn safe(value: &str) -> Option<&str> {
    if value.is_empty()
        || value
            .bytes()
            .any(|b| matches!(b, b'/' | b'+' | b'#' | b'\0'))
    {
        None
    } else {
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(t: &Template, text: &str, v: &Values<'_>) -> bool {
        t.meet(text, v) == Met::Rest(None)
    }

    #[test]
    fn pieces_and_matching() {
        assert!(Template::parse("plain").is_none());
        assert!(Template::parse("50%").is_none());
        let t = Template::parse("id-%c-%u").expect("template");
        let v = Values::grants("dev1", Some("bob"));
        assert!(level(&t, "id-dev1-bob", &v));
        assert!(!level(&t, "id-dev1-bo", &v));
        assert!(!level(&t, "id-dev1-bobx", &v));
        assert_eq!(t.meet("id-dev1-bob/x/y", &v), Met::Rest(Some("x/y")));
        assert_eq!(t.meet("id-dev1-bobx/y", &v), Met::No);
        let unsafe_id = Values::grants("a/b", Some("bob"));
        assert!(!level(
            &Template::parse("%c").expect("t"),
            "a/b",
            &unsafe_id
        ));
        let anon = Values::grants("x", None);
        assert!(!level(&Template::parse("%u").expect("t"), "", &anon));
        let empty = Values::grants("", None);
        assert!(!level(&Template::parse("p%c").expect("t"), "p", &empty));
        assert!(level(
            &Template::parse("%x%c").expect("t"),
            "%xab",
            &Values::grants("ab", None)
        ));
        assert!(level(
            &Template::parse("%%c").expect("t"),
            "%ab",
            &Values::grants("ab", None)
        ));
    }

    #[test]
    fn deny_values_substitute_textually() {
        let t = Template::parse("id-%c").expect("t");
        let v = Values::denials("a/b", None);
        assert_eq!(t.meet("id-a/b/secret", &v), Met::Rest(Some("secret")));
        assert_eq!(t.meet("id-a/b", &v), Met::Rest(None));
        assert_eq!(t.meet("id-a/bc", &v), Met::No);
        let e = Values::denials("", Some(""));
        assert_eq!(
            Template::parse("%u").expect("t").meet("/x", &e),
            Met::Rest(Some("x"))
        );
        assert_eq!(
            Template::parse("%u").expect("t").meet("", &e),
            Met::Rest(None)
        );
        let n = Values::denials("c", None);
        assert_eq!(Template::parse("%u").expect("t").meet("", &n), Met::No);
        let w = Values::denials("x+", Some("u"));
        assert_eq!(
            Template::parse("%c").expect("t").meet("q", &w),
            Met::Anything
        );
        assert_eq!(Template::parse("%u").expect("t").meet("q", &w), Met::No);
    }
}
