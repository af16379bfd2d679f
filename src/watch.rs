//! Noticing that a policy file changed, without re-reading it: each file's identity and times
//! (device, inode, size, modification and change times of the file a path resolves to,
//! symlinks followed) are compared with the last ones seen.
//!
//! That catches the three ways files change in practice: an in-place rewrite (size and times),
//! a rename over the file, as `mqttguard passwd` does (a new inode), and a Kubernetes
//! ConfigMap/Secret update, where the kubelet writes a fresh timestamped directory and swaps
//! the `..data` symlink the file symlinks point through (a new inode again). A change is
//! reported once it has been stable for a settle time, so a file written in several steps is
//! loaded once, complete. While nothing changes a poll costs one `stat` per file.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What identifies one version of a file. `None` in a [`Watcher`] means the path does not
/// resolve (missing, dangling symlink, unreadable directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

/// The stamp of the file `path` resolves to.
pub fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    })
}

/// Watches a set of paths.
#[derive(Debug)]
pub struct Watcher {
    paths: Vec<PathBuf>,
    seen: Vec<Option<Stamp>>,
    /// A change not yet reported: the stamps and when they were first seen so.
    pending: Option<(Vec<Option<Stamp>>, Instant)>,
    settle: Duration,
}

impl Watcher {
    /// Starts watching `paths` as they are now.
    pub fn new(paths: Vec<PathBuf>, settle: Duration) -> Watcher {
        let seen = paths.iter().map(|p| stamp(p)).collect();
        Watcher {
            paths,
            seen,
            pending: None,
            settle,
        }
    }

    /// The watched paths.
    #[cfg(test)]
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Watches these paths from now on; paths watched before keep what was seen of them.
    pub fn set_paths(&mut self, paths: Vec<PathBuf>) {
        if paths == self.paths {
            return;
        }
        let seen = paths
            .iter()
            .map(|p| match self.paths.iter().position(|q| q == p) {
                Some(i) => self.seen[i],
                None => stamp(p),
            })
            .collect();
        self.paths = paths;
        self.seen = seen;
        self.pending = None;
    }

    /// Looks at every path; `true` once a change has stayed the same for the settle time (it
    /// is then taken as seen).
    pub fn poll(&mut self, now: Instant) -> bool {
        let current: Vec<Option<Stamp>> = self.paths.iter().map(|p| stamp(p)).collect();
        if current == self.seen {
            self.pending = None;
            return false;
        }
        match &self.pending {
            Some((stamps, since)) if *stamps == current => {
                if now.saturating_duration_since(*since) >= self.settle {
                    self.seen = current;
                    self.pending = None;
                    return true;
                }
                false
            }
            _ => {
                self.pending = Some((current, now));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn settled(w: &mut Watcher, t: &mut Instant) -> bool {
        // Two polls a settle time apart, as the plugin's loop does.
        let first = w.poll(*t);
        *t += Duration::from_millis(300);
        first || w.poll(*t)
    }

    #[test]
    fn sees_rewrite_rename_and_kubelet_swap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        // A kubelet-style volume: ..2026_01_01/acl, ..data -> ..2026_01_01, acl -> ..data/acl
        std::fs::create_dir(d.join("..2026_01_01")).expect("mkdir");
        std::fs::write(d.join("..2026_01_01/acl"), "topic read a\n").expect("write");
        symlink("..2026_01_01", d.join("..data")).expect("symlink");
        symlink("..data/acl", d.join("acl")).expect("symlink");
        std::fs::write(d.join("passwd"), "x").expect("write");
        let mut w = Watcher::new(
            vec![d.join("acl"), d.join("passwd")],
            Duration::from_millis(250),
        );
        let mut t = Instant::now();
        assert!(!settled(&mut w, &mut t), "nothing changed");

        // In-place rewrite (size changes).
        std::fs::write(d.join("passwd"), "xy").expect("write");
        assert!(settled(&mut w, &mut t));
        assert!(!settled(&mut w, &mut t), "reported once");

        // Rename over.
        std::fs::write(d.join("passwd.tmp"), "zz").expect("write");
        std::fs::rename(d.join("passwd.tmp"), d.join("passwd")).expect("rename");
        assert!(settled(&mut w, &mut t));

        // The kubelet's swap: a new timestamped dir, then ..data replaced atomically.
        std::fs::create_dir(d.join("..2026_01_02")).expect("mkdir");
        std::fs::write(d.join("..2026_01_02/acl"), "topic read b\n").expect("write");
        symlink("..2026_01_02", d.join("..data_tmp")).expect("symlink");
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).expect("swap");
        std::fs::remove_dir_all(d.join("..2026_01_01")).expect("rm old");
        assert!(settled(&mut w, &mut t));
        assert!(!settled(&mut w, &mut t));
    }

    #[test]
    fn waits_for_a_file_to_settle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("acl");
        std::fs::write(&p, "a").expect("write");
        let mut w = Watcher::new(vec![p.clone()], Duration::from_millis(250));
        let t0 = Instant::now();
        std::fs::write(&p, "ab").expect("write");
        assert!(!w.poll(t0), "first sight of a change is not reported");
        // Written again before the settle time ran out: the wait starts again.
        std::fs::write(&p, "abc").expect("write");
        assert!(!w.poll(t0 + Duration::from_millis(260)));
        assert!(!w.poll(t0 + Duration::from_millis(400)));
        assert!(w.poll(t0 + Duration::from_millis(520)));
        // A path that disappears is a change too; paths can be replaced.
        std::fs::remove_file(&p).expect("rm");
        assert!(!w.poll(t0 + Duration::from_secs(1)));
        assert!(w.poll(t0 + Duration::from_secs(2)));
        w.set_paths(vec![p.clone(), dir.path().join("other")]);
        assert_eq!(w.paths().len(), 2);
        assert!(!w.poll(t0 + Duration::from_secs(3)));
    }
}
