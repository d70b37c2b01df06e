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

use tower::{Service, ServiceExt};

mod setups;
use setups::Visit;

/// Calls made before the measured ones (fills windows, warms caches and lazy state).
const WARMUP: u64 = 300;
/// Measured calls: the runner compares `K` with `2K`.
const K: u64 = 2_000;
/// Allowed growth over bare before the check fails.
const TOLERANCE: f64 = 0.05;

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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Child mode: `--scenario NAME --calls N` runs one scenario (under callgrind).
    if let Some(i) = args.iter().position(|a| a == "--scenario") {
        let name = &args[i + 1];
        let n: u64 = args[i + 3].parse().unwrap();
        struct One<'a>(&'a str, u64, bool);
        impl Visit for One<'_> {
            fn visit<S, F>(&mut self, name: &'static str, trip: bool, make: F)
            where
                F: FnOnce() -> S,
                S: Service<u64> + 'static,
                S::Error: std::fmt::Debug,
            {
                if name == self.0 {
                    run(self.1, make, trip);
                    self.2 = true;
                }
            }
        }
        let mut one = One(name, n, false);
        setups::scenarios(&mut one);
        assert!(one.2, "no scenario {name}");
        return ExitCode::SUCCESS;
    }
    let bless = args.iter().any(|a| a == "--bless");
    let markdown = args.iter().any(|a| a == "--markdown");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let scenarios: Vec<&'static str> = setups::names()
        .into_iter()
        .filter(|s| *s == "bare" || filters.is_empty() || filters.iter().any(|f| s.contains(&***f)))
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
                    let one = callgrind(&exe, &dir, s, K);
                    let two = callgrind(&exe, &dir, s, 2 * K);
                    let per_call = (two as f64 - one as f64) / K as f64;
                    results.lock().unwrap().insert(*s, per_call);
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
    for &s in &scenarios {
        let per_call = results[s];
        let over = per_call - bare;
        if markdown {
            println!("| `{}` | {:.0} | {:+.0} |", s, per_call, over);
            continue;
        }
        let (base, change) = match baseline.figures.get(s) {
            Some(&b) if s != "bare" => {
                let change = if b.abs() < 1.0 { 0.0 } else { over / b - 1.0 };
                (format!("{b:+.0}"), format!("{:+.1}%", 100.0 * change))
            }
            _ => (String::new(), String::new()),
        };
        println!(
            "{:<44} {:>12.1} {:>+10.1} {:>10} {:>8}",
            s, per_call, over, base, change
        );
        if s.contains("fortify")
            && let Some(&b) = baseline.figures.get(s)
            // Half an instruction of slack for rounding in the file.
            && over > b * (1.0 + TOLERANCE) + 0.5
        {
            failed.push(format!(
                "{}: {over:+.1} instructions over bare, baseline {b:+.0} (+{:.1} %, limit {:.0} %)",
                s,
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
        for &s in &scenarios {
            merged.insert(s.to_string(), results[s] - bare);
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
