//! axum: layer errors become responses, and the connection stays open.

#![cfg(all(feature = "axum", feature = "bulkhead"))]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::{ServiceBuilder, ServiceExt};
use tower_fortify::axum::{InfallibleLayer, handle_error};
use tower_fortify::bulkhead::BulkheadLayer;

/// Serves `app` on 127.0.0.1 until the returned handle is aborted.
async fn serve(app: Router) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(app.clone());
            connections.spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: std::net::SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn fetch(sender: &mut Sender, path: &str) -> http::Response<Bytes> {
    sender.ready().await.unwrap();
    let req = Request::get(path)
        .header("host", "test")
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    let (parts, body) = response.into_parts();
    http::Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

/// An app whose `/hold` handler waits for a permit of `gate`, so a test can keep the
/// one concurrency slot busy for as long as it wants.
fn app(gate: Arc<Semaphore>, infallible: bool) -> Router {
    let router = Router::new()
        .route(
            "/hold",
            get(move || {
                let gate = gate.clone();
                async move {
                    let _permit = gate.acquire().await.unwrap();
                    "held"
                }
            }),
        )
        .route("/", get(|| async { "hello" }));
    // A bulkhead of one call at a time without a queue: it turns the rest away with
    // `BulkheadFull`, which becomes a 503.
    let bulkhead = BulkheadLayer::new(1).unwrap();
    if infallible {
        router.layer(
            ServiceBuilder::new()
                .layer(InfallibleLayer)
                .layer(bulkhead)
                .timeout(Duration::from_secs(30)),
        )
    } else {
        router.layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handle_error))
                .layer(bulkhead)
                .timeout(Duration::from_secs(30)),
        )
    }
}

async fn full_bulkhead_answers_503(infallible: bool) {
    tokio::time::timeout(Duration::from_secs(30), async {
        let gate = Arc::new(Semaphore::new(0));
        let (addr, server) = serve(app(gate.clone(), infallible)).await;
        let mut holder = connect(addr).await;
        let held = tokio::spawn(async move { fetch(&mut holder, "/hold").await });
        let mut other = connect(addr).await;
        // Bounded wait for the held call to take the slot: until then `/` succeeds.
        let mut refused = None;
        for _ in 0..500 {
            let response = fetch(&mut other, "/").await;
            if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                refused = Some(response);
                break;
            }
            tokio::task::yield_now().await;
        }
        let refused = refused.expect("a full bulkhead refuses the call");
        assert_eq!(refused.headers()["retry-after"], "1");
        // The same connection still works once the slot is free.
        gate.add_permits(1);
        assert_eq!(held.await.unwrap().status(), StatusCode::OK);
        let mut answered = None;
        for _ in 0..500 {
            let response = fetch(&mut other, "/").await;
            if response.status() == StatusCode::OK {
                answered = Some(response);
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            answered.expect("served on the same connection").into_body(),
            "hello"
        );
        server.abort();
    })
    .await
    .expect("the test ends by itself");
}

#[tokio::test]
async fn full_bulkhead_answers_503_with_retry_after_handle_error_layer() {
    full_bulkhead_answers_503(false).await;
}

#[tokio::test]
async fn full_bulkhead_answers_503_with_retry_after_infallible_layer() {
    full_bulkhead_answers_503(true).await;
}

#[tokio::test(start_paused = true)]
async fn a_timeout_answers_504() {
    let app = Router::new()
        .route("/", get(std::future::pending::<&'static str>))
        .layer(
            ServiceBuilder::new()
                .layer(InfallibleLayer)
                .timeout(Duration::from_secs(5)),
        );
    let response = app
        .oneshot(Request::get("/").body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn an_application_error_answers_500() {
    let svc = ServiceBuilder::new().layer(InfallibleLayer).service_fn(
        |_: Request<axum::body::Body>| async {
            Err::<http::Response<axum::body::Body>, _>(std::io::Error::other("db down"))
        },
    );
    let response = svc
        .oneshot(Request::get("/").body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
