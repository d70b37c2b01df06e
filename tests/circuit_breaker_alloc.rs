//! The Closed-state success path allocates nothing: counted exactly with a counting
//! global allocator (allocations on this thread only).
#![cfg(feature = "circuit-breaker")]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::noop_waker_ref;
use tower::{Layer, Service, service_fn};
use tower_fortify::circuit_breaker::{CircuitBreakerBuilder, CircuitBreakerLayer};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{allocated_bytes, allocations};

/// Allocations made by `calls` successful calls through a breaker built by `builder`.
fn allocations_per_success(builder: CircuitBreakerBuilder, calls: u64) -> u64 {
    let layer = builder.build().unwrap();
    let mut svc = layer.layer(service_fn(
        |x: u64| async move { Ok::<_, std::io::Error>(x) },
    ));
    let mut cx = Context::from_waker(noop_waker_ref());
    let mut one = |i: u64| {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let fut = pin!(svc.call(i));
        match fut.poll(&mut cx) {
            Poll::Ready(Ok(v)) => assert_eq!(v, i),
            other => panic!("unexpected {other:?}"),
        }
    };
    one(0); // first use of this thread's shard
    let before = allocations();
    for i in 0..calls {
        one(i);
    }
    allocations() - before
}

#[test]
fn closed_success_path_allocates_nothing() {
    let before = allocations();
    drop(std::hint::black_box(Box::new(1u64)));
    assert_eq!(allocations() - before, 1, "the allocator counts");
    let b = CircuitBreakerLayer::builder;
    let variants = [
        ("consecutive", b().no_count_window().consecutive_failures(5)),
        ("count window", b().count_window(100)),
        (
            "time window",
            b().no_count_window().time_window(Duration::from_secs(10)),
        ),
        (
            "all conditions",
            b().consecutive_failures(5)
                .count_window(100)
                .time_window(Duration::from_secs(10)),
        ),
    ];
    for (name, builder) in variants {
        assert_eq!(allocations_per_success(builder, 10_000), 0, "{name}");
    }
}

/// A count window used to reserve its whole capacity when built: 16 MB for a window
/// of a million calls with slow-call detection, per breaker (per key when keyed).
#[test]
fn a_large_count_window_reserves_nothing_up_front() {
    let before = allocated_bytes();
    let layer = CircuitBreakerLayer::builder()
        .count_window(1_000_000)
        .slow_calls(Duration::from_secs(1), 0.5)
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(
        |x: u64| async move { Ok::<_, std::io::Error>(x) },
    ));
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let fut = pin!(svc.call(1));
    assert!(matches!(fut.poll(&mut cx), Poll::Ready(Ok(1))));
    let bytes = allocated_bytes() - before;
    assert!(bytes < 64 * 1024, "{bytes} bytes for one breaker");
}

/// An open breaker turns calls away without a heap allocation: the rejection is held
/// by value in the `BreakerError` (and names the breaker through a shared `Arc<str>`).
#[test]
fn open_rejection_allocates_nothing() {
    let layer = CircuitBreakerLayer::builder()
        .no_count_window()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(3600))
        .name("payments")
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|x: u64| async move {
        if x == 0 {
            Err(std::io::Error::other("down"))
        } else {
            Ok(x)
        }
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        use tower::ServiceExt;
        assert!(svc.ready().await.unwrap().call(0).await.is_err());
        let mut one = async |i: u64| {
            let err = svc.ready().await.unwrap().call(i).await.unwrap_err();
            assert!(err.is_open(), "{err}");
            err
        };
        let first = one(1).await;
        assert!(
            first
                .to_string()
                .starts_with("circuit breaker `payments` is open; retry in "),
            "{first}"
        );
        drop(first);
        let before = allocations();
        for i in 1..=1000 {
            drop(one(i).await);
        }
        assert_eq!(allocations() - before, 0, "allocations for 1000 rejections");
    });
}

/// A keyed breaker's hit (a key already in the map) allocates nothing, closed or open.
#[test]
fn keyed_hit_allocates_nothing() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(3600))
        .keyed(|x: &u64| *x % 8)
        .build()
        .unwrap();
    let handle = layer.handle();
    // Key 0's requests (multiples of 8) fail: its breaker opens; the other seven stay closed.
    let mut svc = layer.layer(service_fn(|x: u64| async move {
        if x.is_multiple_of(8) {
            Err(std::io::Error::other("down"))
        } else {
            Ok(x)
        }
    }));
    let mut cx = Context::from_waker(noop_waker_ref());
    let mut run = |n: u64| {
        let mut rejected = 0;
        for i in 0..n {
            assert!(svc.poll_ready(&mut cx).is_ready());
            let fut = pin!(svc.call(i));
            match fut.poll(&mut cx) {
                Poll::Ready(Ok(v)) => assert_eq!(v, i),
                Poll::Ready(Err(e)) => rejected += e.is_open() as u64,
                Poll::Pending => panic!("pending"),
            }
        }
        rejected
    };
    run(100);
    assert_eq!(handle.len(), 8, "every key has its breaker");
    let before = allocations();
    let rejected = run(8_000);
    assert_eq!(
        allocations() - before,
        0,
        "allocations for 8000 keyed calls"
    );
    assert_eq!(rejected, 1000, "key 0's breaker is open");
}
