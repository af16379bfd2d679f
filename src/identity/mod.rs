//! Client certificate → identity: which certificate field names the client, the rules that
//! field must satisfy, client-id binding, superusers and revocation. Pure Rust: the plugin
//! layer only hands over the certificate's DER bytes (see `csrc/cert.c`).
//!
//! Order of checks in basic auth (what [`crate::policy::Policy::certificate_identity`] and the
//! plugin do): [`identity_from_der`] → [`RevocationList::is_revoked`] → [`check_client_id`] →
//! with `password = "ignore"` set the username to the identity, with `"require"` the client's
//! username must equal the identity and its password is verified as usual.

mod revoked;
mod subject;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

pub use revoked::RevocationList;

/// Which certificate field is the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The first Common Name of the subject, as Mosquitto's `use_identity_as_username` takes
    /// it; later CNs are never considered, so a second CN cannot pick a different identity.
    #[default]
    Cn,
    /// The first DNS subjectAltName that satisfies the rules.
    SanDns,
    /// The first URI subjectAltName that satisfies the rules (URIs contain `/`, so use
    /// `strip_prefix`).
    SanUri,
    /// The first e-mail (rfc822Name) subjectAltName that satisfies the rules.
    SanEmail,
    /// The whole subject exactly as Mosquitto's `use_subject_as_username` makes it (OpenSSL's
    /// RFC 2253 form, `CN=dev1,O=Example,C=DE`), so ACL files written for that option keep
    /// working. Subjects with a multi-valued RDN or a `/` are then refused by the rules.
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
    /// Any client id is accepted.
    #[default]
    Any,
    /// The client id must equal the identity.
    Equal,
    /// The client id must be the identity itself, or the identity followed by
    /// `clientid_separator` (default `-`) and anything: identity `dev1` may use `dev1` and
    /// `dev1-ui`, not `dev10`. The binding is only unambiguous if no identity contains the
    /// separator: otherwise identity `dev` may also use `dev-1`, which is identity `dev-1`'s
    /// id, and take over its session. Pick a separator your identities never contain.
    Prefix,
}

/// `[identity]` in the TOML configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The certificate field the identity is taken from.
    #[serde(default)]
    pub source: Source,
    /// Removed from the start of the value; a value without it is refused.
    #[serde(default)]
    pub strip_prefix: Option<String>,
    /// Removed from the end of the value; a value without it is refused. Compared exactly
    /// (case-sensitive), like the identity itself in ACL `user` lines.
    #[serde(default)]
    pub strip_suffix: Option<String>,
    /// Whether the client must also send a password.
    #[serde(default)]
    pub password: PasswordPolicy,
    /// How the client id must relate to the identity.
    #[serde(default)]
    pub clientid: ClientIdPolicy,
    /// What may follow the identity in a client id under `clientid = "prefix"`.
    #[serde(default = "default_separator")]
    pub clientid_separator: String,
    /// Identities or usernames allowed every topic (except what the broker itself refuses,
    /// such as publishing to `$SYS`).
    #[serde(default)]
    pub superusers: Vec<String>,
    /// Revoked certificates: serial numbers or SHA-256 fingerprints, one per line.
    #[serde(default)]
    pub revoked: Option<std::path::PathBuf>,
}

fn default_separator() -> String {
    "-".to_string()
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            source: Source::default(),
            strip_prefix: None,
            strip_suffix: None,
            password: PasswordPolicy::default(),
            clientid: ClientIdPolicy::default(),
            clientid_separator: default_separator(),
            superusers: Vec::new(),
            revoked: None,
        }
    }
}

