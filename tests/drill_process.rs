//! The drill on real processes: three `fortify-drill-backend` processes on 127.0.0.1,
//! one killed with SIGKILL for a third of the run and started again on the same
//! port, the one-call HTTP stack with its defaults sending the load in real time.
//! Real time by design (it is the point of this drill): about 20 s.

#![cfg(feature = "drill-process")]

use std::time::Duration;

use tower_fortify::drill::{ProcessDrill, Scenario};
use tower_fortify::observe::{CircuitState, Event};
use tower_fortify::stack::Stack;

const BACKEND: &str = env!("CARGO_BIN_EXE_fortify-drill-backend");

/// The real-time drills of this file run one at a time: on a 2-core machine two
/// drills at once would slow each other's backends and blur what each measures.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn breaker_states(source: &str, event: &Event) -> Option<(String, String)> {
    match event {
        Event::CircuitBreaker(tower_fortify::observe::CircuitBreakerEvent::StateChanged {
            to,
            ..
        }) => Some((
            source.to_string(),
            match to {
                CircuitState::Closed => "closed",
                CircuitState::HalfOpen => "half_open",
                CircuitState::Open => "open",
            }
            .to_string(),
        )),
        _ => None,
    }
}

/// A backend killed with SIGKILL and restarted: at least 99.9 % served, and the
/// restarted backend has its traffic back within 2 s of its restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_backend_loses_nothing_and_gets_traffic_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    // The built-in outage at a tenth of its length and rate: 18 s at 100 req/s,
    // backend `a` killed from 6 s to 12 s.
    let scenario = Scenario::builtin("backend-outage")
        .unwrap()
        .scaled(0.1, 0.1);
    let drill = ProcessDrill::new(scenario, BACKEND)
        .label("recommended")
        .states(breaker_states);
    let report = drill
        .run(|env| {
            let env = env.clone();
            Stack::http(env.urls())
                .unwrap()
                .listeners(move |source| Some(env.listener_for(source)))
                .build()
                .unwrap()
        })
        .await
        .unwrap();
    println!("{report}");
    report.assert_availability_at_least(0.999).unwrap();
    report
        .assert_recovered_within(Duration::from_secs(2))
        .unwrap();
    let fault = &report.faults[0];
    assert_eq!(fault.backends, vec!["a".to_string()]);
    // The killed backend got calls before and after its outage, and the client saw
    // it fail (connections refused or reset) in between.
    let a: Vec<u64> = report.timeline.iter().map(|s| s.attempts[0]).collect();
    assert!(a[..6].iter().sum::<u64>() > 50, "{a:?}");
    assert!(a[13..18].iter().sum::<u64>() > 50, "{a:?}");
    assert!(report.backends[0].failures > 0, "{:?}", report.backends[0]);
    assert!(
        report.transitions.iter().any(|t| t.state == "open"),
        "a breaker opened: {:?}",
        report.transitions
    );
    // The same chart as the paused-time drill's, kept with the test's outputs.
    let svg = tower_fortify::drill::svg_chart(std::slice::from_ref(&report));
    assert!(
        svg.starts_with("<svg") && svg.contains("recommended"),
        "{}",
        &svg[..80]
    );
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("drill-process.svg");
    std::fs::write(&path, svg).unwrap();
    println!("chart: {}", path.display());
}

/// A program that does not exist is an error naming it, not a hang or a panic.
#[tokio::test]
async fn a_missing_backend_program_is_a_clear_error() {
    let scenario = Scenario::builtin("backend-outage")
        .unwrap()
        .scaled(0.01, 0.01);
    let err = ProcessDrill::new(scenario, "/nonexistent/fortify-drill-backend")
        .run(|env| Stack::http(env.urls()).unwrap().build().unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot start the backend program /nonexistent/fortify-drill-backend"),
        "{err}"
    );
}

/// A backend stopped with SIGSTOP (connections open, nothing answers) and resumed with
/// SIGCONT: the per-attempt timeouts and retries keep at least 99 % served, and the
/// resumed backend takes calls again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_and_resumed_backend_is_routed_around() {
    let _one = ONE_AT_A_TIME.lock().await;
    use tower_fortify::drill::{BackendSpec, Load, Phase};
    let s = Duration::from_secs;
    let scenario = Scenario::new("hang")
        .duration(s(9))
        .drain(s(6))
        .load(Load::constant(50.0))
        .backend(
            BackendSpec::new("a")
                .phase(s(2), Phase::Hang)
                .phase(s(5), Phase::Healthy),
        )
        .backend(BackendSpec::new("b"))
        .backend(BackendSpec::new("c"));
    let report = ProcessDrill::new(scenario, BACKEND)
        .run(|env| {
            let env = env.clone();
            Stack::http(env.urls())
                .unwrap()
                .listeners(move |source| Some(env.listener_for(source)))
                .build()
                .unwrap()
        })
        .await
        .unwrap();
    println!("{report}");
    report.assert_availability_at_least(0.99).unwrap();
    let a: Vec<u64> = report.timeline.iter().map(|s| s.attempts[0]).collect();
    assert!(
        a[7..9].iter().sum::<u64>() > 0,
        "resumed, it takes calls: {a:?}"
    );
}

/// The same kill and restart over gRPC: the backends speak gRPC over HTTP/2
/// (`--grpc`), the load goes through `Stack::grpc` over tonic channels with its
/// defaults, and a call counts as served when its `grpc-status` is `0`. At least
/// 99.9 % served and the restarted backend's traffic back within 2 s, as over HTTP.
#[cfg(feature = "grpc")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_grpc_a_killed_and_restarted_backend_loses_nothing() {
    use tower::ServiceBuilder;
    use tower_fortify::drill::ProcessBody;
    use tower_fortify::http::{ReplayBody, ReplayBodyLayer};

    let _one = ONE_AT_A_TIME.lock().await;
    let scenario = Scenario::builtin("backend-outage")
        .unwrap()
        .scaled(0.1, 0.1);
    let report = ProcessDrill::new(scenario, BACKEND)
        .label("grpc")
        .states(breaker_states)
        .run_grpc(|env| {
            let log = env.clone();
            let mut stack = Stack::grpc();
            for url in env.urls() {
                let channel = tonic::transport::Channel::from_shared(url.clone())
                    .unwrap()
                    .connect_lazy();
                let backend = ServiceBuilder::new()
                    .map_request(|r: http::Request<ReplayBody<ProcessBody>>| {
                        r.map(tonic::body::Body::new)
                    })
                    .service(channel);
                stack = stack.backend(url.clone(), backend);
            }
            let stack = stack
                .listeners(move |source| Some(log.listener_for(source)))
                .build()
                .unwrap();
            ServiceBuilder::new()
                .layer(ReplayBodyLayer::new(64 * 1024))
                .service(stack)
        })
        .await
        .unwrap();
    println!("{report}");
    report.assert_availability_at_least(0.999).unwrap();
    report
        .assert_recovered_within(Duration::from_secs(2))
        .unwrap();
    let a: Vec<u64> = report.timeline.iter().map(|s| s.attempts[0]).collect();
    assert!(a[..6].iter().sum::<u64>() > 50, "{a:?}");
    assert!(a[13..18].iter().sum::<u64>() > 50, "{a:?}");
    assert!(report.backends[0].failures > 0, "{:?}", report.backends[0]);
    assert!(
        report.transitions.iter().any(|t| t.state == "open"),
        "a breaker opened: {:?}",
        report.transitions
    );
}
