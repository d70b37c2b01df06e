//! An axum app protected by a bulkhead (which sheds what it cannot take) and a
//! timeout, whose refusals are proper responses (503 + `Retry-After`, 504) instead
//! of dropped connections.
//!
//! It serves on 127.0.0.1, sends itself a few requests with hyper, prints what came
//! back, and exits. Run with `cargo run --example axum_server --features axum,bulkhead`.

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::ServiceBuilder;
use tower_fortify::bulkhead::BulkheadLayer;

#[tokio::main]
async fn main() -> Result<(), tower_fortify::BoxError> {
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "finally"
            }),
        )
        .layer(
            ServiceBuilder::new()
                // Layer errors become responses: no error handler to write.
                .layer(HandleErrorLayer::new(tower_fortify::axum::handle_error))
                // Two calls at a time; no queue, so the rest are refused at once
                // (`BulkheadFull`, answered with 503 + Retry-After).
                .layer(BulkheadLayer::new(2)?)
                .timeout(Duration::from_millis(100)),
        );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    // One fast call, then four slow ones at once against a limit of two: two are
    // refused with 503 + Retry-After, two run into the timeout (504).
    let paths = ["/", "/slow", "/slow", "/slow", "/slow"];
    let mut calls = Vec::new();
    for (i, path) in paths.into_iter().enumerate() {
        let uri: http::Uri = format!("http://{addr}{path}").parse()?;
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            let response = client.get(uri).await?;
            let status = response.status();
            let retry_after = response.headers().get("retry-after").cloned();
            let body = response.into_body().collect().await?.to_bytes();
            println!("{i}: GET {path} -> {status} retry-after={retry_after:?} body={body:?}");
            Ok::<_, tower_fortify::BoxError>(())
        }));
        if i == 0 {
            // Let the fast call finish first.
            calls.pop().expect("just pushed").await??;
        }
    }
    for call in calls {
        call.await??;
    }
    server.abort();
    Ok(())
}
