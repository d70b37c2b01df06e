use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;

use super::layer::Slot;
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
    slot: Option<Arc<Padded<Slot>>>,
    started: Option<Instant>,
}

impl fmt::Debug for BulkheadPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadPermit")
            .field("adaptive", &self.started.is_some())
            .finish()
    }
}

impl BulkheadPermit {
    /// Wraps a token already taken from the slot's core.
    #[inline]
    pub(crate) fn new(slot: Arc<Padded<Slot>>) -> Self {
        let started = slot.adaptive.then(Instant::now);
        Self {
            slot: Some(slot),
            started,
        }
    }

    /// Restarts the latency clock (adaptive mode): the call is sent now.
    #[inline]
    pub(crate) fn start(&mut self) {
        if self.started.is_some() {
            self.started = Some(Instant::now());
        }
    }

    /// Reports the outcome of the call and returns the permit. An adaptive bulkhead
    /// learns from the latency since the call was sent and from
    /// [`Outcome::Overloaded`]; a fixed one only returns the permit.
    pub fn record(mut self, outcome: Outcome) {
        self.finish(Some(outcome));
    }

    #[inline]
    fn finish(&mut self, outcome: Option<Outcome>) {
        let Some(slot) = self.slot.take() else { return };
        let shared = &slot.shared;
        // Return the token first, so that a window update sees the call as finished.
        shared.core.release();
        if let (Some(started), Some(outcome)) = (self.started, outcome) {
            learn(shared, started, outcome);
        }
    }
}

/// Feeds one finished call to the adaptive limit (out of line: adaptive only).
#[inline(never)]
fn learn(shared: &super::layer::Shared, started: Instant, outcome: Outcome) {
    let Some(adaptive) = &shared.adaptive else {
        return;
    };
    let overloaded = matches!(outcome, Outcome::Overloaded(_));
    if let Some(change) = adaptive.record(&shared.core, started, overloaded) {
        tracing::debug!(
            target: "tower_fortify::bulkhead",
            from = change.from,
            to = change.to,
            "limit changed"
        );
        shared.listeners.emit(|| {
            Event::Bulkhead(BulkheadEvent::LimitChanged {
                from: change.from,
                to: change.to,
            })
        });
    }
}

impl Drop for BulkheadPermit {
    #[inline]
    fn drop(&mut self) {
        self.finish(None);
    }
}
