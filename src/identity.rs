//! Client certificate → identity: which certificate field names the client, the rules that
//! field must satisfy, client-id binding, superusers and revocation. Pure Rust: the plugin
//! layer only hands over the certificate's DER bytes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{LoadError, Located};

/// Which certificate field is the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The first Common Name of the subject (what `use_identity_as_username` takes).
    #[default]
    Cn,
    /// The first DNS subjectAltName that satisfies the rules.
    SanDns,
    /// The first URI subjectAltName that satisfies the rules (use `strip_prefix`).
    SanUri,
    /// The first e-mail (rfc822Name) subjectAltName that satisfies the rules.
    SanEmail,
    /// The whole subject, RFC 4514 style (`CN=dev1,O=Example`).
    Subject,
}

/// Whether the certificate alone authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordPolicy {
    /// The certificate authenticates; a username/password sent by the client is ignored.
    #[default]
    Ignore,
    /// The client must also send username = identity and that user's password.
    Require,
}

/// How the client id must relate to the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientIdPolicy {
    #[default]
    Any,
    /// The client id must equal the identity.
    Equal,
    /// The client id must be the identity, or the identity followed by `clientid_separator`
    /// and anything (`dev1`, `dev1-ui`).
    Prefix,
}

/// `[identity]` in the TOML configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    #[serde(default)]
    pub source: Source,
    /// Removed from the start of the value; a value without it is refused.
    #[serde(default)]
    pub strip_prefix: Option<String>,
    /// Removed from the end of the value; a value without it is refused.
    #[serde(default)]
    pub strip_suffix: Option<String>,
    #[serde(default)]
    pub password: PasswordPolicy,
    #[serde(default)]
    pub clientid: ClientIdPolicy,
    #[serde(default = "default_separator")]
    pub clientid_separator: String,
    /// Identities or usernames allowed every topic (except what the broker itself refuses,
    /// such as publishing to `$SYS`).
    #[serde(default)]
    pub superusers: Vec<String>,
    /// Revoked certificates: serial numbers or SHA-256 fingerprints, one per line.
    #[serde(default)]
    pub revoked: Option<PathBuf>,
}

fn default_separator() -> String {
    "-".to_string()
}

/// Why a certificate, a client id or a revocation list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the client certificate could not be parsed")]
    BadCertificate,
    #[error("the certificate has no {0}")]
    MissingField(&'static str),
    #[error("the certificate's {0} is not valid UTF-8 text")]
    NotUtf8(&'static str),
    #[error("identity \"{0}\" is empty")]
    Empty(String),
    #[error("identity \"{0}\" contains a NUL, '+', '#' or '/'")]
    Forbidden(String),
    #[error("identity \"{value}\" does not start with \"{prefix}\"")]
    PrefixMismatch { value: String, prefix: String },
    #[error("identity \"{value}\" does not end with \"{suffix}\"")]
    SuffixMismatch { value: String, suffix: String },
    #[error("no {0} value satisfies the identity rules")]
    NoUsableValue(&'static str),
    #[error("client id \"{client_id}\" is not bound to identity \"{identity}\"")]
    ClientId { client_id: String, identity: String },
    #[error("the certificate is revoked (serial {0})")]
    Revoked(String),
    #[error("`clientid_separator` must not be empty")]
    EmptySeparator,
    #[error("`password = \"require\"` needs a password file (plugin_opt_password_file)")]
    PasswordFileRequired,
    #[error(
        "invalid revocation entry \"{0}\": expected a hex serial number or a SHA-256 fingerprint"
    )]
    BadRevocationEntry(String),
    #[error("revocation list line is not valid UTF-8")]
    RevocationNotUtf8,
}

/// A client's identity, taken from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    /// Serial number, lowercase hex without leading zeros (`0` for zero).
    pub serial_hex: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub sha256_hex: String,
}

impl IdentityConfig {
    pub fn validate(&self) -> Result<(), IdentityError> {
        if self.clientid == ClientIdPolicy::Prefix && self.clientid_separator.is_empty() {
            return Err(IdentityError::EmptySeparator);
        }
        Ok(())
    }

    pub fn is_superuser(&self, name: &str) -> bool {
        self.superusers.iter().any(|s| s == name)
    }

