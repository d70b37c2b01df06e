//! An axum proxy retries through a hyper client with the request body it received:
//! axum's `Body` (hyper's `Incoming` underneath) is replayed after a 503.

#![cfg(all(feature = "axum", feature = "retry"))]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::any;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::http::HttpReplay;
use tower_fortify::http::{HttpClassifier, ReplayBody, ReplayBodyLayer};
use tower_fortify::retry::RetryLayer;

async fn serve(app: Router) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

/// A backend that echoes the body, answering 503 to its first `fail_first` calls.
async fn backend(fail_first: u32) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let calls = Arc::new(AtomicU32::new(0));
    serve(Router::new().route(
        "/{*path}",
        any(move |body: Bytes| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < fail_first {
                    (StatusCode::SERVICE_UNAVAILABLE, Bytes::new())
                } else {
                    (StatusCode::OK, body)
                }
            }
        }),
    ))
    .await
}

/// Sends each attempt to the next backend.
#[derive(Clone)]
struct RoundRobin {
    client: Client<HttpConnector, ReplayBody<Body>>,
    backends: Arc<Vec<std::net::SocketAddr>>,
    next: Arc<AtomicUsize>,
}

impl Service<Request<ReplayBody<Body>>> for RoundRobin {
    type Response = Response<Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<ReplayBody<Body>>) -> Self::Future {
        let i = self.next.fetch_add(1, Ordering::SeqCst) % self.backends.len();
        let path = req.uri().path().to_owned();
        *req.uri_mut() = Uri::try_from(format!("http://{}{}", self.backends[i], path)).unwrap();
        // The proxy's own Host header would point at itself.
        req.headers_mut().remove(http::header::HOST);
        Box::pin(self.client.request(req))
    }
}

#[tokio::test]
async fn the_proxy_replays_the_body_it_received() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (busy, busy_task) = backend(u32::MAX).await;
        let (healthy, healthy_task) = backend(0).await;
        let upstream = ServiceBuilder::new()
            .layer(ReplayBodyLayer::new(64 * 1024))
            .layer(
                RetryLayer::builder()
                    .max_attempts(2)
                    .backoff(Backoff::constant(Duration::from_millis(1)).jitter(Jitter::None))
                    .no_budget()
                    .classifier(HttpClassifier::new())
                    .replay(HttpReplay)
                    .build()
                    .unwrap(),
            )
            .service(RoundRobin {
                client: Client::builder(TokioExecutor::new()).build_http(),
                backends: Arc::new(vec![busy, healthy]),
                next: Arc::new(AtomicUsize::new(0)),
            });
        let proxy = Router::new().fallback(move |req: Request<Body>| {
            let upstream = upstream.clone();
            async move {
                match upstream.oneshot(req).await {
                    Ok(response) => response.map(Body::new),
                    Err(_) => Response::builder()
                        .status(StatusCode::BAD_GATEWAY)
                        .body(Body::empty())
                        .unwrap(),
                }
            }
        });
        let (proxy_addr, proxy_task) = serve(proxy).await;

        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        for i in 0..4 {
            let payload = format!("payload {i} ").repeat(100);
            let req = Request::put(format!("http://{proxy_addr}/items/{i}"))
                .body(Full::new(Bytes::from(payload.clone())))
                .unwrap();
            let response = client.request(req).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "request {i}");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, payload, "request {i}");
        }
        for task in [busy_task, healthy_task, proxy_task] {
            task.abort();
        }
    })
    .await
    .expect("the test ends by itself");
}

/// hyper's `Incoming` is replayable too (a hyper server forwarding its requests).
#[allow(dead_code)]
fn incoming_bodies_can_be_replayed(client: Client<HttpConnector, ReplayBody<Incoming>>) {
    fn replayable<S: Service<Request<ReplayBody<Incoming>>>>(_: &S) {}
    replayable(&client);
}
