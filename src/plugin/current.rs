//! The policy in force, swapped whole on reload, and a cheaper way to read it on the ACL hot
//! path.
//!
//! Every reader may load it through `ArcSwap` (lock-free, never blocks a reload). The ACL
//! check runs for every message delivered, and an `ArcSwap` load costs more there than the
//! rest of a small check; so the check reads a *hot slot* instead: one `Arc` of the policy,
//! owned by whoever holds the slot's flag, refreshed when the generation (bumped by every
//! swap) has moved; the slot's memo of allows forgets everything whenever the slot takes a
//! new policy. The flag is only ever *tried*: a caller that finds it held (another
//! thread, or an ACL check nested inside another one, which Mosquitto can do when it
//! publishes a log line as a message) reads through `ArcSwap` instead. Nobody ever waits.
//!
//! In Mosquitto 2.0 and 2.1 every ACL check runs on the broker's main thread, one at a time,
//! so in practice the slot is always free and never contended.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::memo::Memo;
use crate::policy::Policy;

/// What the hot slot holds: the policy of a generation, and the memo of its decisions.
struct Slot {
    generation: u64,
    policy: Arc<Policy>,
    memo: Memo,
    /// Whether the ACL check uses the memo under this policy (it has an ACL, and `[acl]
    /// memo_decisions` is on), worked out once per policy.
    use_memo: bool,
}

/// Whether the ACL check uses the memo under `policy`.
fn uses_memo(policy: &Policy) -> bool {
    policy.acl.is_some() && policy.config.acl.memo_decisions
}

impl Slot {
    /// Takes `policy` (of `generation`) and forgets what the memo knew of the one before.
    fn take(&mut self, policy: Arc<Policy>, generation: u64) {
        self.use_memo = uses_memo(&policy);
        self.policy = policy;
        self.generation = generation;
        self.memo.forget_all();
    }
}

/// What [`CurrentPolicy::with`] hands its caller: the policy in force, and the memo (which
/// answers for that policy) when the caller holds the hot slot and the policy uses one.
pub(crate) struct Hot<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) memo: Option<&'a mut Memo>,
}

pub(crate) struct CurrentPolicy {
    swap: Arc<ArcSwap<Policy>>,
    /// Bumped after every swap.
    generation: AtomicU64,
    /// Held while a caller uses `slot`.
    busy: AtomicBool,
    slot: UnsafeCell<Slot>,
}

// SAFETY: `slot` is only read or written through a `Held`, which exists only while `busy` is
// held: taken with an acquiring compare-exchange, released with a releasing store
// (`CurrentPolicy::try_hold`, `Held::drop`); everything else is `Sync` already.
unsafe impl Sync for CurrentPolicy {}

/// The hot slot, held: at most one exists at a time (the flag), and dropping it releases the
/// flag, also when the holder panics.
struct Held<'a> {
    busy: &'a AtomicBool,
    slot: &'a mut Slot,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::Release);
    }
}

impl CurrentPolicy {
    pub(crate) fn new(policy: Policy) -> CurrentPolicy {
        let policy = Arc::new(policy);
        CurrentPolicy {
            swap: Arc::new(ArcSwap::new(Arc::clone(&policy))),
            generation: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            slot: UnsafeCell::new(Slot {
                generation: 0,
                use_memo: uses_memo(&policy),
                policy,
                memo: Memo::new(),
            }),
        }
    }

    /// The policy in force, for a short use.
    pub(crate) fn load(&self) -> Guard<Arc<Policy>> {
        self.swap.load()
    }

    /// The policy in force, to keep.
    pub(crate) fn load_full(&self) -> Arc<Policy> {
        self.swap.load_full()
    }

    /// The swap itself, for a thread that reads the policy on its own (housekeeping).
    pub(crate) fn shared(&self) -> Arc<ArcSwap<Policy>> {
        Arc::clone(&self.swap)
    }

    /// Puts a new policy in force. When the hot slot is free (a reload runs on the broker's
    /// thread, between checks), it takes the new policy at once, so the previous one is freed
    /// now rather than at the next check.
    pub(crate) fn store(&self, policy: Arc<Policy>) {
        self.swap.store(Arc::clone(&policy));
        // After the swap: a reader that sees the new generation loads the new policy.
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        // A store racing this one bumps the generation again, so a slot left with an older
        // policy is refreshed by the next check.
        if let Some(held) = self.try_hold() {
            if held.slot.generation < generation {
                held.slot.take(policy, generation);
            }
        }
    }

