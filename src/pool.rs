//! Slow password verification off the broker's thread (Mosquitto 2.1's delayed basic auth),
//! bounded in every dimension an unauthenticated client can push on.
//!
//! - [`VerifyPool`]: a few worker threads and a bounded queue. A job is refused when the queue
//!   is full or when its username already has its share of verifications in flight; a job
//!   whose attempt was superseded is skipped unhashed; a job that waited too long is answered
//!   as expired without hashing; dropping the pool discards the queue and joins the threads
//!   after at most the hashes already running.
//! - [`Parked`]: which login attempt each parked client id is waiting for. The broker answers a
//!   delayed login by client id alone, so a result may only be handed back while the attempt
//!   it was computed for is still the one parked under that id.
//!
//! Results are collected here and handed back on the broker's thread, which alone may
//! complete an authentication.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Identifies one login attempt, unique in the process.
pub type Ticket = u64;

static NEXT_TICKET: AtomicU64 = AtomicU64::new(1);

/// A fresh ticket.
pub fn new_ticket() -> Ticket {
    NEXT_TICKET.fetch_add(1, Ordering::Relaxed)
}

/// One verification to run off the broker's thread.
pub struct Job<R> {
    /// The login attempt this verifies.
    pub ticket: Ticket,
    /// Whom to answer: the client id the broker parked the connection under.
    pub client_id: String,
    /// The username's key for the per-user limit (a digest; see [`VerifyPool::user_key`]).
    pub user_key: u64,
    /// Set when the attempt is superseded: the job is then skipped.
    pub cancelled: Arc<AtomicBool>,
    /// The verification itself; its result is handed back in a [`Done`].
    pub work: Box<dyn FnOnce() -> R + Send>,
    enqueued: Instant,
}

impl<R> Job<R> {
    /// A job queued now.
    pub fn new(
        ticket: Ticket,
        client_id: String,
        user_key: u64,
        cancelled: Arc<AtomicBool>,
        work: Box<dyn FnOnce() -> R + Send>,
    ) -> Job<R> {
        Job {
            ticket,
            client_id,
            user_key,
            cancelled,
            work,
            enqueued: Instant::now(),
        }
    }
}

/// A finished job.
#[derive(Debug)]
pub struct Done<R> {
    /// The login attempt it verified.
    pub ticket: Ticket,
    /// The client id the broker parked the connection under.
    pub client_id: String,
    /// `None`: the job waited longer than the pool's `max_wait` and was not run, or panicked.
    pub result: Option<R>,
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The queue is full.
    Full,
    /// This username already has its share of verifications queued or running.
    UserBusy,
    /// The pool is shutting down.
    Closed,
}

/// Limits of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Worker threads (at least one is started).
    pub threads: usize,
    /// Jobs queued or running at most.
    pub capacity: usize,
    /// Jobs queued or running per username at most.
    pub per_user: usize,
    /// A job that waited longer than this is answered as expired, unhashed.
    pub max_wait: Duration,
}

struct State<R> {
    queue: VecDeque<Job<R>>,
    running: usize,
    in_flight: HashMap<u64, usize>,
    shutdown: bool,
}

impl<R> State<R> {
    fn release(&mut self, user_key: u64) {
        if let Some(n) = self.in_flight.get_mut(&user_key) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&user_key);
            }
        }
    }
}

struct Shared<R> {
    state: Mutex<State<R>>,
    wake: Condvar,
    done: Mutex<Vec<Done<R>>>,
}

