//! The denial log line: one documented, stable format for every refusal (connect, publish,
//! delivery, subscribe), which a regular expression can match without ambiguity.
//!
//! ```text
//! denied connect from 192.0.2.7 client "bob-1" username "bob": wrong password
//! denied write on "a/secret" from 192.0.2.7 client "alice-1" username "alice": /etc/mosquitto/acl:3: topic deny a/secret
//! denied read on "a/b" from 192.0.2.8 client "dev\"1" username (none): no rule grants it
//! ```
//!
//! Client strings (client id, username, topic) are always between double quotes with `\` and
//! `"` (and control characters) escaped as Rust's `escape_debug` does, so a quote inside one
//! can never end it early; an absent one is `(none)`, unquoted. The address is the broker's
//! (`mosquitto_client_address`: an IPv4 or IPv6 address, never containing a space or a quote),
//! or `unknown`. The reason comes last, after `": "`.

use std::fmt;

/// One refusal, formatted by its `Display`.
#[derive(Debug, Clone, Copy)]
pub struct Denial<'a> {
    /// `connect`, `read`, `write`, `subscribe` or `unsubscribe`.
    pub action: &'a str,
    /// The topic or filter (not for `connect`).
    pub topic: Option<&'a str>,
    /// The client's address as the broker gives it; shown as `unknown` when absent or odd.
    pub address: Option<&'a str>,
    /// The client id, shown quoted and escaped, or `(none)`.
    pub client_id: Option<&'a str>,
    /// The username, shown quoted and escaped, or `(none)`.
    pub username: Option<&'a str>,
    /// Why it was refused; written last, after `": "`.
    pub reason: &'a str,
}

struct Quoted<'a>(Option<&'a str>);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, "\"{}\"", s.escape_debug()),
            None => f.write_str("(none)"),
        }
    }
}

impl fmt::Display for Denial<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "denied {}", self.action)?;
        if let Some(topic) = self.topic {
            write!(f, " on {}", Quoted(Some(topic)))?;
        }
        let address = self
            .address
            .filter(|a| !a.is_empty() && !a.contains([' ', '"']))
            .unwrap_or("unknown");
        write!(
            f,
            " from {address} client {} username {}: {}",
            Quoted(self.client_id),
            Quoted(self.username),
            self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_unambiguous() {
        let line = Denial {
            action: "connect",
            topic: None,
            address: Some("192.0.2.7"),
            client_id: Some("a\" username \"x"),
            username: None,
            reason: "unknown user",
        }
        .to_string();
        assert_eq!(
            line,
            r#"denied connect from 192.0.2.7 client "a\" username \"x" username (none): unknown user"#
        );
        let line = Denial {
            action: "write",
            topic: Some("a/\n"),
            address: Some("bad address\""),
            client_id: Some("c"),
            username: Some("u\\"),
            reason: "r",
        }
        .to_string();
        assert_eq!(
            line,
            r#"denied write on "a/\n" from unknown client "c" username "u\\": r"#
        );
    }
}
