//! The configuration every clone of a retry layer and its services share.

use std::sync::Arc;
use std::time::Duration;

use crate::backoff::{Backoff, Rng};
use crate::budget::Budget;
use crate::observe::Listeners;
use crate::shard::Padded;

/// Configuration shared by every clone of a retry layer and its services.
pub(crate) struct Shared<C, P> {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) budget: Option<Budget>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) max_server_delay: Duration,
    pub(crate) rng: Rng,
    pub(crate) listeners: Listeners,
    pub(crate) classifier: C,
    pub(crate) replay: P,
}

/// One copy of the configuration per shard, each in its own allocation, so that the
/// reference count a response future takes is not one cache line shared by all cores.
pub(crate) type Shards<C, P> = Arc<[Arc<Padded<Shared<C, P>>>]>;
