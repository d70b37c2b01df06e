//! The router service: membership sync, the tier table, selection and readiness.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use tokio::time::Instant;
use tower_service::Service;

use super::core::Core;
use super::error::NoHealthyBackend;
use super::future::{Guard, ResponseFuture};
use super::handle::FailoverHandle;
use super::judge::{Judge, Judges};
use super::member::{Instances, Member};
use super::pool::Pool;
use super::route::{Choice, Polled, Route};
use super::tried::{NoTried, TriedAccess};
use crate::BoxError;
use crate::classify::{Classify, DefaultClassifier};
use crate::observe::{Event, FailoverEvent};
use crate::shard::{self, Padded, SHARDS};

/// Routes each call to one backend: the highest-priority tier that is healthy enough,
/// and within it the less loaded of two random backends (or weighted round robin).
/// Built by [`Failover::builder`]; see the [module docs](super) for the rules.
///
/// # Readiness
///
/// `poll_ready` chooses a backend and polls its `poll_ready`. A choice made before
/// health or membership changed (an ejection by hand or by outlier detection, a
/// hold-off, a removal) is checked again by the next `poll_ready` or `call`, so an
/// ejection takes effect on the next call even for a clone that had already readied
/// the backend. A backend that is not
/// ready is skipped: the router tries the other candidate, then every other eligible
/// backend of the tiers that take traffic, polling each at most once, and is ready as
/// soon as one of them is. It returns `Pending` only when every eligible backend is
/// pending (each has the task's waker). `call` sends to the backend readied by
/// `poll_ready`, so each call is made on a ready service.
///
/// When no backend is eligible and the panic mode is
/// [`FailFast`](super::PanicMode::FailFast) (or every backend's `poll_ready` failed),
/// `poll_ready` is ready and `call` returns a ready future with
/// [`NoHealthyBackend`](super::NoHealthyBackend): the router never stalls a caller for
/// want of health.
///
/// With attempt-aware routing, if the readied backend already took this request,
/// `call` polls other eligible backends once (with a no-op waker) and sends to the
/// first ready one; the readied backend stays readied for the next call.
///
/// A backend whose `poll_ready` fails counts one failure for outlier detection and is
/// skipped. Calling `call` without a successful `poll_ready` first fails the call with
/// `NoHealthyBackend`.
///
/// # Clones
///
/// Clones share health, membership, counters, the backend list and (until one of them
/// rebuilds it) the routing table, and have their own random stream seeded from the
/// shared one. A clone holds its own instance of a backend's service only once it
/// polls that backend: it takes one a dropped clone left behind, or clones the
/// backend's service. `Clone` therefore allocates nothing and clones no backend, and
/// requests sent one after another through the retry layer (which clones the router
/// per request) allocate nothing once each backend has an instance to pass on.
pub struct Failover<S, C = DefaultClassifier, T = NoTried> {
    pub(super) core: Arc<Core<S>>,
    pub(super) judges: Judges<C>,
    pub(super) tried: T,
    pub(super) members: Arc<[Member<S>]>,
    pub(super) held: Instances<S>,
    pub(super) epoch: u64,
    pub(super) route: Arc<Route>,
    pub(super) ready: Option<Choice>,
    pub(super) rng: u64,
}

impl<S, C, T> Failover<S, C, T> {
    pub(crate) fn new(core: Arc<Core<S>>, classifier: C, tried: T) -> Self
    where
        S: Clone,
        C: Clone,
    {
        let judges: Judges<C> = (0..SHARDS)
            .map(|_| {
                Arc::new(Padded(Judge {
                    classifier: classifier.clone(),
                    pool: core.pool.clone(),
                }))
            })
            .collect();
        let rng = seed(&core.pool);
        let mut router = Self {
            core,
            judges,
            tried,
            members: Arc::from(Vec::new()),
            held: Instances::default(),
            epoch: u64::MAX,
            route: Arc::default(),
            ready: None,
            rng,
        };
        router.sync();
        router
    }

    /// A handle to inspect and control the backends at runtime.
    pub fn handle(&self) -> FailoverHandle<S> {
        FailoverHandle::new(self.core.clone())
    }

