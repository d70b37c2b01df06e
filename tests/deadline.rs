//! Deadline propagation: the caller's deadline read from `grpc-timeout` or the HTTP
//! header, honoured by every layer of the handler's own calls, written again on the
//! way out; malformed headers ignored.

#![cfg(all(feature = "http", feature = "stack"))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::hedge::HedgeLayer;
use tower_fortify::http::{
    DEADLINE_HEADER, GRPC_TIMEOUT, InheritDeadlineLayer, MAX_INHERITED, PropagateDeadlineLayer,
    RequestDeadline, format_grpc_timeout, inherited_timeout, parse_deadline_ms, parse_grpc_timeout,
};
use tower_fortify::observe::{Event, HedgeEvent, HedgeSkipReason, RetryEvent, SkipReason};
use tower_fortify::retry::RetryLayer;
use tower_fortify::stack::Stack;
use tower_fortify::timeout::{DeadlineExceeded, current_deadline};

const MS: Duration = Duration::from_millis(1);

type Req = http::Request<String>;
type Res = http::Response<String>;

fn get(headers: &[(&http::HeaderName, &str)]) -> Req {
    let mut b = http::Request::get("/item");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(String::new()).unwrap()
}

/// One backend call: which request, when it started (ms since `t0`), the deadline
/// header it carried.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    id: String,
    at_ms: u64,
    header: Option<String>,
}

#[derive(Clone)]
struct Backends {
    t0: Instant,
    log: Arc<Mutex<Vec<Seen>>>,
    permits: Arc<Semaphore>,
}

impl Backends {
    fn new() -> Self {
        Self {
            t0: Instant::now(),
            log: Arc::default(),
            permits: Arc::new(Semaphore::new(100)),
        }
    }

    /// A backend behind `PropagateDeadlineLayer::http()`: request `x-id: slow-ok`
    /// answers after 150 ms; every other request fails after 100 ms.
    fn backend(
        &self,
    ) -> impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Clone + Send + Sync + use<>
    {
        let me = self.clone();
        let inner = service_fn(move |req: Req| {
            let me = me.clone();
            async move {
                let id = req.headers()["x-id"].to_str().unwrap().to_string();
                me.log.lock().unwrap().push(Seen {
                    id: id.clone(),
                    at_ms: (Instant::now() - me.t0).as_millis() as u64,
                    header: req
                        .headers()
                        .get(DEADLINE_HEADER)
                        .map(|v| v.to_str().unwrap().to_string()),
                });
                let _permit = me.permits.clone().acquire_owned().await.unwrap();
                if id == "slow-ok" {
                    tokio::time::sleep(150 * MS).await;
                    Ok(http::Response::new(id))
                } else {
                    tokio::time::sleep(100 * MS).await;
                    Err::<Res, BoxError>("down".into())
                }
            }
        });
        ServiceBuilder::new()
            .layer(PropagateDeadlineLayer::http())
            .service(inner)
    }

