//! Events: every decision a layer makes, for logs, metrics and tests.
//!
//! Each layer reports what it decides — an attempt sent, a retry scheduled or skipped
//! and why, a breaker transition, a rejection — in two ways:
//!
//! * as a [`tracing`] event with structured fields (target `tower_fortify::<layer>`),
//!   which costs a cached check when no subscriber wants it;
//! * as a typed [`Event`] handed to a [`Listener`] given to the layer's builder. The
//!   event is only built when a listener is installed: no listener, no work.
//!
//! One listener type serves every layer, so a single closure can feed a metrics
//! registry or a test's log with events from the whole stack.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use tower_fortify::observe::{Event, Listener};
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let log = seen.clone();
//! let listener = move |event: &Event| log.lock().unwrap().push(format!("{event:?}"));
//! // Pass `listener` to a builder, e.g. `RetryLayer::builder().listener(listener)`.
//! # let _ = listener;
//! ```

use std::fmt;
use std::sync::Arc;

#[cfg(feature = "bulkhead")]
mod bulkhead;
#[cfg(feature = "circuit-breaker")]
mod circuit_breaker;
#[cfg(feature = "failover")]
mod failover;
#[cfg(feature = "retry")]
mod retry;

#[cfg(feature = "bulkhead")]
pub use bulkhead::*;
#[cfg(feature = "circuit-breaker")]
pub use circuit_breaker::*;
#[cfg(feature = "failover")]
pub use failover::*;
#[cfg(feature = "retry")]
pub use retry::*;

/// Something a layer decided. Each layer has its own variant.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// From the retry layer.
    #[cfg(feature = "retry")]
    Retry(RetryEvent),
    /// From a circuit breaker.
    #[cfg(feature = "circuit-breaker")]
    CircuitBreaker(CircuitBreakerEvent),
    /// From a bulkhead.
    #[cfg(feature = "bulkhead")]
    Bulkhead(BulkheadEvent),
    /// From a failover router.
    #[cfg(feature = "failover")]
    Failover(FailoverEvent),
}

/// Receives [`Event`]s. Implemented for every `Fn(&Event) + Send + Sync + 'static`.
///
/// A listener runs inline on the request path: keep it short and never block (send to
/// a channel with `try_send`, bump a counter).
pub trait Listener: Send + Sync + 'static {
    /// Called once per event.
    fn on_event(&self, event: &Event);
}

impl<F> Listener for F
where
    F: Fn(&Event) + Send + Sync + 'static,
{
    fn on_event(&self, event: &Event) {
        self(event)
    }
}

/// Where a layer sends its events: nowhere (the default), or one listener.
#[derive(Clone, Default)]
pub struct Listeners {
    inner: Option<Arc<dyn Listener>>,
}

impl Listeners {
    /// A sink that delivers to `listener`.
    pub fn new(listener: impl Listener) -> Self {
        Self {
            inner: Some(Arc::new(listener)),
        }
    }

    /// Whether a listener is installed.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// Builds the event with `make` and delivers it, only if a listener is installed.
    #[inline]
    // With no layer feature on, `Event` has no variant and `make` cannot return.
    #[allow(unreachable_code)]
    pub fn emit(&self, make: impl FnOnce() -> Event) {
        if let Some(listener) = &self.inner {
            listener.on_event(&make());
        }
    }
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listeners")
            .field("active", &self.is_active())
            .finish()
    }
}
