//! A background thread per plugin instance for work that must not wait for the broker's
//! events: watching the policy files (`[reload] watch`) and writing the Prometheus textfile
//! (`[metrics] textfile`). It never calls the broker: a change is turned into a SIGHUP to the
//! broker's own process, so the reload is exactly Mosquitto's (the plugin's RELOAD event with
//! its last-known-good swap, then the re-authentication of every connected client), on the
//! broker's thread, on 2.0 and 2.1 alike, with or without `per_listener_settings`.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::metrics::METRICS;
use crate::policy::{Options, Policy};
use crate::watch::Watcher;

/// How often the files are looked at; a change is reported after it stayed the same this long
/// too, so a reload follows a change within about two intervals.
const POLL: Duration = Duration::from_millis(250);

/// What the thread reads from its instance.
pub(crate) struct Shared {
    pub(crate) policy: Arc<ArcSwap<Policy>>,
    pub(crate) options: Options,
    /// Queued and running verifications (2.1), for the textfile's gauges.
    pub(crate) load: Arc<dyn Fn() -> (usize, usize) + Send + Sync>,
}

pub(crate) struct Housekeeping {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Housekeeping {
    pub(crate) fn start(shared: Shared) -> std::io::Result<Housekeeping> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("mqttguard-housekeeping".into())
                .spawn(move || run(&shared, &stop))?
        };
        Ok(Housekeeping {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Housekeeping {
    /// Stops and joins the thread (it wakes at once), so the library can be unloaded.
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared, stop: &(Mutex<bool>, Condvar)) {
    let policy = shared.policy.load_full();
    let mut watcher = Watcher::new(policy.files(&shared.options), POLL);
    let mut last_textfile: Option<Instant> = None;
    drop(policy);
    loop {
        {
            let (stopped, wake) = stop;
            let guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
            let (guard, _) = wake
                .wait_timeout_while(guard, POLL, |stopped| !*stopped)
                .unwrap_or_else(|e| e.into_inner());
            if *guard {
                return;
            }
        }
        let policy = shared.policy.load_full();
        let now = Instant::now();
        if policy.config.reload.watch {
            watcher.set_paths(policy.files(&shared.options));
            // Instances watching the same file (`per_listener_settings`) may each raise one;
            // the broker folds signals that arrive before its loop runs into one reload, and a
            // second reload of unchanged files is harmless. A change is never dropped.
            if watcher.poll(now) {
                raise_reload();
            }
        }
        if let Some(path) = &policy.config.metrics.textfile {
            let every = Duration::from_secs(match policy.config.metrics.sys_interval {
                0 => 10,
                n => n,
            });
            if last_textfile.is_none_or(|t| now.duration_since(t) >= every) {
                last_textfile = Some(now);
                let gauges = policy.gauges((shared.load)());
                // A failed write is retried at the next interval; there is no log from this
                // thread (the broker's log may only be written from its own thread).
                let _ = write_atomically(path, METRICS.prometheus(&gauges).as_bytes());
            }
        }
    }
}

/// Writes `path` through a temporary file in the same directory and a rename, so a reader
/// never sees a partial file.
fn write_atomically(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Asks the broker to reload, as an operator's SIGHUP does.
fn raise_reload() {
    // SAFETY: kill(2) on our own pid with a signal the broker handles (it sets a flag that its
    // main loop acts on); no memory is shared with the call.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGHUP);
    }
}
