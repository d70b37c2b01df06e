//! The rate limiter's optional wait (`max_wait`): a call whose slot is near waits in
//! its response future (paused time), one beyond is rejected at once, `poll_ready`
//! never stalls, readiness is taken when the call is sent, and a future dropped while
//! it waits gives its slot back (or, behind a later reservation, leaves it unused:
//! never two calls in one slot). Keyed limits wait per key. A property test checks
//! that whatever waits and drops happen, the calls sent conform to the quota.

#![cfg(feature = "rate-limit")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::{Instant, advance};
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::rate_limit::{RateLimitLayer, RateLimited};

const MS: Duration = Duration::from_millis(1);

/// An echo service that counts the calls it is sent.
fn counted() -> (
    impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone,
    Arc<AtomicUsize>,
) {
    let sent = Arc::new(AtomicUsize::new(0));
    let n = sent.clone();
    let svc = service_fn(move |x: u32| {
        n.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, BoxError>(x) }
    });
    (svc, sent)
}

/// 10 calls a second (one slot every 100 ms), bursts of 1, waits up to `wait`.
fn layer(wait: Duration) -> RateLimitLayer {
    RateLimitLayer::builder()
        .rate(10, Duration::from_secs(1))
        .burst(1)
        .max_wait(wait)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_slot_is_near_waits_for_it_then_is_sent() {
    let (inner, sent) = counted();
    let mut svc = layer(250 * MS).layer(inner);
    svc.ready().await.unwrap().call(1).await.unwrap();
    let mut call = task::spawn(svc.ready().await.unwrap().call(2));
    assert_pending!(call.poll());
    advance(99 * MS).await;
    assert_pending!(call.poll());
    assert_eq!(sent.load(Ordering::SeqCst), 1, "not sent before its slot");
    advance(MS).await;
    assert_eq!(assert_ready!(call.poll()).unwrap(), 2);
    assert_eq!(sent.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_slot_is_beyond_the_wait_is_rejected_at_once() {
    let (inner, sent) = counted();
    let mut svc = layer(250 * MS).layer(inner);
    svc.ready().await.unwrap().call(1).await.unwrap();
    // Slots at 100 and 200 ms are within 250 ms; the next, at 300 ms, is not.
    let mut second = task::spawn(svc.ready().await.unwrap().call(2));
    let mut third = task::spawn(svc.ready().await.unwrap().call(3));
    assert_pending!(second.poll());
    assert_pending!(third.poll());
    let mut fourth = task::spawn(svc.ready().await.unwrap().call(4));
    let err = assert_ready!(fourth.poll()).unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().expect("RateLimited");
    assert_eq!(
        limited.retry_after(),
        300 * MS,
        "when a call would be admitted at once"
    );
    advance(200 * MS).await;
    assert_ready!(second.poll()).unwrap();
    assert_ready!(third.poll()).unwrap();
    assert_eq!(
        sent.load(Ordering::SeqCst),
        3,
        "the rejected call was never sent"
    );
}

#[tokio::test(start_paused = true)]
async fn waiting_calls_go_in_arrival_order_one_per_slot() {
    let (inner, _) = counted();
    let mut svc = layer(Duration::from_secs(1)).layer(inner);
    let start = Instant::now();
    let mut calls: Vec<_> = Vec::new();
    for i in 0..5 {
        calls.push(task::spawn(svc.ready().await.unwrap().call(i)));
    }
    let mut done = vec![None; 5];
    for step in 0..=5u64 {
        for (i, c) in calls.iter_mut().enumerate() {
            if done[i].is_none()
                && let Poll::Ready(r) = c.poll()
            {
                r.unwrap();
                done[i] = Some(start.elapsed());
            }
        }
        if step < 5 {
            advance(100 * MS).await;
        }
    }
    let expected: Vec<_> = (0..5).map(|i| Some(i * 100 * MS)).collect();
    assert_eq!(done, expected);
}

#[tokio::test(start_paused = true)]
async fn poll_ready_never_stalls_over_the_limit() {
    let (inner, _) = counted();
    let mut svc = layer(Duration::from_secs(1)).layer(inner);
    let mut held = Vec::new();
    for i in 0..5 {
        let mut ready = task::spawn(std::future::poll_fn(|cx| svc.poll_ready(cx)));
        assert_ready!(ready.poll()).unwrap();
        drop(ready);
        held.push(svc.call(i));
    }
}

#[tokio::test(start_paused = true)]
async fn readiness_is_taken_when_the_waiting_call_is_sent() {
    // An inner service that counts poll_ready calls: the waiting call readies its
    // clone when its slot comes, not when it starts waiting.
    let readied = Arc::new(AtomicUsize::new(0));
    let r = readied.clone();
    #[derive(Clone)]
    struct Counting(Arc<AtomicUsize>);
    impl Service<u32> for Counting {
        type Response = u32;
        type Error = BoxError;
        type Future = std::future::Ready<Result<u32, BoxError>>;
        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), BoxError>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, x: u32) -> Self::Future {
            std::future::ready(Ok(x))
        }
    }
    let mut svc = layer(Duration::from_secs(1)).layer(Counting(r));
    svc.ready().await.unwrap().call(1).await.unwrap();
    let mut call = task::spawn(svc.ready().await.unwrap().call(2));
    let before = readied.load(Ordering::SeqCst);
    assert_pending!(call.poll());
    assert_eq!(
        readied.load(Ordering::SeqCst),
        before,
        "no readiness while waiting"
    );
    advance(100 * MS).await;
    assert_ready!(call.poll()).unwrap();
    assert_eq!(readied.load(Ordering::SeqCst), before + 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_call_gives_its_slot_back() {
    let (inner, sent) = counted();
    let mut svc = layer(250 * MS).layer(inner);
    svc.ready().await.unwrap().call(1).await.unwrap();
    let mut waiting = task::spawn(svc.ready().await.unwrap().call(2));
    assert_pending!(waiting.poll());
    advance(50 * MS).await;
    drop(waiting);
    // The slot at 100 ms is free again: the next caller gets it, not the one at 200.
    let mut next = task::spawn(svc.ready().await.unwrap().call(3));
    assert_pending!(next.poll());
    advance(50 * MS).await;
    assert_eq!(assert_ready!(next.poll()).unwrap(), 3);
    assert_eq!(
        sent.load(Ordering::SeqCst),
        2,
        "the dropped call was never sent"
    );
    // And the quota is whole: the slot after is at 200 ms.
    let mut after = task::spawn(svc.ready().await.unwrap().call(4));
    advance(99 * MS).await;
    assert_pending!(after.poll());
    advance(MS).await;
    assert_ready!(after.poll()).unwrap();
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_call_before_it_is_polled_gives_its_slot_back() {
    let (inner, _) = counted();
    let mut svc = layer(250 * MS).layer(inner);
    svc.ready().await.unwrap().call(1).await.unwrap();
    drop(svc.ready().await.unwrap().call(2));
    let mut next = task::spawn(svc.ready().await.unwrap().call(3));
    advance(100 * MS).await;
    assert_ready!(next.poll()).unwrap();
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiter_behind_a_later_one_never_puts_two_calls_in_one_slot() {
    let (inner, _) = counted();
    let mut svc = layer(Duration::from_secs(1)).layer(inner);
    let start = Instant::now();
    svc.ready().await.unwrap().call(1).await.unwrap();
    let first = task::spawn(svc.ready().await.unwrap().call(2)); // slot 100 ms
    let mut second = task::spawn(svc.ready().await.unwrap().call(3)); // slot 200 ms
    drop(first);
    // Not given back (a later call holds the slot after it): the newcomer goes at
    // 300 ms, not at 200 ms beside `second`.
    let mut third = task::spawn(svc.ready().await.unwrap().call(4));
    advance(200 * MS).await;
    assert_ready!(second.poll()).unwrap();
    assert_pending!(third.poll());
    advance(99 * MS).await;
    assert_pending!(third.poll());
    advance(MS).await;
    assert_ready!(third.poll()).unwrap();
    assert_eq!(start.elapsed(), 300 * MS);
}

#[tokio::test(start_paused = true)]
async fn an_inner_readiness_error_after_the_wait_gives_the_slot_back() {
    #[derive(Clone)]
    struct Broken(Arc<AtomicUsize>);
    impl Service<u32> for Broken {
        type Response = u32;
        type Error = BoxError;
        type Future = std::future::Ready<Result<u32, BoxError>>;
        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), BoxError>> {
            // Ready the first time (the caller's `ready()`), broken for the clone.
            if self.0.fetch_add(1, Ordering::SeqCst) == 1 {
                Poll::Ready(Err("broken".into()))
            } else {
                Poll::Ready(Ok(()))
            }
        }
        fn call(&mut self, x: u32) -> Self::Future {
            std::future::ready(Ok(x))
        }
    }
    let polls = Arc::new(AtomicUsize::new(0));
    let l = layer(Duration::from_secs(1));
    let mut svc = l.layer(Broken(polls.clone()));
    // Use up the burst on another service sharing the quota.
    let (other, _) = counted();
    let mut other = l.layer(other);
    other.ready().await.unwrap().call(0).await.unwrap();
    let mut call = task::spawn(svc.ready().await.unwrap().call(1)); // slot 100 ms
    advance(100 * MS).await;
    let err = assert_ready!(call.poll()).unwrap_err();
    assert_eq!(err.to_string(), "broken");
    // Not sent, so its slot was given back: the next call finds it free now.
    other.ready().await.unwrap().call(2).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn keyed_limits_wait_per_key_and_give_back_per_key() {
    let (inner, _) = counted();
    let layer = RateLimitLayer::builder()
        .rate(10, Duration::from_secs(1))
        .burst(1)
        .keyed(|tenant: &u32| *tenant / 100)
        .max_wait(250 * MS)
        .build()
        .unwrap();
    let mut svc = layer.layer(inner);
    svc.ready().await.unwrap().call(100).await.unwrap();
    svc.ready().await.unwrap().call(200).await.unwrap();
    let mut a = task::spawn(svc.ready().await.unwrap().call(101)); // key 1, 100 ms
    let b = task::spawn(svc.ready().await.unwrap().call(201)); // key 2, 100 ms
    assert_pending!(a.poll());
    drop(b); // key 2's slot at 100 ms is free again
    let mut b2 = task::spawn(svc.ready().await.unwrap().call(202));
    let _a2 = task::spawn(svc.ready().await.unwrap().call(102)); // key 1, 200 ms
    let mut a3 = task::spawn(svc.ready().await.unwrap().call(103)); // key 1, 300 ms: over
    assert!(
        assert_ready!(a3.poll())
            .unwrap_err()
            .downcast_ref::<RateLimited>()
            .is_some()
    );
    advance(100 * MS).await;
    assert_ready!(a.poll()).unwrap();
    assert_ready!(b2.poll()).unwrap();
}

/// A token bucket written plainly (exact integers, tokens scaled by the interval):
/// whether a sequence of send times conforms to the quota.
struct Bucket {
    interval: u64,
    burst: u64,
    level: u64,
    at: u64,
}

impl Bucket {
    fn admit(&mut self, now: u64) -> bool {
        self.level = (self.level + (now - self.at)).min(self.burst * self.interval);
        self.at = now;
        if self.level >= self.interval {
            self.level -= self.interval;
            true
        } else {
            false
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random arrivals (gaps in ms), each call either awaited or dropped after a
    /// random number of ms: every call is sent or rejected, a rejected one's slot was
    /// beyond the wait, and the send times conform to the quota's token bucket.
    ///
    /// The interval is a whole number of ms, so every slot falls on a tick of tokio's
    /// 1 ms timer: a waiting call then goes exactly at its slot. (With another
    /// interval it goes up to 1 ms after its slot, the timer's resolution, and the
    /// slots after it do not move.)
    #[test]
    fn waits_and_drops_never_send_over_the_quota(
        interval_ms in 1u64..300,
        burst in 1u32..5,
        wait_ms in 0u64..500,
        calls in proptest::collection::vec((0u64..40, proptest::option::of(0u64..300)), 1..120),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async move {
            let (inner, _) = counted();
            let mut svc = RateLimitLayer::builder()
                .rate(1, Duration::from_millis(interval_ms))
                .burst(burst)
                .max_wait(Duration::from_millis(wait_ms))
                .build()
                .unwrap()
                .layer(inner);
            // Each call's future, its drop time (ms from start) if it is dropped.
            let start = Instant::now();
            let mut live: Vec<(task::Spawn<_>, Option<u64>)> = Vec::new();
            let mut sends: Vec<u64> = Vec::new();
            let mut now = 0u64;
            // Absolute arrival times (ms), and each call's drop delay.
            let mut at = 0u64;
            let mut arrivals = calls
                .into_iter()
                .map(|(gap, drop_after)| { at += gap; (at, drop_after) })
                .peekable();
            loop {
                // Arrivals due now.
                while let Some((_, drop_after)) = arrivals.next_if(|(t, _)| *t <= now) {
                    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
                    match fut.poll() {
                        Poll::Ready(Ok(_)) => sends.push(now),
                        Poll::Ready(Err(e)) => {
                            let limited = e.downcast_ref::<RateLimited>().unwrap();
                            prop_assert!(limited.retry_after() > Duration::from_millis(wait_ms));
                        }
                        Poll::Pending => live.push((fut, drop_after.map(|d| now + d))),
                    }
                }
                // Waiting calls: sent when due, dropped when their time comes first.
                let mut still = Vec::new();
                for (mut fut, drop_at) in live.drain(..) {
                    if drop_at.is_some_and(|d| d <= now) {
                        continue;
                    }
                    match fut.poll() {
                        Poll::Ready(r) => { r.unwrap(); sends.push(now); }
                        Poll::Pending => still.push((fut, drop_at)),
                    }
                }
                live = still;
                if arrivals.peek().is_none() && live.is_empty() { break; }
                advance(MS).await;
                now += 1;
                prop_assert_eq!(start.elapsed(), Duration::from_millis(now));
            }
            let interval = interval_ms * 1_000_000;
            let mut bucket = Bucket { interval, burst: u64::from(burst), level: u64::from(burst) * interval, at: 0 };
            for (i, t) in sends.iter().enumerate() {
                prop_assert!(bucket.admit(t * 1_000_000), "send {} at {} ms over the quota: {:?}", i, t, sends);
            }
            Ok(())
        })?;
    }
}
