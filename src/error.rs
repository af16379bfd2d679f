//! Error types shared by the policy core. Every error that comes from a file names the file,
//! and the line when one line is at fault, so the broker log points straight at the problem.

use std::fmt;
use std::path::{Path, PathBuf};

/// An error found at a place in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<E> {
    pub file: PathBuf,
    /// 1-based line number; 0 when the file as a whole is at fault.
    pub line: usize,
    pub error: E,
}

impl<E> Located<E> {
    pub fn new(file: &Path, line: usize, error: E) -> Self {
        Located {
            file: file.to_path_buf(),
            line,
            error,
        }
    }
}

impl<E: fmt::Display> fmt::Display for Located<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.error)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.error)
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for Located<E> {}

/// Why a policy could not be loaded. Any of these keeps the broker from starting, or keeps the
/// previous policy in force on reload.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Acl(#[from] Located<crate::acl::AclError>),
    #[error("{0}")]
    Passwd(#[from] Located<crate::passwd::PasswdError>),
    #[error("{0}")]
    Config(#[from] Located<crate::config::ConfigError>),
    #[error("{0}")]
    Option(#[from] crate::policy::OptionError),
    #[error("{0}")]
    Identity(Located<crate::identity::IdentityError>),
}

/// Reads a whole policy file. Symlinks are followed (Kubernetes ConfigMap and Secret mounts
/// are symlink chains); the target must be a regular file.
pub fn read_policy_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    let io = |source| LoadError::Io {
        file: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    std::fs::read(path).map_err(io)
}

/// A warning for a secret file others can read (Mosquitto 2.0.x patch releases and 2.1 warn
/// likewise). Not an error: refusing would break existing deployments on upgrade.
pub fn world_readable_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o004 != 0).then(|| {
        format!(
            "{}: the password file is readable by every user (mode {:o}); chmod 0600 or 0640",
            path.display(),
            mode & 0o777
        )
    })
}
