//! The chaos layer: probability, schedules, keys, the runtime toggle, each kind of
//! fault, readiness and cancellation, seeded reproducibility.

#![cfg(feature = "chaos")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio_test::{assert_pending, assert_ready, assert_ready_ok};
use tower::{Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::chaos::{Aborted, ChaosLayer, Fault, Latency, Rule};
use tower_fortify::rng::Rng;
use tower_layer::Layer;
use tower_test::mock;

/// An echo service that counts its calls.
fn echo(
    calls: Arc<AtomicU32>,
) -> impl Service<u32, Response = u32, Error = BoxError, Future = impl Send> + Clone {
    service_fn(move |x: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, BoxError>(x) }
    })
}

fn injected() -> BoxError {
    "injected".into()
}

async fn outcomes(layer: &ChaosLayer<u32, u32, BoxError>, n: u32) -> Vec<bool> {
    let mut svc = layer.layer(echo(Arc::default()));
    let mut out = Vec::new();
    for i in 0..n {
        out.push(svc.ready().await.unwrap().call(i).await.is_err());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn probability_injects_about_that_share() {
    let layer = ChaosLayer::builder()
        .rng(Rng::seeded(11))
        .rule(Rule::new(Fault::error(injected)).probability(0.25))
        .build()
        .unwrap();
    let failed = outcomes(&layer, 10_000)
        .await
        .iter()
        .filter(|&&f| f)
        .count();
    assert!(
        (2_300..2_700).contains(&failed),
        "{failed} of 10000 failed at p = 0.25"
    );
    assert_eq!(layer.handle().injected(), failed as u64);
}

#[tokio::test(start_paused = true)]
async fn same_seed_injects_into_the_same_calls() {
    let make = |seed| {
        ChaosLayer::builder()
            .rng(Rng::seeded(seed))
            .rule(Rule::new(Fault::error(injected)).probability(0.5))
            .build()
            .unwrap()
    };
    let a = outcomes(&make(5), 500).await;
    let b = outcomes(&make(5), 500).await;
    let c = outcomes(&make(6), 500).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[tokio::test(start_paused = true)]
async fn probability_zero_and_one() {
    let never = ChaosLayer::builder()
        .rule(Rule::new(Fault::error(injected)).probability(0.0))
        .build()
        .unwrap();
    assert!(outcomes(&never, 100).await.iter().all(|&f| !f));
    let always = ChaosLayer::builder()
        .rule(Rule::new(Fault::error(injected)))
        .build()
        .unwrap();
    assert!(outcomes(&always, 100).await.iter().all(|&f| f));
}

#[tokio::test(start_paused = true)]
async fn schedule_windows_follow_tokio_time() {
    let layer = ChaosLayer::builder()
        .rule(
            Rule::new(Fault::error(injected))
                .during(Duration::from_secs(10)..Duration::from_secs(20)),
        )
        .build()
        .unwrap();
    let mut svc = layer.layer(echo(Arc::default()));
    assert!(
        svc.ready().await.unwrap().call(1).await.is_ok(),
        "before the window"
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(
        svc.ready().await.unwrap().call(1).await.is_err(),
        "at the window's start"
    );
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert!(
        svc.ready().await.unwrap().call(1).await.is_err(),
        "just before its end"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(
        svc.ready().await.unwrap().call(1).await.is_ok(),
        "at its end"
    );

    // Restarting the schedule measures the windows from now.
    layer.handle().restart_schedule();
    tokio::time::advance(Duration::from_secs(15)).await;
    assert!(
        svc.ready().await.unwrap().call(1).await.is_err(),
        "inside the restarted window"
    );
}

#[tokio::test(start_paused = true)]
async fn periodic_windows_make_a_service_flap() {
    let layer = ChaosLayer::builder()
        .rule(Rule::new(Fault::error(injected)).every(
            Duration::from_secs(10),
            Duration::from_secs(4),
            Duration::ZERO,
        ))
        .build()
        .unwrap();
    let mut svc = layer.layer(echo(Arc::default()));
    let mut pattern = Vec::new();
    for _ in 0..20 {
        pattern.push(svc.ready().await.unwrap().call(0).await.is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let expected: Vec<bool> = (0..20).map(|s| s % 10 < 4).collect();
    assert_eq!(pattern, expected);
}

#[tokio::test(start_paused = true)]
async fn keys_select_requests() {
    let layer = ChaosLayer::builder()
        .rule(Rule::new(Fault::error(injected)).only(|x: &u32| x.is_multiple_of(2)))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc = layer.layer(echo(calls.clone()));
    for i in 0..10u32 {
        let r = svc.ready().await.unwrap().call(i).await;
        assert_eq!(r.is_err(), i.is_multiple_of(2), "request {i}");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        5,
        "injected errors never reach the inner service"
    );
}

#[tokio::test(start_paused = true)]
async fn handle_switches_injection_at_runtime() {
    let layer = ChaosLayer::builder()
        .enabled(false)
        .rule(Rule::new(Fault::error(injected)))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(echo(Arc::default()));
    assert!(!handle.is_enabled());
    assert!(svc.ready().await.unwrap().call(1).await.is_ok());
    handle.enable();
    assert!(svc.ready().await.unwrap().call(1).await.is_err());
    let clone = handle.clone();
    clone.disable();
    assert!(svc.ready().await.unwrap().call(1).await.is_ok());
    assert_eq!(handle.injected(), 1);
}

#[tokio::test(start_paused = true)]
async fn first_matching_rule_wins() {
    let layer: ChaosLayer<u32, u32, BoxError> = ChaosLayer::builder()
        .rule(Rule::new(Fault::respond(|| 999)).only(|x: &u32| *x == 1))
        .rule(Rule::new(Fault::abort()))
        .build()
        .unwrap();
    let mut svc = layer.layer(echo(Arc::default()));
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 999);
    let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
    assert!(err.downcast_ref::<Aborted>().is_some(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn latency_delays_then_calls_the_inner_service() {
    let layer: ChaosLayer<u32, u32, BoxError> = ChaosLayer::builder()
        .rule(Rule::new(Fault::latency(Latency::fixed(
            Duration::from_millis(200),
        ))))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc = layer.layer(echo(calls.clone()));
    svc.ready().await.unwrap();
    let mut fut = tokio_test::task::spawn(svc.call(7));
    assert_pending!(fut.poll());
    tokio::time::advance(Duration::from_millis(199)).await;
    assert_pending!(fut.poll());
    assert_eq!(calls.load(Ordering::SeqCst), 0, "not sent during the delay");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(assert_ready_ok!(fut.poll()), 7);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_delayed_call_never_sends_it() {
    let layer: ChaosLayer<u32, u32, BoxError> = ChaosLayer::builder()
        .rule(Rule::new(Fault::latency(Latency::fixed(
            Duration::from_secs(1),
        ))))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc = layer.layer(echo(calls.clone()));
    svc.ready().await.unwrap();
    let mut fut = tokio_test::task::spawn(svc.call(7));
    assert_pending!(fut.poll());
    drop(fut);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn hang_never_answers() {
    let layer: ChaosLayer<u32, u32, BoxError> = ChaosLayer::builder()
        .rule(Rule::new(Fault::hang()))
        .build()
        .unwrap();
    let mut svc = layer.layer(echo(Arc::default()));
    let r = tokio::time::timeout(
        Duration::from_secs(3600),
        svc.ready().await.unwrap().call(1),
    )
    .await;
    assert!(r.is_err(), "only the timeout ends a hung call");
}

#[tokio::test(start_paused = true)]
async fn poll_ready_passes_on_inner_readiness() {
    let (inner, mut handle) = mock::pair::<u32, u32>();
    let layer: ChaosLayer<u32, u32, BoxError> = ChaosLayer::builder()
        .rule(Rule::new(Fault::error(injected)).probability(0.0))
        .build()
        .unwrap();
    let mut svc = mock::Spawn::new(layer.layer(inner));
    handle.allow(0);
    assert_pending!(svc.poll_ready());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call(3));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req, 3);
    send.send_response(4);
    assert_eq!(assert_ready!(fut.poll()).unwrap(), 4);
}

#[test]
fn invalid_rules_are_rejected_with_their_field() {
    let err = ChaosLayer::<u32, u32, BoxError>::builder()
        .rule(Rule::new(Fault::error(injected)).probability(1.5))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "chaos.probability");
    let err = ChaosLayer::<u32, u32, BoxError>::builder()
        .rule(
            Rule::new(Fault::error(injected))
                .during(Duration::from_secs(5)..Duration::from_secs(5)),
        )
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "chaos.during");
    let err = ChaosLayer::<u32, u32, BoxError>::builder()
        .rule(Rule::new(Fault::error(injected)).every(
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::ZERO,
        ))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "chaos.every");
}
