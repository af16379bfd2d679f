//! A per-second budget for log lines, so a misbehaving client cannot flood the broker's log.
//! Lock-free and allocation-free: it is consulted on every denial.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// At most `per_second` permits in each whole second since it was made; the lines over that
/// are dropped and counted.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: AtomicU32,
    start: Instant,
    window: AtomicU64,
    used: AtomicU32,
    suppressed: AtomicU64,
}

/// What the caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Log the line. `suppressed` lines were dropped since the last permitted one.
    Log {
        /// The number of lines dropped since the last permitted one.
        suppressed: u64,
    },
    /// Over budget: drop the line (it is counted).
    Drop,
}

impl RateLimiter {
    /// A limiter allowing `per_second` lines a second.
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            per_second: AtomicU32::new(per_second),
            start: Instant::now(),
            window: AtomicU64::new(0),
            used: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Changes the budget (a reload may change the configuration).
    pub fn set_rate(&self, per_second: u32) {
        self.per_second.store(per_second, Ordering::Relaxed);
    }

    /// Asks for one line now.
    pub fn permit(&self) -> Permit {
        self.permit_at(self.start.elapsed().as_secs())
    }

    /// `second` is a monotonic second counter (exposed for tests).
    pub fn permit_at(&self, second: u64) -> Permit {
        if self.window.swap(second, Ordering::Relaxed) != second {
            self.used.store(0, Ordering::Relaxed);
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < self.per_second.load(Ordering::Relaxed) {
            Permit::Log {
                suppressed: self.suppressed.swap(0, Ordering::Relaxed),
            }
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            Permit::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_second_and_suppressed_count() {
        let r = RateLimiter::new(2);
        assert_eq!(r.permit_at(5), Permit::Log { suppressed: 0 });
        assert_eq!(r.permit_at(5), Permit::Log { suppressed: 0 });
        assert_eq!(r.permit_at(5), Permit::Drop);
        assert_eq!(r.permit_at(5), Permit::Drop);
        assert_eq!(r.permit_at(6), Permit::Log { suppressed: 2 });
        let none = RateLimiter::new(0);
        assert_eq!(none.permit_at(1), Permit::Drop);
    }
}
