//! The hedging layer's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::shared::{BudgetUse, Shared};
use crate::budget::Withdrawal;
use crate::classify::{Classify, Outcome};
use crate::observe::{Event, HedgeEvent, HedgeSkipReason};
use crate::retry::Replay;

pin_project! {
    /// The future returned by [`Hedge`](super::Hedge): the first successful answer of
    /// the original and its hedges, or the last failure when every copy failed.
    ///
    /// When one copy answers, every other copy is dropped at once (cancelled, with
    /// whatever permits it held). Dropping this future cancels every copy and gives
    /// back a budget withdrawal not yet spent on a sent hedge.
    pub struct ResponseFuture<S, Req, C, P>
    where
        S: Service<Req>,
    {
        #[pin]
        primary: Option<S::Future>,
        #[pin]
        timer: Option<Sleep>,
        // Hedges in flight, boxed: they exist only once a hedge was sent.
        hedges: Vec<(u32, Pin<Box<S::Future>>)>,
        hedging: Option<Hedging<S, Req, C, P>>,
    }
}

/// What a hedged request keeps while it may still send a hedge.
struct Hedging<S, Req, C, P> {
    shared: Arc<Shared<S, C, P>>,
    /// The copy hedges are made from; `None` once no further hedge will be sent.
    request: Option<Req>,
    /// A clone of the inner service being readied for the next hedge, boxed: made
    /// only once a hedge is due, it would otherwise make every request's future as
    /// large as the service (a router: about 150 bytes) for nothing.
    service: Option<Box<S>>,
    withdrawal: Option<Withdrawal>,
    /// When the original was sent (percentile mode) or first found pending.
    start: Option<Instant>,
    /// When the previous copy was sent: the next delay counts from it.
    last_sent: Option<Instant>,
    deadline: Option<Instant>,
    sent: u32,
}

impl<S, Req, C, P> fmt::Debug for ResponseFuture<S, Req, C, P>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("hedges_in_flight", &self.hedges.len())
            .field("sent", &self.hedging.as_ref().map_or(0, |h| h.sent))
            .finish_non_exhaustive()
    }
}

impl<S, Req, C, P> ResponseFuture<S, Req, C, P>
where
    S: Service<Req>,
{
    pub(crate) fn passthrough(fut: S::Future) -> Self {
        Self {
            primary: Some(fut),
            timer: None,
            hedges: Vec::new(),
            hedging: None,
        }
    }

    pub(crate) fn new(
        fut: S::Future,
        copy: Req,
        shared: Arc<Shared<S, C, P>>,
        start: Option<Instant>,
        deadline: Option<Instant>,
    ) -> Self {
        Self {
            primary: Some(fut),
            timer: None,
            hedges: Vec::new(),
            hedging: Some(Hedging {
                shared,
                request: Some(copy),
                service: None,
                withdrawal: None,
                start,
                last_sent: start,
                deadline,
                sent: 0,
            }),
        }
    }
}

impl<S, Req, C, P> Hedging<S, Req, C, P> {
    fn skip(&mut self, reason: HedgeSkipReason) {
        let hedge = self.sent + 1;
        self.request = None;
        self.service = None;
        self.withdrawal = None;
        let listeners = &self.shared.config.listeners;
        tracing::debug!(
            target: "tower_fortify::hedge",
            name = listeners.name(),
            hedge,
            reason = reason.as_str(),
            "hedge skipped"
        );
        if reason == HedgeSkipReason::Budget
            && listeners.warn_due(crate::observe::Warn::BudgetExhausted)
        {
            tracing::warn!(
                target: "tower_fortify::hedge",
                name = listeners.name(),
                "hedge budget exhausted: slow calls are not hedged until it refills"
            );
        }
        listeners.emit(|| Event::Hedge(HedgeEvent::HedgeSkipped { hedge, reason }));
    }
}

/// One copy's result.
type CopyResult<S, Req> = Result<<S as Service<Req>>::Response, <S as Service<Req>>::Error>;

enum Verdict {
    /// Return this result.
    Final,
    /// A failure while another copy is in flight: drop it, wait for the other.
    Dropped,
}