    /// Applies prefix/suffix stripping and the identity rules to one candidate value.
    fn accept(&self, value: &str) -> Result<String, IdentityError> {
        let mut v = value;
        if let Some(prefix) = self.strip_prefix.as_deref() {
            v = v
                .strip_prefix(prefix)
                .ok_or_else(|| IdentityError::PrefixMismatch {
                    value: value.to_string(),
                    prefix: prefix.to_string(),
                })?;
        }
        if let Some(suffix) = self.strip_suffix.as_deref() {
            v = v
                .strip_suffix(suffix)
                .ok_or_else(|| IdentityError::SuffixMismatch {
                    value: value.to_string(),
                    suffix: suffix.to_string(),
                })?;
        }
        if v.is_empty() {
            return Err(IdentityError::Empty(value.to_string()));
        }
        if v.contains(['\0', '+', '#', '/']) {
            return Err(IdentityError::Forbidden(value.escape_debug().to_string()));
        }
        Ok(v.to_string())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex without leading zeros.
fn normalise_serial(hex_digits: &str) -> String {
    let trimmed = hex_digits.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_ascii_lowercase()
    }
}

/// Maps a DER certificate to an identity under `cfg`. For SAN sources the first value that
/// satisfies every rule wins; for the CN only the first CN is considered (as Mosquitto).
pub fn identity_from_der(der: &[u8], cfg: &IdentityConfig) -> Result<Identity, IdentityError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::BadCertificate)?;
    let name = match cfg.source {
        Source::Cn => {
            let cn = cert
                .subject()
                .iter_common_name()
                .next()
                .ok_or(IdentityError::MissingField("common name"))?;
            let text = cn
                .as_str()
                .map_err(|_| IdentityError::NotUtf8("common name"))?;
            cfg.accept(text)?
        }
        Source::Subject => cfg.accept(&cert.subject().to_string())?,
        Source::SanDns | Source::SanUri | Source::SanEmail => {
            let label = match cfg.source {
                Source::SanDns => "DNS subjectAltName",
                Source::SanUri => "URI subjectAltName",
                _ => "e-mail subjectAltName",
            };
            let san = cert
                .subject_alternative_name()
                .map_err(|_| IdentityError::BadCertificate)?
                .ok_or(IdentityError::MissingField(label))?;
            let mut values = san
                .value
                .general_names
                .iter()
                .filter_map(|g| san_value(cfg.source, g))
                .peekable();
            if values.peek().is_none() {
                return Err(IdentityError::MissingField(label));
            }
            values
                .find_map(|v| cfg.accept(v).ok())
                .ok_or(IdentityError::NoUsableValue(label))?
        }
    };
    Ok(Identity {
        name,
        serial_hex: normalise_serial(&hex(cert.raw_serial())),
        sha256_hex: hex(&Sha256::digest(der)),
    })
}

/// The text of a subjectAltName entry of the kind `source` asks for.
fn san_value<'a>(source: Source, name: &GeneralName<'a>) -> Option<&'a str> {
    match (source, name) {
        (Source::SanDns, GeneralName::DNSName(s))
        | (Source::SanUri, GeneralName::URI(s))
        | (Source::SanEmail, GeneralName::RFC822Name(s)) => Some(s),
        _ => None,
    }
}

/// Checks the client id against the identity under `cfg.clientid`.
pub fn check_client_id(
    cfg: &IdentityConfig,
    identity: &str,
    client_id: &str,
) -> Result<(), IdentityError> {
    let bound = match cfg.clientid {
        ClientIdPolicy::Any => true,
        ClientIdPolicy::Equal => client_id == identity,
        ClientIdPolicy::Prefix => {
            client_id == identity
                || client_id
                    .strip_prefix(identity)
                    .is_some_and(|rest| rest.starts_with(cfg.clientid_separator.as_str()))
        }
    };
    if bound {
        Ok(())
    } else {
        Err(IdentityError::ClientId {
            client_id: client_id.escape_debug().to_string(),
            identity: identity.to_string(),
        })
    }
}

/// Revoked certificates, by serial number or SHA-256 fingerprint. This is in addition to
/// Mosquitto's `crlfile`, and needs no CA to sign anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    serials: HashSet<String>,
    fingerprints: HashSet<String>,
}

impl RevocationList {
    /// One entry per line: a serial number in hex (`0x` and `:` separators allowed) or a
    /// SHA-256 fingerprint (64 hex digits, `:` allowed); `#` starts a comment.
    pub fn parse(file: &Path, text: &[u8]) -> Result<RevocationList, Located<IdentityError>> {
        let mut list = RevocationList::default();
        for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
            let err = |e| Located::new(file, index + 1, e);
            let line =
                std::str::from_utf8(raw).map_err(|_| err(IdentityError::RevocationNotUtf8))?;
            let entry = line.split('#').next().unwrap_or_default().trim();
            if entry.is_empty() {
                continue;
            }
            let digits: String = entry
                .strip_prefix("0x")
                .or_else(|| entry.strip_prefix("0X"))
                .unwrap_or(entry)
                .chars()
                .filter(|&c| c != ':')
                .collect();
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(err(IdentityError::BadRevocationEntry(entry.to_string())));
            }
            match digits.len() {
                64 => list.fingerprints.insert(digits.to_ascii_lowercase()),
                1..=40 => list.serials.insert(normalise_serial(&digits)),
                _ => return Err(err(IdentityError::BadRevocationEntry(entry.to_string()))),
            };
        }
        Ok(list)
    }

    pub fn load(path: &Path) -> Result<RevocationList, LoadError> {
        let text = crate::error::read_policy_file(path)?;
        Self::parse(path, &text).map_err(LoadError::Identity)
    }

    pub fn is_revoked(&self, identity: &Identity) -> bool {
        self.serials.contains(&identity.serial_hex)
            || self.fingerprints.contains(&identity.sha256_hex)
    }

    pub fn len(&self) -> usize {
        self.serials.len() + self.fingerprints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
