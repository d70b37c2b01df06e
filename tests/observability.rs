//! What an on-call engineer sees: one INFO/WARN line per state transition, carrying
//! the instance's name; repeated warnings at most once a second; durations in whole
//! milliseconds; readable handles; refusals that say which layer refused.

#![cfg(all(feature = "stack", feature = "http"))]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Layer, Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::bulkhead::BulkheadLayer;
use tower_fortify::circuit_breaker::CircuitBreakerLayer;
use tower_fortify::failover::{Backend, BackendHealth, Failover};
use tower_fortify::http::{REJECTED_HEADER, Rejection};
use tower_fortify::retry::RetryLayer;
use tracing_subscriber::fmt::MakeWriter;

/// Log lines written while `f` runs, at INFO and above, without colours.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
    fn count(&self, text: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(text)).count()
    }
}

/// The tests of this file run one at a time: a thread-local subscriber set while
/// another test's thread registers the same callsites can miss events (tracing
/// caches each callsite's interest process-wide), which made these tests flaky.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(out.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (out, tracing::subscriber::set_default(subscriber))
}

fn failing() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|_: u32| async { Err::<u32, BoxError>("refused".into()) })
}

fn ok() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|x: u32| async move { Ok::<_, BoxError>(x) })
}

/// A keyed breaker with a key label names each key's breaker after the key: the
/// line says which tenant tripped, and the other tenants' breakers stay quiet.
#[tokio::test(start_paused = true)]
async fn keyed_breakers_carry_their_key() {
    let _serial = serial().await;
    let (logs, _guard) = capture();
    let layer = CircuitBreakerLayer::builder()
        .name("payments")
        .keyed(|tenant: &u32| *tenant)
        .key_label(|tenant| format!("tenant-{tenant}"))
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|tenant: u32| async move {
        if tenant == 7 {
            Err::<u32, BoxError>("refused".into())
        } else {
            Ok(tenant)
        }
    }));
    for _ in 0..8 {
        let _ = svc.ready().await.unwrap().call(7).await;
        let _ = svc.ready().await.unwrap().call(3).await;
    }
    let opened: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("circuit breaker opened"))
        .collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(
        opened[0].contains("name=\"payments/tenant-7\""),
        "{}",
        opened[0]
    );
    let err = svc.ready().await.unwrap().call(7).await.unwrap_err();
    assert!(err.to_string().contains("payments/tenant-7"), "{err}");
}

/// A keyed bulkhead with a key label says which key was refused.
#[tokio::test(start_paused = true)]
async fn keyed_bulkheads_carry_their_key() {
    let _serial = serial().await;
    let (logs, _guard) = capture();
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .name("db")
        .keyed(|tenant: &u32| *tenant)
        .max_keys(16)
        .key_label(|tenant| format!("tenant-{tenant}"))
        .build()
        .unwrap();
    let hang = service_fn(|_: u32| std::future::pending::<Result<u32, BoxError>>());
    let mut svc = layer.layer(hang);
    let _held = svc.ready().await.unwrap().call(7);
    let _other = svc.ready().await.unwrap().call(3);
    let refused = svc.ready().await.unwrap().call(7).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .starts_with("db/tenant-7: bulkhead full"),
        "{refused}"
    );
    let lines: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("bulkhead full"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("name=\"db/tenant-7\""), "{}", lines[0]);
}

/// A limit changed by hand is one INFO line with the name and both limits.
#[tokio::test(start_paused = true)]
async fn a_limit_change_is_logged_with_the_name() {
    let _serial = serial().await;
    let (logs, _guard) = capture();
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent(8)
        .name("db")
        .build()
        .unwrap();
    bulkhead.handle().set_limit(4).unwrap();
    bulkhead.handle().set_limit(4).unwrap(); // no change, no line
    let lines: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("bulkhead limit changed"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("INFO"), "{}", lines[0]);
    assert!(
        lines[0].contains("name=\"db\"")
            && lines[0].contains("from=8")
            && lines[0].contains("to=4"),
        "{}",
        lines[0]
    );
}

