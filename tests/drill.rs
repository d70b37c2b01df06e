//! The drill harness: built-in scenarios against the recommended stack with
//! documented thresholds, reproducibility, scenario files, assertion helpers and the
//! simulated backends.
//!
//! # Thresholds
//!
//! The stack under test is the one-call [`Stack`](tower_fortify::stack::Stack) with
//! its defaults (`tests/support/recommended.rs`): bulkhead, budgeted retry, failover
//! router, a circuit breaker and an attempt timeout per backend, under an overall
//! deadline. Nothing is tuned per scenario; the only setting is the simulated
//! protocol's classifier ([`SimClassifier`](tower_fortify::drill::SimClassifier)), as
//! an HTTP stack has `HttpClassifier`. Each threshold is checked with three seeds
//! and documented on its test.

#![cfg(all(feature = "drill", feature = "stack"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tower::timeout::TimeoutLayer;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_fortify::BoxError;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::budget::Budget;
use tower_fortify::chaos::Latency;
use tower_fortify::drill::{
    BackendSpec, Drill, DrillEnv, FaultReport, Load, Phase, Report, Scenario, SimBackend, SimError,
    SimErrorKind, SimFuture, SimRequest, SimResponse, svg_chart,
};
use tower_fortify::observe::CircuitBreakerEvent;
use tower_fortify::observe::{Event, RetryEvent, SkipReason};
use tower_fortify::retry::RetryLayer;
use tower_fortify::rng::Rng;

/// Round robin over every backend.
#[derive(Clone)]
struct RoundRobin {
    backends: Arc<[SimBackend]>,
    next: Arc<AtomicUsize>,
}

fn round_robin(env: &DrillEnv) -> RoundRobin {
    RoundRobin {
        backends: env.backends().into(),
        next: Arc::default(),
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

#[path = "support/recommended.rs"]
mod recommended;
use recommended::{hedging_stack, recommended_stack};

fn states(source: &str, event: &Event) -> Option<(String, String)> {
    match event {
        Event::CircuitBreaker(CircuitBreakerEvent::StateChanged { to, .. }) => {
            Some((format!("{source} breaker"), to.as_str().to_string()))
        }
        _ => None,
    }
}

/// The recommended stack: bulkhead -> budgeted retry -> failover by tier
/// (attempt-aware, outlier ejection) -> per-backend breaker -> per-attempt timeout.
fn recommended(drill: &Drill) -> Report {
    drill
        .clone()
        .states(states)
        .run(|env| recommended_stack(env, true))
        .unwrap()
}

/// Retry with a budget over per-attempt timeouts and plain round robin: no breaker.
fn budgeted_retry(drill: &Drill) -> Report {
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
                .unwrap();
            ServiceBuilder::new()
                .layer(retry)
                .layer(TimeoutLayer::new(Duration::from_millis(300)))
                .service(round_robin(env))
        })
        .unwrap()
}

/// The seeds every threshold is checked with.
const SEEDS: [u64; 3] = [1, 2, 3];

/// A built-in scenario at half its length and half its rate, to keep the suite fast
/// (the overload scenario keeps its rate, or it would not overload).
fn builtin(name: &str) -> Drill {
    let rate = if name == "overload" { 1.0 } else { 0.5 };
    Drill::new(Scenario::builtin(name).unwrap().scaled(0.5, rate)).label("recommended")
}

/// The report of `drill` with each of [`SEEDS`].
fn each_seed(drill: Drill) -> Vec<Report> {
    SEEDS
        .iter()
        .map(|&seed| {
            let r = recommended(&drill.clone().seed(seed));
            println!("{r}");
            r
        })
        .collect()
}

fn check(report: &Report, availability: f64, amplification: f64) {
    report.assert_availability_at_least(availability).unwrap();
    report.assert_amplification_at_most(amplification).unwrap();
}

/// The one fault of a report.
fn fault(report: &Report) -> &FaultReport {
    assert_eq!(report.faults.len(), 1, "{:?}", report.faults);
    &report.faults[0]
}

/// Backend attempts per request over seconds `from..to`.
fn attempts_per_request(report: &Report, from: usize, to: usize) -> f64 {
    let seconds = &report.timeline[from..to];
    let sent: u64 = seconds.iter().map(|s| s.sent).sum();
    let attempts: u64 = seconds.iter().map(|s| s.attempts.iter().sum::<u64>()).sum();
    attempts as f64 / sent as f64
}

/// Backend `b`'s share of the attempts in second `t`.
fn share(report: &Report, b: usize, t: usize) -> f64 {
    let s = &report.timeline[t];
    s.attempts[b] as f64 / s.attempts.iter().sum::<u64>().max(1) as f64
}

/// How soon a backend that came back gets its traffic back: half its share before
/// the fault, in a second with at least 99.9 % availability (the report's
/// `recovered_after_s`). The breaker's open time (1 s) is the longest it waits.
const TRAFFIC_BACK_WITHIN: Duration = Duration::from_secs(2);

