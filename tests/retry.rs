//! Behaviour of the retry layer, in paused tokio time.
#![cfg(feature = "retry")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn};
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::budget::Budget;
use tower_fortify::classify::{Outcome, ServerHint, classify_fn};
use tower_fortify::observe::{DelayCause, Event, RetryEvent, SkipReason};
use tower_fortify::retry::{RetryLayer, replay_fn};
use tower_layer::Layer;

const MS: Duration = Duration::from_millis(1);

/// A service that answers each call from a script, recording when calls arrive.
#[derive(Clone)]
struct Scripted {
    calls: Arc<Mutex<Vec<Instant>>>,
    script: Arc<dyn Fn(usize) -> Result<u32, &'static str> + Send + Sync>,
}

impl Scripted {
    fn new(script: impl Fn(usize) -> Result<u32, &'static str> + Send + Sync + 'static) -> Self {
        Self {
            calls: Arc::default(),
            script: Arc::new(script),
        }
    }
    fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
    fn gaps(&self) -> Vec<Duration> {
        let calls = self.calls.lock().unwrap();
        calls.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

impl Service<u32> for Scripted {
    type Response = u32;
    type Error = &'static str;
    type Future = std::future::Ready<Result<u32, &'static str>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: u32) -> Self::Future {
        let mut calls = self.calls.lock().unwrap();
        let n = calls.len();
        calls.push(Instant::now());
        std::future::ready((self.script)(n))
    }
}

fn events() -> (
    Arc<Mutex<Vec<RetryEvent>>>,
    impl Fn(&Event) + Send + Sync + 'static,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    (log, move |e: &Event| {
        if let Event::Retry(r) = e {
            sink.lock().unwrap().push(r.clone());
        }
    })
}

fn constant(ms: u64) -> Backoff {
    Backoff::constant(MS * ms as u32).jitter(Jitter::None)
}

#[tokio::test(start_paused = true)]
async fn delays_follow_the_configured_backoff() {
    let backend = Scripted::new(|_| Err("down"));
    let layer = RetryLayer::builder()
        .max_attempts(4)
        .backoff(
            Backoff::exponential(MS * 100)
                .multiplier(3.0)
                .jitter(Jitter::None),
        )
        .no_budget()
        .build()
        .unwrap();
    let mut svc = layer.layer(backend.clone());
    let result = svc.ready().await.unwrap().call(1).await;
    assert_eq!(result, Err("down"));
    assert_eq!(backend.count(), 4);
    assert_eq!(backend.gaps(), vec![MS * 100, MS * 300, MS * 900]);
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_within_bounds_and_repeat_with_the_seed() {
    async fn run(seed: u64) -> Vec<Duration> {
        let backend = Scripted::new(|_| Err("down"));
        let layer = RetryLayer::builder()
            .max_attempts(6)
            .backoff(
                Backoff::exponential(MS * 10)
                    .max_delay(MS * 50)
                    .jitter(Jitter::Full),
            )
            .rng(tower_fortify::rng::Rng::seeded(seed))
            .no_budget()
            .build()
            .unwrap();
        let _ = layer.layer(backend.clone()).oneshot(1).await;
        backend.gaps()
    }
    let a = run(7).await;
    assert_eq!(a.len(), 5);
    for (i, gap) in a.iter().enumerate() {
        let raw = (MS * 10 * 2u32.pow(i as u32)).min(MS * 50);
        assert!(*gap <= raw, "retry {i}: {gap:?} exceeds {raw:?}");
    }
    assert_eq!(a, run(7).await, "the same seed gives the same delays");
    assert_ne!(a, run(8).await, "another seed gives other delays");
}

/// The handle changes a running layer's attempts and backoff: the next request
/// follows them; a bad value changes nothing and names its field.
#[tokio::test(start_paused = true)]
async fn the_handle_changes_attempts_and_backoff_while_running() {
    let backend = Scripted::new(|_| Err("down"));
    let layer = RetryLayer::builder()
        .max_attempts(2)
        .backoff(constant(100))
        .no_budget()
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend.clone());
    assert_eq!(svc.ready().await.unwrap().call(1).await, Err("down"));
    assert_eq!(backend.gaps(), vec![MS * 100]);

    handle
        .reconfigure(&RetryLayer::builder().max_attempts(4).backoff(constant(10)))
        .unwrap();
    assert_eq!(handle.max_attempts(), 4);
    backend.calls.lock().unwrap().clear();
    assert_eq!(svc.ready().await.unwrap().call(2).await, Err("down"));
    assert_eq!(backend.gaps(), vec![MS * 10, MS * 10, MS * 10]);

    let err = handle
        .reconfigure(&RetryLayer::builder().max_attempts(0))
        .unwrap_err();
    assert_eq!(err.field(), "retry.max_attempts");
    assert_eq!(handle.max_attempts(), 4, "nothing changed");
}

