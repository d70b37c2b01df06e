//! What the stack carries with each request: its [`Tried`] set and its deadline.

use std::fmt;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;

use crate::failover::{Tried, TriedAccess};
use crate::retry::{Replay, RetryOverride};

/// A request inside a one-call [`Stack`](super::Stack): the caller's request, the
/// backends its attempts have tried, and the instant its overall deadline falls.
///
/// The stack wraps each request in one at its entry and unwraps it just above each
/// backend, so no per-request step is left to the caller: the retry layer copies it
/// per attempt (sharing the `Tried` set), the router reads the set, and the retry
/// layer reads the deadline.
pub struct Attempt<Req> {
    pub(crate) request: Req,
    pub(crate) tried: Tried,
    pub(crate) deadline: Instant,
}

impl<Req> Attempt<Req> {
    /// The caller's request.
    pub fn request(&self) -> &Req {
        &self.request
    }

    /// The backends this request was sent to so far.
    pub fn tried(&self) -> &Tried {
        &self.tried
    }

    /// When the request's overall deadline falls.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl<Req> fmt::Debug for Attempt<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("tried", &self.tried)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// Copies an [`Attempt`] for another try with the caller's [`Replay`] `P`, and gives
/// the retry layer the request's deadline as an instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttemptReplay<P>(pub(crate) P);

impl<Req, P: Replay<Req>> Replay<Attempt<Req>> for AttemptReplay<P> {
    #[inline]
    fn replay(&self, a: &Attempt<Req>) -> Option<Attempt<Req>> {
        self.0.replay(&a.request).map(|request| Attempt {
            request,
            tried: a.tried.clone(),
            deadline: a.deadline,
        })
    }

    #[inline]
    fn is_replayable(&self, a: &Attempt<Req>) -> bool {
        self.0.is_replayable(&a.request)
    }

    #[inline]
    fn overrides(&self, a: &Attempt<Req>) -> RetryOverride {
        self.0.overrides(&a.request).with_deadline_at(a.deadline)
    }
}

/// The router reads the [`Tried`] set of an [`Attempt`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AttemptTried;

impl<Req> TriedAccess<Attempt<Req>> for AttemptTried {
    #[inline]
    fn tried<'a>(&self, a: &'a Attempt<Req>) -> Option<&'a Tried> {
        Some(&a.tried)
    }
}

/// Unwraps an [`Attempt`] just above a backend: the backend gets the caller's request.
#[derive(Debug, Clone)]
pub struct Unwrap<S> {
    inner: S,
}

impl<S> Unwrap<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The backend's service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, Req> Service<Attempt<Req>> for Unwrap<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, a: Attempt<Req>) -> S::Future {
        self.inner.call(a.request)
    }
}
