use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;

use super::error::BreakerError;
use super::future::{Permit, ResponseFuture};
use super::handle::CircuitBreakerHandle;
use super::shared::{Shards, Slot};
use crate::BoxError;
use crate::shard::{self, Padded, SHARDS};

/// Fails calls fast while the backend looks down. Made by a
/// [`CircuitBreakerLayer`](super::CircuitBreakerLayer).
///
/// `poll_ready` passes on the inner service's readiness. `call` asks the breaker:
/// an admitted call goes to the inner service and its outcome is recorded when the
/// response future completes; a rejected call gets a ready future that fails with
/// [`CircuitOpen`](super::error::CircuitOpen), held by value in a
/// [`BreakerError`](super::error::BreakerError) (no allocation; it converts into a
/// `BoxError` with `?` or `.into()`).
pub struct CircuitBreaker<S, C> {
    pub(crate) inner: S,
    pub(crate) shards: Shards<C>,
}

impl<S: Clone, C> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shards: self.shards.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("status", &self.shards[0].core.status())
            .finish()
    }
}

impl<S, C> CircuitBreaker<S, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the breaker and returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// A handle on the breaker (shared with the layer and every clone).
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            core: self.shards[0].core.clone(),
        }
    }
}

/// Admits or rejects one call on the breaker of `slot`.
#[inline]
pub(crate) fn call<S, Req, C>(
    inner: &mut S,
    slot: &Arc<Padded<Slot<C>>>,
    req: Req,
) -> ResponseFuture<S::Future, C>
where
    S: Service<Req>,
{
    match slot.core.admit() {
        Ok(admit) => {
            let start = slot.core.times_calls().then(Instant::now);
            // Take the permit before calling, so a panicking inner call still
            // returns a probe slot.
            let permit = Permit::new(slot.clone(), admit, start);
            ResponseFuture::called(inner.call(req), permit)
        }
        Err(open) => ResponseFuture::rejected(open),
    }
}

impl<S, Req, C> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: crate::classify::Classify<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = BreakerError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(BreakerError::inner)
    }

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        // `shards` holds exactly SHARDS handles; a mask instead of `%` avoids a
        // division on every call.
        let slot = &self.shards[shard::index() & (SHARDS - 1)];
        call(&mut self.inner, slot, req)
    }
}
