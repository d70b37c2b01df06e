//! `HoldToEosLayer`: a streamed response keeps the bulkhead's permit and the breaker's
//! verdict until its body ends or is dropped.

#![cfg(all(feature = "http", feature = "bulkhead", feature = "circuit-breaker"))]

use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio_test::{assert_pending, task};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::bulkhead::BulkheadLayer;
use tower_fortify::circuit_breaker::{CircuitBreakerLayer, CircuitState};
use tower_fortify::http::{HoldToEosLayer, HttpClassifier};

type Chunk = Result<Frame<Bytes>, std::io::Error>;
type Streamed = StreamBody<mpsc::UnboundedReceiver<Chunk>>;

/// A backend whose every response streams what the test sends on a channel; the
/// senders come back through `tx`.
fn streaming_backend(
    senders: mpsc::UnboundedSender<mpsc::UnboundedSender<Chunk>>,
) -> impl Service<Request<()>, Response = Response<Streamed>, Error = BoxError, Future: Send> + Clone
{
    service_fn(move |_req: Request<()>| {
        let (tx, rx) = mpsc::unbounded();
        senders.unbounded_send(tx).unwrap();
        async move { Ok::<_, BoxError>(Response::new(StreamBody::new(rx))) }
    })
}

fn data(s: &'static str) -> Chunk {
    Ok(Frame::data(Bytes::from_static(s.as_bytes())))
}

fn grpc_trailers(code: u8) -> Chunk {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", code.to_string().parse().unwrap());
    Ok(Frame::trailers(t))
}