/// The unhedged recommended stack and the hedging preset on a tail scenario, with
/// `seed`.
fn hedged_and_not(name: &str, seed: u64) -> (Report, Report) {
    let drill = Drill::new(Scenario::builtin(name).unwrap()).seed(seed);
    let plain = drill
        .clone()
        .label("recommended")
        .run(|env| recommended_stack(env, false))
        .unwrap();
    let hedged = drill.label("hedging").run(hedging_stack).unwrap();
    println!(
        "{}",
        tower_fortify::drill::comparison_table(&[plain.clone(), hedged.clone()])
    );
    (plain, hedged)
}

/// Tail latency everywhere (each of three backends answers 2 % of its calls 50 times
/// slower; nothing fails): the hedging preset cuts p99.9 to at most a fifth of the
/// unhedged stack's, for at most 5 % extra load. The full scenario (one minute at
/// 1,000 requests per second), so that p99.9 rests on 60 requests.
#[test]
fn tail_everywhere_hedging_cuts_p999_fivefold() {
    for seed in SEEDS {
        let (plain, hedged) = hedged_and_not("tail-everywhere", seed);
        assert!(
            hedged.latency_ms.p999 <= plain.latency_ms.p999 / 5.0,
            "seed {seed}: p99.9 {} ms hedged vs {} ms unhedged",
            hedged.latency_ms.p999,
            plain.latency_ms.p999
        );
        hedged.assert_amplification_at_most(1.05).unwrap();
        hedged.assert_availability_at_least(0.999).unwrap();
    }
}

/// Tail latency on one of three backends: the unhedged stack's peak-EWMA router
/// already sends that backend under 10 % of the traffic (its mean latency doubled),
/// so its p99.9 stays near the healthy backends'. Hedging must not make it worse and
/// stays within 5 % extra load; a fivefold cut is not there to be had.
#[test]
fn tail_on_one_backend_routing_hides_it_and_hedging_does_no_harm() {
    for seed in SEEDS {
        let (plain, hedged) = hedged_and_not("tail-latency", seed);
        assert!(plain.backends[0].share < 0.1, "{:?}", plain.backends);
        assert!(
            hedged.latency_ms.p999 <= plain.latency_ms.p999 * 1.05,
            "seed {seed}: p99.9 {} ms hedged vs {} ms unhedged",
            hedged.latency_ms.p999,
            plain.latency_ms.p999
        );
        hedged.assert_amplification_at_most(1.05).unwrap();
    }
}

/// Zone outage (the primary tier down for a third of the drill): at least 99.95 %
/// served by the other tier, the zone loses its traffic within 2 s and gets it back
/// within [`TRAFFIC_BACK_WITHIN`] of recovering, at most 5 % extra load.
#[test]
fn zone_outage() {
    for r in each_seed(builtin("zone-outage")) {
        check(&r, 0.9995, 1.05);
        r.assert_detected_within(Duration::from_secs(2)).unwrap();
        r.assert_recovered_within(TRAFFIC_BACK_WITHIN).unwrap();
    }
}

/// Single backend outage: at least 99.95 % served, the backend loses its traffic
/// within 2 s and gets it back within [`TRAFFIC_BACK_WITHIN`], at most 5 % extra load.
#[test]
fn single_backend_outage() {
    for r in each_seed(builtin("backend-outage")) {
        check(&r, 0.9995, 1.05);
        r.assert_detected_within(Duration::from_secs(2)).unwrap();
        r.assert_recovered_within(TRAFFIC_BACK_WITHIN).unwrap();
    }
}

/// Brownout (30 % errors on one backend): retries to the other backends absorb it,
/// at least 99.99 % served, p99 unchanged.
#[test]
fn brownout() {
    for r in each_seed(builtin("brownout")) {
        check(&r, 0.9999, 1.05);
        r.assert_p99_at_most(Duration::from_millis(150)).unwrap();
    }
}

/// Latency spike (one backend 20 times slower): the latency-aware selection moves
/// its traffic away. The p99 of the requests sent during the fault is at most twice
/// the healthy p99; from 2 s into the fault the slow backend gets under 10 % of the
/// calls; it has its traffic back within 5 s of being fast again.
#[test]
fn latency_spike_moves_traffic_away_and_back() {
    for r in each_seed(builtin("latency-spike")) {
        check(&r, 0.999, 1.05);
        let f = fault(&r);
        let healthy = f.baseline_p99_ms.unwrap();
        assert!(
            f.p99_ms <= 2.0 * healthy,
            "seed {}: p99 {} ms during the fault, {} ms before",
            r.seed,
            f.p99_ms,
            healthy
        );
        let (start, end) = (f.start_s as usize, f.end_s as usize);
        for t in start + 2..end {
            let s = share(&r, 0, t);
            assert!(
                s < 0.10,
                "seed {}: the slow backend had {s:.3} of second {t}",
                r.seed
            );
        }
        r.assert_recovered_within(Duration::from_secs(5)).unwrap();
    }
}