#[tokio::test(start_paused = true)]
async fn attempts_stop_at_max_attempts() {
    let backend = Scripted::new(|_| Err("down"));
    let (log, listener) = events();
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(constant(0))
        .no_budget()
        .listener(listener)
        .build()
        .unwrap();
    assert_eq!(layer.layer(backend.clone()).oneshot(1).await, Err("down"));
    assert_eq!(backend.count(), 3);
    let log = log.lock().unwrap();
    assert!(log.contains(&RetryEvent::RetrySkipped {
        attempt: 3,
        reason: SkipReason::MaxAttempts
    }));
    assert_eq!(
        log.last(),
        Some(&RetryEvent::Finished {
            attempts: 3,
            success: false
        })
    );
}

#[tokio::test(start_paused = true)]
async fn success_after_failures_returns_the_success_and_reports_attempts() {
    let backend = Scripted::new(|n| if n < 2 { Err("flaky") } else { Ok(7) });
    let (log, listener) = events();
    let layer = RetryLayer::builder()
        .backoff(constant(5))
        .listener(listener)
        .build()
        .unwrap();
    assert_eq!(layer.layer(backend.clone()).oneshot(1).await, Ok(7));
    let log = log.lock().unwrap();
    assert_eq!(
        *log,
        vec![
            RetryEvent::AttemptSent { attempt: 1 },
            RetryEvent::RetryScheduled {
                attempt: 1,
                delay: MS * 5,
                cause: DelayCause::Backoff
            },
            RetryEvent::AttemptSent { attempt: 2 },
            RetryEvent::RetryScheduled {
                attempt: 2,
                delay: MS * 5,
                cause: DelayCause::Backoff
            },
            RetryEvent::AttemptSent { attempt: 3 },
            RetryEvent::Finished {
                attempts: 3,
                success: true
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn no_backoff_is_started_that_ends_past_the_deadline() {
    let backend = Scripted::new(|_| Err("down"));
    let (log, listener) = events();
    let layer = RetryLayer::builder()
        .max_attempts(10)
        .backoff(constant(400))
        .deadline(Duration::from_secs(1))
        .no_budget()
        .listener(listener)
        .build()
        .unwrap();
    let start = Instant::now();
    assert_eq!(layer.layer(backend.clone()).oneshot(1).await, Err("down"));
    // Attempts at 0, 400 and 800 ms; a fourth would start at 1200 ms.
    assert_eq!(backend.count(), 3);
    assert_eq!(
        start.elapsed(),
        MS * 800,
        "gave up at once, without sleeping past the deadline"
    );
    assert!(log.lock().unwrap().contains(&RetryEvent::RetrySkipped {
        attempt: 3,
        reason: SkipReason::Deadline
    }));
}

/// Ready until its first call fails, then never ready again.
#[derive(Clone, Default)]
struct StuckAfterFirstCall {
    stuck: Arc<std::sync::atomic::AtomicBool>,
}

impl Service<u32> for StuckAfterFirstCall {
    type Response = u32;
    type Error = &'static str;
    type Future = std::future::Ready<Result<u32, &'static str>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        if self.stuck.load(Ordering::Relaxed) {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(Ok(()))
        }
    }
    fn call(&mut self, _: u32) -> Self::Future {
        self.stuck.store(true, Ordering::Relaxed);
        std::future::ready(Err("down"))
    }
}

#[tokio::test(start_paused = true)]
async fn readying_for_a_retry_is_bounded_by_the_deadline() {
    let (log, listener) = events();
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(constant(100))
        .deadline(Duration::from_secs(1))
        .no_budget()
        .listener(listener)
        .build()
        .unwrap();
    let start = Instant::now();
    let call = layer.layer(StuckAfterFirstCall::default()).oneshot(1);
    // Far longer than the deadline: the old future waited for readiness for ever.
    let result = tokio::time::timeout(Duration::from_secs(60), call).await;
    assert_eq!(
        result,
        Ok(Err("down")),
        "the first attempt's result, at the deadline"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert!(log.lock().unwrap().contains(&RetryEvent::RetrySkipped {
        attempt: 1,
        reason: SkipReason::Deadline
    }));
}

fn pushback_classifier() -> impl Fn(Result<&u32, &&'static str>) -> Outcome + Clone {
    |r: Result<&u32, &&'static str>| match r {
        Ok(_) => Outcome::Success,
        Err(&"slow down") => Outcome::Overloaded(ServerHint::RetryAfter(Duration::from_secs(2))),
        Err(&"go away") => Outcome::Overloaded(ServerHint::DoNotRetry),
        Err(&"too long") => Outcome::Overloaded(ServerHint::RetryAfter(Duration::from_secs(3600))),
        Err(&"bad request") => Outcome::NonRetryableFailure,
        Err(_) => Outcome::RetryableFailure,
    }
}

#[tokio::test(start_paused = true)]
async fn server_pushback_replaces_the_backoff_delay() {
    let backend = Scripted::new(|n| if n == 0 { Err("slow down") } else { Ok(1) });
    let (log, listener) = events();
    let layer = RetryLayer::builder()
        .backoff(constant(10))
        .classifier(classify_fn(pushback_classifier()))
        .listener(listener)
        .build()
        .unwrap();
    assert_eq!(layer.layer(backend.clone()).oneshot(1).await, Ok(1));
    assert_eq!(backend.gaps(), vec![Duration::from_secs(2)]);
    assert!(log.lock().unwrap().contains(&RetryEvent::RetryScheduled {
        attempt: 1,
        delay: Duration::from_secs(2),
        cause: DelayCause::ServerHint
    }));
}

#[tokio::test(start_paused = true)]
async fn do_not_retry_hints_and_non_retryable_failures_are_not_retried() {
    for (error, reason) in [
        ("go away", SkipReason::ServerSaidNo),
        ("bad request", SkipReason::NotRetryable),
        ("too long", SkipReason::HintTooLong),
    ] {
        let backend = Scripted::new(move |_| Err(error));
        let (log, listener) = events();
        let layer = RetryLayer::builder()
            .classifier(classify_fn(pushback_classifier()))
            .listener(listener)
            .build()
            .unwrap();
        assert_eq!(layer.layer(backend.clone()).oneshot(1).await, Err(error));
        assert_eq!(backend.count(), 1, "{error} must not be retried");
        assert!(
            log.lock()
                .unwrap()
                .contains(&RetryEvent::RetrySkipped { attempt: 1, reason }),
            "{error}: expected {reason:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn requests_that_cannot_be_replayed_are_sent_once() {
    let backend = Scripted::new(|_| Err("down"));
    let (log, listener) = events();
    let layer = RetryLayer::builder()
        .replay(replay_fn(|_: &u32| None))
        .listener(listener)
        .build()
        .unwrap();
    assert_eq!(layer.layer(backend.clone()).oneshot(1).await, Err("down"));
    assert_eq!(backend.count(), 1);
    assert!(log.lock().unwrap().contains(&RetryEvent::RetrySkipped {
        attempt: 1,
        reason: SkipReason::NotReplayable
    }));
}

/// Drives `requests` requests per second for `secs` seconds against an always-failing
/// backend and returns (requests, backend calls).
async fn storm(layer: RetryLayer, per_sec: u32, secs: u32) -> (u32, u32) {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let backend = service_fn(move |_: u32| {
        c.fetch_add(1, Ordering::Relaxed);
        async { Err::<u32, _>("down") }
    });
    let svc = layer.layer(backend);
    let mut tasks = tokio::task::JoinSet::new();
    let gap = Duration::from_secs(1) / per_sec;
    for i in 0..per_sec * secs {
        let svc = svc.clone();
        tasks.spawn(async move { svc.oneshot(i).await });
        tokio::time::sleep(gap).await;
    }
    while tasks.join_next().await.is_some() {}
    (per_sec * secs, calls.load(Ordering::Relaxed))
}

#[tokio::test(start_paused = true)]
async fn ratio_budget_bounds_load_under_a_total_outage() {
    // 10 % of requests plus 2 retries per second, over a 10 s window.
    let budget = Budget::ratio(Duration::from_secs(10), 2, 0.1).unwrap();
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(constant(10))
        .budget(budget)
        .build()
        .unwrap();
    let (requests, calls) = storm(layer, 200, 60).await;
    let retries = calls - requests;
    // The documented bound: retries <= 10 % of requests + 2/s over the run (plus one
    // window's reserve at the start).
    let bound = (requests as f64 * 0.1 + 2.0 * (60.0 + 10.0)) as u32;
    assert!(
        retries <= bound,
        "{retries} retries exceed the bound {bound}"
    );
    assert!(
        retries > requests / 20,
        "the budget still allows some retries ({retries})"
    );
    let amplification = calls as f64 / requests as f64;
    assert!(amplification < 1.12, "amplification {amplification}");
}

#[tokio::test(start_paused = true)]
async fn token_bucket_stops_retries_under_a_total_outage() {
    let budget = Budget::token_bucket(10.0, 0.1).unwrap();
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(constant(10))
        .budget(budget.clone())
        .build()
        .unwrap();
    let (requests, calls) = storm(layer, 100, 30).await;
    // Each failure drains a token; retries stop at half: at most max/2 retries ever
    // happen without a success.
    assert!(calls - requests <= 5, "{} retries", calls - requests);
    assert_eq!(budget.remaining(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn readiness_is_taken_when_each_attempt_is_sent() {
    let (mock, mut handle) = tower_test::mock::pair::<u32, u32>();
    let layer = RetryLayer::builder()
        .backoff(constant(100))
        .no_budget()
        .build()
        .unwrap();
    let mut svc = layer.layer(mock);
    handle.allow(1);
    svc.ready().await.unwrap();
    let mut fut = tokio_test::task::spawn(svc.call(1));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error("down");
    tokio_test::assert_pending!(fut.poll());
    // During the backoff no capacity is asked for or held.
    tokio::time::advance(MS * 100).await;
    tokio_test::assert_pending!(fut.poll());
    assert!(
        handle.poll_request().is_pending(),
        "no capacity: the retry waits"
    );
    // Capacity appears: the retry is sent now.
    handle.allow(1);
    tokio_test::assert_pending!(fut.poll());
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req, 1);
    send.send_response(9);
    assert_eq!(tokio_test::assert_ready!(fut.poll()).unwrap(), 9);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_during_backoff_returns_the_budget_withdrawal() {
    // One retry per second is all this budget allows.
    let budget = Budget::ratio(Duration::from_secs(1), 1, 0.0).unwrap();
    let backend = Scripted::new(|_| Err("down"));
    let layer = RetryLayer::builder()
        .backoff(constant(500))
        .budget(budget.clone())
        .build()
        .unwrap();
    let mut svc = layer.layer(backend.clone());
    let mut fut = tokio_test::task::spawn(svc.call(1));
    tokio_test::assert_pending!(fut.poll());
    assert_eq!(backend.count(), 1);
    assert_eq!(
        budget.remaining(),
        0.0,
        "the retry in backoff holds the only token"
    );
    drop(fut);
    assert_eq!(budget.remaining(), 1.0, "dropping mid-backoff gave it back");
    // The refunded token lets the next request retry.
    let result = layer.layer(backend.clone()).oneshot(2).await;
    assert_eq!(result, Err("down"));
    assert_eq!(backend.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_mid_attempt_holds_nothing() {
    let budget = Budget::ratio(Duration::from_secs(1), 1, 0.0).unwrap();
    let (mock, mut handle) = tower_test::mock::pair::<u32, u32>();
    let layer = RetryLayer::builder()
        .budget(budget.clone())
        .build()
        .unwrap();
    let mut svc = layer.layer(mock);
    handle.allow(1);
    svc.ready().await.unwrap();
    let mut fut = tokio_test::task::spawn(svc.call(1));
    tokio_test::assert_pending!(fut.poll());
    let _pending = handle.next_request().await.unwrap();
    drop(fut);
    assert_eq!(budget.remaining(), 1.0);
}

#[tokio::test(start_paused = true)]
async fn an_inner_readiness_error_during_a_retry_is_returned() {
    let (mock, mut handle) = tower_test::mock::pair::<u32, u32>();
    let layer = RetryLayer::builder()
        .backoff(constant(0))
        .no_budget()
        .build()
        .unwrap();
    let mut svc = layer.layer(mock);
    handle.allow(1);
    svc.ready().await.unwrap();
    let mut fut = tokio_test::task::spawn(svc.call(1));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error("down");
    handle.send_error("broken");
    let err = tokio_test::assert_ready!(fut.poll()).unwrap_err();
    assert_eq!(err.to_string(), "broken");
}

#[test]
fn invalid_configuration_names_the_field() {
    let err = RetryLayer::builder().max_attempts(0).build().unwrap_err();
    assert_eq!(err.field(), "retry.max_attempts");
    let err = RetryLayer::builder()
        .backoff(Backoff::exponential(MS).multiplier(f64::NAN))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "backoff.multiplier");
    let err = RetryLayer::builder()
        .deadline(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "retry.deadline");
}

#[cfg(feature = "http")]
mod http_overrides {
    use super::*;
    use tower_fortify::http::HttpReplay;
    use tower_fortify::retry::RetryOverride;

    async fn calls_for(over: Option<RetryOverride>) -> usize {
        let seen = Arc::new(AtomicU32::new(0));
        let s = seen.clone();
        let backend = service_fn(move |req: http::Request<String>| {
            s.fetch_add(1, Ordering::Relaxed);
            assert_eq!(req.body(), "payload", "every attempt carries the body");
            async { Err::<(), _>("down") }
        });
        let layer = RetryLayer::builder()
            .max_attempts(3)
            .backoff(constant(1))
            .no_budget()
            .replay(HttpReplay)
            .build()
            .unwrap();
        let mut req = http::Request::new(String::from("payload"));
        if let Some(o) = over {
            req.extensions_mut().insert(o);
        }
        let _ = layer.layer(backend).oneshot(req).await;
        seen.load(Ordering::Relaxed) as usize
    }

    #[tokio::test(start_paused = true)]
    async fn request_extensions_change_the_attempts() {
        assert_eq!(calls_for(None).await, 3);
        assert_eq!(calls_for(Some(RetryOverride::disabled())).await, 1);
        assert_eq!(calls_for(Some(RetryOverride::max_attempts(5))).await, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_deadline_overrides_the_layer() {
        let over = RetryOverride::max_attempts(10).with_deadline(MS * 2);
        // Attempts at 0, 1 ms; the third would start at 2 ms, at the deadline.
        assert_eq!(calls_for(Some(over)).await, 2);
    }
}
