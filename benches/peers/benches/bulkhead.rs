//! Bulkhead benchmarks, side by side with tower's `ConcurrencyLimit` and
//! tower-resilience's bulkhead and adaptive limiter.
//!
//! * `bulkhead/uncontended/*` (criterion): one call through each layer around a
//!   service whose future is ready at once, `ready().await` then `call().await` on a
//!   current-thread runtime; the limit is never reached.
//! * contention (printed): 64 tasks on a multi-thread runtime with 1, then 2 worker
//!   threads, limit not reached; throughput and the 2-worker/1-worker ratio.
//! * saturated (printed): 64 tasks against a limit of 8 with an inner service that
//!   yields once, so callers exceed the limit; throughput and rejections.
//!
//! Contention rows run each configuration five times, alternating 1 and 2 workers,
//! and report the median of each. The `bare` rows show how much parallelism the host gave.
//!
//! Run: `cargo bench -p tower-fortify-benches --bench bulkhead -- --quick`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use tokio::time::Instant;
use tower::limit::ConcurrencyLimitLayer;
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_fortify::bulkhead::{AdaptiveLimit, Aimd, BulkheadLayer};

mod common;
use common::{Bare as Echo, contention};

const LIMIT: usize = 1000;

fn ours_fixed() -> impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone + Send
{
    BulkheadLayer::new(LIMIT).unwrap().layer(Echo)
}

fn ours_adaptive()
-> impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone + Send {
    BulkheadLayer::builder()
        .adaptive(
            AdaptiveLimit::aimd(Aimd::default())
                .initial(LIMIT)
                .max(2 * LIMIT),
        )
        .build()
        .unwrap()
        .layer(Echo)
}

fn tower_limit()
-> impl Service<u64, Response = u64, Error = std::io::Error, Future: Send> + Clone + Send {
    ConcurrencyLimitLayer::new(LIMIT).layer(Echo)
}

fn resilience(reject: bool) -> tower_resilience::bulkhead::Bulkhead<Echo> {
    let b = tower_resilience::bulkhead::BulkheadLayer::builder().max_concurrent_calls(LIMIT);
    let b = if reject { b.reject_when_full() } else { b };
    b.build().unwrap().layer(Echo)
}

fn resilience_adaptive() -> impl Service<u64, Error: std::fmt::Debug> + Clone {
    use tower_resilience::adaptive::{AdaptiveLimiterLayer, Aimd as RAimd};
    AdaptiveLimiterLayer::new(
        RAimd::builder()
            .initial_limit(LIMIT)
            .min_limit(1)
            .max_limit(2 * LIMIT)
            .latency_threshold(Duration::from_millis(100))
            .build()
            .unwrap(),
    )
    .layer(Echo)
}

fn uncontended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("bulkhead/uncontended");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);
    macro_rules! bench {
        ($name:expr, $svc:expr) => {{
            let mut svc = $svc;
            g.bench_function($name, |b| common::calls(b, &rt, &mut svc));
        }};
    }
    bench!("bare", Echo);
    bench!("tower_concurrency_limit", tower_limit());
    bench!("tower_resilience_bulkhead", resilience(false));
    bench!("tower_resilience_bulkhead_reject", resilience(true));
    bench!("tower_resilience_adaptive_aimd", resilience_adaptive());
    bench!("fortify_fixed", ours_fixed());
    bench!("fortify_adaptive_aimd", ours_adaptive());
    g.finish();
}

/// Calls per second with 64 tasks on `workers` worker threads.
fn throughput<S>(make: impl Fn() -> S, workers: usize, calls_per_task: u64) -> f64
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug + Send,
    S::Response: Send,
{
    let elapsed = contention(make(), workers, 64, calls_per_task);
    (64 * calls_per_task) as f64 / elapsed.as_secs_f64()
}

