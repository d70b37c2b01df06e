//! Hedging: the success-path cost when no hedge fires, and the tail scenarios side
//! by side with tower's `Hedge` and tower-resilience's hedge.
//!
//! * `hedge/success/*`: one `ready().await` + `call().await` through a service that
//!   answers at once, in a tokio runtime: bare, this crate's hedge (fixed delay; the
//!   default percentile delay with its histogram and budget), tower's `Hedge` (p95,
//!   which records every latency under a mutex) and tower-resilience's hedge (fixed
//!   delay). Allocations per call are counted first, by a counting allocator, and
//!   printed.
//! * The tail scenarios (`tail-everywhere`, `tail-latency`): the unhedged
//!   recommended stack, the hedging preset, and the unhedged stack wrapped in
//!   tower's `Hedge` (p97, as the preset) and in tower-resilience's hedge (one hedge
//!   after 50 ms, about the p98 of a healthy backend's latency). The tables are printed
//!   before the timings.
//!
//! Run: `cargo bench --bench hedge --features drill`.

// Benchmarks measure wall time: the ban on std::time::Instant is for library code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use tower::{Service, ServiceExt};
use tower_fortify::BoxError;
use tower_fortify::drill::{Drill, Report, Scenario, SimRequest, comparison_table};
use tower_fortify::hedge::HedgeLayer;
use tower_layer::Layer;

#[path = "../../../tests/support/counting_alloc.rs"]
mod counting_alloc;
#[path = "../../../tests/support/recommended.rs"]
mod recommended;
use recommended::{hedging_stack, recommended_stack};

/// Answers at once, with an error type that is `Clone` (tower-resilience's hedge
/// needs one).
#[derive(Clone, Copy, Debug, Default)]
struct Bare;

#[derive(Clone, Debug)]
struct CloneError;

impl std::fmt::Display for CloneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("error")
    }
}

impl std::error::Error for CloneError {}

impl Service<u64> for Bare {
    type Response = u64;
    type Error = CloneError;
    type Future = std::future::Ready<Result<u64, CloneError>>;
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CloneError>> {
        Poll::Ready(Ok(()))
    }
    #[inline]
    fn call(&mut self, req: u64) -> Self::Future {
        std::future::ready(Ok(req.wrapping_add(1)))
    }
}

/// tower's hedge policy: every request may be hedged.
#[derive(Clone, Copy)]
struct Always;

impl<Req: Clone> tower::hedge::Policy<Req> for Always {
    fn clone_request(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
    fn can_retry(&self, _: &Req) -> bool {
        true
    }
}

fn ours_fixed<S: Clone>(
    s: S,
) -> tower_fortify::hedge::Hedge<
    S,
    tower_fortify::classify::DefaultClassifier,
    tower_fortify::retry::CloneReplay,
> {
    HedgeLayer::builder()
        .delay(Duration::from_millis(10))
        .build()
        .unwrap()
        .layer(s)
}

fn ours_percentile<S: Clone>(
    s: S,
) -> tower_fortify::hedge::Hedge<
    S,
    tower_fortify::classify::DefaultClassifier,
    tower_fortify::retry::CloneReplay,
> {
    HedgeLayer::builder().build().unwrap().layer(s)
}

fn tower_hedge<S>(s: S, percentile: f32) -> tower::hedge::Hedge<S, Always>
where
    S: Service<u64> + Clone,
    S::Error: Into<BoxError>,
{
    tower::hedge::Hedge::new::<u64>(s, Always, 100, percentile, Duration::from_secs(10))
}

fn resilience_hedge<S: Clone>(
    s: S,
) -> tower_resilience::hedge::Hedge<S, tower_resilience::hedge::AlwaysHedge> {
    tower_resilience::hedge::HedgeLayer::builder()
        .delay(Duration::from_millis(10))
        .max_hedged_attempts(2)
        .build()
        .layer(s)
}

/// Allocations per `ready().await` + `call().await`, after a warm-up.
fn allocations_per_call<S>(rt: &tokio::runtime::Runtime, mut svc: S) -> f64
where
    S: Service<u64>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        for i in 0..200 {
            svc.ready().await.unwrap().call(i).await.unwrap();
        }
        let before = counting_alloc::allocations();
        for i in 0..10_000 {
            svc.ready().await.unwrap().call(i).await.unwrap();
        }
        (counting_alloc::allocations() - before) as f64 / 10_000.0
    })
}

