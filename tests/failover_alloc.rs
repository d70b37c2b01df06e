//! Heap allocations per call on the router's success path, counted by a global
//! allocator (its own test binary so nothing else allocates on the counted thread).
#![cfg(feature = "failover")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::time::Duration;

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

/// Paused time: the clock stands still while the calls are counted, so the router's
/// health sweep (once per `interval`, 2 s by default, not per request; it allocates
/// its scratch lists) cannot fall inside the count on a slow host.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
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
/// router per request (clone + `mem::replace`); the clone shares the backend list and
/// the routing table, and takes the service instance a dropped clone left behind, so
/// it allocates nothing. The request's `Tried` set is recycled (its last copy goes
/// back to a per-thread cache), so nothing is allocated at all; it used to be one
/// allocation per request.
#[cfg(feature = "retry")]
#[test]
fn under_retry_with_attempt_aware_routing_nothing_is_allocated() {
    for seed in 0..32 {
        let rt = runtime();
        rt.block_on(async {
            let router = Failover::builder()
                .backends((0..3u32).map(|i| {
                    Backend::new(
                        format!("b{i}"),
                        service_fn(move |r: Req| ready(Ok::<_, Infallible>(r.n + i))),
                    )
                }))
                .tried(tower_fortify::failover::tried_fn(|r: &Req| Some(&r.tried)))
                .rng(tower_fortify::rng::Rng::seeded(seed))
                .build()
                .unwrap();
            let retry = tower_fortify::retry::RetryLayer::builder()
                .no_budget()
                .build()
                .unwrap();
            let mut svc = tower::ServiceBuilder::new().layer(retry).service(router);
            let req = |n| Req {
                n,
                tried: tower_fortify::failover::Tried::new(),
            };
            // Warm up until each backend has answered (its first call clones it once).
            let mut seen = [false; 3];
            let mut n = 0;
            while seen.iter().any(|s| !s) {
                let got = svc.ready().await.unwrap().call(req(n)).await.unwrap();
                seen[(got - n) as usize] = true;
                n += 1;
                if n.is_multiple_of(100) {
                    tokio::time::advance(Duration::from_secs(3600)).await;
                }
            }
            let ((), allocs) = count(|| {
                futures::executor::block_on(async {
                    for n in 0..CALLS as u32 {
                        svc.ready().await.unwrap().call(req(n)).await.unwrap();
                    }
                })
            });
            assert_eq!(
                allocs, 0,
                "seed {seed}: {allocs} allocations for {CALLS} requests"
            );
        });
    }
}

/// A backend with state, boxed: cloning it allocates (the box), and so does each call
/// (the boxed future).
#[cfg(feature = "retry")]
type Boxed = tower::util::BoxCloneSyncService<u32, u32, tower_fortify::BoxError>;

#[cfg(feature = "retry")]
fn boxed(offset: u32) -> Boxed {
    tower::util::BoxCloneSyncService::new(service_fn(move |x: u32| {
        ready(Ok::<_, tower_fortify::BoxError>(x + offset))
    }))
}

/// Allocations made by `CALLS` requests through `svc`, after a warm-up in which each
/// of the `backends` backends (`boxed(i)` answers `x + i`) has answered at least once:
/// a backend's first call clones its service once, for good (the router keeps the
/// instance for the next clone), which is not a cost per request. In paused time
/// every answer takes 0 ns, so a backend not yet called (its latency estimate not yet
/// decayed) loses every peak-EWMA comparison: the warm-up lets an hour pass now and
/// then, after which every estimate has decayed and each backend gets its turn.
#[cfg(feature = "retry")]
fn allocations_per_requests<S>(mut svc: S, backends: u32) -> usize
where
    S: Service<u32, Response = u32, Error = tower_fortify::BoxError>,
{
    let rt = runtime();
    rt.block_on(async {
        let mut seen = vec![false; backends as usize];
        let mut i = 0u32;
        while seen.iter().any(|s| !s) {
            let got = svc.ready().await.unwrap().call(i).await.unwrap();
            seen[(got - i) as usize] = true;
            i += 1;
            if i.is_multiple_of(100) {
                tokio::time::advance(Duration::from_secs(3600)).await;
            }
            assert!(i < 100_000, "the warm-up reached every backend");
        }
        let ((), allocs) = count(|| {
            futures::executor::block_on(async {
                for i in 0..CALLS as u32 {
                    svc.ready().await.unwrap().call(i).await.unwrap();
                }
            })
        });
        allocs
    })
}

/// Under the retry layer, which clones the router per request, the router allocates
/// nothing for any number of boxed backends: the only allocations are the boxed
/// backend's own (its boxed future), the same as calling it directly. The router clone
/// used to clone, and so box, every backend: 2 + backends allocations per request.
#[cfg(feature = "retry")]
#[test]
fn under_retry_boxed_backends_cost_the_router_nothing() {
    let direct = allocations_per_requests(boxed(0), 1);
    assert_eq!(direct, CALLS, "a boxed backend boxes each call's future");
    // Each seed makes the router choose differently; 32 of them per size.
    for (n, seed) in [1u32, 3, 8]
        .into_iter()
        .flat_map(|n| (0..32).map(move |s| (n, s)))
    {
        let router = Failover::builder()
            .backends((0..n).map(|i| Backend::new(format!("b{i}"), boxed(i))))
            .rng(tower_fortify::rng::Rng::seeded(seed))
            .build()
            .unwrap();
        let retry = tower_fortify::retry::RetryLayer::builder()
            .no_budget()
            .build()
            .unwrap();
        let svc = tower::ServiceBuilder::new().layer(retry).service(router);
        let allocs = allocations_per_requests(svc, n);
        assert_eq!(
            allocs, direct,
            "{n} backends, seed {seed}: {allocs} allocations for {CALLS} requests, {direct} of them the backend's"
        );
    }
}
