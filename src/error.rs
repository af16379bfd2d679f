//! Positions in policy files and reading them: the leaf every parser builds on. Every error
//! that comes from a file names the file, and the line when one line is at fault, so the
//! broker log points straight at the problem. (What a whole load can fail with,
//! [`crate::policy::LoadError`], lives with the loader.)

use std::fmt;
use std::path::{Path, PathBuf};

/// An error found at a place in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<E> {
    /// The file at fault.
    pub file: PathBuf,
    /// 1-based line number; 0 when the file as a whole is at fault.
    pub line: usize,
    /// What is wrong there.
    pub error: E,
}

impl<E> Located<E> {
    /// Locates `error` at `line` of `file`.
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

/// A policy file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot read: {source}", file.display())]
pub struct ReadError {
    /// The file, as configured.
    pub file: PathBuf,
    /// What the system said.
    #[source]
    pub source: std::io::Error,
}

/// Reads a whole policy file. Symlinks are followed (Kubernetes ConfigMap and Secret mounts
/// are symlink chains); the target must be a regular file.
pub fn read_policy_file(path: &Path) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError {
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
