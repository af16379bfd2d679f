//! Writing and checking hashes: argon2id via the `argon2` crate, `$7$` as `mosquitto_passwd`
//! writes it.
//!
//! argon2id PHC strings are parsed here rather than with `password_hash::PasswordHash`, which
//! refuses salts longer than 48 bytes: Mosquitto 2.1 writes 64-byte salts.

use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher, Version};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use sha2::Sha512;
use subtle::ConstantTimeEq;

/// argon2id defaults for new hashes: OWASP's recommendation (19 MiB, 2 passes, 1 lane),
/// 16-byte salt, 32-byte tag.
pub const ARGON2ID_M_KIB: u32 = 19_456;
/// argon2id passes for new hashes.
pub const ARGON2ID_T: u32 = 2;
/// argon2id lanes for new hashes.
pub const ARGON2ID_P: u32 = 1;

/// Iterations `mosquitto_passwd` 2.1 writes (2.0 wrote 101).
pub const PBKDF2_DEFAULT_ITERATIONS: u32 = 1000;

/// Limits on the cost parameters of a password file line, checked at load (a line above one
/// is refused with its file and line): one line must not be able to stall or exhaust the
/// broker on a login. Measured with a release build on a 2-vCPU VM with other builds running
/// (README, "Password file"): PBKDF2-SHA512 0.55 to 0.8 s per million iterations, argon2id 0.8
/// to 1.5 ms per MiB and pass.
///
/// `$7$` iterations: at most 1,000,000 (under a second per login; OWASP recommends 210,000).
pub const PBKDF2_MAX_ITERATIONS: u32 = 1_000_000;
/// argon2id memory: at most 512 MiB, in KiB (RFC 9106's second recommendation uses 64 MiB,
/// Mosquitto 2.1 46 MiB).
pub const ARGON2ID_MAX_M_KIB: u32 = 512 * 1024;
/// argon2id passes: at most 16.
pub const ARGON2ID_MAX_T: u32 = 16;
/// argon2id lanes: at most 16 (they are computed one after the other here).
pub const ARGON2ID_MAX_P: u32 = 16;
/// argon2id work, memory (KiB) times passes: at most one pass over 512 MiB (under a second).
pub const ARGON2ID_MAX_WORK: u64 = 512 * 1024;

/// Above these a password line is slow to verify without being more useful; `mqttguard lint`
/// warns. `$7$`: OWASP's PBKDF2-HMAC-SHA512 recommendation.
pub const PBKDF2_RECOMMENDED_MAX_ITERATIONS: u32 = 210_000;
/// argon2id memory × passes above RFC 9106's second recommendation (64 MiB, 3 passes).
pub const ARGON2ID_RECOMMENDED_MAX_WORK: u64 = 64 * 1024 * 3;
/// argon2id memory × passes below OWASP's weakest recommended setting (7 MiB, 5 passes; its
/// others, such as 19 MiB with 2 passes, are all above): `mqttguard lint` warns.
pub const ARGON2ID_MIN_WORK: u64 = 7 * 1024 * 5;

/// The first argon2id parameter above its load limit, as (name, value, limit).
pub fn argon2id_over_limit(m_kib: u32, t: u32, p: u32) -> Option<(&'static str, u64, u64)> {
    let work = u64::from(m_kib) * u64::from(t);
    [
        (
            "memory (m, KiB)",
            u64::from(m_kib),
            u64::from(ARGON2ID_MAX_M_KIB),
        ),
        ("passes (t)", u64::from(t), u64::from(ARGON2ID_MAX_T)),
        ("lanes (p)", u64::from(p), u64::from(ARGON2ID_MAX_P)),
        ("work (m x t)", work, ARGON2ID_MAX_WORK),
    ]
    .into_iter()
    .find(|&(_, value, limit)| value > limit)
}

/// Why a hash could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The operating system's random source failed.
    #[error("the system gave no random bytes for a salt")]
    NoRandomness,
    /// The argon2 library refused the parameters; holds its message.
    #[error("argon2id: {0}")]
    Argon2(String),
    /// An iteration count of zero was asked for.
    #[error("iterations must be at least 1")]
    Iterations,
}

