use std::fmt;

use super::BulkheadPermit;
use super::error::BulkheadFull;
use super::shared::Slots;
use crate::config::ConfigError;
use crate::observe::{BulkheadEvent, Event};
use crate::shard;

/// Reads and controls a bulkhead while it runs: its current limit, calls in flight,
/// callers queued; changes a fixed limit; takes permits for work outside a service.
///
/// Cheap to clone; every clone sees the same bulkhead.
#[derive(Clone)]
pub struct BulkheadHandle {
    pub(crate) slots: Slots,
}

impl fmt::Debug for BulkheadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadHandle")
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .finish()
    }
}

impl BulkheadHandle {
    /// The limit in force (for an adaptive bulkhead, the algorithm's latest choice).
    pub fn limit(&self) -> usize {
        self.slots[0].shared.core.limit()
    }

    /// Calls holding a permit now. A snapshot: exact when nothing runs concurrently.
    pub fn in_flight(&self) -> usize {
        self.slots[0].shared.core.in_flight()
    }

    /// Callers waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.slots[0].shared.core.queued()
    }

    /// Calls turned away so far (rejected at once, or after the maximum wait).
    pub fn rejected(&self) -> u64 {
        self.slots[0].shared.core.rejected()
    }

    /// Whether an algorithm sets the limit.
    pub fn is_adaptive(&self) -> bool {
        self.slots[0].shared.adaptive.is_some()
    }

    /// Changes a fixed limit. An increase admits queued callers at once; a decrease
    /// admits no new call until the calls in flight drop below the new limit (running
    /// calls are never cut short).
    ///
    /// Fails for a zero limit (`bulkhead.max_concurrent`) and for an adaptive bulkhead,
    /// whose algorithm owns the limit (`bulkhead.adaptive`).
    pub fn set_limit(&self, limit: usize) -> Result<(), ConfigError> {
        let shared = &self.slots[0].shared;
        if limit == 0 {
            return Err(ConfigError::new(
                "bulkhead.max_concurrent",
                "must be at least 1",
            ));
        }
        if shared.adaptive.is_some() {
            return Err(ConfigError::new(
                "bulkhead.adaptive",
                "the algorithm sets the limit of an adaptive bulkhead",
            ));
        }
        let from = shared.core.limit();
        shared.core.set_limit(limit);
        if from != limit {
            tracing::info!(
                target: "tower_fortify::bulkhead",
                name = shared.listeners.name(),
                from,
                to = limit,
                "bulkhead limit changed by hand"
            );
            shared
                .listeners
                .emit(|| Event::Bulkhead(BulkheadEvent::LimitChanged { from, to: limit }));
        }
        Ok(())
    }

    /// Changes how many callers may wait (0 stops queueing new callers; those already
    /// waiting stay). Has no effect on a bulkhead built without a maximum wait.
    pub fn set_max_queued(&self, max_queued: usize) {
        let shared = &self.slots[0].shared;
        if !shared.max_wait.is_zero() {
            shared.core.set_max_queued(max_queued);
        }
    }

    /// Takes a permit now if one is free and nobody is queued, for work that is not a
    /// call through a [`Bulkhead`](super::Bulkhead) (a body that streams after its
    /// response future completed, a background job). The permit returns on drop.
    pub fn try_acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        let i = shard::index();
        let slot = &self.slots[i];
        let core = &slot.shared.core;
        if core.try_acquire_at(i) {
            Ok(BulkheadPermit::new(slot, i))
        } else {
            core.note_rejected();
            Err(BulkheadFull {
                limit: core.limit(),
                in_flight: core.in_flight(),
                queued: core.queued(),
                waited: false,
                name: slot.shared.listeners.name_arc(),
            })
        }
    }
}
