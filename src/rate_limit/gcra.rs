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
///
/// **Waiting** (`max_wait`): a call that finds `max(TAT, now) + T − now` above the
/// tolerance by at most `max_wait` reserves its slot at once (TAT moves as for an
/// admitted call) and is told when it may go: `max(TAT, now) + T − burst × T`, the
/// moment it would have been admitted without waiting. Calls reserve in arrival
/// order, so the waiters go in that order, one per `T`.
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
    /// `tolerance` plus the longest wait: how far ahead of now TAT may run when a
    /// call may wait for its slot. Equal to `tolerance` when calls never wait.
    pub(crate) reserve: u64,
}

impl Quota {
    pub(crate) fn new(rate: u32, per: Duration, burst: u32, max_wait: Duration) -> Self {
        let per = crate::clock::nanos(per);
        let interval = (per / u64::from(rate.max(1))).max(1);
        let tolerance = interval.saturating_mul(u64::from(burst.max(1)));
        Self {
            interval,
            tolerance,
            reserve: tolerance.saturating_add(crate::clock::nanos(max_wait)),
        }
    }
}

/// The quota of a running limiter, which its handle may change: three words read
/// with plain loads per call. A call that runs while the quota changes may see the
/// old interval with the new tolerance, once: it is judged by a mix of the two.
#[derive(Debug)]
pub(crate) struct LiveQuota {
    interval: AtomicU64,
    tolerance: AtomicU64,
    reserve: AtomicU64,
}

impl LiveQuota {
    pub(crate) fn new(q: Quota) -> Self {
        Self {
            interval: AtomicU64::new(q.interval),
            tolerance: AtomicU64::new(q.tolerance),
            reserve: AtomicU64::new(q.reserve),
        }
    }

    #[inline(always)]
    pub(crate) fn get(&self) -> Quota {
        Quota {
            interval: self.interval.load(Ordering::Relaxed),
            tolerance: self.tolerance.load(Ordering::Relaxed),
            reserve: self.reserve.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn set(&self, q: Quota) {
        self.interval.store(q.interval, Ordering::Relaxed);
        self.tolerance.store(q.tolerance, Ordering::Relaxed);
        self.reserve.store(q.reserve, Ordering::Relaxed);
    }
}

/// An admitted call that waits: `stored` is the TAT its reservation wrote (for
/// [`Gcra::refund`]); it may be sent at [`Gcra::send_at`]. `0` means "send now".
pub(crate) type Admit = u64;

impl Default for Gcra {
    fn default() -> Self {
        Self {
            tat: AtomicU64::new(0),
        }
    }
}

impl Gcra {
    /// Admits a call at `now` (nanoseconds since the epoch), at once or at a reserved
    /// time at most `max_wait` away, or says how long until one would be admitted at
    /// once.
    #[inline]
    /// `Ok(0)`: send now; `Ok(stored)`: send at [`send_at(stored)`](Self::send_at).
    pub(crate) fn check(&self, quota: Quota, now: u64) -> Result<Admit, Duration> {
        let mut seen = self.tat.load(Ordering::Relaxed);
        loop {
            let tat = seen.saturating_sub(1).max(now);
            let next = tat.saturating_add(quota.interval);
            let ahead = next - now;
            if ahead > quota.reserve {
                return Err(Duration::from_nanos(ahead - quota.tolerance));
            }
            let stored = next.saturating_add(1);
            match self
                .tat
                .compare_exchange_weak(seen, stored, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) if ahead <= quota.tolerance => return Ok(0),
                Ok(_) => return Ok(stored),
                Err(actual) => seen = actual,
            }
        }
    }

    /// When a call whose reservation stored `stored` may be sent (nanoseconds since
    /// the epoch): the moment it would have been admitted without waiting.
    pub(crate) fn send_at(quota: Quota, stored: u64) -> u64 {
        (stored - 1).saturating_sub(quota.tolerance)
    }

    /// Gives back the slot a reservation took, if no later call reserved after it:
    /// TAT goes back to what it was before the reservation (or to the reservation's
    /// own arrival time, which is the same state: both are at or before now).
    ///
    /// When a later call has reserved since, the slot is not given back: the later
    /// calls already hold their times, and moving TAT back would let the next caller
    /// share the last one's slot (two calls in one slot, over the burst). The slot
    /// then goes unused, which admits fewer calls than the quota, never more.
    ///
    /// TAT only moves forward except here, and here only back to the previous
    /// reservation's value, so it can equal `stored` again only when this
    /// reservation is once more the last one: no ABA.
    pub(crate) fn refund(&self, quota: Quota, stored: u64) -> bool {
        self.tat
            .compare_exchange(
                stored,
                stored - quota.interval,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Whether the cell is full again at `now` (a call would find its whole burst):
    /// evicting it loses nothing.
    pub(crate) fn is_idle(&self, now: u64) -> bool {
        self.tat.load(Ordering::Relaxed).saturating_sub(1) <= now
    }
}
