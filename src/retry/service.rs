use std::fmt;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;

use super::Replay;
use super::future::ResponseFuture;
use super::shared::Shards;
use crate::classify::Classify;
use crate::observe::{Event, RetryEvent};
use crate::shard::{self, SHARDS};

/// Retries failed calls to the inner service. Made by a [`RetryLayer`](super::RetryLayer).
///
/// `poll_ready` passes on the inner service's readiness. `call` moves the readied
/// inner service into the response future, which readies it again before each retry,
/// so no capacity is held during a backoff.
pub struct Retry<S, C, P> {
    pub(crate) inner: S,
    pub(crate) shards: Shards<C, P>,
}

impl<S: Clone, C, P> Clone for Retry<S, C, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shards: self.shards.clone(),
        }
    }
}

impl<S: fmt::Debug, C, P> fmt::Debug for Retry<S, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field(
                "max_attempts",
                &self.shards[0].live.max_attempts.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl<S, C, P> Retry<S, C, P> {
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

impl<S, Req, C, P> Service<Req> for Retry<S, C, P>
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

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        // `shards` holds exactly SHARDS handles (see `RetryLayer`): a mask, not a
        // division.
        let shared = self.shards[shard::index() & (SHARDS - 1)].clone();
        let over = shared.replay.overrides(&req);
        let max_attempts = if over.disabled {
            1
        } else {
            over.max_attempts
                .unwrap_or_else(|| shared.live.max_attempts.load(Ordering::Relaxed))
        };
        // Keep a copy only if another attempt is possible.
        let (backup, not_replayable) = if max_attempts > 1 {
            match shared.replay.replay(&req) {
                Some(copy) => (Some(copy), false),
                None => (None, true),
            }
        } else {
            (None, false)
        };
        let deadline = over.deadline_at.or_else(|| {
            over.deadline
                .or(shared.deadline)
                .map(|d| Instant::now() + d)
        });
        // A deadline in scope (the request a server is handling) bounds retries too.
        let deadline = crate::scope::earliest(deadline, crate::scope::current());
        if let Some(budget) = &shared.budget {
            budget.deposit();
        }
        // Move the readied service into the future; keep a fresh clone here.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        tracing::trace!(target: "tower_fortify::retry", attempt = 1u32, "attempt sent");
        shared
            .listeners
            .emit(|| Event::Retry(RetryEvent::AttemptSent { attempt: 1 }));
        let fut = service.call(req);
        ResponseFuture::new(
            fut,
            service,
            backup,
            shared,
            max_attempts,
            deadline,
            over.disabled,
            not_replayable,
        )
    }
}
