//! A tonic client whose client-streaming calls are retried with their replayed
//! request stream when a server answers `UNAVAILABLE` — in its trailers, where
//! most retry layers never look — and whose retries fail over to another server.
//!
//! Two local servers (HTTP/2 written by hand, so the status really is in the
//! trailers): `a` is draining and answers every call with `UNAVAILABLE`, `b`
//! answers with the concatenation of the messages it received. The client is the
//! one-call gRPC stack with its defaults:
//!
//! ```text
//! ReplayBodyLayer (64 KiB) -> Stack::grpc(): deadline -> bulkhead -> retry
//!   -> failover router (a retry avoids the server already tried)
//!     -> per server: circuit breaker -> attempt timeout -> PeekTrailersLayer -> Channel
//! ```
//!
//! Every call succeeds: a call that reaches `a` is retried on `b` with its request
//! stream replayed, and `a`'s breaker soon keeps calls away from it. Run with
//! `cargo run --example tonic_client --features grpc`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::transport::Channel;
use tower::{Layer, ServiceBuilder};
use tower_fortify::http::{PeekTrailers, PeekTrailersLayer, ReplayBody, ReplayBodyLayer};
use tower_fortify::stack::Stack;

#[path = "support/raw_codec.rs"]
mod raw_codec;
use raw_codec::RawCodec;

/// A server named `name`: a draining one answers `UNAVAILABLE` in its trailers, a
/// healthy one the concatenation of the messages it was sent.
async fn server(listener: tokio::net::TcpListener, name: &'static str, draining: bool) {
    let calls = Arc::new(AtomicU32::new(0));
    while let Ok((stream, _)) = listener.accept().await {
        let calls = calls.clone();
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    let mut body = req.into_body().collect().await?.to_bytes();
                    let mut joined = BytesMut::new();
                    while body.len() >= 5 {
                        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
                        body.advance(5);
                        joined.extend_from_slice(&body.split_to(len));
                    }
                    println!("server {name}: call {} received {:?}", n + 1, joined);
                    let mut trailers = HeaderMap::new();
                    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = Vec::new();
                    if draining {
                        trailers.insert("grpc-status", "14".parse().unwrap());
                    } else {
                        let mut message = BytesMut::new();
                        message.put_u8(0);
                        message.put_u32(joined.len() as u32);
                        message.extend_from_slice(&joined);
                        frames.push(Ok(Frame::data(message.freeze())));
                        trailers.insert("grpc-status", "0".parse().unwrap());
                    }
                    frames.push(Ok(Frame::trailers(trailers)));
                    Ok::<_, hyper::Error>(
                        http::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(StreamBody::new(futures::stream::iter(frames)))
                            .unwrap(),
                    )
                }
            });
        tokio::spawn(
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service),
        );
    }
}

type Request = http::Request<ReplayBody<tonic::body::Body>>;

fn to_tonic_body(req: Request) -> http::Request<tonic::body::Body> {
    req.map(tonic::body::Body::new)
}

/// One server's client: a channel whose short responses' trailers are read ahead, so
/// the stack's breakers and its retry layer see a status sent in trailers.
type Server =
    PeekTrailers<tower::util::MapRequest<Channel, fn(Request) -> http::Request<tonic::body::Body>>>;

fn client(channel: Channel) -> Server {
    let to_tonic: fn(Request) -> http::Request<tonic::body::Body> = to_tonic_body;
    PeekTrailersLayer::new(16 * 1024).layer(tower::util::MapRequest::new(channel, to_tonic))
}

#[tokio::main]
async fn main() -> Result<(), tower_fortify::BoxError> {
    let mut servers = Vec::new();
    let mut stack = Stack::grpc();
    for (name, draining) in [("a", true), ("b", false)] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        servers.push(tokio::spawn(server(listener, name, draining)));
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        stack = stack.backend(name, client(channel));
    }
    let stack = stack.build()?;
    let failover = stack.router().clone();
    let stack = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(64 * 1024))
        .service(stack);

    let mut grpc = tonic::client::Grpc::new(stack);
    for call in 1..=6 {
        grpc.ready().await?;
        let messages = ["streamed ", "and ", "replayed"].map(|m| Bytes::from_static(m.as_bytes()));
        let request = tonic::Request::new(futures::stream::iter(messages));
        let response = grpc
            .client_streaming(
                request,
                http::uri::PathAndQuery::from_static("/demo.Concat/Concat"),
                RawCodec,
            )
            .await?;
        println!("client: call {call}: {:?}", response.into_inner());
    }
    for status in failover.backends() {
        println!(
            "router: {} health {:?}, {} successes, {} failures",
            status.id, status.health, status.successes, status.failures
        );
    }
    for server in servers {
        server.abort();
    }
    Ok(())
}
