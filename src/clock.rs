//! The time reference of shared state, taken on first use.
//!
//! Shared state keeps times as nanoseconds in atomics, counted from an epoch. An
//! epoch read when a layer is *built* is wrong whenever the layer is built outside
//! the runtime that later drives it, the common shape in `main` and in tests:
//! `tokio::time::Instant::now()` outside a runtime reads the system clock, inside a
//! paused runtime it reads that runtime's clock, and the two disagree. A breaker
//! built after a paused runtime was created, outside its context, then saw the
//! runtime's time stand still (clamped to its epoch) for as long as the gap, and
//! reported `retry in 2.1ms` once its whole open time had passed.
//!
//! [`Epoch`] therefore reads the clock the first time it is asked, which is on the
//! first call, inside the runtime that serves it. Its fast path is one atomic load.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// A time origin read on first use (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Epoch(OnceLock<Instant>);

impl Epoch {
    /// An epoch not yet read.
    pub(crate) const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// The origin, read from the clock now if this is the first use.
    #[inline]
    pub(crate) fn origin(&self) -> Instant {
        *self.0.get_or_init(Instant::now)
    }

    /// Nanoseconds from the origin to now.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.since(Instant::now())
    }

    /// Nanoseconds from the origin to `at`; zero for an instant before the origin.
    #[inline]
    pub(crate) fn since(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.origin()))
    }

    /// The instant `ns` nanoseconds after the origin.
    #[cfg_attr(
        not(any(feature = "circuit-breaker", feature = "failover")),
        allow(dead_code)
    )]
    pub(crate) fn instant(&self, ns: u64) -> Instant {
        self.origin() + Duration::from_nanos(ns)
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years) where
/// `as_nanos() as u64` would silently wrap for the `Duration::MAX` that builders
/// accept as "never".
#[inline]
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A duration in microseconds, saturating like [`nanos`].
#[cfg_attr(not(feature = "failover"), allow(dead_code))]
#[inline]
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_saturate() {
        assert_eq!(nanos(Duration::MAX), u64::MAX);
        assert_eq!(micros(Duration::MAX), u64::MAX);
        assert_eq!(nanos(Duration::from_nanos(7)), 7);
    }
}
