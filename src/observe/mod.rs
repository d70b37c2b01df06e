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

impl Event {
    /// The kind of event: the layer and the variant without the fields, such as
    /// `"Retry(RetrySkipped)"` or `"CircuitBreaker(Opened)"`. A fixed string, cheap to
    /// use as a metric label or a map key, where the `Debug` text carries every field.
    // With no layer feature on, `Event` has no variant.
    pub fn kind(&self) -> &'static str {
        match *self {
            #[cfg(feature = "retry")]
            Event::Retry(ref e) => e.kind(),
            #[cfg(feature = "circuit-breaker")]
            Event::CircuitBreaker(ref e) => e.kind(),
            #[cfg(feature = "bulkhead")]
            Event::Bulkhead(ref e) => e.kind(),
            #[cfg(feature = "failover")]
            Event::Failover(ref e) => e.kind(),
        }
    }
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

/// Where a layer sends its events: nowhere (the default), or every listener
/// registered with the builder, in the order registered.
///
/// Each builder's `.listener(..)` adds a listener; it never replaces one given
/// before, so a metrics exporter and a test's log can both watch one layer. With
/// one listener, delivery is one indirect call; with several, a loop over a shared
/// slice. No listener: the event is never built.
#[derive(Clone, Default)]
pub struct Listeners {
    inner: Option<Arc<[Arc<dyn Listener>]>>,
}

impl Listeners {
    /// A sink that delivers to `listener`.
    pub fn new(listener: impl Listener) -> Self {
        Self::default().with(listener)
    }

    /// These listeners and `listener` after them: every one gets every event.
    /// Builders call this for each `.listener(..)`.
    pub fn with(self, listener: impl Listener) -> Self {
        let added: Arc<dyn Listener> = Arc::new(listener);
        let all: Vec<Arc<dyn Listener>> = match self.inner {
            Some(existing) => existing.iter().cloned().chain([added]).collect(),
            None => vec![added],
        };
        Self {
            inner: Some(all.into()),
        }
    }

    /// Whether a listener is installed.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// Builds the event with `make` and delivers it to every listener, only if one
    /// is installed. The event is built once.
    #[inline]
    // With no layer feature on, `Event` has no variant and `make` cannot return.
    #[allow(unreachable_code, unused_variables)]
    pub fn emit(&self, make: impl FnOnce() -> Event) {
        if let Some(listeners) = &self.inner {
            let event = make();
            for listener in listeners.iter() {
                listener.on_event(&event);
            }
        }
    }
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listeners")
            .field("count", &self.inner.as_ref().map_or(0, |l| l.len()))
            .finish()
    }
}
