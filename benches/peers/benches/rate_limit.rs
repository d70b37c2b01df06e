//! Rate limiter contention, side by side with `governor`: N threads share one limiter
//! (ours cloned, as a layer's services are; governor's in an `Arc`, as its docs
//! share it), each thread on its own current-thread tokio runtime sending calls as
//! users do, `ready().await` then `call(i).await`. The rate is so high that every
//! call is admitted (each row checks that none was refused), so the rows measure the
//! shared state under contention, not the refusals.
//!
//! For each row: throughput with 1 thread and with each N, the ratio N threads / 1
//! thread, and that ratio beside bare's (no limiter) from the same run: a limiter
//! that scales like bare shows `1.00x bare's`. Each figure is the median of 5 runs,
//! the thread counts alternating so a busy moment on the host does not favour one.
//! No yielding between calls.
//!
//! tower's `RateLimit` is not in the table: it cannot be shared. Its state (the
//! bucket) lives in the service value and its `Clone` is not implemented, so N
//! threads would need N limiters, each with its own quota, which is not the
//! comparison (behind a `Buffer` it would be shared, but then every call crosses a
//! channel to one task, which measures the buffer).
//!
//! ```sh
//! cargo bench -p tower-fortify-benches --bench rate_limit            # 1 and 2 threads
//! FORTIFY_BENCH_THREADS=1,2,4 cargo bench -p tower-fortify-benches --bench rate_limit
//! ```

// Benchmarks measure wall time: the ban on std::time::Instant is for library code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::future::{Ready, ready};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tower::{Layer, Service, ServiceExt};
use tower_fortify::rate_limit::RateLimitLayer;

mod common;
use common::Bare;

/// Calls per thread per run.
const CALLS: u64 = 400_000;
/// Runs per thread count; the median is reported.
const RUNS: usize = 5;

type Direct = governor::RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    governor::clock::MonotonicClock,
    governor::middleware::NoOpMiddleware<Instant>,
>;

type KeyedGov = governor::RateLimiter<
    u64,
    governor::state::keyed::DefaultKeyedStateStore<u64>,
    governor::clock::MonotonicClock,
    governor::middleware::NoOpMiddleware<Instant>,
>;

/// governor's direct limiter shared in an `Arc`, checked in `call` as users wire it.
#[derive(Clone)]
struct Governed(Arc<Direct>);

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
        match self.0.check() {
            Ok(()) => Bare.call(req),
            Err(_) => ready(Err(std::io::Error::other("rate limited"))),
        }
    }
}

/// governor's keyed limiter (its default store) shared in an `Arc`; the key is the
/// request modulo 8, as ours below.
#[derive(Clone)]
struct GovernedKeyed(Arc<KeyedGov>);

impl Service<u64> for GovernedKeyed {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    #[inline]
    fn call(&mut self, req: u64) -> Self::Future {
        match self.0.check_key(&(req % 8)) {
            Ok(()) => Bare.call(req),
            Err(_) => ready(Err(std::io::Error::other("rate limited"))),
        }
    }
}

fn governor_quota() -> governor::Quota {
    governor::Quota::per_second(NonZeroU32::MAX)
}

/// Calls per second with `threads` threads sharing clones of `svc`; panics if a call
/// was refused.
fn throughput<S>(svc: &S, threads: usize) -> f64
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let mut svc = svc.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let rt = common::runtime();
                start.wait();
                let began = Instant::now();
                let refused = rt.block_on(async {
                    let mut refused = 0u64;
                    for i in 0..CALLS {
                        let r = svc
                            .ready()
                            .await
                            .unwrap()
                            .call(black_box(i ^ (t as u64) << 40))
                            .await;
                        refused += u64::from(r.is_err());
                    }
                    refused
                });
                (began.elapsed(), refused)
            })
        })
        .collect();
    start.wait();
    let mut slowest = Duration::ZERO;
    for h in handles {
        let (elapsed, refused) = h.join().unwrap();
        assert_eq!(
            refused, 0,
            "a call was refused: the rate must admit every call"
        );
        slowest = slowest.max(elapsed);
    }
    (threads as u64 * CALLS) as f64 / slowest.as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median throughput at each thread count (the first is 1).
fn rates<S>(make: impl Fn() -> S, counts: &[usize]) -> Vec<f64>
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let svc = make();
    throughput(&svc, *counts.last().unwrap()); // warm up
    let mut runs = vec![Vec::new(); counts.len()];
    for _ in 0..RUNS {
        for (i, &n) in counts.iter().enumerate() {
            // A fresh limiter per run: the same state for every thread count.
            runs[i].push(throughput(&make(), n));
        }
    }
    runs.iter_mut().map(|r| median(r)).collect()
}

fn row<S>(name: &str, make: impl Fn() -> S, counts: &[usize], bare: Option<&[f64]>) -> Vec<f64>
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let r = rates(make, counts);
    let mut line = format!("contention {name:<28} 1 thread {:>7.2} M/s", r[0] / 1e6);
    for (i, &n) in counts.iter().enumerate().skip(1) {
        let ratio = r[i] / r[0];
        line += &format!("   {n} threads {:>7.2} M/s ratio {ratio:.2}", r[i] / 1e6);
        if let Some(b) = bare {
            line += &format!(" ({:.2}x bare's)", ratio / (b[i] / b[0]));
        }
    }
    println!("{line}");
    r
}

fn main() {
    let counts: Vec<usize> = std::env::var("FORTIFY_BENCH_THREADS")
        .ok()
        .map(|s| s.split(',').map(|n| n.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| vec![1, 2]);
    assert_eq!(counts.first(), Some(&1), "the thread counts start at 1");
    // `cargo bench` passes `--bench`; a filter that is not ours skips the table.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !(filters.is_empty() || filters.iter().any(|f| "contention".contains(f.as_str()))) {
        return;
    }
    println!(
        "{} calls per thread per run, median of {RUNS} runs, {} cores",
        CALLS,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let bare = row("bare", || Bare, &counts, None);
    let b = Some(bare.as_slice());
    row(
        "fortify",
        || RateLimitLayer::per_second(u32::MAX).unwrap().layer(Bare),
        &counts,
        b,
    );
    row(
        "governor_direct",
        || {
            Governed(Arc::new(governor::RateLimiter::direct_with_clock(
                governor_quota(),
                governor::clock::MonotonicClock,
            )))
        },
        &counts,
        b,
    );
    row(
        "fortify_keyed_8",
        || {
            RateLimitLayer::builder()
                .rate(u32::MAX, Duration::from_secs(1))
                .keyed(|r: &u64| *r % 8)
                .build()
                .unwrap()
                .layer(Bare)
        },
        &counts,
        b,
    );
    row(
        "governor_keyed_8",
        || {
            GovernedKeyed(Arc::new(governor::RateLimiter::dashmap_with_clock(
                governor_quota(),
                governor::clock::MonotonicClock,
            )))
        },
        &counts,
        b,
    );
}
