//! Adaptive limits: AIMD, Gradient2 and Vegas.
//!
//! An adaptive bulkhead measures each call's latency (two clock reads) and asks the
//! classifier whether the backend said it was overloaded. AIMD without a
//! `latency_threshold` uses no latency and reads no clock per call: every 8th call of
//! a thread, and every overload, reads it to end the window on time (a window may
//! therefore end up to 8 calls per thread late). Samples are summed in
//! per-thread shards; once per *window* (100 ms by default, and at least
//! `min_samples` calls) the first call to finish after the window ends folds the shards
//! into one window sample and lets the algorithm pick a new limit, clamped to
//! `min..=max`. The new limit takes effect like [`BulkheadHandle::set_limit`]: an
//! increase admits waiters at once, a decrease admits nothing until enough calls finish.
//!
//! A window is *saturated* when a caller was queued or rejected during it, or when at
//! least half the limit was in flight as it ended. The algorithms only raise the limit
//! after a saturated window: a limit that nobody uses proves nothing.
//!
//! The three algorithms follow the published descriptions of Netflix's
//! concurrency-limits library, adapted to window samples:
//!
//! * [`Aimd`]: additive increase, multiplicative decrease. Decrease (×`backoff_ratio`)
//!   when the window saw an overload outcome or its mean latency passed
//!   `latency_threshold`; otherwise add `increase` after a saturated window. The limit
//!   oscillates just under the point where latency crosses the threshold.
//! * [`Gradient2`]: compares the window's mean latency (short term) with a long-term
//!   baseline, an exponential average over `long_window` windows.
//!   `gradient = clamp(tolerance × baseline / short, 0.5, 1)`, and the new limit is
//!   `limit × gradient + queue_size`, smoothed. Against a backend whose latency grows
//!   with concurrency above a capacity `C`, this settles at about
//!   `tolerance × C + queue_size`. Unlike the original, the baseline moves at a tenth of
//!   its rate while a window is congested (short > tolerance × baseline), so a
//!   sustained overload does not teach the limiter that slow is normal, and ten times
//!   its rate when the backend is faster than the baseline (a baseline first measured
//!   under load is corrected quickly); a backend that becomes slower for good is still
//!   learned, over about `10 × long_window` windows.
//! * [`Vegas`]: estimates the queue at the backend as
//!   `limit × (1 − no_load_latency / latency)`, where the no-load latency is the
//!   smallest latency seen (forgotten every `probe_every` windows). It grows the limit
//!   while the queue is below `alpha × log10(limit)`, shrinks it above
//!   `beta × log10(limit)`, and settles at about `C + alpha..beta × log10(limit)`.
//!
//! Every algorithm shrinks the limit after a window that saw an overload outcome.
//!
//! # How fast they follow
//!
//! `tests/bulkhead_adaptive.rs` drives each algorithm against a simulated backend whose
//! latency grows once more than `C` calls run (10 ms unloaded, 100 ms windows, 120
//! callers). Each settles within ±25 % of `C = 40` with the backend's latency within
//! 30 % of its unloaded value, and when `C` halves mid-run each is back within ±25 % of
//! the new `C` in **at most 5 s** (measured: AIMD 0.7 s, Gradient2 1.2 s, Vegas 1.2 s),
//! i.e. within 50 windows. The settings used there: AIMD with a latency threshold of
//! 1.1 × the unloaded latency; Gradient2 with tolerance 1.05 and queue size 2; Vegas
//! with alpha 1 and beta 2. With the defaults (tolerance 1.5, alpha 3 / beta 6), the
//! limits settle higher: about `1.5 × C + 4` for Gradient2 and `C + 3..6 × log10(limit)`
//! for Vegas, which suits backends whose latency is noisier than a simulation's.
//!
//! [`BulkheadHandle::set_limit`]: super::BulkheadHandle::set_limit

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::time::Duration;

use tokio::time::Instant;

use super::limiter::Core;
use crate::clock::Epoch;
use crate::config::{ConfigError, check_range};
use crate::shard::{self, Padded, SHARDS};

/// Additive increase, multiplicative decrease. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aimd {
    backoff_ratio: f64,
    increase: u32,
    latency_threshold: Option<Duration>,
}

impl Default for Aimd {
    /// Backoff ratio 0.9, increase 1, no latency threshold (overload outcomes only).
    fn default() -> Self {
        Self {
            backoff_ratio: 0.9,
            increase: 1,
            latency_threshold: None,
        }
    }
}