/// The breaker's three transitions, each one line at WARN or INFO with the name, the
/// open time in whole milliseconds.
#[tokio::test(start_paused = true)]
async fn breaker_transitions_are_one_line_each_with_the_name() {
    let _serial = serial().await;
    let (logs, _guard) = capture();
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = healthy.clone();
    let backend = service_fn(move |x: u32| {
        let up = flag.load(std::sync::atomic::Ordering::SeqCst);
        async move {
            if up {
                Ok(x)
            } else {
                Err::<u32, BoxError>("refused".into())
            }
        }
    });
    let layer = CircuitBreakerLayer::builder()
        .name("payments")
        .build()
        .unwrap();
    let mut svc = layer.layer(backend);
    for i in 0..8 {
        let _ = svc.ready().await.unwrap().call(i).await;
    }
    let opened: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("circuit breaker opened"))
        .collect();
    assert_eq!(opened.len(), 1, "{:?}", logs.lines());
    assert!(opened[0].contains("WARN"), "{}", opened[0]);
    assert!(opened[0].contains("name=\"payments\""), "{}", opened[0]);
    assert!(
        opened[0].contains("reason=\"consecutive_failures\""),
        "{}",
        opened[0]
    );
    assert!(opened[0].contains("open_ms=1000"), "{}", opened[0]);
    // The rejection's message names the breaker and has no sub-millisecond noise.
    let err = svc.ready().await.unwrap().call(99).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "circuit breaker `payments` is open; retry in 1000 ms"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    for i in 0..5 {
        svc.ready().await.unwrap().call(i).await.unwrap();
    }
    assert_eq!(
        logs.count("circuit breaker half-open: probing"),
        1,
        "{:?}",
        logs.lines()
    );
    assert_eq!(
        logs.count("circuit breaker closed"),
        1,
        "{:?}",
        logs.lines()
    );
    assert!(
        logs.lines()
            .iter()
            .all(|l| !l.contains("INFO") || l.contains("payments"))
    );
}

/// An ejection is one WARN line; the first success after it one INFO line.
#[tokio::test(start_paused = true)]
async fn ejection_and_return_are_logged_once() {
    let _serial = serial().await;
    let (logs, _guard) = capture();
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = down.clone();
    let a = tower::util::BoxCloneSyncService::new(service_fn(move |x: u32| {
        let d = flag.load(std::sync::atomic::Ordering::SeqCst);
        async move {
            if d {
                Err::<u32, BoxError>("refused".into())
            } else {
                Ok(x)
            }
        }
    }));
    let b = tower::util::BoxCloneSyncService::new(ok());
    let mut router = Failover::builder()
        .backend(Backend::new("a", a))
        .backend(Backend::new("b", b))
        .selection(tower_fortify::failover::Selection::WeightedRoundRobin)
        .name("orders")
        .build()
        .unwrap();
    for i in 0..20 {
        let _ = router.ready().await.unwrap().call(i).await;
    }
    let ejected: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("backend ejected"))
        .collect();
    assert_eq!(ejected.len(), 1, "{:?}", logs.lines());
    assert!(ejected[0].contains("WARN") && ejected[0].contains("name=\"orders\""));
    assert!(ejected[0].contains("backend=\"a\"") && ejected[0].contains("duration_ms=2000"));
    // Readable handle: the time left, not a raw instant.
    let health = format!("{:?}", router.handle().backend("a").unwrap().health);
    assert_eq!(health, "Ejected { for: 2000 ms }");
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::advance(Duration::from_millis(2001)).await;
    for i in 0..10 {
        router.ready().await.unwrap().call(i).await.unwrap();
    }
    assert_eq!(
        logs.count("backend back in rotation"),
        1,
        "{:?}",
        logs.lines()
    );
    assert_eq!(
        router.handle().backend("a").unwrap().health,
        BackendHealth::Healthy
    );
}

