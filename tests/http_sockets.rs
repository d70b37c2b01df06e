//! Real sockets on 127.0.0.1: axum backends behind a hyper client with retry and
//! body replay, and (the first test) the failover router over per-backend circuit
//! breakers. Every loop is bounded and every test ends by itself.

#![cfg(all(
    feature = "http",
    feature = "retry",
    feature = "failover",
    feature = "circuit-breaker"
))]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::any;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::circuit_breaker::{CircuitBreaker, CircuitBreakerHandle, CircuitBreakerLayer};
use tower_fortify::failover::{Backend as Member, Failover, Tried};
use tower_fortify::http::HttpReplay;
use tower_fortify::http::HttpTried;
use tower_fortify::http::{HttpClassifier, ReplayBody, ReplayBodyLayer, RetrySafe};
use tower_fortify::retry::RetryLayer;

/// One backend: an axum app on its own listener. Aborting `task` closes the
/// listener and every open connection at once, like a killed process.
struct Backend {
    addr: std::net::SocketAddr,
    hits: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct AppState {
    hits: Arc<AtomicU32>,
    status: StatusCode,
}

async fn echo(State(state): State<AppState>, body: Bytes) -> (StatusCode, Bytes) {
    state.hits.fetch_add(1, Ordering::SeqCst);
    (state.status, body)
}

async fn start_backend(status: StatusCode) -> Backend {
    let hits = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route("/{*path}", any(echo))
        .with_state(AppState {
            hits: hits.clone(),
            status,
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(app.clone());
            connections.spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Backend { addr, hits, task }
}

/// One backend's client: a hyper client that sends every request to `addr`.
#[derive(Clone)]
struct ToBackend {
    client: Client<HttpConnector, ReplayBody<Full<Bytes>>>,
    addr: std::net::SocketAddr,
}

impl Service<Request<ReplayBody<Full<Bytes>>>> for ToBackend {
    type Response = Response<Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<ReplayBody<Full<Bytes>>>) -> Self::Future {
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        *req.uri_mut() = Uri::try_from(format!("http://{}{}", self.addr, path)).unwrap();
        Box::pin(self.client.request(req))
    }
}

type Guarded = CircuitBreaker<ToBackend, HttpClassifier>;

/// The failover router over the backends, each behind its own circuit breaker
/// (opens after two failures in a row). Returns the breakers' handles too.
fn router(
    backends: &[&Backend],
) -> (
    Failover<Guarded, HttpClassifier, HttpTried>,
    Vec<CircuitBreakerHandle>,
) {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let mut handles = Vec::new();
    let mut builder = Failover::builder();
    for (i, b) in backends.iter().enumerate() {
        let breaker = CircuitBreakerLayer::builder()
            .no_count_window()
            .consecutive_failures(2)
            .open_duration(Duration::from_secs(60))
            .classifier(HttpClassifier::new())
            .build()
            .unwrap();
        handles.push(breaker.handle());
        let guarded = tower::Layer::layer(
            &breaker,
            ToBackend {
                client: client.clone(),
                addr: b.addr,
            },
        );
        builder = builder.backend(Member::new(format!("backend-{i}"), guarded));
    }
    let router = builder
        .consecutive_failures(Some(2))
        .classifier(HttpClassifier::new())
        .tried(HttpTried)
        .build()
        .unwrap();
    (router, handles)
}

/// Round robin over the backends: each attempt goes to the next one. The
/// idempotency tests use it for an order they can count on.
#[derive(Clone)]
struct RoundRobin {
    client: Client<HttpConnector, ReplayBody<Full<Bytes>>>,
    backends: Arc<Vec<std::net::SocketAddr>>,
    next: Arc<AtomicUsize>,
}

impl Service<Request<ReplayBody<Full<Bytes>>>> for RoundRobin {
    type Response = Response<Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<ReplayBody<Full<Bytes>>>) -> Self::Future {
        let i = self.next.fetch_add(1, Ordering::SeqCst) % self.backends.len();
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        *req.uri_mut() = Uri::try_from(format!("http://{}{}", self.backends[i], path)).unwrap();
        Box::pin(self.client.request(req))
    }
}

fn client(backends: &[&Backend]) -> RoundRobin {
    RoundRobin {
        client: Client::builder(TokioExecutor::new()).build_http(),
        backends: Arc::new(backends.iter().map(|b| b.addr).collect()),
        next: Arc::new(AtomicUsize::new(0)),
    }
}

fn retry() -> RetryLayer<HttpClassifier, HttpReplay> {
    RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(1)).jitter(Jitter::None))
        .no_budget()
        .classifier(HttpClassifier::new())
        .replay(HttpReplay)
        .build()
        .unwrap()
}

