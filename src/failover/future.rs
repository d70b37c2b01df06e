//! The router's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::error::NoHealthyBackend;
use super::judge::Judge;
use super::pool::Node;
use crate::BoxError;
use crate::classify::Classify;
use crate::shard::Padded;

/// Counts one call in flight on its backend until dropped.
pub(crate) struct Guard<C> {
    pub(crate) node: Arc<Node>,
    pub(crate) judge: Arc<Padded<Judge<C>>>,
    pub(crate) start: Option<Instant>,
}

impl<C> Drop for Guard<C> {
    fn drop(&mut self) {
        self.node.hot.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A routed call's claim on its backend, taken out of the router's response future
/// with [`ResponseFuture::take_permit`] so that the verdict for outlier detection
/// can wait for the end of a streamed response.
///
/// While it lives the call counts as in flight on its backend (its load).
/// [`record`](Self::record) records the outcome and the latency up to now; dropping
/// it records nothing, like a cancelled call.
pub struct FailoverPermit<C>(Guard<C>);

impl<C> fmt::Debug for FailoverPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverPermit").finish_non_exhaustive()
    }
}

impl<C> FailoverPermit<C> {
    /// Records the outcome of the call for the backend's outlier detection.
    pub fn record(self, outcome: crate::classify::Outcome) {
        let guard = &self.0;
        let elapsed = guard.start.map(|s| (s, Instant::now()));
        guard.judge.pool.record(&guard.node, outcome, elapsed);
    }
}

pin_project! {
    /// The future returned by [`Failover`](super::Failover): the backend's result, or
    /// [`NoHealthyBackend`].
    ///
    /// When the backend answers, the result is classified and recorded for outlier
    /// detection. Dropped before that, the call leaves the backend's in-flight count
    /// and is recorded as neither a success nor a failure.
    pub struct ResponseFuture<F, C> {
        #[pin]
        state: State<F>,
        guard: Option<Guard<C>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] fut: F },
        Rejected { error: Option<NoHealthyBackend> },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn called(fut: F, guard: Guard<C>) -> Self {
        Self {
            state: State::Called { fut },
            guard: Some(guard),
        }
    }

    pub(crate) fn rejected(error: NoHealthyBackend) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
            guard: None,
        }
    }

    /// Takes the call's claim on its backend out of the future, so that its outcome
    /// can be recorded later (at the end of a streamed response, for instance). The
    /// future then completes without recording anything; the taker records with
    /// [`FailoverPermit::record`] or drops the permit to cancel. `None` for a
    /// rejected call and once the outcome was recorded.
    ///
    /// This is how a streamed response keeps the verdict until its body ends (see
    /// `tower_fortify::http::HoldToEosLayer` with the `http` feature).
    pub fn take_permit(self: Pin<&mut Self>) -> Option<FailoverPermit<C>> {
        self.project().guard.take().map(FailoverPermit)
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("rejected", &matches!(self.state, State::Rejected { .. }))
            .finish_non_exhaustive()
    }
}

impl<F, C, R, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
    C: Classify<R, E>,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProj::Called { fut } => {
                let result = ready!(fut.poll(cx));
                if let Some(guard) = this.guard.take() {
                    let judge: &Judge<C> = &guard.judge;
                    let outcome = judge.classifier.classify(result.as_ref()).now_or_success();
                    let elapsed = guard.start.map(|s| (s, Instant::now()));
                    judge.pool.record(&guard.node, outcome, elapsed);
                }
                Poll::Ready(result.map_err(Into::into))
            }
            StateProj::Rejected { error } => Poll::Ready(Err(error
                .take()
                .map(|e| Box::new(e) as BoxError)
                .unwrap_or_else(|| "failover response future polled after completion".into()))),
        }
    }
}

impl<C> crate::guard::EndGuard for FailoverPermit<C> {
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
    type Guard = FailoverPermit<C>;

    #[inline]
    fn hold_guard(self: Pin<&mut Self>) -> Option<FailoverPermit<C>> {
        // Routed at `call`: the claim on the backend is there already.
        self.take_permit()
    }

    #[inline]
    fn take_guard(self: Pin<&mut Self>) -> Option<FailoverPermit<C>> {
        None
    }
}
