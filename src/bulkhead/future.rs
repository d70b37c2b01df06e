//! The bulkhead's response futures: [`ResponseFuture`] for a bulkhead or a keyed
//! bulkhead, [`PartitionedFuture`] for a partitioned pool.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::BulkheadPermit;
use super::error::BulkheadFull;
use super::limiter::WaitState;
use super::shared::Slot;
use super::shared::full;
use crate::BoxError;
use crate::classify::Classify;
use crate::observe::{BulkheadEvent, Event};

pub use super::partition::PartitionedFuture;
use crate::shard::{self, Padded};

/// A place in a bulkhead's queue; leaves the queue when dropped.
pub(crate) struct Waiter {
    slot: Arc<Padded<Slot>>,
    id: u64,
    done: bool,
}

impl Waiter {
    pub(crate) fn new(slot: Arc<Padded<Slot>>, id: u64) -> Self {
        Self {
            slot,
            id,
            done: false,
        }
    }

    /// The waiter was granted a token: it becomes a permit.
    fn into_permit(mut self) -> BulkheadPermit {
        self.done = true;
        BulkheadPermit::new(&self.slot, shard::index())
    }

    /// Gives up waiting. If a token was granted meanwhile, returns it as a permit.
    fn give_up(mut self) -> Option<BulkheadPermit> {
        self.done = true;
        self.slot
            .shared
            .core
            .leave(self.id)
            .then(|| BulkheadPermit::new(&self.slot, shard::index()))
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if !self.done && self.slot.shared.core.leave(self.id) {
            // Granted but never collected: pass the token on.
            self.slot.shared.core.release();
        }
    }
}

pin_project! {
    /// The future returned by [`Bulkhead`](super::Bulkhead).
    ///
    /// It holds the call's [`BulkheadPermit`] until the inner future completes.
    /// Dropping it at any point returns the permit, or leaves the queue at once if the
    /// call was still waiting; a cancelled call teaches an adaptive limit nothing.
    pub struct ResponseFuture<S, Req, C>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future, S, Req>,
        // Empty (holding nothing) while queued and once returned.
        permit: BulkheadPermit,
        classifier: Option<C>,
        // Set by `hold_permit`: completion leaves the permit in place for `take_permit`.
        hold: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req> {
        Called { #[pin] fut: F },
        // Boxed: the queue is the slow path, and the success path's future stays small.
        Queued { queued: Pin<Box<Queued<S, Req>>> },
        // Boxed at once: it is returned as a `BoxError` anyway.
        Rejected { error: Option<BoxError> },
        Done,
    }
}

pin_project! {
    /// A call waiting for a permit, then readying its service. The sleep ends at the
    /// end of `max_wait` and bounds both: a granted call whose service is still not
    /// ready then gives its permit back and fails with `BulkheadFull`, as one never
    /// granted does, so a stuck inner service cannot hold a permit with no call sent.
    struct Queued<S, Req> {
        #[pin]
        sleep: Sleep,
        slot: Arc<Padded<Slot>>,
        service: S,
        request: Option<Req>,
        // `None` once the permit is granted: the service is being readied.
        waiter: Option<Waiter>,
    }
}

impl<S, Req, C> fmt::Debug for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}

impl<S, Req, C> ResponseFuture<S, Req, C>
where
    S: Service<Req>,
{
    #[inline]
    pub(crate) fn called(fut: S::Future, permit: BulkheadPermit, classifier: Option<C>) -> Self {
        Self {
            state: State::Called { fut },
            permit,
            classifier,
            hold: false,
        }
    }

    pub(crate) fn waiting(
        service: S,
        request: Req,
        waiter: Waiter,
        deadline: Instant,
        classifier: Option<C>,
    ) -> Self {
        Self {
            state: State::Queued {
                queued: Box::pin(Queued {
                    sleep: tokio::time::sleep_until(deadline),
                    slot: waiter.slot.clone(),
                    service,
                    request: Some(request),
                    waiter: Some(waiter),
                }),
            },
            permit: BulkheadPermit::empty(),
            classifier,
            hold: false,
        }
    }

    pub(crate) fn rejected(error: BulkheadFull) -> Self {
        Self {
            state: State::Rejected {
                error: Some(Box::new(error)),
            },
            permit: BulkheadPermit::empty(),
            classifier: None,
            hold: false,
        }
    }

    /// Takes the permit out of the future, so that it can outlive the response future
    /// (moved into a response body that streams, for instance). The future then
    /// completes as before without holding or returning the permit, and an adaptive
    /// limit learns from the call only if the taker calls
    /// [`BulkheadPermit::record`]. `None` while the call is queued, and after the
    /// future completed (unless [`hold_permit`](Self::hold_permit) was called).
    pub fn take_permit(self: Pin<&mut Self>) -> Option<BulkheadPermit> {
        let permit = self.project().permit;
        if permit.is_empty() {
            None
        } else {
            Some(std::mem::replace(permit, BulkheadPermit::empty()))
        }
    }
}

