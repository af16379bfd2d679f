//! A loaded policy: plugin options, the password file, the ACL file and the TOML config,
//! parsed and compiled together so that a reload swaps all of them or none.

use std::path::PathBuf;

use crate::acl::{self, AclPolicy, Decision};
use crate::config::Config;
use crate::error::LoadError;
use crate::passwd::{PasswordDb, Verify};

/// A problem with the `plugin_opt_*` lines themselves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("unknown option plugin_opt_{0} (known: password_file, acl_file, config)")]
    Unknown(String),
    #[error("option plugin_opt_{0} is given more than once")]
    Duplicate(String),
    #[error("option plugin_opt_{0} has an empty value")]
    Empty(String),
}

/// The plugin's options, from `plugin_opt_<key> <value>` lines in mosquitto.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub password_file: Option<PathBuf>,
    pub acl_file: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

impl Options {
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Options, OptionError> {
        let mut options = Options::default();
        for (key, value) in pairs {
            let slot = match key {
                "password_file" => &mut options.password_file,
                "acl_file" => &mut options.acl_file,
                "config" => &mut options.config,
                other => return Err(OptionError::Unknown(other.to_string())),
            };
            if value.is_empty() {
                return Err(OptionError::Empty(key.to_string()));
            }
            if slot.is_some() {
                return Err(OptionError::Duplicate(key.to_string()));
            }
            *slot = Some(PathBuf::from(value));
        }
        Ok(options)
    }
}

/// The outcome of basic authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Credentials verified.
    Allow,
    /// Unknown user, no password or a wrong password.
    Deny(AuthFailure),
    /// No username: let the broker's `allow_anonymous` decide.
    Defer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    UnknownUser,
    NoPassword,
    WrongPassword,
}

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::UnknownUser => "unknown user",
            AuthFailure::NoPassword => "no password",
            AuthFailure::WrongPassword => "wrong password",
        }
    }
}

/// Everything one plugin instance enforces.
#[derive(Debug, Default)]
pub struct Policy {
    pub passwd: Option<PasswordDb>,
    pub acl: Option<AclPolicy>,
    pub config: Config,
}

impl Policy {
    /// Loads and compiles every file the options name. Any error fails the whole load.
    pub fn load(options: &Options) -> Result<Policy, LoadError> {
        let config = match &options.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let passwd = options
            .password_file
            .as_deref()
            .map(PasswordDb::load)
            .transpose()?;
        let acl = options
            .acl_file
            .as_deref()
            .map(AclPolicy::load)
            .transpose()?;
        Ok(Policy {
            passwd,
            acl,
            config,
        })
    }

    /// Problems worth a warning in the broker log that do not stop the load.
    pub fn warnings(&self, options: &Options) -> Vec<String> {
        options
            .password_file
            .as_deref()
            .and_then(crate::error::world_readable_warning)
            .into_iter()
            .collect()
    }

    /// One line for the broker log: files, counts, hash schemes. Never a hash or password.
    pub fn summary(&self, options: &Options) -> String {
        let mut parts = Vec::new();
        if let (Some(db), Some(path)) = (&self.passwd, &options.password_file) {
            parts.push(format!(
                "password_file {} ({} users; {})",
                path.display(),
                db.len(),
                db.schemes_summary()
            ));
        }
        if let Some(acl) = &self.acl {
            parts.push(format!(
                "acl_file {} ({} users, {} topic rules, {} patterns)",
                acl.file().display(),
                acl.user_count(),
                acl.topic_rule_count(),
                acl.pattern_count()
            ));
        }
        if let Some(path) = &options.config {
            parts.push(format!("config {}", path.display()));
        }
        if parts.is_empty() {
            "no password_file and no acl_file: nothing to enforce".to_string()
        } else {
            parts.join("; ")
        }
    }

    /// Basic authentication as Mosquitto's `password_file` does it. An empty username counts
    /// as none, an empty password as none.
    pub fn authenticate(&self, username: Option<&str>, password: Option<&[u8]>) -> AuthOutcome {
        let Some(db) = &self.passwd else {
            return AuthOutcome::Defer;
        };
        let Some(username) = username.filter(|u| !u.is_empty()) else {
            return AuthOutcome::Defer;
        };
        let password = password.filter(|p| !p.is_empty());
        match (db.contains(username), password) {
            (false, _) => AuthOutcome::Deny(AuthFailure::UnknownUser),
            (true, None) => AuthOutcome::Deny(AuthFailure::NoPassword),
            (true, Some(password)) => match db.verify(username, password) {
                Verify::Ok => AuthOutcome::Allow,
                Verify::UnknownUser => AuthOutcome::Deny(AuthFailure::UnknownUser),
                Verify::WrongPassword => AuthOutcome::Deny(AuthFailure::WrongPassword),
            },
        }
    }

    /// An ACL decision; `None` when no ACL file is configured (the broker then allows).
    pub fn check(
        &self,
        client: &acl::Client<'_>,
        topic: &str,
        access: acl::Access,
    ) -> Option<Decision> {
        self.acl.as_ref().map(|acl| {
            acl.check(client, topic, access, self.config.acl.check_subscribe)
        })
    }
}
