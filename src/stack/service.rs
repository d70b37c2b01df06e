//! The built stack: one service, its entry and its handles.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower_service::Service;

use super::attempt::{Attempt, AttemptReplay, AttemptTried, Unwrap};
use super::health::Health;
use crate::BoxError;
use crate::budget::Budget;
use crate::bulkhead::{Bulkhead, BulkheadHandle};
use crate::circuit_breaker::{CircuitBreaker, CircuitBreakerHandle};
use crate::classify::DefaultClassifier;
use crate::failover::{BreakerAware, Failover, FailoverHandle, Tried};
use crate::hedge::Hedge;
use crate::retry::{CloneReplay, Retry};
use crate::timeout::Timeout;
use crate::timeout::future::ResponseFuture;

/// What sits in front of one backend: its circuit breaker over the per-attempt
/// timeout over the backend's own service.
pub type Leg<S, C = DefaultClassifier> =
    CircuitBreaker<Timeout<Unwrap<S>, crate::timeout::LiveTimeout>, Health<C>>;

/// The router over the backends' [`Leg`]s.
pub type Router<S, C = DefaultClassifier> =
    Failover<Leg<S, C>, BreakerAware<Health<C>>, AttemptTried>;

/// The hedging layer over the router (passing requests through while hedging is off).
pub type Hedged<S, C = DefaultClassifier, P = CloneReplay> =
    Hedge<Router<S, C>, C, AttemptReplay<P>>;

type Inner<S, C, P> = Bulkhead<Retry<Hedged<S, C, P>, C, AttemptReplay<P>>>;

/// The recommended stack as one tower `Service`, built by [`Stack::builder`] (or
/// [`Stack::http`], [`Stack::grpc`]): overall deadline → bulkhead → budgeted retry →
/// hedge (off unless [`hedging`](super::StackBuilder::hedging)) → failover router → per-backend circuit breaker → per-attempt timeout → backend.
///
/// `poll_ready` passes on the readiness of the router's backends (through the
/// bulkhead and retry layers, which reject from `call`, never from `poll_ready`).
/// Clones share every layer's state: one bulkhead, one budget, one breaker per
/// backend, one router.
///
/// Errors are `BoxError`s the caller can downcast:
/// [`DeadlineExceeded`](crate::timeout::DeadlineExceeded),
/// [`BulkheadFull`](crate::bulkhead::BulkheadFull),
/// [`NoHealthyBackend`](crate::failover::NoHealthyBackend),
/// [`CircuitOpen`](crate::circuit_breaker::error::CircuitOpen),
/// [`Elapsed`](crate::timeout::Elapsed) (the last attempt timed out) or the backend's
/// own error.
pub struct Stack<S, C = DefaultClassifier, P = CloneReplay> {
    pub(crate) inner: Inner<S, C, P>,
    pub(crate) parts: Arc<Parts<S, C>>,
}

/// The handles of a built stack, shared by its clones.
pub(crate) struct Parts<S, C> {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))] // Read by `gauges` only.
    pub(crate) name: Arc<str>,
    /// `name`, interned for the deadline's error (a 4-byte id in the future).
    pub(crate) name_id: crate::observe::NameId,
    /// The overall deadline in nanoseconds: an atomic, so that a reconfiguration
    /// changes it without a lock on the call path.
    pub(crate) deadline: AtomicU64,
    /// The per-attempt timeout, shared with every backend's timeout.
    pub(crate) attempt_timeout: crate::timeout::LiveTimeout,
    /// The settings the stack was built from (or last reconfigured to), kept for the
    /// configuration module, which the stack does not know; also held while a
    /// reconfiguration applies, so that two never interleave.
    #[allow(dead_code)] // Read by the configuration module only.
    pub(crate) applied: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
    /// The stack's own events (a reconfiguration), named with the stack's name.
    #[allow(dead_code)] // Read by the configuration module only.
    pub(crate) listeners: crate::observe::Listeners,
    pub(crate) router: FailoverHandle<Leg<S, C>>,
    pub(crate) breakers: Vec<(Arc<str>, CircuitBreakerHandle)>,
    pub(crate) bulkhead: BulkheadHandle,
    pub(crate) budget: Option<Budget>,
    pub(crate) retry: crate::retry::RetryHandle,
}

