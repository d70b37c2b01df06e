//! Circuit breakers side by side: the Closed-state success path, the Open-state
//! rejection path, and 64 tasks sharing one breaker on 1 then 2 worker threads.
//!
//! `cargo bench -p tower-fortify-benches --bench circuit_breaker` (add `-- --quick` for a fast pass).

use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_fortify::circuit_breaker::{CircuitBreakerBuilder, CircuitBreakerLayer};

/// Fails only for `u64::MAX`, used to trip the breakers for the open-path bench.
fn backend()
-> impl Service<u64, Response = u64, Error = std::io::Error, Future: Send> + Clone + Send {
    service_fn(|x: u64| async move {
        if x == u64::MAX {
            Err(std::io::Error::other("down"))
        } else {
            Ok(x)
        }
    })
}

/// failsafe is not a tower layer: this wraps its futures breaker as a service.
#[derive(Clone)]
struct Failsafe<B, S> {
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

fn ours(
    b: CircuitBreakerBuilder,
) -> impl Service<u64, Response = u64, Error: std::fmt::Debug + Send, Future: Send>
+ Clone
+ Send
+ 'static {
    b.build().unwrap().layer(backend())
}

fn consecutive() -> CircuitBreakerBuilder {
    CircuitBreakerLayer::builder()
        .no_count_window()
        .consecutive_failures(5)
}

fn count_window() -> CircuitBreakerBuilder {
    CircuitBreakerLayer::builder().count_window(100)
}

fn time_window() -> CircuitBreakerBuilder {
    CircuitBreakerLayer::builder()
        .no_count_window()
        .time_window(Duration::from_secs(10))
}

macro_rules! resilience {
    ($($method:ident($($arg:expr),*)).*) => {
        tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
            $(.$method($($arg),*))*
            .build()
            .unwrap()
            .layer(backend())
    };
}

fn failsafe_default()
-> impl Service<u64, Response = u64, Error: std::fmt::Debug + Send, Future: Send>
+ Clone
+ Send
+ 'static {
    Failsafe {
        breaker: failsafe::Config::new().build(),
        inner: backend(),
    }
}

fn failsafe_consecutive(
    k: u32,
    open: Duration,
) -> impl Service<u64, Response = u64, Error: std::fmt::Debug + Send, Future: Send>
+ Clone
+ Send
+ 'static {
    let policy =
        failsafe::failure_policy::consecutive_failures(k, failsafe::backoff::constant(open));
    Failsafe {
        breaker: failsafe::Config::new().failure_policy(policy).build(),
        inner: backend(),
    }
}

fn single_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sequential calls on one task: ns per call.
fn per_call<S>(c: &mut Criterion, group: &str, name: &str, svc: S)
where
    S: Service<u64, Response = u64> + Clone,
    S::Error: std::fmt::Debug,
{
    let rt = single_runtime();
    let mut g = c.benchmark_group(group);
    g.bench_function(name, |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut svc = svc.clone();
            async move {
                let start = Instant::now();
                for i in 0..iters {
                    let r = svc.ready().await.unwrap().call(i).await;
                    black_box(r.is_ok());
                }
                start.elapsed()
            }
        })
    });
    g.finish();
}

fn closed_success(c: &mut Criterion) {
    let g = "breaker_closed_success";
    per_call(c, g, "bare", backend());
    per_call(
        c,
        g,
        "tower_resilience_count",
        resilience!(sliding_window_size(100)),
    );
    per_call(
        c,
        g,
        "tower_resilience_consecutive",
        resilience!(consecutive_failures(5)),
    );
    per_call(c, g, "failsafe_default", failsafe_default());
    per_call(
        c,
        g,
        "failsafe_consecutive",
        failsafe_consecutive(5, Duration::from_secs(5)),
    );
    per_call(c, g, "fortify_consecutive", ours(consecutive()));
    per_call(c, g, "fortify_count_window", ours(count_window()));
    per_call(c, g, "fortify_time_window", ours(time_window()));
    per_call(
        c,
        g,
        "fortify_all_conditions",
        ours(
            consecutive()
                .count_window(100)
                .time_window(Duration::from_secs(10)),
        ),
    );
    let keyed = CircuitBreakerLayer::builder()
        .keyed(|x: &u64| x % 8)
        .build()
        .unwrap()
        .layer(backend());
    per_call(c, g, "fortify_keyed_8_keys", keyed);
}

/// Trips `svc` with one failing call, then measures rejected calls.
fn open_path<S>(c: &mut Criterion, name: &str, svc: S)
where
    S: Service<u64, Response = u64> + Clone,
    S::Error: std::fmt::Debug,
{
    let rt = single_runtime();
    let mut tripped = svc.clone();
    rt.block_on(async {
        let _ = tripped.ready().await.unwrap().call(u64::MAX).await;
        let r = tripped.ready().await.unwrap().call(1).await;
        assert!(r.is_err(), "{name}: breaker did not open");
    });
    let mut g = c.benchmark_group("breaker_open_reject");
    g.bench_function(name, |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut svc = svc.clone();
            async move {
                let start = Instant::now();
                for i in 0..iters {
                    let r = svc.ready().await.unwrap().call(i).await;
                    black_box(r.is_err());
                }
                start.elapsed()
            }
        })
    });
    g.finish();
}

fn open_reject(c: &mut Criterion) {
    let hour = Duration::from_secs(3600);
    open_path(
        c,
        "tower_resilience_consecutive",
        resilience!(consecutive_failures(1).wait_duration_in_open(hour)),
    );
    open_path(c, "failsafe_consecutive", failsafe_consecutive(1, hour));
    open_path(
        c,
        "fortify",
        ours(
            CircuitBreakerLayer::builder()
                .no_count_window()
                .consecutive_failures(1)
                .open_duration(hour),
        ),
    );
}

const TASKS: u64 = 64;

/// 64 tasks share one breaker on a runtime with `workers` threads; reports the time
/// per call over all tasks (lower is better; throughput ratio = t(1) / t(2)).
fn contended<S>(c: &mut Criterion, name: &str, svc: S)
where
    S: Service<u64, Response = u64> + Clone + Send + 'static,
    S::Error: std::fmt::Debug + Send,
    S::Future: Send,
{
    let mut g = c.benchmark_group("breaker_contention_64_tasks");
    for workers in [1, 2] {
        let rt = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .unwrap(),
        );
        let svc = svc.clone();
        g.bench_function(format!("{name}/{workers}_workers"), |b| {
            b.iter_custom(|iters| {
                let per_task = iters.div_ceil(TASKS).max(1);
                let svc = svc.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|_| {
                            let mut svc = svc.clone();
                            tokio::spawn(async move {
                                for i in 0..per_task {
                                    let r = svc.ready().await.unwrap().call(i).await;
                                    black_box(r.is_ok());
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    // Scale to the requested iteration count.
                    start
                        .elapsed()
                        .mul_f64(iters as f64 / (per_task * TASKS) as f64)
                })
            })
        });
    }
    g.finish();
}

fn contention(c: &mut Criterion) {
    contended(c, "bare", backend());
    contended(
        c,
        "tower_resilience_count",
        resilience!(sliding_window_size(100)),
    );
    contended(c, "failsafe_default", failsafe_default());
    contended(c, "fortify_consecutive", ours(consecutive()));
    contended(c, "fortify_count_window", ours(count_window()));
    contended(c, "fortify_time_window", ours(time_window()));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = closed_success, open_reject, contention
}
criterion_main!(benches);
