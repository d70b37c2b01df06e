//! Listeners fan out in every builder; events name their kind.
#![cfg(all(
    feature = "retry",
    feature = "circuit-breaker",
    feature = "bulkhead",
    feature = "failover"
))]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tower::{Layer, Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::bulkhead::BulkheadLayer;
use tower_fortify::bulkhead::PartitionedBulkheadLayer;
use tower_fortify::circuit_breaker::CircuitBreakerLayer;
use tower_fortify::failover::{Backend, Failover};
use tower_fortify::observe::{
    BulkheadEvent, CircuitBreakerEvent, Event, FailoverEvent, RetryEvent,
};
use tower_fortify::retry::RetryLayer;

/// Two listeners, counting what each received.
fn two() -> (
    [Arc<AtomicUsize>; 2],
    impl Fn(&Event) + Send + Sync + 'static,
    impl Fn(&Event) + Send + Sync + 'static,
) {
    let (a, b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (la, lb) = (a.clone(), b.clone());
    (
        [a, b],
        move |_: &Event| {
            la.fetch_add(1, Ordering::Relaxed);
        },
        move |_: &Event| {
            lb.fetch_add(1, Ordering::Relaxed);
        },
    )
}

fn both_saw_the_same(counts: &[Arc<AtomicUsize>; 2]) {
    let (a, b) = (
        counts[0].load(Ordering::Relaxed),
        counts[1].load(Ordering::Relaxed),
    );
    assert!(a > 0, "the first listener was kept");
    assert_eq!(a, b, "every listener gets every event");
}

fn failing() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|_: u32| async { Err::<u32, BoxError>("down".into()) })
}

/// `.listener(..)` used to replace the listener given before.
#[tokio::test(start_paused = true)]
async fn every_builder_fans_events_out_to_every_listener() {
    let (counts, a, b) = two();
    let retry = RetryLayer::builder()
        .no_budget()
        .listener(a)
        .listener(b)
        .build()
        .unwrap();
    let _ = retry.layer(failing()).oneshot(1).await;
    both_saw_the_same(&counts);

    let (counts, a, b) = two();
    let breaker = CircuitBreakerLayer::builder()
        .no_count_window()
        .consecutive_failures(1)
        .listener(a)
        .listener(b)
        .build()
        .unwrap();
    let _ = breaker.layer(failing()).oneshot(1).await;
    both_saw_the_same(&counts);

    let never = || service_fn(|_: u32| std::future::pending::<Result<u32, Infallible>>());
    let (counts, a, b) = two();
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent(1)
        .listener(a)
        .listener(b)
        .build()
        .unwrap();
    let mut svc = bulkhead.layer(never());
    let mut busy = tokio_test::task::spawn(svc.call(1));
    assert!(busy.poll().is_pending());
    assert!(svc.call(2).await.is_err(), "full");
    both_saw_the_same(&counts);

    let (counts, a, b) = two();
    let partitioned = PartitionedBulkheadLayer::builder(1)
        .share("only", 1.0)
        .listener(a)
        .listener(b)
        .build(|_: &u32| 0)
        .unwrap();
    let mut svc = partitioned.layer(never());
    let mut busy = tokio_test::task::spawn(svc.call(1));
    assert!(busy.poll().is_pending());
    assert!(svc.call(2).await.is_err(), "full");
    both_saw_the_same(&counts);

    let (counts, a, b) = two();
    let router = Failover::builder()
        .backend(Backend::new("a", failing()))
        .listener(a)
        .listener(b)
        .build()
        .unwrap();
    router.handle().eject("a");
    both_saw_the_same(&counts);
}

#[test]
fn events_name_their_layer_and_variant() {
    let cases = [
        (
            Event::Retry(RetryEvent::AttemptSent { attempt: 2 }),
            "Retry(AttemptSent)",
        ),
        (
            Event::CircuitBreaker(CircuitBreakerEvent::Rejected { retry_after: None }),
            "CircuitBreaker(Rejected)",
        ),
        (
            Event::Bulkhead(BulkheadEvent::QueueTimeout { limit: 3 }),
            "Bulkhead(QueueTimeout)",
        ),
        (
            Event::Failover(FailoverEvent::NoHealthyBackend),
            "Failover(NoHealthyBackend)",
        ),
        (
            Event::Failover(FailoverEvent::Removed {
                backend: "a".into(),
            }),
            "Failover(Removed)",
        ),
    ];
    for (event, kind) in cases {
        assert_eq!(event.kind(), kind);
    }
}
