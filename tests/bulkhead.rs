//! The fixed bulkhead: rejection, queueing, readiness, cancellation, limits, events.
#![cfg(feature = "bulkhead")]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_test::{assert_pending, assert_ready, assert_ready_ok};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_fortify::bulkhead::{BulkheadFull, BulkheadLayer};
use tower_fortify::observe::{BulkheadEvent, Event};
use tower_test::mock;

fn fixed(limit: usize) -> BulkheadLayer {
    BulkheadLayer::builder()
        .max_concurrent(limit)
        .build()
        .unwrap()
}

fn queued(limit: usize, max_queued: usize, max_wait: Duration) -> BulkheadLayer {
    BulkheadLayer::builder()
        .max_concurrent(limit)
        .queue(max_queued, max_wait)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn rejects_at_once_with_a_typed_error_when_full() {
    let layer = fixed(2);
    let handle = layer.handle();
    let (mut svc, mut backend) = mock::spawn_with(|s: mock::Mock<&str, &str>| layer.layer(s));
    backend.allow(10);

    assert_ready_ok!(svc.poll_ready());
    let f1 = svc.call("a");
    assert_ready_ok!(svc.poll_ready());
    let f2 = svc.call("b");
    assert_eq!(handle.in_flight(), 2);

    // Full: poll_ready still passes on the inner readiness; call rejects at once.
    assert_ready_ok!(svc.poll_ready());
    let mut f3 = tokio_test::task::spawn(svc.call("c"));
    let err = assert_ready!(f3.poll()).unwrap_err();
    let full = err.downcast_ref::<BulkheadFull>().expect("BulkheadFull");
    assert_eq!((full.limit(), full.in_flight(), full.queued()), (2, 2, 0));
    assert!(!full.waited());
    assert!(err.to_string().contains("bulkhead full"));
    assert_eq!(handle.rejected(), 1);
    drop((f1, f2));
}

#[tokio::test(start_paused = true)]
async fn poll_ready_only_reflects_the_inner_service() {
    let layer = fixed(1);
    let (mut svc, mut backend) = mock::spawn_with(|s: mock::Mock<&str, &str>| layer.layer(s));
    backend.allow(0);
    assert_pending!(svc.poll_ready());
    backend.allow(1);
    assert_ready_ok!(svc.poll_ready());
}

#[tokio::test(start_paused = true)]
async fn a_completed_or_dropped_response_future_returns_its_permit() {
    let layer = fixed(1);
    let handle = layer.handle();
    let (mut svc, mut backend) = mock::spawn_with(|s: mock::Mock<&str, &str>| layer.layer(s));
    backend.allow(10);

    assert_ready_ok!(svc.poll_ready());
    let fut = svc.call("a");
    assert_eq!(handle.in_flight(), 1);
    drop(fut);
    assert_eq!(handle.in_flight(), 0);
    let _ = backend.next_request().await.unwrap();

    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call("b"));
    let (req, respond) = backend.next_request().await.unwrap();
    assert_eq!(req, "b");
    assert_pending!(fut.poll());
    assert_eq!(
        handle.in_flight(),
        1,
        "the permit lives until the response is complete"
    );
    respond.send_response("ok");
    assert_eq!(assert_ready_ok!(fut.poll()), "ok");
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_inner_error_returns_the_permit() {
    let layer = fixed(1);
    let handle = layer.handle();
    let (mut svc, mut backend) = mock::spawn_with(|s: mock::Mock<&str, &str>| layer.layer(s));
    backend.allow(10);
    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call("a"));
    let (_, respond) = backend.next_request().await.unwrap();
    respond.send_error(std::io::Error::other("boom"));
    assert!(assert_ready!(fut.poll()).is_err());
    assert_eq!(handle.in_flight(), 0);
}

/// A service that records which requests it was called with and how often it was
/// polled for readiness, across clones.
#[derive(Clone, Default)]
struct Recorder {
    readied: Arc<AtomicUsize>,
    called: Arc<Mutex<Vec<u32>>>,
}

