//! Partitions: guaranteed shares with borrowing, strict isolation, keyed bulkheads.
#![cfg(feature = "bulkhead")]

use std::convert::Infallible;
use std::time::Duration;

use tokio_test::{assert_pending, assert_ready};
use tower::{Layer, Service, service_fn};
use tower_fortify::bulkhead::partition::PartitionedBulkheadLayer;
use tower_fortify::bulkhead::{BulkheadFull, BulkheadLayer};

const INTERACTIVE: usize = 0;
const BATCH: usize = 1;

/// A service whose calls take 1 s; requests are (partition, id).
fn slow() -> impl Service<(usize, u32), Response = u32, Error = Infallible, Future: Send> + Clone {
    service_fn(|(_, id): (usize, u32)| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, Infallible>(id)
    })
}

#[tokio::test(start_paused = true)]
async fn a_partition_keeps_its_share_under_a_flood_from_another() {
    let layer = PartitionedBulkheadLayer::builder(10)
        .share("interactive", 0.9)
        .share("batch", 0.1)
        .build(|req: &(usize, u32)| req.0)
        .unwrap();
    let handle = layer.handle();
    assert_eq!(
        (handle.guaranteed(INTERACTIVE), handle.guaranteed(BATCH)),
        (9, 1)
    );
    let mut svc = layer.layer(slow());

    // A batch flood borrows every idle permit of the pool, and no more.
    let mut batch: Vec<_> = (0..50)
        .map(|i| tokio_test::task::spawn(svc.call((BATCH, i))))
        .collect();
    let admitted = batch
        .iter_mut()
        .map(|f| f.poll().is_pending())
        .filter(|p| *p)
        .count();
    assert_eq!(admitted, 10);
    assert_eq!(handle.partition_in_flight(BATCH), 10);

    // Interactive traffic still gets its whole guaranteed share at once.
    let mut interactive: Vec<_> = (0..9)
        .map(|i| tokio_test::task::spawn(svc.call((INTERACTIVE, i))))
        .collect();
    for f in interactive.iter_mut() {
        assert_pending!(f.poll());
    }
    assert_eq!(handle.partition_in_flight(INTERACTIVE), 9);
    // ...while batch may not borrow any more, and interactive past its share neither.
    let mut more_batch = tokio_test::task::spawn(svc.call((BATCH, 99)));
    let err = assert_ready!(more_batch.poll()).unwrap_err();
    assert!(err.downcast_ref::<BulkheadFull>().is_some());
    let mut tenth = tokio_test::task::spawn(svc.call((INTERACTIVE, 99)));
    assert!(assert_ready!(tenth.poll()).is_err());

    // The interactive share is held under a flood from the other side too.
    drop(batch);
    drop(interactive);
    assert_eq!(handle.in_flight(), 0);
    let mut flood: Vec<_> = (0..50)
        .map(|i| tokio_test::task::spawn(svc.call((INTERACTIVE, i))))
        .collect();
    assert_eq!(
        flood
            .iter_mut()
            .map(|f| f.poll().is_pending())
            .filter(|p| *p)
            .count(),
        10
    );
    let mut b = tokio_test::task::spawn(svc.call((BATCH, 1)));
    assert_pending!(b.poll());
    assert_eq!(
        handle.partition_in_flight(BATCH),
        1,
        "batch keeps its guaranteed permit"
    );
    drop(flood);
    drop(b);
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn without_borrowing_each_partition_is_a_strict_bulkhead() {
    let layer = PartitionedBulkheadLayer::builder(10)
        .share("interactive", 0.9)
        .share("batch", 0.1)
        .borrowing(false)
        .build(|req: &(usize, u32)| req.0)
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(slow());
    let mut batch: Vec<_> = (0..5)
        .map(|i| tokio_test::task::spawn(svc.call((BATCH, i))))
        .collect();
    assert_eq!(
        batch
            .iter_mut()
            .map(|f| f.poll().is_pending())
            .filter(|p| *p)
            .count(),
        1
    );
    assert_eq!(handle.rejected(), 4);
}

#[tokio::test(start_paused = true)]
async fn completed_partition_calls_return_their_permits() {
    let layer = PartitionedBulkheadLayer::builder(2)
        .share("only", 1.0)
        .build(|_: &(usize, u32)| 7) // past the last partition: the last one
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(slow());
    let mut f = tokio_test::task::spawn(svc.call((0, 1)));
    assert_pending!(f.poll());
    assert_eq!(handle.partition_in_flight(0), 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(assert_ready!(f.poll()).unwrap(), 1);
    assert_eq!(handle.in_flight(), 0);
}

#[test]
fn invalid_partitions_are_rejected_naming_the_field() {
    let pick = |_: &u32| 0usize;
    let err =
        |b: tower_fortify::bulkhead::PartitionedBulkheadBuilder| b.build(pick).unwrap_err().field();
    assert_eq!(
        err(PartitionedBulkheadLayer::builder(0).share("a", 1.0)),
        "bulkhead.max_concurrent"
    );
    assert_eq!(
        err(PartitionedBulkheadLayer::builder(10)),
        "bulkhead.partition.share"
    );
    assert_eq!(
        err(PartitionedBulkheadLayer::builder(10).share("a", 0.0)),
        "bulkhead.partition.share"
    );
    assert_eq!(
        err(PartitionedBulkheadLayer::builder(10)
            .share("a", 0.7)
            .share("b", 0.7)),
        "bulkhead.partition.share"
    );
    let keyed = BulkheadLayer::builder()
        .keyed(|r: &u32| *r)
        .max_keys(0)
        .build();
    assert_eq!(keyed.unwrap_err().field(), "bulkhead.keyed.max_keys");
    let keyed = BulkheadLayer::builder()
        .max_concurrent(0)
        .keyed(|r: &u32| *r)
        .build();
    assert_eq!(keyed.unwrap_err().field(), "bulkhead.max_concurrent");
}

#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_bulkhead_and_the_key_set_is_bounded() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(2)
        .keyed(|req: &(usize, u32)| req.0)
        .max_keys(2)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(slow());

    // Tenant 0 floods: only its own two permits are used.
    let mut t0: Vec<_> = (0..5)
        .map(|i| tokio_test::task::spawn(svc.call((0, i))))
        .collect();
    assert_eq!(
        t0.iter_mut()
            .map(|f| f.poll().is_pending())
            .filter(|p| *p)
            .count(),
        2
    );
    // Tenant 1 is unaffected.
    let mut t1: Vec<_> = (0..2)
        .map(|i| tokio_test::task::spawn(svc.call((1, i))))
        .collect();
    assert_eq!(
        t1.iter_mut()
            .map(|f| f.poll().is_pending())
            .filter(|p| *p)
            .count(),
        2
    );
    assert_eq!(handle.len(), 2);
    assert_eq!(handle.get(&0).unwrap().in_flight(), 2);

    // Keys past the bound share the overflow bulkhead.
    let mut others: Vec<_> = (2..6)
        .map(|k| tokio_test::task::spawn(svc.call((k, 0))))
        .collect();
    assert_eq!(
        others
            .iter_mut()
            .map(|f| f.poll().is_pending())
            .filter(|p| *p)
            .count(),
        2
    );
    assert_eq!(handle.len(), 2);
    assert!(handle.get(&3).is_none());
    assert_eq!(handle.overflow().in_flight(), 2);

    drop((t0, t1, others));
    assert_eq!(handle.get(&0).unwrap().in_flight(), 0);
    assert_eq!(handle.overflow().in_flight(), 0);
}

/// The keyed bulkhead used to keep the first `max_keys` keys for the life of the
/// process, every later tenant sharing the overflow bulkhead; it now evicts like the
/// keyed breaker: idle keys first, then the least recently used one with nothing in
/// flight. A bulkhead with calls in flight stays.
#[tokio::test(start_paused = true)]
async fn keyed_bulkheads_are_evicted_idle_first_then_least_recently_used() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .keyed(|req: &(usize, u32)| req.0)
        .max_keys(2)
        .idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(slow());
    let mut runner = svc.clone();
    let mut run = async |key: usize| {
        let mut f = tokio_test::task::spawn(runner.call((key, 0)));
        assert_pending!(f.poll());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(assert_ready!(f.poll()).unwrap(), 0);
    };
    run(0).await;
    run(1).await;
    run(0).await;
    // Full, nobody idle: 1 is the least recently used.
    run(2).await;
    assert_eq!(handle.len(), 2);
    assert!(handle.get(&1).is_none(), "least recently used, evicted");
    assert!(handle.get(&0).is_some() && handle.get(&2).is_some());
    assert_eq!(handle.overflow().in_flight(), 0);

    // Both idle for longer than the timeout: both go for a newcomer.
    tokio::time::advance(Duration::from_secs(120)).await;
    run(3).await;
    assert_eq!(handle.len(), 1);
    assert!(handle.get(&3).is_some());

    // A bulkhead with calls in flight is never evicted: with every one busy, a new
    // key shares the overflow bulkhead.
    let mut busy3 = tokio_test::task::spawn(svc.call((3, 1)));
    assert_pending!(busy3.poll());
    run(4).await;
    let mut busy4 = tokio_test::task::spawn(svc.call((4, 1)));
    assert_pending!(busy4.poll());
    let mut late = tokio_test::task::spawn(svc.call((5, 1)));
    assert_pending!(late.poll());
    assert!(handle.get(&5).is_none());
    assert_eq!(handle.overflow().in_flight(), 1);
    assert_eq!(
        (
            handle.get(&3).unwrap().in_flight(),
            handle.get(&4).unwrap().in_flight()
        ),
        (1, 1)
    );
}