impl<S, Req, C, P> Future for ResponseFuture<S, Req, C, P>
where
    S: Service<Req> + Clone,
    C: Classify<S::Response, S::Error>,
    P: Replay<Req>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(h) = this.hedging.as_mut() else {
            // Not hedged: the original's result as is.
            let fut = this.primary.as_pin_mut().expect("polled after completion");
            return fut.poll(cx);
        };
        loop {
            // The copies in flight, the original first.
            let in_flight = usize::from(this.primary.is_some()) + this.hedges.len();
            let mut done: Option<(u32, CopyResult<S, Req>)> = None;
            if let Some(fut) = this.primary.as_mut().as_pin_mut()
                && let Poll::Ready(r) = fut.poll(cx)
            {
                this.primary.set(None);
                done = Some((0, r));
            }
            let mut i = 0;
            while done.is_none() && i < this.hedges.len() {
                if let Poll::Ready(r) = this.hedges[i].1.as_mut().poll(cx) {
                    let (n, _) = this.hedges.swap_remove(i);
                    done = Some((n, r));
                } else {
                    i += 1;
                }
            }
            if let Some((winner, result)) = done {
                let shared = &h.shared;
                let outcome = shared
                    .config
                    .classifier
                    .classify(result.as_ref())
                    .now_or_success();
                if let BudgetUse::Own(b) = &shared.config.budget {
                    b.record(outcome);
                }
                // A failure is final unless another copy is still in flight (or
                // about to be sent: the hedge being readied).
                let others = in_flight - 1;
                let verdict = match outcome {
                    Outcome::Success | Outcome::NonRetryableFailure => Verdict::Final,
                    _ if others > 0 => Verdict::Dropped,
                    _ => Verdict::Final,
                };
                match verdict {
                    Verdict::Dropped => {
                        tracing::trace!(
                            target: "tower_fortify::hedge",
                            copy = winner,
                            "a copy failed while another is in flight"
                        );
                        continue;
                    }
                    Verdict::Final => {
                        // Cancel the losers now, not when the caller drops us.
                        this.primary.set(None);
                        this.hedges.clear();
                        this.timer.set(None);
                        h.service = None;
                        h.withdrawal = None;
                        h.request = None;
                        let success = outcome.is_success();
                        if success && let (Some(hist), Some(start)) = (&shared.histogram, h.start) {
                            // When a hedge won, this is a lower bound of the
                            // original's latency: the quantile stays that of the
                            // original's latencies (see the module docs).
                            hist.record(Instant::now().saturating_duration_since(start));
                        }
                        let hedges = h.sent;
                        if hedges > 0 {
                            tracing::trace!(
                                target: "tower_fortify::hedge",
                                hedges,
                                winner,
                                success,
                                "hedged request finished"
                            );
                        }
                        shared.config.listeners.emit(|| {
                            Event::Hedge(HedgeEvent::Finished {
                                hedges,
                                winner,
                                success,
                            })
                        });
                        return Poll::Ready(result);
                    }
                }
            }

            // Nothing answered yet: time for a hedge?
            if h.request.is_none() || h.sent >= h.shared.config.max_hedges {
                return Poll::Pending;
            }
            if h.service.is_none() {
                if this.timer.is_none() {
                    let base = match h.last_sent {
                        Some(t) => t,
                        None => {
                            let now = Instant::now();
                            h.start = Some(now);
                            h.last_sent = Some(now);
                            now
                        }
                    };
                    let at = base + h.shared.delay();
                    if h.deadline.is_some_and(|d| at >= d) {
                        h.skip(HedgeSkipReason::Deadline);
                        return Poll::Pending;
                    }
                    this.timer.set(Some(tokio::time::sleep_until(at)));
                }
                let timer = this.timer.as_mut().as_pin_mut().expect("set above");
                if timer.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.timer.set(None);
                let replayable = h
                    .request
                    .as_ref()
                    .is_some_and(|r| h.shared.config.replay.is_replayable(r));
                if !replayable {
                    h.skip(HedgeSkipReason::NotReplayable);
                    return Poll::Pending;
                }
                if let Some(budget) = h.shared.config.budget.budget() {
                    match budget.try_withdraw() {
                        Some(w) => h.withdrawal = Some(w),
                        None => {
                            h.skip(HedgeSkipReason::Budget);
                            return Poll::Pending;
                        }
                    }
                }
                let template = h
                    .shared
                    .template
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                h.service = Some(Box::new(template.clone()));
            }
            let service = h.service.as_mut().expect("set above");
            match service.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => {
                    h.skip(HedgeSkipReason::NotReady);
                    return Poll::Pending;
                }
                Poll::Ready(Ok(())) => {}
            }
            let now = Instant::now();
            if h.deadline.is_some_and(|d| now >= d) {
                h.skip(HedgeSkipReason::Deadline);
                return Poll::Pending;
            }
            let next = h.sent + 1;
            let req = if next >= h.shared.config.max_hedges {
                h.request.take()
            } else {
                h.request
                    .as_ref()
                    .and_then(|r| h.shared.config.replay.replay(r))
                    .or_else(|| h.request.take())
            };
            let req = req.expect("kept while hedges remain");
            let mut service = h.service.take().expect("readied above");
            if let Some(w) = h.withdrawal.take() {
                w.commit();
            }
            h.sent = next;
            let after = now.saturating_duration_since(h.start.unwrap_or(now));
            h.last_sent = Some(now);
            tracing::debug!(
                target: "tower_fortify::hedge",
                name = h.shared.config.listeners.name(),
                hedge = next,
                after_ms = after.as_millis() as u64,
                "hedge sent"
            );
            h.shared
                .config
                .listeners
                .emit(|| Event::Hedge(HedgeEvent::HedgeSent { hedge: next, after }));
            let fut = service.call(req);
            this.hedges.push((next, Box::pin(fut)));
            // Loop: poll the new hedge so it can wake us.
        }
    }
}
