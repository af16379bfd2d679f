//! Mosquitto password files: parsing and verification. (Being written: see the interface below.)

use std::path::Path;

use crate::error::{LoadError, Located};

/// Why a password file line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswdError {
    #[error("placeholder")]
    Placeholder,
}

/// The outcome of checking one username/password pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    Ok,
    UnknownUser,
    WrongPassword,
}

/// A parsed password file: username to hash.
#[derive(Debug, Default)]
pub struct PasswordDb {}

impl PasswordDb {
    pub fn parse(_file: &Path, _text: &[u8]) -> Result<Self, Located<PasswdError>> {
        Ok(PasswordDb {})
    }
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = crate::error::read_policy_file(path)?;
        Ok(Self::parse(path, &text)?)
    }
    pub fn len(&self) -> usize {
        0
    }
    pub fn is_empty(&self) -> bool {
        true
    }
    pub fn contains(&self, _username: &str) -> bool {
        false
    }
    pub fn verify(&self, _username: &str, _password: &[u8]) -> Verify {
        Verify::UnknownUser
    }
    /// A short description of the hash schemes in use, for the load log line.
    pub fn schemes_summary(&self) -> String {
        String::new()
    }
}
