//! A hyper client with retries that replay streamed request bodies, honour
//! `Retry-After`, and only retry idempotent requests.
//!
//! A local backend answers its first request with `503 Retry-After: 1`; the client
//! waits one second, sends the body again, and gets the echo. Run with
//! `cargo run --example hyper_client --features http`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::put;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_fortify::ServiceBuilderExt;
use tower_fortify::http::HttpReplay;
use tower_fortify::http::{HttpClassifier, ReplayBody};
use tower_fortify::retry::RetryLayer;

#[tokio::main]
async fn main() -> Result<(), tower_fortify::BoxError> {
    // A backend that is busy once, then echoes.
    let calls = Arc::new(AtomicU32::new(0));
    let app = Router::new().route(
        "/echo",
        put(move |body: Bytes| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "1")],
                        Bytes::new(),
                    )
                } else {
                    (StatusCode::OK, [("retry-after", "0")], body)
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // The client stack, outermost first.
    let hyper = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let client = ServiceBuilder::new()
        // Record up to 64 KiB of each request body so it can be sent again.
        .replay_body(64 * 1024)
        .with_retry(
            RetryLayer::builder()
                .max_attempts(3)
                .classifier(HttpClassifier::new())
                .replay(HttpReplay)
                .build()?,
        )
        // A per-attempt timeout below the retry.
        .timeout(Duration::from_secs(5))
        .service(hyper);

    let req = http::Request::put(format!("http://{addr}/echo"))
        .body(Full::new(Bytes::from_static(b"hello again")))?;
    let response = client.oneshot(req).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!("PUT /echo -> {status} {body:?} (after one 503 and a 1 s wait)");
    server.abort();
    Ok(())
}
