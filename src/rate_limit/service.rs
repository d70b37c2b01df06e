//! The rate limiter's services: one quota, or one quota per key.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::future::{Cell, ResponseFuture, limited, waiting};
use super::gcra::Gcra;
use super::shared::{KeyCell, Keyed, Shared};
use crate::BoxError;
use crate::keyed::{Evict, View};
use crate::shard::Padded;

/// A service under a rate limit; from [`RateLimitLayer`](super::RateLimitLayer).
///
/// `poll_ready` passes on the inner service's readiness; a call over the limit fails
/// at once from `call` with [`RateLimited`](super::RateLimited), never by stalling `poll_ready` (tower's
/// `RateLimit` stalls, which axum turns into queueing). With
/// [`max_wait`](super::RateLimitBuilder::max_wait), a call whose slot is near waits
/// in its response future instead.
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
    /// This clone's view of the key map: a hit takes no lock.
    pub(crate) view: View<K, KeyCell>,
    pub(crate) keyed: Arc<Keyed<K>>,
    pub(crate) key: F,
}

impl<S: Clone, K, F: Clone> Clone for KeyedRateLimit<S, K, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            view: self.view.clone(),
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

impl<S, Req> Service<Req> for RateLimit<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    // Always: the slow paths (waiting, refused) are out of line, what is left is a
    // clock read and a compare-and-swap, and a call made out of line costs more
    // than that (measured: +23 instructions per call).
    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &*self.shared;
        match shared.cell.check(shared.quota.get(), shared.epoch.now()) {
            Ok(0) => ResponseFuture::called(self.inner.call(req)),
            Ok(stored) => waiting(
                shared,
                self.inner.clone(),
                req,
                || Cell::One(self.shared.clone()),
                stored,
            ),
            Err(wait) => limited(shared, wait),
        }
    }
}

impl<S, K, F, Req> Service<Req> for KeyedRateLimit<S, K, F>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
    F: Fn(&Req) -> K,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, S::Future>;

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
            .get_or_insert_in(
                &mut self.view,
                key,
                |_| Arc::new(Padded(Gcra::default())),
                |c| {
                    if c.is_idle(shared.epoch.now()) {
                        Evict::First
                    } else {
                        Evict::Last
                    }
                },
            )
            .expect("the rate limiter's map always makes room");
        let quota = shared.quota.get();
        match cell.check(quota, now) {
            Ok(0) => ResponseFuture::called(self.inner.call(req)),
            Ok(stored) => waiting(
                shared,
                self.inner.clone(),
                req,
                || Cell::Key(cell.clone(), quota),
                stored,
            ),
            Err(wait) => limited(shared, wait),
        }
    }
}
