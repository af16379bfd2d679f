//! Findings across files: users of the ACL file that cannot log in, and users of the
//! password file that only patterns apply to.

use std::path::Path;

use super::{codes, Finding, PasswdEntry};
use crate::acl::UserLine;
use crate::passwd::PasswordDb;

/// Users of the ACL file absent from the password file, and the reverse.
pub fn cross_check(
    acl_file: &Path,
    acl_users: &[UserLine],
    passwd_file: &Path,
    db: &PasswordDb,
    entries: &[PasswdEntry],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for user in acl_users {
        if seen.contains(&user.name.as_str()) {
            continue;
        }
        seen.push(&user.name);
        if !db.contains(&user.name) {
            out.push(Finding::warning(
                acl_file,
                user.line,
                codes::ACL_USER_NOT_IN_PASSWD,
                format!(
                    "user {} is not in the password file {}: it cannot log in",
                    user.name,
                    passwd_file.display()
                ),
            ));
        }
    }
    for entry in entries {
        if !seen.contains(&entry.name.as_str()) {
            out.push(Finding::warning(
                passwd_file,
                entry.line,
                codes::PASSWD_USER_NOT_IN_ACL,
                format!(
                    "user {} has no `user` block in the ACL file {}: only the pattern rules apply to it",
                    entry.name,
                    acl_file.display()
                ),
            ));
        }
    }
    out
}
