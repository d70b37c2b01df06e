//! The router service: membership sync, the tier table, selection and readiness.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use tokio::time::Instant;
use tower_service::Service;

use super::config::{PanicMode, Selection};
use super::core::Core;
use super::error::NoHealthyBackend;
use super::future::{Guard, ResponseFuture};
use super::handle::FailoverHandle;
use super::judge::{Judge, Judges};
use super::member::{Instances, Member};
use super::pool::Pool;
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
    core: Arc<Core<S>>,
    judges: Judges<C>,
    tried: T,
    members: Arc<[Member<S>]>,
    held: Instances<S>,
    epoch: u64,
    route: Arc<Route>,
    ready: Option<Choice>,
    rng: u64,
}

#[derive(Clone, Copy, Debug)]
enum Choice {
    Backend(usize),
    Reject,
}

/// The routing table, rebuilt when health or membership changes. Clones share it
/// until one of them rebuilds it (their backend lists are in the same order).
#[derive(Default, Clone)]
struct Route {
    valid: bool,
    version: u64,
    next_expiry: u64,
    reject: bool,
    /// How many tiers take traffic.
    loaded: usize,
    tiers: Vec<TierRoute>,
}

#[derive(Default, Clone)]
struct TierRoute {
    /// Locals `start..end` belong to this tier.
    start: usize,
    end: usize,
    /// Cumulative share of traffic up to and including this tier, per million.
    cum: u32,
    /// Indices of the members that may take traffic.
    eligible: Vec<u32>,
}