impl Aimd {
    /// The factor applied to the limit on a decrease, in `0.5..1` (default 0.9).
    pub fn backoff_ratio(mut self, ratio: f64) -> Self {
        self.backoff_ratio = ratio;
        self
    }

    /// How much the limit grows after a saturated window without trouble (default 1).
    pub fn increase(mut self, increase: u32) -> Self {
        self.increase = increase;
        self
    }

    /// A mean latency above which a window counts as overloaded (default: none, only
    /// overload outcomes from the classifier decrease the limit).
    pub fn latency_threshold(mut self, threshold: Duration) -> Self {
        self.latency_threshold = Some(threshold);
        self
    }
}

/// Latency gradient against a long-term baseline. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gradient2 {
    tolerance: f64,
    smoothing: f64,
    queue_size: f64,
    long_window: u32,
}

impl Default for Gradient2 {
    /// Tolerance 1.5, smoothing 0.2, queue size 4, long window 100 windows.
    fn default() -> Self {
        Self {
            tolerance: 1.5,
            smoothing: 0.2,
            queue_size: 4.0,
            long_window: 100,
        }
    }
}

impl Gradient2 {
    /// How much slower than the baseline the short-term latency may be before the
    /// limit shrinks, as a ratio in `1..=10` (default 1.5).
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// How far each update moves the limit toward its new value, in `0 < s <= 1`
    /// (default 0.2).
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// Calls added on top of `limit × gradient`, so the limit can probe upward, in
    /// `0..=1000` (default 4).
    pub fn queue_size(mut self, queue_size: f64) -> Self {
        self.queue_size = queue_size;
        self
    }

    /// The horizon of the long-term baseline, in windows (at least 1; default 100).
    pub fn long_window(mut self, windows: u32) -> Self {
        self.long_window = windows;
        self
    }
}

/// Queue estimate from the no-load latency. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vegas {
    alpha: f64,
    beta: f64,
    smoothing: f64,
    probe_every: u32,
}

impl Default for Vegas {
    /// Alpha 3, beta 6, smoothing 1, no-load latency forgotten every 600 windows.
    fn default() -> Self {
        Self {
            alpha: 3.0,
            beta: 6.0,
            smoothing: 1.0,
            probe_every: 600,
        }
    }
}

