//! What every clone of a bulkhead's service shares: the limiter and the classifier, one
//! copy per shard; the refusal it makes.

use std::sync::Arc;
use std::time::Duration;

use super::adaptive::Adaptive;
use super::error::BulkheadFull;
use super::limiter::Core;
use crate::observe::Listeners;
use crate::observe::{BulkheadEvent, Event};
use crate::shard::{Padded, SHARDS};

/// The state every clone of one bulkhead shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) core: Core,
    pub(crate) adaptive: Option<Adaptive>,
    pub(crate) max_wait: Duration,
    pub(crate) listeners: Listeners,
}

/// A per-thread handle on the shared state: each thread clones its own `Arc`, so the
/// reference count a permit takes is not one cache line shared by all cores.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) shared: Arc<Shared>,
    /// `shared.adaptive.is_some()`, on the line the thread already reads.
    pub(crate) adaptive: bool,
}

pub(crate) type Slots = Arc<[Arc<Padded<Slot>>]>;

pub(crate) fn slots(shared: Shared) -> Slots {
    let adaptive = shared.adaptive.is_some();
    let shared = Arc::new(shared);
    (0..SHARDS)
        .map(|_| {
            Arc::new(Padded(Slot {
                shared: shared.clone(),
                adaptive,
            }))
        })
        .collect()
}

pub(crate) fn full(shared: &Shared, waited: bool) -> BulkheadFull {
    let core = &shared.core;
    core.note_rejected();
    let err = BulkheadFull {
        limit: core.limit(),
        in_flight: core.in_flight(),
        queued: core.queued(),
        waited,
        name: shared.listeners.name_arc(),
    };
    if shared
        .listeners
        .warn_due(crate::observe::Warn::BulkheadFull)
    {
        tracing::warn!(
            target: "tower_fortify::bulkhead",
            name = shared.listeners.name(),
            limit = err.limit,
            in_flight = err.in_flight,
            queued = err.queued,
            waited,
            "bulkhead full: calls rejected"
        );
    } else {
        tracing::debug!(
            target: "tower_fortify::bulkhead",
            name = shared.listeners.name(),
            limit = err.limit,
            waited,
            "call rejected"
        );
    }
    shared.listeners.emit(|| {
        Event::Bulkhead(if waited {
            BulkheadEvent::QueueTimeout { limit: err.limit }
        } else {
            BulkheadEvent::Rejected {
                limit: err.limit,
                in_flight: err.in_flight,
                queued: err.queued,
            }
        })
    });
    err
}
