//! Allocations per HTTP request through the retry stack, counted exactly with a
//! counting global allocator: none with a `Clone` body, one with a `ReplayBody` (its
//! shared record) for a one-chunk body, two for a longer one (plus its chunk list).

#![cfg(all(feature = "http", feature = "retry"))]

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use http_body::Body;
use http_body_util::Full;
use tower::Service;
use tower_fortify::http::HttpReplay;
use tower_fortify::http::{HttpClassifier, ReplayBodyLayer};
use tower_fortify::retry::RetryLayer;
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

fn allocations_per_call<S>(mut svc: S) -> u64
where
    S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut once = |svc: &mut S, req| {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let mut fut = pin!(svc.call(req));
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(r)) => assert_eq!(r.status(), 200),
            _ => panic!("the success path completes in one poll"),
        }
    };
    // Warm up: thread-local shard index, tracing callsite registration.
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

fn retry() -> RetryLayer<HttpClassifier, HttpReplay> {
    RetryLayer::builder()
        .max_attempts(3)
        .classifier(HttpClassifier::new())
        .replay(HttpReplay)
        .build()
        .unwrap()
}

#[test]
fn allocations_per_request() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();

    assert_eq!(allocations_per_call(Backend), 0, "bare");
    assert_eq!(
        allocations_per_call(retry().layer(Backend)),
        0,
        "classifier + retry, Clone body"
    );
    assert_eq!(
        allocations_per_call(ReplayBodyLayer::new(1024).layer(retry().layer(Backend))),
        1_000,
        "classifier + retry + replay body: the shared record"
    );
}
