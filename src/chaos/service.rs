use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::future::ResponseFuture;
use super::rule::FaultKind;
use super::shared::Shared;
use crate::observe::{ChaosEvent, Event};

/// Injects faults into calls to the inner service. Made by a
/// [`ChaosLayer`](super::ChaosLayer).
///
/// `poll_ready` passes on the inner service's readiness. When injection is switched
/// off, `call` costs one relaxed atomic load before calling the inner service.
pub struct Chaos<S, Req, Res, E> {
    pub(super) inner: S,
    pub(super) shared: Arc<Shared<Req, Res, E>>,
}

impl<S: Clone, Req, Res, E> Clone for Chaos<S, Req, Res, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, Req, Res, E> fmt::Debug for Chaos<S, Req, Res, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chaos")
            .field("inner", &self.inner)
            .field("rules", &self.shared.rules.len())
            .field("enabled", &self.shared.control.is_enabled())
            .finish()
    }
}

impl<S, Req, Res, E> Chaos<S, Req, Res, E> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the layer and returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req, Res, E> Service<Req> for Chaos<S, Req, Res, E>
where
    S: Service<Req, Response = Res, Error = E> + Clone,
{
    type Response = Res;
    type Error = E;
    type Future = ResponseFuture<S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &*self.shared;
        if !shared.control.is_enabled() {
            return ResponseFuture::inner(self.inner.call(req));
        }
        self.call_enabled(req)
    }
}

impl<S, Req, Res, E> Chaos<S, Req, Res, E>
where
    S: Service<Req, Response = Res, Error = E> + Clone,
{
    /// The path taken while injection is switched on, kept out of line so that the
    /// switched-off path stays small enough to inline.
    #[inline(never)]
    fn call_enabled(&mut self, req: Req) -> ResponseFuture<S, Req> {
        let shared = &*self.shared;
        let mut elapsed = None;
        let chosen = shared.rules.iter().find(|rule| {
            rule.selects(&req, || {
                *elapsed.get_or_insert_with(|| shared.control.elapsed())
            }) && (rule.probability >= 1.0 || shared.rng.next_f64() < rule.probability)
        });
        let Some(rule) = chosen else {
            return ResponseFuture::inner(self.inner.call(req));
        };
        shared.control.count_injection();
        match &rule.fault.kind {
            FaultKind::Error(make) => {
                tracing::trace!(target: "tower_fortify::chaos", fault = "error", "fault injected");
                injected(shared, "error", None);
                ResponseFuture::ready(Err(make()))
            }
            FaultKind::Respond(make) => {
                tracing::trace!(target: "tower_fortify::chaos", fault = "response", "fault injected");
                injected(shared, "response", None);
                ResponseFuture::ready(Ok(make()))
            }
            FaultKind::Hang => {
                tracing::trace!(target: "tower_fortify::chaos", fault = "hang", "fault injected");
                injected(shared, "hang", None);
                ResponseFuture::hang()
            }
            FaultKind::Latency(latency) => {
                let delay = latency.sample(&shared.rng);
                tracing::trace!(target: "tower_fortify::chaos", fault = "latency", ?delay, "fault injected");
                injected(shared, "latency", Some(delay));
                // Move the readied service into the future; it is readied again when
                // the delay ends, so nothing is reserved while it waits.
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::delayed(delay, service, req)
            }
        }
    }
}

/// Tells the listeners of an injected fault.
fn injected<Req, Res, E>(
    shared: &Shared<Req, Res, E>,
    fault: &'static str,
    delay: Option<std::time::Duration>,
) {
    shared
        .listeners
        .emit(|| Event::Chaos(ChaosEvent::Injected { fault, delay }));
}
