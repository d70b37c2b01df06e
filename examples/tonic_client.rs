//! A tonic client whose client-streaming calls are retried with their replayed
//! request stream when the server answers `UNAVAILABLE` — in its trailers, where
//! most retry layers never look.
//!
//! A local server (HTTP/2 written by hand, so the status really is in the
//! trailers) fails its first call. The client stack:
//!
//! ```text
//! ReplayBodyLayer (64 KiB) -> retry (GrpcClassifier, GrpcReplay) -> PeekTrailersLayer -> Channel
//! ```
//!
//! Run with `cargo run --example tonic_client --features grpc`. After the failover
//! and breaker layers are merged, put the failover router (with a breaker per
//! backend) where the `Channel` is to spread the retries over two servers.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tower::ServiceBuilder;
use tower_fortify::backoff::Backoff;
use tower_fortify::grpc::{GrpcClassifier, GrpcReplay};
use tower_fortify::http::{PeekTrailersLayer, ReplayBody, ReplayBodyLayer};
use tower_fortify::retry::RetryLayer;

#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Serves one connection at a time: the first call gets `UNAVAILABLE` in its
/// trailers, later calls the concatenation of the messages they sent.
async fn server(listener: tokio::net::TcpListener) {
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
                    println!("server: call {} received {:?}", n + 1, joined);
                    let mut trailers = HeaderMap::new();
                    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = Vec::new();
                    if n == 0 {
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

#[tokio::main]
async fn main() -> Result<(), tower_fortify::BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(server(listener));

    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let retry = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::exponential(Duration::from_millis(20)))
        .classifier(GrpcClassifier::new())
        .replay(GrpcReplay)
        .build()?;
    let stack = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(64 * 1024))
        .layer(retry)
        .layer(PeekTrailersLayer::new(16 * 1024))
        .map_request(|req: http::Request<ReplayBody<tonic::body::Body>>| {
            req.map(tonic::body::Body::new)
        })
        .service(channel);

    let mut grpc = tonic::client::Grpc::new(stack);
    grpc.ready().await?;
    let messages = ["streamed ", "and ", "replayed"].map(|m| Bytes::from_static(m.as_bytes()));
    let response = grpc
        .client_streaming(
            tonic::Request::new(futures::stream::iter(messages)),
            http::uri::PathAndQuery::from_static("/demo.Concat/Concat"),
            RawCodec,
        )
        .await?;
    println!("client: {:?}", response.into_inner());
    server.abort();
    Ok(())
}
