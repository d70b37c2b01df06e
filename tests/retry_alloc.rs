//! The retry layer's success path allocates nothing: a counting global allocator
//! proves it, call by call.

#![cfg(feature = "retry")]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tower::Service;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::budget::Budget;
use tower_fortify::retry::RetryLayer;
use tower_layer::Layer;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

#[derive(Clone)]
struct Ok1;

impl Service<u64> for Ok1 {
    type Response = u64;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<u64, std::io::Error>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: u64) -> Self::Future {
        std::future::ready(Ok(req + 1))
    }
}

fn call_once<S: Service<u64, Response = u64>>(svc: &mut S, cx: &mut Context<'_>, req: u64) -> u64 {
    assert!(svc.poll_ready(cx).is_ready());
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(cx) {
        Poll::Ready(Ok(v)) => v,
        _ => panic!("the success path completes in one poll"),
    }
}

fn allocations_per_call(layer: RetryLayer) -> u64 {
    let mut svc = layer.layer(Ok1);
    let mut cx = Context::from_waker(Waker::noop());
    // Warm up: thread-local shard index, tracing callsite registration.
    for i in 0..10 {
        assert_eq!(call_once(&mut svc, &mut cx, i), i + 1);
    }
    let before = allocations();
    for i in 0..1_000 {
        assert_eq!(call_once(&mut svc, &mut cx, i), i + 1);
    }
    allocations() - before
}

#[test]
fn success_path_allocates_nothing() {
    // The counter counts: one box is one allocation.
    let before = allocations();
    drop(std::hint::black_box(Box::new(1u8)));
    assert_eq!(allocations() - before, 1);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let jittered = Backoff::exponential(Duration::from_millis(10)).jitter(Jitter::Full);

    let with_ratio = RetryLayer::builder()
        .backoff(jittered)
        .budget(Budget::ratio(Duration::from_secs(10), 10, 0.2).unwrap())
        .build()
        .unwrap();
    assert_eq!(allocations_per_call(with_ratio), 0, "ratio budget");

    let with_bucket = RetryLayer::builder()
        .backoff(jittered)
        .budget(Budget::token_bucket(100.0, 0.1).unwrap())
        .build()
        .unwrap();
    assert_eq!(allocations_per_call(with_bucket), 0, "token bucket");

    let with_deadline_and_listener = RetryLayer::builder()
        .backoff(jittered)
        .deadline(Duration::from_secs(1))
        .listener(|_: &tower_fortify::observe::Event| {})
        .build()
        .unwrap();
    assert_eq!(
        allocations_per_call(with_deadline_and_listener),
        0,
        "deadline and a listener"
    );
}