    fn seen(&self, id: &str) -> Vec<Seen> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|s| s.id == id).cloned().collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_deadline_crosses_every_layer() {
    let b = Backends::new();
    let stack = Stack::http_builder()
        .backend("x", b.backend())
        .backend("y", b.backend())
        .deadline(Duration::from_secs(5))
        .bulkhead(|h| h.max_concurrent(1).queue(10, Duration::from_secs(10)))
        .retry(|r| {
            r.backoff(Backoff::constant(20 * MS).jitter(Jitter::None))
                .max_attempts(5)
        })
        .hedge(|h| h.delay(50 * MS))
        .build()
        .unwrap();

    // Request A, with no deadline of its own but the stack's, holds the bulkhead's
    // only permit until 150 ms.
    let mut a = stack.clone();
    let occupant = tokio::spawn(async move {
        let req = {
            let mut r = get(&[]);
            r.headers_mut().insert("x-id", "slow-ok".parse().unwrap());
            r
        };
        a.ready().await.unwrap().call(req).await
    });
    tokio::task::yield_now().await;

    // Request B reaches a server with 400 ms left; the handler calls the stack.
    let handler = service_fn(move |mut req: Req| {
        let mut stack = stack.clone();
        async move {
            assert!(req.extensions().get::<RequestDeadline>().is_some());
            req.headers_mut().insert("x-id", "b".parse().unwrap());
            req.headers_mut().remove(DEADLINE_HEADER);
            stack.ready().await?.call(req).await
        }
    });
    let server = ServiceBuilder::new()
        .layer(InheritDeadlineLayer::new())
        .service(handler);
    let start = Instant::now();
    let err = server
        .oneshot(get(&[(&DEADLINE_HEADER, "400")]))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<DeadlineExceeded>().is_some(), "{err}");
    assert_eq!(
        start.elapsed(),
        400 * MS,
        "cut at the caller's deadline, not the stack's 5 s"
    );
    assert_eq!(occupant.await.unwrap().unwrap().body(), "slow-ok");

    tokio::time::advance(Duration::from_secs(2)).await;
    let seen = b.seen("b");
    // Bulkhead: B waited for A's permit. Hedge: a copy 50 ms after each attempt.
    // Retry: after both copies failed, another attempt (with its own hedge).
    let starts: Vec<u64> = seen.iter().map(|s| s.at_ms).collect();
    assert_eq!(starts, vec![150, 200, 320, 370], "{seen:?}");
    for s in &seen {
        assert!(s.at_ms < 400, "no attempt starts past the deadline");
        assert_eq!(
            s.header.as_deref(),
            Some((400 - s.at_ms).to_string().as_str()),
            "each call carries what is left of the caller's deadline"
        );
    }
    assert_eq!(b.permits.available_permits(), 100, "every copy cancelled");
}

#[tokio::test(start_paused = true)]
async fn grpc_timeout_reaches_the_handler_and_is_written_again() {
    let b = Backends::new();
    let stack = Stack::http_builder()
        .backend("x", b.backend())
        .build()
        .unwrap();
    // The client side of the handler writes grpc-timeout.
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let grpc_client = ServiceBuilder::new()
        .layer(PropagateDeadlineLayer::grpc())
        .service(service_fn(move |req: Req| {
            *s.lock().unwrap() = req.headers().get(GRPC_TIMEOUT).cloned();
            async { Ok::<_, BoxError>(http::Response::new(String::new())) }
        }));
    let handler = service_fn(move |_req: Req| {
        let _ = &stack;
        let client = grpc_client.clone();
        async move {
            let left = current_deadline().expect("in scope") - Instant::now();
            assert_eq!(left, 250 * MS);
            tokio::time::sleep(50 * MS).await;
            client.oneshot(get(&[])).await
        }
    });
    let server = ServiceBuilder::new()
        .layer(InheritDeadlineLayer::new())
        .service(handler);
    server
        .oneshot(get(&[(&GRPC_TIMEOUT, "250m")]))
        .await
        .unwrap();
    assert_eq!(
        seen.lock().unwrap().as_ref().unwrap(),
        "200000u",
        "200 ms left after the handler's own 50 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_passed_sends_nothing() {
    let b = Backends::new();
    let stack = Stack::http_builder()
        .backend("x", b.backend())
        .build()
        .unwrap();
    let handler = service_fn(move |mut req: Req| {
        let mut stack = stack.clone();
        async move {
            req.headers_mut().insert("x-id", "late".parse().unwrap());
            stack.ready().await?.call(req).await
        }
    });
    let server = ServiceBuilder::new()
        .layer(InheritDeadlineLayer::new())
        .service(handler);
    let err = server
        .oneshot(get(&[(&GRPC_TIMEOUT, "0m")]))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<DeadlineExceeded>().is_some());
    assert!(b.seen("late").is_empty(), "the caller had already given up");
}

fn events() -> (
    Arc<Mutex<Vec<Event>>>,
    impl Fn(&Event) + Send + Sync + 'static,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    (log, move |e: &Event| l.lock().unwrap().push(e.clone()))
}

