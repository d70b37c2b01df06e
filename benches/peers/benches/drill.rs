//! The drill's speed and the chaos layer's cost.
//!
//! * `drill/10min_1000rps`: wall time of a ten-minute drill at 1,000 requests per
//!   second (600,000 requests, the single backend outage stretched to ten minutes)
//!   against the full recommended stack: bulkhead, retry with budget and deadline,
//!   the failover router, and a circuit breaker and a per-attempt timeout in front of
//!   each backend.
//! * `chaos/*`: one call through a ready service, bare, and behind the chaos layer
//!   switched off, switched on with a rule at 0 %, and switched on with a keyed,
//!   scheduled rule at 0.01 % (key, clock read and a random draw for every seventh
//!   call). The request goes through `black_box` so the bare call is not
//!   folded away; the future is not, so that no benchmark measures a store-forwarding
//!   stall instead of the layer.
//!
//! Run: `cargo bench -p tower-fortify-benches --bench drill`.

use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::{Service, service_fn};
use tower_fortify::BoxError;
use tower_fortify::chaos::{ChaosLayer, Fault, Rule};
use tower_fortify::drill::{Drill, Scenario};
use tower_fortify::rng::Rng;
use tower_layer::Layer;

#[path = "../../../tests/support/recommended.rs"]
mod recommended;
use recommended::recommended_stack;

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
            let report = drill.run(|env| recommended_stack(env, false)).unwrap();
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