/// Flapping backend (5 s down, 5 s up for two minutes, at full length and half the
/// rate): at least 99.95 % served, and the backend is used in its up phases: in each,
/// it takes at least half its fair share (a third) of the calls.
#[test]
fn flapping_backend_is_used_while_up() {
    let drill =
        Drill::new(Scenario::builtin("flapping").unwrap().scaled(1.0, 0.5)).label("recommended");
    for r in each_seed(drill) {
        check(&r, 0.9995, 1.05);
        let f = fault(&r);
        let mut up = f.start_s as usize + 5;
        while up + 5 <= f.end_s as usize {
            let seconds = &r.timeline[up..up + 5];
            let to_a: u64 = seconds.iter().map(|s| s.attempts[0]).sum();
            let all: u64 = seconds.iter().map(|s| s.attempts.iter().sum::<u64>()).sum();
            let fair = all as f64 / 3.0;
            assert!(
                to_a as f64 >= 0.5 * fair,
                "seed {}: {to_a} of {all} calls to the flapping backend in its up phase at {up} s",
                r.seed
            );
            up += 10;
        }
    }
}

/// Overload beyond capacity: what the backends cannot serve fails, but nothing
/// collapses: availability stays at about the backends' capacity over the demand
/// (83 % over the run), retries add at most what the budget allows (20 %), and service
/// is back within 2 s of the surge. A backend shedding load keeps its share (the
/// stack counts a shed as healthy), so no breaker trips on it.
#[test]
fn overload_beyond_capacity_is_not_amplified() {
    for r in each_seed(builtin("overload")) {
        check(&r, 0.8, 1.2);
        fault(&r);
        r.assert_recovered_within(Duration::from_secs(2)).unwrap();
    }
}

/// Total outage (every backend down for a third of the drill): availability over the
/// run within 0.3 points of the most possible (the share of requests sent while the
/// backends were up), the first success within 1 s of recovery, and at most 5 %
/// extra load during the outage: the breakers cut the load on the dead backends to a
/// trickle of probes, and the router fails fast instead of sending into open
/// breakers.
#[test]
fn total_outage_sheds_load_and_recovers_at_once() {
    for r in each_seed(builtin("total-outage")) {
        let f = fault(&r);
        let (start, end) = (f.start_s as usize, f.end_s as usize);
        let during: u64 = r.timeline[start..end].iter().map(|s| s.sent).sum();
        let best = 1.0 - during as f64 / r.requests as f64;
        assert!(
            r.availability >= best - 0.003,
            "seed {}: availability {:.3} % where {:.3} % was possible",
            r.seed,
            100.0 * r.availability,
            100.0 * best
        );
        let first = (end..r.timeline.len())
            .find(|&t| r.timeline[t].ok > 0)
            .expect("a success after recovery");
        assert!(
            first + 1 - end <= 1,
            "seed {}: first success in second {first}, recovery at {end}",
            r.seed
        );
        let amplification = attempts_per_request(&r, start + 1, end);
        assert!(
            amplification <= 1.05,
            "seed {}: {amplification:.3} attempts per request during the outage",
            r.seed
        );
        r.assert_detected_within(Duration::from_secs(2)).unwrap();
    }
}

/// Without breakers, the retry budget alone bounds the extra load of a total outage:
/// 20 % plus its floor of 10 retries per second.
#[test]
fn total_outage_amplification_stays_within_the_budget() {
    let r = budgeted_retry(&builtin("total-outage"));
    check(&r, 0.66, 1.1);
    let outage: Vec<_> = r.timeline[32..58].iter().collect();
    let sent: u64 = outage.iter().map(|s| s.sent).sum();
    let attempts: u64 = outage.iter().map(|s| s.attempts.iter().sum::<u64>()).sum();
    let ratio = attempts as f64 / sent as f64;
    // Retries are counted as the attempts of requests a backend had seen before.
    assert!(
        r.retries > 0 && r.retries < r.attempts,
        "{} retries",
        r.retries
    );
    assert!(
        ratio <= 1.25,
        "{ratio} attempts per request during the outage"
    );
}

#[test]
fn without_resilience_an_outage_costs_exactly_its_share() {
    let drill = Drill::new(
        Scenario::builtin("backend-outage")
            .unwrap()
            .scaled(0.5, 0.5),
    )
    .seed(1)
    .label("no resilience");
    let r = drill.run(round_robin).unwrap();
    // One backend of three is down for a third of the drill; round robin sends it a
    // third of the requests.
    let expected = 1.0 - (1.0 / 3.0) * (1.0 / 3.0);
    assert!(
        (r.availability() - expected).abs() < 0.002,
        "{} vs {expected}",
        r.availability()
    );
    assert_eq!(r.amplification(), 1.0);
    assert_eq!(r.retries, 0, "round robin retries nothing");
    let verdict = tower_fortify::drill::verdicts(std::slice::from_ref(&r));
    assert!(verdict.contains("sent no retry"), "{verdict}");
    assert!(verdict.contains("never moved traffic away"), "{verdict}");
    assert!(!verdict.contains("traffic back"), "{verdict}");
    assert_eq!(r.faults.len(), 1);
    assert_eq!(r.faults[0].backends, vec!["a".to_string()]);
    assert_eq!(r.faults[0].impaired_s, 30);
    assert_eq!(
        r.faults[0].detected_after_s, None,
        "round robin never routes around"
    );
    assert!(r.assert_detected_within(Duration::from_secs(5)).is_err());
    let share = &r.backends;
    assert!(share.iter().all(|b| (b.share - 1.0 / 3.0).abs() < 0.01));
}

