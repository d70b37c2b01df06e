//! The fallback layer: values, functions of the failure or the request, backup
//! services, chosen errors, classified responses, and axum.

#![cfg(feature = "fallback")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::fallback::FallbackLayer;
use tower_fortify::observe::{Event, FallbackEvent};

/// Fails odd requests with "down", answers even ones with `req * 10`.
fn flaky() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|req: u32| async move {
        if !req.is_multiple_of(2) {
            Err::<u32, BoxError>("down".into())
        } else {
            Ok(req * 10)
        }
    })
}

#[tokio::test]
async fn a_value_answers_failures_and_successes_pass() {
    let mut svc = ServiceBuilder::new()
        .layer(FallbackLayer::value(7u32))
        .service(flaky());
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 7);
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 20);
}

#[tokio::test]
async fn a_function_of_the_failure_may_answer_or_pass_an_error_on() {
    let layer = FallbackLayer::from_failure(|failed: Result<u32, BoxError>| {
        let err = failed.unwrap_err();
        if err.to_string() == "down" {
            Ok(0)
        } else {
            Err(err)
        }
    });
    let mut svc = ServiceBuilder::new().layer(layer).service(flaky());
    assert_eq!(svc.ready().await.unwrap().call(3).await.unwrap(), 0);
    assert_eq!(svc.ready().await.unwrap().call(4).await.unwrap(), 40);
}

#[tokio::test]
async fn a_function_of_the_request_sees_the_request() {
    let layer = FallbackLayer::from_request(|req: u32, _: Result<u32, BoxError>| Ok(req + 1000));
    let mut svc = ServiceBuilder::new().layer(layer).service(flaky());
    assert_eq!(svc.ready().await.unwrap().call(5).await.unwrap(), 1005);
}

#[tokio::test]
async fn a_backup_service_is_called_only_on_failure_and_its_errors_convert() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    // A stale cache with its own error type.
    let cache = service_fn(move |req: u32| {
        c.fetch_add(1, Ordering::SeqCst);
        async move {
            if req == 9 {
                Err(std::io::Error::other("cache miss"))
            } else {
                Ok(req + 500)
            }
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(FallbackLayer::service(cache))
        .service(flaky());
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 20);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no fallback on success");
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 501);
    let err = svc.ready().await.unwrap().call(9).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cache miss",
        "the backup's error, converted"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn only_chosen_errors_are_replaced_and_events_say_so() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let layer = FallbackLayer::value(0u32)
        .on_error(|e: &BoxError| e.to_string() == "timeout")
        .name("rates")
        .listener(move |e: &Event| {
            if let Event::Fallback(f) = e {
                log.lock().unwrap().push(f.clone())
            }
        });
    let svc = service_fn(|req: u32| async move {
        match req {
            0 => Err::<u32, BoxError>("timeout".into()),
            1 => Err("refused".into()),
            n => Ok(n),
        }
    });
    let mut svc = ServiceBuilder::new().layer(layer).service(svc);
    assert_eq!(svc.ready().await.unwrap().call(0).await.unwrap(), 0);
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(err.to_string(), "refused");
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![FallbackEvent::Used { error: true }]
    );
}

#[cfg(feature = "http")]
#[tokio::test]
async fn a_response_classified_as_a_failure_is_replaced() {
    use tower_fortify::http::HttpClassifier;
    let backend = service_fn(|req: http::Request<String>| async move {
        let status = if req.uri().path() == "/down" {
            503
        } else {
            200
        };
        Ok::<_, BoxError>(
            http::Response::builder()
                .status(status)
                .body(String::from("live"))
                .unwrap(),
        )
    });
    let layer = FallbackLayer::from_failure(|_: Result<http::Response<String>, BoxError>| {
        Ok(http::Response::new(String::from("stale")))
    })
    .classifier(HttpClassifier::new());
    let mut svc = ServiceBuilder::new().layer(layer).service(backend);
    let req = |path: &str| http::Request::get(path).body(String::new()).unwrap();
    let down = svc.ready().await.unwrap().call(req("/down")).await.unwrap();
    assert_eq!(down.body(), "stale");
    let up = svc.ready().await.unwrap().call(req("/up")).await.unwrap();
    assert_eq!(up.body(), "live");
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn works_on_an_axum_router() {
    use axum::body::Body;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use tower_fortify::http::HttpClassifier;

    let app: axum::Router = axum::Router::new()
        .route(
            "/quote",
            get(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "busy").into_response() }),
        )
        .layer(
            FallbackLayer::from_failure(|_: Result<Response, std::convert::Infallible>| {
                Ok((http::StatusCode::OK, "cached quote").into_response())
            })
            .classifier(HttpClassifier::new()),
        );
    let res = app
        .oneshot(http::Request::get("/quote").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"cached quote");
}
