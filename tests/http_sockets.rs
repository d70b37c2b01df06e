//! Real sockets on 127.0.0.1: axum backends behind a hyper client with retry and
//! body replay. Every loop is bounded and every test ends by itself.

#![cfg(all(feature = "http", feature = "retry"))]

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
use tower_fortify::http::{HttpClassifier, ReplayBody, ReplayBodyLayer, RetrySafe};
use tower_fortify::retry::{HttpReplay, RetryLayer};

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

/// A test stand-in for the failover router: each attempt goes to the next backend.
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
        let mut svc = ServiceBuilder::new()
            .layer(ReplayBodyLayer::new(64 * 1024))
            .layer(retry())
            .service(client(&[&a, &b, &c]));
        let mut ok = 0;
        for i in 0..60 {
            if i == 20 {
                b.task.abort();
            }
            let payload = format!("request {i}");
            let req = Request::put("http://backends/items")
                .body(Full::new(Bytes::from(payload.clone())))
                .unwrap();
            let response = svc.ready().await.unwrap().call(req).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "request {i}");
            // The body that reached the backend is the one sent, also after a retry.
            assert_eq!(body_of(response).await, payload);
            ok += 1;
        }
        assert_eq!(ok, 60);
        let before_kill = b.hits.load(Ordering::SeqCst);
        assert!(before_kill <= 7, "b served {before_kill} of its first 20");
        assert_eq!(
            a.hits.load(Ordering::SeqCst)
                + b.hits.load(Ordering::SeqCst)
                + c.hits.load(Ordering::SeqCst),
            60
        );
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