/// Why a certificate, a client id, the `[identity]` section or a revocation list was refused.
/// Values from certificates are shown escaped, so a log line cannot be forged with them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The certificate is not valid DER X.509.
    #[error("the client certificate could not be parsed")]
    BadCertificate,
    /// The subjectAltName extension cannot be read, or appears twice.
    #[error("the certificate's subjectAltName extension is malformed or repeated")]
    BadSubjectAltName,
    /// The certificate lacks the configured field; holds the field's name.
    #[error("the certificate has no {0}")]
    MissingField(&'static str),
    /// The field's value is not valid UTF-8; holds the field's name.
    #[error("the certificate's {0} is not valid UTF-8 text")]
    NotUtf8(&'static str),
    /// The field's value is not a string type; holds the field's name.
    #[error("the certificate's {0} is not a text string")]
    NotText(&'static str),
    /// Stripping left nothing; holds the value before stripping.
    #[error("\"{0}\" leaves an empty identity")]
    Empty(String),
    /// The identity contains NUL, `+`, `#` or `/`, which would break `%u` patterns or paths.
    #[error("identity \"{0}\" contains a NUL, '+', '#' or '/'")]
    Forbidden(String),
    /// Mosquitto refuses such usernames (`mosquitto_validate_utf8`), so refuse them here with
    /// a reason rather than fail later in `mosquitto_set_username`.
    #[error("identity \"{0}\" contains a control character or a Unicode non-character")]
    ControlCharacter(String),
    /// The identity is longer than an MQTT string can be; holds its length in bytes.
    #[error("identity is {0} bytes long; MQTT usernames are at most 65535")]
    TooLong(usize),
    #[error("identity \"{value}\" does not start with \"{prefix}\"")]
    /// The value does not start with `strip_prefix`.
    PrefixMismatch {
        /// The value before stripping.
        value: String,
        /// The configured `strip_prefix`.
        prefix: String,
    },
    #[error("identity \"{value}\" does not end with \"{suffix}\"")]
    /// The value does not end with `strip_suffix`.
    SuffixMismatch {
        /// The value before stripping.
        value: String,
        /// The configured `strip_suffix`.
        suffix: String,
    },
    /// Every value of a multi-valued field (the SANs) was refused.
    #[error("no {field} satisfies the identity rules (the first: {first})")]
    NoUsableValue {
        /// The field's name.
        field: &'static str,
        /// Why its first value was refused.
        first: Box<IdentityError>,
    },
    #[error("client id \"{client_id}\" is not bound to identity \"{identity}\"")]
    /// The client id is not bound to the identity as `clientid` requires.
    ClientId {
        /// The client id the client sent.
        client_id: String,
        /// The identity from its certificate.
        identity: String,
    },
    /// The certificate's serial or fingerprint is in the revocation list; holds the serial.
    #[error("the certificate is revoked (serial {0})")]
    Revoked(String),
    /// `clientid = "prefix"` with an empty `clientid_separator`.
    #[error("`clientid_separator` must not be empty")]
    EmptySeparator,
    /// `superusers` lists an empty string.
    #[error("`superusers` contains an empty name")]
    EmptySuperuser,
    /// `password = "require"` without a password file to check against.
    #[error("`password = \"require\"` needs a password file (plugin_opt_password_file)")]
    PasswordFileRequired,
    #[error(
        "invalid revocation entry \"{0}\": expected a hex serial number (at most 20 bytes) or a \
         SHA-256 fingerprint (32 bytes)"
    )]
    /// A revocation list line is neither a serial number nor a fingerprint.
    BadRevocationEntry(String),
    /// A revocation list line is not UTF-8.
    #[error("revocation list line is not valid UTF-8")]
    RevocationNotUtf8,
}

/// A client's identity, taken from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The identity: the certificate field's value after stripping, as used for the username.
    pub name: String,
    /// Serial number: the DER INTEGER's content bytes in lowercase hex without leading zeros
    /// (`0` for zero), so `0A:BC`, `0abc` and `abc` all name serial `abc`.
    pub serial_hex: String,
    /// SHA-256 of the DER certificate, lowercase hex (what `openssl x509 -fingerprint
    /// -sha256` prints, without colons).
    pub sha256_hex: String,
}

/// MQTT strings are at most this long.
const MAX_IDENTITY: usize = 65535;

impl IdentityConfig {
    /// Load-time checks that TOML types cannot express.
    pub fn validate(&self) -> Result<(), IdentityError> {
        if self.clientid == ClientIdPolicy::Prefix && self.clientid_separator.is_empty() {
            return Err(IdentityError::EmptySeparator);
        }
        // An empty name could match a client that sent an empty username.
        if self.superusers.iter().any(String::is_empty) {
            return Err(IdentityError::EmptySuperuser);
        }
        Ok(())
    }

    /// Whether `name` is listed in `superusers` (an empty name never is).
    pub fn is_superuser(&self, name: &str) -> bool {
        !name.is_empty() && self.superusers.iter().any(|s| s == name)
    }

    /// Applies prefix/suffix stripping and the identity rules to one candidate value.
    fn accept(&self, value: &str) -> Result<String, IdentityError> {
        let mut v = value;
        if let Some(prefix) = self.strip_prefix.as_deref() {
            v = v
                .strip_prefix(prefix)
                .ok_or_else(|| IdentityError::PrefixMismatch {
                    value: shown(value),
                    prefix: shown(prefix),
                })?;
        }
        if let Some(suffix) = self.strip_suffix.as_deref() {
            v = v
                .strip_suffix(suffix)
                .ok_or_else(|| IdentityError::SuffixMismatch {
                    value: shown(value),
                    suffix: shown(suffix),
                })?;
        }
        if v.is_empty() {
            return Err(IdentityError::Empty(shown(value)));
        }
        check_identity(v)?;
        Ok(v.to_string())
    }
}

