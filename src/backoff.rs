//! Backoff shapes and jitter.
//!
//! A [`Backoff`] says how long to wait before retry number `n` (counting from 1). Its
//! *shape* gives the raw delay — [constant](Backoff::constant),
//! [linear](Backoff::linear) or [exponential](Backoff::exponential) with a configurable
//! multiplier — never more than the cap ([`Backoff::max_delay`]). Its [`Jitter`] then
//! spreads the delay randomly, using the definitions of AWS's *Exponential Backoff and
//! Jitter* article:
//!
//! | jitter | delay for raw delay `d` (already capped) | bounds |
//! |---|---|---|
//! | [`None`](Jitter::None) | `d` | `d` |
//! | [`Full`](Jitter::Full) (default) | `uniform(0, d)` | `0..=d` |
//! | [`Equal`](Jitter::Equal) | `d/2 + uniform(0, d/2)` | `d/2..=d` |
//! | [`Decorrelated`](Jitter::Decorrelated) | `min(cap, uniform(base, 3 × previous))` | `base..=cap` |
//! | [`Proportional(r)`](Jitter::Proportional) | `min(cap, d × uniform(1-r, 1+r))` | `d(1-r)..=min(cap, d(1+r))` |
//!
//! **Why full jitter is the default.** When a backend fails, every client that called it
//! fails at about the same moment. Without jitter they all retry at the same moment too,
//! and each retry wave is as synchronized as the first: the backend sees spikes instead
//! of load. Full jitter spreads each wave over the whole interval `0..d`; in AWS's
//! measurements it did the least total work and finished soonest of the variants, at
//! the price of sometimes retrying early. Equal jitter keeps a minimum wait,
//! decorrelated jitter grows from the previous delay instead of the attempt number.
//!
//! Randomness comes from an injectable [`Rng`]; seed it to make delays reproducible.
//!
//! ```
//! use std::time::Duration;
//! use tower_fortify::backoff::{Backoff, Jitter};
//! use tower_fortify::rng::Rng;
//!
//! let backoff = Backoff::exponential(Duration::from_millis(50))
//!     .multiplier(2.0)
//!     .max_delay(Duration::from_secs(2))
//!     .jitter(Jitter::Full)
//!     .build()
//!     .expect("valid backoff");
//! let rng = Rng::seeded(1);
//! let mut prev = Duration::ZERO;
//! for retry in 1..=10 {
//!     let d = backoff.delay(retry, prev, &rng);
//!     assert!(d <= Duration::from_secs(2));
//!     prev = d;
//! }
//! ```

use std::time::Duration;

use crate::config::{ConfigError, check_range};
pub use crate::rng::Rng;

/// How the raw delay grows with the retry number.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Constant,
    Linear { step: Duration },
    Exponential { multiplier: f64 },
}

/// How a delay is spread randomly. See the [module docs](self) for the formulas.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Jitter {
    /// No randomness: the raw delay.
    None,
    /// Uniform between zero and the raw delay (the default).
    #[default]
    Full,
    /// Half the raw delay plus a uniform share of the other half.
    Equal,
    /// Uniform between the base delay and three times the previous delay, capped. The
    /// shape's growth is replaced by this rule.
    Decorrelated,
    /// The raw delay times `uniform(1 - r, 1 + r)`, capped; `r` lies in `0.0..=1.0`.
    Proportional(f64),
}

/// The delay before each retry: a shape, a cap and a jitter.
///
/// Build one with [`Backoff::constant`], [`Backoff::linear`] or
/// [`Backoff::exponential`], adjust it, and check it with [`Backoff::build`] (layers
/// that take a `Backoff` check it again when they are built).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    shape: Shape,
    base: Duration,
    max: Option<Duration>,
    jitter: Jitter,
}

/// The cap used when none is set: 30 seconds, or the base delay if that is longer.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);

impl Backoff {
    /// The same delay before every retry. Zero is allowed (retry at once).
    pub fn constant(delay: Duration) -> Self {
        Self {
            shape: Shape::Constant,
            base: delay,
            max: None,
            jitter: Jitter::Full,
        }
    }

    /// `base`, then `base + step`, `base + 2 step`, …; `step` is `base` unless
    /// [`step`](Self::step) sets it.
    pub fn linear(base: Duration) -> Self {
        Self {
            shape: Shape::Linear { step: base },
            base,
            max: None,
            jitter: Jitter::Full,
        }
    }

    /// `base`, then `base × m`, `base × m²`, …, with multiplier `m` (2 unless
    /// [`multiplier`](Self::multiplier) sets it).
    pub fn exponential(base: Duration) -> Self {
        Self {
            shape: Shape::Exponential { multiplier: 2.0 },
            base,
            max: None,
            jitter: Jitter::Full,
        }
    }

