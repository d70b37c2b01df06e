//! Behaviour of the circuit breaker layer, in paused time.
#![cfg(feature = "circuit-breaker")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{Instant, advance};
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::circuit_breaker::error::CircuitOpen;
use tower_fortify::circuit_breaker::{CircuitBreakerLayer, CircuitState, Mode, TripReason};
use tower_fortify::classify::{Outcome, ServerHint, classify_fn};
use tower_fortify::observe::{CircuitBreakerEvent, Event};

/// What a test call does.
enum Call {
    Ok,
    Fail,
    /// Completes when the sender says: `true` succeeds, `false` fails.
    Wait(oneshot::Receiver<bool>),
    /// Takes this long, then succeeds.
    Slow(Duration),
}

fn backend() -> impl Service<Call, Response = (), Error = BoxError, Future: Send> + Clone {
    service_fn(|call: Call| async move {
        match call {
            Call::Ok => Ok(()),
            Call::Fail => Err::<(), BoxError>("backend failed".into()),
            Call::Wait(rx) => {
                if rx.await.unwrap_or(false) {
                    Ok(())
                } else {
                    Err("backend failed".into())
                }
            }
            Call::Slow(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        }
    })
}

async fn send<S>(svc: &mut S, call: Call) -> Result<(), BoxError>
where
    S: Service<Call, Response = (), Error: Into<BoxError>>,
{
    // The breaker's `BreakerError` becomes a `BoxError` as any layer above would
    // turn it into one.
    let svc = svc.ready().await.map_err(Into::into)?;
    svc.call(call).await.map_err(Into::into)
}

fn is_open(r: &Result<(), BoxError>) -> bool {
    matches!(r, Err(e) if e.is::<CircuitOpen>())
}

fn events() -> (
    Arc<Mutex<Vec<CircuitBreakerEvent>>>,
    impl Fn(&Event) + Send + Sync,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let listener = move |e: &Event| {
        if let Event::CircuitBreaker(e) = e {
            log.lock().unwrap().push(e.clone());
        }
    };
    (seen, listener)
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_trip_and_reject_with_retry_time() {
    let layer = CircuitBreakerLayer::builder()
        .no_count_window()
        .consecutive_failures(3)
        .open_duration(Duration::from_secs(10))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    send(&mut svc, Call::Fail).await.unwrap_err();
    send(&mut svc, Call::Fail).await.unwrap_err();
    send(&mut svc, Call::Ok).await.unwrap();
    send(&mut svc, Call::Fail).await.unwrap_err();
    send(&mut svc, Call::Fail).await.unwrap_err();
    assert_eq!(
        handle.state(),
        CircuitState::Closed,
        "a success resets the count"
    );
    let start = Instant::now();
    send(&mut svc, Call::Fail).await.unwrap_err();
    assert_eq!(handle.state(), CircuitState::Open);
    advance(Duration::from_secs(4)).await;
    let err = send(&mut svc, Call::Ok).await.unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().expect("CircuitOpen");
    assert_eq!(open.retry_at(), Some(start + Duration::from_secs(10)));
    assert_eq!(open.retry_after(), Some(Duration::from_secs(6)));
    assert!(open.to_string().contains("open"));
}

#[tokio::test(start_paused = true)]
async fn count_window_slides_over_the_last_n_calls() {
    let layer = CircuitBreakerLayer::builder()
        .no_consecutive_failures()
        .count_window(100)
        .failure_rate(0.5)
        .minimum_calls(100)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    for _ in 0..100 {
        send(&mut svc, Call::Ok).await.unwrap();
    }
    for i in 1..=49 {
        send(&mut svc, Call::Fail).await.unwrap_err();
        assert_eq!(handle.state(), CircuitState::Closed, "after {i} failures");
    }
    let f = handle.figures().count_window.unwrap();
    assert_eq!((f.calls, f.failures), (100.0, 49));
    send(&mut svc, Call::Fail).await.unwrap_err();
    assert_eq!(
        handle.state(),
        CircuitState::Open,
        "50 failures in the last 100 calls"
    );
}

#[tokio::test(start_paused = true)]
async fn count_window_waits_for_minimum_calls() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(10)
        .failure_rate(0.5)
        .minimum_calls(4)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    for _ in 0..3 {
        send(&mut svc, Call::Fail).await.unwrap_err();
    }
    assert_eq!(handle.state(), CircuitState::Closed);
    send(&mut svc, Call::Fail).await.unwrap_err();
    assert_eq!(handle.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_buckets() {
    let layer = CircuitBreakerLayer::builder()
        .no_consecutive_failures()
        .no_count_window()
        .time_window(Duration::from_secs(10))
        .failure_rate(0.5)
        .minimum_calls(4)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    for _ in 0..3 {
        send(&mut svc, Call::Fail).await.unwrap_err();
    }
    advance(Duration::from_secs(11)).await;
    assert_eq!(handle.figures().time_window.unwrap().failures, 0);
    for _ in 0..3 {
        send(&mut svc, Call::Fail).await.unwrap_err();
    }
    assert_eq!(
        handle.state(),
        CircuitState::Closed,
        "the first three failures left the window"
    );
    send(&mut svc, Call::Fail).await.unwrap_err();
    assert_eq!(handle.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn time_window_counts_successes_against_failures() {
    let layer = CircuitBreakerLayer::builder()
        .no_consecutive_failures()
        .no_count_window()
        .time_window(Duration::from_secs(10))
        .failure_rate(0.5)
        .minimum_calls(4)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    for _ in 0..10 {
        send(&mut svc, Call::Ok).await.unwrap();
        advance(Duration::from_millis(500)).await;
    }
    for _ in 0..9 {
        send(&mut svc, Call::Fail).await.unwrap_err();
    }
    let f = handle.figures().time_window.unwrap();
    assert!((f.calls - 19.0).abs() < 1e-6, "{f:?}");
    assert_eq!(handle.state(), CircuitState::Closed, "9 of 19 failed");
    send(&mut svc, Call::Fail).await.unwrap_err();
    assert_eq!(handle.state(), CircuitState::Open, "10 of 20 failed");
}

fn probing_layer(probes: u32) -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .no_count_window()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(1))
        .half_open_probes(probes)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_only_the_probes_and_closes_when_they_succeed() {
    let layer = probing_layer(2);
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    send(&mut svc, Call::Fail).await.unwrap_err();
    assert!(is_open(&send(&mut svc, Call::Ok).await));
    advance(Duration::from_secs(1)).await;
    let (tx1, rx1) = oneshot::channel();
    let (tx2, rx2) = oneshot::channel();
    let mut p1 = task::spawn(svc.ready().await.unwrap().call(Call::Wait(rx1)));
    let mut p2 = task::spawn(svc.ready().await.unwrap().call(Call::Wait(rx2)));
    assert_eq!(handle.state(), CircuitState::HalfOpen);
    assert_eq!(handle.probes_admitted(), 2);
    let third = send(&mut svc, Call::Ok).await;
    assert!(is_open(&third), "a third call is rejected while probing");
    assert_pending!(p1.poll());
    tx1.send(true).unwrap();
    assert_ready_ok!(p1.poll());
    assert_eq!(
        handle.state(),
        CircuitState::HalfOpen,
        "one probe is not enough"
    );
    tx2.send(true).unwrap();
    assert_ready_ok!(p2.poll());
    assert_eq!(handle.state(), CircuitState::Closed);
    send(&mut svc, Call::Ok).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens() {
    let layer = probing_layer(3);
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    send(&mut svc, Call::Fail).await.unwrap_err();
    advance(Duration::from_secs(1)).await;
    send(&mut svc, Call::Ok).await.unwrap();
    assert_eq!(handle.state(), CircuitState::HalfOpen);
    send(&mut svc, Call::Fail).await.unwrap_err();
    assert_eq!(handle.state(), CircuitState::Open);
    assert!(is_open(&send(&mut svc, Call::Ok).await));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_probe_returns_its_slot_and_records_nothing() {
    let layer = probing_layer(1);
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    send(&mut svc, Call::Fail).await.unwrap_err();
    advance(Duration::from_secs(1)).await;
    let (_tx, rx) = oneshot::channel();
    let mut probe = task::spawn(svc.ready().await.unwrap().call(Call::Wait(rx)));
    assert_pending!(probe.poll());
    assert_eq!(handle.probes_admitted(), 1);
    assert!(
        is_open(&send(&mut svc, Call::Ok).await),
        "the only slot is taken"
    );
    drop(probe);
    assert_eq!(handle.probes_admitted(), 0, "the slot came back");
    assert_eq!(
        handle.state(),
        CircuitState::HalfOpen,
        "nothing was recorded"
    );
    send(&mut svc, Call::Ok).await.unwrap();
    assert_eq!(handle.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_stale_success_never_closes_the_breaker() {
    let layer = probing_layer(1);
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    // Admitted while closed, completes much later.
    let (tx, rx) = oneshot::channel();
    let mut old = task::spawn(svc.ready().await.unwrap().call(Call::Wait(rx)));
    assert_pending!(old.poll());
    send(&mut svc, Call::Fail).await.unwrap_err();
    advance(Duration::from_secs(1)).await;
    let (_probe_tx, probe_rx) = oneshot::channel();
    let mut probe = task::spawn(svc.ready().await.unwrap().call(Call::Wait(probe_rx)));
    assert_pending!(probe.poll());
    assert_eq!(handle.state(), CircuitState::HalfOpen);
    tx.send(true).unwrap();
    assert_ready_ok!(old.poll());
    assert_eq!(
        handle.state(),
        CircuitState::HalfOpen,
        "the success from an older generation was ignored"
    );
    assert_eq!(handle.probes_admitted(), 1);
}

/// A growing open time with full jitter still stays within ±10 % of the backoff's
/// raw delay: full jitter over `0..d` would sometimes reopen after a few ms.
#[tokio::test(start_paused = true)]
async fn open_backoff_jitter_is_bounded_to_ten_percent() {
    let layer = CircuitBreakerLayer::builder()
        .no_count_window()
        .consecutive_failures(1)
        .half_open_probes(1)
        .open_backoff(Backoff::exponential(Duration::from_secs(1)).jitter(Jitter::Full))
        .rng(tower_fortify::rng::Rng::seeded(5))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    for trip in 0..20 {
        // Reset, so that every trip is the first and its raw delay is 1 s.
        handle.reset();
        send(&mut svc, Call::Fail).await.unwrap_err();
        let open = handle.open_until().unwrap() - Instant::now();
        assert!(
            (Duration::from_millis(900)..=Duration::from_millis(1100)).contains(&open),
            "trip {trip}: open for {open:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn open_duration_grows_with_each_trip_and_resets_after_staying_closed() {
    let layer = CircuitBreakerLayer::builder()
        .no_count_window()
        .consecutive_failures(1)
        .half_open_probes(1)
        .open_backoff(
            Backoff::exponential(Duration::from_secs(1))
                .max_delay(Duration::from_secs(4))
                .jitter(Jitter::None),
        )
        .reset_backoff_after(Duration::from_secs(30))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    send(&mut svc, Call::Fail).await.unwrap_err();
    let mut opened = Vec::new();
    for _ in 0..4 {
        let until = handle.open_until().unwrap();
        opened.push(until - Instant::now());
        advance(until - Instant::now()).await;
        send(&mut svc, Call::Fail).await.unwrap_err(); // the probe fails
    }
    assert_eq!(
        opened,
        [1, 2, 4, 4].map(Duration::from_secs),
        "doubles up to the cap"
    );
    advance(Duration::from_secs(4)).await;
    send(&mut svc, Call::Ok).await.unwrap();
    assert_eq!(handle.state(), CircuitState::Closed);
    // Closed for less than the reset time: the next trip keeps growing from the cap.
    advance(Duration::from_secs(10)).await;
    send(&mut svc, Call::Fail).await.unwrap_err();
    assert_eq!(
        handle.open_until().unwrap() - Instant::now(),
        Duration::from_secs(4)
    );
    advance(Duration::from_secs(4)).await;
    send(&mut svc, Call::Ok).await.unwrap();
    // Closed for longer than the reset time: back to the first delay.
    advance(Duration::from_secs(31)).await;
    send(&mut svc, Call::Fail).await.unwrap_err();
    assert_eq!(
        handle.open_until().unwrap() - Instant::now(),
        Duration::from_secs(1)
    );
    assert_eq!(handle.figures().consecutive_trips, 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_hint_keeps_the_breaker_open_longer() {
    let classifier = classify_fn(|r: Result<&(), &BoxError>| match r {
        Ok(()) => Outcome::Success,
        Err(_) => Outcome::Overloaded(ServerHint::RetryAfter(Duration::from_secs(30))),
    });
    let layer = CircuitBreakerLayer::builder()
        .no_count_window()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(1))
        .max_server_delay(Duration::from_secs(20))
        .classifier(classifier)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    send(&mut svc, Call::Fail).await.unwrap_err();
    assert_eq!(
        handle.open_until().unwrap() - Instant::now(),
        Duration::from_secs(20),
        "the hint, capped by max_server_delay"
    );
    advance(Duration::from_secs(19)).await;
    assert!(is_open(&send(&mut svc, Call::Ok).await));
    advance(Duration::from_secs(1)).await;
    send(&mut svc, Call::Ok).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_the_slow_call_rate() {
    let (seen, listener) = events();
    let layer = CircuitBreakerLayer::builder()
        .no_consecutive_failures()
        .count_window(10)
        .minimum_calls(4)
        .slow_calls(Duration::from_secs(1), 0.5)
        .listener(listener)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    send(&mut svc, Call::Ok).await.unwrap();
    send(&mut svc, Call::Ok).await.unwrap();
    send(&mut svc, Call::Slow(Duration::from_millis(900)))
        .await
        .unwrap();
    send(&mut svc, Call::Slow(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(handle.state(), CircuitState::Closed, "1 slow of 4");
    send(&mut svc, Call::Slow(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(handle.state(), CircuitState::Closed, "2 slow of 5");
    send(&mut svc, Call::Slow(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(handle.state(), CircuitState::Open, "3 slow of 6");
    assert!(seen.lock().unwrap().contains(&CircuitBreakerEvent::Opened {
        reason: TripReason::SlowCallRate,
        open_for: Duration::from_secs(1),
    }));
}

#[tokio::test(start_paused = true)]
async fn manual_modes() {
    let (seen, listener) = events();
    let layer = CircuitBreakerLayer::builder()
        .no_count_window()
        .consecutive_failures(1)
        .listener(listener)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut changes = handle.subscribe();
    let mut svc = layer.layer(backend());

    handle.force_open();
    assert_eq!(handle.mode(), Mode::ForcedOpen);
    let err = send(&mut svc, Call::Ok).await.unwrap_err();
    assert_eq!(err.downcast_ref::<CircuitOpen>().unwrap().retry_at(), None);
    assert!(changes.has_changed().unwrap());
    assert_eq!(changes.borrow_and_update().mode, Mode::ForcedOpen);

    handle.disable();
    for _ in 0..5 {
        send(&mut svc, Call::Fail).await.unwrap_err();
    }
    assert_eq!(handle.state(), CircuitState::Closed, "disabled never trips");
    assert_eq!(
        handle.figures().consecutive_failures,
        5,
        "but still records"
    );

    handle.resume();
    send(&mut svc, Call::Fail).await.unwrap_err();
    assert_eq!(handle.state(), CircuitState::Open);

    handle.metrics_only();
    send(&mut svc, Call::Ok).await.unwrap();
    assert_eq!(
        handle.state(),
        CircuitState::Open,
        "shadow calls are not recorded"
    );
    assert!(seen.lock().unwrap().iter().any(|e| matches!(
        e,
        CircuitBreakerEvent::WouldReject {
            retry_after: Some(_)
        }
    )));

    handle.force_closed();
    assert_eq!(handle.status().mode, Mode::Automatic);
    assert_eq!(handle.state(), CircuitState::Closed);
    send(&mut svc, Call::Ok).await.unwrap();

    handle.force_open();
    handle.reset();
    assert_eq!(handle.mode(), Mode::Automatic);
    assert_eq!(handle.state(), CircuitState::Closed);
    assert_eq!(handle.figures().consecutive_trips, 0);
    let status = *changes.borrow_and_update();
    assert_eq!(
        (status.state, status.mode),
        (CircuitState::Closed, Mode::Automatic)
    );

    let log = seen.lock().unwrap();
    assert!(log.contains(&CircuitBreakerEvent::StateChanged {
        from: CircuitState::Closed,
        to: CircuitState::Open
    }));
    assert!(log.contains(&CircuitBreakerEvent::Rejected { retry_after: None }));
    assert!(log.contains(&CircuitBreakerEvent::ModeChanged {
        mode: Mode::Disabled
    }));
}

#[tokio::test(start_paused = true)]
async fn one_layer_is_one_breaker_for_every_service_it_wraps() {
    let layer = probing_layer(1);
    let mut a = layer.layer(backend());
    let mut b = layer.clone().layer(backend());
    send(&mut a, Call::Fail).await.unwrap_err();
    assert!(is_open(&send(&mut b, Call::Ok).await));
}

#[tokio::test(start_paused = true)]
async fn keyed_breakers_isolate_keys_and_stay_within_their_bound() {
    let layer = CircuitBreakerLayer::builder()
        .no_count_window()
        .consecutive_failures(1)
        .keyed(|req: &(u32, bool)| req.0)
        .max_keys(3)
        .idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(|(_, ok): (u32, bool)| async move {
        if ok {
            Ok(())
        } else {
            Err::<(), BoxError>("down".into())
        }
    }));
    let mut send = async |key: u32, ok: bool| svc.ready().await.unwrap().call((key, ok)).await;
    send(1, false).await.unwrap_err();
    assert!(matches!(send(1, true).await, Err(e) if e.is::<CircuitOpen>()));
    send(2, true).await.unwrap();
    send(3, true).await.unwrap();
    assert_eq!(handle.get(&1).unwrap().state(), CircuitState::Open);
    assert_eq!(handle.get(&2).unwrap().state(), CircuitState::Closed);
    assert_eq!(handle.len(), 3);
    assert!(handle.contains_key(&3) && !handle.contains_key(&4));

    // Full: a new key evicts the least recently used closed breaker (2), not the
    // open one.
    advance(Duration::from_secs(1)).await;
    send(3, true).await.unwrap();
    send(4, true).await.unwrap();
    assert_eq!(handle.len(), 3);
    assert!(handle.get(&2).is_none());
    assert_eq!(handle.get(&1).unwrap().state(), CircuitState::Open);

    // Idle keys go first, all of them.
    advance(Duration::from_secs(61)).await;
    send(4, true).await.unwrap();
    send(5, true).await.unwrap();
    assert_eq!(handle.len(), 2);
    assert!(handle.get(&1).is_none() && handle.get(&3).is_none());
    for key in 10..100 {
        send(key, true).await.unwrap();
        assert!(handle.len() <= 3);
    }
}

#[test]
fn invalid_settings_name_their_field() {
    let field =
        |b: tower_fortify::circuit_breaker::CircuitBreakerBuilder| b.build().unwrap_err().field();
    let b = CircuitBreakerLayer::builder;
    assert_eq!(field(b().count_window(0)), "breaker.count_window");
    assert_eq!(
        field(b().consecutive_failures(0)),
        "breaker.consecutive_failures"
    );
    assert_eq!(
        field(b().time_window(Duration::ZERO)),
        "breaker.time_window"
    );
    assert_eq!(
        field(
            b().time_window(Duration::from_secs(1))
                .time_window_buckets(0)
        ),
        "breaker.time_window_buckets"
    );
    assert_eq!(field(b().failure_rate(1.5)), "breaker.failure_rate");
    assert_eq!(field(b().failure_rate(-0.1)), "breaker.failure_rate");
    assert_eq!(field(b().failure_rate(0.0)), "breaker.failure_rate");
    assert_eq!(field(b().failure_rate(f64::NAN)), "breaker.failure_rate");
    assert_eq!(
        field(b().slow_calls(Duration::from_secs(1), f64::NAN)),
        "breaker.slow_call_rate"
    );
    assert_eq!(
        field(b().slow_calls(Duration::ZERO, 0.5)),
        "breaker.slow_call_threshold"
    );
    assert_eq!(
        field(
            b().no_count_window()
                .consecutive_failures(2)
                .slow_calls(Duration::from_secs(1), 0.5)
        ),
        "breaker.slow_call_rate"
    );
    assert_eq!(field(b().half_open_probes(0)), "breaker.half_open_probes");
    assert_eq!(
        field(b().open_duration(Duration::ZERO)),
        "breaker.open_duration"
    );
    assert_eq!(
        field(b().open_backoff(
            Backoff::exponential(Duration::from_secs(2)).max_delay(Duration::from_secs(1))
        )),
        "backoff.max_delay"
    );
    assert_eq!(
        field(b().count_window(10).minimum_calls(11)),
        "breaker.minimum_calls"
    );
    assert_eq!(
        field(b().no_count_window().no_consecutive_failures()),
        "breaker.trip_conditions"
    );
    let keyed = |max: usize, idle: Duration| {
        b().keyed(|r: &u32| *r)
            .max_keys(max)
            .idle_timeout(idle)
            .build()
            .unwrap_err()
            .field()
    };
    assert_eq!(keyed(0, Duration::from_secs(1)), "breaker.max_keys");
    assert_eq!(keyed(1, Duration::ZERO), "breaker.idle_timeout");
    assert!(CircuitBreakerLayer::builder().build().is_ok());
}

#[tokio::test(start_paused = true)]
async fn poll_ready_passes_on_the_inner_readiness_and_rejects_only_in_call() {
    let layer = probing_layer(1);
    let handle = layer.handle();
    let (mut svc, mut mock_handle) =
        tower_test::mock::spawn_with::<(), (), _, _>(|mock| layer.layer(mock));
    mock_handle.allow(0);
    assert_pending!(svc.poll_ready());
    handle.force_open();
    assert_pending!(
        svc.poll_ready(),
        "an open breaker does not change readiness"
    );
    mock_handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
    let err = svc.call(()).await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_is_recorded_as_neither_success_nor_failure() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .count_window(10)
        .minimum_calls(5)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    send(&mut svc, Call::Fail).await.unwrap_err();
    let (tx, rx) = oneshot::channel();
    let mut call = task::spawn(svc.ready().await.unwrap().call(Call::Wait(rx)));
    assert_pending!(call.poll());
    drop(call);
    drop(tx);
    let f = handle.figures();
    assert_eq!(f.consecutive_failures, 1, "no success reset the count");
    assert_eq!(
        f.count_window.unwrap().calls,
        1.0,
        "the dropped call was not counted"
    );
}

#[tokio::test(start_paused = true)]
async fn time_window_places_a_burst_of_successes_after_a_quiet_hour() {
    let layer = CircuitBreakerLayer::builder()
        .no_consecutive_failures()
        .no_count_window()
        .time_window(Duration::from_secs(10))
        .failure_rate(0.5)
        .minimum_calls(10)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    advance(Duration::from_secs(3600)).await;
    for _ in 0..20 {
        for _ in 0..100 {
            send(&mut svc, Call::Ok).await.unwrap();
        }
        advance(Duration::from_millis(250)).await;
    }
    for _ in 0..20 {
        send(&mut svc, Call::Fail).await.unwrap_err();
    }
    let f = handle.figures().time_window.unwrap();
    assert!(
        f.calls > 1800.0,
        "the burst counts in the window, not spread over the quiet hour: {f:?}"
    );
    assert_eq!(
        handle.state(),
        CircuitState::Closed,
        "20 failures of 2000 calls"
    );
}

#[tokio::test(start_paused = true)]
async fn a_listener_may_use_the_handle() {
    let handle_cell = Arc::new(std::sync::OnceLock::<
        tower_fortify::circuit_breaker::CircuitBreakerHandle,
    >::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (cell, log) = (handle_cell.clone(), seen.clone());
    let layer = CircuitBreakerLayer::builder()
        .no_count_window()
        .consecutive_failures(1)
        .listener(move |e: &Event| {
            if let (Event::CircuitBreaker(CircuitBreakerEvent::StateChanged { to, .. }), Some(h)) =
                (e, cell.get())
            {
                // Events are delivered after the breaker's lock is released.
                let _ = h.figures();
                log.lock().unwrap().push((*to, h.state()));
            }
        })
        .build()
        .unwrap();
    handle_cell.set(layer.handle()).unwrap();
    let mut svc = layer.layer(backend());
    send(&mut svc, Call::Fail).await.unwrap_err();
    assert_eq!(
        *seen.lock().unwrap(),
        [(CircuitState::Open, CircuitState::Open)]
    );
}

/// A paused runtime whose clock started before the layer was built (the shape of a
/// `main` or a test that builds its runtime first and its layers outside it).
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

fn retry_after(r: &Result<(), BoxError>) -> Option<Duration> {
    match r {
        Err(e) => e.downcast_ref::<CircuitOpen>()?.retry_after(),
        Ok(()) => None,
    }
}

/// The breaker's epoch used to be read when it was built: outside the runtime that
/// clock disagrees with the paused one, and the open time ran late by the gap.
#[test]
fn breaker_built_outside_the_runtime_keeps_runtime_time() {
    for runtime_first in [true, false] {
        let early = runtime_first.then(paused_runtime);
        let layer = CircuitBreakerLayer::builder()
            .no_count_window()
            .consecutive_failures(1)
            .open_duration(Duration::from_secs(1))
            .build()
            .unwrap();
        let mut svc = layer.layer(backend());
        let rt = early.unwrap_or_else(paused_runtime);
        rt.block_on(async move {
            assert!(send(&mut svc, Call::Fail).await.is_err());
            let r = send(&mut svc, Call::Ok).await;
            assert_eq!(retry_after(&r), Some(Duration::from_secs(1)));
            advance(Duration::from_millis(400)).await;
            let r = send(&mut svc, Call::Ok).await;
            assert_eq!(retry_after(&r), Some(Duration::from_millis(600)));
            advance(Duration::from_millis(600)).await;
            send(&mut svc, Call::Ok)
                .await
                .expect("admitted once the open time passed");
        });
    }
}

/// An open time past `u64::MAX` nanoseconds (584 years) used to wrap: this one,
/// `2^64 ns + 1 s`, opened the breaker for one second.
#[tokio::test(start_paused = true)]
async fn open_time_beyond_u64_nanoseconds_saturates() {
    let huge = Duration::new(18_446_744_074, 709_551_616);
    assert_eq!(huge.as_nanos(), (1u128 << 64) + 1_000_000_000);
    let layer = CircuitBreakerLayer::builder()
        .no_count_window()
        .consecutive_failures(1)
        .open_duration(huge)
        .build()
        .unwrap();
    let mut svc = layer.layer(backend());
    assert!(send(&mut svc, Call::Fail).await.is_err());
    advance(Duration::from_secs(2)).await;
    let r = send(&mut svc, Call::Ok).await;
    assert!(is_open(&r), "still open after two seconds");
    assert!(retry_after(&r).unwrap() > Duration::from_secs(86_400 * 365 * 500));
}

/// A lower failure rate set on a running breaker judges the window it already has:
/// the same failures that left it closed under 50 % trip it under 30 %.
#[tokio::test(start_paused = true)]
async fn a_reconfigured_failure_rate_judges_the_window_kept() {
    let settings = |rate: f64| {
        CircuitBreakerLayer::builder()
            .no_consecutive_failures()
            .count_window(10)
            .minimum_calls(10)
            .failure_rate(rate)
    };
    let layer = settings(0.5).build().unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    for i in 0..10 {
        let call = if i < 3 { Call::Fail } else { Call::Ok };
        let _ = send(&mut svc, call).await;
    }
    assert_eq!(handle.state(), CircuitState::Closed, "3 of 10 under 50 %");
    let before = handle.figures();
    handle.reconfigure(&settings(0.3)).unwrap();
    assert_eq!(handle.figures(), before, "the window is kept");
    assert_eq!(
        handle.state(),
        CircuitState::Closed,
        "judged at the next call"
    );
    let _ = send(&mut svc, Call::Fail).await;
    assert_eq!(handle.state(), CircuitState::Open, "3 of 10 at 30 % trips");
    // A change of the window's size is refused, and nothing changes.
    let err = handle
        .reconfigure(&settings(0.3).count_window(20))
        .unwrap_err();
    assert_eq!(err.field(), "breaker.count_window");
    assert_eq!(handle.state(), CircuitState::Open);
}

/// More probe slots set while open are the ones the next half-open period offers.
#[tokio::test(start_paused = true)]
async fn reconfigured_probes_and_open_duration_apply_to_the_next_period() {
    let settings = |probes: u32, open: u64| {
        CircuitBreakerLayer::builder()
            .consecutive_failures(1)
            .half_open_probes(probes)
            .open_duration(Duration::from_secs(open))
    };
    let layer = settings(1, 10).build().unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend());
    let _ = send(&mut svc, Call::Fail).await;
    assert_eq!(handle.state(), CircuitState::Open);
    let until = handle.open_until().unwrap();
    handle.reconfigure(&settings(2, 1)).unwrap();
    assert_eq!(
        handle.open_until(),
        Some(until),
        "the current period is kept"
    );
    advance(Duration::from_secs(10)).await;
    let (tx1, rx1) = oneshot::channel();
    let (tx2, rx2) = oneshot::channel();
    let (mut c1, mut c2) = (svc.clone(), svc.clone());
    let mut p1 = task::spawn(send(&mut c1, Call::Wait(rx1)));
    assert_pending!(p1.poll());
    let mut p2 = task::spawn(send(&mut c2, Call::Wait(rx2)));
    assert_pending!(p2.poll());
    assert_eq!(handle.probes_admitted(), 2, "two probe slots now");
    tx1.send(false).unwrap();
    let _ = p1.await;
    drop(tx2);
    let _ = p2.await;
    assert_eq!(handle.state(), CircuitState::Open);
    let open_for = handle.open_until().unwrap() - Instant::now();
    assert_eq!(open_for, Duration::from_secs(1), "the new open duration");
}
