//! The failure windows a breaker judges by: the last N calls, or the last T seconds.

use std::collections::VecDeque;

use super::figures::WindowFigures;

/// A time window is brought up to date every this many successes of one shard.
pub(super) const TIME_TICK: u64 = 256;

pub(super) struct CountWindow {
    pub(super) size: u64,
    /// Total calls when the window was last cleared.
    pub(super) base: u64,
    /// Sequence numbers of recent failures and slow calls, oldest first: 8 bytes per
    /// failure in the window, allocated as failures arrive (at most `size` each).
    pub(super) failures: VecDeque<u64>,
    pub(super) slow: VecDeque<u64>,
}

impl CountWindow {
    pub(super) fn prune(&mut self, total: u64) {
        let floor = total.saturating_sub(self.size);
        for ring in [&mut self.failures, &mut self.slow] {
            while ring
                .front()
                .is_some_and(|&s| s <= floor || ring.len() as u64 > self.size)
            {
                ring.pop_front();
            }
        }
    }

    pub(super) fn figures(&self, total: u64) -> WindowFigures {
        WindowFigures {
            calls: total.saturating_sub(self.base).min(self.size) as f64,
            failures: self.failures.len() as u64,
            slow_calls: self.slow.len() as u64,
        }
    }
}

#[derive(Clone, Copy, Default)]
pub(super) struct Bucket {
    pub(super) epoch: u64,
    pub(super) calls: f64,
    pub(super) failures: u64,
    pub(super) slow: u64,
}

pub(super) struct TimeWindow {
    pub(super) width: u64,
    pub(super) buckets: Vec<Bucket>,
    /// Successes counted by the last update, and when (nanoseconds since the epoch).
    pub(super) seen: u64,
    pub(super) seen_at: u64,
}

impl TimeWindow {
    pub(super) fn len(&self) -> u64 {
        self.buckets.len() as u64
    }

    pub(super) fn bucket(&mut self, epoch: u64) -> &mut Bucket {
        let n = self.len();
        let b = &mut self.buckets[(epoch % n) as usize];
        if b.epoch != epoch {
            *b = Bucket {
                epoch,
                ..Bucket::default()
            };
        }
        b
    }

    /// Spreads the successes counted since the last update evenly over the time
    /// since then, or over the window if that was longer ago.
    pub(super) fn update(&mut self, now: u64, successes: u64) {
        let width = self.width;
        let epoch = now / width;
        let new = successes.saturating_sub(self.seen);
        if new > 0 {
            let oldest = epoch.saturating_sub(self.len() - 1);
            // Successes left unplaced for longer than the window (none arrived
            // for a while, then a burst) are all placed inside it: counting a
            // few old successes as recent is safer than losing a burst.
            let from = self
                .seen_at
                .min(now)
                .max(now.saturating_sub(width * self.len()));
            let span = now - from;
            let first = (from / width).max(oldest);
            for e in first..=epoch {
                let share = if span == 0 {
                    if e == epoch { 1.0 } else { 0.0 }
                } else {
                    let lo = (e * width).max(from);
                    let hi = ((e + 1) * width).min(now);
                    hi.saturating_sub(lo) as f64 / span as f64
                };
                if share > 0.0 {
                    self.bucket(e).calls += new as f64 * share;
                }
            }
        }
        self.seen = successes;
        self.seen_at = now;
    }

    pub(super) fn figures(&self, now: u64) -> WindowFigures {
        let epoch = now / self.width;
        let oldest = epoch.saturating_sub(self.len() - 1);
        let mut f = WindowFigures::default();
        for b in &self.buckets {
            if b.epoch >= oldest && b.epoch <= epoch {
                f.calls += b.calls;
                f.failures += b.failures;
                f.slow_calls += b.slow;
            }
        }
        f
    }

    pub(super) fn clear(&mut self, now: u64, successes: u64) {
        self.buckets.fill(Bucket {
            epoch: u64::MAX,
            ..Bucket::default()
        });
        self.seen = successes;
        self.seen_at = now;
    }
}
