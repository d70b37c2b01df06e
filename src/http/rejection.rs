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
    reason: &'static str,
}

/// The `x-fortify-rejected` header: which layer refused a call and why
/// ([`Rejection::reason`]), so a client (or an on-call engineer reading an access log)
/// can tell a full bulkhead from an open breaker.
pub const REJECTED_HEADER: &str = "x-fortify-rejected";

impl Rejection {
    /// A rejection of `kind` without a delay.
    pub const fn new(kind: RejectionKind) -> Self {
        Self {
            kind,
            retry_after: None,
            reason: match kind {
                RejectionKind::Unavailable => "unavailable",
                RejectionKind::Throttled => "throttled",
                RejectionKind::DeadlineExceeded => "deadline-exceeded",
            },
        }
    }

    /// This rejection, with `reason` as its short, stable name (kebab-case, such as
    /// `"circuit-open"`): the value of the [`REJECTED_HEADER`] and the start of the
    /// response body.
    pub const fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = reason;
        self
    }

    /// Which layer refused and why: `circuit-open`, `bulkhead-full`, `queue-timeout`,
    /// `rate-limited`,
    /// `no-healthy-backend`, `deadline-exceeded`, `attempt-timeout`, `load-shed`, or
    /// the kind's name (`unavailable`, `throttled`) for others.
    pub const fn reason(&self) -> &'static str {
        self.reason
    }

    /// A one-line description for a response body: the reason, and when to come back.
    pub fn message(&self) -> String {
        let what = match self.reason {
            "circuit-open" => "circuit breaker open",
            "bulkhead-full" => "too many requests in flight",
            "queue-timeout" => "waited too long for a slot",
            "no-healthy-backend" => "no healthy backend",
            "deadline-exceeded" => "request deadline exceeded",
            "attempt-timeout" => "upstream timed out",
            "load-shed" => "load shed",
            "throttled" => "too many requests",
            "rate-limited" => "rate limit exceeded",
            _ => "service unavailable",
        };
        match self.retry_after {
            Some(d) => format!(
                "{}: {what}; retry after {}\n",
                self.reason,
                crate::observe::Ms(d)
            ),
            None => format!("{}: {what}\n", self.reason),
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
            if e.is::<crate::timeout::Elapsed>() {
                return Some(
                    Self::new(RejectionKind::DeadlineExceeded).with_reason("attempt-timeout"),
                );
            }
            #[cfg(feature = "timeout")]
            if e.is::<crate::timeout::DeadlineExceeded>() {
                return Some(Self::new(RejectionKind::DeadlineExceeded));
            }
            if e.is::<tower::load_shed::error::Overloaded>() {
                return Some(Self::new(RejectionKind::Unavailable).with_reason("load-shed"));
            }
            #[cfg(feature = "circuit-breaker")]
            if let Some(open) = e.downcast_ref::<crate::circuit_breaker::error::CircuitOpen>() {
                let r = Self::new(RejectionKind::Unavailable).with_reason("circuit-open");
                return Some(match open.retry_after() {
                    Some(d) => r.retry_after(d),
                    None => r,
                });
            }
            #[cfg(feature = "bulkhead")]
            if let Some(full) = e.downcast_ref::<crate::bulkhead::BulkheadFull>() {
                let reason = if full.waited() {
                    "queue-timeout"
                } else {
                    "bulkhead-full"
                };
                return Some(Self::new(RejectionKind::Unavailable).with_reason(reason));
            }
            #[cfg(feature = "rate-limit")]
            if let Some(limited) = e.downcast_ref::<crate::rate_limit::RateLimited>() {
                return Some(
                    Self::new(RejectionKind::Throttled)
                        .with_reason("rate-limited")
                        .retry_after(limited.retry_after()),
                );
            }
            #[cfg(feature = "failover")]
            if e.is::<crate::failover::NoHealthyBackend>() {
                return Some(
                    Self::new(RejectionKind::Unavailable).with_reason("no-healthy-backend"),
                );
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
