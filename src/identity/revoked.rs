//! The revocation list (`[identity] revoked`): certificates refused although they verify.

use std::collections::HashSet;
use std::path::Path;

use super::{normalise_serial, Identity, IdentityError};
use crate::error::Located;

/// Revoked certificates, by serial number or SHA-256 fingerprint. This is in addition to
/// Mosquitto's `crlfile`, and needs no CA to sign anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    serials: HashSet<String>,
    fingerprints: HashSet<String>,
}

/// RFC 5280: serial numbers are at most 20 octets.
const MAX_SERIAL_DIGITS: usize = 40;
const FINGERPRINT_DIGITS: usize = 64;

impl RevocationList {
    /// One entry per line; `#` starts a comment, blank lines are skipped. An entry is
    ///
    /// - a SHA-256 fingerprint of the DER certificate: 64 hex digits, `:` allowed, optionally
    ///   after `sha256 Fingerprint=` (what `openssl x509 -noout -fingerprint -sha256` prints);
    /// - otherwise a serial number in hex: `:` and `0x` allowed, leading zeros ignored,
    ///   optionally after `serial=` (what `openssl x509 -noout -serial` prints); at most 20
    ///   bytes (RFC 5280) plus a leading `00`.
    ///
    /// Case does not matter. Serials are hex only: a decimal serial would silently name
    /// another certificate, and a SHA-1 or MD5 fingerprint would be read as a serial, so
    /// write those with their `openssl` prefix, which is refused.
    pub fn parse(file: &Path, text: &[u8]) -> Result<RevocationList, Located<IdentityError>> {
        let mut list = RevocationList::default();
        let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
        for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
            let err = |e| Located::new(file, index + 1, e);
            let line =
                std::str::from_utf8(raw).map_err(|_| err(IdentityError::RevocationNotUtf8))?;
            let entry = line.split('#').next().unwrap_or_default().trim();
            if entry.is_empty() {
                continue;
            }
            let bad = || {
                err(IdentityError::BadRevocationEntry(
                    entry.escape_debug().to_string(),
                ))
            };
            match parse_entry(entry).ok_or_else(bad)? {
                Entry::Fingerprint(f) => list.fingerprints.insert(f),
                Entry::Serial(s) => list.serials.insert(s),
            };
        }
        Ok(list)
    }

    /// Whether the identity's serial number or SHA-256 fingerprint is listed.
    pub fn is_revoked(&self, identity: &Identity) -> bool {
        self.serials.contains(&identity.serial_hex)
            || self.fingerprints.contains(&identity.sha256_hex)
    }

    /// Number of distinct entries.
    pub fn len(&self) -> usize {
        self.serials.len() + self.fingerprints.len()
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

enum Entry {
    /// Lowercase hex, 64 digits.
    Fingerprint(String),
    /// Normalised as [`Identity::serial_hex`].
    Serial(String),
}

fn parse_entry(entry: &str) -> Option<Entry> {
    let lower = entry.to_ascii_lowercase();
    let (kind, value) = match lower.split_once('=') {
        Some((label, value)) => match label.trim() {
            "serial" => (Some(false), value.trim()),
            "sha256 fingerprint" => (Some(true), value.trim()),
            // Other digests (`sha1 Fingerprint=`) cannot be matched.
            _ => return None,
        },
        None => (None, lower.as_str()),
    };
    let digits: String = value
        .strip_prefix("0x")
        .unwrap_or(value)
        .chars()
        .filter(|&c| c != ':')
        .collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let fingerprint = kind.unwrap_or(digits.len() == FINGERPRINT_DIGITS);
    if fingerprint {
        return (digits.len() == FINGERPRINT_DIGITS).then_some(Entry::Fingerprint(digits));
    }
    // Room for one sign byte (`00`) in front, as DER and some tools write it.
    if digits.len() > MAX_SERIAL_DIGITS + 2 {
        return None;
    }
    let serial = normalise_serial(&digits);
    (serial.len() <= MAX_SERIAL_DIGITS).then_some(Entry::Serial(serial))
}