#[tokio::test(start_paused = true)]
async fn a_streamed_response_keeps_the_permit_until_read_to_its_end() {
    let (senders, mut streams) = mpsc::unbounded();
    let bulkhead = BulkheadLayer::builder().max_concurrent(2).build().unwrap();
    let handle = bulkhead.handle();
    let mut client = ServiceBuilder::new()
        .layer(HoldToEosLayer::new(HttpClassifier::new()))
        .layer(bulkhead)
        .service(streaming_backend(senders));

    let response = client
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let tx = futures::StreamExt::next(&mut streams).await.unwrap();
    // The head arrived, the stream goes on: the permit is still held.
    assert_eq!(handle.in_flight(), 1);
    assert!(response.body().is_holding());

    let mut body = response.into_body();
    tx.unbounded_send(data("one")).unwrap();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "one");
    assert_eq!(handle.in_flight(), 1);

    drop(tx); // the stream ends
    assert!(body.frame().await.is_none());
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_body_returns_the_permit() {
    let (senders, mut streams) = mpsc::unbounded();
    let bulkhead = BulkheadLayer::builder().max_concurrent(1).build().unwrap();
    let handle = bulkhead.handle();
    let mut client = ServiceBuilder::new()
        .layer(HoldToEosLayer::new(HttpClassifier::new()))
        .layer(bulkhead)
        .service(streaming_backend(senders));

    let response = client
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let _tx = futures::StreamExt::next(&mut streams).await.unwrap();
    assert_eq!(handle.in_flight(), 1);
    // The only permit is in the body: a second call is turned away.
    let second = client.ready().await.unwrap().call(Request::new(())).await;
    assert!(second.is_err());
    drop(response);
    assert_eq!(handle.in_flight(), 0);
    let third = client.ready().await.unwrap().call(Request::new(())).await;
    assert!(third.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_keeps_its_permit_in_the_body_too() {
    let (senders, mut streams) = mpsc::unbounded();
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent(1)
        .queue(1, Duration::from_secs(10))
        .build()
        .unwrap();
    let handle = bulkhead.handle();
    let mut client = ServiceBuilder::new()
        .layer(HoldToEosLayer::new(HttpClassifier::new()))
        .layer(bulkhead)
        .service(streaming_backend(senders));

    let first = client
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let mut queued = task::spawn(client.ready().await.unwrap().call(Request::new(())));
    assert_pending!(queued.poll());
    assert_eq!(handle.queued(), 1);

    drop(first); // frees the permit: the queued call gets it
    let second = queued.await.unwrap();
    let tx = futures::StreamExt::next(&mut streams).await.unwrap();
    let _ = futures::StreamExt::next(&mut streams).await.unwrap();
    assert_eq!(
        handle.in_flight(),
        1,
        "the queued call's permit lives in its body"
    );
    assert!(second.body().is_holding());

    drop(tx);
    second.into_body().collect().await.unwrap();
    assert_eq!(handle.in_flight(), 0);
}

#[cfg(feature = "grpc")]
mod grpc {
    use super::*;
    use tower_fortify::grpc::GrpcClassifier;

    fn breaker() -> CircuitBreakerLayer<GrpcClassifier> {
        CircuitBreakerLayer::builder()
            .no_count_window()
            .consecutive_failures(3)
            .open_duration(Duration::from_secs(10))
            .classifier(GrpcClassifier::new())
            .build()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn unavailable_in_trailers_trips_the_breaker_after_n_streams() {
        let (senders, mut streams) = mpsc::unbounded();
        let layer = breaker();
        let handle = layer.handle();
        let mut client = ServiceBuilder::new()
            .layer(HoldToEosLayer::new(GrpcClassifier::new()))
            .layer(layer)
            .service(streaming_backend(senders));

        let mut bodies = Vec::new();
        for _ in 0..3 {
            let response = client
                .ready()
                .await
                .unwrap()
                .call(Request::new(()))
                .await
                .unwrap();
            let tx = futures::StreamExt::next(&mut streams).await.unwrap();
            tx.unbounded_send(data("message")).unwrap();
            tx.unbounded_send(grpc_trailers(14)).unwrap(); // UNAVAILABLE
            bodies.push(response.into_body());
        }
        // Three heads arrived (200, no grpc-status): no verdict yet.
        assert_eq!(handle.state(), CircuitState::Closed);
        assert_eq!(handle.figures().consecutive_failures, 0);

        for (i, body) in bodies.into_iter().enumerate() {
            let collected = body.collect().await.unwrap();
            assert_eq!(collected.trailers().unwrap()["grpc-status"], "14");
            assert_eq!(handle.figures().consecutive_failures as usize, (i + 1) % 3);
        }
        assert_eq!(handle.state(), CircuitState::Open);
        let rejected = client.ready().await.unwrap().call(Request::new(())).await;
        assert!(rejected.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn ok_in_trailers_is_a_success() {
        let (senders, mut streams) = mpsc::unbounded();
        let layer = breaker();
        let handle = layer.handle();
        let mut client = ServiceBuilder::new()
            .layer(HoldToEosLayer::new(GrpcClassifier::new()))
            .layer(layer)
            .service(streaming_backend(senders));
        for code in [14, 14, 0, 14, 14] {
            let response = client
                .ready()
                .await
                .unwrap()
                .call(Request::new(()))
                .await
                .unwrap();
            let tx = futures::StreamExt::next(&mut streams).await.unwrap();
            tx.unbounded_send(grpc_trailers(code)).unwrap();
            drop(tx); // trailers end the stream
            response.into_body().collect().await.unwrap();
        }
        // The success in the middle reset the count: two failures in a row.
        assert_eq!(handle.figures().consecutive_failures, 2);
        assert_eq!(handle.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_streams_record_nothing() {
        let (senders, mut streams) = mpsc::unbounded();
        let layer = breaker();
        let handle = layer.handle();
        let mut client = ServiceBuilder::new()
            .layer(HoldToEosLayer::new(GrpcClassifier::new()))
            .layer(layer)
            .service(streaming_backend(senders));
        for _ in 0..5 {
            let response = client
                .ready()
                .await
                .unwrap()
                .call(Request::new(()))
                .await
                .unwrap();
            let tx = futures::StreamExt::next(&mut streams).await.unwrap();
            tx.unbounded_send(data("partial")).unwrap();
            let mut body = response.into_body();
            body.frame().await.unwrap().unwrap();
            drop(body); // the caller gives up before the trailers
        }
        assert_eq!(handle.figures().consecutive_failures, 0);
        assert_eq!(handle.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_and_bulkhead_both_hold_until_the_trailers() {
        let (senders, mut streams) = mpsc::unbounded();
        let layer = breaker();
        let breaker_handle = layer.handle();
        let bulkhead = BulkheadLayer::builder().max_concurrent(4).build().unwrap();
        let bulkhead_handle = bulkhead.handle();
        let mut client = ServiceBuilder::new()
            .layer(HoldToEosLayer::new(GrpcClassifier::new()))
            .layer(layer)
            .layer(HoldToEosLayer::new(GrpcClassifier::new()))
            .layer(bulkhead)
            .service(streaming_backend(senders));
        let response = client
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        let tx = futures::StreamExt::next(&mut streams).await.unwrap();
        assert_eq!(bulkhead_handle.in_flight(), 1);
        tx.unbounded_send(grpc_trailers(14)).unwrap();
        drop(tx); // trailers end the stream
        response.into_body().collect().await.unwrap();
        assert_eq!(bulkhead_handle.in_flight(), 0);
        assert_eq!(breaker_handle.figures().consecutive_failures, 1);
    }
}

#[cfg(all(feature = "grpc", feature = "failover"))]
mod failover {
    use super::*;
    use tower::Layer;
    use tower_fortify::failover::{Backend, Failover};
    use tower_fortify::grpc::GrpcClassifier;

    #[tokio::test(start_paused = true)]
    async fn the_router_counts_a_stream_in_flight_and_judges_its_trailers() {
        let (senders, mut streams) = mpsc::unbounded();
        let router = Failover::builder()
            .backend(Backend::new("only", streaming_backend(senders)))
            .classifier(GrpcClassifier::new())
            .consecutive_failures(None)
            .build()
            .unwrap();
        let handle = router.handle();
        let mut client = HoldToEosLayer::new(GrpcClassifier::new()).layer(router);
        let status = || handle.backend("only").unwrap();

        // A stream read to its UNAVAILABLE trailers: one failure, after the trailers.
        let response = client
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        let tx = futures::StreamExt::next(&mut streams).await.unwrap();
        assert_eq!(status().in_flight, 1);
        assert_eq!(status().failures, 0);
        tx.unbounded_send(grpc_trailers(14)).unwrap();
        drop(tx);
        response.into_body().collect().await.unwrap();
        assert_eq!(status().in_flight, 0);
        assert_eq!(status().failures, 1);

        // A stream dropped before its end: out of flight, recorded as nothing.
        let response = client
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        let _tx = futures::StreamExt::next(&mut streams).await.unwrap();
        assert_eq!(status().in_flight, 1);
        drop(response);
        assert_eq!(status().in_flight, 0);
        assert_eq!((status().successes, status().failures), (0, 1));
    }
}
