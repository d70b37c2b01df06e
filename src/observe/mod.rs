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
#[cfg(feature = "chaos")]
mod chaos;
#[cfg(feature = "circuit-breaker")]
mod circuit_breaker;
#[cfg(feature = "failover")]
mod failover;
#[cfg(feature = "fallback")]
mod fallback;
#[cfg(feature = "hedge")]
mod hedge;
#[cfg_attr(not(feature = "timeout"), allow(dead_code))]
mod interned;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(feature = "rate-limit")]
mod rate_limit;
#[cfg(feature = "retry")]
mod retry;
#[cfg(feature = "stack")]
mod stack;

#[cfg(feature = "metrics")]
pub use self::metrics::MetricsListener;
#[cfg(feature = "bulkhead")]
pub use bulkhead::*;
#[cfg(feature = "chaos")]
pub use chaos::*;
#[cfg(feature = "circuit-breaker")]
pub use circuit_breaker::*;
#[cfg(feature = "failover")]
pub use failover::*;
#[cfg(feature = "fallback")]
pub use fallback::*;
#[cfg(feature = "hedge")]
pub use hedge::*;
#[allow(unused_imports)] // Used by the timeouts and the one-call stack.
pub(crate) use interned::NameId;
#[cfg(feature = "rate-limit")]
pub use rate_limit::*;
#[cfg(feature = "retry")]
pub use retry::*;
#[cfg(feature = "stack")]
pub use stack::*;

/// A duration as logs and error messages show it: whole milliseconds below 10 s
/// (`300 ms`), tenths of a second above (`12.5 s`). Messages that differ only by
/// sub-millisecond noise then group together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ms(pub std::time::Duration);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms < 10_000 {
            write!(f, "{ms} ms")
        } else {
            write!(f, "{:.1} s", self.0.as_secs_f64())
        }
    }
}

/// Writes `"name: "` before an error's message when the instance has a name, so
/// logs and error chains say which instance refused.
#[allow(dead_code)] // Used by the layers' features only.
pub(crate) struct Prefix<'a>(pub(crate) &'a Option<Arc<str>>);

impl fmt::Display for Prefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) if !name.is_empty() => write!(f, "{name}: "),
            _ => Ok(()),
        }
    }
}

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
    /// From a chaos (fault injection) layer.
    #[cfg(feature = "chaos")]
    Chaos(ChaosEvent),
    /// From a hedging layer.
    #[cfg(feature = "hedge")]
    Hedge(HedgeEvent),
    /// From a fallback layer.
    #[cfg(feature = "fallback")]
    Fallback(FallbackEvent),
    /// From a rate limiter.
    #[cfg(feature = "rate-limit")]
    RateLimit(RateLimitEvent),
    /// From a one-call stack itself: a reconfiguration.
    #[cfg(feature = "stack")]
    Stack(StackEvent),
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
            #[cfg(feature = "chaos")]
            Event::Chaos(ref e) => e.kind(),
            #[cfg(feature = "hedge")]
            Event::Hedge(ref e) => e.kind(),
            #[cfg(feature = "fallback")]
            Event::Fallback(ref e) => e.kind(),
            #[cfg(feature = "rate-limit")]
            Event::RateLimit(ref e) => e.kind(),
            #[cfg(feature = "stack")]
            Event::Stack(ref e) => e.kind(),
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

    /// Called once per event with the name of the instance that sent it (its
    /// builder's `.name(..)`, `""` if none). The default calls
    /// [`on_event`](Self::on_event); override it to tell instances apart (a metrics
    /// exporter labelling series by name).
    fn on_named_event(&self, name: &str, event: &Event) {
        let _ = name;
        self.on_event(event);
    }

    /// Whether this listener wants the per-call events too (a router's
    /// [`FailoverEvent::Attempt`]): one per call sent, so they cost an indirect call
    /// on the success path and are off unless a listener asks (`false` by default;
    /// [`MetricsListener`] says `true`, for traffic share and attempt latency).
    fn per_call(&self) -> bool {
        false
    }
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
///
/// It also carries the instance's name (`.name(..)` on a builder), which every log
/// line of the instance and every event delivered to [`Listener::on_named_event`]
/// carry.
#[derive(Clone, Default)]
pub struct Listeners {
    inner: Option<Arc<[Arc<dyn Listener>]>>,
    /// The listeners that want per-call events, if any does.
    per_call: Option<Arc<[Arc<dyn Listener>]>>,
    name: Option<Arc<str>>,
    warned: Arc<Warned>,
}

