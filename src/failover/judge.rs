//! What a response future needs to judge its call: the classifier and the pool, one
//! copy per shard.

use std::sync::Arc;

use super::pool::Pool;
use crate::shard::Padded;

/// What a response future needs to judge its call, one copy per shard.
pub(crate) struct Judge<C> {
    pub(crate) classifier: C,
    pub(crate) pool: Arc<Pool>,
}

pub(crate) type Judges<C> = Arc<[Arc<Padded<Judge<C>>>]>;
