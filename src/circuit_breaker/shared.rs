//! What every clone of a breaker's service shares: the state machine and the
//! classifier, one copy per shard.

use std::sync::Arc;

use super::core::Core;
use crate::shard::{Padded, SHARDS};

/// What a response future needs to record its outcome: the breaker and the
/// classifier.
pub(crate) struct Slot<C> {
    pub(crate) core: Arc<Core>,
    pub(crate) classifier: C,
}

/// One handle per shard, each in its own allocation, so that the reference count a
/// response future takes is not one cache line shared by every core.
pub(crate) type Shards<C> = Arc<[Arc<Padded<Slot<C>>>]>;

pub(crate) fn shards<C: Clone>(core: Arc<Core>, classifier: &C) -> Shards<C> {
    (0..SHARDS)
        .map(|_| {
            Arc::new(Padded(Slot {
                core: core.clone(),
                classifier: classifier.clone(),
            }))
        })
        .collect()
}