fn small(seed: u64) -> Drill {
    Drill::new(Scenario::builtin("flapping").unwrap().scaled(0.2, 0.2)).seed(seed)
}

#[test]
fn same_seed_same_json() {
    let a = recommended(&small(9)).to_json();
    let b = recommended(&small(9)).to_json();
    assert_eq!(a, b);
    let c = recommended(&small(10)).to_json();
    assert_ne!(a, c, "another seed gives another run");
    let back = Report::from_json(&a).unwrap();
    assert_eq!(back.to_json(), a, "the JSON reads back to the same report");
}

#[tokio::test(start_paused = true)]
async fn runs_inside_a_paused_test_runtime() {
    let drill = small(3);
    let a = drill.run_async(round_robin).await.unwrap();
    let b = tokio::task::spawn_blocking(move || drill.run(round_robin).unwrap())
        .await
        .unwrap();
    assert_eq!(a.to_json(), b.to_json());
}

#[test]
fn events_from_the_stack_reach_the_report() {
    let r = small(4)
        .run(|env| {
            let retry = RetryLayer::builder()
                .rng(env.rng())
                .listener(env.listener())
                .build()
                .unwrap();
            ServiceBuilder::new().layer(retry).service(round_robin(env))
        })
        .unwrap();
    assert!(!r.events.is_empty());
    assert!(
        r.event_counts
            .iter()
            .any(|(kind, n)| kind.starts_with("Retry(") && *n > 0),
        "{:?}",
        r.event_counts
    );
}

#[test]
fn states_read_from_events_become_transitions_spans_and_bands() {
    let drill = Drill::new(Scenario::builtin("total-outage").unwrap().scaled(0.2, 0.2))
        .seed(5)
        .label("budgeted retry")
        .states(|source, event| match event {
            Event::Retry(RetryEvent::RetrySkipped {
                reason: SkipReason::Budget,
                ..
            }) => Some((source.to_string(), "exhausted".into())),
            Event::Retry(RetryEvent::Finished { success: true, .. }) => {
                Some((source.to_string(), "up".into()))
            }
            _ => None,
        });
    let r = drill
        .run(|env| {
            let retry = RetryLayer::builder()
                .rng(env.rng())
                .listener(env.listener_for("retry budget"))
                .build()
                .unwrap();
            ServiceBuilder::new().layer(retry).service(round_robin(env))
        })
        .unwrap();
    assert!(r.states.iter().all(|s| s.source == "retry budget"));
    assert!(
        r.events
            .iter()
            .all(|e| e.event.starts_with("retry budget: "))
    );
    // The budget runs out only during the outage (12 s to 24 s).
    let exhausted: Vec<_> = r.states.iter().filter(|s| s.state == "exhausted").collect();
    assert!(!exhausted.is_empty(), "{:?}", r.transitions);
    assert!(
        exhausted
            .iter()
            .all(|s| s.start_s >= 12.0 && s.start_s < 24.0 && s.end_s <= 25.0),
        "{exhausted:?}"
    );
    // Transitions alternate: a state is recorded only when it changes.
    for pair in r.transitions.windows(2) {
        assert_ne!(pair[0].state, pair[1].state);
    }
    let svg = svg_chart(std::slice::from_ref(&r));
    assert!(
        svg.contains("exhausted"),
        "the band's legend names the state"
    );
}

#[test]
fn the_chart_is_an_svg_with_every_stack_and_backend() {
    let drill = small(2);
    let a = drill.clone().label("bare").run(round_robin).unwrap();
    let b = recommended(&drill.label("recommended"));
    let svg = svg_chart(&[a, b]);
    assert!(svg.starts_with("<svg"), "{}", &svg[..50]);
    assert!(svg.trim_end().ends_with("</svg>"));
    for text in [
        "flapping",
        "bare",
        "recommended",
        "a",
        "b",
        "c",
        "success rate",
    ] {
        assert!(svg.contains(text), "no `{text}` in the chart");
    }
}