    /// Sets the growth factor of an exponential backoff (at least 1.0, finite). Has
    /// no effect on other shapes.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        if let Shape::Exponential { .. } = self.shape {
            self.shape = Shape::Exponential { multiplier };
        }
        self
    }

    /// Sets the increment of a linear backoff. Has no effect on other shapes.
    pub fn step(mut self, step: Duration) -> Self {
        if let Shape::Linear { .. } = self.shape {
            self.shape = Shape::Linear { step };
        }
        self
    }

    /// Sets the cap: no delay is ever longer. It must be at least the base delay.
    /// Default: [`DEFAULT_MAX_DELAY`] or the base delay, whichever is longer.
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max = Some(max);
        self
    }

    /// Sets the jitter (default [`Jitter::Full`]).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Checks the configuration and returns it.
    pub fn build(self) -> Result<Self, ConfigError> {
        self.validate()?;
        Ok(self)
    }

    /// Checks the configuration: the multiplier must be finite and at least 1, the cap
    /// at least the base, a proportional jitter within `0.0..=1.0`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Shape::Exponential { multiplier } = self.shape {
            if !multiplier.is_finite() {
                return Err(ConfigError::new(
                    "backoff.multiplier",
                    format!("must be a finite number (got {multiplier})"),
                ));
            }
            if multiplier < 1.0 {
                return Err(ConfigError::new(
                    "backoff.multiplier",
                    format!("must be at least 1.0 so delays do not shrink (got {multiplier})"),
                ));
            }
        }
        if let Some(max) = self.max
            && max < self.base
        {
            return Err(ConfigError::new(
                "backoff.max_delay",
                format!(
                    "must be at least the base delay {:?} (got {:?})",
                    self.base, max
                ),
            ));
        }
        if let Jitter::Proportional(r) = self.jitter {
            check_range("backoff.jitter", r, 0.0, 1.0)?;
        }
        Ok(())
    }

    /// The base delay.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The cap in force: the configured one, or the default.
    pub fn cap(&self) -> Duration {
        self.max.unwrap_or(DEFAULT_MAX_DELAY.max(self.base))
    }

    /// The jitter in force.
    pub fn jitter_kind(&self) -> Jitter {
        self.jitter
    }

    /// The delay before retry number `retry` (1 for the first retry) without jitter,
    /// never more than the cap.
    pub fn raw_delay(&self, retry: u32) -> Duration {
        let cap = self.cap();
        let n = retry.max(1) - 1;
        let raw = match self.shape {
            Shape::Constant => self.base,
            Shape::Linear { step } => step
                .checked_mul(n)
                .and_then(|s| s.checked_add(self.base))
                .unwrap_or(cap),
            Shape::Exponential { multiplier } => {
                let secs = self.base.as_secs_f64() * multiplier.powi(n.min(i32::MAX as u32) as i32);
                Duration::try_from_secs_f64(secs).unwrap_or(cap)
            }
        };
        raw.min(cap)
    }

    /// The delay before retry number `retry` (1 for the first retry), with jitter
    /// drawn from `rng`. `previous` is the delay used before the previous retry (zero
    /// before the first); only decorrelated jitter reads it.
    pub fn delay(&self, retry: u32, previous: Duration, rng: &Rng) -> Duration {
        let cap = self.cap();
        match self.jitter {
            Jitter::None => self.raw_delay(retry),
            Jitter::Full => {
                let d = self.raw_delay(retry);
                scale(d, rng.next_f64())
            }
            Jitter::Equal => {
                let d = self.raw_delay(retry);
                let half = d / 2;
                half + scale(d - half, rng.next_f64())
            }
            Jitter::Decorrelated => {
                let lo = self.base.as_secs_f64();
                let prev = previous.max(self.base).as_secs_f64();
                let hi = (prev * 3.0).min(cap.as_secs_f64());
                let secs = rng.between(lo, hi.max(lo));
                Duration::try_from_secs_f64(secs)
                    .unwrap_or(cap)
                    .min(cap)
                    .max(self.base.min(cap))
            }
            Jitter::Proportional(r) => {
                let d = self.raw_delay(retry).as_secs_f64();
                let secs = d * rng.between(1.0 - r, 1.0 + r);
                Duration::try_from_secs_f64(secs).unwrap_or(cap).min(cap)
            }
        }
    }
}

/// `d × f` for `f` in `0.0..1.0`, exact at nanosecond resolution.
#[inline]
fn scale(d: Duration, f: f64) -> Duration {
    let nanos = d.as_nanos() as f64 * f;
    Duration::from_nanos(nanos as u64).min(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn shapes_grow_as_documented() {
        let c = Backoff::constant(MS * 5).jitter(Jitter::None);
        assert_eq!(c.raw_delay(1), MS * 5);
        assert_eq!(c.raw_delay(9), MS * 5);
        let l = Backoff::linear(MS * 10).step(MS * 5);
        assert_eq!(l.raw_delay(1), MS * 10);
        assert_eq!(l.raw_delay(3), MS * 20);
        let e = Backoff::exponential(MS * 10)
            .multiplier(3.0)
            .max_delay(MS * 100);
        assert_eq!(e.raw_delay(1), MS * 10);
        assert_eq!(e.raw_delay(2), MS * 30);
        assert_eq!(e.raw_delay(3), MS * 90);
        assert_eq!(e.raw_delay(4), MS * 100, "capped");
        assert_eq!(
            e.raw_delay(u32::MAX),
            MS * 100,
            "huge exponents saturate at the cap"
        );
    }

    #[test]
    fn invalid_settings_name_their_field() {
        let err = Backoff::exponential(MS)
            .multiplier(0.0)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "backoff.multiplier");
        let err = Backoff::exponential(MS)
            .multiplier(-2.0)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "backoff.multiplier");
        let err = Backoff::exponential(MS)
            .multiplier(f64::NAN)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "backoff.multiplier");
        let err = Backoff::constant(MS * 10)
            .max_delay(MS)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "backoff.max_delay");
        let err = Backoff::constant(MS)
            .jitter(Jitter::Proportional(1.5))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "backoff.jitter");
        let err = Backoff::constant(MS)
            .jitter(Jitter::Proportional(f64::NAN))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "backoff.jitter");
        assert!(Backoff::constant(Duration::ZERO).build().is_ok());
    }

    #[test]
    fn default_cap_is_thirty_seconds_or_base() {
        assert_eq!(Backoff::exponential(MS).cap(), DEFAULT_MAX_DELAY);
        let long = Duration::from_secs(60);
        assert_eq!(Backoff::constant(long).cap(), long);
    }
}
