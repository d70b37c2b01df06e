//! A tonic server protected by load shedding, a concurrency limit and a timeout:
//! their errors reach the client as proper statuses (`UNAVAILABLE`,
//! `DEADLINE_EXCEEDED`), not `UNKNOWN` or a reset stream.

#![cfg(feature = "grpc")]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::server::NamedService;
use tonic::transport::{Channel, Server};
use tonic::{Code, Status};
use tower::ServiceBuilder;
use tower_fortify::grpc::status_of_box;

#[path = "../examples/support/raw_codec.rs"]
mod raw_codec;
use raw_codec::RawCodec;

/// A hand-written unary echo service: `/test.Echo/Echo` answers once `gate` gives a
/// permit; `/test.Echo/Hang` never answers.
#[derive(Clone)]
struct Echo {
    gate: Arc<Semaphore>,
    entered: Arc<Notify>,
}

impl NamedService for Echo {
    const NAME: &'static str = "test.Echo";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for Echo {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let gate = self.gate.clone();
        let entered = self.entered.clone();
        let hang = req.uri().path().ends_with("/Hang");
        Box::pin(async move {
            let handler = tower::service_fn(move |r: tonic::Request<Bytes>| {
                let gate = gate.clone();
                let entered = entered.clone();
                async move {
                    entered.notify_one();
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    let _permit = gate
                        .acquire()
                        .await
                        .map_err(|_| Status::internal("closed"))?;
                    Ok::<_, Status>(tonic::Response::new(r.into_inner()))
                }
            });
            Ok(tonic::server::Grpc::new(RawCodec).unary(handler, req).await)
        })
    }
}

async fn start(
    gate: Arc<Semaphore>,
    entered: Arc<Notify>,
    timeout: Duration,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = Server::builder()
            .layer(
                ServiceBuilder::new()
                    .map_err(status_of_box)
                    .load_shed()
                    .layer(tower::limit::GlobalConcurrencyLimitLayer::new(1))
                    .timeout(timeout)
                    .into_inner(),
            )
            .add_service(Echo { gate, entered })
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    (addr, task)
}

async fn unary(channel: Channel, path: &'static str) -> Result<Bytes, Status> {
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

#[tokio::test]
async fn a_full_server_answers_unavailable() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let gate = Arc::new(Semaphore::new(0));
        let entered = Arc::new(Notify::new());
        let (addr, server) = start(gate.clone(), entered.clone(), Duration::from_secs(30)).await;
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        // The held call takes the only slot and waits at the gate.
        let held = tokio::spawn(unary(channel.clone(), "/test.Echo/Echo"));
        entered.notified().await;
        let status = unary(channel.clone(), "/test.Echo/Echo").await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        gate.add_permits(1);
        assert_eq!(held.await.unwrap().unwrap(), "ping");
        server.abort();
    })
    .await
    .expect("the test ends by itself");
}

#[tokio::test]
async fn a_server_timeout_answers_deadline_exceeded() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (addr, server) = start(
            Arc::new(Semaphore::new(1)),
            Arc::new(Notify::new()),
            Duration::from_millis(50),
        )
        .await;
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let status = unary(channel, "/test.Echo/Hang").await.unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        server.abort();
    })
    .await
    .expect("the test ends by itself");
}
