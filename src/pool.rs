//! A small pool of threads for slow password verification (argon2id, many-iteration PBKDF2),
//! so that Mosquitto 2.1's single network thread never waits on a hash. Results are collected
//! here and handed back to the broker's thread, which alone may complete the authentication.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One verification to run off the broker's thread.
pub struct Job {
    /// Whom to answer: the client id the broker parked the connection under.
    pub client_id: String,
    pub work: Box<dyn FnOnce() -> bool + Send>,
}

/// A finished verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub client_id: String,
    pub verified: bool,
}

pub struct VerifyPool {
    jobs: Option<Sender<Job>>,
    done: Arc<Mutex<Vec<Done>>>,
    threads: Vec<JoinHandle<()>>,
}

impl VerifyPool {
    /// Starts `threads` workers (at least one).
    pub fn new(threads: usize) -> std::io::Result<VerifyPool> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let done = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for n in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            let done = Arc::clone(&done);
            let handle = std::thread::Builder::new()
                .name(format!("mqttguard-verify-{n}"))
                .spawn(move || worker(&queue, &done))?;
            handles.push(handle);
        }
        Ok(VerifyPool {
            jobs: Some(jobs),
            done,
            threads: handles,
        })
    }

    /// Queues a job; `false` if the pool is shutting down (the caller then answers itself).
    pub fn submit(&self, job: Job) -> bool {
        self.jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok())
    }

    /// Takes every finished verification.
    pub fn take_done(&self) -> Vec<Done> {
        match self.done.lock() {
            Ok(mut done) if !done.is_empty() => std::mem::take(&mut *done),
            _ => Vec::new(),
        }
    }
}

fn worker(queue: &Mutex<Receiver<Job>>, done: &Mutex<Vec<Done>>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return; // the pool was dropped
        };
        // A panicking verification is a failed one.
        let verified =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.work)).unwrap_or(false);
        if let Ok(mut done) = done.lock() {
            done.push(Done {
                client_id: job.client_id,
                verified,
            });
        }
    }
}

impl Drop for VerifyPool {
    /// Stops accepting work and joins every thread, so the library can be unloaded safely.
    fn drop(&mut self) {
        self.jobs = None;
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_and_joins() {
        let pool = VerifyPool::new(2).expect("threads");
        for n in 0..10 {
            assert!(pool.submit(Job {
                client_id: format!("c{n}"),
                work: Box::new(move || n % 2 == 0),
            }));
        }
        assert!(pool.submit(Job {
            client_id: "boom".into(),
            work: Box::new(|| panic!("hash library bug")),
        }));
        let mut done = Vec::new();
        while done.len() < 11 {
            done.extend(pool.take_done());
            std::thread::yield_now();
        }
        done.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        assert_eq!(
            done[0],
            Done {
                client_id: "boom".into(),
                verified: false
            }
        );
        assert!(done.iter().any(|d| d.client_id == "c4" && d.verified));
        assert!(done.iter().any(|d| d.client_id == "c3" && !d.verified));
        drop(pool);
    }
}
