//! The timeouts' errors.

use std::fmt;
use std::sync::Arc;
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
///
/// Its message starts with the timeout's name when it has one
/// ([`TimeoutLayer::name`](super::TimeoutLayer::name); the one-call stack names each
/// backend's `stack/backend`): "payments/eu-1: attempt timed out after 2000 ms".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elapsed {
    pub(super) after: Duration,
    pub(super) name: Option<Arc<str>>,
}

impl Elapsed {
    /// How long the attempt was given.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// The name of the timeout that fired, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

fn fmt_name(name: &Option<Arc<str>>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match name {
        Some(name) => write!(f, "{name}: "),
        None => Ok(()),
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_name(&self.name, f)?;
        f.write_str("attempt timed out after ")?;
        fmt_duration(self.after, f)
    }
}

/// The whole request, its retries included, took longer than its
/// [`DeadlineLayer`](super::DeadlineLayer) allows.
///
/// Final: whatever was running below was cancelled, and there is no time left for
/// another attempt. A server that gets it answers `504` / `DEADLINE_EXCEEDED`.
///
/// Its message starts with the deadline's name when it has one
/// ([`DeadlineLayer::name`](super::DeadlineLayer::name); the one-call stack's is the
/// stack's name): "payments: request deadline of 5000 ms exceeded".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineExceeded {
    pub(super) after: Duration,
    pub(super) name: Option<Arc<str>>,
}

impl DeadlineExceeded {
    /// How long the request was given.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// The name of the deadline that passed, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_name(&self.name, f)?;
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
