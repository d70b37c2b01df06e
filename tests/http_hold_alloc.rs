//! Allocations per HTTP request through `HoldToEos` over a circuit breaker and a
//! bulkhead, with the response body read to its end: none, counted exactly with a
//! counting global allocator.

#![cfg(all(feature = "http", feature = "bulkhead", feature = "circuit-breaker"))]

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use http_body::Body;
use http_body_util::Full;
use tower::Service;
use tower_fortify::bulkhead::BulkheadLayer;
use tower_fortify::circuit_breaker::CircuitBreakerLayer;
use tower_fortify::http::{HoldToEosLayer, HttpClassifier};
use tower_layer::Layer;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

/// Reads the request body to its end and answers 200.
#[derive(Clone)]
struct Backend;

impl<B: Body + Unpin> Service<Request<B>> for Backend {
    type Response = Response<Full<Bytes>>;
    type Error = std::io::Error;
    type Future = Drain<B>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request<B>) -> Drain<B> {
        Drain(req.into_body())
    }
}

struct Drain<B>(B);

impl<B: Body + Unpin> Future for Drain<B> {
    type Output = Result<Response<Full<Bytes>>, std::io::Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        while let Poll::Ready(Some(frame)) = Pin::new(&mut self.0).poll_frame(cx) {
            assert!(frame.is_ok());
        }
        Poll::Ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    }
}

fn request() -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from_static(b"payload")));
    *req.method_mut() = Method::PUT;
    *req.uri_mut() = Uri::from_static("http://backend/items/1");
    req
}

/// Allocations for 1000 calls, each sending a request and reading the response
/// body to its end.
fn allocations_per_call<S, B>(mut svc: S) -> u64
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body + Unpin,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut once = |svc: &mut S, req| {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let mut fut = pin!(svc.call(req));
        let mut body = match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(r)) => {
                assert_eq!(r.status(), 200);
                r.into_body()
            }
            _ => panic!("the success path completes in one poll"),
        };
        while let Poll::Ready(Some(frame)) = Pin::new(&mut body).poll_frame(&mut cx) {
            assert!(frame.is_ok());
        }
    };
    for _ in 0..WARM_UP {
        once(&mut svc, request());
    }
    let requests: Vec<_> = (0..1_000).map(|_| request()).collect();
    let before = allocations();
    for req in requests {
        once(&mut svc, req);
    }
    allocations() - before
}

/// Calls before counting: the first calls on a thread set up per-thread state.
const WARM_UP: usize = 100;

#[test]
fn holding_to_the_end_of_the_body_allocates_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();

    let hold = HoldToEosLayer::new(HttpClassifier::new());
    let bulkhead = BulkheadLayer::new(8).unwrap();
    let handle = bulkhead.handle();
    let breaker = CircuitBreakerLayer::builder()
        .classifier(HttpClassifier::new())
        .build()
        .unwrap();
    let svc = hold.layer(breaker.layer(hold.layer(bulkhead.layer(Backend))));
    assert_eq!(
        allocations_per_call(svc),
        0,
        "hold + breaker + hold + bulkhead"
    );
    assert_eq!(
        handle.in_flight(),
        0,
        "every permit came back at the end of its body"
    );
}
