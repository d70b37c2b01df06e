//! The error a circuit breaker returns when it rejects a call.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// The circuit breaker rejected the call without sending it.
///
/// Returned as a [`BoxError`](crate::BoxError) from the breaker's response future;
/// `downcast_ref::<CircuitOpen>()` to recognise it. It says when the breaker may admit
/// calls again: the end of the open period, or nothing when that is not known (the
/// breaker is half-open with every probe slot taken, or forced open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitOpen {
    open: Option<(Instant, Duration)>,
}

impl CircuitOpen {
    pub(crate) fn new(open: Option<(Instant, Duration)>) -> Self {
        Self { open }
    }

    /// The moment the breaker may admit calls again (it then admits probes), if known.
    pub fn retry_at(&self) -> Option<Instant> {
        self.open.map(|(at, _)| at)
    }

    /// How long the breaker was to stay open when the call was rejected, if known.
    /// Suitable for an HTTP `Retry-After` header.
    pub fn retry_after(&self) -> Option<Duration> {
        self.open.map(|(_, d)| d)
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.open {
            Some((_, d)) => write!(
                f,
                "circuit breaker is open; retry in {}",
                crate::observe::Ms(d)
            ),
            None => f.pad("circuit breaker is open"),
        }
    }
}

impl std::error::Error for CircuitOpen {}
