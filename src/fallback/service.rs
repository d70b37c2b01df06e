use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::future::ResponseFuture;
use super::shared::Shared;
use super::strategy::Strategy;
use crate::classify::Classify;

/// Answers a failed call with a fallback. Made by a
/// [`FallbackLayer`](super::FallbackLayer); see the [module docs](super).
///
/// `poll_ready` passes on the inner service's readiness: a fallback replaces a
/// result, not a service that is not ready.
pub struct Fallback<S, F, C> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared<F, C>>,
}

impl<S: Clone, F, C> Clone for Fallback<S, F, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, F, C> fmt::Debug for Fallback<S, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, F, C> Fallback<S, F, C> {
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

impl<S, Req, F, C> Service<Req> for Fallback<S, F, C>
where
    S: Service<Req>,
    F: Strategy<Req, S::Response, S::Error>,
    C: Classify<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, F, C, Req, S::Response, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let kept = self.shared.strategy.keep(&req);
        let fut = self.inner.call(req);
        ResponseFuture::new(fut, kept, self.shared.clone())
    }
}
