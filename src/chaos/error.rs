//! Errors the chaos layer produces itself.

use std::fmt;

/// A call aborted by fault injection ([`Fault::abort`](super::Fault::abort)): the
/// request never reached the inner service, as if the connection had been reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aborted(pub(super) ());

impl Aborted {
    /// A new abort error.
    pub fn new() -> Self {
        Self(())
    }
}

impl Default for Aborted {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("call aborted by fault injection")
    }
}

impl std::error::Error for Aborted {}