/// The rules every (non-empty) identity obeys, whatever its source: an MQTT string Mosquitto
/// accepts as a username, and no character that breaks topic patterns (`%u`) or paths.
fn check_identity(v: &str) -> Result<(), IdentityError> {
    if v.len() > MAX_IDENTITY {
        return Err(IdentityError::TooLong(v.len()));
    }
    if v.contains(['\0', '+', '#', '/']) {
        return Err(IdentityError::Forbidden(shown(v)));
    }
    if v.chars().any(refused_by_mosquitto) {
        return Err(IdentityError::ControlCharacter(shown(v)));
    }
    Ok(())
}

/// Code points `mosquitto_validate_utf8` refuses besides NUL: C0 and C1 controls, DEL and
/// the Unicode non-characters.
fn refused_by_mosquitto(c: char) -> bool {
    let c = u32::from(c);
    c <= 0x1f
        || (0x7f..=0x9f).contains(&c)
        || (0xfdd0..=0xfdef).contains(&c)
        || (c & 0xfffe) == 0xfffe
}

/// A certificate-supplied value as it may appear in a log line.
fn shown(s: &str) -> String {
    s.escape_debug().to_string()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Lowercase hex without leading zeros (`0` for zero), the one form serials are compared in.
fn normalise_serial(hex_digits: &str) -> String {
    let trimmed = hex_digits.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_ascii_lowercase()
    }
}

/// Maps a DER certificate to an identity under `cfg`.
///
/// - `cn`: the first CN only (as Mosquitto). UTF8String and the ASCII string types must hold
///   valid UTF-8; BMPString and UniversalString are decoded; other types are refused.
/// - SAN sources: the values of that type in certificate order; the first that satisfies
///   every rule wins and the others are skipped. When none does, the error names why the
///   first was refused.
/// - `subject`: see [`subject_string`].
///
/// The certificate chain is the broker's business (it verified it against `cafile` before
/// basic auth); this only reads the certificate.
pub fn identity_from_der(der: &[u8], cfg: &IdentityConfig) -> Result<Identity, IdentityError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::BadCertificate)?;
    let name = match cfg.source {
        Source::Cn => {
            let cn = cert
                .subject()
                .iter_common_name()
                .next()
                .ok_or(IdentityError::MissingField("common name"))?;
            let text = subject::attribute_text(cn.attr_value(), "common name")?;
            cfg.accept(&text)?
        }
        Source::Subject => cfg.accept(&subject::rfc2253(cert.subject())?)?,
        Source::SanDns | Source::SanUri | Source::SanEmail => {
            let label = match cfg.source {
                Source::SanDns => "DNS subjectAltName",
                Source::SanUri => "URI subjectAltName",
                _ => "e-mail subjectAltName",
            };
            let san = cert
                .subject_alternative_name()
                .map_err(|_| IdentityError::BadSubjectAltName)?
                .ok_or(IdentityError::MissingField(label))?;
            let mut first_refusal = None;
            let mut accepted = None;
            for value in san
                .value
                .general_names
                .iter()
                .filter_map(|g| san_value(cfg.source, g))
            {
                match cfg.accept(value) {
                    Ok(name) => {
                        accepted = Some(name);
                        break;
                    }
                    Err(why) => {
                        first_refusal.get_or_insert(why);
                    }
                }
            }
            match (accepted, first_refusal) {
                (Some(name), _) => name,
                (None, None) => return Err(IdentityError::MissingField(label)),
                (None, Some(first)) => {
                    return Err(IdentityError::NoUsableValue {
                        field: label,
                        first: Box::new(first),
                    })
                }
            }
        }
    };
    Ok(Identity {
        name,
        serial_hex: normalise_serial(&hex(cert.raw_serial())),
        sha256_hex: hex(&Sha256::digest(der)),
    })
}

/// The certificate's subject exactly as Mosquitto's `use_subject_as_username` makes the
/// username (OpenSSL `X509_NAME_print_ex` with `XN_FLAG_RFC2253`: last RDN first, `,` and
/// `+` separators, short attribute names, special characters `\`-escaped, bytes above 0x7F
/// as `\XX`, unknown attributes as `OID=#hex`). No identity rules are applied.
pub fn subject_string(der: &[u8]) -> Result<String, IdentityError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::BadCertificate)?;
    subject::rfc2253(cert.subject())
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

/// Checks the client id against the identity under `cfg.clientid` (see [`ClientIdPolicy`]).
pub fn check_client_id(
    cfg: &IdentityConfig,
    identity: &str,
    client_id: &str,
) -> Result<(), IdentityError> {
    let bound = match cfg.clientid {
        ClientIdPolicy::Any => true,
        ClientIdPolicy::Equal => client_id == identity,
        // An identity containing the separator could claim another device's ids (identity
        // `dev` taking `dev-1`, which belongs to identity `dev-1`): such identities are refused.
        ClientIdPolicy::Prefix if identity.contains(cfg.clientid_separator.as_str()) => false,
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
            client_id: shown(client_id),
            identity: shown(identity),
        })
    }
}