/// The states lane: a labelled row per source, half-open bands wide enough to see
/// (a half-open spell lasts milliseconds), and no colour meaning two things.
#[test]
fn the_chart_labels_state_rows_and_shows_half_open_bands() {
    let r = recommended(&builtin("backend-outage").seed(1));
    assert!(
        r.states.iter().any(|s| s.state == "half_open"),
        "the drill saw a half-open breaker"
    );
    let svg = svg_chart(std::slice::from_ref(&r));
    let text: String = svg.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("> a breaker </text>"),
        "the row is labelled with its source"
    );
    assert!(
        text.contains("> half_open </text>"),
        "the legend names half-open"
    );
    // Every half-open band is at least a pixel wide.
    let widths: Vec<f64> = svg
        .split("<rect")
        .filter(|r| r.contains("fill=\"#F0C800\""))
        .filter_map(|r| r.split("width=\"").nth(1)?.split('"').next()?.parse().ok())
        .collect();
    assert!(!widths.is_empty(), "half-open bands are drawn");
    assert!(widths.iter().all(|&w| w >= 1.0), "{widths:?}");
    // The stacks' green is not a backend's colour.
    let lines: Vec<&str> = svg.split("<polyline").skip(1).collect();
    assert!(!lines.is_empty());
    let green = "#2CA02C";
    let green_lines = lines.iter().filter(|l| l.contains(green)).count();
    // Two panels, each with the line and its legend sample; no backend is green.
    assert_eq!(green_lines, 4, "green is the recommended stack's only");
}

#[test]
fn assertion_messages_say_what_and_where() {
    let r = Drill::new(Scenario::builtin("total-outage").unwrap().scaled(0.2, 0.2))
        .label("bare")
        .run(round_robin)
        .unwrap();
    let err = r
        .assert_availability_at_least(0.999)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("total-outage") && err.contains("bare"),
        "{err}"
    );
    assert!(err.contains("below the required 99.900 %"), "{err}");
    assert!(err.contains("worst second"), "{err}");
    let err = r.assert_amplification_at_most(0.5).unwrap_err().to_string();
    assert!(err.contains("exceeds 0.500"), "{err}");
    let err = r
        .assert_p99_at_most(Duration::from_millis(1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("p99 latency"), "{err}");
    let err = r
        .assert_detected_within(Duration::from_secs(1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("detected never"), "{err}");
    r.assert_amplification_at_most(1.0).unwrap();
}

const GOOD: &str = r#"
name = "custom"
description = "a file-made scenario"
duration = "20s"

[load]
rate = 200
kind = "poisson"
steps = [{ at = "10s", rate = 300 }]

[[backend]]
name = "primary"
zone = "a"
latency = { median = "20ms", p99 = "100ms" }
error_rate = 0.01
capacity = 50
phases = [
  { at = "5s", phase = "down" },
  { at = "8s", phase = "brownout", error_rate = 0.5 },
  { at = "12s", phase = "slow", factor = 4 },
  { at = "14s", phase = "flapping", down = "1s", up = "1s" },
  { at = "18s", phase = "healthy" },
]

[[backend]]
name = "secondary"
tier = 1
latency = { fixed = "30ms" }
"#;

#[test]
fn scenario_files_load() {
    let s = Scenario::from_toml(GOOD).unwrap();
    let expected = Scenario::new("custom")
        .describe("a file-made scenario")
        .duration(Duration::from_secs(20))
        .load(Load::poisson(200.0).step(Duration::from_secs(10), 300.0))
        .backend(
            BackendSpec::new("primary")
                .zone("a")
                .latency(
                    Latency::log_normal(Duration::from_millis(20), Duration::from_millis(100))
                        .unwrap(),
                )
                .error_rate(0.01)
                .capacity(50)
                .phase(Duration::from_secs(5), Phase::Down)
                .phase(Duration::from_secs(8), Phase::Brownout { error_rate: 0.5 })
                .phase(Duration::from_secs(12), Phase::Slow { factor: 4.0 })
                .phase(
                    Duration::from_secs(14),
                    Phase::Flapping {
                        down: Duration::from_secs(1),
                        up: Duration::from_secs(1),
                    },
                )
                .phase(Duration::from_secs(18), Phase::Healthy),
        )
        .backend(
            BackendSpec::new("secondary")
                .tier(1)
                .latency(Latency::fixed(Duration::from_millis(30))),
        );
    assert_eq!(s, expected);
    let r = Drill::new(s).run(round_robin).unwrap();
    assert_eq!(r.faults.len(), 5, "{:?}", r.faults);
}

fn bad(text: &str) -> String {
    let err = Scenario::from_toml(text).unwrap_err();
    err.to_string()
}

#[test]
fn bad_scenario_files_name_the_line_and_field() {
    // A value of the wrong type.
    let text = GOOD.replace("error_rate = 0.01", "error_rate = \"often\"");
    let msg = bad(&text);
    assert!(msg.contains("line 15"), "{msg}");
    assert!(msg.contains("field `backend.error_rate`"), "{msg}");

    // A share out of range.
    let msg = bad(&GOOD.replace("error_rate = 0.01", "error_rate = 1.5"));
    assert!(
        msg.contains("line 15") && msg.contains("backend.error_rate"),
        "{msg}"
    );
    assert!(msg.contains("between 0.0 and 1.0"), "{msg}");

    // A duration with an unknown unit, inside an inline table in an array.
    let msg = bad(&GOOD.replace(
        "{ at = \"5s\", phase = \"down\" }",
        "{ at = \"5 parsecs\", phase = \"down\" }",
    ));
    assert!(msg.contains("line 18"), "{msg}");
    assert!(msg.contains("field `backend.phases.at`"), "{msg}");
    assert!(msg.contains("unknown unit"), "{msg}");

    // An unknown phase.
    let msg = bad(&GOOD.replace("phase = \"down\"", "phase = \"exploded\""));
    assert!(
        msg.contains("line 18") && msg.contains("field `backend.phases.phase`"),
        "{msg}"
    );

    // Inside an inline table.
    let msg = bad(&GOOD.replace("median = \"20ms\"", "median = 20ms"));
    assert!(msg.contains("line 14"), "{msg}");
    let msg = bad(&GOOD.replace("median = \"20ms\"", "median = \"-20ms\""));
    assert!(
        msg.contains("line 14") && msg.contains("field `backend.latency.median`"),
        "{msg}"
    );

    // A misspelt key.
    let msg = bad(&GOOD.replace("capacity = 50", "capacitty = 50"));
    assert!(
        msg.contains("line 16") && msg.contains("capacitty"),
        "{msg}"
    );

    // A missing field.
    let msg = bad(&GOOD.replace("rate = 200\n", ""));
    assert!(msg.contains("rate"), "{msg}");
    assert!(msg.contains("line"), "{msg}");

    // A phase without its parameter.
    let msg = bad(&GOOD.replace(
        "phase = \"brownout\", error_rate = 0.5",
        "phase = \"brownout\"",
    ));
    assert!(
        msg.contains("backend.phases.error_rate") || msg.contains("error_rate"),
        "{msg}"
    );
    assert!(msg.contains("line"), "{msg}");

    // Phases out of order.
    let msg = bad(&GOOD.replace(
        "{ at = \"12s\", phase = \"slow\"",
        "{ at = \"2s\", phase = \"slow\"",
    ));
    assert!(msg.contains("backend.phases.at"), "{msg}");

    // Not TOML at all.
    let msg = bad("name = \"x\"\nduration = \n");
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn loading_a_missing_file_names_it() {
    let err = Scenario::load_file("/nonexistent/scenario.toml").unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/scenario.toml"),
        "{err}"
    );
}

fn backend(spec: BackendSpec) -> SimBackend {
    SimBackend::new(0, spec, tokio::time::Instant::now(), 600, Rng::seeded(1))
}

#[tokio::test(start_paused = true)]
async fn a_down_backend_fails_fast() {
    let mut b = backend(
        BackendSpec::new("x")
            .latency(Latency::fixed(Duration::from_millis(50)))
            .phase(Duration::from_secs(10), Phase::Down),
    );
    let start = tokio::time::Instant::now();
    assert!(
        b.ready()
            .await
            .unwrap()
            .call(SimRequest { id: 0 })
            .await
            .is_ok()
    );
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    tokio::time::advance(Duration::from_secs(10)).await;
    let start = tokio::time::Instant::now();
    let err = b
        .ready()
        .await
        .unwrap()
        .call(SimRequest { id: 1 })
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(1));
    let err = err.downcast_ref::<SimError>().unwrap();
    assert_eq!(err.kind(), SimErrorKind::Down);
    assert_eq!((b.attempts(), b.failures()), (2, 1));
    assert_eq!(b.phase(), Phase::Down);
}

