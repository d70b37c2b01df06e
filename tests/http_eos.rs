//! `EosBody` reports exactly one outcome per response; `PeekTrailers` reads short
//! responses' trailers ahead without losing a byte.

#![cfg(feature = "http")]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};
use tower::ServiceExt;
use tower_fortify::classify::{ClassifyEos, Outcome};
use tower_fortify::http::{EosBody, PeekTrailersLayer, PeekedTrailers};

type Frames = Vec<Result<Frame<Bytes>, std::io::Error>>;
type Streamed =
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>>;

fn body(frames: Frames) -> Streamed {
    StreamBody::new(futures::stream::iter(frames))
}

fn trailers(status: &'static str) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("status", status.parse().unwrap());
    t
}

/// Success when the trailers say `ok`; a stream without trailers is a retryable
/// failure; a failed stream a non-retryable one (to tell them apart).
#[derive(Debug, Clone, Copy)]
struct TestEos;

impl ClassifyEos for TestEos {
    type Trailers = HeaderMap;

    fn classify_eos(self, trailers: Option<&HeaderMap>) -> Outcome {
        match trailers.and_then(|t| t.get("status")) {
            Some(v) if v == "ok" => Outcome::Success,
            Some(_) => Outcome::Overloaded(Default::default()),
            None => Outcome::RetryableFailure,
        }
    }

    fn classify_early_end(self) -> Outcome {
        Outcome::NonRetryableFailure
    }
}

/// What the callback was called with.
type Seen = Arc<Mutex<Vec<Option<Outcome>>>>;

fn recorder() -> (Seen, impl FnOnce(Option<Outcome>)) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    (seen, move |o| log.lock().unwrap().push(o))
}

#[tokio::test]
async fn trailers_decide_the_outcome_once() {
    let (seen, report) = recorder();
    let frames = vec![
        Ok(Frame::data(Bytes::from_static(b"a"))),
        Ok(Frame::trailers(trailers("ok"))),
    ];
    let b = EosBody::new(body(frames), TestEos, report);
    let collected = b.collect().await.unwrap();
    assert_eq!(collected.to_bytes(), "a");
    assert_eq!(*seen.lock().unwrap(), vec![Some(Outcome::Success)]);
}

#[tokio::test]
async fn an_end_without_trailers_is_classified_as_such() {
    let (seen, report) = recorder();
    let b = EosBody::new(
        body(vec![Ok(Frame::data(Bytes::from_static(b"a")))]),
        TestEos,
        report,
    );
    b.collect().await.unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![Some(Outcome::RetryableFailure)]);
}

#[tokio::test]
async fn a_body_that_knows_its_end_reports_without_a_last_poll() {
    let (seen, report) = recorder();
    let mut b = EosBody::new(String::from("full"), TestEos, report);
    let frame = b.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "full");
    assert!(b.is_end_stream());
    assert_eq!(*seen.lock().unwrap(), vec![Some(Outcome::RetryableFailure)]);
    drop(b);
    assert_eq!(seen.lock().unwrap().len(), 1, "reported once");
}

#[tokio::test]
async fn a_dropped_stream_is_a_cancellation_and_a_failed_one_an_early_end() {
    let (seen, report) = recorder();
    let mut b = EosBody::new(
        body(vec![
            Ok(Frame::data(Bytes::from_static(b"a"))),
            Ok(Frame::data(Bytes::from_static(b"b"))),
        ]),
        TestEos,
        report,
    );
    b.frame().await.unwrap().unwrap();
    assert!(seen.lock().unwrap().is_empty());
    drop(b);
    assert_eq!(*seen.lock().unwrap(), vec![None]);

    let (seen, report) = recorder();
    let b = EosBody::new(
        body(vec![Err(std::io::Error::other("reset"))]),
        TestEos,
        report,
    );
    assert!(b.collect().await.is_err());
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Some(Outcome::NonRetryableFailure)]
    );
}

fn answering(
    frames: Frames,
) -> impl tower::Service<(), Response = http::Response<Streamed>, Error = std::io::Error> {
    let frames = Mutex::new(Some(frames));
    tower::service_fn(move |()| {
        let frames = frames.lock().unwrap().take().unwrap();
        async move { Ok(http::Response::new(body(frames))) }
    })
}

#[tokio::test]
async fn peek_reads_short_trailers_ahead() {
    let svc = tower::ServiceBuilder::new()
        .layer(PeekTrailersLayer::new(16))
        .service(answering(vec![
            Ok(Frame::data(Bytes::from_static(b"hello"))),
            Ok(Frame::trailers(trailers("ok"))),
        ]));
    let response = svc.oneshot(()).await.unwrap();
    assert_eq!(
        response.extensions().get::<PeekedTrailers>(),
        Some(&PeekedTrailers(trailers("ok")))
    );
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers(), Some(&trailers("ok")));
    assert_eq!(collected.to_bytes(), "hello");
}

#[tokio::test]
async fn peek_stops_at_its_cap_and_loses_nothing() {
    let svc = tower::ServiceBuilder::new()
        .layer(PeekTrailersLayer::new(3))
        .service(answering(vec![
            Ok(Frame::data(Bytes::from_static(b"abcd"))),
            Ok(Frame::data(Bytes::from_static(b"efgh"))),
            Ok(Frame::trailers(trailers("ok"))),
        ]));
    let response = svc.oneshot(()).await.unwrap();
    assert!(response.extensions().get::<PeekedTrailers>().is_none());
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers(), Some(&trailers("ok")));
    assert_eq!(collected.to_bytes(), "abcdefgh");
}

#[tokio::test]
async fn peek_keeps_a_body_error_for_the_reader() {
    let svc = tower::ServiceBuilder::new()
        .layer(PeekTrailersLayer::new(64))
        .service(answering(vec![
            Ok(Frame::data(Bytes::from_static(b"ab"))),
            Err(std::io::Error::other("reset")),
        ]));
    let response = svc.oneshot(()).await.unwrap();
    let mut b = response.into_body();
    assert_eq!(b.frame().await.unwrap().unwrap().into_data().unwrap(), "ab");
    assert!(b.frame().await.unwrap().is_err());
    assert!(b.frame().await.is_none());
}
