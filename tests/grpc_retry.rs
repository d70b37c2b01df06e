//! A tonic client-streaming call over 127.0.0.1 whose first attempt fails with
//! `UNAVAILABLE` in its trailers: it is retried with its replayed body. A body over
//! the replay cap is not retried.

#![cfg(all(feature = "grpc", feature = "retry"))]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tonic::Status;
use tonic::transport::Channel;
use tower::ServiceBuilder;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::grpc::{GrpcClassifier, GrpcReplay};
use tower_fortify::http::{PeekTrailersLayer, ReplayBody, ReplayBodyLayer};
use tower_fortify::observe::{Event, RetryEvent, SkipReason};
use tower_fortify::retry::RetryLayer;

#[path = "../examples/support/raw_codec.rs"]
mod raw_codec;
use raw_codec::RawCodec;

/// Splits a gRPC request body into its messages.
fn messages(mut body: Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        body.advance(5);
        out.push(body.split_to(len));
    }
    out
}

fn frame(message: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(5 + message.len());
    buf.put_u8(0);
    buf.put_u32(message.len() as u32);
    buf.put_slice(message);
    buf.freeze()
}

type ServerBody =
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// A gRPC server written against HTTP/2 directly, so the test controls exactly where
/// the status goes. Its first answer is `UNAVAILABLE` in trailers (after the
/// headers, not trailers-only); later answers concatenate the received messages.
async fn server(
    received: Arc<Mutex<Vec<Vec<Bytes>>>>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let received = received.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let received = received.clone();
                async move {
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    let msgs = messages(body);
                    let n = {
                        let mut r = received.lock().unwrap();
                        r.push(msgs.clone());
                        r.len()
                    };
                    let mut trailers = HeaderMap::new();
                    let mut frames = Vec::new();
                    if n == 1 {
                        trailers.insert("grpc-status", "14".parse().unwrap());
                        trailers.insert("grpc-message", "warming%20up".parse().unwrap());
                    } else {
                        frames.push(Ok(Frame::data(frame(&msgs.concat()))));
                        trailers.insert("grpc-status", "0".parse().unwrap());
                    }
                    frames.push(Ok(Frame::trailers(trailers)));
                    let response: Response<ServerBody> = Response::builder()
                        .header("content-type", "application/grpc")
                        .body(StreamBody::new(futures::stream::iter(frames)))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
            connections.spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

async fn call(
    addr: std::net::SocketAddr,
    cap: usize,
    parts: Vec<&'static str>,
    events: Arc<Mutex<Vec<Event>>>,
) -> Result<Bytes, Status> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let retry = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(1)).jitter(Jitter::None))
        .no_budget()
        .classifier(GrpcClassifier::new())
        .replay(GrpcReplay)
        .listener(move |e: &Event| events.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(cap))
        .layer(retry)
        .layer(PeekTrailersLayer::new(64 * 1024))
        .map_request(|req: Request<ReplayBody<tonic::body::Body>>| req.map(tonic::body::Body::new))
        .service(channel);
    let mut grpc = tonic::client::Grpc::new(svc);
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let stream = futures::stream::iter(
        parts
            .into_iter()
            .map(|p: &'static str| Bytes::from_static(p.as_bytes())),
    );
    let response = grpc
        .client_streaming(
            tonic::Request::new(stream),
            http::uri::PathAndQuery::from_static("/test.Concat/Concat"),
            RawCodec,
        )
        .await?;
    Ok(response.into_inner())
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

#[tokio::test]
async fn unavailable_in_trailers_is_retried_with_the_replayed_stream() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let received = Arc::default();
        let (addr, server) = server(Arc::clone(&received)).await;
        let events = Arc::default();
        let answer = call(
            addr,
            64 * 1024,
            vec!["one,", "two,", "three"],
            Arc::clone(&events),
        )
        .await
        .expect("the retry succeeds");
        assert_eq!(answer, "one,two,three");
        let received = received.lock().unwrap();
        assert_eq!(received.len(), 2, "one failed attempt, one retry");
        assert_eq!(received[0], received[1], "the retry sent the same stream");
        assert_eq!(received[1].len(), 3);
        assert!(skips(&events).is_empty());
        server.abort();
    })
    .await
    .expect("the test ends by itself");
}

#[tokio::test]
async fn a_stream_over_the_cap_is_not_retried() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let received = Arc::default();
        let (addr, server) = server(Arc::clone(&received)).await;
        let events = Arc::default();
        let status = call(addr, 8, vec!["one,", "two,", "three"], Arc::clone(&events))
            .await
            .expect_err("the first attempt's failure is final");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(received.lock().unwrap().len(), 1);
        assert_eq!(skips(&events), vec![SkipReason::NotReplayable]);
        server.abort();
    })
    .await
    .expect("the test ends by itself");
}
