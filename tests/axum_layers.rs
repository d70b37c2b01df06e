//! axum answers this crate's own rejections with proper responses: an open breaker and
//! a full bulkhead become 503 with `Retry-After`, never a dropped connection.
#![cfg(all(feature = "axum", feature = "bulkhead", feature = "circuit-breaker"))]

use std::time::Duration;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_fortify::axum::InfallibleLayer;
use tower_fortify::bulkhead::BulkheadLayer;
use tower_fortify::circuit_breaker::CircuitBreakerLayer;

fn retry_after(r: &Response<Body>) -> Option<&str> {
    r.headers().get("retry-after").and_then(|v| v.to_str().ok())
}

#[tokio::test(start_paused = true)]
async fn a_tripped_breaker_answers_503_with_its_remaining_open_time() {
    let breaker = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(7))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(InfallibleLayer)
        .layer(breaker)
        .service_fn(|req: Request<Body>| async move {
            if req.uri().path() == "/fail" {
                Err::<Response<Body>, _>(std::io::Error::other("backend down"))
            } else {
                Ok(Response::new(Body::empty()))
            }
        });
    let r = svc
        .ready()
        .await
        .unwrap()
        .call(Request::get("/fail").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "the failure itself"
    );
    tokio::time::advance(Duration::from_millis(2_500)).await;
    let r = svc
        .ready()
        .await
        .unwrap()
        .call(Request::get("/ok").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // 4.5 s of the 7 s remain; Retry-After rounds up to whole seconds.
    assert_eq!(retry_after(&r), Some("5"));
}

#[tokio::test(start_paused = true)]
async fn a_forced_open_breaker_answers_503_with_a_default_retry_after() {
    let breaker = CircuitBreakerLayer::builder().build().unwrap();
    breaker.handle().force_open();
    let svc = ServiceBuilder::new()
        .layer(InfallibleLayer)
        .layer(breaker)
        .service_fn(|_: Request<Body>| async {
            Ok::<_, std::io::Error>(Response::new(Body::empty()))
        });
    let r = svc.oneshot(Request::new(Body::empty())).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&r), Some("1"));
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_answers_503_with_retry_after() {
    let bulkhead = BulkheadLayer::builder().max_concurrent(1).build().unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(InfallibleLayer)
        .layer(bulkhead)
        .service_fn(|_: Request<Body>| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(Response::new(Body::empty()))
        });
    let first = svc.ready().await.unwrap().call(Request::new(Body::empty()));
    let first = tokio::spawn(first);
    tokio::task::yield_now().await;
    let r = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(Body::empty()))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&r), Some("1"));
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
}
