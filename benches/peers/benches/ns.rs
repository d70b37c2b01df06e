//! Nanoseconds per call for every scenario of the instruction-count suite (same
//! services, same names, see `setups`), and the contention table: 64 tasks sharing
//! one layer on 1 then 2 worker threads, bare's own scaling beside each.
//!
//! Every call is `ready().await` then `call(i).await` on a current-thread tokio
//! runtime, as users call. Criterion reports the median of its samples; the
//! contention rows are the median of 5 runs per worker count, alternating.
//!
//! ```sh
//! cargo bench -p tower-fortify-benches --bench ns               # everything
//! cargo bench -p tower-fortify-benches --bench ns -- retry/     # criterion filter
//! cargo bench -p tower-fortify-benches --bench ns -- scaling    # only the contention table
//! ```

use std::time::Duration;

use criterion::Criterion;
use tower::Service;

mod common;
mod setups;
use setups::Visit;

struct Ns<'a> {
    c: &'a mut Criterion,
    rt: tokio::runtime::Runtime,
}

impl Visit for Ns<'_> {
    fn visit<S, F>(&mut self, name: &'static str, trip: bool, make: F)
    where
        F: FnOnce() -> S,
        S: Service<u64> + 'static,
        S::Error: std::fmt::Debug,
    {
        let mut svc = {
            let _rt = self.rt.enter();
            make()
        };
        if trip {
            use tower::ServiceExt;
            self.rt.block_on(async {
                let _ = svc.ready().await.unwrap().call(u64::MAX).await;
                let r = svc.ready().await.unwrap().call(1).await;
                assert!(r.is_err(), "{name}: the breaker did not open");
            });
        }
        let rt = &self.rt;
        self.c
            .bench_function(name, |b| common::calls(b, rt, &mut svc));
    }
}

fn per_call(c: &mut Criterion) {
    let mut ns = Ns {
        c,
        rt: common::runtime(),
    };
    setups::scenarios(&mut ns);
}

fn scaling() {
    use common::scaling;
    use setups::*;
    use tower::Layer;
    use tower_fortify::bulkhead::BulkheadLayer;
    println!();
    let bare = scaling("bare", || Bare, None);
    let b = Some(bare);
    scaling(
        "retry/fortify_ratio_budget_jitter",
        || fortify_retry().layer(Bare),
        b,
    );
    scaling(
        "retry/tower_tps_budget",
        || tower::retry::Retry::new(tower_budgeted(), Bare),
        b,
    );
    scaling(
        "breaker/fortify_consecutive",
        || fortify_consecutive(5, HOUR).layer(Bare),
        b,
    );
    scaling(
        "breaker/fortify_default",
        || {
            tower_fortify::circuit_breaker::CircuitBreakerLayer::builder()
                .build()
                .unwrap()
                .layer(Bare)
        },
        b,
    );
    scaling(
        "breaker/failsafe_consecutive",
        || failsafe_consecutive(5, HOUR, Bare),
        b,
    );
    scaling(
        "breaker/tower_resilience_count",
        || resilience_breaker_count(Bare),
        b,
    );
    scaling(
        "bulkhead/fortify_fixed",
        || BulkheadLayer::new(1000).unwrap().layer(Bare),
        b,
    );
    scaling(
        "bulkhead/fortify_adaptive_aimd",
        || fortify_adaptive(1000).layer(Bare),
        b,
    );
    scaling(
        "bulkhead/tower_concurrency_limit",
        || tower::limit::ConcurrencyLimitLayer::new(1000).layer(Bare),
        b,
    );
    scaling(
        "bulkhead/tower_resilience",
        || resilience_bulkhead(1000).layer(Bare),
        b,
    );
    scaling("failover_3/fortify", || fortify_failover(3, Bare), b);
    scaling(
        "stack/fortify_recommended_3_backends",
        || recommended_stack(3),
        b,
    );
}

/// The README's table: each scenario's median ns (criterion's estimates, this run)
/// beside its instructions over bare (the committed `icount-baseline.txt`).
fn summary() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let median = |name: &str| -> Option<f64> {
        let path = target
            .join("criterion")
            .join(name.replace('/', "_"))
            .join("new/estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let rest = &text[text.find("\"median\"")?..];
        let rest = &rest[rest.find("\"point_estimate\":")? + 17..];
        rest[..rest.find([',', '}'])?].trim().parse().ok()
    };
    let baseline = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("icount-baseline.txt"),
    )
    .unwrap_or_default();
    let instructions = |name: &str| {
        baseline.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    let Some(bare) = median("bare") else { return };
    println!("\n| scenario | instructions over bare | ns (median) | ns over bare |");
    println!("|---|---:|---:|---:|");
    for name in setups::names() {
        let Some(ns) = median(name) else { continue };
        let instr = instructions(name).map_or("".into(), |i| format!("{i:+.0}"));
        println!("| `{name}` | {instr} | {ns:.1} | {:+.1} |", ns - bare);
    }
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let only_scaling = filters.iter().any(|f| f == "scaling");
    if !only_scaling {
        let mut c = Criterion::default()
            .sample_size(30)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .configure_from_args();
        per_call(&mut c);
        c.final_summary();
        if filters.is_empty() {
            summary();
        }
    }
    if filters.is_empty() || only_scaling {
        scaling();
    }
}