/// Repeated warnings (budget spent, bulkhead full) are logged at most once a second.
#[tokio::test(start_paused = true)]
async fn repeated_warnings_are_rate_limited_to_one_a_second() {
    let _serial = serial().await;
    let (logs, _guard) = capture();
    let retry = RetryLayer::builder()
        .name("search")
        .budget(tower_fortify::budget::Budget::ratio(Duration::from_secs(10), 1, 0.0).unwrap())
        .backoff(tower_fortify::backoff::Backoff::constant(
            Duration::from_millis(1),
        ))
        .build()
        .unwrap();
    let mut svc = retry.layer(failing());
    for i in 0..50 {
        let _ = svc.ready().await.unwrap().call(i).await;
    }
    assert_eq!(
        logs.count("retry budget exhausted"),
        1,
        "{:?}",
        logs.lines()
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    for i in 0..50 {
        let _ = svc.ready().await.unwrap().call(i).await;
    }
    assert_eq!(logs.count("retry budget exhausted"), 2);
    assert!(
        logs.lines()
            .iter()
            .any(|l| l.contains("WARN") && l.contains("name=\"search\""))
    );

    let bulkhead = BulkheadLayer::builder()
        .max_concurrent(1)
        .name("db")
        .build()
        .unwrap();
    let hang = service_fn(|_: u32| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<u32, BoxError>(0)
    });
    let mut svc = bulkhead.layer(hang);
    let held = svc.ready().await.unwrap().call(0);
    for i in 0..20 {
        assert!(svc.ready().await.unwrap().call(i).await.is_err());
    }
    assert_eq!(logs.count("bulkhead full"), 1, "{:?}", logs.lines());
    drop(held);
}

/// The one-call stack names its parts after itself and each backend.
#[tokio::test(start_paused = true)]
async fn the_stack_names_its_breakers_after_the_backends() {
    let _serial = serial().await;
    let (logs, _guard) = capture();
    let mut stack = tower_fortify::stack::Stack::builder()
        .backend("eu-1", tower::util::BoxCloneSyncService::new(failing()))
        .backend("eu-2", tower::util::BoxCloneSyncService::new(ok()))
        .name("payments")
        .build()
        .unwrap();
    for i in 0..200 {
        stack.ready().await.unwrap().call(i).await.unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    assert!(
        logs.lines()
            .iter()
            .any(|l| l.contains("circuit breaker opened") && l.contains("name=\"payments/eu-1\"")),
        "{:?}",
        logs.lines()
    );
}

/// A refusal says which layer refused, in a header and the body's first word.
#[tokio::test(start_paused = true)]
async fn refusals_name_the_layer_that_refused() {
    let _serial = serial().await;
    let bulkhead = BulkheadLayer::builder().max_concurrent(1).build().unwrap();
    let hang = service_fn(|_: u32| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<u32, BoxError>(0)
    });
    let mut svc = bulkhead.layer(hang);
    let _held = svc.ready().await.unwrap().call(0);
    let full = svc.ready().await.unwrap().call(1).await.unwrap_err();
    let r = Rejection::of(full.as_ref()).unwrap();
    assert_eq!(r.reason(), "bulkhead-full");
    assert_eq!(r.message(), "bulkhead-full: too many requests in flight\n");

    let breaker = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let mut svc = breaker.layer(failing());
    let _ = svc.ready().await.unwrap().call(0).await;
    let open: tower_fortify::BoxError =
        svc.ready().await.unwrap().call(1).await.unwrap_err().into();
    let r = Rejection::of(open.as_ref()).unwrap();
    assert_eq!(r.reason(), "circuit-open");
    assert_eq!(
        r.message(),
        "circuit-open: circuit breaker open; retry after 1000 ms\n"
    );

    #[cfg(feature = "axum")]
    {
        let response = tower_fortify::axum::error_response(open.as_ref());
        assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[REJECTED_HEADER], "circuit-open");
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(
            &body[..],
            b"circuit-open: circuit breaker open; retry after 1000 ms\n"
        );
    }
    #[cfg(feature = "grpc")]
    {
        let status = tower_fortify::grpc::status_of(full.as_ref());
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(
            status.metadata().get(REJECTED_HEADER).unwrap(),
            "bulkhead-full"
        );
    }
    let _ = REJECTED_HEADER;
}