impl<R> Shared<R> {
    /// Jobs queued and running now.
    fn load(&self) -> (usize, usize) {
        let state = lock(&self.state);
        (state.queue.len(), state.running)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves consistent data (counters and queues).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Worker threads and a bounded queue of verifications; finished jobs are kept until the
/// broker's thread takes them.
pub struct VerifyPool<R: Send + 'static> {
    shared: Arc<Shared<R>>,
    limits: PoolLimits,
    keys: std::collections::hash_map::RandomState,
    threads: Vec<JoinHandle<()>>,
}

impl<R: Send + 'static> VerifyPool<R> {
    /// Starts `limits.threads` workers (at least one).
    pub fn new(limits: PoolLimits) -> std::io::Result<VerifyPool<R>> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                running: 0,
                in_flight: HashMap::new(),
                shutdown: false,
            }),
            wake: Condvar::new(),
            done: Mutex::new(Vec::new()),
        });
        let mut pool = VerifyPool {
            shared,
            limits,
            keys: Default::default(),
            threads: Vec::new(),
        };
        for n in 0..limits.threads.max(1) {
            let shared = Arc::clone(&pool.shared);
            let max_wait = limits.max_wait;
            let handle = std::thread::Builder::new()
                .name(format!("mqttguard-verify-{n}"))
                .spawn(move || worker(&shared, max_wait))?;
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    /// The per-user key of a username (a keyed digest: a 64 KB username costs 8 bytes).
    pub fn user_key(&self, username: &str) -> u64 {
        use std::hash::BuildHasher;
        self.keys.hash_one(username)
    }

    /// Queues a job, or says why not (the caller then answers at once).
    pub fn submit(&self, job: Job<R>) -> Result<(), Refusal> {
        let mut state = lock(&self.shared.state);
        if state.shutdown {
            return Err(Refusal::Closed);
        }
        if state.queue.len() + state.running >= self.limits.capacity {
            return Err(Refusal::Full);
        }
        let n = state.in_flight.entry(job.user_key).or_insert(0);
        if *n >= self.limits.per_user {
            return Err(Refusal::UserBusy);
        }
        *n += 1;
        state.queue.push_back(job);
        drop(state);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Takes every finished job.
    pub fn take_done(&self) -> Vec<Done<R>> {
        let mut done = lock(&self.shared.done);
        if done.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut *done)
        }
    }

    /// Whether any job is queued, running or finished but not yet taken.
    pub fn busy(&self) -> bool {
        let state = lock(&self.shared.state);
        !state.queue.is_empty() || state.running > 0 || !lock(&self.shared.done).is_empty()
    }

    /// Jobs queued and running now.
    pub fn load(&self) -> (usize, usize) {
        self.shared.load()
    }

    /// A reader of [`VerifyPool::load`] that another thread can keep (it holds no thread).
    pub fn load_probe(&self) -> Arc<dyn Fn() -> (usize, usize) + Send + Sync> {
        let shared = Arc::clone(&self.shared);
        Arc::new(move || shared.load())
    }
}

