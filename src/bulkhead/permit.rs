use std::fmt;
use std::sync::Arc;

use super::limiter::Ticket;
use super::shared::Slot;
use crate::classify::Outcome;
use crate::observe::{BulkheadEvent, Event};
use crate::shard::Padded;

/// One call's share of a bulkhead. Owned; returned to the bulkhead when dropped.
///
/// A [`Bulkhead`](super::Bulkhead) keeps the permit in its response future until the
/// inner service's future completes. When a response is streamed, the work goes on
/// after that; a body wrapper that must hold the permit to the end of the stream takes
/// one from [`BulkheadHandle::try_acquire`](super::BulkheadHandle::try_acquire) and
/// moves it into the body, or takes the one in flight with
/// [`ResponseFuture::take_permit`](super::future::ResponseFuture::take_permit).
///
/// For an adaptive bulkhead, [`record`](Self::record) reports how the call went;
/// dropping a permit without recording counts as a cancelled call, which teaches the
/// limiter nothing.
pub struct BulkheadPermit {
    ticket: Option<Ticket>,
    /// Adaptive bulkheads only: the state to learn from, and when the call was sent.
    adaptive: Option<(Arc<Padded<Slot>>, u64)>,
}

impl fmt::Debug for BulkheadPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadPermit")
            .field("adaptive", &self.adaptive.is_some())
            .finish()
    }
}

impl BulkheadPermit {
    /// Wraps a token already taken from the slot's core. A fixed bulkhead's permit
    /// holds no reference count: only the core's ticket.
    #[inline]
    pub(crate) fn new(slot: &Arc<Padded<Slot>>, shard: usize) -> Self {
        Self {
            ticket: Some(slot.shared.core.ticket().at(shard)),
            adaptive: if slot.adaptive {
                Some((slot.clone(), now(slot)))
            } else {
                None
            },
        }
    }

    /// A fixed bulkhead's permit: only the ticket, no reference count.
    #[inline]
    pub(crate) fn fixed(ticket: Ticket) -> Self {
        Self {
            ticket: Some(ticket),
            adaptive: None,
        }
    }

    /// Restarts the latency clock (adaptive mode): the call is sent now.
    #[inline]
    pub(crate) fn start(&mut self) {
        if let Some((slot, started)) = &mut self.adaptive {
            *started = now(slot);
        }
    }

    /// Reports the outcome of the call and returns the permit. An adaptive bulkhead
    /// learns from the latency since the call was sent and from
    /// [`Outcome::Overloaded`]; a fixed one only returns the permit.
    pub fn record(mut self, outcome: Outcome) {
        self.complete(Some(outcome));
    }

    /// A permit that holds nothing (a placeholder in a future that has none).
    pub(crate) fn empty() -> Self {
        Self {
            ticket: None,
            adaptive: None,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ticket.is_none()
    }

    /// Returns the token in place (the permit is empty afterwards); with an outcome, an
    /// adaptive bulkhead learns from the call.
    #[inline]
    pub(crate) fn complete(&mut self, outcome: Option<Outcome>) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        // Return the token first, so that a window update sees the call as finished.
        ticket.release();
        if let Some(outcome) = outcome
            && let Some((slot, started)) = self.adaptive.take()
        {
            learn(&slot.shared, started, outcome);
        }
    }
}

/// The adaptive clock: nanoseconds since the bulkhead was built.
#[inline]
fn now(slot: &Slot) -> u64 {
    slot.shared.adaptive.as_ref().map_or(0, |a| a.start())
}

/// Feeds one finished call to the adaptive limit.
#[inline]
fn learn(shared: &super::shared::Shared, started: u64, outcome: Outcome) {
    let Some(adaptive) = &shared.adaptive else {
        return;
    };
    let overloaded = matches!(outcome, Outcome::Overloaded(_));
    if let Some(change) = adaptive.record(&shared.core, started, overloaded) {
        limit_changed(shared, change);
    }
}

#[cold]
#[inline(never)]
fn limit_changed(shared: &super::shared::Shared, change: super::adaptive::Change) {
    // An adaptive limit moves often: one INFO line a second at most, the rest DEBUG.
    if shared
        .listeners
        .warn_due(crate::observe::Warn::LimitChanged)
    {
        tracing::info!(
            target: "tower_fortify::bulkhead",
            name = shared.listeners.name(),
            from = change.from,
            to = change.to,
            "bulkhead limit changed (adaptive)"
        );
    } else {
        tracing::debug!(
            target: "tower_fortify::bulkhead",
            name = shared.listeners.name(),
            from = change.from,
            to = change.to,
            "limit changed"
        );
    }
    shared.listeners.emit(|| {
        Event::Bulkhead(BulkheadEvent::LimitChanged {
            from: change.from,
            to: change.to,
        })
    });
}

impl Drop for BulkheadPermit {
    #[inline]
    fn drop(&mut self) {
        self.complete(None);
    }
}

impl crate::guard::EndGuard for BulkheadPermit {
    #[inline]
    fn finish(self, outcome: Option<Outcome>) {
        match outcome {
            Some(outcome) => self.record(outcome),
            None => drop(self),
        }
    }
}
