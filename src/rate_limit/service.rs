use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tower_service::Service;

use super::error::RateLimited;
use super::gcra::Gcra;
use super::layer::{Keyed, Shared};
use crate::BoxError;
use crate::keyed::Evict;
use crate::observe::Warn;

/// A service under a rate limit; from [`RateLimitLayer`](super::RateLimitLayer).
///
/// `poll_ready` passes on the inner service's readiness; a call over the limit fails
/// at once from `call` with [`RateLimited`], never by stalling `poll_ready` (tower's
/// `RateLimit` stalls, which axum turns into queueing).
pub struct RateLimit<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: Clone> Clone for RateLimit<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit").finish_non_exhaustive()
    }
}

/// A service under one rate limit per key; from
/// [`KeyedRateLimitLayer`](super::KeyedRateLimitLayer).
pub struct KeyedRateLimit<S, K, F> {
    pub(crate) inner: S,
    pub(crate) keyed: Arc<Keyed<K>>,
    pub(crate) key: F,
}

impl<S: Clone, K, F: Clone> Clone for KeyedRateLimit<S, K, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            keyed: self.keyed.clone(),
            key: self.key.clone(),
        }
    }
}

impl<S, K, F> fmt::Debug for KeyedRateLimit<S, K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimit").finish_non_exhaustive()
    }
}

pin_project! {
    /// The future of a rate-limited call: the inner call, or a ready [`RateLimited`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = Proj]
    enum State<F> {
        Called { #[pin] fut: F },
        Limited { error: Option<RateLimited> },
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    fn called(fut: F) -> Self {
        Self {
            state: State::Called { fut },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("limited", &matches!(self.state, State::Limited { .. }))
            .finish()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            Proj::Called { fut } => fut.poll(cx).map_err(Into::into),
            Proj::Limited { error } => Poll::Ready(Err(match error.take() {
                Some(e) => Box::new(e),
                None => "rate limit future polled after completion".into(),
            })),
        }
    }
}

#[cold]
fn limited<F>(shared: &Shared, retry_after: Duration) -> ResponseFuture<F> {
    if shared.listeners.warn_due(Warn::RateLimited) {
        tracing::warn!(
            target: "tower_fortify::rate_limit",
            name = shared.listeners.name(),
            retry_after_ms = retry_after.as_millis() as u64,
            "rate limit exceeded: calls rejected"
        );
    }
    ResponseFuture {
        state: State::Limited {
            error: Some(RateLimited {
                retry_after,
                name: shared.listeners.name_arc(),
            }),
        },
    }
}

impl<S, Req> Service<Req> for RateLimit<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &*self.shared;
        match shared.cell.check(shared.quota, shared.epoch.now()) {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(wait) => limited(shared, wait),
        }
    }
}

impl<S, K, F, Req> Service<Req> for KeyedRateLimit<S, K, F>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
    F: Fn(&Req) -> K,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let keyed = &*self.keyed;
        let shared = &keyed.shared;
        let now = shared.epoch.now();
        let key = (self.key)(&req);
        let cell = keyed
            .map
            .get_or_insert(
                key,
                |_| Arc::new(Gcra::default()),
                |c| {
                    if c.is_idle(shared.epoch.now()) {
                        Evict::First
                    } else {
                        Evict::Last
                    }
                },
            )
            .expect("the rate limiter's map always makes room");
        match cell.check(shared.quota, now) {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(wait) => limited(shared, wait),
        }
    }
}