fn worker<R>(shared: &Shared<R>, max_wait: Duration) {
    loop {
        let job = {
            let mut state = lock(&shared.state);
            loop {
                if state.shutdown {
                    return;
                }
                if let Some(job) = state.queue.pop_front() {
                    if job.cancelled.load(Ordering::Acquire) {
                        // Superseded while queued: no work for a client that is gone.
                        state.release(job.user_key);
                        continue;
                    }
                    state.running += 1;
                    break job;
                }
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Job {
            ticket,
            client_id,
            user_key,
            cancelled,
            work,
            enqueued,
        } = job;
        let result = if enqueued.elapsed() > max_wait {
            None
        } else {
            // A panicking verification is a failed one.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).ok()
        };
        {
            let mut state = lock(&shared.state);
            state.running -= 1;
            state.release(user_key);
        }
        if !cancelled.load(Ordering::Acquire) {
            lock(&shared.done).push(Done {
                ticket,
                client_id,
                result,
            });
        }
    }
}

impl<R: Send + 'static> Drop for VerifyPool<R> {
    /// Discards queued jobs (their passwords are zeroised as they drop) and joins every
    /// thread, which finishes at most the hash it is running: the library can then be
    /// unloaded safely, and nothing is left to drain.
    fn drop(&mut self) {
        let queued = {
            let mut state = lock(&self.shared.state);
            state.shutdown = true;
            std::mem::take(&mut state.queue)
        };
        drop(queued);
        self.shared.wake.notify_all();
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
        lock(&self.shared.done).clear();
    }
}

/// The login attempt each parked client id waits for, across every plugin instance of the
/// process (the broker's table of parked clients is one per process, keyed by client id).
#[derive(Debug, Default)]
pub struct Parked {
    entries: Mutex<HashMap<String, ParkedEntry>>,
}

#[derive(Debug)]
struct ParkedEntry {
    ticket: Ticket,
    owner: usize,
    cancelled: Arc<AtomicBool>,
}

impl Parked {
    /// No attempt parked.
    pub fn new() -> Parked {
        Parked::default()
    }

    /// Records that `client_id` now waits for `ticket`, verified by `owner`'s pool.
    pub fn park(&self, client_id: &str, ticket: Ticket, owner: usize, cancelled: Arc<AtomicBool>) {
        let old = lock(&self.entries).insert(
            client_id.to_string(),
            ParkedEntry {
                ticket,
                owner,
                cancelled,
            },
        );
        if let Some(old) = old {
            if old.ticket != ticket {
                old.cancelled.store(true, Ordering::Release);
            }
        }
    }

    /// A new login attempt under `client_id` began: the broker has no other connection parked
    /// under that id any more, so any earlier attempt's result must never be applied.
    pub fn supersede(&self, client_id: &str) {
        let mut entries = lock(&self.entries);
        if entries.is_empty() {
            return;
        }
        if let Some(old) = entries.remove(client_id) {
            old.cancelled.store(true, Ordering::Release);
        }
    }

    /// Takes the entry if `client_id` still waits for `ticket`; `false` means the result
    /// belongs to an attempt that is gone and must be dropped.
    pub fn take(&self, client_id: &str, ticket: Ticket) -> bool {
        let mut entries = lock(&self.entries);
        match entries.get(client_id) {
            Some(entry) if entry.ticket == ticket => {
                entries.remove(client_id);
                true
            }
            _ => false,
        }
    }

    /// Forgets every attempt `owner` verifies (its pool is being shut down).
    pub fn forget_owner(&self, owner: usize) {
        lock(&self.entries).retain(|_, e| {
            if e.owner == owner {
                e.cancelled.store(true, Ordering::Release);
                false
            } else {
                true
            }
        });
    }

    /// Parked attempts.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// Whether no attempt is parked.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(capacity: usize, per_user: usize) -> PoolLimits {
        PoolLimits {
            threads: 2,
            capacity,
            per_user,
            max_wait: Duration::from_secs(60),
        }
    }

    fn job(pool: &VerifyPool<bool>, n: u64, user: &str, ok: bool) -> Job<bool> {
        Job::new(
            n,
            format!("c{n}"),
            pool.user_key(user),
            Arc::new(AtomicBool::new(false)),
            Box::new(move || ok),
        )
    }

    fn wait_done(pool: &VerifyPool<bool>, n: usize) -> Vec<Done<bool>> {
        let mut done = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while done.len() < n && Instant::now() < deadline {
            done.extend(pool.take_done());
            std::thread::yield_now();
        }
        done
    }

    #[test]
    fn runs_jobs_and_joins() {
        let pool = VerifyPool::new(limits(100, 100)).expect("threads");
        for n in 0..10 {
            pool.submit(job(&pool, n, &format!("u{n}"), n % 2 == 0))
                .expect("queued");
        }
        pool.submit(Job::new(
            99,
            "boom".into(),
            pool.user_key("boom"),
            Arc::new(AtomicBool::new(false)),
            Box::new(|| panic!("hash library bug")),
        ))
        .expect("queued");
        let done = wait_done(&pool, 11);
        assert_eq!(done.len(), 11);
        assert!(done
            .iter()
            .any(|d| d.client_id == "boom" && d.result.is_none()));
        assert!(done.iter().any(|d| d.ticket == 4 && d.result == Some(true)));
        assert!(done
            .iter()
            .any(|d| d.ticket == 3 && d.result == Some(false)));
        assert!(!pool.busy());
    }

    #[test]
    fn bounded_per_user_and_overall() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let pool: VerifyPool<bool> = VerifyPool::new(PoolLimits {
            threads: 1,
            ..limits(3, 2)
        })
        .expect("threads");
        let blocking = |n: u64, user: &str| {
            let gate = Arc::clone(&gate);
            Job::new(
                n,
                format!("c{n}"),
                pool.user_key(user),
                Arc::new(AtomicBool::new(false)),
                Box::new(move || {
                    let (open, cv) = &*gate;
                    let mut open = open.lock().unwrap();
                    while !*open {
                        open = cv.wait(open).unwrap();
                    }
                    true
                }),
            )
        };
        pool.submit(blocking(1, "admin")).expect("1st");
        pool.submit(blocking(2, "admin")).expect("2nd");
        assert_eq!(pool.submit(blocking(3, "admin")), Err(Refusal::UserBusy));
        pool.submit(blocking(4, "carol")).expect("other user");
        assert_eq!(pool.submit(blocking(5, "dave")), Err(Refusal::Full));
        {
            let (open, cv) = &*gate;
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
        assert_eq!(wait_done(&pool, 3).len(), 3);
        pool.submit(blocking(6, "admin"))
            .expect("admin again after the others finished");
    }

    #[test]
    fn cancelled_jobs_are_skipped_and_drop_discards_the_queue() {
        let pool: VerifyPool<bool> = VerifyPool::new(PoolLimits {
            threads: 1,
            ..limits(1000, 1000)
        })
        .expect("threads");
        let ran = Arc::new(AtomicU64::new(0));
        let cancelled = Arc::new(AtomicBool::new(true));
        for n in 0..5 {
            let ran = Arc::clone(&ran);
            pool.submit(Job::new(
                n,
                "gone".into(),
                pool.user_key("u"),
                Arc::clone(&cancelled),
                Box::new(move || {
                    ran.fetch_add(1, Ordering::Relaxed);
                    true
                }),
            ))
            .expect("queued");
        }
        // A sentinel job shows the worker got past the cancelled ones.
        pool.submit(job(&pool, 100, "v", true)).expect("queued");
        let done = wait_done(&pool, 1);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].ticket, 100);
        assert_eq!(ran.load(Ordering::Relaxed), 0);
        // Many slow jobs queued: drop returns after at most the running one.
        for n in 0..50 {
            pool.submit(Job::new(
                n,
                "slow".into(),
                pool.user_key(&format!("s{n}")),
                Arc::new(AtomicBool::new(false)),
                Box::new(|| {
                    std::thread::sleep(Duration::from_millis(20));
                    true
                }),
            ))
            .expect("queued");
        }
        let started = Instant::now();
        drop(pool);
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn expired_jobs_are_answered_unrun() {
        let pool: VerifyPool<bool> = VerifyPool::new(PoolLimits {
            max_wait: Duration::ZERO,
            ..limits(10, 10)
        })
        .expect("threads");
        let mut j = job(&pool, 7, "u", true);
        j.enqueued = Instant::now() - Duration::from_secs(1);
        pool.submit(j).expect("queued");
        let done = wait_done(&pool, 1);
        assert_eq!(done[0].result, None);
    }

    #[test]
    fn parked_results_apply_only_to_their_attempt() {
        let parked = Parked::new();
        let a = Arc::new(AtomicBool::new(false));
        parked.park("X", 1, 0, Arc::clone(&a));
        // A new attempt under the same id supersedes the first.
        parked.supersede("X");
        assert!(a.load(Ordering::Relaxed));
        assert!(!parked.take("X", 1));
        let b = Arc::new(AtomicBool::new(false));
        parked.park("X", 2, 0, Arc::clone(&b));
        assert!(
            !parked.take("X", 1),
            "an old result completed a new attempt"
        );
        assert!(parked.take("X", 2));
        assert!(!parked.take("X", 2), "taken twice");
        parked.park("Y", 3, 7, Arc::new(AtomicBool::new(false)));
        parked.forget_owner(7);
        assert!(parked.is_empty());
    }
}