async fn body_of(response: Response<Incoming>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn a_backend_killed_mid_run_costs_no_request() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let a = start_backend(StatusCode::OK).await;
        let b = start_backend(StatusCode::OK).await;
        let c = start_backend(StatusCode::OK).await;
        let (router, breakers) = router(&[&a, &b, &c]);
        let failover = router.handle();
        let mut svc = ServiceBuilder::new()
            .layer(ReplayBodyLayer::new(64 * 1024))
            .layer(retry())
            .service(router);
        let mut b_hits_at_kill = 0;
        for i in 0..60 {
            if i == 20 {
                b.task.abort();
                b_hits_at_kill = b.hits.load(Ordering::SeqCst);
            }
            let payload = format!("request {i}");
            let mut req = Request::put("http://backends/items")
                .body(Full::new(Bytes::from(payload.clone())))
                .unwrap();
            // Shared by every attempt: a retry avoids the backends already tried.
            req.extensions_mut().insert(Tried::new());
            let response = svc.ready().await.unwrap().call(req).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "request {i}");
            // The body that reached the backend is the one sent, also after a retry.
            assert_eq!(body_of(response).await, payload);
        }
        assert_eq!(b.hits.load(Ordering::SeqCst), b_hits_at_kill);
        // Every request was served exactly once.
        assert_eq!(
            a.hits.load(Ordering::SeqCst)
                + b.hits.load(Ordering::SeqCst)
                + c.hits.load(Ordering::SeqCst),
            60
        );
        // The survivors never failed: their breakers saw no failure.
        assert_eq!(breakers[0].figures().consecutive_failures, 0);
        assert_eq!(breakers[2].figures().consecutive_failures, 0);
        let status = |id: &str| failover.backend(id).unwrap();
        let (sa, sb, sc) = (
            status("backend-0"),
            status("backend-1"),
            status("backend-2"),
        );
        assert_eq!(sa.successes + sb.successes + sc.successes, 60);
        assert_eq!(sa.failures + sc.failures, 0);
        // The router saw the killed backend fail (and the retry covered it).
        assert!(sb.failures >= 1, "{sb:?}");
        assert_eq!(sa.in_flight + sb.in_flight + sc.in_flight, 0);
        a.task.abort();
        c.task.abort();
    })
    .await
    .expect("the test ends by itself");
}

#[tokio::test]
async fn a_post_is_retried_only_when_marked_safe() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let failing = start_backend(StatusCode::SERVICE_UNAVAILABLE).await;
        let healthy = start_backend(StatusCode::OK).await;
        let svc = ServiceBuilder::new()
            .layer(ReplayBodyLayer::new(64 * 1024))
            .layer(retry())
            .service(client(&[&failing, &healthy]));

        let req = Request::post("http://backends/orders")
            .body(Full::new(Bytes::from_static(b"order")))
            .unwrap();
        let response = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(failing.hits.load(Ordering::SeqCst), 1);
        assert_eq!(healthy.hits.load(Ordering::SeqCst), 0);

        // Round robin starts at `healthy` now: go around once so `failing` is first.
        let mut req = Request::post("http://backends/orders")
            .body(Full::new(Bytes::from_static(b"order")))
            .unwrap();
        req.extensions_mut().insert(RetrySafe);
        let skip = Request::get("http://backends/warmup")
            .body(Full::default())
            .unwrap();
        let _ = svc.clone().oneshot(skip).await.unwrap();
        let response = svc.oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_of(response).await, "order");
        assert_eq!(failing.hits.load(Ordering::SeqCst), 2);
        assert_eq!(healthy.hits.load(Ordering::SeqCst), 2);
        failing.task.abort();
        healthy.task.abort();
    })
    .await
    .expect("the test ends by itself");
}

#[tokio::test]
async fn a_post_whose_connection_was_refused_is_retried() {
    tokio::time::timeout(Duration::from_secs(30), async {
        // A port nobody listens on: the connection is refused.
        let refused = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let healthy = start_backend(StatusCode::OK).await;
        let rr = RoundRobin {
            client: Client::builder(TokioExecutor::new()).build_http(),
            backends: Arc::new(vec![refused, healthy.addr]),
            next: Arc::new(AtomicUsize::new(0)),
        };
        let svc = ServiceBuilder::new()
            .layer(ReplayBodyLayer::new(64 * 1024))
            .layer(retry())
            .service(rr);
        let req = Request::post("http://backends/orders")
            .body(Full::new(Bytes::from_static(b"order")))
            .unwrap();
        let response = svc.oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_of(response).await, "order");
        assert_eq!(healthy.hits.load(Ordering::SeqCst), 1);
        healthy.task.abort();
    })
    .await
    .expect("the test ends by itself");
}
