//! Heap allocations per call on the router's success path, counted by a global
//! allocator (its own test binary so nothing else allocates on the counted thread).
#![cfg(feature = "failover")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Ready, ready};

use tower::{Service, ServiceExt, service_fn};
use tower_fortify::failover::{Backend, Failover};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts calls on this thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNTING.try_with(|c| {
            if c.get() {
                COUNT.with(|n| n.set(n.get() + 1));
            }
        });
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
    // The executor's thread-local state is made on first use.
    futures::executor::block_on(async {});
    COUNT.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, COUNT.with(|n| n.get()))
}

type Echo = tower::util::ServiceFn<fn(u32) -> Ready<Result<u32, Infallible>>>;

fn echo() -> Echo {
    service_fn((|x| ready(Ok(x))) as fn(u32) -> Ready<Result<u32, Infallible>>)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

const CALLS: usize = 1000;

/// Direct calls with health tracking on (latency rule included): no allocation.
#[test]
fn success_path_allocates_nothing() {
    let rt = runtime();
    rt.block_on(async {
        let mut router = Failover::builder()
            .backends((0..3).map(|i| Backend::new(format!("b{i}"), echo())))
            .build()
            .unwrap();
        for i in 0..100 {
            router.ready().await.unwrap().call(i).await.unwrap();
        }
        let ((), allocs) = count(|| {
            futures::executor::block_on(async {
                for i in 0..CALLS as u32 {
                    let out = router.ready().await.unwrap().call(i).await.unwrap();
                    assert_eq!(out, i);
                }
            })
        });
        assert_eq!(allocs, 0, "{allocs} allocations for {CALLS} calls");
    });
}

#[cfg(feature = "retry")]
#[derive(Clone)]
struct Req {
    n: u32,
    tried: tower_fortify::failover::Tried,
}

/// Under the retry layer with attempt-aware routing. The retry layer clones the
/// router per request (clone + `mem::replace`), which costs one allocation for the
/// clone's backend list (the routing table is shared with the original); the
/// request's `Tried` set is one more, made by the caller. Measured: 2 per request.
#[cfg(feature = "retry")]
#[test]
fn under_retry_each_request_costs_two_allocations() {
    let rt = runtime();
    rt.block_on(async {
        let router = Failover::builder()
            .backends((0..3).map(|i| {
                Backend::new(
                    format!("b{i}"),
                    service_fn(|r: Req| ready(Ok::<_, Infallible>(r.n))),
                )
            }))
            .tried(tower_fortify::failover::tried_fn(|r: &Req| Some(&r.tried)))
            .build()
            .unwrap();
        let retry = tower_fortify::retry::RetryLayer::builder()
            .no_budget()
            .build()
            .unwrap();
        let mut svc = tower::ServiceBuilder::new().layer(retry).service(router);
        for n in 0..100 {
            let r = Req {
                n,
                tried: tower_fortify::failover::Tried::new(),
            };
            svc.ready().await.unwrap().call(r).await.unwrap();
        }
        let ((), allocs) = count(|| {
            futures::executor::block_on(async {
                for n in 0..CALLS as u32 {
                    let r = Req {
                        n,
                        tried: tower_fortify::failover::Tried::new(),
                    };
                    svc.ready().await.unwrap().call(r).await.unwrap();
                }
            })
        });
        assert_eq!(
            allocs,
            2 * CALLS,
            "{allocs} allocations for {CALLS} requests"
        );
    });
}
