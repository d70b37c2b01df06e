//! The uncontended success path of a bulkhead allocates nothing (counting allocator).
#![cfg(feature = "bulkhead")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::Ready;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures::FutureExt;
use tower::{Layer, Service};
use tower_fortify::bulkhead::{AdaptiveLimit, Aimd, BulkheadLayer};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the measuring thread only: the test harness's own threads allocate
    /// (to print progress) at moments of their choosing.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if MEASURING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone)]
struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        std::future::ready(Ok(req))
    }
}

fn allocations_per_call(layer: BulkheadLayer) -> usize {
    let mut svc = layer.layer(Echo);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut run = |n: u64| {
        for i in 0..n {
            assert!(svc.poll_ready(&mut cx).is_ready());
            assert_eq!(svc.call(i).now_or_never().unwrap().unwrap(), i);
        }
    };
    run(100); // warm up: thread-local shard index, tracing callsites
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    MEASURING.with(|m| m.set(true));
    run(10_000);
    MEASURING.with(|m| m.set(false));
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn fixed_and_adaptive_bulkheads_allocate_nothing_per_call() {
    assert_eq!(allocations_per_call(BulkheadLayer::new(16).unwrap()), 0);
    let layer = BulkheadLayer::builder()
        .adaptive(AdaptiveLimit::aimd(Aimd::default()))
        .build()
        .unwrap();
    assert_eq!(allocations_per_call(layer), 0);
}

/// A keyed bulkhead's hit (a key already in the map) allocates nothing: the map lookup
/// clones the key's `Arc`, nothing else. Eight keys, all inserted by the warm-up.
#[test]
fn keyed_bulkhead_hit_allocates_nothing() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(16)
        .keyed(|r: &u64| *r % 8)
        .max_keys(64)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(Echo);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut run = |n: u64| {
        for i in 0..n {
            assert!(svc.poll_ready(&mut cx).is_ready());
            assert_eq!(svc.call(i).now_or_never().unwrap().unwrap(), i);
        }
    };
    run(100);
    assert_eq!(handle.len(), 8, "every key has its bulkhead");
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    MEASURING.with(|m| m.set(true));
    run(10_000);
    MEASURING.with(|m| m.set(false));
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst) - before, 0);
}
