//! Latency distributions shared by fault injection and the drill's simulated backends.

use std::time::Duration;

use crate::config::ConfigError;
use crate::rng::Rng;

/// A distribution of delays, sampled with a seedable [`Rng`].
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::chaos::Latency;
/// use tower_fortify::rng::Rng;
///
/// let rng = Rng::seeded(1);
/// let fixed = Latency::fixed(Duration::from_millis(20));
/// assert_eq!(fixed.sample(&rng), Duration::from_millis(20));
///
/// // Median 20 ms, 99 % of samples under 120 ms: a typical service's long tail.
/// let tail = Latency::log_normal(Duration::from_millis(20), Duration::from_millis(120)).unwrap();
/// let d = tail.sample(&rng);
/// assert!(d > Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Fixed(Duration),
    Uniform {
        min: Duration,
        max: Duration,
    },
    Exponential {
        mean: Duration,
    },
    LogNormal {
        mu: f64,
        sigma: f64,
        median: Duration,
        p99: Duration,
    },
}

/// The parameters a [`Latency`] was built from, to write it back out.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(not(feature = "drill"), allow(dead_code))]
pub(crate) enum Parts {
    Fixed(Duration),
    Uniform(Duration, Duration),
    Exponential(Duration),
    LogNormal(Duration, Duration),
}

/// The 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874_040_841;

/// The longest delay a sample may have (one hour), so a wide distribution cannot
/// overflow a timer.
const MAX_SAMPLE: f64 = 3600.0;

impl Latency {
    /// Always `delay`.
    pub const fn fixed(delay: Duration) -> Self {
        Self {
            kind: Kind::Fixed(delay),
        }
    }

    /// No delay at all.
    pub const fn zero() -> Self {
        Self::fixed(Duration::ZERO)
    }

    /// Uniform between `min` and `max`. Rejects `max < min` (field `latency.max`).
    pub fn uniform(min: Duration, max: Duration) -> Result<Self, ConfigError> {
        if max < min {
            return Err(ConfigError::new(
                "latency.max",
                format!("must not be below latency.min ({max:?} < {min:?})"),
            ));
        }
        Ok(Self {
            kind: Kind::Uniform { min, max },
        })
    }

    /// Exponentially distributed with the given mean (memoryless service times).
    pub const fn exponential(mean: Duration) -> Self {
        Self {
            kind: Kind::Exponential { mean },
        }
    }

    /// Log-normal with the given median and 99th percentile: most calls near the
    /// median, a long tail. Rejects a zero median (field `latency.median`) and a p99
    /// below the median (field `latency.p99`).
    pub fn log_normal(median: Duration, p99: Duration) -> Result<Self, ConfigError> {
        if median.is_zero() {
            return Err(ConfigError::new(
                "latency.median",
                "must be greater than zero",
            ));
        }
        if p99 < median {
            return Err(ConfigError::new(
                "latency.p99",
                format!("must not be below the median ({p99:?} < {median:?})"),
            ));
        }
        let mu = median.as_secs_f64().ln();
        let sigma = (p99.as_secs_f64().ln() - mu) / Z99;
        Ok(Self {
            kind: Kind::LogNormal {
                mu,
                sigma,
                median,
                p99,
            },
        })
    }

    /// The same distribution with every sample multiplied by `factor` (a "slow"
    /// phase). Negative or non-finite factors are treated as 1.
    pub fn scaled(self, factor: f64) -> Self {
        let factor = if factor.is_finite() && factor >= 0.0 {
            factor
        } else {
            1.0
        };
        let scale =
            |d: Duration| Duration::from_secs_f64((d.as_secs_f64() * factor).min(MAX_SAMPLE));
        let kind = match self.kind {
            Kind::Fixed(d) => Kind::Fixed(scale(d)),
            Kind::Uniform { min, max } => Kind::Uniform {
                min: scale(min),
                max: scale(max),
            },
            Kind::Exponential { mean } => Kind::Exponential { mean: scale(mean) },
            Kind::LogNormal {
                mu,
                sigma,
                median,
                p99,
            } => Kind::LogNormal {
                mu: if factor > 0.0 {
                    mu + factor.ln()
                } else {
                    f64::NEG_INFINITY
                },
                sigma,
                median: scale(median),
                p99: scale(p99),
            },
        };
        Self { kind }
    }

