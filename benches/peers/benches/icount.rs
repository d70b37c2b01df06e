//! Instructions per call, counted by callgrind: each layer and the recommended stack
//! beside tower's middleware, tower-resilience and failsafe.
//!
//! Instruction counts do not depend on how busy the machine is, so they are the figure
//! a regression check can hold to. Each scenario builds its service inside a
//! current-thread tokio runtime and calls it the way users do (`ready().await`, then
//! `call(..).await`), `WARMUP` times and then `n` times. The runner executes every
//! scenario twice under `valgrind --tool=callgrind`, with `n = K` and `n = 2K`: the
//! difference divided by `K` is the cost of one call, with the setup, the warm-up and
//! the teardown cancelled out. "Over bare" subtracts the same loop around a service
//! that answers at once.
//!
//! ```sh
//! cargo bench -p tower-fortify-benches --bench icount                 # table + check against the baseline
//! cargo bench -p tower-fortify-benches --bench icount -- --bless      # rewrite the baseline
//! cargo bench -p tower-fortify-benches --bench icount -- retry/       # only scenarios whose name contains "retry/"
//! cargo bench -p tower-fortify-benches --bench icount -- --markdown   # the table as Markdown
//! ```
//!
//! The check fails (exit status 1) when any of our scenarios (`fortify` in the name)
//! costs more than 5 % over bare above its figure in `icount-baseline.txt`. Peers are
//! measured and shown, never checked. Counts move with the compiler: the baseline
//! records the `rustc` it was made with, and a different one is reported beside a
//! failure (re-bless after a toolchain upgrade, in its own commit).

// Benchmarks may use the standard clock and processes: the bans are for library code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tower::{Layer, Service, ServiceExt};

mod setups;
use setups::Bare;

/// Calls made before the measured ones (fills windows, warms caches and lazy state).
const WARMUP: u64 = 300;
/// Measured calls: the runner compares `K` with `2K`.
const K: u64 = 2_000;
/// Allowed growth over bare before the check fails.
const TOLERANCE: f64 = 0.05;
/// Open time of the breakers: longer than any run.
const HOUR: Duration = Duration::from_secs(3600);

/// Builds the service (inside the runtime: some layers need its timer), runs `prep`
/// on it (to trip a breaker), then `WARMUP + n` calls as users make them.
fn run<S, F>(n: u64, make: F, trip: bool)
where
    F: FnOnce() -> S,
    S: Service<u64>,
    S::Error: std::fmt::Debug,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut svc = make();
        if trip {
            let _ = svc.ready().await.unwrap().call(u64::MAX).await;
            let r = svc.ready().await.unwrap().call(1).await;
            assert!(r.is_err(), "the breaker did not open");
        }
        for i in 0..WARMUP + n {
            let r = svc.ready().await.unwrap().call(black_box(i)).await;
            black_box(r.is_ok());
        }
    });
}

/// One scenario: its name (`group/subject`) and what it runs for `n` calls.
pub struct Scenario {
    pub name: &'static str,
    pub run: fn(u64),
}

macro_rules! scenarios {
    ($($name:literal => $make:expr),* $(,)?) => {
        vec![$(Scenario { name: $name, run: |n| run(n, || $make, false) }),*]
    };
}

macro_rules! open_scenarios {
    ($($name:literal => $make:expr),* $(,)?) => {
        vec![$(Scenario { name: $name, run: |n| run(n, || $make, true) }),*]
    };
}