const MILLION: u32 = 1_000_000;

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

    fn pool(&self) -> &Pool {
        &self.core.pool
    }

    /// Brings the backend list up to date with the shared membership. The instances
    /// this clone holds follow their backends to the new list (a readied one stays
    /// readied); those of removed backends are dropped.
    #[cold]
    fn sync(&mut self)
    where
        S: Clone,
    {
        let services = self.core.lock_services();
        self.epoch = self.core.pool.epoch.load(Ordering::Acquire);
        let members = self.core.members.get(self.epoch, &services);
        drop(services);
        let old = std::mem::replace(&mut self.members, members);
        let new = &self.members;
        self.held.release(&old, |at| {
            let serial = old[at].node.serial;
            new.iter().position(|m| m.node.serial == serial)
        });
        self.route = Arc::default();
    }

    #[inline]
    fn refresh(&mut self)
    where
        S: Clone,
    {
        if self.pool().epoch.load(Ordering::Acquire) != self.epoch {
            self.sync();
        }
        let version = self.pool().version.load(Ordering::Acquire);
        let stale = !self.route.valid
            || version != self.route.version
            || (self.route.next_expiry != u64::MAX && self.pool().now() >= self.route.next_expiry);
        if stale {
            self.recompute(version);
        }
    }

    /// Rebuilds the routing table: Envoy's priority loads with the overprovisioning
    /// factor, normalised when the tiers together are under 100 %, and panic routing.
    #[cold]
    fn recompute(&mut self, version: u64) {
        let pool = self.core.pool.clone();
        let cfg = &pool.cfg;
        let now = pool.now();
        let route = Arc::make_mut(&mut self.route);
        route.valid = true;
        route.version = version;
        route.next_expiry = u64::MAX;
        route.reject = false;
        route.loaded = 0;
        // Group the members (sorted by tier) into tiers, reusing the vectors.
        let mut count = 0;
        let mut i = 0;
        while i < self.members.len() {
            let tier = self.members[i].node.tier;
            let mut end = i;
            while end < self.members.len() && self.members[end].node.tier == tier {
                end += 1;
            }
            if route.tiers.len() == count {
                route.tiers.push(TierRoute::default());
            }
            let t = &mut route.tiers[count];
            t.start = i;
            t.end = end;
            t.cum = 0;
            t.eligible.clear();
            count += 1;
            i = end;
        }
        route.tiers.truncate(count);
        // Health per tier, in percent after overprovisioning.
        let mut health = [0f64; 16];
        let mut health_vec = Vec::new();
        let healths: &mut [f64] = if count <= 16 {
            &mut health[..count]
        } else {
            health_vec.resize(count, 0.0);
            &mut health_vec
        };
        for (k, t) in route.tiers.iter_mut().enumerate() {
            let (mut total, mut healthy) = (0u64, 0u64);
            for (j, member) in self.members[t.start..t.end].iter().enumerate() {
                let node = &member.node;
                total += node.weight as u64;
                for until in [
                    node.cold.ejected_until.load(Ordering::Acquire),
                    node.cold.held_until.load(Ordering::Acquire),
                ] {
                    if until > now {
                        route.next_expiry = route.next_expiry.min(until);
                    }
                }
                if node.is_eligible(now) {
                    healthy += node.weight as u64;
                    t.eligible.push((t.start + j) as u32);
                }
            }
            healths[k] = if total == 0 {
                0.0
            } else {
                (cfg.overprovisioning * 100.0 * healthy as f64 / total as f64).min(100.0)
            };
        }
        let sum: f64 = healths.iter().sum();
        let total = sum.min(100.0);
        if total <= 0.0 || total < cfg.panic_threshold {
            // Panic.
            if cfg.panic_mode == PanicMode::FailFast {
                route.reject = true;
                return;
            }
            for t in route.tiers.iter_mut() {
                t.eligible.clear();
                for j in t.start..t.end {
                    if self.members[j].node.is_panic_eligible(now) {
                        t.eligible.push(j as u32);
                    }
                }
                if !t.eligible.is_empty() {
                    t.cum = MILLION;
                    route.loaded = 1;
                    break;
                }
            }
            if route.loaded == 0 {
                route.reject = true;
            }
            return;
        }
        // Envoy: each tier takes min(remaining, health); below 100 % in total the
        // loads are scaled up so they add to 100 %.
        let mut remaining = 100.0;
        let mut cum = 0.0;
        for (k, t) in route.tiers.iter_mut().enumerate() {
            let load = if sum < 100.0 {
                healths[k] * 100.0 / sum
            } else {
                let l = healths[k].min(remaining);
                remaining -= l;
                l
            };
            if load > 0.0 && !t.eligible.is_empty() {
                route.loaded += 1;
            }
            cum += load;
            t.cum = ((cum / 100.0) * MILLION as f64).round().min(MILLION as f64) as u32;
        }
        if let Some(last) = route
            .tiers
            .iter_mut()
            .rev()
            .find(|t| !t.eligible.is_empty())
        {
            // Rounding never leaves a gap at the top.
            last.cum = MILLION;
        }
    }

    #[inline]
    fn next_rand(&mut self) -> u64 {
        // xorshift64*: per clone, so routing never writes a shared line.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The tier this call goes to (an index into `route.tiers`).
    #[inline]
    fn pick_tier(&mut self) -> usize {
        if self.route.loaded > 1 {
            let r = (self.next_rand() % MILLION as u64) as u32;
            if let Some(k) = self
                .route
                .tiers
                .iter()
                .position(|t| r < t.cum && !t.eligible.is_empty())
            {
                return k;
            }
        }
        self.route
            .tiers
            .iter()
            .position(|t| t.cum > 0 && !t.eligible.is_empty())
            .unwrap_or(0)
    }

    /// The first and second choice in tier `k`.
    #[inline]
    fn pick_in_tier(&mut self, k: usize) -> (Option<usize>, Option<usize>) {
        let n = self.route.tiers[k].eligible.len();
        match n {
            0 => (None, None),
            1 => (Some(self.route.tiers[k].eligible[0] as usize), None),
            _ => match self.pool().cfg.selection {
                selection @ (Selection::PowerOfTwoChoices | Selection::PeakEwma { .. }) => {
                    let r = self.next_rand();
                    let a = (r % n as u64) as usize;
                    let mut b = ((r >> 32) % (n as u64 - 1)) as usize;
                    if b >= a {
                        b += 1;
                    }
                    let e = &self.route.tiers[k].eligible;
                    let (a, b) = (e[a] as usize, e[b] as usize);
                    let (na, nb) = (&self.members[a].node, &self.members[b].node);
                    let b_wins = match selection {
                        Selection::PeakEwma { decay, .. } => {
                            let now = self.core.pool.now();
                            let d = super::pool::nanos_f64(decay);
                            nb.ewma_cost(now, d) < na.ewma_cost(now, d)
                        }
                        _ => nb.cost() < na.cost(),
                    };
                    if b_wins {
                        na.passed_over();
                        (Some(b), Some(a))
                    } else {
                        nb.passed_over();
                        (Some(a), Some(b))
                    }
                }
                Selection::WeightedRoundRobin => {
                    let tier = &self.route.tiers[k];
                    let mut total = 0i64;
                    let mut best = tier.eligible[0] as usize;
                    // The running weights are shared by the clones: a race between
                    // two of them skews one pick, never the long-run shares.
                    let mut best_current = i64::MIN;
                    for &j in &tier.eligible {
                        let member = &self.members[j as usize];
                        let w = member.node.weight as i64;
                        let current = member.current.fetch_add(w, Ordering::Relaxed) + w;
                        total += w;
                        if current > best_current {
                            best = j as usize;
                            best_current = current;
                        }
                    }
                    self.members[best]
                        .current
                        .fetch_sub(total, Ordering::Relaxed);
                    (Some(best), None)
                }
            },
        }
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

impl<S: Clone, C, T> Failover<S, C, T> {
    /// Whether health or membership changed since the routing table was built: one
    /// atomic load, so that an ejection takes effect on the next call even for a
    /// backend readied before it.
    #[inline]
    fn changed(&self) -> bool {
        self.pool().version.load(Ordering::Acquire) != self.route.version
    }

    /// Brings the table up to date and says whether the readied choice still stands
    /// (the backend is still eligible); drops it if not. Returns the readied
    /// backend's new index.
    #[cold]
    fn revalidate(&mut self) -> Option<usize> {
        let Some(Choice::Backend(j)) = self.ready.take() else {
            self.refresh();
            return None;
        };
        let serial = self.members[j].node.serial;
        self.refresh();
        // A membership change may have moved it, or removed it with its service.
        let j = self.members.iter().position(|m| m.node.serial == serial)?;
        let eligible = !self.route.reject
            && self
                .route
                .tiers
                .iter()
                .any(|t| t.eligible.contains(&(j as u32)));
        if eligible {
            self.ready = Some(Choice::Backend(j));
        }
        Some(j)
    }

    /// `poll_ready` found a readied choice made before a change: whether it stands.
    #[cold]
    fn still_ready(&mut self) -> bool {
        self.revalidate();
        self.ready.is_some()
    }
}

impl<S, C, T> Failover<S, C, T>
where
    S: Clone,
{
    /// `call` was given a backend readied before a change (an ejection, a hold-off,
    /// a removal): sends to it if it is still eligible, or else to another eligible
    /// backend that is ready at once (polled with a no-op waker). With none ready, a
    /// backend still a member takes the call it was readied for (a ready service must
    /// accept it); a removed one cannot, and the call is rejected.
    #[cold]
    fn reroute<Req>(&mut self, j: usize) -> Option<usize>
    where
        S: Service<Req>,
    {
        self.ready = Some(Choice::Backend(j));
        let kept = self.revalidate();
        if let Some(Choice::Backend(j)) = self.ready.take() {
            return Some(j);
        }
        if !self.route.reject && !self.members.is_empty() {
            let mut cx = Context::from_waker(Waker::noop());
            let k = self.pick_tier();
            if let (Some(alt), _) = self.scan::<Req>(k, [kept, None], &mut cx, None, true) {
                return Some(alt);
            }
        }
        kept.filter(|&j| self.members[j].node.is_member())
    }
}

/// What polling one backend's readiness gave.
enum Polled {
    Ready,
    Pending,
    Failed,
}

impl<S: Clone, C, T> Failover<S, C, T> {
    #[inline]
    fn poll_backend<Req>(&mut self, j: usize, cx: &mut Context<'_>) -> Polled
    where
        S: Service<Req>,
    {
        let held = self.held.get(&self.members, j);
        let polled = held.service.poll_ready(cx);
        held.ready = matches!(polled, Poll::Ready(Ok(())));
        match polled {
            Poll::Ready(Ok(())) => Polled::Ready,
            Poll::Pending => Polled::Pending,
            Poll::Ready(Err(_)) => {
                let node = self.members[j].node.clone();
                self.core.pool.record_not_ready_error(&node);
                Polled::Failed
            }
        }
    }

    /// Polls every eligible backend of tiers that take traffic (tier `first` first),
    /// except `skip`, until one is ready. Returns it, and whether any was pending.
    fn scan<Req>(
        &mut self,
        first: usize,
        skip: [Option<usize>; 2],
        cx: &mut Context<'_>,
        avoid: Option<&super::Tried>,
        all_tiers: bool,
    ) -> (Option<usize>, bool)
    where
        S: Service<Req>,
    {
        let mut pending = false;
        let tiers = self.route.tiers.len();
        for step in 0..tiers {
            let k = (first + step) % tiers;
            let prev = if k == 0 {
                0
            } else {
                self.route.tiers[k - 1].cum
            };
            if !all_tiers && self.route.tiers[k].cum <= prev {
                continue;
            }
            let n = self.route.tiers[k].eligible.len();
            if n == 0 {
                continue;
            }
            let offset = (self.next_rand() % n as u64) as usize;
            for m in 0..n {
                let j = self.route.tiers[k].eligible[(offset + m) % n] as usize;
                if skip.contains(&Some(j))
                    || avoid.is_some_and(|t| t.contains(self.members[j].node.serial))
                {
                    continue;
                }
                match self.poll_backend::<Req>(j, cx) {
                    Polled::Ready => return (Some(j), pending),
                    Polled::Pending => pending = true,
                    Polled::Failed => {}
                }
            }
        }
        (None, pending)
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Ready, ready};

    use proptest::prelude::*;

    use super::*;
    use crate::failover::Backend;

    type Echo = tower::util::ServiceFn<fn(u32) -> Ready<Result<u32, Infallible>>>;

    fn echo() -> Echo {
        tower::service_fn((|x| ready(Ok(x))) as fn(u32) -> Ready<Result<u32, Infallible>>)
    }

    /// Envoy's priority loads, written plainly: the reference for `recompute`.
    /// Returns each tier's share in percent, or `None` for fail-fast.
    fn reference(tiers: &[(u32, u32)], of: f64, panic: f64) -> Vec<f64> {
        let h: Vec<f64> = tiers
            .iter()
            .map(|&(total, healthy)| (of * 100.0 * healthy as f64 / total as f64).min(100.0))
            .collect();
        let sum: f64 = h.iter().sum();
        if sum.min(100.0) <= 0.0 || sum.min(100.0) < panic {
            // Panic: everything to the first tier (all have members).
            let mut loads = vec![0.0; tiers.len()];
            loads[0] = 100.0;
            return loads;
        }
        let mut remaining = 100.0;
        h.iter()
            .map(|&hi| {
                if sum < 100.0 {
                    hi * 100.0 / sum
                } else {
                    let l = hi.min(remaining);
                    remaining -= l;
                    l
                }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn tier_loads_match_the_reference(
            tiers in proptest::collection::vec((1u32..6, 0u32..6), 1..4),
            of in 1.0f64..3.0,
            panic in 0.0f64..100.0,
        ) {
            let tiers: Vec<(u32, u32)> = tiers.into_iter().map(|(t, h)| (t, h.min(t))).collect();
            let mut builder = Failover::builder()
                .overprovisioning_factor(of)
                .panic_threshold(panic)
                .max_ejection_percent(100.0);
            for (k, &(total, _)) in tiers.iter().enumerate() {
                for i in 0..total {
                    builder = builder.backend(Backend::new(format!("t{k}b{i}"), echo()).tier(k as u32));
                }
            }
            let mut router = builder.build().unwrap();
            // Eject the unhealthy ones (outlier ejection: panic may still use them).
            for (k, &(total, healthy)) in tiers.iter().enumerate() {
                for l in router.members.iter() {
                    let name = &*l.node.id;
                    for i in healthy..total {
                        if name == format!("t{k}b{i}") {
                            l.node.cold.ejected_until.store(u64::MAX, Ordering::Release);
                        }
                    }
                }
            }
            router.core.pool.bump();
            router.refresh();
            let expected = reference(&tiers, of, panic);
            let mut prev = 0u32;
            let mut cum = 0.0;
            for (k, t) in router.route.tiers.iter().enumerate() {
                cum += expected[k];
                let share = t.cum.saturating_sub(prev);
                let want = ((expected[k] / 100.0) * MILLION as f64) as i64;
                let is_last_loaded = router.route.tiers[k + 1..]
                    .iter()
                    .all(|t| t.eligible.is_empty());
                if !t.eligible.is_empty() && !is_last_loaded {
                    prop_assert!((share as i64 - want).abs() <= 2, "tier {k}: {share} vs {want} ({tiers:?})");
                }
                if expected[k] > 0.0 {
                    prop_assert!(!t.eligible.is_empty());
                }
                prev = prev.max(t.cum);
            }
            prop_assert!(!router.route.reject);
            prop_assert!((cum - 100.0).abs() < 1e-6);
        }
    }
}