impl Vegas {
    /// Grow while the estimated queue is below `alpha × log10(limit)` (default 3).
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Shrink while the estimated queue is above `beta × log10(limit)` (default 6;
    /// must exceed alpha).
    pub fn beta(mut self, beta: f64) -> Self {
        self.beta = beta;
        self
    }

    /// How far each update moves the limit toward its new value, in `0 < s <= 1`
    /// (default 1).
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// Forget the no-load latency every this many windows, so a backend that became
    /// slower for good is relearned (at least 1; default 600).
    pub fn probe_every(mut self, windows: u32) -> Self {
        self.probe_every = windows;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Algorithm {
    Aimd(Aimd),
    Gradient2(Gradient2),
    Vegas(Vegas),
}

/// An adaptive limit: an algorithm with its bounds and sampling window.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::bulkhead::{AdaptiveLimit, Aimd, BulkheadLayer};
///
/// let layer = BulkheadLayer::builder()
///     .adaptive(
///         AdaptiveLimit::aimd(Aimd::default().latency_threshold(Duration::from_millis(50)))
///             .initial(20)
///             .min(5)
///             .max(200),
///     )
///     .build()
///     .unwrap();
/// assert_eq!(layer.handle().limit(), 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveLimit {
    algorithm: Algorithm,
    pub(crate) initial: usize,
    min: usize,
    max: usize,
    window: Duration,
    min_samples: u32,
}

impl AdaptiveLimit {
    fn with(algorithm: Algorithm) -> Self {
        Self {
            algorithm,
            initial: 20,
            min: 1,
            max: 1000,
            window: Duration::from_millis(100),
            min_samples: 10,
        }
    }

    /// AIMD with the given settings.
    pub fn aimd(aimd: Aimd) -> Self {
        Self::with(Algorithm::Aimd(aimd))
    }

    /// Gradient2 with the given settings.
    pub fn gradient2(gradient: Gradient2) -> Self {
        Self::with(Algorithm::Gradient2(gradient))
    }

    /// Vegas with the given settings.
    pub fn vegas(vegas: Vegas) -> Self {
        Self::with(Algorithm::Vegas(vegas))
    }

    /// The limit to start from (default 20).
    pub fn initial(mut self, initial: usize) -> Self {
        self.initial = initial;
        self
    }

    /// The smallest limit (at least 1; default 1).
    pub fn min(mut self, min: usize) -> Self {
        self.min = min;
        self
    }

    /// The largest limit (default 1000).
    pub fn max(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// How often the limit is reconsidered (default 100 ms).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Calls a window needs before it is used (at least 1; default 10). A window with
    /// an overload outcome is used regardless.
    pub fn min_samples(mut self, min_samples: u32) -> Self {
        self.min_samples = min_samples;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.min == 0 {
            return Err(ConfigError::new(
                "bulkhead.adaptive.min",
                "must be at least 1",
            ));
        }
        if self.min > self.max {
            return Err(ConfigError::new(
                "bulkhead.adaptive.min",
                format!("must not exceed max ({} > {})", self.min, self.max),
            ));
        }
        if self.initial < self.min || self.initial > self.max {
            return Err(ConfigError::new(
                "bulkhead.adaptive.initial",
                format!("must lie in min..=max ({}..={})", self.min, self.max),
            ));
        }
        if self.window.is_zero() {
            return Err(ConfigError::new(
                "bulkhead.adaptive.window",
                "must be greater than zero",
            ));
        }
        if self.min_samples == 0 {
            return Err(ConfigError::new(
                "bulkhead.adaptive.min_samples",
                "must be at least 1",
            ));
        }
        match self.algorithm {
            Algorithm::Aimd(a) => {
                check_range("bulkhead.aimd.backoff_ratio", a.backoff_ratio, 0.5, 1.0)?;
                if a.backoff_ratio >= 1.0 {
                    return Err(ConfigError::new(
                        "bulkhead.aimd.backoff_ratio",
                        "must be below 1",
                    ));
                }
                if a.increase == 0 {
                    return Err(ConfigError::new(
                        "bulkhead.aimd.increase",
                        "must be at least 1",
                    ));
                }
                if a.latency_threshold == Some(Duration::ZERO) {
                    return Err(ConfigError::new(
                        "bulkhead.aimd.latency_threshold",
                        "must be greater than zero",
                    ));
                }
            }
            Algorithm::Gradient2(g) => {
                check_range("bulkhead.gradient2.tolerance", g.tolerance, 1.0, 10.0)?;
                check_range("bulkhead.gradient2.smoothing", g.smoothing, 0.0, 1.0)?;
                if g.smoothing == 0.0 {
                    return Err(ConfigError::new(
                        "bulkhead.gradient2.smoothing",
                        "must be greater than zero",
                    ));
                }
                check_range("bulkhead.gradient2.queue_size", g.queue_size, 0.0, 1000.0)?;
                if g.long_window == 0 {
                    return Err(ConfigError::new(
                        "bulkhead.gradient2.long_window",
                        "must be at least 1",
                    ));
                }
            }
            Algorithm::Vegas(v) => {
                check_range("bulkhead.vegas.alpha", v.alpha, 0.0, 1000.0)?;
                check_range("bulkhead.vegas.beta", v.beta, 0.0, 1000.0)?;
                if v.beta <= v.alpha {
                    return Err(ConfigError::new(
                        "bulkhead.vegas.beta",
                        format!("must exceed alpha ({} <= {})", v.beta, v.alpha),
                    ));
                }
                check_range("bulkhead.vegas.smoothing", v.smoothing, 0.0, 1.0)?;
                if v.smoothing == 0.0 {
                    return Err(ConfigError::new(
                        "bulkhead.vegas.smoothing",
                        "must be greater than zero",
                    ));
                }
                if v.probe_every == 0 {
                    return Err(ConfigError::new(
                        "bulkhead.vegas.probe_every",
                        "must be at least 1",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The algorithm's name, for events and logs.
    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::Aimd(_) => "aimd",
            Algorithm::Gradient2(_) => "gradient2",
            Algorithm::Vegas(_) => "vegas",
        }
    }
}

/// What one window saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub(crate) count: u64,
    /// Mean latency in seconds.
    pub(crate) mean: f64,
    /// Smallest latency in seconds.
    pub(crate) min: f64,
    pub(crate) drops: u64,
    pub(crate) saturated: bool,
}

/// The algorithm's memory between windows.
#[derive(Debug)]
pub(crate) struct State {
    config: AdaptiveLimit,
    limit: f64,
    baseline: f64,
    windows: u64,
}

impl State {
    pub(crate) fn new(config: AdaptiveLimit) -> Self {
        Self {
            config,
            limit: config.initial as f64,
            baseline: 0.0,
            windows: 0,
        }
    }

    /// Folds one window into the limit; returns the new (clamped) limit.
    pub(crate) fn update(&mut self, s: &Sample) -> f64 {
        self.windows += 1;
        let l = self.limit;
        let new = match self.config.algorithm {
            Algorithm::Aimd(a) => {
                let slow = a
                    .latency_threshold
                    .is_some_and(|t| s.count > 0 && s.mean > t.as_secs_f64());
                if s.drops > 0 || slow {
                    l * a.backoff_ratio
                } else if s.saturated {
                    l + f64::from(a.increase)
                } else {
                    l
                }
            }
            Algorithm::Gradient2(g) => {
                if s.count == 0 {
                    l
                } else {
                    if self.baseline == 0.0 {
                        self.baseline = s.mean;
                    }
                    let congested = s.mean > g.tolerance * self.baseline;
                    let mut rate = 1.0 / f64::from(g.long_window);
                    if congested {
                        rate /= 10.0;
                    } else if s.mean < self.baseline {
                        // Learn a faster backend quickly (a baseline taken under load).
                        rate = (rate * 10.0).min(1.0);
                    }
                    self.baseline += (s.mean - self.baseline) * rate;
                    let mut gradient = (g.tolerance * self.baseline / s.mean).clamp(0.5, 1.0);
                    if s.drops > 0 {
                        gradient = gradient.min(0.9);
                    }
                    if gradient >= 1.0 && !s.saturated {
                        l
                    } else {
                        let target = l * gradient + g.queue_size;
                        l * (1.0 - g.smoothing) + target * g.smoothing
                    }
                }
            }
            Algorithm::Vegas(v) => {
                if s.count > 0
                    && (self.baseline == 0.0
                        || s.min < self.baseline
                        || self.windows.is_multiple_of(u64::from(v.probe_every)))
                {
                    self.baseline = s.min;
                }
                let lg = l.log10().max(1.0);
                let target = if s.drops > 0 {
                    l - lg
                } else if !s.saturated || s.count == 0 || self.baseline == 0.0 {
                    l
                } else {
                    let queue = l * (1.0 - self.baseline / s.mean.max(self.baseline));
                    if queue <= lg {
                        l + v.beta * lg
                    } else if queue < v.alpha * lg {
                        l + lg
                    } else if queue > v.beta * lg {
                        l - lg
                    } else {
                        l
                    }
                };
                l * (1.0 - v.smoothing) + target * v.smoothing
            }
        };
        self.limit = new.clamp(self.config.min as f64, self.config.max as f64);
        self.limit
    }
}

#[derive(Debug)]
struct Acc {
    count: AtomicU64,
    sum_nanos: AtomicU64,
    min_nanos: AtomicU64,
    drops: AtomicU64,
}

impl Default for Acc {
    fn default() -> Self {
        Self {
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
            min_nanos: AtomicU64::new(u64::MAX),
            drops: AtomicU64::new(0),
        }
    }
}

/// The adaptive part of a bulkhead's shared state.
pub(crate) struct Adaptive {
    acc: [Padded<Acc>; SHARDS],
    /// The origin of the times permits keep, read on first use.
    origin: Epoch,
    next_update: AtomicU64,
    window: u64,
    min_samples: u64,
    /// Whether the algorithm uses latency (Gradient2, Vegas, AIMD with a latency
    /// threshold). Without, a call reads no clock: every [`TICK`]th call of a shard
    /// (and every overload) reads it to end the window on time.
    timed: bool,
    state: Mutex<(State, u64)>,
}

/// Without latency, the window's end is checked every this many calls of a shard.
const TICK: u64 = 8;

impl fmt::Debug for Adaptive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adaptive")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// A limit change decided by a window, for events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Change {
    pub(crate) from: usize,
    pub(crate) to: usize,
}

impl Adaptive {
    pub(crate) fn new(config: AdaptiveLimit) -> Self {
        let window = crate::clock::nanos(config.window);
        Self {
            acc: Default::default(),
            origin: Epoch::new(),
            next_update: AtomicU64::new(window),
            window,
            min_samples: u64::from(config.min_samples),
            timed: !matches!(
                config.algorithm,
                Algorithm::Aimd(Aimd {
                    latency_threshold: None,
                    ..
                })
            ),
            state: Mutex::new((State::new(config), 0)),
        }
    }

    /// Now, as nanoseconds since the bulkhead's first use: what a permit keeps.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.nanos_since_origin(Instant::now())
    }

    fn nanos_since_origin(&self, now: Instant) -> u64 {
        self.origin.since(now)
    }

    /// When a call starts, for its latency: now, or 0 when latency is not used.
    #[inline]
    pub(crate) fn start(&self) -> u64 {
        if self.timed { self.now() } else { 0 }
    }

    /// Records one finished call and, at the end of a window, updates the limit.
    #[inline]
    pub(crate) fn record(&self, core: &Core, started: u64, overloaded: bool) -> Option<Change> {
        // Plain loads and stores, not read-modify-writes: the shard is this thread's
        // (shared only when more than SHARDS threads call), and a sample lost to a race
        // with another thread or with the window update does not matter to a mean.
        let acc = &self.acc[shard::index()];
        let n = acc.count.load(Relaxed) + 1;
        acc.count.store(n, Relaxed);
        if !self.timed && !overloaded && !n.is_multiple_of(TICK) {
            return None;
        }
        self.record_more(acc, core, started, overloaded)
    }

    /// The rest of [`record`](Self::record): latency, overloads, the window's end.
    #[inline(never)]
    fn record_more(
        &self,
        acc: &Acc,
        core: &Core,
        started: u64,
        overloaded: bool,
    ) -> Option<Change> {
        if overloaded {
            acc.drops.store(acc.drops.load(Relaxed) + 1, Relaxed);
        }
        let t = if self.timed {
            let t = self.now();
            let rtt = t.saturating_sub(started);
            acc.sum_nanos
                .store(acc.sum_nanos.load(Relaxed).saturating_add(rtt), Relaxed);
            if rtt < acc.min_nanos.load(Relaxed) {
                acc.min_nanos.store(rtt, Relaxed);
            }
            t
        } else {
            self.now()
        };
        if t < self.next_update.load(Relaxed) {
            return None;
        }
        let mut guard = self.state.try_lock().ok()?;
        let (state, last_pressure) = &mut *guard;
        if t < self.next_update.load(Relaxed) {
            return None;
        }
        let count: u64 = self.acc.iter().map(|a| a.count.load(Relaxed)).sum();
        let drops: u64 = self.acc.iter().map(|a| a.drops.load(Relaxed)).sum();
        if count < self.min_samples && drops == 0 {
            return None;
        }
        let (mut sum, mut min, mut count, mut drops) = (0u64, u64::MAX, 0u64, 0u64);
        for a in &self.acc {
            count += a.count.swap(0, Relaxed);
            sum = sum.saturating_add(a.sum_nanos.swap(0, Relaxed));
            min = min.min(a.min_nanos.swap(u64::MAX, Relaxed));
            drops += a.drops.swap(0, Relaxed);
        }
        self.next_update
            .store(t.saturating_add(self.window), Relaxed);
        let pressure = core.pressure();
        let limit = core.limit();
        let saturated = pressure != *last_pressure || core.in_flight() * 2 >= limit;
        *last_pressure = pressure;
        let sample = Sample {
            count,
            mean: if count > 0 {
                sum as f64 / count as f64 / 1e9
            } else {
                0.0
            },
            min: if count > 0 { min as f64 / 1e9 } else { 0.0 },
            drops,
            saturated,
        };
        let new = state.update(&sample).round().max(1.0) as usize;
        if new != limit {
            core.set_limit(new);
            return Some(Change {
                from: limit,
                to: new,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(mean_ms: f64, saturated: bool) -> Sample {
        Sample {
            count: 100,
            mean: mean_ms / 1e3,
            min: mean_ms / 1e3,
            drops: 0,
            saturated,
        }
    }

    #[test]
    fn aimd_grows_when_saturated_and_backs_off_on_drops() {
        let mut s = State::new(AdaptiveLimit::aimd(Aimd::default()).initial(10));
        assert_eq!(s.update(&sample(10.0, true)), 11.0);
        assert_eq!(s.update(&sample(10.0, false)), 11.0);
        let mut dropped = sample(10.0, true);
        dropped.drops = 1;
        assert!((s.update(&dropped) - 9.9).abs() < 1e-9);
    }

    #[test]
    fn gradient_shrinks_when_latency_rises() {
        let mut s = State::new(AdaptiveLimit::gradient2(Gradient2::default()).initial(100));
        s.update(&sample(10.0, true));
        let before = s.limit;
        let after = s.update(&sample(40.0, true));
        assert!(after < before, "{after} < {before}");
    }

    #[test]
    fn vegas_grows_without_queue() {
        let mut s = State::new(AdaptiveLimit::vegas(Vegas::default()).initial(50));
        assert!(s.update(&sample(10.0, true)) > 50.0);
    }
}
