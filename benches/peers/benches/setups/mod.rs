//! The services the suites compare, built the same way in every suite: ours with the
//! settings the README names, and the peers' closest equivalents.

#![allow(dead_code)]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::Service;
use tower::retry::Policy;
use tower::retry::budget::{Budget as _, TpsBudget};
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::budget::Budget;
use tower_fortify::bulkhead::{AdaptiveLimit, Aimd, BulkheadLayer};
use tower_fortify::chaos::{ChaosLayer, Fault, Rule};
use tower_fortify::circuit_breaker::CircuitBreakerLayer;
use tower_fortify::failover::{Backend, Failover};
use tower_fortify::retry::RetryLayer;
use tower_fortify::rng::Rng;
use tower_fortify::stack::Stack;
use tower_layer::Layer;

/// The cheapest service: answers at once; fails only for `u64::MAX` (used to trip
/// breakers before an open-path scenario).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bare;

impl Service<u64> for Bare {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    #[inline]
    fn call(&mut self, req: u64) -> Self::Future {
        if req == u64::MAX {
            ready(Err(std::io::Error::other("down")))
        } else {
            ready(Ok(req))
        }
    }
}

/// `governor`'s direct (unkeyed) GCRA limiter wired in front of [`Bare`] by hand, as
/// users do: `check()` in `call`, a ready error when over the quota. On its
/// `MonotonicClock` (std's `Instant`, as our tokio clock reads): its default clock
/// (`quanta`) calibrates itself for a varying time at first use, which no
/// instruction count can difference away.
// governor's clock type names std's Instant; the ban on it is for library code.
#[allow(clippy::disallowed_types)]
pub struct Governed {
    limiter: Arc<
        governor::RateLimiter<
            governor::state::NotKeyed,
            governor::state::InMemoryState,
            governor::clock::MonotonicClock,
            governor::middleware::NoOpMiddleware<std::time::Instant>,
        >,
    >,
}

impl Governed {
    fn per_second(rate: u32) -> Self {
        let quota = governor::Quota::per_second(std::num::NonZeroU32::new(rate).unwrap());
        Self {
            limiter: Arc::new(governor::RateLimiter::direct_with_clock(
                quota,
                governor::clock::MonotonicClock,
            )),
        }
    }
}

impl Service<u64> for Governed {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    #[inline]
    fn call(&mut self, req: u64) -> Self::Future {
        match self.limiter.check() {
            Ok(()) => Bare.call(req),
            Err(_) => ready(Err(std::io::Error::other("rate limited"))),
        }
    }
}

/// Like [`Bare`] with an infallible error (what tower's balancer wants of a backend).
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    #[inline]
    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

// ---- retry ------------------------------------------------------------------------

/// Ours: 3 attempts, jittered exponential backoff, a 20 % ratio budget.
pub fn fortify_retry() -> RetryLayer {
    RetryLayer::builder()
        .max_attempts(3)
        .backoff(
            Backoff::exponential(Duration::from_millis(10))
                .max_delay(Duration::from_secs(1))
                .jitter(Jitter::Full),
        )
        .budget(Budget::ratio(Duration::from_secs(10), 10, 0.2).unwrap())
        .build()
        .unwrap()
}

/// Ours with gRPC's token-bucket budget.
pub fn fortify_retry_token_bucket() -> RetryLayer {
    RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::exponential(Duration::from_millis(10)).jitter(Jitter::Full))
        .budget(Budget::token_bucket(100.0, 0.1).unwrap())
        .build()
        .unwrap()
}

/// tower's `Retry` with a policy over `TpsBudget`: deposit on success, withdraw to retry.
#[derive(Clone)]
pub struct Budgeted {
    budget: Arc<TpsBudget>,
    attempts: u32,
}

impl<Req: Clone, Res, E> Policy<Req, Res, E> for Budgeted {
    type Future = Ready<()>;
    fn retry(&mut self, _: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(_) if self.attempts > 1 && self.budget.withdraw() => {
                self.attempts -= 1;
                Some(std::future::ready(()))
            }
            Err(_) => None,
        }
    }
    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

pub fn tower_budgeted() -> Budgeted {
    Budgeted {
        budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
        attempts: 3,
    }
}

pub fn resilience_retry() -> tower_resilience::retry::RetryLayer<u64, u64, std::io::Error> {
    let budget = tower_resilience::retry::RetryBudgetBuilder::new()
        .token_bucket()
        .build()
        .unwrap();
    tower_resilience::retry::RetryLayer::<u64, u64, std::io::Error>::builder()
        .max_attempts(3)
        .exponential_backoff(Duration::from_millis(10))
        .budget(budget)
        .build()
}

