use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;

use super::future::ResponseFuture;
use super::shared::{BudgetUse, DelayMode, Shared};
use crate::classify::Classify;
use crate::retry::Replay;

/// Sends a copy of a slow request to the inner service and answers with the first
/// success. Made by a [`HedgeLayer`](super::HedgeLayer); see the [module docs](super).
///
/// `poll_ready` passes on the inner service's readiness and `call` sends the
/// original to the readied inner service. A hedge is sent on a clone of the inner
/// service, readied when the delay has passed, so nothing is reserved for a hedge
/// that is never sent.
pub struct Hedge<S, C, P> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared<S, C, P>>,
}

impl<S: Clone, C, P> Clone for Hedge<S, C, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, C, P> fmt::Debug for Hedge<S, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("max_hedges", &self.shared.config.max_hedges)
            .field("histogram", &self.shared.histogram)
            .finish_non_exhaustive()
    }
}

impl<S, C, P> Hedge<S, C, P> {
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

    /// The delay the next hedge would wait now: the fixed delay, or the current
    /// percentile estimate within its bounds.
    pub fn current_delay(&self) -> std::time::Duration {
        self.shared.delay()
    }
}

impl<S, Req, C, P> Service<Req> for Hedge<S, C, P>
where
    S: Service<Req> + Clone,
    C: Classify<S::Response, S::Error>,
    P: Replay<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, C, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let config = &self.shared.config;
        if config.max_hedges == 0 {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        let over = config.replay.overrides(&req);
        // Not idempotent (or retries turned off for it): never sent twice.
        if over.disabled {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        let Some(copy) = config.replay.replay(&req) else {
            return ResponseFuture::passthrough(self.inner.call(req));
        };
        let relative = over.deadline.map(|d| Instant::now() + d);
        let deadline = crate::scope::earliest(
            crate::scope::earliest(over.deadline_at, relative),
            crate::scope::current(),
        );
        if let BudgetUse::Own(budget) = &config.budget {
            budget.deposit();
        }
        let start = match config.delay {
            DelayMode::Percentile { .. } => Some(Instant::now()),
            DelayMode::Fixed(_) => None,
        };
        let fut = self.inner.call(req);
        ResponseFuture::new(fut, copy, self.shared.clone(), start, deadline)
    }
}
