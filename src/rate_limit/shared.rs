//! What the clones of one limiter share: its quota, clock origin, listeners and cell
//! (or, keyed, its map of cells), used by the layer that builds it and the service
//! that reads it.

use std::sync::Arc;

use super::gcra::{Gcra, LiveQuota, Quota};
use crate::clock::Epoch;
use crate::keyed::KeyedMap;
use crate::observe::Listeners;
use crate::shard::Padded;

/// What every clone of one limiter shares.
pub(crate) struct Shared {
    /// Changed by the handle's `reconfigure`.
    pub(crate) quota: LiveQuota,
    pub(crate) epoch: Epoch,
    /// On its own cache line: every call writes it, and the fields around it are
    /// read by every call on every core.
    pub(crate) cell: Padded<Gcra>,
    pub(crate) listeners: Listeners,
}

/// A key's cell, on its own cache line: keys' cells are small allocations that
/// would otherwise share lines, and two threads on two keys would bounce them.
pub(crate) type KeyCell = Arc<Padded<Gcra>>;

pub(crate) struct Keyed<K> {
    pub(crate) map: KeyedMap<K, KeyCell>,
    /// The quota, epoch and listeners (its own cell is unused).
    pub(crate) shared: Shared,
}

impl Shared {
    /// Takes `quota` (checked by the caller). Logged at INFO with the name.
    pub(crate) fn set_quota(&self, quota: Quota) {
        if self.quota.get() == quota {
            return;
        }
        self.quota.set(quota);
        tracing::info!(
            target: "tower_fortify::rate_limit",
            name = self.listeners.name(),
            interval_us = quota.interval / 1_000,
            burst = quota.tolerance / quota.interval.max(1),
            max_wait_ms = (quota.reserve - quota.tolerance) / 1_000_000,
            "rate limit changed"
        );
    }
}
