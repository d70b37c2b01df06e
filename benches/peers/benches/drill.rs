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
//!   call). Each call is `ready().await` then `call(i).await` on a current-thread
//!   runtime, as users call.
//!
//! Run: `cargo bench -p tower-fortify-benches --bench drill`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::service_fn;
use tower_fortify::BoxError;
use tower_fortify::chaos::{ChaosLayer, Fault, Rule};
use tower_fortify::drill::{Drill, Scenario};
use tower_fortify::rng::Rng;
use tower_layer::Layer;

mod common;

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
    let runtime = common::runtime();
    let _guard = runtime.enter();
    let mut group = c.benchmark_group("chaos");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    let mut bare = inner;
    group.bench_function("bare", |b| common::calls(b, &runtime, &mut bare));
    let mut svc = off.layer(inner);
    group.bench_function("disabled", |b| common::calls(b, &runtime, &mut svc));
    let mut svc = zero.layer(inner);
    group.bench_function("enabled_0pct", |b| common::calls(b, &runtime, &mut svc));
    let mut svc = zero_keyed.layer(inner);
    group.bench_function("enabled_keyed_scheduled", |b| {
        common::calls(b, &runtime, &mut svc)
    });
    group.finish();
}

criterion_group!(benches, chaos, drill);
criterion_main!(benches);
