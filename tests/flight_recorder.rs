//! Incidents become drills: a flight recorder on the one-call stack records a drill's
//! traffic, writes it as a scenario, and the replayed drill reports what the original
//! did, within the tolerances below.

#![cfg(all(feature = "drill", feature = "stack"))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower_fortify::drill::{
    Drill, DrillEnv, FlightRecorder, Phase, Report, Scenario, SimClassifier,
};
use tower_fortify::failover::Backend;
use tower_fortify::stack::Stack;

/// The one-call stack over the drill's backends, with its defaults, and a flight
/// recorder on every part when one is given.
fn run(drill: &Drill, recorder: Option<Arc<Mutex<Option<FlightRecorder>>>>) -> Report {
    drill
        .run(|env: &DrillEnv| {
            let mut stack = Stack::builder()
                .backends(
                    env.backends()
                        .iter()
                        .map(|b| Backend::new(b.name(), b.clone()).tier(b.tier())),
                )
                .classifier(SimClassifier)
                .rng(env.rng());
            if let Some(slot) = recorder {
                // Made here, inside the drill's paused runtime, so its seconds are the drill's.
                let r = FlightRecorder::new(Duration::from_secs(600));
                *slot.lock().unwrap() = Some(r.clone());
                stack = stack.listeners(move |_| Some(r.clone()));
            }
            stack.build().unwrap()
        })
        .unwrap()
}

#[test]
fn a_recorded_outage_replays_as_the_same_drill() {
    // One of three backends down from 30 s to 60 s, 500 requests/s, 90 s.
    let original = Drill::new(
        Scenario::builtin("backend-outage")
            .unwrap()
            .scaled(0.5, 0.5),
    )
    .seed(1);
    let slot = Arc::new(Mutex::new(None));
    let before = run(&original, Some(slot.clone()));
    let recorder = slot.lock().unwrap().take().unwrap();

    let scenario = recorder.scenario("replayed-outage");
    println!("{}", scenario.to_toml());
    // The dump is a scenario file that reads back to the same scenario.
    assert_eq!(Scenario::from_toml(&scenario.to_toml()).unwrap(), scenario);

    // Backend `a` went down at 30 s and came back at 60 s: the recording says so,
    // to within 2 s (it sees the stack's calls, which find out and stop calling).
    let a = &scenario.backends()[0];
    assert_eq!(a.name(), "a");
    let down: Vec<u64> = a
        .phases()
        .iter()
        .filter(|(_, p)| *p == Phase::Down)
        .map(|(at, _)| at.as_secs())
        .collect();
    assert_eq!(down.len(), 1, "{:?}", a.phases());
    assert!((29..=31).contains(&down[0]), "down at {} s", down[0]);
    let healthy: Vec<u64> = a
        .phases()
        .iter()
        .filter(|(at, p)| *p == Phase::Healthy && at.as_secs() > down[0])
        .map(|(at, _)| at.as_secs())
        .collect();
    assert!(
        healthy.first().is_some_and(|&t| (59..=62).contains(&t)),
        "{:?}",
        a.phases()
    );
    for b in &scenario.backends()[1..] {
        assert!(
            b.phases().iter().all(|(_, p)| *p == Phase::Healthy),
            "{}: {:?}",
            b.name(),
            b.phases()
        );
    }

    // Replayed, the drill reports what the original did: availability within 0.5
    // points, requests within 2 %, one fault on `a` starting within 2 s of the
    // original's, each backend's share within 5 points.
    let after = run(&Drill::new(scenario).seed(1), None);
    println!("{before}\n{after}");
    assert!((before.availability - after.availability).abs() <= 0.005);
    let requests = |r: &Report| r.requests as f64;
    assert!((requests(&before) - requests(&after)).abs() <= 0.02 * requests(&before));
    assert_eq!(after.faults.len(), 1, "{:?}", after.faults);
    assert_eq!(after.faults[0].backends, vec!["a".to_string()]);
    assert!((after.faults[0].start_s - before.faults[0].start_s).abs() <= 2.0);
    for (x, y) in before.backends.iter().zip(&after.backends) {
        assert!(
            (x.share - y.share).abs() <= 0.05,
            "{}: {} vs {}",
            x.name,
            x.share,
            y.share
        );
    }
}

/// Memory is bounded: the recorder keeps only its window, and at most its backends.
#[tokio::test(start_paused = true)]
async fn the_recorder_keeps_only_its_window() {
    use tower_fortify::observe::{Event, FailoverEvent, Listener};
    let recorder = FlightRecorder::new(Duration::from_secs(10)).max_backends(2);
    let attempt = |backend: &str, success| {
        Event::Failover(FailoverEvent::Attempt {
            backend: Arc::from(backend),
            success,
            latency: Some(Duration::from_millis(10)),
        })
    };
    assert!(recorder.per_call());
    for _ in 0..30 {
        for id in ["a", "b", "c"] {
            recorder.on_event(&attempt(id, true));
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    recorder.on_event(&attempt("a", false));
    let scenario = recorder.scenario("window");
    assert_eq!(
        scenario.run_time(),
        Duration::from_secs(10),
        "the last ten seconds"
    );
    let names: Vec<&str> = scenario.backends().iter().map(|b| b.name()).collect();
    assert_eq!(names, ["a", "b"], "the third backend is over the bound");
    // The last second: `a` failed its one call.
    assert_eq!(
        scenario.backends()[0]
            .phases()
            .last()
            .map(|(at, p)| (at.as_secs(), *p)),
        Some((9, Phase::Down))
    );
}
