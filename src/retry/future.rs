//! The retry layer's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::Replay;
use super::shared::Shared;
use crate::budget::Withdrawal;
use crate::classify::{Classify, Outcome, ServerHint};
use crate::observe::{DelayCause, Event, RetryEvent, SkipReason};
use crate::shard::Padded;

pin_project! {
    /// The future returned by [`Retry`](super::Retry): the final attempt's result.
    ///
    /// Dropping it at any point — during an attempt, a backoff or while readying the
    /// inner service — cancels the request and returns any budget withdrawal not yet
    /// spent on a sent attempt.
    ///
    /// With a deadline, readying the inner service for a retry is bounded by it: an
    /// inner service still not ready at the deadline skips the retry (counted as
    /// [`SkipReason::Deadline`]) and the future returns the last attempt's result,
    /// which it keeps through the backoff for that purpose. Bounding by the deadline
    /// rather than skipping whenever the service is not ready at once (linkerd's
    /// "overflow"): the inner service here is often a `Buffer`, a failover router
    /// between two ready backends or a client re-establishing a connection, which
    /// become ready within milliseconds, and a retry sent a little late but inside
    /// the caller's deadline is worth more than one dropped. A retry can never make the
    /// caller wait past the deadline. Without a deadline, readiness is awaited as
    /// tower's `Retry` does (the caller said no wait is too long; put a timeout
    /// outside the retry to bound it).
    pub struct ResponseFuture<S, Req, C, P>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        // The last attempt's result, kept from the retry decision until the retry is
        // sent when a deadline may cut readying short.
        last: Option<Result<S::Response, S::Error>>,
        service: S,
        request: Option<Req>,
        shared: Arc<Padded<Shared<C, P>>>,
        attempt: u32,
        max_attempts: u32,
        flags: u8,
        deadline: Option<Instant>,
        previous_delay: Duration,
        withdrawal: Option<Withdrawal>,
    }
}

/// An attempt that failed, with how it was classified.
type Failed<T, E> = (Result<T, E>, Outcome);

const DISABLED: u8 = 1;
const NOT_REPLAYABLE: u8 = 2;

pin_project! {
    // The timers are boxed: they exist only once a retry is due (a slow path, where
    // an allocation is cheap next to the wait), and inline they would make every
    // request's future a `Sleep` (112 bytes) larger, which each move of the future
    // copies on the success path.
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] fut: F },
        Waiting { sleep: Pin<Box<Sleep>> },
        // The sleep, set once the inner service was not ready at once, ends at the
        // deadline.
        Readying { deadline: Option<Pin<Box<Sleep>>> },
    }
}

impl<S, Req, C, P> fmt::Debug for ResponseFuture<S, Req, C, P>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl<S, Req, C, P> ResponseFuture<S, Req, C, P>
where
    S: Service<Req>,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        fut: S::Future,
        service: S,
        request: Option<Req>,
        shared: Arc<Padded<Shared<C, P>>>,
        max_attempts: u32,
        deadline: Option<Instant>,
        disabled: bool,
        not_replayable: bool,
    ) -> Self {
        let flags =
            if disabled { DISABLED } else { 0 } | if not_replayable { NOT_REPLAYABLE } else { 0 };
        Self {
            state: State::Called { fut },
            last: None,
            service,
            request,
            shared,
            attempt: 1,
            max_attempts,
            flags,
            deadline,
            previous_delay: Duration::ZERO,
            withdrawal: None,
        }
    }
}

impl<S, Req, C, P> Future for ResponseFuture<S, Req, C, P>
where
    S: Service<Req>,
    C: Classify<S::Response, S::Error>,
    P: Replay<Req>,
{
    type Output = Result<S::Response, S::Error>;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // An attempt that succeeds is handled inline; a failure, a backoff and
        // readying for a retry out of line.
        let this = self.as_mut().project();
        if let StateProj::Called { fut } = this.state.project() {
            let result = ready!(fut.poll(cx));
            let shared: &Shared<C, P> = this.shared;
            let outcome = shared.classifier.classify(result.as_ref()).now_or_success();
            if let Some(budget) = &shared.budget {
                budget.record(outcome);
            }
            if outcome.is_success() {
                finish(shared, *this.attempt, true);
                return Poll::Ready(result);
            }
            return self.poll_slow(cx, Some((result, outcome)));
        }
        self.poll_slow(cx, None)
    }
}

