use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::future::{ResponseFuture, Waiter};
use super::limiter::{Enqueued, Ticket};
use super::shared::{Slot, Slots, full};
use super::{BulkheadHandle, BulkheadPermit};
use crate::BoxError;
use crate::classify::{Classify, DefaultClassifier};
use crate::observe::{BulkheadEvent, Event};
use crate::shard::{self, Padded};

/// Bounds the calls in flight to the inner service. Made by a
/// [`BulkheadLayer`](super::BulkheadLayer).
///
/// `poll_ready` passes on the inner service's readiness. `call` takes a permit, or
/// queues the caller (the queued request readies a clone of the inner service once it
/// holds a permit), or returns a ready future with
/// [`BulkheadFull`](super::error::BulkheadFull).
pub struct Bulkhead<S, C = DefaultClassifier> {
    pub(crate) inner: S,
    pub(crate) slots: Slots,
    /// The counters, reached without following `slots` (valid while `slots` lives).
    pub(crate) ticket: Ticket,
    pub(crate) adaptive: bool,
    pub(crate) classifier: C,
}

impl<S: Clone, C: Clone> Clone for Bulkhead<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            slots: self.slots.clone(),
            ticket: self.ticket,
            adaptive: self.adaptive,
            classifier: self.classifier.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for Bulkhead<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .field("limit", &self.slots[0].shared.core.limit())
            .finish_non_exhaustive()
    }
}

impl<S, C> Bulkhead<S, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the layer and returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// A handle on the shared bulkhead.
    pub fn handle(&self) -> BulkheadHandle {
        BulkheadHandle {
            slots: self.slots.clone(),
        }
    }
}

impl<S, Req, C> Service<Req> for Bulkhead<S, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        dispatch(
            &self.slots,
            self.ticket,
            self.adaptive,
            &mut self.inner,
            &self.classifier,
            req,
        )
    }
}

/// Takes a permit, queues, or rejects; shared by [`Bulkhead`] and the keyed bulkhead.
#[inline(always)]
pub(crate) fn dispatch<S, Req, C>(
    slots: &Slots,
    ticket: Ticket,
    adaptive: bool,
    inner: &mut S,
    classifier: &C,
    req: Req,
) -> ResponseFuture<S, Req, C>
where
    S: Service<Req> + Clone,
    C: Clone,
{
    // `slots` has SHARDS entries, so the index needs no reduction.
    let i = shard::index();
    if ticket.try_acquire_at(i) {
        if !adaptive {
            let permit = BulkheadPermit::fixed(ticket.at(i));
            return ResponseFuture::called(inner.call(req), permit, None);
        }
        let permit = BulkheadPermit::new(&slots[i], i);
        let classifier = Some(classifier.clone());
        return ResponseFuture::called(inner.call(req), permit, classifier);
    }
    queue_or_reject(&slots[i], i, adaptive, inner, classifier, req)
}

/// No permit free at once: queues the call, or rejects it (out of line).
#[inline(never)]
fn queue_or_reject<S, Req, C>(
    slot: &Arc<Padded<Slot>>,
    i: usize,
    adaptive: bool,
    inner: &mut S,
    classifier: &C,
    req: Req,
) -> ResponseFuture<S, Req, C>
where
    S: Service<Req> + Clone,
    C: Clone,
{
    let shared = &slot.shared;
    let classifier = || adaptive.then(|| classifier.clone());
    if shared.core.max_queued() > 0 {
        match shared.core.enqueue() {
            Enqueued::Acquired => {
                let permit = BulkheadPermit::new(slot, i);
                let classifier = classifier();
                return ResponseFuture::called(inner.call(req), permit, classifier);
            }
            Enqueued::Waiting(id) => {
                let queued = shared.core.queued();
                tracing::trace!(target: "tower_fortify::bulkhead", queued, "call queued");
                shared
                    .listeners
                    .emit(|| Event::Bulkhead(BulkheadEvent::Queued { queued }));
                // The readied service stays with the caller for its next call; the
                // waiter readies a fresh clone once it holds a permit.
                let service = inner.clone();
                let waiter = Waiter::new(slot.clone(), id);
                let deadline = tokio::time::Instant::now() + shared.max_wait;
                return ResponseFuture::waiting(service, req, waiter, deadline, classifier());
            }
            Enqueued::Full => {}
        }
    }
    ResponseFuture::rejected(full(shared, false))
}