/// Standard alphabet; padding optional, as OpenSSL's decoder (Mosquitto's) allows. Anything
/// outside the alphabet, or non-zero trailing bits, is refused.
pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn random<const N: usize>() -> Result<[u8; N], HashError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|_| HashError::NoRandomness)?;
    Ok(bytes)
}

/// An argon2id PHC string with the default parameters above
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<tag>`).
pub fn hash_argon2id(password: &[u8]) -> Result<String, HashError> {
    let params = Params::new(ARGON2ID_M_KIB, ARGON2ID_T, ARGON2ID_P, Some(32))
        .map_err(|e| HashError::Argon2(e.to_string()))?;
    let salt =
        SaltString::encode_b64(&random::<16>()?).map_err(|e| HashError::Argon2(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

/// A `$7$` hash exactly as `mosquitto_passwd` writes it (`$7$<iterations>$<salt>$<hash>`):
/// 12-byte random salt, 64-byte PBKDF2-HMAC-SHA512 output, standard base64 with padding.
pub fn hash_pbkdf2(password: &[u8], iterations: u32) -> Result<String, HashError> {
    if iterations == 0 {
        return Err(HashError::Iterations);
    }
    let salt = random::<12>()?;
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, iterations, &mut out);
    Ok(format!(
        "$7${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(out)
    ))
}

/// A decoded argon2id PHC string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Argon2idParts {
    pub version: u32,
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Parses `$argon2id$[v=16|19$]m=M,t=T,p=P$<salt>$<tag>` as libargon2's decoder does (the
/// version may be left out and then means 16; m, t, p in that order, nothing else), then checks
/// the values the hash function would refuse, so a bad line fails at load and not at login.
/// The error says what is wrong, never the hash.
pub(crate) fn parse_argon2id(text: &str) -> Result<Argon2idParts, &'static str> {
    const SHAPE: &str = "expected $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>";
    let rest = text.strip_prefix("$argon2id$").ok_or(SHAPE)?;
    let parts: Vec<&str> = rest.split('$').collect();
    let (version, params, salt, hash) = match parts[..] {
        [v, params, salt, hash] => {
            let v = v.strip_prefix("v=").ok_or(SHAPE)?;
            (
                decimal(v).ok_or("version is not a number")?,
                params,
                salt,
                hash,
            )
        }
        [params, salt, hash] if !params.starts_with("v=") => (0x10, params, salt, hash),
        _ => return Err(SHAPE),
    };
    if Version::try_from(version).is_err() {
        return Err("version must be 16 or 19");
    }
    let mut kv = params.split(',');
    let mut value = |name: &str| {
        kv.next()
            .and_then(|pair| pair.strip_prefix(name))
            .and_then(|n| n.strip_prefix('='))
            .and_then(decimal)
    };
    let (Some(m_kib), Some(t), Some(p), None) = (value("m"), value("t"), value("p"), kv.next())
    else {
        return Err("parameters must be m=<KiB>,t=<passes>,p=<lanes>, in that order");
    };
    let salt = B64.decode(salt).map_err(|_| "salt is not base64")?;
    let hash = B64.decode(hash).map_err(|_| "hash is not base64")?;
    if salt.len() < argon2::MIN_SALT_LEN {
        return Err("salt must decode to at least 8 bytes");
    }
    if Params::new(m_kib, t, p, Some(hash.len())).is_err() {
        return Err("parameters out of range (t >= 1, 1 <= p < 2^24, m >= 8*p, hash >= 4 bytes)");
    }
    Ok(Argon2idParts {
        version,
        m_kib,
        t,
        p,
        salt,
        hash,
    })
}

/// A plain decimal: digits only (no sign, no spaces), fitting in u32.
pub(crate) fn decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Verifies with the parameters recorded in the string; the comparison is constant-time. The
/// working memory is reserved fallibly, so a failed allocation is a refusal and not an abort.
pub(crate) fn verify_argon2id(
    version: u32,
    (m_kib, t, p): (u32, u32, u32),
    salt: &[u8],
    hash: &[u8],
    password: &[u8],
) -> bool {
    let (Ok(params), Ok(version)) = (
        Params::new(m_kib, t, p, Some(hash.len())),
        Version::try_from(version),
    ) else {
        return false;
    };
    let mut blocks: Vec<Block> = Vec::new();
    if blocks.try_reserve_exact(params.block_count()).is_err() {
        return false;
    }
    blocks.resize(params.block_count(), Block::default());
    let mut out = vec![0u8; hash.len()];
    Argon2::new(Algorithm::Argon2id, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut blocks)
        .is_ok()
        && bool::from(out.as_slice().ct_eq(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(parts: &Argon2idParts, password: &[u8]) -> bool {
        let params = (parts.m_kib, parts.t, parts.p);
        verify_argon2id(parts.version, params, &parts.salt, &parts.hash, password)
    }

    const V16: &str = "$argon2id$v=16$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI";

    #[test]
    fn decimal_is_digits_only() {
        assert_eq!(decimal("101"), Some(101));
        assert_eq!(decimal("0101"), Some(101));
        assert_eq!(decimal("4294967295"), Some(u32::MAX));
        for bad in ["", "+5", "-1", " 5", "5 ", "4294967296", "1e3", "0x10"] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn argon2id_version_may_be_left_out_and_means_16() {
        let parts = parse_argon2id(V16).unwrap();
        assert_eq!(
            (parts.version, parts.m_kib, parts.t, parts.p),
            (16, 64, 1, 1)
        );
        assert!(verify(&parts, b"old"));
        assert!(!verify(&parts, b"olD"));
        let bare = V16.replace("v=16$", "");
        assert_eq!(parse_argon2id(&bare).unwrap(), parts);
    }

    #[test]
    fn argon2id_padding_is_optional() {
        let padded = format!("{V16}=");
        assert!(verify(&parse_argon2id(&padded).unwrap(), b"old"));
    }

    #[test]
    fn argon2id_refusals() {
        let cases = [
            ("$argon2id$v=19$m=64,t=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI", "in that order"),
            ("$argon2id$v=19$t=1,m=64,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI", "in that order"),
            ("$argon2id$v=19$m=64,t=1,p=1,keyid=AAAA$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI", "in that order"),
            ("$argon2id$v=19$m=+64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI", "in that order"),
            ("$argon2id$v=18$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI", "version"),
            ("$argon2id$v=x$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI", "version"),
            ("$argon2id$v=19$m=64,t=0,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI", "out of range"),
            ("$argon2id$v=19$m=64,t=1,p=9$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI", "out of range"),
            ("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S", "out of range"),
            ("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI", "at least 8"),
            ("$argon2id$v=19$m=64,t=1,p=1$c29t*XNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI", "salt is not base64"),
            ("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukJ", "hash is not base64"),
            ("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA", "expected"),
            ("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$lv7S4Da2Dh5EIKtIdoXBOmUod/FTFKUeki7Zdz6qukI$", "expected"),
            ("$argon2id$", "expected"),
        ];
        for (text, what) in cases {
            let e = parse_argon2id(text).expect_err(text);
            assert!(e.contains(what), "{text}: {e}");
        }
    }

    #[test]
    fn argon2id_limits() {
        assert_eq!(argon2id_over_limit(47_104, 1, 1), None);
        assert_eq!(argon2id_over_limit(65_536, 3, 4), None);
        assert_eq!(argon2id_over_limit(1 << 19, 1, 16), None);
        assert_eq!(argon2id_over_limit(32_768, 16, 1), None);
        assert_eq!(
            argon2id_over_limit((1 << 19) + 1, 1, 1).map(|x| x.0),
            Some("memory (m, KiB)")
        );
        assert_eq!(
            argon2id_over_limit(64, 17, 1).map(|x| x.0),
            Some("passes (t)")
        );
        assert_eq!(
            argon2id_over_limit(256, 1, 17).map(|x| x.0),
            Some("lanes (p)")
        );
        assert_eq!(
            argon2id_over_limit(1 << 18, 3, 1),
            Some(("work (m x t)", 3 << 18, 1 << 19))
        );
        assert_eq!(
            argon2id_over_limit(u32::MAX, u32::MAX, u32::MAX).map(|x| x.1),
            Some(u32::MAX.into())
        );
    }

    #[test]
    fn pbkdf2_output_shape() {
        let line = hash_pbkdf2(b"pw", 101).unwrap();
        assert!(line.starts_with("$7$101$"));
        assert_eq!(line.len(), "$7$101$".len() + 16 + 1 + 88);
        assert!(matches!(hash_pbkdf2(b"pw", 0), Err(HashError::Iterations)));
    }
}
