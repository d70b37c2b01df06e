//! Errors the failover router adds to those of its backends.

use std::fmt;

/// No backend could take the call: every backend is ejected, failing its health
/// checks, manually disabled or removed, and the panic threshold says to fail fast
/// (or the router has no backends at all).
///
/// Returned from `call` as a ready future, boxed as [`crate::BoxError`]; downcast to
/// recognise it. It is a retryable condition for a retry layer above: an ejection
/// ends, a probe passes, a backend is added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoHealthyBackend {
    pub(super) backends: usize,
    pub(super) name: Option<std::sync::Arc<str>>,
}

impl NoHealthyBackend {
    /// The name of the router that refused (its builder's `.name(..)`), if it has
    /// one. The error's message starts with it.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// How many backends the router had when it gave up (healthy or not).
    pub fn backends(&self) -> usize {
        self.backends
    }
}

impl fmt::Display for NoHealthyBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}no healthy backend can take the call ({} configured)",
            crate::observe::Prefix(&self.name),
            self.backends
        )
    }
}

impl std::error::Error for NoHealthyBackend {}
