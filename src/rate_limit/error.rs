//! The rate limiter's error.

use std::fmt;
use std::time::Duration;

/// The call was over the rate limit and was not sent.
///
/// Returned as a [`BoxError`](crate::BoxError); `downcast_ref::<RateLimited>()` to
/// recognise it. It says when a call would be admitted again: the `Retry-After` of an
/// HTTP `429` (the `axum` feature sends exactly that) and the
/// `grpc-retry-pushback-ms` of a gRPC `RESOURCE_EXHAUSTED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    pub(super) retry_after: Duration,
    pub(super) name: Option<std::sync::Arc<str>>,
}

impl RateLimited {
    /// The name of the limiter that refused (its builder's `.name(..)`), if it has
    /// one. The error's message starts with it.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// How long until a call would be admitted.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}rate limit exceeded; retry in {}",
            crate::observe::Prefix(&self.name),
            crate::observe::Ms(self.retry_after)
        )
    }
}

static RATE_LIMITED: crate::guard::Registration = crate::guard::Registration::of::<RateLimited>();

impl std::error::Error for RateLimited {
    /// None; makes the type known to [`Rejection::of`](crate::guard::Rejection::of).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        RATE_LIMITED.register();
        None
    }
}

impl crate::guard::Reject for RateLimited {
    /// Throttled (`rate-limited`), with the time until a call would be admitted.
    fn rejection(&self) -> crate::guard::Rejection {
        crate::guard::Rejection::new(crate::guard::RejectionKind::Throttled)
            .with_reason("rate-limited")
            .with_description("rate limit exceeded")
            .retry_after(self.retry_after)
    }
}
