//! The one-call stack: what it does for the caller with nothing configured, in paused
//! time (attempts go to untried backends, the deadline reaches the retry layer, load
//! shedding keeps a backend in rotation, errors name their field).

#![cfg(feature = "stack")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::circuit_breaker::CircuitState;
use tower_fortify::classify::{Outcome, classify_fn};
use tower_fortify::failover::{Backend, BackendHealth};
use tower_fortify::rng::Rng;
use tower_fortify::stack::Stack;
use tower_fortify::timeout::{DeadlineExceeded, Elapsed};

#[derive(Clone, Copy)]
enum Mode {
    Ok,
    Fail,
    Shed,
    Hang,
}

#[derive(Debug)]
struct Shed;
impl std::fmt::Display for Shed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("queue full")
    }
}
impl std::error::Error for Shed {}

fn backend(
    mode: Mode,
    calls: Arc<AtomicU32>,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send {
    service_fn(move |req: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            match mode {
                Mode::Ok => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Ok(req)
                }
                Mode::Fail => Err::<u32, BoxError>("refused".into()),
                Mode::Shed => Err(Box::new(Shed) as BoxError),
                Mode::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(req)
                }
            }
        }
    })
}

fn counter() -> Arc<AtomicU32> {
    Arc::new(AtomicU32::new(0))
}

/// With nothing set per request, a failed attempt is retried on the backend that
/// has not had the request: every request succeeds, and the failing backend gets
/// each request at most once.
#[tokio::test(start_paused = true)]
async fn a_retry_goes_to_a_backend_the_request_has_not_tried() {
    let (bad, good) = (counter(), counter());
    let mut stack = Stack::builder()
        .backend("bad", backend(Mode::Fail, bad.clone()))
        .backend("good", backend(Mode::Ok, good.clone()))
        .rng(Rng::seeded(7))
        .build()
        .unwrap();
    for i in 0..4 {
        let before = bad.load(Ordering::SeqCst);
        let answer = stack.ready().await.unwrap().call(i).await.unwrap();
        assert_eq!(answer, i);
        assert!(
            bad.load(Ordering::SeqCst) - before <= 1,
            "request {i} sent twice to `bad`"
        );
    }
    assert_eq!(good.load(Ordering::SeqCst), 4);
}

/// The stack's deadline reaches the retry layer as one instant: with 1 s in all, a
/// 400 ms attempt timeout and 100 ms between attempts, attempts start at 0 and 500
/// ms; the third would start at 1 s, so it is not made and the request ends at
/// 900 ms with the second attempt's timeout.
#[tokio::test(start_paused = true)]
async fn no_attempt_starts_past_the_deadline() {
    let calls = counter();
    let mut stack = Stack::builder()
        .backend("slow", backend(Mode::Hang, calls.clone()))
        .deadline(Duration::from_secs(1))
        .attempt_timeout(Duration::from_millis(400))
        .retry(|r| {
            r.max_attempts(5)
                .backoff(Backoff::constant(Duration::from_millis(100)).jitter(Jitter::None))
                .no_budget()
        })
        .build()
        .unwrap();
    let start = Instant::now();
    let err = stack.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(900));
    let elapsed = err
        .downcast_ref::<Elapsed>()
        .expect("the attempt timed out");
    // The attempt timeout is named after the stack and the backend, as its breaker is.
    assert_eq!(elapsed.name(), Some("stack/slow"));
    assert_eq!(
        err.to_string(),
        "stack/slow: attempt timed out after 400 ms"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// The overall deadline cuts whatever runs below it, retries and backoff included.
#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_the_request() {
    let mut stack = Stack::builder()
        .name("payments")
        .backend("slow", backend(Mode::Hang, counter()))
        .deadline(Duration::from_millis(250))
        .build()
        .unwrap();
    let start = Instant::now();
    let err = stack.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    let exceeded = err
        .downcast_ref::<DeadlineExceeded>()
        .expect("the deadline passed");
    assert_eq!(
        exceeded.name(),
        Some("payments"),
        "the stack's deadline has its name"
    );
    assert_eq!(
        err.to_string(),
        "payments: request deadline of 250 ms exceeded"
    );
}

/// A backend that sheds load (its classifier says `Overloaded`) is alive: its
/// breaker stays closed and the router keeps it, where a failing one is cut off.
#[tokio::test(start_paused = true)]
async fn load_shedding_keeps_a_backend_in_rotation() {
    let classifier = classify_fn(|r: Result<&u32, &BoxError>| match r {
        Ok(_) => Outcome::Success,
        Err(e) if e.is::<Shed>() => Outcome::Overloaded(Default::default()),
        Err(_) => Outcome::RetryableFailure,
    });
    let build = |mode| {
        Stack::builder()
            .backend("x", backend(mode, counter()))
            .classifier(classifier)
            .retry(|r| r.max_attempts(1))
            .build()
            .unwrap()
    };
    let mut shedding = build(Mode::Shed);
    let mut failing = build(Mode::Fail);
    for i in 0..50 {
        let _ = shedding.ready().await.unwrap().call(i).await;
        let _ = failing.ready().await.unwrap().call(i).await;
    }
    assert_eq!(shedding.breaker("x").unwrap().state(), CircuitState::Closed);
    assert_eq!(failing.breaker("x").unwrap().state(), CircuitState::Open);
    assert_eq!(
        shedding.router().backend("x").unwrap().health,
        BackendHealth::Healthy
    );
}