    /// Takes the hot slot if it is free; never waits.
    #[inline(always)]
    fn try_hold(&self) -> Option<Held<'_>> {
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // SAFETY: this caller now holds `busy`, so nobody else touches the slot until the
        // `Held` drops; its holder cannot reach the slot again except through another
        // `try_hold`, which finds `busy` held.
        let slot = unsafe { &mut *self.slot.get() };
        Some(Held {
            busy: &self.busy,
            slot,
        })
    }

    /// Runs `f` with the policy in force: through the hot slot when it is free (no reference
    /// count touched, no `ArcSwap` debt; with the slot's memo), through `ArcSwap` otherwise
    /// (without a memo). The slot may hold the previous policy for as long as no check has
    /// run since a swap; a check never uses it.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(Hot<'_>) -> R) -> R {
        let mut held = self.try_hold();
        let loaded;
        // One call of `f` on both ways, so that it can be inlined here.
        let hot = match held.as_mut() {
            Some(held) => {
                // Read before the swap's load below, so a swap in between is seen next time.
                let generation = self.generation.load(Ordering::Acquire);
                let slot = &mut *held.slot;
                if slot.generation != generation {
                    slot.take(self.swap.load_full(), generation);
                }
                Hot {
                    policy: &slot.policy,
                    memo: slot.use_memo.then_some(&mut slot.memo),
                }
            }
            None => {
                loaded = self.swap.load();
                Hot {
                    policy: &loaded,
                    memo: None,
                }
            }
        };
        f(hot)
    }
}

#[cfg(test)]
mod tests {
    use super::CurrentPolicy;
    use crate::policy::{Options, Policy};
    use std::sync::Arc;

    fn policy(acl: &str) -> Policy {
        // A directory per call: the tests run in parallel.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mqttguard-current-{}-{call}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("acl");
        std::fs::write(&file, acl).expect("write");
        let options = Options {
            acl_file: Some(file),
            ..Options::default()
        };
        Policy::load(&options).expect("loads")
    }

    /// A swap is seen by the next hot read; a nested read (the slot held) sees the same policy
    /// through `ArcSwap`.
    #[test]
    fn the_hot_slot_follows_every_swap() {
        let current = CurrentPolicy::new(policy("topic a\n"));
        let rules =
            |hot: super::Hot<'_>| hot.policy.acl.as_ref().map_or(0, |a| a.topic_rule_count());
        assert_eq!(current.with(rules), 1);
        current.store(Arc::new(policy("topic a\ntopic b\n")));
        assert_eq!(current.with(rules), 2);
        // A read nested in a read that holds the slot: the same policy, through `ArcSwap`.
        let nested = || {
            current.with(|outer| {
                (
                    rules(outer),
                    current.with(|inner| {
                        assert!(inner.memo.is_none());
                        rules(inner)
                    }),
                )
            })
        };
        assert_eq!(nested(), (2, 2));
        current.store(Arc::new(policy("topic a\ntopic b\ntopic c\n")));
        assert_eq!(nested(), (3, 3));
        // A panic inside releases the slot.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            current.with(|_| -> usize { panic!("inside") })
        }));
        assert!(caught.is_err());
        current.store(Arc::new(policy("topic a\n")));
        assert_eq!(current.with(rules), 1);
    }

    /// Threads reading while another swaps never see a policy older than the last swap that
    /// finished before their read began.
    #[test]
    fn concurrent_reads_see_the_last_swap() {
        let current = Arc::new(CurrentPolicy::new(policy("topic a\n")));
        let policies: Vec<Arc<Policy>> = (1..=20)
            .map(|n| Arc::new(policy(&"topic x\n".repeat(n))))
            .collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (current, stop) = (Arc::clone(&current), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        current.with(|hot| assert!(hot.policy.acl.is_some()));
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for (n, p) in policies.iter().enumerate() {
            current.store(Arc::clone(p));
            let seen =
                current.with(|hot| hot.policy.acl.as_ref().map_or(0, |a| a.topic_rule_count()));
            assert!(seen > n, "saw {seen} rules after swap {}", n + 1);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            r.join().expect("reader");
        }
    }
}