// ---- circuit breaker ----------------------------------------------------------------

/// Ours: opens after `k` failures in a row, open for `open`.
pub fn fortify_consecutive(
    k: u32,
    open: Duration,
) -> tower_fortify::circuit_breaker::CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .no_count_window()
        .consecutive_failures(k)
        .open_duration(open)
        .build()
        .unwrap()
}

/// failsafe is not a tower layer: this wraps its futures breaker as a service.
#[derive(Clone)]
pub struct Failsafe<B, S> {
    breaker: B,
    inner: S,
}

impl<B, S> Service<u64> for Failsafe<B, S>
where
    B: failsafe::futures::CircuitBreaker,
    S: Service<u64>,
{
    type Response = S::Response;
    type Error = failsafe::Error<S::Error>;
    type Future = failsafe::futures::ResponseFuture<
        S::Future,
        B::FailurePolicy,
        B::Instrument,
        failsafe::Any,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(failsafe::Error::Inner)
    }

    fn call(&mut self, req: u64) -> Self::Future {
        self.breaker.call(self.inner.call(req))
    }
}

pub fn failsafe_default<S>(
    inner: S,
) -> impl Service<u64, Response = S::Response, Error: std::fmt::Debug + Send, Future: Send>
+ Clone
+ Send
+ 'static
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug + Send,
{
    Failsafe {
        breaker: failsafe::Config::new().build(),
        inner,
    }
}

pub fn failsafe_consecutive<S>(
    k: u32,
    open: Duration,
    inner: S,
) -> impl Service<u64, Response = S::Response, Error: std::fmt::Debug + Send, Future: Send>
+ Clone
+ Send
+ 'static
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug + Send,
{
    let policy =
        failsafe::failure_policy::consecutive_failures(k, failsafe::backoff::constant(open));
    Failsafe {
        breaker: failsafe::Config::new().failure_policy(policy).build(),
        inner,
    }
}

pub fn resilience_breaker_count<S>(
    inner: S,
) -> impl Service<u64, Response = u64, Error: std::fmt::Debug + Send, Future: Send> + Clone + Send
where
    S: Service<u64, Response = u64, Error = std::io::Error> + Clone + Send + Sync + 'static,
    S::Future: Send,
{
    tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .sliding_window_size(100)
        .build()
        .unwrap()
        .layer(inner)
}

pub fn resilience_breaker_consecutive<S>(
    k: usize,
    open: Duration,
    inner: S,
) -> impl Service<u64, Response = u64, Error: std::fmt::Debug + Send, Future: Send> + Clone + Send
where
    S: Service<u64, Response = u64, Error = std::io::Error> + Clone + Send + Sync + 'static,
    S::Future: Send,
{
    tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .consecutive_failures(k)
        .wait_duration_in_open(open)
        .build()
        .unwrap()
        .layer(inner)
}

// ---- bulkhead -----------------------------------------------------------------------

pub fn fortify_adaptive(limit: usize) -> BulkheadLayer {
    BulkheadLayer::builder()
        .adaptive(
            AdaptiveLimit::aimd(Aimd::default())
                .initial(limit)
                .max(2 * limit),
        )
        .build()
        .unwrap()
}

/// Ours, one bulkhead per key (`request % keys`).
pub fn fortify_keyed_bulkhead(
    limit: usize,
    keys: u64,
) -> tower_fortify::bulkhead::KeyedBulkheadLayer<u64, impl Fn(&u64) -> u64 + Clone> {
    BulkheadLayer::builder()
        .max_concurrent(limit)
        .keyed(move |x: &u64| x % keys)
        .max_keys(keys as usize)
        .build()
        .unwrap()
}

pub fn resilience_bulkhead(limit: usize) -> tower_resilience::bulkhead::BulkheadLayer {
    tower_resilience::bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(limit)
        .build()
        .unwrap()
}

pub fn resilience_adaptive(
    limit: usize,
) -> tower_resilience::adaptive::AdaptiveLimiterLayer<tower_resilience::adaptive::Aimd> {
    use tower_resilience::adaptive::{AdaptiveLimiterLayer, Aimd as RAimd};
    AdaptiveLimiterLayer::new(
        RAimd::builder()
            .initial_limit(limit)
            .min_limit(1)
            .max_limit(2 * limit)
            .latency_threshold(Duration::from_millis(100))
            .build()
            .unwrap(),
    )
}

// ---- failover / balancing -----------------------------------------------------------

