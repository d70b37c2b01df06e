use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower_service::Service;

use super::future::ResponseFuture;
use crate::BoxError;
use crate::observe::NameId;

/// Fails a call that takes longer than its timeout with [`Elapsed`](super::Elapsed).
/// Built by [`TimeoutLayer`](super::TimeoutLayer); see the [module docs](super).
///
/// `poll_ready` passes on the inner service's readiness: the clock starts at `call`.
#[derive(Debug, Clone)]
pub struct Timeout<S, T = Duration> {
    inner: S,
    timeout: T,
    name: NameId,
}

/// How long a [`Timeout`] gives each call: a fixed [`Duration`] (what
/// [`TimeoutLayer`](super::TimeoutLayer) builds), or a [`LiveTimeout`] that can
/// change while the service runs (the one-call stack's per-attempt timeout). Sealed.
pub trait TimeoutSource: sealed::Sealed {
    /// The timeout of a call that starts now.
    fn timeout(&self) -> Duration;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::time::Duration {}
    impl Sealed for super::LiveTimeout {}
}

impl TimeoutSource for Duration {
    #[inline(always)]
    fn timeout(&self) -> Duration {
        *self
    }
}

/// A timeout that whoever holds it may change while calls run: each call reads it
/// once, at its start (one relaxed atomic load). The one-call stack's per-attempt
/// timeout, changed by [`Stack::reconfigure`](crate::stack::Stack::reconfigure).
#[derive(Debug, Clone)]
pub struct LiveTimeout(Arc<AtomicU64>);

impl LiveTimeout {
    /// Starts at `d` (saturating at 584 years).
    pub fn new(d: Duration) -> Self {
        Self(Arc::new(AtomicU64::new(nanos(d))))
    }

    /// The timeout now.
    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }

    /// Changes the timeout of the calls that start from now on; calls running keep
    /// theirs.
    pub fn set(&self, d: Duration) {
        self.0.store(nanos(d), Ordering::Relaxed);
    }
}

impl TimeoutSource for LiveTimeout {
    #[inline]
    fn timeout(&self) -> Duration {
        self.get()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<S> Timeout<S> {
    /// Wraps `inner`.
    pub const fn new(inner: S, timeout: Duration) -> Self {
        Self::with_name(inner, timeout, NameId::NONE)
    }

    /// Wraps `inner`, naming the timeout.
    pub(crate) const fn with_name(inner: S, timeout: Duration, name: NameId) -> Self {
        Self {
            inner,
            timeout,
            name,
        }
    }
}

impl<S> Timeout<S, LiveTimeout> {
    /// Wraps `inner`, each call getting the timeout `live` holds when it starts.
    pub fn live(inner: S, live: LiveTimeout) -> Self {
        Self::live_with_name(inner, live, NameId::NONE)
    }

    #[allow(dead_code)] // Used by the one-call stack only.
    pub(crate) fn live_with_name(inner: S, live: LiveTimeout, name: NameId) -> Self {
        Self {
            inner,
            timeout: live,
            name,
        }
    }
}

impl<S, T> Timeout<S, T> {
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

impl<S, T, Req> Service<Req> for Timeout<S, T>
where
    S: Service<Req>,
    T: TimeoutSource,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        let now = Instant::now();
        // The attempt's end is the deadline in scope below it, if earlier than the
        // request's: a client below writes what is left of the attempt, as Envoy's
        // per-try timeout does. An end too far to represent puts nothing in scope,
        // and its timer never fires.
        let timeout = self.timeout.timeout();
        let end = now.checked_add(timeout);
        let fut = crate::scope::enter(end, || self.inner.call(req));
        let name = self.name;
        match end {
            Some(at) => ResponseFuture::attempt(fut, at, timeout, true, name),
            None => ResponseFuture::attempt(fut, now + FAR, timeout, false, name),
        }
    }
}

/// Fails a request that takes longer than its deadline with
/// [`DeadlineExceeded`](super::DeadlineExceeded), cancelling whatever runs below it.
/// Built by [`DeadlineLayer`](super::DeadlineLayer); see the [module docs](super).
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    deadline: Duration,
    name: NameId,
}

impl<S> Deadline<S> {
    /// Wraps `inner`.
    pub const fn new(inner: S, deadline: Duration) -> Self {
        Self::with_name(inner, deadline, NameId::NONE)
    }

    /// Wraps `inner`, naming the deadline.
    pub(crate) const fn with_name(inner: S, deadline: Duration, name: NameId) -> Self {
        Self {
            inner,
            deadline,
            name,
        }
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

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        let now = Instant::now();
        let at = effective(until(now, self.deadline));
        scoped_call(&mut self.inner, req, at, now, self.name)
    }
}

/// About 30 years: what a deadline that does not fit an `Instant` becomes.
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `now + d`, saturating: a deadline too far to represent is no deadline of ours.
#[inline]
pub(crate) fn until(now: Instant, d: Duration) -> Instant {
    match now.checked_add(d) {
        Some(at) => at,
        None => now + FAR,
    }
}

/// Calls `inner` with the request's effective deadline `at` (see [`effective`]) in
/// scope; past it, does not call at all. `name` goes into its error.
#[inline(always)]
pub(crate) fn scoped_call<S, Req>(
    inner: &mut S,
    req: Req,
    at: Instant,
    now: Instant,
    name: NameId,
) -> ResponseFuture<S::Future>
where
    S: Service<Req>,
{
    if at <= now {
        return ResponseFuture::scoped(None, at, now, name);
    }
    let fut = crate::scope::enter(Some(at), || inner.call(req));
    ResponseFuture::scoped(Some(fut), at, now, name)
}

/// The effective deadline of a request entering with its own deadline `own`: the
/// earlier of it and the deadline in scope.
#[inline]
pub(crate) fn effective(own: Instant) -> Instant {
    match crate::scope::current() {
        Some(inherited) if inherited < own => inherited,
        _ => own,
    }
}
