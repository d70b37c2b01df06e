//! The main demo: a disaster-recovery drill, three stacks side by side.
//!
//! ```text
//! cargo run --example drill                          # the default scenario (zone outage)
//! cargo run --example drill -- --list                # the built-in scenarios
//! cargo run --example drill -- --scenario brownout   # a built-in scenario by name
//! cargo run --example drill -- --scenario my.toml    # or a scenario file
//! cargo run --example drill -- --seed 7              # another seed
//! ```
//!
//! Each stack runs the same scenario with the same seed in paused time (three virtual
//! minutes take well under a second in release), then the demo prints a comparison
//! table and writes `drill-report.json` and `drill-report.svg`.
//!
//! To add a stack, write a function `fn(&Drill) -> Report` like the ones below and list
//! it in `STACKS`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tower::timeout::TimeoutLayer;
use tower::{Service, ServiceBuilder};
use tower_fortify::BoxError;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::budget::Budget;
use tower_fortify::drill::{
    Drill, DrillEnv, Report, Scenario, SimBackend, SimFuture, SimRequest, SimResponse,
    comparison_table, svg_chart,
};
use tower_fortify::retry::RetryLayer;

/// Runs a drill against one stack.
type RunStack = fn(&Drill) -> Report;

/// The stacks compared, in order: a name, what it adds, and how to run it.
const STACKS: &[(&str, &str, RunStack)] = &[
    (
        "no resilience",
        "round robin over every backend",
        no_resilience,
    ),
    (
        "retry only",
        "+ 3 attempts with jittered backoff, no budget",
        retry_only,
    ),
    (
        "recommended",
        "+ retry budget (20 %), 1 s deadline, 300 ms per-attempt timeout",
        recommended,
    ),
];

fn no_resilience(drill: &Drill) -> Report {
    drill.run(round_robin).expect("valid scenario")
}

fn retry_only(drill: &Drill) -> Report {
    drill
        .run(|env| {
            let retry = RetryLayer::builder()
                .max_attempts(3)
                .backoff(Backoff::exponential(Duration::from_millis(10)).jitter(Jitter::Full))
                .no_budget()
                .rng(env.rng())
                .build()
                .expect("valid retry configuration");
            ServiceBuilder::new().layer(retry).service(round_robin(env))
        })
        .expect("valid scenario")
}

fn recommended(drill: &Drill) -> Report {
    drill
        .run(|env| {
            let retry = RetryLayer::builder()
                .max_attempts(3)
                .backoff(
                    Backoff::exponential(Duration::from_millis(10))
                        .max_delay(Duration::from_millis(200))
                        .jitter(Jitter::Full),
                )
                .budget(Budget::default_ratio())
                .deadline(Duration::from_secs(1))
                .rng(env.rng())
                .build()
                .expect("valid retry configuration");
            // After the failover router, circuit breaker and bulkhead land, this stack
            // becomes: bulkhead -> retry -> failover(tiers, ejection) -> breaker -> timeout.
            ServiceBuilder::new()
                .layer(retry)
                .layer(TimeoutLayer::new(Duration::from_millis(300)))
                .service(round_robin(env))
        })
        .expect("valid scenario")
}

/// Plain round robin over every simulated backend (the demo's load balancer until the
/// failover router is available).
#[derive(Clone)]
struct RoundRobin {
    backends: Arc<[SimBackend]>,
    next: Arc<AtomicUsize>,
}

fn round_robin(env: &DrillEnv) -> RoundRobin {
    RoundRobin {
        backends: env.backends().into(),
        next: Arc::new(AtomicUsize::new(0)),
    }
}

impl Service<SimRequest> for RoundRobin {
    type Response = SimResponse;
    type Error = BoxError;
    type Future = SimFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: SimRequest) -> SimFuture {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len();
        self.backends[i].clone().call(req)
    }
}

fn usage() -> ! {
    eprintln!("usage: drill [--list] [--scenario NAME|FILE] [--seed N] [--real]");
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut scenario_arg = String::from(Scenario::builtin_names()[0]);
    let mut seed = 1u64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" => {
                for s in Scenario::builtins() {
                    println!("{:<16} {}", s.name(), s.description());
                }
                return;
            }
            "--scenario" => scenario_arg = args.next().unwrap_or_else(|| usage()),
            "--seed" => {
                seed = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| usage());
            }
            "--real" => {
                eprintln!("--real (drills over loopback sockets) is not available yet");
                std::process::exit(2);
            }
            _ => usage(),
        }
    }
    let scenario = match Scenario::builtin(&scenario_arg) {
        Some(s) => s,
        None => Scenario::load_file(&scenario_arg).unwrap_or_else(|e| {
            eprintln!("{e}");
            eprintln!(
                "(built-in scenarios: {})",
                Scenario::builtin_names().join(", ")
            );
            std::process::exit(1);
        }),
    };

    println!("scenario `{}`: {}", scenario.name(), scenario.description());
    println!("seed {seed}; every stack sees the same requests and the same faults\n");
    let mut reports = Vec::new();
    for (name, what, run) in STACKS {
        let drill = Drill::new(scenario.clone()).seed(seed).label(*name);
        let report = run(&drill);
        println!("{name:<14} {what}");
        reports.push(report);
    }
    println!();
    print!("{}", comparison_table(&reports));
    println!();
    for r in &reports {
        for f in &r.faults {
            println!(
                "{:<14} during `{}` on {}: {:.2} % of requests succeeded, {} s below {:.0} %",
                r.stack,
                f.phase,
                f.target(),
                f.availability * 100.0,
                f.impaired_s,
                r.threshold * 100.0
            );
        }
    }
    let json = serde_json_array(&reports);
    std::fs::write("drill-report.json", json).expect("write drill-report.json");
    std::fs::write("drill-report.svg", svg_chart(&reports)).expect("write drill-report.svg");
    println!("\nwrote drill-report.json and drill-report.svg");
}

/// The reports as one JSON array.
fn serde_json_array(reports: &[Report]) -> String {
    let parts: Vec<String> = reports.iter().map(Report::to_json).collect();
    format!("[\n{}\n]\n", parts.join(",\n"))
}