    pub(super) fn pool(&self) -> &Pool {
        &self.core.pool
    }

    fn reject(&self) -> NoHealthyBackend {
        let listeners = &self.pool().listeners;
        if listeners.warn_due(crate::observe::Warn::NoHealthyBackend) {
            tracing::warn!(
                target: "tower_fortify::failover",
                name = listeners.name(),
                backends = self.members.len(),
                "no healthy backend: calls fail fast"
            );
        }
        self.pool()
            .listeners
            .emit(|| Event::Failover(FailoverEvent::NoHealthyBackend));
        NoHealthyBackend {
            backends: self.members.len(),
            name: listeners.name_arc(),
        }
    }
}

impl<S, C, T, Req> Service<Req> for Failover<S, C, T>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error>,
    T: TriedAccess<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.ready.is_some() && (!self.changed() || self.still_ready()) {
            return Poll::Ready(Ok(()));
        }
        self.refresh();
        if self.route.reject || self.members.is_empty() {
            self.ready = Some(Choice::Reject);
            return Poll::Ready(Ok(()));
        }
        let k = self.pick_tier();
        let (a, b) = self.pick_in_tier(k);
        let mut pending = false;
        for j in [a, b].into_iter().flatten() {
            match self.poll_backend::<Req>(j, cx) {
                Polled::Ready => {
                    self.ready = Some(Choice::Backend(j));
                    return Poll::Ready(Ok(()));
                }
                Polled::Pending => pending = true,
                Polled::Failed => {}
            }
        }
        let (found, more) = self.scan::<Req>(k, [a, b], cx, None, false);
        if let Some(j) = found {
            self.ready = Some(Choice::Backend(j));
            return Poll::Ready(Ok(()));
        }
        if pending || more {
            return Poll::Pending;
        }
        self.ready = Some(Choice::Reject);
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let mut j = match self.ready.take() {
            Some(Choice::Backend(j)) => j,
            Some(Choice::Reject) | None => return ResponseFuture::rejected(self.reject()),
        };
        if self.changed() {
            match self.reroute::<Req>(j) {
                Some(to) => j = to,
                None => return ResponseFuture::rejected(self.reject()),
            }
        }
        if let Some(tried) = self.tried.tried(&req) {
            if tried.contains(self.members[j].node.serial) {
                let mut cx = Context::from_waker(Waker::noop());
                let k = self
                    .route
                    .tiers
                    .iter()
                    .position(|t| t.start <= j && j < t.end)
                    .unwrap_or(0);
                if let (Some(alt), _) =
                    self.scan::<Req>(k, [Some(j), None], &mut cx, Some(tried), true)
                {
                    // `j` stays readied for the next call.
                    self.ready = Some(Choice::Backend(j));
                    j = alt;
                }
            }
            tried.insert(self.members[j].node.serial);
        }
        let judge = self.judges[shard::index() % self.judges.len()].clone();
        let node = &self.members[j].node;
        node.hot.in_flight.fetch_add(1, Ordering::Relaxed);
        let start = judge.pool.cfg.times_calls().then(Instant::now);
        let guard = Guard {
            node: node.clone(),
            judge,
            start,
        };
        let held = self.held.get(&self.members, j);
        held.ready = false;
        let fut = held.service.call(req);
        ResponseFuture::called(fut, guard)
    }
}

fn seed(pool: &Pool) -> u64 {
    pool.rng.next_u64() | 1
}

impl<S: Clone, C, T: Clone> Clone for Failover<S, C, T> {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
            judges: self.judges.clone(),
            tried: self.tried.clone(),
            members: self.members.clone(),
            held: Instances::default(),
            epoch: self.epoch,
            route: self.route.clone(),
            ready: None,
            rng: seed(&self.core.pool),
        }
    }
}

impl<S, C, T> Drop for Failover<S, C, T> {
    fn drop(&mut self) {
        // Pass the instances on to the next clone that picks their backends.
        self.held.give_back(&self.members);
    }
}

impl<S, C, T> fmt::Debug for Failover<S, C, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failover")
            .field("backends", &self.members.len())
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}
