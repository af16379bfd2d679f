//! A loaded policy: plugin options, the password file, the ACL file and the TOML config,
//! parsed and compiled together so that a reload swaps all of them or none.

use std::path::{Path, PathBuf};

use std::time::Duration;

use crate::acl::{self, AclPolicy, Decision};
use crate::cache::CredentialCache;
use crate::config::Config;
use crate::error::{read_policy_file, Located, ReadError};
use crate::identity::{self, Identity, IdentityError, RevocationList};
use crate::passwd::{PasswordDb, StoredHash};

/// Why a policy could not be loaded. Any of these keeps the broker from starting, or keeps the
/// previous policy in force on reload.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A policy file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        /// The file that could not be read.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the ACL file was refused.
    #[error("{0}")]
    Acl(#[from] Located<crate::acl::AclError>),
    /// A line of the password file was refused.
    #[error("{0}")]
    Passwd(#[from] Located<crate::passwd::PasswdError>),
    /// The TOML configuration was refused.
    #[error("{0}")]
    Config(#[from] Located<crate::config::ConfigError>),
    /// The `plugin_opt_*` lines themselves are wrong.
    #[error("{0}")]
    Option(#[from] OptionError),
    /// The `[identity]` section or its revocation list was refused.
    #[error("{0}")]
    Identity(#[from] Located<IdentityError>),
}

impl From<ReadError> for LoadError {
    fn from(e: ReadError) -> Self {
        LoadError::Io {
            file: e.file,
            source: e.source,
        }
    }
}

/// Reads one policy file and parses it with `parse` (`AclPolicy::parse`, `PasswordDb::parse`,
/// `Config::parse`, `RevocationList::parse`): the one way every policy file is loaded.
pub fn load_file<T, E>(
    path: &Path,
    parse: impl FnOnce(&Path, &[u8]) -> Result<T, Located<E>>,
) -> Result<T, LoadError>
where
    LoadError: From<Located<E>>,
{
    let text = read_policy_file(path)?;
    Ok(parse(path, &text)?)
}

/// A problem with the `plugin_opt_*` lines themselves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// An option mqttguard does not know; holds its key.
    #[error("unknown option plugin_opt_{0} (known: password_file, acl_file, config)")]
    Unknown(String),
    /// An option given twice; holds its key.
    #[error("option plugin_opt_{0} is given more than once")]
    Duplicate(String),
    /// An option with an empty value; holds its key.
    #[error("option plugin_opt_{0} has an empty value")]
    Empty(String),
}

/// The plugin's options, from `plugin_opt_<key> <value>` lines in mosquitto.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `plugin_opt_password_file`: the password file.
    pub password_file: Option<PathBuf>,
    /// `plugin_opt_acl_file`: the ACL file.
    pub acl_file: Option<PathBuf>,
    /// `plugin_opt_config`: the TOML configuration.
    pub config: Option<PathBuf>,
}

impl Options {
    /// Collects the options from key/value pairs, refusing unknown, repeated and empty ones.
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

/// Why basic authentication refused a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// The username is not in the password file.
    UnknownUser,
    /// The client sent a username but no password.
    NoPassword,
    /// The password does not match the user's hash.
    WrongPassword,
}

impl AuthFailure {
    /// The reason as the denial line writes it: `unknown user`, `no password` or `wrong password`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::UnknownUser => "unknown user",
            AuthFailure::NoPassword => "no password",
            AuthFailure::WrongPassword => "wrong password",
        }
    }
}

/// Which broker callbacks a policy needs: basic auth only with a password file or
/// `[identity]`, ACL checks only with an ACL file (so the broker behaves as with the built-in
/// option absent). They are registered at start; a reload that needs others is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Whether the basic auth callback is needed.
    pub basic_auth: bool,
    /// Whether the ACL check callback is needed.
    pub acl: bool,
}

