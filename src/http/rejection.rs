//! What a layer's error means for the caller on the other side of the wire.

use std::fmt;
use std::time::Duration;

/// The kind of refusal an error stands for, which decides the status a server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The service cannot take the call now (an open circuit breaker, a full
    /// bulkhead, shed load): HTTP 503, gRPC `UNAVAILABLE`.
    Unavailable,
    /// The caller is sending too much (a rate limit or throttle): HTTP 429, gRPC
    /// `RESOURCE_EXHAUSTED`.
    Throttled,
    /// The call ran out of time: HTTP 504, gRPC `DEADLINE_EXCEEDED`.
    DeadlineExceeded,
}

/// A refusal by a resilience layer, with the delay after which the caller may try
/// again when it is known.
///
/// [`Rejection::of`] recognises the errors of tower's timeout and load-shedding
/// layers and this crate's layer errors anywhere in an error's source chain. It is itself an error, so a custom layer can
/// return one to get the same responses.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::http::{Rejection, RejectionKind};
///
/// let err: tower_fortify::BoxError = Box::new(tower::timeout::error::Elapsed::new());
/// let r = Rejection::of(err.as_ref()).unwrap();
/// assert_eq!(r.kind(), RejectionKind::DeadlineExceeded);
///
/// let mine: tower_fortify::BoxError =
///     Box::new(Rejection::new(RejectionKind::Throttled).retry_after(Duration::from_secs(2)));
/// assert_eq!(Rejection::of(mine.as_ref()).unwrap().retry_after_hint(), Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    kind: RejectionKind,
    retry_after: Option<Duration>,
}

impl Rejection {
    /// A rejection of `kind` without a delay.
    pub const fn new(kind: RejectionKind) -> Self {
        Self {
            kind,
            retry_after: None,
        }
    }

    /// This rejection, telling the caller to come back after `delay`.
    pub const fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// What kind of refusal it is.
    pub const fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// When the caller may try again, if known.
    pub const fn retry_after_hint(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The rejection `err` stands for: the first error in its source chain that is a
    /// [`Rejection`], a `tower::timeout::error::Elapsed` or one of this crate's
    /// [`timeout`](crate::timeout) errors (deadline), a
    /// `tower::load_shed::error::Overloaded` (unavailable), or one of this crate's
    /// layer errors: an open circuit breaker (unavailable, with the time until it may
    /// admit again), a full bulkhead, or a failover router with no healthy backend
    /// (unavailable). `None` for any other
    /// error (an application failure, which servers answer with a plain 500 /
    /// `INTERNAL`).
    pub fn of(err: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut current = Some(err);
        while let Some(e) = current {
            if let Some(r) = e.downcast_ref::<Rejection>() {
                return Some(*r);
            }
            if e.is::<tower::timeout::error::Elapsed>() {
                return Some(Self::new(RejectionKind::DeadlineExceeded));
            }
            #[cfg(feature = "timeout")]
            if e.is::<crate::timeout::Elapsed>() || e.is::<crate::timeout::DeadlineExceeded>() {
                return Some(Self::new(RejectionKind::DeadlineExceeded));
            }
            if e.is::<tower::load_shed::error::Overloaded>() {
                return Some(Self::new(RejectionKind::Unavailable));
            }
            #[cfg(feature = "circuit-breaker")]
            if let Some(open) = e.downcast_ref::<crate::circuit_breaker::error::CircuitOpen>() {
                let r = Self::new(RejectionKind::Unavailable);
                return Some(match open.retry_after() {
                    Some(d) => r.retry_after(d),
                    None => r,
                });
            }
            #[cfg(feature = "bulkhead")]
            if e.is::<crate::bulkhead::BulkheadFull>() {
                return Some(Self::new(RejectionKind::Unavailable));
            }
            #[cfg(feature = "failover")]
            if e.is::<crate::failover::NoHealthyBackend>() {
                return Some(Self::new(RejectionKind::Unavailable));
            }
            current = e.source();
        }
        None
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RejectionKind::Unavailable => f.write_str("service unavailable")?,
            RejectionKind::Throttled => f.write_str("too many requests")?,
            RejectionKind::DeadlineExceeded => f.write_str("deadline exceeded")?,
        }
        if let Some(d) = self.retry_after {
            write!(f, "; retry after {d:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}
