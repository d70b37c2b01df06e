//! The circuit breaker's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::core::Admit;
use super::error::{BreakerError, CircuitOpen};
use super::shared::Slot;
use crate::BoxError;
use crate::classify::Classify;
use crate::shard::Padded;

/// An admitted call's claim on the breaker: records the outcome once, or, dropped
/// without an outcome, records nothing and gives back a probe slot.
pub(crate) struct Permit<C> {
    slot: Arc<Padded<Slot<C>>>,
    admit: Admit,
    start: Option<Instant>,
    done: bool,
}

impl<C> Permit<C> {
    pub(crate) fn new(slot: Arc<Padded<Slot<C>>>, admit: Admit, start: Option<Instant>) -> Self {
        Self {
            slot,
            admit,
            start,
            done: false,
        }
    }
}

impl<C> Drop for Permit<C> {
    fn drop(&mut self) {
        if !self.done && self.admit.is_probe() {
            self.slot.core.release_probe(self.admit);
        }
    }
}

/// An admitted call's claim on a breaker, taken out of its response future with
/// [`ResponseFuture::take_permit`] so that the verdict can wait for the end of a
/// streamed response.
///
/// [`record`](Self::record) records the call's outcome (with its duration, measured
/// from when it was admitted, for slow-call detection); dropping it records nothing
/// and gives back a half-open probe slot, like a cancelled call.
pub struct CircuitBreakerPermit<C>(Permit<C>);

impl<C> fmt::Debug for CircuitBreakerPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerPermit")
            .field("probe", &self.0.admit.is_probe())
            .finish_non_exhaustive()
    }
}

impl<C> CircuitBreakerPermit<C> {
    /// Records the outcome of the call.
    pub fn record(mut self, outcome: crate::classify::Outcome) {
        let permit = &mut self.0;
        permit.done = true;
        let elapsed = permit.start.map(|s| s.elapsed());
        permit.slot.core.record(permit.admit, outcome, elapsed);
    }
}

pin_project! {
    /// The future returned by [`CircuitBreaker`](super::CircuitBreaker): the inner
    /// service's response, or a [`BreakerError`] holding [`CircuitOpen`] for a
    /// rejected call (no allocation) or the inner service's error.
    ///
    /// Dropping it before it completes cancels the call: nothing is recorded and a
    /// half-open probe slot is given back.
    pub struct ResponseFuture<F, C> {
        #[pin]
        state: State<F, C>,
    }
}

pin_project! {
    // The permit lives in the admitted variant and the rejection in the other one:
    // a call has one or the other, so the future is as large as the larger of the
    // two, not their sum (each move of the future copies it).
    #[project = StateProj]
    enum State<F, C> {
        Called { #[pin] fut: F, permit: Option<Permit<C>> },
        Rejected { error: Option<CircuitOpen> },
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called { .. } => "called",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn called(fut: F, permit: Permit<C>) -> Self {
        Self {
            state: State::Called {
                fut,
                permit: Some(permit),
            },
        }
    }

    pub(crate) fn rejected(error: CircuitOpen) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
        }
    }

    /// Takes the call's claim on the breaker out of the future, so that its outcome
    /// can be recorded later (at the end of a streamed response, for instance). The
    /// future then completes without recording anything; the taker records the
    /// outcome with [`CircuitBreakerPermit::record`], or drops the permit to cancel the
    /// call. `None` for a rejected call and once the outcome was recorded.
    ///
    /// This is how a streamed response keeps the verdict until its body ends (see
    /// `tower_fortify::http::HoldToEosLayer` with the `http` feature).
    pub fn take_permit(self: Pin<&mut Self>) -> Option<CircuitBreakerPermit<C>> {
        match self.project().state.project() {
            StateProj::Called { permit, .. } if permit.as_ref().is_some_and(|p| !p.done) => {
                permit.take().map(CircuitBreakerPermit)
            }
            _ => None,
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, E>,
{
    type Output = Result<T, BreakerError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { fut, permit } => {
                let result = ready!(fut.poll(cx));
                // Read the permit in place (moving it out costs more than the rest
                // of the success path); it is released when the future is dropped.
                if let Some(permit) = permit.as_mut()
                    && !permit.done
                {
                    permit.done = true;
                    let slot: &Slot<C> = &permit.slot;
                    let outcome = slot.classifier.classify(result.as_ref()).now_or_success();
                    let elapsed = permit.start.map(|s| s.elapsed());
                    slot.core.record(permit.admit, outcome, elapsed);
                }
                Poll::Ready(result.map_err(BreakerError::inner))
            }
            StateProj::Rejected { error } => Poll::Ready(Err(BreakerError::open(
                error.take().expect("polled after completion"),
            ))),
        }
    }
}

impl<C> crate::guard::EndGuard for CircuitBreakerPermit<C> {
    #[inline]
    fn finish(self, outcome: Option<crate::classify::Outcome>) {
        match outcome {
            Some(outcome) => self.record(outcome),
            None => drop(self),
        }
    }
}

impl<F, C, T, E> crate::guard::GuardedFuture for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, E>,
{
    type Guard = CircuitBreakerPermit<C>;

    #[inline]
    fn hold_guard(self: Pin<&mut Self>) -> Option<CircuitBreakerPermit<C>> {
        // Admitted at `call`: the claim is there already.
        self.take_permit()
    }

    #[inline]
    fn take_guard(self: Pin<&mut Self>) -> Option<CircuitBreakerPermit<C>> {
        None
    }
}
