//! Routing cost per call over always-ready backends: tower-fortify's failover router
//! (health tracking on) beside tower's p2c balancer and tower-resilience's weighted
//! router, and a contention run of the router on 1 and 2 worker threads.
//!
//! `cargo bench -p tower-fortify-benches --bench failover -- --quick`

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::time::Instant;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequests};
use tower::{Service, ServiceExt, service_fn};
use tower_fortify::failover::{Backend, Failover};
use tower_resilience::router::WeightedRouter;

type Echo = tower::util::ServiceFn<fn(u32) -> Ready<Result<u32, Infallible>>>;

fn echo() -> Echo {
    service_fn((|x| ready(Ok(x))) as fn(u32) -> Ready<Result<u32, Infallible>>)
}

fn fortify(n: usize, latency: bool) -> Failover<Echo> {
    let mut b = Failover::builder().backends((0..n).map(|i| Backend::new(format!("b{i}"), echo())));
    if !latency {
        b = b.latency_factor(None);
    }
    b.build().unwrap()
}

fn tower_p2c(n: usize) -> Balance<ServiceList<Vec<PendingRequests<Echo>>>, u32> {
    let list: Vec<_> = (0..n)
        .map(|_| PendingRequests::new(echo(), CompleteOnResponse::default()))
        .collect();
    Balance::new(ServiceList::new(list))
}

fn resilience_router(n: usize) -> WeightedRouter<Echo> {
    let mut b = WeightedRouter::builder();
    for _ in 0..n {
        b = b.route(echo(), 1);
    }
    b.build()
}

/// Times `iters` calls of ready + call + await.
fn run<S>(rt: &tokio::runtime::Runtime, svc: &mut S, iters: u64) -> Duration
where
    S: Service<u32, Response = u32>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            let out = svc.ready().await.unwrap().call(i as u32).await.unwrap();
            black_box(out);
        }
        start.elapsed()
    })
}

fn routing(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for n in [3usize, 32] {
        let mut g = c.benchmark_group(format!("route/{n}"));
        g.measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500))
            .sample_size(30);
        let mut bare = echo();
        g.bench_function("bare", |b| b.iter_custom(|it| run(&rt, &mut bare, it)));
        let mut ours = fortify(n, true);
        g.bench_function("fortify", |b| b.iter_custom(|it| run(&rt, &mut ours, it)));
        let mut ours_nolat = fortify(n, false);
        g.bench_function("fortify_no_latency", |b| {
            b.iter_custom(|it| run(&rt, &mut ours_nolat, it))
        });
        let mut p2c = tower_p2c(n);
        g.bench_function("tower_p2c", |b| b.iter_custom(|it| run(&rt, &mut p2c, it)));
        let mut wr = resilience_router(n);
        g.bench_function("resilience_router", |b| {
            b.iter_custom(|it| run(&rt, &mut wr, it))
        });
        g.finish();
    }
}

/// 64 tasks, each with its own router clone, on 1 then 2 worker threads.
fn contention(c: &mut Criterion) {
    let mut g = c.benchmark_group("contention/3");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(10);
    for workers in [1usize, 2] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_time()
            .build()
            .unwrap();
        let router = fortify(3, true);
        g.bench_function(format!("fortify/{workers}w"), |b| {
            b.iter_custom(|iters| {
                let per_task = iters.div_ceil(64).max(1);
                let router = router.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..64)
                        .map(|_| {
                            let mut r = router.clone();
                            tokio::spawn(async move {
                                for i in 0..per_task {
                                    let out = r.ready().await.unwrap().call(i as u32).await;
                                    black_box(out.unwrap());
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    // Per call, as the other groups report.
                    start.elapsed() * iters as u32 / (per_task * 64) as u32
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, routing, contention);
criterion_main!(benches);