/// Ours over `n` backends (health tracking and latency-aware selection on).
pub fn fortify_failover<S: Service<u64> + Clone>(n: usize, backend: S) -> Failover<S> {
    Failover::builder()
        .backends((0..n).map(|i| Backend::new(format!("b{i}"), backend.clone())))
        .build()
        .unwrap()
}

/// tower's power-of-two-choices balancer over `n` backends, least pending requests.
pub fn tower_p2c(
    n: usize,
) -> tower::balance::p2c::Balance<
    tower::discover::ServiceList<Vec<tower::load::PendingRequests<Echo>>>,
    u64,
> {
    use tower::load::{CompleteOnResponse, PendingRequests};
    let list: Vec<_> = (0..n)
        .map(|_| PendingRequests::new(Echo, CompleteOnResponse::default()))
        .collect();
    tower::balance::p2c::Balance::new(tower::discover::ServiceList::new(list))
}

pub fn resilience_router<S: Service<u64> + Clone>(
    n: usize,
    backend: S,
) -> tower_resilience::router::WeightedRouter<S> {
    let mut b = tower_resilience::router::WeightedRouter::builder();
    for _ in 0..n {
        b = b.route(backend.clone(), 1);
    }
    b.build()
}

// ---- the rest -----------------------------------------------------------------------

/// The chaos layer with a rule, switched off (what stays in a production build).
pub fn fortify_chaos_off() -> ChaosLayer<u64, u64, std::io::Error> {
    ChaosLayer::builder()
        .enabled(false)
        .rng(Rng::seeded(1))
        .rule(Rule::new(Fault::error(|| std::io::Error::other("injected"))).probability(0.5))
        .build()
        .unwrap()
}

/// The recommended stack, `Stack::builder()` with its defaults, over `n` backends
/// that answer at once (seeded, so every run takes the same path).
pub fn recommended_stack(
    n: usize,
) -> impl Service<u64, Response = u64, Error = tower_fortify::BoxError, Future: Send> + Clone + Send
{
    recommended_stack_with(n, false)
}

/// [`recommended_stack`], with `.metrics()` when `metrics`. No recorder is installed
/// in these suites, so the builder leaves the metrics listeners out (what a user who
/// turns metrics on but installs no exporter pays).
pub fn recommended_stack_with(
    n: usize,
    metrics: bool,
) -> impl Service<u64, Response = u64, Error = tower_fortify::BoxError, Future: Send> + Clone + Send
{
    let builder = Stack::builder()
        .backends((0..n).map(|i| Backend::new(format!("b{i}"), Bare)))
        .rng(Rng::seeded(7));
    let builder = if metrics { builder.metrics() } else { builder };
    builder.build().unwrap()
}

// ---- the scenarios ------------------------------------------------------------------

/// Open time of the breakers in the scenarios: longer than any run.
pub const HOUR: Duration = Duration::from_secs(3600);

