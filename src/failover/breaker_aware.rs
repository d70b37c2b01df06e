use std::time::Duration;

use crate::BoxError;
use crate::circuit_breaker::error::{BreakerError, CircuitOpen};
use crate::classify::{Classified, Classify, DefaultClassifier, Outcome, ServerHint};

/// A classifier for a router over per-backend circuit breakers: a [`CircuitOpen`]
/// rejection becomes [`Outcome::Overloaded`] with the time until the breaker may admit
/// again, so the router holds that backend out of rotation until then instead of
/// counting the rejection as an outlier failure. Every other result goes to the inner
/// classifier.
///
/// A breaker that cannot say when it will admit again (forced open, or half-open with
/// every probe slot taken) is held out for [`busy_hold`](Self::busy_hold), 100 ms by
/// default.
///
/// ```
/// use tower_fortify::BoxError;
/// use tower_fortify::classify::{Classify, Outcome};
/// use tower_fortify::failover::BreakerAware;
///
/// let classifier = BreakerAware::default();
/// let err: BoxError = "connection refused".into();
/// let verdict = Classify::<(), BoxError>::classify(&classifier, Err(&err));
/// assert_eq!(verdict.now_or_success(), Outcome::RetryableFailure);
/// // Use it with `Failover::builder().classifier(BreakerAware::default())`.
/// ```
#[derive(Debug, Clone, Copy)]
pub struct BreakerAware<C = DefaultClassifier> {
    inner: C,
    busy_hold: Duration,
}

impl Default for BreakerAware {
    fn default() -> Self {
        Self::new(DefaultClassifier)
    }
}

impl<C> BreakerAware<C> {
    /// Wraps `inner`, which classifies every result that is not a breaker rejection.
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            busy_hold: Duration::from_millis(100),
        }
    }

    /// How long to hold out a backend whose breaker rejects without saying when it
    /// will admit again.
    pub fn busy_hold(mut self, hold: Duration) -> Self {
        self.busy_hold = hold;
        self
    }
}

impl<Res, C> Classify<Res, BoxError> for BreakerAware<C>
where
    C: Classify<Res, BoxError>,
{
    type Eos = C::Eos;

    fn classify(&self, result: Result<&Res, &BoxError>) -> Classified<C::Eos> {
        if let Err(e) = result
            && let Some(open) = e.downcast_ref::<CircuitOpen>()
        {
            let wait = open.retry_after().unwrap_or(self.busy_hold);
            return Classified::Ready(Outcome::Overloaded(ServerHint::RetryAfter(wait)));
        }
        self.inner.classify(result)
    }
}

/// Over breakers used directly as backends (their error is a [`BreakerError`]): a
/// rejection is judged as above without being boxed, and the inner service's error
/// goes to the inner classifier as the `BoxError` it holds.
impl<Res, C> Classify<Res, BreakerError> for BreakerAware<C>
where
    C: Classify<Res, BoxError>,
{
    type Eos = C::Eos;

    fn classify(&self, result: Result<&Res, &BreakerError>) -> Classified<C::Eos> {
        match result {
            Ok(res) => self.inner.classify(Ok(res)),
            Err(e) => match e.as_parts() {
                Ok(open) => {
                    let wait = open.retry_after().unwrap_or(self.busy_hold);
                    Classified::Ready(Outcome::Overloaded(ServerHint::RetryAfter(wait)))
                }
                Err(inner) => self.inner.classify(Err(inner)),
            },
        }
    }
}
