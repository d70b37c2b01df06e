//! What metrics cost on the one-call stack, called as users call (`ready().await` +
//! `call().await` on a current-thread runtime), in one run: no listener; `.metrics()`
//! with no recorder installed; `.metrics()` with the Prometheus recorder installed.
//!
//! `cargo bench -p tower-fortify-benches --bench metrics`

// Benchmarks measure wall time: the ban on std::time::Instant is for library code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tower::{Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::failover::{Backend, Selection};
use tower_fortify::stack::Stack;

type Svc = tower::util::BoxCloneSyncService<u64, u64, BoxError>;

fn backend() -> Svc {
    Svc::new(service_fn(|x: u64| async move { Ok::<_, BoxError>(x) }))
}

fn stack(metrics: bool) -> impl Service<u64, Response = u64, Error = BoxError> {
    let mut builder = Stack::builder()
        .backends(["a", "b", "c"].map(|id| Backend::new(id, backend())))
        // Zero-latency backends: peak-EWMA would keep all calls on one; p2c spreads them.
        .router(|r| r.selection(Selection::PowerOfTwoChoices))
        .name("bench");
    if metrics {
        builder = builder.metrics();
    }
    builder.build().unwrap()
}

fn run(c: &mut Criterion, rt: &tokio::runtime::Runtime, label: &str, metrics: bool) {
    let mut svc = rt.block_on(async { stack(metrics) });
    c.bench_function(label, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let out = svc.ready().await.unwrap().call(black_box(i)).await;
                    black_box(out.unwrap());
                }
                start.elapsed()
            })
        })
    });
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    run(c, &rt, "metrics/stack, no listener", false);
    run(c, &rt, "metrics/stack .metrics(), no recorder", true);
    // From here on a global recorder is installed for the rest of the process.
    let _handle = rt.block_on(async {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .unwrap()
    });
    run(
        c,
        &rt,
        "metrics/stack .metrics(), Prometheus recorder",
        true,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