/// What a suite does with each scenario. `make` builds the service (call it inside
/// a runtime: some layers need its timer); with `trip`, the scenario measures an open
/// breaker: send `u64::MAX` once (it fails) before the measured calls.
pub trait Visit {
    fn visit<S, F>(&mut self, name: &'static str, trip: bool, make: F)
    where
        F: FnOnce() -> S,
        S: Service<u64> + 'static,
        S::Error: std::fmt::Debug;
}

/// Every scenario, named `group/subject`; ours have `fortify` in the name. The same
/// list feeds the instruction counts (`icount`) and the ns figures (`ns`).
pub fn scenarios(v: &mut impl Visit) {
    use tower_fortify::timeout::{DeadlineLayer, TimeoutLayer};
    v.visit("bare", false, || Bare);

    v.visit("retry/fortify_ratio_budget_jitter", false, || {
        fortify_retry().layer(Bare)
    });
    v.visit("retry/fortify_token_bucket_jitter", false, || {
        fortify_retry_token_bucket().layer(Bare)
    });
    v.visit("retry/tower_tps_budget", false, || {
        tower::retry::Retry::new(tower_budgeted(), Bare)
    });
    v.visit("retry/tower_resilience_budget", false, || {
        resilience_retry().layer(Bare)
    });

    v.visit("breaker/fortify_consecutive", false, || {
        fortify_consecutive(5, HOUR).layer(Bare)
    });
    v.visit("breaker/fortify_count_window", false, || {
        CircuitBreakerLayer::builder()
            .count_window(100)
            .build()
            .unwrap()
            .layer(Bare)
    });
    v.visit("breaker/fortify_time_window", false, || {
        CircuitBreakerLayer::builder()
            .no_count_window()
            .time_window(Duration::from_secs(10))
            .build()
            .unwrap()
            .layer(Bare)
    });
    v.visit("breaker/fortify_default", false, || {
        CircuitBreakerLayer::builder().build().unwrap().layer(Bare)
    });
    v.visit("breaker/fortify_keyed_8_keys", false, || {
        CircuitBreakerLayer::builder()
            .keyed(|x: &u64| x % 8)
            .build()
            .unwrap()
            .layer(Bare)
    });
    v.visit("breaker/failsafe_consecutive", false, || {
        failsafe_consecutive(5, HOUR, Bare)
    });
    v.visit("breaker/failsafe_default", false, || failsafe_default(Bare));
    v.visit("breaker/tower_resilience_count", false, || {
        resilience_breaker_count(Bare)
    });
    v.visit("breaker/tower_resilience_consecutive", false, || {
        resilience_breaker_consecutive(5, HOUR, Bare)
    });

    v.visit("breaker_open/fortify", true, || {
        fortify_consecutive(1, HOUR).layer(Bare)
    });
    v.visit("breaker_open/failsafe_consecutive", true, || {
        failsafe_consecutive(1, HOUR, Bare)
    });
    v.visit("breaker_open/tower_resilience_consecutive", true, || {
        resilience_breaker_consecutive(1, HOUR, Bare)
    });

    v.visit("bulkhead/fortify_fixed", false, || {
        BulkheadLayer::new(1000).unwrap().layer(Bare)
    });
    v.visit("bulkhead/fortify_adaptive_aimd", false, || {
        fortify_adaptive(1000).layer(Bare)
    });
    v.visit("bulkhead/fortify_keyed_8_keys", false, || {
        fortify_keyed_bulkhead(1000, 8).layer(Bare)
    });
    v.visit("bulkhead/tower_concurrency_limit", false, || {
        tower::limit::ConcurrencyLimitLayer::new(1000).layer(Bare)
    });
    v.visit("bulkhead/tower_resilience", false, || {
        resilience_bulkhead(1000).layer(Bare)
    });
    v.visit("bulkhead/tower_resilience_adaptive_aimd", false, || {
        resilience_adaptive(1000).layer(Bare)
    });

    v.visit("failover_3/fortify", false, || fortify_failover(3, Bare));
    v.visit("failover_3/tower_p2c", false, || tower_p2c(3));
    v.visit("failover_3/tower_resilience_router", false, || {
        resilience_router(3, Bare)
    });

    v.visit("timeout/fortify_attempt", false, || {
        TimeoutLayer::try_new(Duration::from_secs(2))
            .unwrap()
            .layer(Bare)
    });
    v.visit("timeout/fortify_deadline", false, || {
        DeadlineLayer::try_new(Duration::from_secs(5))
            .unwrap()
            .layer(Bare)
    });
    v.visit("timeout/tower", false, || {
        tower::timeout::TimeoutLayer::new(Duration::from_secs(2)).layer(Bare)
    });

    v.visit("rate_limit/fortify", false, || {
        tower_fortify::rate_limit::RateLimitLayer::per_second(1_000_000_000)
            .unwrap()
            .layer(Bare)
    });
    v.visit("rate_limit/governor_direct_monotonic", false, || {
        Governed::per_second(1_000_000_000)
    });
    v.visit("rate_limit/tower_rate_limit", false, || {
        tower::limit::RateLimitLayer::new(1_000_000_000, Duration::from_secs(1)).layer(Bare)
    });
    v.visit("chaos/fortify_off", false, || {
        fortify_chaos_off().layer(Bare)
    });

    v.visit("stack/fortify_recommended_3_backends", false, || {
        recommended_stack(3)
    });
    v.visit("stack/fortify_recommended_1_backend", false, || {
        recommended_stack(1)
    });
    v.visit(
        "stack/fortify_recommended_3_backends_metrics_no_recorder",
        false,
        || recommended_stack_with(3, true),
    );
}

/// The scenarios' names, in order.
pub fn names() -> Vec<&'static str> {
    struct Names(Vec<&'static str>);
    impl Visit for Names {
        fn visit<S, F>(&mut self, name: &'static str, _: bool, _: F)
        where
            F: FnOnce() -> S,
            S: Service<u64> + 'static,
            S::Error: std::fmt::Debug,
        {
            self.0.push(name);
        }
    }
    let mut n = Names(Vec::new());
    scenarios(&mut n);
    n.0
}
