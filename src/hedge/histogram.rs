//! A small lock-free latency histogram with decay, for the percentile delay.
//!
//! Latencies are counted in microseconds in log-linear buckets: exact below 16 µs,
//! then eight buckets per power of two (each at most 12.5 % wide), up to about
//! 2^36 µs (19 h; longer latencies land in the last bucket). That is [`BUCKETS`]
//! `AtomicU32`s, about a kilobyte, whatever the traffic.
//!
//! Recording is one relaxed `fetch_add` on a bucket and one on the total. Every
//! [`RECOMPUTE_EVERY`]th recording computes the quantile (a scan of the buckets) and
//! caches it, so reading the delay is one atomic load. Every `decay_every`th
//! recording halves every bucket, so old latencies weigh half as much at each
//! halving and the estimate follows a backend that got slower or faster within a
//! few thousand requests. Only the recording whose count crosses the boundary does
//! the work, so no two threads scan or halve at once.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Values below this are counted exactly.
const LINEAR: u64 = 16;
/// Buckets per power of two above [`LINEAR`] (log2).
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two covered above [`LINEAR`]: 2^4 µs to 2^36 µs.
const OCTAVES: u64 = 32;
/// The number of buckets.
pub(crate) const BUCKETS: usize = (LINEAR + OCTAVES * SUB) as usize;
/// How often (in recordings) the cached quantile is brought up to date.
pub(crate) const RECOMPUTE_EVERY: u64 = 32;

pub(crate) struct Histogram {
    buckets: Box<[AtomicU32; BUCKETS]>,
    recorded: AtomicU64,
    /// The cached quantile in microseconds, plus one; 0 while there is no estimate.
    cached: AtomicU64,
    quantile: f64,
    min_samples: u64,
    decay_every: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("quantile", &self.quantile)
            .field("estimate", &self.estimate())
            .finish_non_exhaustive()
    }
}

fn index(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let exp = 63 - u64::from(us.leading_zeros()); // >= 4
    let octave = exp - 4;
    if octave >= OCTAVES {
        return BUCKETS - 1;
    }
    let sub = (us >> (exp - u64::from(SUB_BITS))) & (SUB - 1);
    (LINEAR + octave * SUB + sub) as usize
}

/// The largest value a bucket counts (its upper edge), in microseconds.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let octave = (i - LINEAR) / SUB;
    let sub = (i - LINEAR) % SUB;
    let exp = octave + 4;
    let width = 1u64 << (exp - u64::from(SUB_BITS));
    (SUB + sub + 1) * width - 1
}

impl Histogram {
    /// A histogram that estimates the `quantile` (in `(0, 1)`) once it holds
    /// `min_samples` latencies, halving every `decay_every` recordings.
    pub(crate) fn new(quantile: f64, min_samples: u64, decay_every: u64) -> Self {
        Self {
            buckets: Box::new(std::array::from_fn(|_| AtomicU32::new(0))),
            recorded: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            quantile,
            min_samples,
            decay_every: decay_every.max(RECOMPUTE_EVERY),
        }
    }

    /// Records one latency.
    #[inline]
    pub(crate) fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[index(us)].fetch_add(1, Ordering::Relaxed);
        let n = self.recorded.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(RECOMPUTE_EVERY) {
            self.slow_path(n);
        }
    }

    #[cold]
    fn slow_path(&self, n: u64) {
        if n.is_multiple_of(self.decay_every) {
            for b in self.buckets.iter() {
                let _ = b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v - v / 2));
            }
        }
        self.recompute();
    }

    fn recompute(&self) {
        let counts: [u32; BUCKETS] =
            std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed));
        let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        // Halving keeps the weight of what was seen; the sample gate counts what was
        // recorded, so a decayed histogram keeps its estimate.
        if self.recorded.load(Ordering::Relaxed) < self.min_samples || total == 0 {
            return;
        }
        let target = ((self.quantile * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for (i, &c) in counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= target {
                self.cached.store(upper(i) + 1, Ordering::Relaxed);
                return;
            }
        }
    }

    /// The latest estimate of the quantile, or `None` before `min_samples` latencies.
    #[inline]
    pub(crate) fn estimate(&self) -> Option<Duration> {
        match self.cached.load(Ordering::Relaxed) {
            0 => None,
            v => Some(Duration::from_micros(v - 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order_with_bounded_width() {
        let mut last = 0;
        for us in [
            0u64,
            1,
            15,
            16,
            17,
            31,
            32,
            100,
            1_000,
            20_000,
            1 << 30,
            1 << 35,
        ] {
            let i = index(us);
            assert!(i >= last, "indices grow with the value");
            last = i;
            assert!(upper(i) >= us, "{us} µs lies under its bucket's edge");
            if us >= LINEAR {
                let lower = if i == 0 { 0 } else { upper(i - 1) + 1 };
                assert!(lower <= us);
                assert!((upper(i) - lower) as f64 <= us as f64 * 0.125 + 1.0);
            }
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn estimates_the_quantile_and_follows_a_change() {
        let h = Histogram::new(0.9, 100, 1024);
        assert_eq!(h.estimate(), None);
        for i in 0..1000u64 {
            // 10 % of calls at 100 ms, the rest at 10 ms.
            let ms = if i % 10 == 9 { 100 } else { 10 };
            h.record(Duration::from_millis(ms));
        }
        let p90 = h.estimate().expect("enough samples");
        assert!(
            p90 >= Duration::from_millis(10) && p90 < Duration::from_millis(12),
            "{p90:?}"
        );
        // Every call now takes 50 ms: after a few halvings the estimate follows.
        for _ in 0..6000 {
            h.record(Duration::from_millis(50));
        }
        let p90 = h.estimate().unwrap();
        assert!(
            p90 >= Duration::from_millis(50) && p90 < Duration::from_millis(57),
            "{p90:?}"
        );
    }
}
