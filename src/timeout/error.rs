//! The timeouts' errors.

use std::fmt;
use std::time::Duration;

pub(crate) fn fmt_duration(d: Duration, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    fmt::Display::fmt(&crate::observe::Ms(d), f)
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

// What the timeouts' errors mean on the wire (`crate::guard`).

static ELAPSED: crate::guard::Registration = crate::guard::Registration::of::<Elapsed>();
static DEADLINE_EXCEEDED: crate::guard::Registration =
    crate::guard::Registration::of::<DeadlineExceeded>();

impl std::error::Error for Elapsed {
    /// None; makes the type known to [`Rejection::of`](crate::guard::Rejection::of).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        ELAPSED.register();
        None
    }
}

impl crate::guard::Reject for Elapsed {
    /// Deadline exceeded (`attempt-timeout`).
    fn rejection(&self) -> crate::guard::Rejection {
        crate::guard::Rejection::new(crate::guard::RejectionKind::DeadlineExceeded)
            .with_reason("attempt-timeout")
            .with_description("upstream timed out")
    }
}

impl std::error::Error for DeadlineExceeded {
    /// None; makes the type known to [`Rejection::of`](crate::guard::Rejection::of).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        DEADLINE_EXCEEDED.register();
        None
    }
}

impl crate::guard::Reject for DeadlineExceeded {
    /// Deadline exceeded (`deadline-exceeded`).
    fn rejection(&self) -> crate::guard::Rejection {
        crate::guard::Rejection::new(crate::guard::RejectionKind::DeadlineExceeded)
    }
}
