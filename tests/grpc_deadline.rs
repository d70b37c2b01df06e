//! Deadlines over a real tonic connection: a client under a deadline writes
//! `grpc-timeout`, a tonic server with `InheritDeadlineLayer` runs the handler with
//! that deadline in scope.

#![cfg(all(feature = "grpc", feature = "timeout"))]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Status;
use tonic::server::NamedService;
use tonic::transport::{Channel, Server};
use tower::ServiceBuilder;
use tower_fortify::http::{InheritDeadlineLayer, PropagateDeadlineLayer};
use tower_fortify::timeout::{DeadlineLayer, current_deadline};

#[path = "../examples/support/raw_codec.rs"]
mod raw_codec;
use raw_codec::RawCodec;

/// `/test.Left/Left` answers with the milliseconds left of the deadline in scope, or
/// `none`.
#[derive(Clone)]
struct Left;

impl NamedService for Left {
    const NAME: &'static str = "test.Left";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for Left {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let handler = tower::service_fn(|_: tonic::Request<Bytes>| async {
                let left = match current_deadline() {
                    Some(at) => {
                        let ms = at.saturating_duration_since(tokio::time::Instant::now());
                        ms.as_millis().to_string()
                    }
                    None => "none".to_string(),
                };
                Ok::<_, Status>(tonic::Response::new(Bytes::from(left)))
            });
            Ok(tonic::server::Grpc::new(RawCodec).unary(handler, req).await)
        })
    }
}

/// One unary call to `/test.Left/Left` through `svc`.
async fn call<T>(svc: T) -> Result<String, Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tower_fortify::BoxError>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<tower_fortify::BoxError>,
{
    let mut grpc = tonic::client::Grpc::new(svc);
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.into().to_string()))?;
    let res = grpc
        .unary(
            tonic::Request::new(Bytes::from_static(b"?")),
            http::uri::PathAndQuery::from_static("/test.Left/Left"),
            RawCodec,
        )
        .await?;
    Ok(String::from_utf8(res.into_inner().to_vec()).unwrap())
}

#[tokio::test]
async fn grpc_timeout_crosses_a_tonic_connection() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = Server::builder()
                .layer(InheritDeadlineLayer::new())
                .add_service(Left)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();

        // No deadline on the way: the handler has none either.
        let plain = ServiceBuilder::new()
            .layer(PropagateDeadlineLayer::grpc())
            .service(channel.clone());
        assert_eq!(call(plain).await.unwrap(), "none");

        // Under a 20 s deadline, the handler sees what was left of it.
        let client = ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_secs(20)))
            .layer(PropagateDeadlineLayer::grpc())
            .service(channel);
        let left: u64 = call(client).await.unwrap().parse().unwrap();
        assert!(left <= 20_000 && left > 0, "{left} ms left");
        server.abort();
    })
    .await
    .expect("the test ends by itself");
}
