//! Errors returned by bulkheads.

use std::fmt;

/// The bulkhead had no permit for the call: the limit was reached and the queue was
/// full, queueing is off, or the call waited its maximum time in the queue.
///
/// Returned from `call` as a ready future, boxed in a [`BoxError`](crate::BoxError);
/// `downcast_ref::<BulkheadFull>()` finds it. The figures are a snapshot taken when
/// the call was turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkheadFull {
    pub(super) limit: usize,
    pub(super) in_flight: usize,
    pub(super) queued: usize,
    pub(super) waited: bool,
    pub(super) name: Option<std::sync::Arc<str>>,
}

impl BulkheadFull {
    /// The name of the bulkhead that refused (its builder's `.name(..)`), if it has
    /// one. The error's message starts with it.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The limit in force.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Calls that held a permit.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Callers waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// `true` if the call waited in the queue for the maximum wait and was then turned
    /// away; `false` if it was rejected at once.
    pub fn waited(&self) -> bool {
        self.waited
    }
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}bulkhead full ({} in flight, limit {}, {} queued){}",
            crate::observe::Prefix(&self.name),
            self.in_flight,
            self.limit,
            self.queued,
            if self.waited {
                " after the maximum wait"
            } else {
                ""
            }
        )
    }
}

static BULKHEAD_FULL: crate::guard::Registration = crate::guard::Registration::of::<BulkheadFull>();

impl std::error::Error for BulkheadFull {
    /// None; makes the type known to [`Rejection::of`](crate::guard::Rejection::of).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        BULKHEAD_FULL.register();
        None
    }
}

impl crate::guard::Reject for BulkheadFull {
    /// Unavailable: `bulkhead-full`, or `queue-timeout` after the maximum wait.
    fn rejection(&self) -> crate::guard::Rejection {
        let r = crate::guard::Rejection::new(crate::guard::RejectionKind::Unavailable);
        if self.waited {
            r.with_reason("queue-timeout")
                .with_description("waited too long for a slot")
        } else {
            r.with_reason("bulkhead-full")
                .with_description("too many requests in flight")
        }
    }
}
