//! Writing and checking hashes: argon2id via the `argon2` crate, `$7$` as `mosquitto_passwd`
//! writes it.

use argon2::password_hash::{PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::Sha512;

/// argon2id defaults for new hashes: OWASP's recommendation (19 MiB, 2 passes, 1 lane),
/// 16-byte salt, 32-byte tag.
pub const ARGON2ID_M_KIB: u32 = 19_456;
pub const ARGON2ID_T: u32 = 2;
pub const ARGON2ID_P: u32 = 1;

/// Iterations `mosquitto_passwd` 2.1 writes (2.0 wrote 101).
pub const PBKDF2_DEFAULT_ITERATIONS: u32 = 1000;

/// Why a hash could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the system gave no random bytes for a salt")]
    NoRandomness,
    #[error("argon2id: {0}")]
    Argon2(String),
    #[error("iterations must be at least 1")]
    Iterations,
}

fn random<const N: usize>() -> Result<[u8; N], HashError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|_| HashError::NoRandomness)?;
    Ok(bytes)
}

/// An argon2id PHC string with the default parameters above.
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

/// A `$7$` line body exactly as `mosquitto_passwd` writes it: 12-byte salt, 64-byte
/// PBKDF2-HMAC-SHA512 output, standard base64.
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

/// (m KiB, t, p) of a valid argon2id PHC string; `None` for anything else.
pub(crate) fn argon2id_params(phc: &str) -> Option<(u32, u32, u32)> {
    let parsed = PasswordHash::new(phc).ok()?;
    if parsed.algorithm.as_str() != "argon2id" {
        return None;
    }
    parsed.hash?;
    parsed.salt?;
    let params = Params::try_from(&parsed).ok()?;
    Some((params.m_cost(), params.t_cost(), params.p_cost()))
}

/// Verifies with the parameters recorded in the string.
pub(crate) fn verify_argon2id(phc: &str, password: &[u8]) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}