impl Service<u32> for Recorder {
    type Response = u32;
    type Error = Infallible;
    type Future = std::future::Ready<Result<u32, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        self.readied.fetch_add(1, Ordering::SeqCst);
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        self.called.lock().unwrap().push(req);
        std::future::ready(Ok(req))
    }
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_readies_the_inner_service_only_once_it_holds_a_permit() {
    let layer = queued(1, 4, Duration::from_secs(1));
    let handle = layer.handle();
    let rec = Recorder::default();
    let mut svc = layer.layer(rec.clone());
    let held = handle.try_acquire().unwrap();

    svc.ready().await.unwrap();
    let readied_before = rec.readied.load(Ordering::SeqCst);
    let mut fut = tokio_test::task::spawn(svc.call(7));
    assert_pending!(fut.poll());
    assert_eq!(handle.queued(), 1);
    assert_eq!(
        rec.readied.load(Ordering::SeqCst),
        readied_before,
        "not readied while queued"
    );
    assert!(rec.called.lock().unwrap().is_empty());

    drop(held);
    assert!(fut.is_woken());
    assert_eq!(assert_ready_ok!(fut.poll()), 7);
    assert_eq!(
        rec.readied.load(Ordering::SeqCst),
        readied_before + 1,
        "readied after the grant"
    );
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_arrival_order() {
    let layer = queued(1, 10, Duration::from_secs(10));
    let handle = layer.handle();
    let rec = Recorder::default();
    let mut svc = layer.layer(rec.clone());
    let held = handle.try_acquire().unwrap();
    let mut futs: Vec<_> = (0..5u32)
        .map(|i| tokio_test::task::spawn(svc.call(i)))
        .collect();
    for f in futs.iter_mut() {
        assert_pending!(f.poll());
    }
    assert_eq!(handle.queued(), 5);
    drop(held);
    // Poll in reverse, again and again: only the head of the queue may go each time.
    for _ in 0..5 {
        for f in futs.iter_mut().rev() {
            if !f.is_woken() {
                continue;
            }
            let _ = f.poll();
        }
    }
    assert_eq!(*rec.called.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn the_maximum_wait_is_honoured() {
    let layer = queued(1, 4, Duration::from_millis(100));
    let handle = layer.handle();
    let mut svc = layer.layer(Recorder::default());
    let held = handle.try_acquire().unwrap();
    let mut fut = tokio_test::task::spawn(svc.call(1));
    assert_pending!(fut.poll());
    tokio::time::advance(Duration::from_millis(99)).await;
    assert_pending!(fut.poll());
    tokio::time::advance(Duration::from_millis(1)).await;
    let err = assert_ready!(fut.poll()).unwrap_err();
    let full = err.downcast_ref::<BulkheadFull>().unwrap();
    assert!(full.waited());
    assert_eq!(handle.queued(), 0);
    drop(held);
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_rejects_at_once() {
    let layer = queued(1, 1, Duration::from_secs(1));
    let handle = layer.handle();
    let mut svc = layer.layer(Recorder::default());
    let _held = handle.try_acquire().unwrap();
    let mut waiting = tokio_test::task::spawn(svc.call(1));
    assert_pending!(waiting.poll());
    let mut rejected = tokio_test::task::spawn(svc.call(2));
    let err = assert_ready!(rejected.poll()).unwrap_err();
    let full = err.downcast_ref::<BulkheadFull>().unwrap();
    assert_eq!(
        (full.in_flight(), full.queued(), full.waited()),
        (1, 1, false)
    );
}

#[tokio::test(start_paused = true)]
async fn zero_wait_means_reject_at_once() {
    let layer = queued(1, 10, Duration::ZERO);
    let handle = layer.handle();
    let mut svc = layer.layer(Recorder::default());
    let _held = handle.try_acquire().unwrap();
    let mut fut = tokio_test::task::spawn(svc.call(1));
    assert!(assert_ready!(fut.poll()).is_err());
    assert_eq!(handle.queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_leaves_the_queue_at_once() {
    let layer = queued(1, 4, Duration::from_secs(1));
    let handle = layer.handle();
    let rec = Recorder::default();
    let mut svc = layer.layer(rec.clone());
    let held = handle.try_acquire().unwrap();
    let mut first = tokio_test::task::spawn(svc.call(1));
    let mut second = tokio_test::task::spawn(svc.call(2));
    assert_pending!(first.poll());
    assert_pending!(second.poll());
    assert_eq!(handle.queued(), 2);
    drop(first);
    assert_eq!(handle.queued(), 1);
    drop(held);
    assert_eq!(assert_ready_ok!(second.poll()), 2);
    assert_eq!(*rec.called.lock().unwrap(), vec![2]);
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_after_its_grant_passes_the_permit_on() {
    let layer = queued(1, 4, Duration::from_secs(1));
    let handle = layer.handle();
    let mut svc = layer.layer(Recorder::default());
    let held = handle.try_acquire().unwrap();
    let mut first = tokio_test::task::spawn(svc.call(1));
    let mut second = tokio_test::task::spawn(svc.call(2));
    assert_pending!(first.poll());
    assert_pending!(second.poll());
    drop(held); // granted to `first`, which never polls again
    drop(first);
    assert!(second.is_woken());
    assert_eq!(assert_ready_ok!(second.poll()), 2);
    assert_eq!((handle.in_flight(), handle.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn the_limit_can_change_at_runtime() {
    let layer = queued(1, 4, Duration::from_secs(1));
    let handle = layer.handle();
    let mut svc = layer.layer(Recorder::default());
    let a = handle.try_acquire().unwrap();
    let mut waiting = tokio_test::task::spawn(svc.call(1));
    assert_pending!(waiting.poll());

    handle.set_limit(2).unwrap();
    assert_eq!(handle.limit(), 2);
    assert!(waiting.is_woken(), "an increase admits a waiter at once");
    assert_ready_ok!(waiting.poll());

    // Decrease below what is in flight: nothing new is admitted until calls finish.
    let b = handle.try_acquire().unwrap();
    handle.set_limit(1).unwrap();
    assert_eq!(handle.in_flight(), 2);
    drop(a);
    assert!(handle.try_acquire().is_err(), "still at the new limit");
    drop(b);
    let c = handle.try_acquire().expect("under the new limit");
    assert!(handle.try_acquire().is_err());
    drop(c);

    assert_eq!(
        handle.set_limit(0).unwrap_err().field(),
        "bulkhead.max_concurrent"
    );
}

#[tokio::test(start_paused = true)]
async fn a_permit_taken_from_the_future_outlives_it() {
    let layer = fixed(1);
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(|x: u32| async move { Ok::<_, Infallible>(x) }));
    let mut fut = Box::pin(svc.call(1));
    let permit = fut.as_mut().take_permit().expect("holds a permit");
    assert_eq!(fut.await.unwrap(), 1);
    assert_eq!(handle.in_flight(), 1, "the body still holds the permit");
    drop(permit);
    assert_eq!(handle.in_flight(), 0);
}

#[test]
fn invalid_settings_are_rejected_naming_the_field() {
    use tower_fortify::bulkhead::{AdaptiveLimit, Aimd, Gradient2, Vegas};
    let field = |b: tower_fortify::bulkhead::BulkheadBuilder| b.build().unwrap_err().field();
    let b = BulkheadLayer::builder;
    assert_eq!(field(b().max_concurrent(0)), "bulkhead.max_concurrent");
    let adaptive = |a: AdaptiveLimit| field(b().adaptive(a));
    let aimd = || AdaptiveLimit::aimd(Aimd::default());
    assert_eq!(adaptive(aimd().min(0)), "bulkhead.adaptive.min");
    assert_eq!(
        adaptive(aimd().min(10).max(5).initial(7)),
        "bulkhead.adaptive.min"
    );
    assert_eq!(adaptive(aimd().initial(5000)), "bulkhead.adaptive.initial");
    assert_eq!(
        adaptive(aimd().window(Duration::ZERO)),
        "bulkhead.adaptive.window"
    );
    assert_eq!(
        adaptive(aimd().min_samples(0)),
        "bulkhead.adaptive.min_samples"
    );
    assert_eq!(
        adaptive(AdaptiveLimit::aimd(Aimd::default().backoff_ratio(1.0))),
        "bulkhead.aimd.backoff_ratio"
    );
    assert_eq!(
        adaptive(AdaptiveLimit::aimd(Aimd::default().backoff_ratio(f64::NAN))),
        "bulkhead.aimd.backoff_ratio"
    );
    assert_eq!(
        adaptive(AdaptiveLimit::aimd(Aimd::default().increase(0))),
        "bulkhead.aimd.increase"
    );
    assert_eq!(
        adaptive(AdaptiveLimit::gradient2(
            Gradient2::default().smoothing(0.0)
        )),
        "bulkhead.gradient2.smoothing"
    );
    assert_eq!(
        adaptive(AdaptiveLimit::gradient2(
            Gradient2::default().smoothing(1.5)
        )),
        "bulkhead.gradient2.smoothing"
    );
    assert_eq!(
        adaptive(AdaptiveLimit::gradient2(
            Gradient2::default().tolerance(0.5)
        )),
        "bulkhead.gradient2.tolerance"
    );
    assert_eq!(
        adaptive(AdaptiveLimit::gradient2(
            Gradient2::default().long_window(0)
        )),
        "bulkhead.gradient2.long_window"
    );
    assert_eq!(
        adaptive(AdaptiveLimit::vegas(Vegas::default().alpha(5.0).beta(4.0))),
        "bulkhead.vegas.beta"
    );
    assert_eq!(
        adaptive(AdaptiveLimit::vegas(Vegas::default().smoothing(-0.1))),
        "bulkhead.vegas.smoothing"
    );
    let adaptive_layer = b().adaptive(aimd()).build().unwrap();
    assert_eq!(
        adaptive_layer.handle().set_limit(5).unwrap_err().field(),
        "bulkhead.adaptive"
    );
}

#[tokio::test(start_paused = true)]
async fn decisions_are_reported_as_events() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .queue(1, Duration::from_millis(10))
        .listener(move |e: &Event| log.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(Recorder::default());
    let held = handle.try_acquire().unwrap();
    let mut waiting = tokio_test::task::spawn(svc.call(1));
    assert_pending!(waiting.poll());
    let mut rejected = tokio_test::task::spawn(svc.call(2));
    assert!(assert_ready!(rejected.poll()).is_err());
    tokio::time::advance(Duration::from_millis(10)).await;
    assert!(assert_ready!(waiting.poll()).is_err());
    handle.set_limit(3).unwrap();
    drop(held);
    let events: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            Event::Bulkhead(b) => b.clone(),
            #[allow(unreachable_patterns)]
            _ => panic!("unexpected event"),
        })
        .collect();
    assert_eq!(
        events,
        vec![
            BulkheadEvent::Queued { queued: 1 },
            BulkheadEvent::Rejected {
                limit: 1,
                in_flight: 1,
                queued: 1
            },
            BulkheadEvent::QueueTimeout { limit: 1 },
            BulkheadEvent::LimitChanged { from: 1, to: 3 },
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_flight_never_exceeds_the_limit_across_threads() {
    let limit = 8;
    let layer = queued(limit, 1000, Duration::from_secs(60));
    let handle = layer.handle();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let svc = layer.layer(service_fn(move |_: u32| {
        let (r, p) = (r.clone(), p.clone());
        async move {
            let n = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(n, Ordering::SeqCst);
            tokio::task::yield_now().await;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Infallible>(())
        }
    }));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    svc.ready().await.unwrap().call(i).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= limit);
    assert_eq!((handle.in_flight(), handle.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_permit_that_outlives_its_bulkhead_is_harmless() {
    let layer = fixed(1);
    let permit = layer.handle().try_acquire().unwrap();
    drop(layer);
    // A new bulkhead may reuse the old one's counters; the old permit must not count.
    let layer = fixed(1);
    let handle = layer.handle();
    drop(permit);
    assert_eq!(handle.in_flight(), 0);
    let held = handle.try_acquire().unwrap();
    assert!(handle.try_acquire().is_err(), "exactly one permit");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limit_changes_under_load_keep_the_count_exact() {
    let layer = queued(4, 1000, Duration::from_secs(60));
    let handle = layer.handle();
    let running = Arc::new(AtomicUsize::new(0));
    let ceiling = Arc::new(AtomicUsize::new(8)); // the largest limit ever set
    let (r, c) = (running.clone(), ceiling.clone());
    let svc = layer.layer(service_fn(move |_: u32| {
        let (r, c) = (r.clone(), c.clone());
        async move {
            let n = r.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(n <= c.load(Ordering::SeqCst), "{n} in flight");
            tokio::task::yield_now().await;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Infallible>(())
        }
    }));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                for i in 0..300 {
                    svc.ready().await.unwrap().call(i).await.unwrap();
                }
            })
        })
        .collect();
    let h = handle.clone();
    let changer = tokio::spawn(async move {
        for i in 0..200 {
            h.set_limit(1 + i % 8).unwrap();
            tokio::task::yield_now().await;
        }
        h.set_limit(8).unwrap();
    });
    changer.await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!((handle.in_flight(), handle.queued()), (0, 0));
    let permits: Vec<_> = (0..8).map(|_| handle.try_acquire().unwrap()).collect();
    assert!(handle.try_acquire().is_err(), "exactly the final limit");
    drop(permits);
}

/// Ready while `ready` is set; each call takes 50 ms.
#[derive(Clone)]
struct Gate {
    ready: Arc<std::sync::atomic::AtomicBool>,
}

impl Service<&'static str> for Gate {
    type Response = &'static str;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<&'static str, Infallible>> + Send>,
    >;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        if self.ready.load(Ordering::Relaxed) {
            std::task::Poll::Ready(Ok(()))
        } else {
            std::task::Poll::Pending
        }
    }
    fn call(&mut self, req: &'static str) -> Self::Future {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(req)
        })
    }
}

/// A granted waiter used to wait for its service's readiness for ever, holding its
/// permit; now `max_wait` bounds the wait for the permit and for readiness together.
#[tokio::test(start_paused = true)]
async fn a_granted_waiter_gives_its_permit_back_if_not_ready_by_max_wait() {
    let layer = queued(1, 1, Duration::from_millis(200));
    let handle = layer.handle();
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut svc = layer.layer(Gate {
        ready: ready.clone(),
    });
    let mut first = tokio_test::task::spawn(svc.ready().await.unwrap().call("a"));
    let mut second = tokio_test::task::spawn(svc.ready().await.unwrap().call("b"));
    assert_pending!(first.poll());
    assert_pending!(second.poll());
    ready.store(false, Ordering::Relaxed);

    tokio::time::advance(Duration::from_millis(50)).await;
    assert_eq!(assert_ready!(first.poll()).unwrap(), "a");
    // Granted, but the service is not ready: the permit is held meanwhile.
    assert_pending!(second.poll());
    assert_eq!(handle.in_flight(), 1);

    tokio::time::advance(Duration::from_millis(150)).await;
    let err = assert_ready!(second.poll()).unwrap_err();
    let full = err.downcast_ref::<BulkheadFull>().expect("BulkheadFull");
    assert!(full.waited());
    assert_eq!(handle.in_flight(), 0, "the permit went back");
}

/// A decrease while callers wait: a permit given back pays the decrease before any
/// waiter is admitted, so the waiter gets in only once the calls in flight are under
/// the new limit; a later increase admits at once.
#[tokio::test(start_paused = true)]
async fn a_decrease_with_waiters_admits_them_only_under_the_new_limit() {
    let layer = queued(3, 4, Duration::from_secs(5));
    let handle = layer.handle();
    let mut svc = layer.layer(Recorder::default());
    let held: Vec<_> = (0..3).map(|_| handle.try_acquire().unwrap()).collect();
    let mut waiting = tokio_test::task::spawn(svc.call(1));
    assert_pending!(waiting.poll());
    handle.set_limit(1).unwrap();
    let mut held = held.into_iter();
    drop(held.next());
    assert_pending!(waiting.poll());
    drop(held.next());
    assert_pending!(waiting.poll());
    assert_eq!((handle.in_flight(), handle.queued()), (1, 1));
    drop(held.next());
    assert_ready_ok!(waiting.poll());
    assert_eq!((handle.in_flight(), handle.queued()), (0, 0));
    // Back up: three permits again.
    handle.set_limit(3).unwrap();
    let again: Vec<_> = (0..3).map(|_| handle.try_acquire().unwrap()).collect();
    assert!(handle.try_acquire().is_err());
    drop(again);
    assert_eq!(handle.in_flight(), 0);
}