#[tokio::test(start_paused = true)]
async fn calls_beyond_capacity_queue_then_overflow() {
    let b = backend(
        BackendSpec::new("x")
            .latency(Latency::fixed(Duration::from_millis(100)))
            .capacity(2)
            .queue(2),
    );
    let start = tokio::time::Instant::now();
    let calls: Vec<_> = (0..5)
        .map(|id| {
            let mut b = b.clone();
            tokio::spawn(async move {
                let r = b.call(SimRequest { id }).await;
                (r.is_ok(), start.elapsed())
            })
        })
        .collect();
    let mut results = Vec::new();
    for c in calls {
        results.push(c.await.unwrap());
    }
    let ms = |n| Duration::from_millis(n);
    assert_eq!(
        results,
        vec![
            (true, ms(100)),
            (true, ms(100)),
            (true, ms(200)),
            (true, ms(200)),
            (false, ms(1)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn brownout_fails_its_share() {
    let mut b =
        backend(BackendSpec::new("x").phase(Duration::ZERO, Phase::Brownout { error_rate: 0.3 }));
    let mut failed = 0;
    for id in 0..2_000 {
        if b.call(SimRequest { id }).await.is_err() {
            failed += 1;
        }
    }
    assert!((500..700).contains(&failed), "{failed} of 2000");
}

#[test]
fn invalid_scenarios_are_rejected() {
    let err = Drill::new(Scenario::new("empty"))
        .run(round_robin)
        .err()
        .unwrap();
    assert_eq!(err.field(), "backend");
    let err = Drill::new(Scenario::new("x").backend(BackendSpec::new("a").error_rate(2.0)))
        .run(round_robin)
        .err()
        .unwrap();
    assert_eq!(err.field(), "backend.error_rate");
}

#[test]
fn the_drill_judges_results_with_its_classifier() {
    use tower_fortify::classify::{Outcome, classify_fn};
    let scenario = Scenario::new("healthy")
        .duration(Duration::from_secs(3))
        .load(Load::constant(300.0))
        .backend(BackendSpec::new("a"))
        .backend(BackendSpec::new("b"))
        .backend(BackendSpec::new("c"));
    // Answers from backend 0 count as failures, whatever they say.
    let r = Drill::new(scenario)
        .classifier(classify_fn(|r: Result<&SimResponse, &BoxError>| match r {
            Ok(res) if res.backend != 0 => Outcome::Success,
            _ => Outcome::NonRetryableFailure,
        }))
        .run(round_robin)
        .unwrap();
    assert_eq!(r.succeeded, 600);
    assert_eq!(r.failed, 300);
}

#[test]
fn the_threshold_is_checked() {
    let err = small(1).threshold(1.5).run(round_robin).err().unwrap();
    assert_eq!(err.field(), "drill.threshold");
}

#[test]
fn scaling_stretches_times_and_rates() {
    let s = Scenario::builtin("overload").unwrap().scaled(2.0, 0.5);
    assert_eq!(s.run_time(), Duration::from_secs(360));
    let load = s.load_profile();
    assert_eq!(load.rate_at(Duration::ZERO), 500.0);
    assert_eq!(load.rate_at(Duration::from_secs(119)), 500.0);
    assert_eq!(load.rate_at(Duration::from_secs(120)), 1250.0);
    assert_eq!(load.rate_at(Duration::from_secs(240)), 500.0);
    let flapping = Scenario::builtin("flapping").unwrap().scaled(0.5, 1.0);
    assert_eq!(
        flapping.backends()[0].phases()[0],
        (
            Duration::from_secs(15),
            Phase::Flapping {
                down: Duration::from_millis(2500),
                up: Duration::from_millis(2500)
            }
        )
    );
}

#[test]
fn the_event_log_is_bounded_but_counts_everything() {
    let r = Drill::new(
        Scenario::builtin("backend-outage")
            .unwrap()
            .scaled(0.1, 1.0),
    )
    .run(|env| {
        let retry = RetryLayer::builder()
            .rng(env.rng())
            .listener(env.listener())
            .build()
            .unwrap();
        ServiceBuilder::new().layer(retry).service(round_robin(env))
    })
    .unwrap();
    assert_eq!(r.events.len(), tower_fortify::drill::MAX_EVENTS);
    let counted: u64 = r.event_counts.iter().map(|(_, n)| n).sum();
    assert!(
        counted > r.requests,
        "{counted} events for {} requests",
        r.requests
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_frees_its_place_in_the_queue() {
    let b = backend(
        BackendSpec::new("x")
            .latency(Latency::fixed(Duration::from_millis(100)))
            .capacity(1)
            .queue(1),
    );
    let mut serving = tokio_test::task::spawn(b.clone().call(SimRequest { id: 0 }));
    let mut waiting = tokio_test::task::spawn(b.clone().call(SimRequest { id: 1 }));
    tokio_test::assert_pending!(serving.poll());
    tokio_test::assert_pending!(waiting.poll());
    // The queue is full: a third call is turned away.
    let err = b.clone().call(SimRequest { id: 2 }).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<SimError>().unwrap().kind(),
        SimErrorKind::Overloaded
    );
    // Cancel the waiting call: its place is free again.
    drop(waiting);
    let mut again = tokio_test::task::spawn(b.clone().call(SimRequest { id: 3 }));
    tokio_test::assert_pending!(again.poll());
    tokio::time::advance(Duration::from_millis(100)).await;
    assert!(tokio_test::assert_ready!(serving.poll()).is_ok());
    // The freed capacity goes to the call that took the cancelled one's place.
    assert!(again.is_woken());
    tokio_test::assert_pending!(again.poll());
    tokio::time::advance(Duration::from_millis(100)).await;
    assert!(tokio_test::assert_ready!(again.poll()).is_ok());
}

/// Round robin that skips a backend for 5 s after it fails: a stand-in for outlier
/// ejection, to check that the report measures detection and recovery.
#[derive(Clone)]
struct Ejecting {
    backends: Arc<[SimBackend]>,
    next: Arc<AtomicUsize>,
    until_ms: Arc<[std::sync::atomic::AtomicU64]>,
    epoch: tokio::time::Instant,
}

impl Service<SimRequest> for Ejecting {
    type Response = SimResponse;
    type Error = BoxError;
    type Future = SimFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: SimRequest) -> SimFuture {
        let now = self.epoch.elapsed().as_millis() as u64;
        let n = self.backends.len();
        let mut i = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for _ in 0..n {
            if self.until_ms[i].load(Ordering::Relaxed) <= now {
                break;
            }
            i = self.next.fetch_add(1, Ordering::Relaxed) % n;
        }
        let fut = self.backends[i].clone().call(req);
        let this = self.clone();
        Box::pin(async move {
            let result = fut.await;
            if result.is_err() {
                let now = this.epoch.elapsed().as_millis() as u64;
                this.until_ms[i].store(now + 5_000, Ordering::Relaxed);
            }
            result
        })
    }
}

#[test]
fn detection_and_recovery_are_measured_when_the_stack_routes_around() {
    let r = builtin("backend-outage")
        .label("ejecting")
        .run(|env| Ejecting {
            backends: env.backends().into(),
            next: Arc::default(),
            until_ms: env.backends().iter().map(|_| Default::default()).collect(),
            epoch: tokio::time::Instant::now(),
        })
        .unwrap();
    println!("{r}");
    let fault = &r.faults[0];
    // The first failure ejects the backend: its traffic drops within the first second.
    r.assert_detected_within(Duration::from_secs(1)).unwrap();
    // It is probed every 5 s while down, so it comes back within 5 s of the fault's
    // end (plus the second in which that is seen).
    r.assert_recovered_within(Duration::from_secs(6)).unwrap();
    assert!(fault.recovered_after_s.unwrap() >= 1.0);
    // Only the probes fail: a few requests every 5 s.
    assert!(fault.availability > 0.999, "{}", fault.availability);
    assert!(
        r.backends[0].share < 0.3,
        "the ejected backend lost its share"
    );
}

#[test]
fn scenarios_write_toml_that_reads_back_equal() {
    let mut all = Scenario::builtins();
    all.push(Scenario::from_toml(GOOD).unwrap());
    all.push(
        Scenario::new("odd \"name\" \\ with\ttabs")
            .describe("line one\nline two")
            .duration(Duration::from_nanos(1_500_000_001))
            .load(Load::poisson(12.5).step(Duration::from_micros(1500), 0.0))
            .backend(
                BackendSpec::new("u")
                    .latency(
                        Latency::uniform(Duration::from_micros(1), Duration::from_millis(7))
                            .unwrap(),
                    )
                    .error_rate(0.125)
                    .fail_latency(Duration::from_nanos(1)),
            )
            .backend(BackendSpec::new("e").latency(Latency::exponential(Duration::from_secs(2))))
            .backend(
                BackendSpec::new("scaled")
                    .latency(
                        Latency::log_normal(Duration::from_millis(3), Duration::from_millis(9))
                            .unwrap(),
                    )
                    .phase(Duration::ZERO, Phase::Slow { factor: 2.5 }),
            ),
    );
    all.push(Scenario::builtin("flapping").unwrap().scaled(0.37, 1.3));
    for s in all {
        let text = s.to_toml();
        let back = Scenario::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, s, "{text}");
    }
}

/// Field names come from serde's own path: a missing `name` in `[[backend]]` used to
/// be reported as field `load`, a missing `load.rate` named no field.
#[test]
fn missing_keys_are_named_by_their_serde_path() {
    let err = Scenario::from_toml(&GOOD.replace("name = \"secondary\"\n", "")).unwrap_err();
    assert_eq!(err.field(), "backend.name", "{err}");
    assert!(err.to_string().contains("missing field `name`"), "{err}");
    assert!(err.line().is_some_and(|l| l >= 24), "{err}");

    let err = Scenario::from_toml(&GOOD.replace("rate = 200\n", "")).unwrap_err();
    assert_eq!(err.field(), "load.rate", "{err}");
    assert!(err.line().is_some(), "{err}");

    // Deeper paths drop the array indices, as builders' field names do.
    let err = Scenario::from_toml(&GOOD.replace(
        "{ at = \"18s\", phase = \"healthy\" }",
        "{ at = \"18s\", phase = \"healthy\", colour = \"red\" }",
    ))
    .unwrap_err();
    assert_eq!(err.field(), "backend.phases.colour", "{err}");
    assert_eq!(err.line(), Some(22), "{err}");
}

/// A hung backend (calls held until the phase ends, as a process under SIGSTOP): the
/// one-call stack's per-attempt timeout and retries serve around it, and a scenario
/// file says `hang`.
#[test]
fn a_hung_backend_is_served_around() {
    use tower_fortify::drill::{BackendSpec, Load, Phase};
    let s = Duration::from_secs;
    let scenario = Scenario::new("hang")
        .duration(s(60))
        .load(Load::constant(200.0))
        .backend(
            BackendSpec::new("a")
                .phase(s(20), Phase::Hang)
                .phase(s(40), Phase::Healthy),
        )
        .backend(BackendSpec::new("b"))
        .backend(BackendSpec::new("c"));
    assert_eq!(Scenario::from_toml(&scenario.to_toml()).unwrap(), scenario);
    assert!(scenario.to_toml().contains("phase = \"hang\""));
    let r = recommended(&Drill::new(scenario).seed(1).label("recommended"));
    println!("{r}");
    r.assert_availability_at_least(0.999).unwrap();
    assert!(
        r.timeline[45..55]
            .iter()
            .map(|s| s.attempts[0])
            .sum::<u64>()
            > 0
    );
}