    /// The median of the distribution.
    pub fn median(&self) -> Duration {
        match self.kind {
            Kind::Fixed(d) => d,
            Kind::Uniform { min, max } => (min + max) / 2,
            Kind::Exponential { mean } => mean.mul_f64(std::f64::consts::LN_2),
            Kind::LogNormal { median, .. } => median,
        }
    }

    /// The parameters it was built from.
    #[cfg_attr(not(feature = "drill"), allow(dead_code))]
    pub(crate) fn parts(&self) -> Parts {
        match self.kind {
            Kind::Fixed(d) => Parts::Fixed(d),
            Kind::Uniform { min, max } => Parts::Uniform(min, max),
            Kind::Exponential { mean } => Parts::Exponential(mean),
            Kind::LogNormal { median, p99, .. } => Parts::LogNormal(median, p99),
        }
    }

    /// Draws one delay. Fixed delays draw nothing from `rng`.
    #[inline]
    pub fn sample(&self, rng: &Rng) -> Duration {
        match self.kind {
            Kind::Fixed(d) => d,
            Kind::Uniform { min, max } => secs(rng.between(min.as_secs_f64(), max.as_secs_f64())),
            Kind::Exponential { mean } => {
                // 1 - u lies in (0, 1], so the logarithm is finite.
                secs(-(1.0 - rng.next_f64()).ln() * mean.as_secs_f64())
            }
            Kind::LogNormal { mu, sigma, .. } => secs((mu + sigma * standard_normal(rng)).exp()),
        }
    }
}

impl Default for Latency {
    fn default() -> Self {
        Self::zero()
    }
}

fn secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s.min(MAX_SAMPLE))
    } else {
        Duration::ZERO
    }
}

/// One standard normal sample (Box–Muller, two uniform draws).
fn standard_normal(rng: &Rng) -> f64 {
    let u1 = 1.0 - rng.next_f64();
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_normal_matches_its_median_and_p99() {
        let l = Latency::log_normal(Duration::from_millis(20), Duration::from_millis(120)).unwrap();
        let rng = Rng::seeded(3);
        let mut xs: Vec<Duration> = (0..20_000).map(|_| l.sample(&rng)).collect();
        xs.sort();
        let p50 = xs[10_000].as_secs_f64() * 1e3;
        let p99 = xs[19_800].as_secs_f64() * 1e3;
        assert!((18.0..22.0).contains(&p50), "p50 {p50}");
        assert!((100.0..145.0).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn exponential_mean_and_scaling() {
        let l = Latency::exponential(Duration::from_millis(10));
        let rng = Rng::seeded(4);
        let mean: f64 = (0..20_000)
            .map(|_| l.sample(&rng).as_secs_f64())
            .sum::<f64>()
            / 20_000.0;
        assert!((0.0095..0.0105).contains(&mean), "mean {mean}");
        let slow = Latency::fixed(Duration::from_millis(10)).scaled(3.0);
        assert_eq!(slow.sample(&rng), Duration::from_millis(30));
        assert_eq!(
            Latency::log_normal(Duration::from_millis(10), Duration::from_millis(50))
                .unwrap()
                .scaled(2.0)
                .median()
                .as_millis(),
            20
        );
    }

    #[test]
    fn rejects_inverted_bounds() {
        let err = Latency::uniform(Duration::from_millis(5), Duration::from_millis(1)).unwrap_err();
        assert_eq!(err.field(), "latency.max");
        let err =
            Latency::log_normal(Duration::from_millis(5), Duration::from_millis(1)).unwrap_err();
        assert_eq!(err.field(), "latency.p99");
        assert_eq!(
            Latency::log_normal(Duration::ZERO, Duration::from_millis(1))
                .unwrap_err()
                .field(),
            "latency.median"
        );
    }
}