/// When each kind of repeated warning was last logged, so an instance logs one of a
/// kind at most once a second.
#[derive(Default)]
#[allow(dead_code)] // Read by the layers' features only.
struct Warned {
    epoch: crate::clock::Epoch,
    last: [std::sync::atomic::AtomicU64; 5],
}

/// Repeated warnings an instance rate-limits (at most one a second each).
#[derive(Debug, Clone, Copy)]
#[allow(dead_code)] // Each layer uses its own kinds; with some features off, some go unused.
pub(crate) enum Warn {
    /// The retry budget refused a retry.
    BudgetExhausted = 0,
    /// The bulkhead turned a call away.
    BulkheadFull = 1,
    /// The router had no backend to send to.
    NoHealthyBackend = 2,
    /// The rate limiter turned a call away.
    RateLimited = 3,
    /// An adaptive bulkhead moved its limit.
    LimitChanged = 4,
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
        let per_call: Vec<Arc<dyn Listener>> =
            all.iter().filter(|l| l.per_call()).cloned().collect();
        Self {
            inner: Some(all.into()),
            per_call: (!per_call.is_empty()).then(|| per_call.into()),
            name: self.name,
            warned: self.warned,
        }
    }

    /// Whether a repeated warning of `kind` may be logged now: true at most once a
    /// second per instance. Called on slow paths only (a rejection), it reads the
    /// clock.
    #[allow(dead_code)] // Used by the layers' features only.
    pub(crate) fn warn_due(&self, kind: Warn) -> bool {
        use std::sync::atomic::Ordering;
        const SECOND: u64 = 1_000_000_000;
        // Never 0, which means "never warned".
        let now = self.warned.epoch.now() + 1;
        let last = &self.warned.last[kind as usize];
        let seen = last.load(Ordering::Relaxed);
        (seen == 0 || now.saturating_sub(seen) >= SECOND)
            && last
                .compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// These listeners, for the instance called `name`.
    pub fn named(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The instance's name as set, for an error to carry (a reference count, no
    /// allocation).
    #[allow(dead_code)] // Used by the layers' features only.
    pub(crate) fn name_arc(&self) -> Option<Arc<str>> {
        self.name.clone()
    }

    /// The instance's name, shared, if it has one.
    #[inline]
    #[allow(dead_code)] // Used by the layers' features only.
    pub(crate) fn name_ref(&self) -> Option<&Arc<str>> {
        self.name.as_ref()
    }

    /// The instance's name, `""` if it has none.
    #[inline]
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// Whether a listener is installed.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// Builds the event with `make` and delivers it to every listener, only if one
    /// is installed. The event is built once.
    ///
    /// Always inlined, so a layer with no listener pays one test of a pointer; the
    /// delivery is out of line.
    #[inline(always)]
    // With no layer feature on, `Event` has no variant and `make` cannot return.
    #[allow(unreachable_code, unused_variables)]
    pub fn emit(&self, make: impl FnOnce() -> Event) {
        if let Some(listeners) = &self.inner {
            self.deliver(listeners, make());
        }
    }

    /// Like [`emit`](Self::emit), for a per-call event: delivered only to the
    /// listeners whose [`Listener::per_call`] is true, built only if there is one.
    #[inline(always)]
    #[allow(unreachable_code, unused_variables, dead_code)]
    pub fn emit_per_call(&self, make: impl FnOnce() -> Event) {
        if let Some(listeners) = &self.per_call {
            self.deliver(listeners, make());
        }
    }

    // Not cold: with a metrics listener installed, delivery runs on every call.
    #[inline(never)]
    #[allow(dead_code)] // With no layer feature on, no event is ever delivered.
    fn deliver(&self, listeners: &[Arc<dyn Listener>], event: Event) {
        let name = self.name();
        for listener in listeners {
            listener.on_named_event(name, &event);
        }
    }
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listeners")
            .field("name", &self.name())
            .field("count", &self.inner.as_ref().map_or(0, |l| l.len()))
            .finish()
    }
}
