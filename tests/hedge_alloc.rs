//! The hedging layer's success path allocates nothing when no hedge fires: a
//! counting global allocator proves it, call by call.

#![cfg(feature = "hedge")]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tower::Service;
use tower_fortify::hedge::{HedgeBuilder, HedgeLayer};
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

fn allocations_per_thousand(builder: HedgeBuilder) -> u64 {
    let mut svc = builder.build().unwrap().layer(Ok1);
    let mut cx = Context::from_waker(Waker::noop());
    let mut once = |i: u64| {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let mut fut = pin!(svc.call(i));
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(v)) => assert_eq!(v, i + 1),
            _ => panic!("the success path completes in one poll"),
        }
    };
    // Warm up: thread-local shard index, tracing callsite registration.
    for i in 0..10 {
        once(i);
    }
    let before = allocations();
    for i in 0..1_000 {
        once(i);
    }
    allocations() - before
}

#[test]
fn no_allocation_with_a_fixed_delay() {
    let b = HedgeLayer::builder().delay(Duration::from_millis(10));
    assert_eq!(allocations_per_thousand(b), 0);
}

#[test]
fn no_allocation_with_a_percentile_delay_and_its_budget() {
    // The default: percentile delay, histogram updates, its own ratio budget.
    assert_eq!(allocations_per_thousand(HedgeLayer::builder()), 0);
}