impl<S, Req, C> ResponseFuture<S, Req, C>
where
    S: Service<Req>,
{
    /// Asks the future to keep the permit when it completes instead of returning it,
    /// so that [`take_permit`](Self::take_permit) can hand it over afterwards, also
    /// for a call that waited in the queue. Nothing is learned by an adaptive limit
    /// until the taker records the permit; if nobody takes it, it is returned when
    /// the future is dropped, as a cancelled call.
    ///
    /// This is how a streamed response keeps its permit until its body ends (see
    /// `tower_fortify::http::HoldToEosLayer` with the `http` feature).
    pub fn hold_permit(self: Pin<&mut Self>) {
        *self.project().hold = true;
    }
}

impl<S, Req, C> Future for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error>,
{
    type Output = Result<S::Response, BoxError>;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The admitted call's path, inline; the queue and the rejection out of line.
        let this = self.as_mut().project();
        if let StateProj::Called { fut } = this.state.project() {
            let result = ready!(fut.poll(cx));
            if !*this.hold {
                // Returned in place: moving the permit out first costs a store-forwarding
                // stall on the success path.
                match this.classifier {
                    Some(c) => learn_from(this.permit, c, &result),
                    None => this.permit.complete(None),
                }
            }
            // Held: handed over by `take_permit`, or returned when dropped. The inner
            // future itself answers a poll after completion.
            return Poll::Ready(result.map_err(Into::into));
        }
        self.poll_slow(cx)
    }
}

impl<S, Req, C> ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error>,
{
    /// Every state but an admitted call in flight.
    #[inline(never)]
    fn poll_slow(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<S::Response, BoxError>> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { fut } => {
                    let result = ready!(fut.poll(cx));
                    if *this.hold {
                        // Handed over by `take_permit`, or returned when dropped.
                        return Poll::Ready(result.map_err(Into::into));
                    }
                    // Returned in place: moving the permit out first costs a store-forwarding
                    // stall on the success path.
                    match this.classifier {
                        Some(c) => learn_from(this.permit, c, &result),
                        None => this.permit.complete(None),
                    }
                    // The inner future itself answers a poll after completion.
                    return Poll::Ready(result.map_err(Into::into));
                }
                StateProj::Queued { queued } => {
                    let q = queued.as_mut().project();
                    if let Some(waiter) = q.waiter.as_ref() {
                        let core = &waiter.slot.shared.core;
                        if core.poll_wait(waiter.id, cx.waker()) == WaitState::Granted {
                            let waiter = q.waiter.take().expect("checked");
                            *this.permit = waiter.into_permit();
                            let shared = &q.slot.shared;
                            let deadline = q.sleep.deadline();
                            shared.listeners.emit(|| {
                                let since = deadline.checked_sub(shared.max_wait);
                                let waited = since.map_or(shared.max_wait, |since| {
                                    Instant::now().saturating_duration_since(since)
                                });
                                Event::Bulkhead(BulkheadEvent::Dequeued { waited })
                            });
                            continue;
                        }
                        ready!(q.sleep.poll(cx));
                        let waiter = q.waiter.take().expect("checked");
                        let slot = waiter.slot.clone();
                        match waiter.give_up() {
                            Some(permit) => *this.permit = permit,
                            None => {
                                this.state.set(State::Done);
                                return Poll::Ready(Err(Box::new(full(&slot.shared, true))));
                            }
                        }
                        continue;
                    }
                    // Granted: ready the service within `max_wait`, then send.
                    let ready = match q.service.poll_ready(cx) {
                        Poll::Ready(ready) => ready,
                        Poll::Pending => {
                            ready!(q.sleep.poll(cx));
                            this.permit.complete(None);
                            let error = full(&q.slot.shared, true);
                            this.state.set(State::Done);
                            return Poll::Ready(Err(Box::new(error)));
                        }
                    };
                    if let Err(e) = ready {
                        this.permit.complete(None);
                        this.state.set(State::Done);
                        return Poll::Ready(Err(e.into()));
                    }
                    let request = q.request.take().expect("a queued call has a request");
                    this.permit.start();
                    let fut = q.service.call(request);
                    this.state.set(State::Called { fut });
                }
                StateProj::Rejected { error } => {
                    let error = error.take().expect("polled after completion");
                    this.state.set(State::Done);
                    return Poll::Ready(Err(error));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

/// Classifies the result and returns the permit to an adaptive bulkhead (out of line:
/// adaptive only).
#[inline(never)]
fn learn_from<C, T, E>(permit: &mut BulkheadPermit, classifier: &C, result: &Result<T, E>)
where
    C: Classify<T, E>,
{
    permit.complete(Some(classifier.classify(result.as_ref()).now_or_success()));
}

impl<S, Req, C> crate::guard::GuardedFuture for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error>,
{
    type Guard = BulkheadPermit;

    #[inline]
    fn hold_guard(self: Pin<&mut Self>) -> Option<BulkheadPermit> {
        // The permit may come later (a queued call): keep it past completion.
        self.hold_permit();
        None
    }

    #[inline]
    fn take_guard(self: Pin<&mut Self>) -> Option<BulkheadPermit> {
        self.take_permit()
    }
}
