//! Racing callers never get more probes than configured in half-open.
//!
//! Many OS threads start together (a barrier) and race to admit calls on clones of
//! one breaker that has just become due for half-open, over many iterations. The
//! breaker runs outside a tokio runtime here, so its clock is the real one; the open
//! duration is 1 ns, so the first call after the trip moves it to half-open. Nothing
//! asserts on time.
#![cfg(feature = "circuit-breaker")]

use std::future::Future;
use std::pin::Pin;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::noop_waker_ref;
use tower::{Layer, Service, service_fn};
use tower_fortify::BoxError;
use tower_fortify::circuit_breaker::error::{BreakerError, CircuitOpen};
use tower_fortify::circuit_breaker::{CircuitBreakerLayer, CircuitState};

const THREADS: usize = 8;
const PROBES: u32 = 3;

type Fut = Pin<Box<dyn Future<Output = Result<(), BreakerError>> + Send>>;

/// Calls the service; `Some(future)` if admitted (the future stays pending).
fn try_admit<S>(svc: &mut S, fail: bool) -> Option<Fut>
where
    S: Service<bool, Response = (), Error = BreakerError>,
    S::Future: Send + 'static,
{
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut fut: Fut = Box::pin(svc.call(fail));
    match fut.as_mut().poll(&mut cx) {
        Poll::Pending => Some(fut),
        Poll::Ready(Err(e)) if e.is::<CircuitOpen>() => None,
        Poll::Ready(r) => panic!("unexpected {r:?}"),
    }
}

fn service()
-> impl Service<bool, Response = (), Error = BoxError, Future: Send + 'static> + Clone + Send {
    service_fn(|fail: bool| async move {
        if fail {
            Err::<(), BoxError>("down".into())
        } else {
            // Stays pending: the probe is in flight until dropped.
            std::future::pending::<()>().await;
            Ok(())
        }
    })
}

#[test]
fn racing_callers_never_exceed_the_probe_count() {
    for _ in 0..300 {
        let layer = CircuitBreakerLayer::builder()
            .no_count_window()
            .consecutive_failures(1)
            .open_duration(Duration::from_nanos(1))
            .half_open_probes(PROBES)
            .build()
            .unwrap();
        let handle = layer.handle();
        let mut svc = layer.layer(service());
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut trip: Fut = Box::pin(svc.call(true));
        assert!(trip.as_mut().poll(&mut cx).is_ready());
        assert_eq!(handle.state(), CircuitState::Open);

        let barrier = Barrier::new(THREADS);
        let admitted = AtomicU32::new(0);
        let live = AtomicU32::new(0);
        let max_live = AtomicU32::new(0);
        let held: Vec<Vec<Fut>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..THREADS)
                .map(|i| {
                    let mut svc = svc.clone();
                    let (barrier, admitted, live, max_live) =
                        (&barrier, &admitted, &live, &max_live);
                    s.spawn(move || {
                        barrier.wait();
                        let mut keep = Vec::new();
                        // Half the threads admit and drop repeatedly, returning slots.
                        for _ in 0..20 {
                            if let Some(f) = try_admit(&mut svc, false) {
                                let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                                max_live.fetch_max(now, Ordering::SeqCst);
                                admitted.fetch_add(1, Ordering::SeqCst);
                                if i % 2 == 0 {
                                    live.fetch_sub(1, Ordering::SeqCst);
                                    drop(f);
                                } else {
                                    keep.push(f);
                                }
                            }
                        }
                        keep
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let kept: usize = held.iter().map(Vec::len).sum();
        assert!(
            max_live.load(Ordering::SeqCst) <= PROBES,
            "{} probes in flight at once",
            max_live.load(Ordering::SeqCst)
        );
        assert!(kept <= PROBES as usize);
        assert_eq!(handle.probes_admitted() as usize, kept, "held slots match");
        assert_eq!(handle.state(), CircuitState::HalfOpen);
        drop(held);
        assert_eq!(handle.probes_admitted(), 0, "every slot came back");
    }
}
