use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower_service::Service;

use super::future::{Kind, ResponseFuture};
use crate::BoxError;

/// Fails a call that takes longer than its timeout with [`Elapsed`](super::Elapsed).
/// Built by [`TimeoutLayer`](super::TimeoutLayer); see the [module docs](super).
///
/// `poll_ready` passes on the inner service's readiness: the clock starts at `call`.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Timeout<S> {
    /// Wraps `inner`.
    pub const fn new(inner: S, timeout: Duration) -> Self {
        Self { inner, timeout }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req> Service<Req> for Timeout<S>
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
        let now = Instant::now();
        let Some(at) = now.checked_add(self.timeout) else {
            let fut = self.inner.call(req);
            let sleep = tokio::time::sleep(self.timeout);
            return ResponseFuture::new(fut, sleep, Kind::Attempt, self.timeout);
        };
        // The attempt's end is the deadline in scope below it, if earlier than the
        // request's: a client below writes what is left of the attempt, as Envoy's
        // per-try timeout does.
        let fut = crate::scope::enter(Some(at), || self.inner.call(req));
        ResponseFuture::attempt(fut, at, self.timeout)
    }
}

/// Fails a request that takes longer than its deadline with
/// [`DeadlineExceeded`](super::DeadlineExceeded), cancelling whatever runs below it.
/// Built by [`DeadlineLayer`](super::DeadlineLayer); see the [module docs](super).
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    deadline: Duration,
}

impl<S> Deadline<S> {
    /// Wraps `inner`.
    pub const fn new(inner: S, deadline: Duration) -> Self {
        Self { inner, deadline }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req> Service<Req> for Deadline<S>
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
        let now = Instant::now();
        // Saturating: a deadline too far to represent is no deadline of ours.
        let own = now.checked_add(self.deadline).unwrap_or(now + FAR);
        scoped_call(&mut self.inner, req, own, now)
    }
}

/// About 30 years: what a deadline that does not fit an `Instant` becomes.
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// Calls `inner` with the earlier of `own` and the deadline in scope, inside that
/// scope; past it, does not call at all.
#[inline]
pub(crate) fn scoped_call<S, Req>(
    inner: &mut S,
    req: Req,
    own: Instant,
    now: Instant,
) -> ResponseFuture<S::Future>
where
    S: Service<Req>,
{
    let at = match crate::scope::current() {
        Some(inherited) if inherited < own => inherited,
        _ => own,
    };
    let after = at.saturating_duration_since(now);
    if at <= now {
        return ResponseFuture::scoped(None, at, after);
    }
    let fut = crate::scope::enter(Some(at), || inner.call(req));
    ResponseFuture::scoped(Some(fut), at, after)
}

/// The effective deadline of a request entering with its own deadline `own`: the
/// earlier of it and the deadline in scope.
#[allow(dead_code)] // Used by the one-call stack.
pub(crate) fn effective(own: Instant) -> Instant {
    match crate::scope::current() {
        Some(inherited) if inherited < own => inherited,
        _ => own,
    }
}
