//! What the services of one fallback layer share.

use crate::observe::Listeners;

/// What the services of one layer share.
pub(crate) struct Shared<F, C> {
    pub(crate) strategy: F,
    pub(crate) classifier: C,
    pub(crate) listeners: Listeners,
}
