//! A breaker's validated configuration.

use std::time::Duration;

use crate::backoff::Backoff;

/// How long the breaker stays open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum OpenPolicy {
    Fixed(Duration),
    Backoff(Backoff),
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Config {
    pub(crate) consecutive: Option<u32>,
    pub(crate) count_window: Option<u32>,
    pub(crate) time_window: Option<(Duration, u32)>,
    pub(crate) failure_rate: f64,
    pub(crate) slow: Option<(Duration, f64)>,
    pub(crate) min_calls: u32,
    pub(crate) open: OpenPolicy,
    pub(crate) reset_after: Duration,
    pub(crate) max_hint: Duration,
    pub(crate) probes: u32,
}

impl Config {
    pub(super) fn counts_successes(&self) -> bool {
        self.count_window.is_some() || self.time_window.is_some()
    }
}
