//! The errors of a circuit breaker: [`CircuitOpen`] when it rejects a call, and
//! [`BreakerError`], what its service returns (a rejection or the inner service's
//! error), built without a heap allocation.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::BoxError;

/// The circuit breaker rejected the call without sending it.
///
/// A breaker's service returns it inside a [`BreakerError`]
/// (`err.downcast_ref::<CircuitOpen>()` finds it there), and once that is turned into a
/// [`BoxError`] (as every layer above a breaker does) `downcast_ref::<CircuitOpen>()` on
/// the box finds it. It says when the breaker may admit calls again: the end of the
/// open period, or nothing when that is not known (the breaker is half-open with every
/// probe slot taken, or forced open), and names the breaker when it has a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitOpen {
    /// When the call was rejected and when the open period ends, if known: the
    /// remaining time is only worked out when someone asks.
    open: Option<(Instant, Instant)>,
    name: Option<Arc<str>>,
}

impl CircuitOpen {
    /// Rejected at `now`, open until `until`.
    #[inline]
    pub(crate) fn until(now: Instant, until: Instant, name: Option<Arc<str>>) -> Self {
        Self {
            open: Some((now, until)),
            name,
        }
    }

    /// Open for a time that is not known.
    pub(crate) fn unknown(name: Option<Arc<str>>) -> Self {
        Self { open: None, name }
    }

    /// The moment the breaker may admit calls again (it then admits probes), if known.
    pub fn retry_at(&self) -> Option<Instant> {
        self.open.map(|(_, until)| until)
    }

    /// How long the breaker was to stay open when the call was rejected, if known.
    /// Suitable for an HTTP `Retry-After` header.
    pub fn retry_after(&self) -> Option<Duration> {
        self.open
            .map(|(now, until)| until.saturating_duration_since(now))
    }

    /// The name of the breaker that rejected the call, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "circuit breaker `{name}` is open")?,
            None => f.write_str("circuit breaker is open")?,
        }
        match self.retry_after() {
            Some(d) => write!(f, "; retry in {}", crate::observe::Ms(d)),
            None => Ok(()),
        }
    }
}

static CIRCUIT_OPEN: crate::guard::Registration = crate::guard::Registration::of::<CircuitOpen>();

impl StdError for CircuitOpen {
    /// None; makes the type known to [`Rejection::of`](crate::guard::Rejection::of).
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        CIRCUIT_OPEN.register();
        None
    }
}

impl crate::guard::Reject for CircuitOpen {
    /// Unavailable (`circuit-open`), with the time until the breaker may admit again.
    fn rejection(&self) -> crate::guard::Rejection {
        crate::guard::Rejection::new(crate::guard::RejectionKind::Unavailable)
            .with_reason("circuit-open")
            .with_description("circuit breaker open")
            .retry_after_opt(self.retry_after())
    }
}

enum Repr {
    Open(CircuitOpen),
    Inner(BoxError),
}

/// What a [`CircuitBreaker`](super::CircuitBreaker) (or a keyed breaker) returns: a
/// rejection ([`CircuitOpen`]) or the inner service's error, boxed.
///
/// A rejection is held by value, so an open breaker turns calls away without a heap
/// allocation. It converts into a [`BoxError`] with `?` or `.into()` (every layer of
/// this crate above a breaker does that): the inner error's box is passed on as it is,
/// and a rejection becomes a boxed [`CircuitOpen`]. Ask it as you would ask a
/// `BoxError`: [`is`](Self::is) and [`downcast_ref`](Self::downcast_ref) find a
/// `CircuitOpen` or the inner error's type.
///
/// It does not implement [`std::error::Error`] itself (that would conflict with the
/// conversion into `BoxError`, as for `anyhow::Error`); convert it into a `BoxError`
/// where one is needed.
pub struct BreakerError(Repr);

impl BreakerError {
    #[inline]
    pub(crate) fn open(open: CircuitOpen) -> Self {
        Self(Repr::Open(open))
    }

    #[inline]
    pub(crate) fn inner(e: impl Into<BoxError>) -> Self {
        Self(Repr::Inner(e.into()))
    }

    /// The rejection, if the breaker turned the call away.
    pub fn circuit_open(&self) -> Option<&CircuitOpen> {
        match &self.0 {
            Repr::Open(open) => Some(open),
            Repr::Inner(_) => None,
        }
    }

    /// The rejection, or else the inner service's error.
    pub fn as_parts(&self) -> Result<&CircuitOpen, &BoxError> {
        match &self.0 {
            Repr::Open(open) => Ok(open),
            Repr::Inner(e) => Err(e),
        }
    }

    /// Whether the breaker turned the call away.
    pub fn is_open(&self) -> bool {
        matches!(self.0, Repr::Open(_))
    }

    /// Whether the error is a `T`: [`CircuitOpen`] for a rejection, or the type of the
    /// inner service's error.
    pub fn is<T: StdError + 'static>(&self) -> bool {
        self.downcast_ref::<T>().is_some()
    }

    /// The error as a `T`, if it is one (see [`is`](Self::is)).
    pub fn downcast_ref<T: StdError + 'static>(&self) -> Option<&T> {
        match &self.0 {
            Repr::Open(open) => (open as &(dyn StdError + 'static)).downcast_ref(),
            Repr::Inner(e) => e.downcast_ref(),
        }
    }

    /// The error as a `BoxError`, like `.into()`.
    pub fn into_box(self) -> BoxError {
        self.into()
    }
}

impl From<BreakerError> for BoxError {
    #[inline]
    fn from(e: BreakerError) -> Self {
        match e.0 {
            Repr::Open(open) => Box::new(open),
            Repr::Inner(e) => e,
        }
    }
}

impl fmt::Display for BreakerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Open(open) => fmt::Display::fmt(open, f),
            Repr::Inner(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl fmt::Debug for BreakerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Open(open) => fmt::Debug::fmt(open, f),
            Repr::Inner(e) => fmt::Debug::fmt(e, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_names_its_breaker_and_converts_into_a_box() {
        let now = Instant::now();
        let until = now + Duration::from_millis(1500);
        let open = CircuitOpen::until(now, until, Some("db".into()));
        assert_eq!(open.retry_at(), Some(until));
        assert_eq!(open.retry_after(), Some(Duration::from_millis(1500)));
        let e = BreakerError::open(open.clone());
        assert_eq!(
            e.to_string(),
            "circuit breaker `db` is open; retry in 1500 ms"
        );
        assert!(e.is::<CircuitOpen>() && e.is_open());
        let boxed: BoxError = e.into();
        assert_eq!(boxed.downcast_ref::<CircuitOpen>(), Some(&open));
        let unnamed = CircuitOpen::unknown(None);
        assert_eq!((unnamed.retry_at(), unnamed.retry_after()), (None, None));
        assert_eq!(unnamed.to_string(), "circuit breaker is open");
    }

    #[test]
    fn an_inner_error_keeps_its_box() {
        let e = BreakerError::inner(std::io::Error::other("refused"));
        assert!(e.is::<std::io::Error>() && !e.is_open());
        assert_eq!(e.to_string(), "refused");
        let boxed: BoxError = e.into();
        assert!(boxed.downcast_ref::<std::io::Error>().is_some());
    }
}