fn all() -> Vec<Scenario> {
    use tower_fortify::bulkhead::BulkheadLayer;
    use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    use tower_fortify::timeout::{DeadlineLayer, TimeoutLayer};

    let mut v = scenarios! {
        "bare" => Bare,

        "retry/fortify_ratio_budget_jitter" => setups::fortify_retry().layer(Bare),
        "retry/fortify_token_bucket_jitter" => setups::fortify_retry_token_bucket().layer(Bare),
        "retry/tower_tps_budget" => tower::retry::Retry::new(setups::tower_budgeted(), Bare),
        "retry/tower_resilience_budget" => setups::resilience_retry().layer(Bare),

        "breaker/fortify_consecutive" => setups::fortify_consecutive(5, HOUR).layer(Bare),
        "breaker/fortify_count_window" => CircuitBreakerLayer::builder().count_window(100).build().unwrap().layer(Bare),
        "breaker/fortify_time_window" => CircuitBreakerLayer::builder()
            .no_count_window()
            .time_window(Duration::from_secs(10))
            .build()
            .unwrap()
            .layer(Bare),
        "breaker/fortify_default" => CircuitBreakerLayer::builder().build().unwrap().layer(Bare),
        "breaker/fortify_keyed_8_keys" => CircuitBreakerLayer::builder()
            .keyed(|x: &u64| x % 8)
            .build()
            .unwrap()
            .layer(Bare),
        "breaker/failsafe_consecutive" => setups::failsafe_consecutive(5, HOUR, Bare),
        "breaker/failsafe_default" => setups::failsafe_default(Bare),
        "breaker/tower_resilience_count" => setups::resilience_breaker_count(Bare),
        "breaker/tower_resilience_consecutive" => setups::resilience_breaker_consecutive(5, HOUR, Bare),

        "bulkhead/fortify_fixed" => BulkheadLayer::new(1000).unwrap().layer(Bare),
        "bulkhead/fortify_adaptive_aimd" => setups::fortify_adaptive(1000).layer(Bare),
        "bulkhead/fortify_keyed_8_keys" => setups::fortify_keyed_bulkhead(1000, 8).layer(Bare),
        "bulkhead/tower_concurrency_limit" => tower::limit::ConcurrencyLimitLayer::new(1000).layer(Bare),
        "bulkhead/tower_resilience" => setups::resilience_bulkhead(1000).layer(Bare),
        "bulkhead/tower_resilience_adaptive_aimd" => setups::resilience_adaptive(1000).layer(Bare),

        "failover_3/fortify" => setups::fortify_failover(3, Bare),
        "failover_3/tower_p2c" => setups::tower_p2c(3),
        "failover_3/tower_resilience_router" => setups::resilience_router(3, Bare),

        "timeout/fortify_attempt" => TimeoutLayer::try_new(Duration::from_secs(2)).unwrap().layer(Bare),
        "timeout/fortify_deadline" => DeadlineLayer::try_new(Duration::from_secs(5)).unwrap().layer(Bare),
        "timeout/tower" => tower::timeout::TimeoutLayer::new(Duration::from_secs(2)).layer(Bare),

        "rate_limit/fortify" => tower_fortify::rate_limit::RateLimitLayer::per_second(1_000_000_000).unwrap().layer(Bare),
        "chaos/fortify_off" => setups::fortify_chaos_off().layer(Bare),

        "stack/fortify_recommended_3_backends" => setups::recommended_stack(3),
        "stack/fortify_recommended_1_backend" => setups::recommended_stack(1),
    };
    v.extend(open_scenarios! {
        "breaker_open/fortify" => setups::fortify_consecutive(1, HOUR).layer(Bare),
        "breaker_open/failsafe_consecutive" => setups::failsafe_consecutive(1, HOUR, Bare),
        "breaker_open/tower_resilience_consecutive" => setups::resilience_breaker_consecutive(1, HOUR, Bare),
    });
    v
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Child mode: `--scenario NAME --calls N` runs one scenario (under callgrind).
    if let Some(i) = args.iter().position(|a| a == "--scenario") {
        let name = &args[i + 1];
        let n: u64 = args[i + 3].parse().unwrap();
        let s = all()
            .into_iter()
            .find(|s| s.name == name)
            .expect("scenario");
        (s.run)(n);
        return ExitCode::SUCCESS;
    }
    let bless = args.iter().any(|a| a == "--bless");
    let markdown = args.iter().any(|a| a == "--markdown");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let scenarios: Vec<Scenario> = all()
        .into_iter()
        .filter(|s| {
            s.name == "bare" || filters.is_empty() || filters.iter().any(|f| s.name.contains(&***f))
        })
        .collect();

    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("icount: valgrind is not installed (apt-get install valgrind)");
        return ExitCode::FAILURE;
    }
    let dir = std::env::temp_dir().join(format!("icount-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();

    // Two scenarios at a time (one per core); each is two callgrind runs.
    let next = AtomicUsize::new(0);
    let results = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(s) = scenarios.get(i) else { break };
                    let one = callgrind(&exe, &dir, s.name, K);
                    let two = callgrind(&exe, &dir, s.name, 2 * K);
                    let per_call = (two as f64 - one as f64) / K as f64;
                    results.lock().unwrap().insert(s.name, per_call);
                }
            });
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    let results = results.into_inner().unwrap();
    let bare = results["bare"];
    let rustc = rustc_version();

    let baseline_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("icount-baseline.txt");
    let baseline = read_baseline(&baseline_path);

    if markdown {
        println!("| scenario | instructions / call | over bare |");
        println!("|---|---:|---:|");
    } else {
        println!(
            "{:<44} {:>12} {:>10} {:>10} {:>8}",
            "scenario", "instr/call", "over bare", "baseline", "change"
        );
    }
    let mut failed = Vec::new();
    for s in &scenarios {
        let per_call = results[s.name];
        let over = per_call - bare;
        if markdown {
            println!("| `{}` | {:.0} | {:+.0} |", s.name, per_call, over);
            continue;
        }
        let (base, change) = match baseline.figures.get(s.name) {
            Some(&b) if s.name != "bare" => {
                let change = if b.abs() < 1.0 { 0.0 } else { over / b - 1.0 };
                (format!("{b:+.0}"), format!("{:+.1}%", 100.0 * change))
            }
            _ => (String::new(), String::new()),
        };
        println!(
            "{:<44} {:>12.1} {:>+10.1} {:>10} {:>8}",
            s.name, per_call, over, base, change
        );
        if s.name.contains("fortify")
            && let Some(&b) = baseline.figures.get(s.name)
            // Half an instruction of slack for rounding in the file.
            && over > b * (1.0 + TOLERANCE) + 0.5
        {
            failed.push(format!(
                "{}: {over:+.1} instructions over bare, baseline {b:+.0} (+{:.1} %, limit {:.0} %)",
                s.name,
                100.0 * (over / b - 1.0),
                100.0 * TOLERANCE
            ));
        }
    }
    println!("(bare: {bare:.1} instructions per ready().await + call().await; {rustc})");

    if bless {
        let mut text = format!(
            "# Instructions per call over bare, callgrind, from\n\
             # `cargo bench -p tower-fortify-benches --bench icount -- --bless`.\n\
             # bare = {bare:.1} instructions per call\n\
             # rustc: {rustc}\n"
        );
        let mut merged = baseline.figures.clone();
        for s in &scenarios {
            merged.insert(s.name.to_string(), results[s.name] - bare);
        }
        merged.remove("bare");
        for (name, over) in &merged {
            text.push_str(&format!("{name} {over:.0}\n"));
        }
        std::fs::write(&baseline_path, text).unwrap();
        println!("wrote {}", baseline_path.display());
        return ExitCode::SUCCESS;
    }
    if !failed.is_empty() {
        eprintln!(
            "\ninstruction-count regressions over {:.0} %:",
            100.0 * TOLERANCE
        );
        for f in &failed {
            eprintln!("  {f}");
        }
        if baseline.rustc.as_deref() != Some(rustc.as_str()) {
            eprintln!(
                "  (the baseline was made with {}; this is {rustc}: re-bless after a toolchain upgrade)",
                baseline.rustc.as_deref().unwrap_or("an unknown rustc")
            );
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Total instructions of one run of `scenario` with `n` calls.
fn callgrind(exe: &Path, dir: &Path, scenario: &str, n: u64) -> u64 {
    let out: PathBuf = dir.join(format!("{}.{n}.out", scenario.replace('/', "_")));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(format!("--log-file={}.log", out.display()))
        .arg(exe)
        .args(["--scenario", scenario, "--calls", &n.to_string()])
        .status()
        .expect("valgrind");
    assert!(status.success(), "{scenario}: callgrind run failed");
    let text = std::fs::read_to_string(&out).unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("callgrind summary")
}

fn rustc_version() -> String {
    Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "rustc unknown".into())
}

struct Baseline {
    figures: BTreeMap<String, f64>,
    rustc: Option<String>,
}

fn read_baseline(path: &Path) -> Baseline {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut figures = BTreeMap::new();
    let mut rustc = None;
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("# rustc: ") {
            rustc = Some(r.trim().to_string());
        } else if let Some((name, v)) = line.split_once(' ')
            && !line.starts_with('#')
            && let Ok(v) = v.trim().parse()
        {
            figures.insert(name.to_string(), v);
        }
    }
    Baseline { figures, rustc }
}
