//! Helpers shared by the criterion suites: a bare service, timed calls as users make
//! them, and the contention table.

#![allow(dead_code)]
// Benchmarks measure wall time: the ban on std::time::Instant is for library code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::Bencher;
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};

/// The cheapest possible service: answers at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bare;

impl Service<u64> for Bare {
    type Response = u64;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<u64, std::io::Error>>;
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    #[inline]
    fn call(&mut self, req: u64) -> Self::Future {
        std::future::ready(Ok(req.wrapping_add(1)))
    }
}

/// Always fails at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct Failing;

impl Service<u64> for Failing {
    type Response = u64;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<u64, std::io::Error>>;
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    #[inline]
    fn call(&mut self, _: u64) -> Self::Future {
        std::future::ready(Err(std::io::Error::other("down")))
    }
}

/// A current-thread runtime with time and I/O, as a client task runs on.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Times `iters` calls on `rt`, each `ready().await` then `call(i).await`, as users
/// call a service. The result (success or error) is only looked at.
pub fn calls<S>(b: &mut Bencher<'_>, rt: &Runtime, svc: &mut S)
where
    S: Service<u64>,
    S::Error: std::fmt::Debug,
{
    b.iter_custom(|iters| {
        rt.block_on(async {
            let start = Instant::now();
            for i in 0..iters {
                let r = svc.ready().await.unwrap().call(black_box(i)).await;
                black_box(r.is_ok());
            }
            start.elapsed()
        })
    });
}

/// Runs `tasks` tasks on a multi-thread runtime with `workers` workers, each sending
/// `calls` requests through its own clone of `svc` (no yielding between calls beyond
/// what the service does); returns the wall time.
pub fn contention<S>(svc: S, workers: usize, tasks: usize, calls: u64) -> Duration
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + std::fmt::Debug,
    S::Response: Send,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for t in 0..tasks {
            let mut svc = svc.clone();
            set.spawn(async move {
                for i in 0..calls {
                    let r = svc.ready().await.unwrap().call(i ^ t as u64).await;
                    black_box(r.is_ok());
                }
            });
        }
        while set.join_next().await.is_some() {}
        start.elapsed()
    })
}

/// Runs of each worker count in [`scaling`]; the median is reported.
pub const RUNS: usize = 5;

/// Throughput of 64 tasks sharing `make()` on 1 and on 2 worker threads: the median
/// of [`RUNS`] runs each, the two worker counts alternating so that a busy moment on
/// the host does not favour one. Prints a row (with the ratio relative to `bare`'s
/// ratio from the same run, when given) and returns the ratio 2 workers / 1 worker.
pub fn scaling<S>(name: &str, make: impl Fn() -> S, bare: Option<f64>) -> f64
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug + Send,
    S::Response: Send,
{
    const TASKS: usize = 64;
    let calls = 5_000u64;
    let rate = |workers| {
        let t = contention(make(), workers, TASKS, calls);
        (TASKS as u64 * calls) as f64 / t.as_secs_f64()
    };
    rate(2); // warm up
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        one.push(rate(1));
        two.push(rate(2));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (one, two) = (median(&mut one), median(&mut two));
    let ratio = two / one;
    let relative = bare.map_or(String::new(), |b| format!("   {:.2}x bare's", ratio / b));
    println!(
        "scaling {name:<40} 1 worker {:>7.2} M calls/s   2 workers {:>7.2} M calls/s   ratio {ratio:.2}{relative}",
        one / 1e6,
        two / 1e6,
    );
    ratio
}