impl<S, Req, C, P> ResponseFuture<S, Req, C, P>
where
    S: Service<Req>,
    C: Classify<S::Response, S::Error>,
    P: Replay<Req>,
{
    /// Everything but an attempt that succeeds: `failed` is the attempt that just
    /// failed, classified (the state is still `Called`).
    #[inline(never)]
    fn poll_slow(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut failed: Option<Failed<S::Response, S::Error>>,
    ) -> Poll<Result<S::Response, S::Error>> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { fut } => {
                    let (result, outcome) = match failed.take() {
                        Some(failed) => failed,
                        None => {
                            let result = ready!(fut.poll(cx));
                            let shared: &Shared<C, P> = this.shared;
                            let outcome =
                                shared.classifier.classify(result.as_ref()).now_or_success();
                            if let Some(budget) = &shared.budget {
                                budget.record(outcome);
                            }
                            if outcome.is_success() {
                                finish(shared, *this.attempt, true);
                                return Poll::Ready(result);
                            }
                            (result, outcome)
                        }
                    };
                    let shared: &Shared<C, P> = this.shared;
                    let attempt = *this.attempt;
                    let decision = decide(
                        shared,
                        outcome,
                        attempt,
                        *this.max_attempts,
                        *this.flags,
                        this.request
                            .as_ref()
                            .is_some_and(|r| shared.replay.is_replayable(r)),
                        *this.deadline,
                        *this.previous_delay,
                    );
                    match decision {
                        Err(reason) => {
                            tracing::debug!(
                                target: "tower_fortify::retry",
                                name = shared.listeners.name(),
                                attempt,
                                reason = reason.as_str(),
                                "retry skipped"
                            );
                            shared.listeners.emit(|| {
                                Event::Retry(RetryEvent::RetrySkipped { attempt, reason })
                            });
                            finish(shared, attempt, false);
                            return Poll::Ready(result);
                        }
                        Ok((delay, cause, withdrawal)) => {
                            tracing::debug!(
                                target: "tower_fortify::retry",
                                name = shared.listeners.name(),
                                attempt,
                                delay_ms = delay.as_millis() as u64,
                                from_server = cause == DelayCause::ServerHint,
                                "retry scheduled"
                            );
                            shared.listeners.emit(|| {
                                Event::Retry(RetryEvent::RetryScheduled {
                                    attempt,
                                    delay,
                                    cause,
                                })
                            });
                            *this.withdrawal = withdrawal;
                            *this.previous_delay = delay;
                            if this.deadline.is_some() {
                                *this.last = Some(result);
                            } else {
                                drop(result);
                            }
                            if delay.is_zero() {
                                this.state.set(State::Readying { deadline: None });
                            } else {
                                this.state.set(State::Waiting {
                                    sleep: Box::pin(tokio::time::sleep(delay)),
                                });
                            }
                        }
                    }
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state.set(State::Readying { deadline: None });
                }
                StateProj::Readying { deadline } => {
                    let ready = match this.service.poll_ready(cx) {
                        Poll::Ready(ready) => ready,
                        Poll::Pending => {
                            let Some(at) = *this.deadline else {
                                return Poll::Pending;
                            };
                            let sleep = deadline
                                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                            ready!(sleep.as_mut().poll(cx));
                            // Not ready by the deadline: the retry is skipped, and the
                            // caller gets the last attempt's result.
                            this.withdrawal.take();
                            let attempt = *this.attempt;
                            let reason = SkipReason::Deadline;
                            tracing::debug!(
                                target: "tower_fortify::retry",
                                attempt,
                                reason = reason.as_str(),
                                "retry skipped: inner service not ready by the deadline"
                            );
                            this.shared.listeners.emit(|| {
                                Event::Retry(RetryEvent::RetrySkipped { attempt, reason })
                            });
                            finish(this.shared, attempt, false);
                            let last = this.last.take().expect("kept while a deadline is set");
                            return Poll::Ready(last);
                        }
                    };
                    this.last.take();
                    if let Err(e) = ready {
                        // The retry was never sent: its withdrawal goes back.
                        this.withdrawal.take();
                        finish(this.shared, *this.attempt, false);
                        return Poll::Ready(Err(e));
                    }
                    let next = *this.attempt + 1;
                    let req = if next >= *this.max_attempts {
                        this.request.take()
                    } else {
                        // A copy that can no longer be made (a body that went past
                        // its replay cap since the retry was scheduled) sends the
                        // kept request itself: no further retry follows.
                        this.request
                            .as_ref()
                            .and_then(|r| this.shared.replay.replay(r))
                            .or_else(|| this.request.take())
                    };
                    let req = req.expect("a replayable request is kept while attempts remain");
                    if let Some(w) = this.withdrawal.take() {
                        w.commit();
                    }
                    *this.attempt = next;
                    tracing::trace!(target: "tower_fortify::retry", attempt = next, "attempt sent");
                    this.shared
                        .listeners
                        .emit(|| Event::Retry(RetryEvent::AttemptSent { attempt: next }));
                    let fut = this.service.call(req);
                    this.state.set(State::Called { fut });
                }
            }
        }
    }
}

