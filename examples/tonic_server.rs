//! A tonic server protected by load shedding, a concurrency limit and a timeout,
//! whose refusals reach clients as `UNAVAILABLE` and `DEADLINE_EXCEEDED` (instead of
//! `UNKNOWN` or a reset stream).
//!
//! The service is written by hand (raw-bytes codec, no protobuf codegen). The
//! example serves on 127.0.0.1, calls itself, prints the statuses and exits. Run
//! with `cargo run --example tonic_server --features grpc`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Status;
use tonic::server::NamedService;
use tonic::transport::{Channel, Server};
use tower::ServiceBuilder;
use tower_fortify::grpc::status_of_box;

#[path = "support/raw_codec.rs"]
mod raw_codec;
use raw_codec::RawCodec;

/// `demo.Echo/Echo` echoes after 10 ms; `demo.Echo/Slow` takes a second.
#[derive(Clone)]
struct Echo;

impl NamedService for Echo {
    const NAME: &'static str = "demo.Echo";
}

impl tower::Service<http::Request<tonic::body::Body>> for Echo {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let delay = if req.uri().path().ends_with("/Slow") {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(10)
        };
        Box::pin(async move {
            let handler = tower::service_fn(move |r: tonic::Request<Bytes>| async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Status>(tonic::Response::new(r.into_inner()))
            });
            Ok(tonic::server::Grpc::new(RawCodec).unary(handler, req).await)
        })
    }
}

async fn call(channel: Channel, path: &'static str) -> Result<Bytes, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let response = grpc
        .unary(
            tonic::Request::new(Bytes::from_static(b"ping")),
            http::uri::PathAndQuery::from_static(path),
            RawCodec,
        )
        .await?;
    Ok(response.into_inner())
}

#[tokio::main]
async fn main() -> Result<(), tower_fortify::BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        Server::builder()
            .layer(
                ServiceBuilder::new()
                    // Layer errors become statuses tonic sends as they are.
                    .map_err(status_of_box)
                    .load_shed()
                    .layer(tower::limit::GlobalConcurrencyLimitLayer::new(4))
                    .timeout(Duration::from_millis(200))
                    .into_inner(),
            )
            .add_service(Echo)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
    });

    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    println!("Echo: {:?}", call(channel.clone(), "/demo.Echo/Echo").await);
    println!(
        "Slow: {:?}",
        call(channel.clone(), "/demo.Echo/Slow")
            .await
            .map_err(|s| s.code())
    );
    // Eight calls at once against a limit of four: some are shed.
    let burst: Vec<_> = (0..8)
        .map(|_| tokio::spawn(call(channel.clone(), "/demo.Echo/Echo")))
        .collect();
    for (i, call) in burst.into_iter().enumerate() {
        println!("burst {i}: {:?}", call.await?.map_err(|s| s.code()));
    }
    server.abort();
    Ok(())
}