impl Needs {
    /// For log lines: `basic auth, ACL check`, or `none`.
    pub fn describe(self) -> String {
        let parts: Vec<&str> = [(self.basic_auth, "basic auth"), (self.acl, "ACL check")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// What a client certificate makes of a login ([`Policy::certificate_login`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateLogin {
    /// `password = "ignore"`: logged in as this identity (it becomes the username).
    AsIdentity(Identity),
    /// `password = "require"` and the username is the identity: the password decides.
    CheckPassword(Identity),
    /// `password = "require"` and the username is not the identity: refused.
    UsernameMismatch(Identity),
    /// The certificate maps to no identity, is revoked, or the client id is not its own.
    Refused(IdentityError),
}

impl CertificateLogin {
    /// Why the login is refused, if it is.
    pub fn refusal(&self) -> Option<String> {
        match self {
            CertificateLogin::Refused(why) => Some(format!("certificate: {why}")),
            CertificateLogin::UsernameMismatch(identity) => Some(format!(
                "username must equal the certificate identity \"{}\"",
                identity.name
            )),
            _ => None,
        }
    }
}

/// The first step of basic authentication.
#[derive(Debug)]
pub enum AuthStep {
    /// Decided at once, without verifying a hash (see [`Policy::begin_auth`]).
    Done(AuthOutcome),
    /// A hash must be verified; owns what it needs so it can move to a worker thread.
    Verify(PendingVerify),
}

/// A password verification to run, on the broker's thread or a worker's ([`AuthStep::Verify`]).
#[derive(Debug)]
pub struct PendingVerify {
    hash: StoredHash,
    /// Identifies the user's password line, which a cached success is bound to.
    fingerprint: u64,
    capacity: usize,
    cacheable: bool,
    /// An unknown user: the hash is another user's, verified only so that the refusal takes
    /// the same work as a wrong password (no timing difference tells who exists).
    decoy: bool,
}

impl PendingVerify {
    /// Whether this verifies an unknown user's decoy (it always refuses).
    pub fn is_decoy(&self) -> bool {
        self.decoy
    }

    /// Whether this verification is slow enough to move off the broker's thread.
    pub fn is_slow(&self) -> bool {
        self.hash.scheme().is_slow()
    }

    /// Verifies, remembers a success in the cache, and gives the outcome. Failures are never
    /// cached.
    pub fn verify(&self, cache: &CredentialCache, username: &str, password: &[u8]) -> AuthOutcome {
        if self.decoy {
            let _ = std::hint::black_box(self.hash.verify(password));
            return AuthOutcome::Deny(AuthFailure::UnknownUser);
        }
        if self.hash.verify(password) {
            if self.cacheable {
                cache.insert(username, password, self.fingerprint, self.capacity);
            }
            AuthOutcome::Allow
        } else {
            AuthOutcome::Deny(AuthFailure::WrongPassword)
        }
    }
}

/// The stored hash of the first user whose scheme is the file's most common one: what an
/// unknown username is verified against.
fn decoy_hash(db: &PasswordDb) -> Option<StoredHash> {
    let mut counts: Vec<(&'static str, usize, &str)> = Vec::new();
    for user in db.users() {
        let Some(scheme) = db.scheme(user) else {
            continue;
        };
        match counts
            .iter_mut()
            .find(|(name, _, _)| *name == scheme.name())
        {
            Some((_, n, _)) => *n += 1,
            None => counts.push((scheme.name(), 1, user)),
        }
    }
    let (_, _, user) = counts.iter().max_by_key(|(_, n, _)| *n)?;
    db.stored_hash(user).cloned()
}

/// Everything one plugin instance enforces.
#[derive(Debug, Default)]
pub struct Policy {
    /// The password file, if `plugin_opt_password_file` is set.
    pub passwd: Option<PasswordDb>,
    /// The compiled ACL file, if `plugin_opt_acl_file` is set.
    pub acl: Option<AclPolicy>,
    /// The TOML configuration (defaults when `plugin_opt_config` is not set).
    pub config: Config,
    /// Revoked client certificates (`[identity] revoked`).
    pub revoked: Option<RevocationList>,
    /// A hash of the password file's most common kind, verified for unknown usernames.
    decoy: Option<StoredHash>,
}

impl Policy {
    /// Loads and compiles every file the options name. Any error fails the whole load.
    pub fn load(options: &Options) -> Result<Policy, LoadError> {
        let config = match &options.config {
            Some(path) => load_file(path, Config::parse)?,
            None => Config::default(),
        };
        let passwd = options
            .password_file
            .as_deref()
            .map(|path| load_file(path, PasswordDb::parse))
            .transpose()?;
        let acl = options
            .acl_file
            .as_deref()
            .map(|path| load_file(path, AclPolicy::parse))
            .transpose()?;
        Policy::from_loaded(options, config, passwd, acl)
    }

    /// Completes a load from files already parsed: checks what spans files (the `[identity]`
    /// section against the password file) and loads the revocation list. `mqttguard lint`
    /// calls this with the files it parsed, so each file is read once.
    pub fn from_loaded(
        options: &Options,
        config: Config,
        passwd: Option<PasswordDb>,
        acl: Option<AclPolicy>,
    ) -> Result<Policy, LoadError> {
        let mut revoked = None;
        if let Some(id) = &config.identity {
            let at_config = |e| {
                let file = options.config.clone().unwrap_or_default();
                LoadError::Identity(Located::new(&file, 0, e))
            };
            id.validate().map_err(at_config)?;
            if id.password == identity::PasswordPolicy::Require && passwd.is_none() {
                return Err(at_config(IdentityError::PasswordFileRequired));
            }
            revoked = id
                .revoked
                .as_deref()
                .map(|path| load_file(path, RevocationList::parse))
                .transpose()?;
        }
        Ok(Policy::from_parts(passwd, acl, config, revoked))
    }

    /// A policy from parsed parts (what [`Policy::load`] builds from files).
    pub fn from_parts(
        passwd: Option<PasswordDb>,
        acl: Option<AclPolicy>,
        config: Config,
        revoked: Option<RevocationList>,
    ) -> Policy {
        let decoy = passwd.as_ref().and_then(decoy_hash);
        Policy {
            passwd,
            acl,
            config,
            revoked,
            decoy,
        }
    }

    /// Problems worth a warning in the broker log that do not stop the load.
    pub fn warnings(&self, options: &Options) -> Vec<String> {
        let mut warnings: Vec<String> = options
            .password_file
            .as_deref()
            .and_then(crate::error::world_readable_warning)
            .into_iter()
            .collect();
        for name in self.superusers() {
            let in_passwd = self.passwd.as_ref().is_some_and(|db| db.contains(name));
            let in_acl = self.acl.as_ref().is_some_and(|acl| acl.has_user(name));
            if !in_passwd && !in_acl {
                warnings.push(format!(
                    "superuser \"{name}\" is in neither the password file nor the ACL file; \
                     only a client certificate can give that identity"
                ));
            }
        }
        warnings
    }

    /// The broker callbacks this policy needs.
    pub fn needs(&self) -> Needs {
        Needs {
            basic_auth: self.passwd.is_some() || self.config.identity.is_some(),
            acl: self.acl.is_some(),
        }
    }

    /// Every file this policy was loaded from (what `[reload] watch` watches).
    pub fn files(&self, options: &Options) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = [&options.password_file, &options.acl_file, &options.config]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if let Some(revoked) = self
            .config
            .identity
            .as_ref()
            .and_then(|i| i.revoked.clone())
        {
            files.push(revoked);
        }
        files
    }

    /// The gauges of the metrics: this policy's size, and the verifications `(queued,
    /// running)` now.
    pub(crate) fn gauges(&self, (queued, running): (usize, usize)) -> crate::metrics::Gauges {
        crate::metrics::Gauges {
            queued: queued as u64,
            running: running as u64,
            policy: crate::metrics::PolicySize {
                password_users: self.passwd.as_ref().map_or(0, |db| db.len() as u64),
                acl_users: self.acl.as_ref().map_or(0, |a| a.user_count() as u64),
                topic_rules: self.acl.as_ref().map_or(0, |a| a.topic_rule_count() as u64),
                patterns: self.acl.as_ref().map_or(0, |a| a.pattern_count() as u64),
            },
        }
    }

    /// The configured superusers.
    pub fn superusers(&self) -> &[String] {
        self.config
            .identity
            .as_ref()
            .map_or(&[], |id| id.superusers.as_slice())
    }

    /// Maps a client certificate to its identity and applies revocation and client-id
    /// binding. Only meaningful with an `[identity]` section.
    pub fn certificate_identity(
        &self,
        der: &[u8],
        client_id: Option<&str>,
    ) -> Option<Result<Identity, IdentityError>> {
        let cfg = self.config.identity.as_ref()?;
        Some((|| {
            let identity = identity::identity_from_der(der, cfg)?;
            if self
                .revoked
                .as_ref()
                .is_some_and(|r| r.is_revoked(&identity))
            {
                return Err(IdentityError::Revoked(identity.serial_hex));
            }
            identity::check_client_id(cfg, &identity.name, client_id.unwrap_or_default())?;
            Ok(identity)
        })())
    }

    /// The certificate part of a login, as the plugin's basic auth applies it: the identity
    /// the certificate maps to (with revocation and client-id binding), then `[identity]
    /// password`: with `ignore` the identity becomes the username and no password is checked;
    /// with `require` the username sent must equal the identity, and the password is checked
    /// next. `None` without an `[identity]` section.
    pub fn certificate_login(
        &self,
        der: &[u8],
        client_id: Option<&str>,
        username: Option<&str>,
    ) -> Option<CertificateLogin> {
        let cfg = self.config.identity.as_ref()?;
        Some(match self.certificate_identity(der, client_id)? {
            Err(why) => CertificateLogin::Refused(why),
            Ok(identity) => match cfg.password {
                identity::PasswordPolicy::Ignore => CertificateLogin::AsIdentity(identity),
                identity::PasswordPolicy::Require if username == Some(identity.name.as_str()) => {
                    CertificateLogin::CheckPassword(identity)
                }
                identity::PasswordPolicy::Require => CertificateLogin::UsernameMismatch(identity),
            },
        })
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
        if let Some(id) = &self.config.identity {
            parts.push(format!(
                "identity from {:?}, superusers [{}], {} revoked certificates",
                id.source,
                id.superusers.join(", "),
                self.revoked.as_ref().map_or(0, RevocationList::len)
            ));
        }
        if parts.is_empty() {
            "no password_file and no acl_file: nothing to enforce".to_string()
        } else {
            parts.join("; ")
        }
    }

    /// Basic authentication as the plugin answers it, without a credential cache (what
    /// `mqttguard check` asks): the same steps as [`Policy::begin_auth`], then the hash.
    pub fn authenticate(&self, username: Option<&str>, password: Option<&[u8]>) -> AuthOutcome {
        self.authenticate_cached(&CredentialCache::new(), username, password)
    }

    /// Basic authentication with the verified-credential cache: the first step, which either
    /// decides at once (no username, unknown user, no password, cache hit) or says which hash
    /// to verify. The caller runs [`PendingVerify::verify`] here or on another thread.
    pub fn begin_auth(
        &self,
        cache: &CredentialCache,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> AuthStep {
        let Some(db) = &self.passwd else {
            return AuthStep::Done(AuthOutcome::Defer);
        };
        let Some(username) = username.filter(|u| !u.is_empty()) else {
            return AuthStep::Done(AuthOutcome::Defer);
        };
        let password = password.filter(|p| !p.is_empty());
        let Some((hash, fingerprint)) = db.hash_and_fingerprint(username) else {
            return match (&self.decoy, password) {
                (Some(decoy), Some(_)) => AuthStep::Verify(PendingVerify {
                    hash: decoy.clone(),
                    fingerprint: 0,
                    capacity: 0,
                    cacheable: false,
                    decoy: true,
                }),
                _ => AuthStep::Done(AuthOutcome::Deny(AuthFailure::UnknownUser)),
            };
        };
        let Some(password) = password else {
            return AuthStep::Done(AuthOutcome::Deny(AuthFailure::NoPassword));
        };
        let ttl = Duration::from_secs(self.config.auth.cache_seconds);
        if cache.hit(username, password, fingerprint, ttl) {
            return AuthStep::Done(AuthOutcome::Allow);
        }
        AuthStep::Verify(PendingVerify {
            hash: hash.clone(),
            fingerprint,
            capacity: self.config.auth.cache_entries,
            cacheable: !ttl.is_zero(),
            decoy: false,
        })
    }

    /// Basic authentication with the cache, verifying on this thread.
    pub fn authenticate_cached(
        &self,
        cache: &CredentialCache,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> AuthOutcome {
        match self.begin_auth(cache, username, password) {
            AuthStep::Done(outcome) => outcome,
            AuthStep::Verify(pending) => pending.verify(
                cache,
                username.unwrap_or_default(),
                password.unwrap_or_default(),
            ),
        }
    }

    /// An ACL decision; `None` when no ACL file is configured (the broker then allows).
    pub fn check(
        &self,
        client: &acl::Client<'_>,
        topic: &str,
        access: acl::Access,
    ) -> Option<Decision> {
        self.decide(client, acl::Topic::new(topic), access)
    }

    /// [`Policy::check`] of a topic already scanned (the broker's hot path).
    #[inline]
    pub fn decide(
        &self,
        client: &acl::Client<'_>,
        topic: acl::Topic<'_>,
        access: acl::Access,
    ) -> Option<Decision> {
        let acl = self.acl.as_ref()?;
        if let Some(name) = client.username {
            // A superuser may do everything with a topic, but only with a topic: what is not
            // a topic name (empty, or with `+`/`#` for READ/WRITE) is decided by the ACL,
            // which denies it.
            let superuser = || self.superusers().iter().any(|s| s == name);
            let valid = || match access {
                acl::Access::Read | acl::Access::Write => topic.is_name(),
                _ => !topic.as_str().is_empty(),
            };
            if access != acl::Access::Unsubscribe && superuser() && valid() {
                return Some(Decision {
                    allowed: true,
                    reason: acl::Reason::Superuser,
                    read_client_id: false,
                });
            }
        }
        Some(acl.decide(client, topic, access, self.config.acl.check_subscribe))
    }
}