fn bench_success<S>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    svc: S,
) where
    S: Service<u64> + 'static,
    S::Error: std::fmt::Debug,
{
    // tower's `Hedge` is not `Clone`: one service, borrowed by each measurement.
    let svc = std::rc::Rc::new(tokio::sync::Mutex::new(svc));
    c.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let svc = svc.clone();
            async move {
                let mut svc = svc.lock().await;
                let start = Instant::now();
                for i in 0..iters {
                    black_box(svc.ready().await.unwrap().call(black_box(i)).await.unwrap());
                }
                start.elapsed()
            }
        })
    });
}

fn success_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("allocations per call (no hedge fires):");
    println!(
        "  bare                      {:.2}",
        allocations_per_call(&rt, Bare)
    );
    println!(
        "  fortify_fixed_delay       {:.2}",
        allocations_per_call(&rt, ours_fixed(Bare))
    );
    println!(
        "  fortify_percentile        {:.2}",
        allocations_per_call(&rt, ours_percentile(Bare))
    );
    println!(
        "  tower_hedge_p95           {:.2}",
        allocations_per_call(&rt, tower_hedge(Bare, 0.95))
    );
    println!(
        "  tower_resilience_hedge    {:.2}",
        allocations_per_call(&rt, resilience_hedge(Bare))
    );

    let mut g = c.benchmark_group("hedge/success");
    g.measurement_time(Duration::from_secs(2));
    g.warm_up_time(Duration::from_millis(500));
    bench_success(&mut g, &rt, "bare", Bare);
    bench_success(&mut g, &rt, "fortify_fixed_delay", ours_fixed(Bare));
    bench_success(&mut g, &rt, "fortify_percentile", ours_percentile(Bare));
    bench_success(&mut g, &rt, "tower_hedge_p95", tower_hedge(Bare, 0.95));
    bench_success(
        &mut g,
        &rt,
        "tower_resilience_hedge",
        resilience_hedge(Bare),
    );
    g.finish();
}

/// The stack's error as a `Clone` error, for tower-resilience's hedge.
#[derive(Clone, Debug)]
struct Shared(std::sync::Arc<str>);

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Shared {}

/// The four contenders on one tail scenario, seed 1.
fn tail_table(name: &str) -> String {
    let drill = Drill::new(Scenario::builtin(name).unwrap()).seed(1);
    let plain = drill
        .clone()
        .label("recommended")
        .run(|env| recommended_stack(env, false))
        .unwrap();
    let preset = drill
        .clone()
        .label("hedging preset")
        .run(hedging_stack)
        .unwrap();
    let tower = drill
        .clone()
        .label("tower hedge p97")
        .run(|env| {
            // tower's `Hedge` is not `Clone`; shared behind a `Buffer` as tower
            // suggests.
            tower::buffer::Buffer::new(
                tower::hedge::Hedge::new::<SimRequest>(
                    recommended_stack(env, false),
                    Always,
                    100,
                    0.97,
                    Duration::from_secs(10),
                ),
                4096,
            )
        })
        .unwrap();
    let resilience = drill
        .label("tower-resilience 50ms")
        .run(|env| {
            let stack = recommended_stack(env, false)
                .map_err((|e: BoxError| Shared(e.to_string().into())) as fn(BoxError) -> Shared);
            tower_resilience::hedge::HedgeLayer::builder()
                .delay(Duration::from_millis(50))
                .max_hedged_attempts(2)
                .build()
                .layer(stack)
        })
        .unwrap();
    let reports: [Report; 4] = [plain, preset, tower, resilience];
    let mut out = comparison_table(&reports);
    out.push_str("\nextra load (attempts/request - 1):");
    for r in &reports {
        out.push_str(&format!(
            "  {} {:.1} %;",
            r.stack,
            (r.amplification - 1.0) * 100.0
        ));
    }
    let base = reports[0].latency_ms.p999;
    out.push_str("\np99.9 against the unhedged stack:");
    for r in &reports[1..] {
        out.push_str(&format!("  {} {:.2}x;", r.stack, base / r.latency_ms.p999));
    }
    out
}

fn tail_scenarios() {
    for name in ["tail-everywhere", "tail-latency"] {
        println!("\n== {name} (seed 1)\n{}\n", tail_table(name));
    }
}

criterion_group!(benches, success_path);

fn main() {
    tail_scenarios();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
