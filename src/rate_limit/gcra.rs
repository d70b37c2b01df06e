//! The generic cell rate algorithm, lock-free.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One rate-limited cell: `rate` calls per `per`, bursts of up to `burst`.
///
/// GCRA keeps one number, the theoretical arrival time (TAT): when the cell would be
/// idle again if calls kept arriving at exactly the rate. A call at `now` is admitted
/// when `max(TAT, now) + T − now ≤ burst × T`, where `T = per / rate` is the emission
/// interval, and then moves TAT to `max(TAT, now) + T`. It is a token bucket of
/// `burst` tokens refilled one per `T`, stored as one word and updated with one
/// compare-and-swap.
#[derive(Debug)]
pub(crate) struct Gcra {
    /// Nanoseconds since the limiter's epoch, plus one (0 is "never used").
    tat: AtomicU64,
}

/// The limiter's fixed numbers, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    /// The emission interval `T`.
    pub(crate) interval: u64,
    /// `burst × T`: how far ahead of now TAT may run.
    pub(crate) tolerance: u64,
}

impl Quota {
    pub(crate) fn new(rate: u32, per: Duration, burst: u32) -> Self {
        let per = crate::clock::nanos(per);
        let interval = (per / u64::from(rate.max(1))).max(1);
        Self {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1))),
        }
    }
}

impl Default for Gcra {
    fn default() -> Self {
        Self {
            tat: AtomicU64::new(0),
        }
    }
}

impl Gcra {
    /// Admits a call at `now` (nanoseconds since the epoch), or says how long until
    /// one would be admitted.
    #[inline]
    pub(crate) fn check(&self, quota: Quota, now: u64) -> Result<(), Duration> {
        let mut seen = self.tat.load(Ordering::Relaxed);
        loop {
            let tat = seen.saturating_sub(1).max(now);
            let next = tat.saturating_add(quota.interval);
            let ahead = next - now;
            if ahead > quota.tolerance {
                return Err(Duration::from_nanos(ahead - quota.tolerance));
            }
            match self.tat.compare_exchange_weak(
                seen,
                next.saturating_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => seen = actual,
            }
        }
    }

    /// Whether the cell is full again at `now` (a call would find its whole burst):
    /// evicting it loses nothing.
    pub(crate) fn is_idle(&self, now: u64) -> bool {
        self.tat.load(Ordering::Relaxed).saturating_sub(1) <= now
    }
}
