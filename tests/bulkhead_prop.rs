//! Property test: random arrivals, durations and cancellations against a bulkhead with
//! a queue, in paused time. In flight never exceeds the limit, the queue never exceeds
//! its bound, queued calls reach the service in arrival order, and every permit returns.
#![cfg(feature = "bulkhead")]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_fortify::bulkhead::BulkheadLayer;

#[derive(Debug, Clone)]
struct Arrival {
    gap_ms: u64,
    duration_ms: u64,
    cancel_after_ms: Option<u64>,
}

fn arrival() -> impl Strategy<Value = Arrival> {
    (
        0u64..20,
        1u64..60,
        proptest::option::weighted(0.3, 0u64..80),
    )
        .prop_map(|(gap_ms, duration_ms, cancel_after_ms)| Arrival {
            gap_ms,
            duration_ms,
            cancel_after_ms,
        })
}

struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn run(limit: usize, max_queued: usize, max_wait_ms: u64, arrivals: Vec<Arrival>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let layer = BulkheadLayer::builder()
            .max_concurrent(limit)
            .queue(max_queued, Duration::from_millis(max_wait_ms))
            .build()
            .unwrap();
        let handle = layer.handle();
        let running = Arc::new(AtomicUsize::new(0));
        let entered = Arc::new(Mutex::new(Vec::new()));
        let (r, e) = (running.clone(), entered.clone());
        let svc = layer.layer(service_fn(move |(id, ms): (usize, u64)| {
            e.lock().unwrap().push((id, tokio::time::Instant::now()));
            let n = r.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(n <= limit, "{n} calls in flight, limit {limit}");
            let guard = Running(r.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                drop(guard);
                Ok::<_, Infallible>(id)
            }
        }));

        let mut queued_ids = Vec::new();
        let mut tasks = Vec::new();
        for (id, a) in arrivals.into_iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(a.gap_ms)).await;
            let mut svc = svc.clone();
            let fut = svc.ready().await.unwrap().call((id, a.duration_ms));
            assert!(handle.in_flight() <= limit);
            assert!(handle.queued() <= max_queued, "{} queued", handle.queued());
            if !entered.lock().unwrap().iter().any(|(e, _)| *e == id) {
                queued_ids.push(id);
            }
            tasks.push(tokio::spawn(async move {
                match a.cancel_after_ms {
                    Some(ms) => {
                        let _ = tokio::time::timeout(Duration::from_millis(ms), fut).await;
                    }
                    None => {
                        let _ = fut.await;
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }

        // Every permit came back.
        assert_eq!(running.load(Ordering::SeqCst), 0);
        assert_eq!((handle.in_flight(), handle.queued()), (0, 0));
        let permits: Vec<_> = (0..limit).map(|_| handle.try_acquire().unwrap()).collect();
        assert!(handle.try_acquire().is_err());
        drop(permits);

        // Calls that had to wait were served in arrival order: an earlier arrival never
        // entered the service later (in virtual time) than a later one. Calls granted
        // at the same instant may be polled in either order by the scheduler.
        let entered = entered.lock().unwrap();
        let waited: Vec<_> = entered
            .iter()
            .copied()
            .filter(|(id, _)| queued_ids.contains(id))
            .collect();
        for (a, ta) in &waited {
            for (b, tb) in &waited {
                assert!(!(a < b && ta > tb), "call {a} entered after call {b}");
            }
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_bulkhead_keeps_its_invariants(
        limit in 1usize..6,
        max_queued in 0usize..6,
        max_wait_ms in 0u64..100,
        arrivals in proptest::collection::vec(arrival(), 1..60),
    ) {
        run(limit, max_queued, max_wait_ms, arrivals);
    }
}