/// A backend whose breaker is open is held off in the router until the breaker may
/// admit again, and gets its traffic back within the breaker's 1 s open time once it
/// heals; its failed probes are left to the breaker and never eject it.
#[tokio::test(start_paused = true)]
async fn a_healed_backend_is_back_within_the_open_time() {
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flaky_calls = counter();
    let flag = healthy.clone();
    let seen = flaky_calls.clone();
    let flaky = service_fn(move |req: u32| {
        seen.fetch_add(1, Ordering::SeqCst);
        let ok = flag.load(Ordering::SeqCst);
        async move {
            if ok {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(req)
            } else {
                Err::<u32, BoxError>("refused".into())
            }
        }
    });
    let mut stack = Stack::builder()
        .backend_with(Backend::new("flaky", BoxCloneSyncService::new(flaky)))
        .backend(
            "steady",
            BoxCloneSyncService::new(backend(Mode::Ok, counter())),
        )
        .rng(Rng::seeded(1))
        .build()
        .unwrap();
    // Ten seconds of outage, fifty calls a second: every call succeeds (retried on
    // `steady`), the breaker trips and probes, the router never ejects.
    for i in 0..500 {
        stack.ready().await.unwrap().call(i).await.unwrap();
        tokio::time::advance(Duration::from_millis(20)).await;
    }
    let during = flaky_calls.load(Ordering::SeqCst);
    assert!(during <= 30, "the dead backend took {during} of 500 calls");
    assert_ne!(
        stack.breaker("flaky").unwrap().state(),
        CircuitState::Closed
    );
    assert_eq!(stack.router().backend("flaky").unwrap().ejections, 0);
    healthy.store(true, Ordering::SeqCst);
    let before = flaky_calls.load(Ordering::SeqCst);
    // 1.5 s after it heals: the breaker's 1 s open time, then its probes.
    for i in 0..75 {
        stack.ready().await.unwrap().call(i).await.unwrap();
        tokio::time::advance(Duration::from_millis(20)).await;
    }
    assert_eq!(
        stack.breaker("flaky").unwrap().state(),
        CircuitState::Closed
    );
    let after = flaky_calls.load(Ordering::SeqCst) - before;
    assert!(after >= 10, "the healed backend took {after} calls");
}

#[test]
fn bad_settings_name_their_field() {
    let err = Stack::<BoxCloneSyncService<u32, u32, BoxError>>::builder()
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "stack.backends");
    let one = || Stack::builder().backend("a", backend(Mode::Ok, counter()));
    assert_eq!(
        one().deadline(Duration::ZERO).build().unwrap_err().field(),
        "stack.deadline"
    );
    assert_eq!(
        one()
            .attempt_timeout(Duration::ZERO)
            .build()
            .unwrap_err()
            .field(),
        "stack.attempt_timeout"
    );
    assert_eq!(
        one()
            .retry(|r| r.max_attempts(0))
            .build()
            .unwrap_err()
            .field(),
        "retry.max_attempts"
    );
    assert_eq!(
        one()
            .breaker(|b| b.open_duration(Duration::ZERO))
            .build()
            .unwrap_err()
            .field(),
        "breaker.open_duration"
    );
    assert_eq!(
        one()
            .router(|r| r.base_ejection_time(Duration::ZERO))
            .build()
            .unwrap_err()
            .field(),
        "failover.base_ejection_time"
    );
}

/// The gRPC preset: `UNAVAILABLE` in the response headers is retried on the other
/// backend, with the streamed request body replayed.
#[cfg(feature = "grpc")]
#[tokio::test(start_paused = true)]
async fn the_grpc_preset_retries_unavailable_on_another_backend() {
    use tower_fortify::http::ReplayBody;
    type Req = http::Request<ReplayBody<http_body_util::Full<bytes::Bytes>>>;
    let grpc = |status: &'static str, calls: Arc<AtomicU32>| {
        BoxCloneSyncService::new(service_fn(move |req: Req| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                use http_body_util::BodyExt;
                let body = req.into_body().collect().await?.to_bytes();
                assert_eq!(&body[..], b"payload", "the body is replayed whole");
                Ok::<_, BoxError>(
                    http::Response::builder()
                        .header("grpc-status", status)
                        .body(())
                        .unwrap(),
                )
            }
        }))
    };
    let (down, up) = (counter(), counter());
    let mut stack = Stack::grpc()
        .backend("down", grpc("14", down.clone()))
        .backend("up", grpc("0", up.clone()))
        .rng(Rng::seeded(3))
        .build()
        .unwrap();
    for _ in 0..6 {
        let body = ReplayBody::new(
            http_body_util::Full::new(bytes::Bytes::from_static(b"payload")),
            1024,
        );
        let req = http::Request::post("/pkg.Svc/Call").body(body).unwrap();
        let response = stack.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(response.headers()["grpc-status"], "0");
    }
    assert_eq!(up.load(Ordering::SeqCst), 6);
    assert!(down.load(Ordering::SeqCst) >= 1);
}
