//! Retry: success-path cost per call, failure path, and contention, side by side with
//! tower's `Retry` and tower-resilience's retry.
//!
//! Run: `cargo bench -p tower-fortify-benches --bench retry`.

use std::future::Ready;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tower::retry::budget::{Budget as _, TpsBudget};
use tower::retry::{Policy, Retry as TowerRetry};
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::budget::Budget;
use tower_fortify::retry::RetryLayer;
use tower_layer::Layer;

mod common;
use common::{Bare, Failing, contention};

/// tower policy that never retries (but clones the request, as a retrying one must).
#[derive(Clone)]
struct NeverRetry;

impl<Req: Clone, Res, E> Policy<Req, Res, E> for NeverRetry {
    type Future = Ready<()>;
    fn retry(&mut self, _: &mut Req, _: &mut Result<Res, E>) -> Option<Self::Future> {
        None
    }
    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// tower policy with a `TpsBudget`: deposit on success, withdraw to retry.
#[derive(Clone)]
struct Budgeted {
    budget: std::sync::Arc<TpsBudget>,
    attempts: u32,
}

impl<Req: Clone, Res, E> Policy<Req, Res, E> for Budgeted {
    type Future = Ready<()>;
    fn retry(&mut self, _: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(_) if self.attempts > 1 && self.budget.withdraw() => {
                self.attempts -= 1;
                Some(std::future::ready(()))
            }
            Err(_) => None,
        }
    }
    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// tower policy for the failure path: up to 3 attempts, no budget, no delay.
#[derive(Clone)]
struct Attempts(u32);

impl<Req: Clone, Res, E> Policy<Req, Res, E> for Attempts {
    type Future = Ready<()>;
    fn retry(&mut self, _: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Err(_) if self.0 > 1 => {
                self.0 -= 1;
                Some(std::future::ready(()))
            }
            _ => None,
        }
    }
    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

fn tower_budgeted() -> Budgeted {
    Budgeted {
        budget: std::sync::Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
        attempts: 3,
    }
}

fn ours() -> RetryLayer {
    RetryLayer::builder()
        .max_attempts(3)
        .backoff(
            Backoff::exponential(Duration::from_millis(10))
                .max_delay(Duration::from_secs(1))
                .jitter(Jitter::Full),
        )
        .budget(Budget::ratio(Duration::from_secs(10), 10, 0.2).unwrap())
        .build()
        .unwrap()
}

fn ours_token_bucket() -> RetryLayer {
    RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::exponential(Duration::from_millis(10)).jitter(Jitter::Full))
        .budget(Budget::token_bucket(100.0, 0.1).unwrap())
        .build()
        .unwrap()
}

fn resilience_layer() -> tower_resilience::retry::RetryLayer<u64, u64, std::io::Error> {
    let budget = tower_resilience::retry::RetryBudgetBuilder::new()
        .token_bucket()
        .build()
        .unwrap();
    tower_resilience::retry::RetryLayer::<u64, u64, std::io::Error>::builder()
        .max_attempts(3)
        .exponential_backoff(Duration::from_millis(10))
        .budget(budget)
        .build()
}

fn success_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("retry/success");
    g.measurement_time(Duration::from_secs(2));
    g.warm_up_time(Duration::from_millis(500));

    let mut bare = Bare;
    g.bench_function("bare", |b| common::calls(b, &rt, &mut bare));

    let mut never = TowerRetry::new(NeverRetry, Bare);
    g.bench_function("tower_never_retry", |b| common::calls(b, &rt, &mut never));

    let mut tps = TowerRetry::new(tower_budgeted(), Bare);
    g.bench_function("tower_tps_budget", |b| common::calls(b, &rt, &mut tps));

    let mut res = resilience_layer().layer(Bare);
    g.bench_function("tower_resilience_budget", |b| {
        common::calls(b, &rt, &mut res)
    });

    let mut fortify = ours().layer(Bare);
    g.bench_function("fortify_ratio_budget_jitter", |b| {
        common::calls(b, &rt, &mut fortify)
    });

    let mut fortify_tb = ours_token_bucket().layer(Bare);
    g.bench_function("fortify_token_bucket_jitter", |b| {
        common::calls(b, &rt, &mut fortify_tb)
    });
    g.finish();
}

fn failure_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("retry/failure_3_attempts");
    g.measurement_time(Duration::from_secs(2));
    g.warm_up_time(Duration::from_millis(500));

    let mut tower = TowerRetry::new(Attempts(3), Failing);
    g.bench_function("tower", |b| common::calls(b, &rt, &mut tower));

    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::ZERO))
        .no_budget()
        .build()
        .unwrap();
    let mut fortify = layer.layer(Failing);
    g.bench_function("fortify", |b| common::calls(b, &rt, &mut fortify));
    g.finish();
}

fn contended(c: &mut Criterion) {
    const TASKS: usize = 64;
    let mut g = c.benchmark_group("retry/contention_64_tasks");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Elements(TASKS as u64));
    for workers in [1usize, 2] {
        let tower = TowerRetry::new(tower_budgeted(), Bare);
        g.bench_function(format!("tower_tps_budget/{workers}w"), |b| {
            b.iter_custom(|iters| contention(tower.clone(), workers, TASKS, iters))
        });
        let fortify = ours().layer(Bare);
        g.bench_function(format!("fortify/{workers}w"), |b| {
            b.iter_custom(|iters| contention(fortify.clone(), workers, TASKS, iters))
        });
    }
    g.finish();
}

criterion_group!(benches, success_path, failure_path, contended);
criterion_main!(benches);