#[inline(always)]
fn finish<C, P>(shared: &Shared<C, P>, attempts: u32, success: bool) {
    if attempts > 1 || !success {
        finish_traced(attempts, success);
    }
    shared
        .listeners
        .emit(|| Event::Retry(RetryEvent::Finished { attempts, success }));
}

/// The trace of a request that was retried or failed (out of line: the first attempt's
/// success is the common case).
#[cold]
#[inline(never)]
fn finish_traced(attempts: u32, success: bool) {
    tracing::trace!(target: "tower_fortify::retry", attempts, success, "request finished");
}

/// Whether and when to retry: the delay, where it came from, and the budget
/// withdrawal that pays for it; or why not.
#[allow(clippy::too_many_arguments)]
fn decide<C, P>(
    shared: &Shared<C, P>,
    outcome: Outcome,
    attempt: u32,
    max_attempts: u32,
    flags: u8,
    have_request: bool,
    deadline: Option<Instant>,
    previous: Duration,
) -> Result<(Duration, DelayCause, Option<Withdrawal>), SkipReason> {
    let hint = outcome.hint();
    if hint == ServerHint::DoNotRetry {
        return Err(SkipReason::ServerSaidNo);
    }
    if !outcome.is_retryable() {
        return Err(SkipReason::NotRetryable);
    }
    if flags & DISABLED != 0 {
        return Err(SkipReason::Disabled);
    }
    if attempt >= max_attempts {
        return Err(SkipReason::MaxAttempts);
    }
    if flags & NOT_REPLAYABLE != 0 || !have_request {
        return Err(SkipReason::NotReplayable);
    }
    let (delay, cause) = match hint {
        ServerHint::RetryAfter(d) => {
            if d > shared.max_server_delay {
                return Err(SkipReason::HintTooLong);
            }
            (d, DelayCause::ServerHint)
        }
        _ => (
            shared
                .live
                .backoff
                .load()
                .delay(attempt, previous, &shared.rng),
            DelayCause::Backoff,
        ),
    };
    if let Some(deadline) = deadline
        && Instant::now() + delay >= deadline
    {
        return Err(SkipReason::Deadline);
    }
    let withdrawal = match &shared.budget {
        Some(budget) => match budget.try_withdraw() {
            Some(w) => Some(w),
            None => {
                budget_exhausted(shared);
                return Err(SkipReason::Budget);
            }
        },
        None => None,
    };
    Ok((delay, cause, withdrawal))
}

/// A retry the budget refused: a warning, at most once a second per retry layer.
#[cold]
fn budget_exhausted<C, P>(shared: &Shared<C, P>) {
    if shared
        .listeners
        .warn_due(crate::observe::Warn::BudgetExhausted)
    {
        tracing::warn!(
            target: "tower_fortify::retry",
            name = shared.listeners.name(),
            "retry budget exhausted: failed calls are not retried until it refills"
        );
    }
}