#[test]
fn a_zero_idle_timeout_is_rejected_naming_the_field() {
    let keyed = BulkheadLayer::builder()
        .keyed(|r: &u32| *r)
        .idle_timeout(Duration::ZERO)
        .build();
    assert_eq!(keyed.unwrap_err().field(), "bulkhead.keyed.idle_timeout");
}

#[test]
fn the_keyed_handle_says_which_keys_have_a_bulkhead() {
    let layer = BulkheadLayer::builder()
        .keyed(|r: &u32| *r)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(|r: u32| async move { Ok::<_, Infallible>(r) }));
    assert!(handle.is_empty());
    let mut f = tokio_test::task::spawn(svc.call(7));
    assert_eq!(assert_ready!(f.poll()).unwrap(), 7);
    assert!(handle.contains_key(&7));
    assert!(!handle.contains_key(&8));
    assert_eq!(handle.len(), 1);
}

/// The names and the entry of before the keyed layers shared one shape still work.
#[test]
#[allow(deprecated)]
fn the_old_keyed_and_partitioned_names_still_build() {
    use tower_fortify::bulkhead::partition::{
        Keyed, KeyedHandle, KeyedLayer, Partitioned, PartitionedBuilder, PartitionedHandle,
        PartitionedLayer,
    };
    let keyed: KeyedLayer<u32, _> = KeyedLayer::new(BulkheadLayer::builder(), 10, |r: &u32| *r)
        .unwrap()
        .key_label(|k: &u32| k.to_string())
        .unwrap();
    let _: KeyedHandle<u32> = keyed.handle();
    let _: Keyed<_, u32, _> = keyed.layer(slow());
    assert_eq!(
        KeyedLayer::new(BulkheadLayer::builder(), 0, |r: &u32| *r)
            .unwrap_err()
            .field(),
        "bulkhead.keyed.max_keys"
    );
    let keyed = KeyedLayer::new(BulkheadLayer::builder(), 10, |r: &u32| *r).unwrap();
    assert_eq!(
        keyed.idle_timeout(Duration::ZERO).unwrap_err().field(),
        "bulkhead.keyed.idle_timeout"
    );
    let builder: PartitionedBuilder = PartitionedLayer::builder(10).share("a", 1.0);
    let layer: PartitionedLayer<_> = builder.build(|_: &(usize, u32)| 0).unwrap();
    let _: PartitionedHandle = layer.handle();
    let _: Partitioned<_, _> = layer.layer(slow());
}
