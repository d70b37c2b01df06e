//! The retry layer over HTTP with a mock backend, in paused time: server hints,
//! idempotency, body replay and its cap.
#![cfg(all(feature = "http", feature = "retry"))]

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};
use tower_fortify::BoxError;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::http::HttpReplay;
use tower_fortify::http::{HttpClassifier, ReplayBody, ReplayBodyLayer, RetrySafe};
use tower_fortify::observe::{Event, RetryEvent, SkipReason};
use tower_fortify::retry::{RetryLayer, RetryOverride};

type Log = Arc<Mutex<Vec<(Instant, Bytes)>>>;

/// A backend that reads the whole body, logs when and what it got, and answers with
/// the `answers` in turn (the last one repeats).
fn backend(
    answers: Vec<Response<()>>,
    log: Log,
) -> impl tower::Service<Request<ReplayBody<BodyOf>>, Response = Response<()>, Error = BoxError> + Clone
{
    let answers = Arc::new(Mutex::new(answers));
    let n = Arc::new(AtomicU32::new(0));
    tower::service_fn(move |req: Request<ReplayBody<BodyOf>>| {
        let answers = answers.clone();
        let log = log.clone();
        let i = n.fetch_add(1, Ordering::SeqCst) as usize;
        async move {
            let body = req.into_body().collect().await?.to_bytes();
            log.lock().unwrap().push((Instant::now(), body));
            let answers = answers.lock().unwrap();
            let template = &answers[i.min(answers.len() - 1)];
            let mut response = Response::new(());
            *response.status_mut() = template.status();
            *response.headers_mut() = template.headers().clone();
            Ok::<_, BoxError>(response)
        }
    })
}

/// A streamed body, like hyper's `Incoming`: chunks arrive from a channel.
type BodyOf = StreamBody<
    Pin<Box<dyn futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + Sync>>,
>;

fn streamed(chunks: &[&'static str]) -> BodyOf {
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect();
    StreamBody::new(Box::pin(futures::stream::iter(frames)))
}

fn status(code: u16) -> Response<()> {
    Response::builder().status(code).body(()).unwrap()
}

fn retry_layer(events: Arc<Mutex<Vec<Event>>>) -> RetryLayer<HttpClassifier, HttpReplay> {
    RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)).jitter(Jitter::None))
        .no_budget()
        .classifier(HttpClassifier::new())
        .replay(HttpReplay)
        .listener(move |e: &Event| events.lock().unwrap().push(e.clone()))
        .build()
        .unwrap()
}

fn skips(events: &Mutex<Vec<Event>>) -> Vec<SkipReason> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Retry(RetryEvent::RetrySkipped { reason, .. }) => Some(*reason),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn retry_after_2_delays_the_retry_by_2_seconds() {
    let log = Log::default();
    let events = Arc::default();
    let busy = Response::builder()
        .status(503)
        .header("retry-after", "2")
        .body(())
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(1024))
        .layer(retry_layer(events))
        .service(backend(vec![busy, status(200)], log.clone()));
    let response = svc
        .oneshot(Request::get("/").body(streamed(&["a", "b"])).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].0 - log[0].0, Duration::from_secs(2));
    // The streamed body was replayed whole.
    assert_eq!(log[0].1, "ab");
    assert_eq!(log[1].1, "ab");
}

#[tokio::test(start_paused = true)]
async fn post_is_not_retried_unless_marked_safe() {
    let log = Log::default();
    let events = Arc::default();
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(1024))
        .layer(retry_layer(Arc::clone(&events)))
        .service(backend(vec![status(503), status(200)], log.clone()));
    let response = svc
        .clone()
        .oneshot(Request::post("/").body(streamed(&["x"])).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(log.lock().unwrap().len(), 1);
    // The backend read the body: the POST reached it and may have had effects.
    assert_eq!(skips(&events), vec![SkipReason::NotReplayable]);

    let log = Log::default();
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(1024))
        .layer(retry_layer(Arc::default()))
        .service(backend(vec![status(503), status(200)], log.clone()));
    let mut req = Request::post("/").body(streamed(&["x"])).unwrap();
    req.extensions_mut().insert(RetrySafe);
    let response = svc.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_cap_is_not_retried_and_the_reason_is_reported() {
    let log = Log::default();
    let events = Arc::default();
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(4))
        .layer(retry_layer(Arc::clone(&events)))
        .service(backend(vec![status(503), status(200)], log.clone()));
    let response = svc
        .oneshot(Request::put("/").body(streamed(&["abc", "def"])).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1);
    // The one attempt still got the whole body.
    assert_eq!(log[0].1, "abcdef");
    assert_eq!(skips(&events), vec![SkipReason::NotReplayable]);
}

#[tokio::test(start_paused = true)]
async fn a_body_at_the_cap_is_replayed() {
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(6))
        .layer(retry_layer(Arc::default()))
        .service(backend(vec![status(502), status(200)], log.clone()));
    let response = svc
        .oneshot(Request::put("/").body(streamed(&["abc", "def"])).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].1, "abcdef");
}

#[tokio::test(start_paused = true)]
async fn throttled_with_an_http_date_waits_until_that_date() {
    let log = Log::default();
    let throttled = Response::builder()
        .status(429)
        .header("date", "Wed, 21 Oct 2015 07:28:00 GMT")
        .header("retry-after", "Wed, 21 Oct 2015 07:28:05 GMT")
        .body(())
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(1024))
        .layer(retry_layer(Arc::default()))
        .service(backend(vec![throttled, status(200)], log.clone()));
    let response = svc
        .oneshot(Request::get("/").body(streamed(&[])).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let log = log.lock().unwrap();
    assert_eq!(log[1].0 - log[0].0, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_request_override_disables_retries_of_a_get() {
    let log = Log::default();
    let events = Arc::default();
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(1024))
        .layer(retry_layer(Arc::clone(&events)))
        .service(backend(vec![status(503), status(200)], log.clone()));
    let mut req = Request::get("/").body(streamed(&["x"])).unwrap();
    req.extensions_mut().insert(RetryOverride::disabled());
    let response = svc.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(log.lock().unwrap().len(), 1);
    assert_eq!(skips(&events), vec![SkipReason::Disabled]);
}

#[tokio::test(start_paused = true)]
async fn a_500_is_final() {
    let log = Log::default();
    let events = Arc::default();
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(1024))
        .layer(retry_layer(Arc::clone(&events)))
        .service(backend(vec![status(500), status(200)], log.clone()));
    let response = svc
        .oneshot(Request::get("/").body(streamed(&["x"])).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(skips(&events), vec![SkipReason::NotRetryable]);
}

#[tokio::test(start_paused = true)]
async fn a_post_whose_connection_failed_is_retried() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    // The first attempt fails the way a refused connection does: without the client
    // ever looking at the request body.
    let client = tower::service_fn(move |req: Request<ReplayBody<BodyOf>>| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                drop(req);
                return Err::<Bytes, BoxError>("connection refused".into());
            }
            Ok(req.into_body().collect().await?.to_bytes())
        }
    });
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(1024))
        .layer(
            RetryLayer::builder()
                .backoff(Backoff::constant(Duration::from_millis(10)).jitter(Jitter::None))
                .no_budget()
                .replay(HttpReplay)
                .build()
                .unwrap(),
        )
        .service(client);
    let body = svc
        .oneshot(Request::post("/orders").body(streamed(&["order"])).unwrap())
        .await
        .unwrap();
    assert_eq!(body, "order");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
