//! `%c` / `%u` substitution inside one topic level of a `pattern` rule, matched in place.

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

impl Template {
    /// Splits a level into pieces; `None` when it holds no `%c`/`%u` (a plain literal).
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

    /// Whether the level equals this template with the client's values substituted. A value
    /// that is missing or unsafe (empty, or containing `/`, `+`, `#`) never matches.
    pub(super) fn matches(&self, level: &str, values: &Values<'_>) -> bool {
        let mut rest = level;
        for piece in self.0.iter() {
            let expected = match piece {
                Piece::Lit(s) => s,
                Piece::ClientId => match values.client_id {
                    Some(v) => v,
                    None => return false,
                },
                Piece::Username => match values.username {
                    Some(v) => v,
                    None => return false,
                },
            };
            match rest.strip_prefix(expected) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        rest.is_empty()
    }
}

/// The client's substitution values, already vetted: `None` where the value is absent or
/// unsafe to substitute.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Values<'a> {
    client_id: Option<&'a str>,
    username: Option<&'a str>,
}

impl<'a> Values<'a> {
    /// For per-user rules, which have no placeholders.
    pub(crate) const NONE: Values<'static> = Values {
        client_id: None,
        username: None,
    };

    pub(crate) fn new(client_id: &'a str, username: Option<&'a str>) -> Values<'a> {
        Values {
            client_id: safe(client_id),
            username: username.and_then(safe),
        }
    }
}

/// A value may be substituted only if it stays inside one level and adds no wildcard.
fn safe(value: &str) -> Option<&str> {
    if value.is_empty() || value.contains(['/', '+', '#', '\0']) {
        None
    } else {
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_and_matching() {
        assert!(Template::parse("plain").is_none());
        assert!(Template::parse("50%").is_none());
        let t = Template::parse("id-%c-%u").expect("template");
        let v = Values::new("dev1", Some("bob"));
        assert!(t.matches("id-dev1-bob", &v));
        assert!(!t.matches("id-dev1-bo", &v));
        assert!(!t.matches("id-dev1-bobx", &v));
        let unsafe_id = Values::new("a/b", Some("bob"));
        assert!(!Template::parse("%c").expect("t").matches("a/b", &unsafe_id));
        let anon = Values::new("x", None);
        assert!(!Template::parse("%u").expect("t").matches("", &anon));
        let empty = Values::new("", None);
        assert!(!Template::parse("p%c").expect("t").matches("p", &empty));
        assert!(Template::parse("%x%c")
            .expect("t")
            .matches("%xab", &Values::new("ab", None)));
    }
}