fn contention_row<S>(name: &str, make: impl Fn() -> S + Copy)
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug + Send,
    S::Response: Send,
{
    let calls = 20_000;
    throughput(make, 1, calls / 10); // warm up
    // Median of 5 for each worker count, alternating, so that a moment when the host
    // is busy does not favour one worker count.
    let (mut ones, mut twos) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        ones.push(throughput(make, 1, calls));
        twos.push(throughput(make, 2, calls));
    }
    ones.sort_by(f64::total_cmp);
    twos.sort_by(f64::total_cmp);
    let (one, two) = (ones[2], twos[2]);
    println!(
        "contention {name:<34} 1 worker {:>7.2} M calls/s   2 workers {:>7.2} M calls/s   ratio {:.2}",
        one / 1e6,
        two / 1e6,
        two / one
    );
}

/// A service whose future yields to the scheduler once (no allocation), so calls
/// overlap, the limit binds, and tasks move between worker threads.
#[derive(Clone)]
struct Yielding;

struct YieldOnce {
    req: u64,
    yielded: bool,
}

impl std::future::Future for YieldOnce {
    type Output = Result<u64, Infallible>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.yielded {
            Poll::Ready(Ok(self.req))
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl Service<u64> for Yielding {
    type Response = u64;
    type Error = Infallible;
    type Future = YieldOnce;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        YieldOnce {
            req,
            yielded: false,
        }
    }
}

fn saturated_row<S>(name: &str, svc: S)
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ok = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let calls = 20_000u64;
    let elapsed = rt.block_on({
        let (ok, rejected) = (ok.clone(), rejected.clone());
        async move {
            let start = Instant::now();
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let mut svc = svc.clone();
                    let (ok, rejected) = (ok.clone(), rejected.clone());
                    tokio::spawn(async move {
                        for i in 0..calls {
                            let Ok(s) = svc.ready().await else { continue };
                            match s.call(i).await {
                                Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                                Err(_) => rejected.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            start.elapsed()
        }
    });
    let (ok, rejected) = (ok.load(Ordering::Relaxed), rejected.load(Ordering::Relaxed));
    println!(
        "saturated  {name:<34} {:>7.2} M completed calls/s   {:>5.1} % rejected ({} of {})",
        ok as f64 / elapsed.as_secs_f64() / 1e6,
        100.0 * rejected as f64 / (ok + rejected) as f64,
        rejected,
        ok + rejected
    );
}

fn contention_and_saturation() {
    println!();
    contention_row("bare", || Echo);
    contention_row("tower_concurrency_limit", tower_limit);
    contention_row("tower_resilience_bulkhead", || resilience(false));
    contention_row("tower_resilience_bulkhead_reject", || resilience(true));
    contention_row("fortify_fixed", ours_fixed);
    contention_row("fortify_adaptive_aimd", ours_adaptive);
    println!("(inner future yields once per call: tasks move between workers)");
    contention_row("bare (yielding)", || Yielding);
    contention_row("tower_concurrency_limit (yielding)", || {
        ConcurrencyLimitLayer::new(LIMIT).layer(Yielding)
    });
    contention_row("fortify_fixed (yielding)", || {
        BulkheadLayer::new(LIMIT).unwrap().layer(Yielding)
    });

    println!();
    let limit = 8;
    saturated_row(
        "tower_concurrency_limit (queues)",
        ConcurrencyLimitLayer::new(limit).layer(Yielding),
    );
    saturated_row(
        "tower_resilience_bulkhead_reject",
        tower_resilience::bulkhead::BulkheadLayer::builder()
            .max_concurrent_calls(limit)
            .reject_when_full()
            .build()
            .unwrap()
            .layer(Yielding),
    );
    saturated_row(
        "fortify_fixed (reject)",
        BulkheadLayer::new(limit).unwrap().layer(Yielding),
    );
    saturated_row(
        "fortify_fixed (queue 64, 10 ms)",
        BulkheadLayer::builder()
            .max_concurrent(limit)
            .queue(64, Duration::from_millis(10))
            .build()
            .unwrap()
            .layer(Yielding),
    );
}

criterion_group!(benches, uncontended);

fn main() {
    benches();
    // The printed runs are skipped when a criterion filter names something else.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if filters.is_empty()
        || filters
            .iter()
            .any(|f| "contention saturated".contains(f.as_str()))
    {
        contention_and_saturation();
    }
    Criterion::default().configure_from_args().final_summary();
}