impl<S, C, P> Stack<S, C, P> {
    /// The router's handle: each backend's health and load, manual eject and restore,
    /// membership changes.
    pub fn router(&self) -> &FailoverHandle<Leg<S, C>> {
        &self.parts.router
    }

    /// The circuit breaker in front of the backend `id`.
    pub fn breaker(&self, id: &str) -> Option<&CircuitBreakerHandle> {
        self.parts
            .breakers
            .iter()
            .find(|(b, _)| &**b == id)
            .map(|(_, h)| h)
    }

    /// Every backend's circuit breaker, by backend id, in the order they were added.
    pub fn breakers(&self) -> impl Iterator<Item = (&str, &CircuitBreakerHandle)> {
        self.parts.breakers.iter().map(|(id, h)| (&**id, h))
    }

    /// The bulkhead's handle: calls in flight, limit changes at runtime.
    pub fn bulkhead(&self) -> &BulkheadHandle {
        &self.parts.bulkhead
    }

    /// The retry layer's handle: its attempts and backoff, changed at runtime.
    pub fn retry(&self) -> &crate::retry::RetryHandle {
        &self.parts.retry
    }

    /// The retry budget, if the stack has one (it does unless turned off).
    pub fn budget(&self) -> Option<&Budget> {
        self.parts.budget.as_ref()
    }

    /// The stack's gauges for a metrics exporter, read from its handles when sampled
    /// (see [`Gauges`](crate::observe::metrics::Gauges)): the bulkhead (labelled with
    /// the stack's name), the budget, the router's backends and each backend's
    /// breaker (labelled `name/backend`, as the breakers' own events are). Call
    /// `sample()` before each scrape.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn gauges(&self) -> crate::observe::metrics::Gauges
    where
        S: 'static,
        C: 'static,
        FailoverHandle<Leg<S, C>>: Send + Sync,
    {
        let parts = &*self.parts;
        let name = &*parts.name;
        let mut gauges = crate::observe::metrics::Gauges::new()
            .bulkhead(name, parts.bulkhead.clone())
            .router(name, parts.router.clone());
        if let Some(budget) = &parts.budget {
            gauges = gauges.budget(name, budget.clone());
        }
        for (id, breaker) in &parts.breakers {
            gauges = gauges.breaker(&format!("{name}/{id}"), breaker.clone());
        }
        gauges
    }

    /// The overall deadline each request gets.
    pub fn deadline(&self) -> Duration {
        Duration::from_nanos(self.parts.deadline.load(Ordering::Relaxed))
    }

    /// The timeout each attempt gets.
    pub fn attempt_timeout(&self) -> Duration {
        self.parts.attempt_timeout.get()
    }
}

impl<S, C, P> Clone for Stack<S, C, P>
where
    Inner<S, C, P>: Clone,
{
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            parts: self.parts.clone(),
        }
    }
}

impl<S, C, P> fmt::Debug for Stack<S, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("deadline", &self.deadline())
            .field("backends", &self.parts.breakers.len())
            .finish_non_exhaustive()
    }
}

impl<S, C, P, Req> Service<Req> for Stack<S, C, P>
where
    Inner<S, C, P>: Service<Attempt<Req>, Error = BoxError>,
{
    type Response = <Inner<S, C, P> as Service<Attempt<Req>>>::Response;
    type Error = BoxError;
    type Future = ResponseFuture<<Inner<S, C, P> as Service<Attempt<Req>>>::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        // The earlier of the stack's deadline and the one in scope (a server handling
        // a request with a deadline): the retry and hedging layers see this instant.
        let now = Instant::now();
        let deadline = Duration::from_nanos(self.parts.deadline.load(Ordering::Relaxed));
        let at = crate::timeout::effective(crate::timeout::until(now, deadline));
        let attempt = Attempt {
            request,
            tried: Tried::new(),
            deadline: at,
        };
        crate::timeout::scoped_call(&mut self.inner, attempt, at, now, self.parts.name_id)
    }
}
