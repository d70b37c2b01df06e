//! The configuration every clone of a retry layer and its services share.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use crossbeam_utils::atomic::AtomicCell;

use crate::backoff::{Backoff, Rng};
use crate::budget::Budget;
use crate::observe::Listeners;
use crate::shard::Padded;

/// Configuration shared by every clone of a retry layer and its services.
pub(crate) struct Shared<C, P> {
    /// The attempts and backoff, one for all shards: read-only on the call path
    /// (one line every core may keep), changed by [`RetryHandle`](super::RetryHandle).
    pub(crate) live: Arc<Live>,
    pub(crate) budget: Option<Budget>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) max_server_delay: Duration,
    pub(crate) rng: Rng,
    pub(crate) listeners: Listeners,
    pub(crate) classifier: C,
    pub(crate) replay: P,
}

/// What a running retry layer may change: the attempts (read per call, a plain
/// load) and the backoff (read per retry).
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) max_attempts: AtomicU32,
    pub(crate) backoff: AtomicCell<Backoff>,
}

/// One copy of the configuration per shard, each in its own allocation, so that the
/// reference count a response future takes is not one cache line shared by all cores.
pub(crate) type Shards<C, P> = Arc<[Arc<Padded<Shared<C, P>>>]>;
