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

static NO_HEALTHY_BACKEND: crate::guard::Registration =
    crate::guard::Registration::of::<NoHealthyBackend>();

impl std::error::Error for NoHealthyBackend {
    /// None; makes the type known to [`Rejection::of`](crate::guard::Rejection::of).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        NO_HEALTHY_BACKEND.register();
        None
    }
}

impl crate::guard::Reject for NoHealthyBackend {
    /// Unavailable (`no-healthy-backend`).
    fn rejection(&self) -> crate::guard::Rejection {
        crate::guard::Rejection::new(crate::guard::RejectionKind::Unavailable)
            .with_reason("no-healthy-backend")
            .with_description("no healthy backend")
    }
}
