//! The timeouts' errors.

use std::fmt;
use std::time::Duration;

/// Writes a duration the way logs and error messages should show it: whole
/// milliseconds below 10 s (`300 ms`), tenths of a second above (`12.5 s`).
pub(crate) fn fmt_duration(d: Duration, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let ms = d.as_millis();
    if ms < 10_000 {
        write!(f, "{ms} ms")
    } else {
        write!(f, "{:.1} s", d.as_secs_f64())
    }
}

/// One attempt took longer than its [`TimeoutLayer`](super::TimeoutLayer) allows.
///
/// A retryable failure: the attempt was cut, the request may be tried again (the
/// [`DefaultClassifier`](crate::classify::DefaultClassifier) and the HTTP and gRPC
/// classifiers count every error as retryable). A server that gets it answers `504`
/// / `DEADLINE_EXCEEDED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    pub(super) after: Duration,
}

impl Elapsed {
    /// How long the attempt was given.
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("attempt timed out after ")?;
        fmt_duration(self.after, f)
    }
}

impl std::error::Error for Elapsed {}

/// The whole request, its retries included, took longer than its
/// [`DeadlineLayer`](super::DeadlineLayer) allows.
///
/// Final: whatever was running below was cancelled, and there is no time left for
/// another attempt. A server that gets it answers `504` / `DEADLINE_EXCEEDED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineExceeded {
    pub(super) after: Duration,
}

impl DeadlineExceeded {
    /// How long the request was given.
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request deadline of ")?;
        fmt_duration(self.after, f)?;
        f.write_str(" exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}