#[tokio::test(start_paused = true)]
async fn retry_alone_starts_no_attempt_past_the_inherited_deadline() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let backend = service_fn(move |_: Req| {
        c.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(100 * MS).await;
            Err::<Res, BoxError>("down".into())
        }
    });
    let (log, listener) = events();
    let retry = RetryLayer::builder()
        .backoff(Backoff::constant(150 * MS).jitter(Jitter::None))
        .no_budget()
        .listener(listener)
        .build()
        .unwrap();
    let server = ServiceBuilder::new()
        .layer(InheritDeadlineLayer::new())
        .layer(retry)
        .service(backend);
    let start = Instant::now();
    server
        .oneshot(get(&[(&DEADLINE_HEADER, "200")]))
        .await
        .unwrap_err();
    assert_eq!(
        start.elapsed(),
        100 * MS,
        "the first failure, not a retry at 250 ms"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        log.lock()
            .unwrap()
            .contains(&Event::Retry(RetryEvent::RetrySkipped {
                attempt: 1,
                reason: SkipReason::Deadline
            }))
    );
}

#[tokio::test(start_paused = true)]
async fn hedge_alone_sends_no_copy_past_the_inherited_deadline() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let backend = service_fn(move |_: Req| {
        c.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(100 * MS).await;
            Ok::<_, BoxError>(http::Response::new(String::new()))
        }
    });
    let (log, listener) = events();
    let hedge = HedgeLayer::builder()
        .delay(50 * MS)
        .no_budget()
        .listener(listener)
        .build()
        .unwrap();
    let server = ServiceBuilder::new()
        .layer(InheritDeadlineLayer::new())
        .layer(hedge)
        .service(backend);
    server
        .oneshot(get(&[(&GRPC_TIMEOUT, "40m")]))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        log.lock()
            .unwrap()
            .contains(&Event::Hedge(HedgeEvent::HedgeSkipped {
                hedge: 1,
                reason: HedgeSkipReason::Deadline
            }))
    );
}

#[tokio::test(start_paused = true)]
async fn a_malformed_header_is_ignored() {
    let handler = service_fn(|req: Req| async move {
        assert!(req.extensions().get::<RequestDeadline>().is_none());
        assert_eq!(current_deadline(), None);
        Ok::<_, BoxError>(http::Response::new(String::new()))
    });
    let server = ServiceBuilder::new()
        .layer(InheritDeadlineLayer::new())
        .service(handler);
    server
        .oneshot(get(&[(&GRPC_TIMEOUT, "soon"), (&DEADLINE_HEADER, "-1")]))
        .await
        .unwrap();
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
        let _ = parse_grpc_timeout(&bytes);
        let _ = parse_deadline_ms(&bytes);
        if let Ok(v) = http::HeaderValue::from_bytes(&bytes) {
            let mut h = http::HeaderMap::new();
            h.insert(GRPC_TIMEOUT, v.clone());
            h.insert(DEADLINE_HEADER, v);
            if let Some(d) = inherited_timeout(&h, &DEADLINE_HEADER) {
                prop_assert!(d <= MAX_INHERITED);
            }
        }
    }

    #[test]
    fn grpc_timeout_round_trips_never_longer(nanos in 0u64..u64::MAX) {
        let d = Duration::from_nanos(nanos);
        let parsed = parse_grpc_timeout(format_grpc_timeout(d).as_bytes()).unwrap();
        prop_assert!(parsed <= d, "never sends more time than is left");
        // At most one unit short, and a unit is at most 60 times the one below, in
        // which the value took more than eight digits: a relative 6e-7.
        prop_assert!(d - parsed <= d / 1_000_000 + Duration::from_nanos(1));
    }
}

#[tokio::test(start_paused = true)]
async fn the_attempt_timeout_is_what_a_backend_is_told_when_it_is_shorter() {
    let b = Backends::new();
    let mut stack = Stack::http_builder()
        .backend("x", b.backend())
        .deadline(Duration::from_secs(5))
        .attempt_timeout(300 * MS)
        .retry(|r| r.max_attempts(1))
        .build()
        .unwrap();
    let mut req = get(&[]);
    req.headers_mut().insert("x-id", "short".parse().unwrap());
    stack.ready().await.unwrap().call(req).await.unwrap_err();
    assert_eq!(b.seen("short")[0].header.as_deref(), Some("300"));
}
