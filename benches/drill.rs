//! The drill's speed and the chaos layer's cost.
//!
//! * `drill/10min_1000rps`: wall time of a ten-minute drill at 1,000 requests per
//!   second (600,000 requests, the single backend outage stretched to ten minutes)
//!   against the full stack available today: retry with budget and deadline over a
//!   round robin that skips open breakers, with a circuit breaker and a per-attempt
//!   timeout in front of each backend.
//! * `chaos/*`: one call through a ready service, bare, and behind the chaos layer
//!   switched off, switched on with a rule at 0 %, and switched on with a keyed,
//!   scheduled rule at 0.01 % (key, clock read and a random draw for every seventh
//!   call). The request goes through `black_box` so the bare call is not
//!   folded away; the future is not, so that no benchmark measures a store-forwarding
//!   stall instead of the layer.
//!
//! Run: `cargo bench --bench drill`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::timeout::Timeout;
use tower::timeout::TimeoutLayer;
use tower::{Service, ServiceBuilder, service_fn};
use tower_fortify::BoxError;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::budget::Budget;
use tower_fortify::chaos::{ChaosLayer, Fault, Rule};
use tower_fortify::circuit_breaker::{CircuitBreaker, CircuitBreakerHandle, CircuitBreakerLayer};
use tower_fortify::classify::DefaultClassifier;
use tower_fortify::drill::{
    Drill, DrillEnv, Scenario, SimBackend, SimFuture, SimRequest, SimResponse,
};
use tower_fortify::retry::{CloneReplay, Retry, RetryLayer};
use tower_fortify::rng::Rng;
use tower_layer::Layer;

/// Round robin that passes over a backend while its breaker is open.
#[derive(Clone)]
struct SkipOpen<S> {
    backends: Arc<[(S, CircuitBreakerHandle)]>,
    next: Arc<AtomicUsize>,
}

impl<S> Service<SimRequest> for SkipOpen<S>
where
    S: Service<SimRequest, Response = SimResponse, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = SimResponse;
    type Error = BoxError;
    type Future = SimFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: SimRequest) -> SimFuture {
        let n = self.backends.len();
        let now = tokio::time::Instant::now();
        // Take turns; pass over a backend whose breaker is open (one whose time is up
        // admits a probe), drawing a new turn each time so that the others share its
        // traffic evenly. If every breaker is open, the last turn drawn.
        let mut pick = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for _ in 1..n {
            if self.backends[pick].1.open_until().is_none_or(|t| t <= now) {
                break;
            }
            pick = self.next.fetch_add(1, Ordering::Relaxed) % n;
        }
        Box::pin(self.backends[pick].0.clone().call(req))
    }
}

type PerBackend = CircuitBreaker<Timeout<SimBackend>, DefaultClassifier>;
type FullStack = Retry<SkipOpen<PerBackend>, DefaultClassifier, CloneReplay>;

/// Retry with budget and deadline over a round robin that skips open breakers, with a
/// breaker and a per-attempt timeout in front of each backend.
fn full_stack(env: &DrillEnv) -> FullStack {
    let retry = RetryLayer::builder()
        .max_attempts(3)
        .backoff(
            Backoff::exponential(Duration::from_millis(10))
                .max_delay(Duration::from_millis(200))
                .jitter(Jitter::Full),
        )
        .budget(Budget::default_ratio())
        .deadline(Duration::from_secs(1))
        .rng(env.rng())
        .build()
        .unwrap();
    let backends = env
        .backends()
        .iter()
        .map(|b| {
            let breaker = CircuitBreakerLayer::builder()
                .consecutive_failures(5)
                .count_window(50)
                .failure_rate(0.5)
                .minimum_calls(20)
                .open_duration(Duration::from_secs(5))
                .half_open_probes(3)
                .rng(env.rng())
                .build()
                .unwrap();
            let handle = breaker.handle();
            let service = ServiceBuilder::new()
                .layer(breaker)
                .layer(TimeoutLayer::new(Duration::from_millis(300)))
                .service(b.clone());
            (service, handle)
        })
        .collect();
    ServiceBuilder::new().layer(retry).service(SkipOpen {
        backends,
        next: Arc::default(),
    })
}

fn drill(c: &mut Criterion) {
    // The 3-minute outage scenario stretched to 10 minutes at the same rate.
    let scenario = Scenario::builtin("backend-outage")
        .unwrap()
        .scaled(600.0 / 180.0, 1.0);
    let drill = Drill::new(scenario).seed(1).label("full stack");
    let mut group = c.benchmark_group("drill");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("10min_1000rps", |b| {
        b.iter(|| {
            let report = drill.run(full_stack).unwrap();
            assert_eq!(report.requests, 600_000);
            report
        })
    });
    group.finish();
}

/// Polls a future once, in place (no move through memory after it is built).
#[inline(always)]
fn poll_once<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

fn chaos(c: &mut Criterion) {
    let inner = service_fn(|x: u64| std::future::ready(Ok::<_, BoxError>(x)));
    let off: ChaosLayer<u64, u64, BoxError> = ChaosLayer::builder()
        .enabled(false)
        .rule(Rule::new(Fault::error(|| "injected".into())).probability(0.5))
        .build()
        .unwrap();
    let zero: ChaosLayer<u64, u64, BoxError> = ChaosLayer::builder()
        .rng(Rng::seeded(1))
        .rule(Rule::new(Fault::error(|| "injected".into())).probability(0.0))
        .build()
        .unwrap();
    let zero_keyed: ChaosLayer<u64, u64, BoxError> = ChaosLayer::builder()
        .rng(Rng::seeded(1))
        .rule(
            Rule::new(Fault::error(|| "injected".into()))
                .probability(0.0001)
                .only(|x: &u64| x.is_multiple_of(7))
                .during(Duration::ZERO..Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let mut group = c.benchmark_group("chaos");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    let mut bare = inner;
    group.bench_function("bare", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            poll_once(bare.call(black_box(i)))
        })
    });
    let mut svc = off.layer(inner);
    group.bench_function("disabled", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            poll_once(svc.call(black_box(i)))
        })
    });
    let mut svc = zero.layer(inner);
    group.bench_function("enabled_0pct", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            poll_once(svc.call(black_box(i)))
        })
    });
    let mut svc = zero_keyed.layer(inner);
    group.bench_function("enabled_keyed_scheduled", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            poll_once(svc.call(black_box(i)))
        })
    });
    group.finish();
}

criterion_group!(benches, chaos, drill);
criterion_main!(benches);
