//! The load a drill sends: open loop, constant or Poisson, in steps.

use std::time::Duration;

use crate::config::{ConfigError, check_range};
use crate::rng::Rng;

/// The load a drill sends: open loop, so requests keep arriving at the scheduled rate
/// however slowly the stack answers (as real users do).
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    pub(super) poisson: bool,
    pub(crate) rate: f64,
    pub(crate) steps: Vec<(Duration, f64)>,
}

impl Load {
    /// Evenly spaced requests, `rate` per second.
    pub fn constant(rate: f64) -> Self {
        Self {
            poisson: false,
            rate,
            steps: Vec::new(),
        }
    }

    /// Poisson arrivals (exponential gaps) averaging `rate` per second: bursts and lulls
    /// like independent users.
    pub fn poisson(rate: f64) -> Self {
        Self {
            poisson: true,
            ..Self::constant(rate)
        }
    }

    /// From `at` on, the rate becomes `rate` (steps must be in time order).
    pub fn step(mut self, at: Duration, rate: f64) -> Self {
        self.steps.push((at, rate));
        self
    }

    /// The rate in force `t` after the start.
    pub fn rate_at(&self, t: Duration) -> f64 {
        let mut rate = self.rate;
        for &(at, r) in &self.steps {
            if at <= t {
                rate = r;
            } else {
                break;
            }
        }
        rate
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_range("load.rate", self.rate, 0.0, 1e7)?;
        for pair in self.steps.windows(2) {
            if pair[1].0 < pair[0].0 {
                return Err(ConfigError::new(
                    "load.steps.at",
                    "steps must be in time order",
                ));
            }
        }
        for &(_, r) in &self.steps {
            check_range("load.steps.rate", r, 0.0, 1e7)?;
        }
        Ok(())
    }

    /// The arrival times of every request in `0..duration`, in order.
    pub(crate) fn arrivals(&self, duration: Duration, rng: Rng) -> Arrivals<'_> {
        Arrivals {
            load: self,
            t: 0.0,
            segment: 0.0,
            k: 0,
            end: duration.as_secs_f64(),
            rng,
        }
    }
}

/// Iterator over arrival times, in seconds since the start.
pub(crate) struct Arrivals<'a> {
    load: &'a Load,
    /// The next arrival.
    t: f64,
    /// Where the current rate started, and how many arrivals since: constant
    /// arrivals are `segment + k / rate`, so rounding errors do not add up.
    segment: f64,
    k: u64,
    end: f64,
    rng: Rng,
}

impl Iterator for Arrivals<'_> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        loop {
            if self.t >= self.end {
                return None;
            }
            let rate = self.load.rate_at(Duration::from_secs_f64(self.t));
            let next_step = self
                .load
                .steps
                .iter()
                .map(|s| s.0.as_secs_f64())
                .find(|&at| at > self.t);
            if rate <= 0.0 {
                // Jump to the next step, if any.
                self.t = next_step.unwrap_or(self.end);
                self.segment = self.t;
                self.k = 0;
                continue;
            }
            let arrival = self.t;
            self.k += 1;
            let next = if self.load.poisson {
                self.t - (1.0 - self.rng.next_f64()).ln() / rate
            } else {
                self.segment + self.k as f64 / rate
            };
            match next_step {
                // The rate changes before the next arrival: start afresh at the step.
                Some(at) if next >= at => {
                    self.t = at;
                    self.segment = at;
                    self.k = 0;
                }
                _ => self.t = next,
            }
            return Some(Duration::from_secs_f64(arrival));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_and_stepped_arrivals() {
        let load = Load::constant(10.0)
            .step(Duration::from_secs(1), 0.0)
            .step(Duration::from_secs(2), 20.0);
        let n = load
            .arrivals(Duration::from_secs(3), Rng::seeded(1))
            .count();
        assert_eq!(n, 30);
        let p = Load::poisson(1000.0)
            .arrivals(Duration::from_secs(10), Rng::seeded(2))
            .count();
        assert!((9_700..10_300).contains(&p), "{p}");
    }
}
