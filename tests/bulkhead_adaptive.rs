//! Adaptive limits against a simulated backend whose latency rises once more than `C`
//! calls run at once (latency = base × max(1, running / C)), in paused time.
//!
//! 120 clients call in a loop through a queue, far more than the backend can serve.
//! Each algorithm must settle within ±25 % of `C`, keep the backend's latency near its
//! unloaded value, and follow `C` when it halves mid-run within [`FOLLOW`].
#![cfg(feature = "bulkhead")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tower::{Layer, Service, ServiceExt, service_fn};
use tower_fortify::bulkhead::{
    AdaptiveLimit, Aimd, BulkheadHandle, BulkheadLayer, Gradient2, Vegas,
};

const BASE: Duration = Duration::from_millis(10);
const CLIENTS: usize = 120;
/// How long the limit may take to come within ±25 % of a halved capacity.
const FOLLOW: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Backend {
    capacity: AtomicUsize,
    running: AtomicUsize,
    calls: AtomicU64,
    latency_nanos: AtomicU64,
}

struct Done(Arc<Backend>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

fn within(limit: usize, c: usize) -> bool {
    let (lo, hi) = (c as f64 * 0.75, c as f64 * 1.25);
    (lo..=hi).contains(&(limit as f64))
}

/// Samples the limit every 100 ms for `span`; returns (min, max) seen.
async fn observe(handle: &BulkheadHandle, span: Duration) -> (usize, usize) {
    let (mut lo, mut hi) = (usize::MAX, 0);
    let mut t = Duration::ZERO;
    while t < span {
        tokio::time::sleep(Duration::from_millis(100)).await;
        t += Duration::from_millis(100);
        let l = handle.limit();
        lo = lo.min(l);
        hi = hi.max(l);
    }
    (lo, hi)
}

async fn scenario(name: &str, limit: AdaptiveLimit) {
    let c = 40;
    let layer = BulkheadLayer::builder()
        .adaptive(limit.initial(10).min(2).max(400))
        .queue(CLIENTS, Duration::from_secs(60))
        .build()
        .unwrap();
    let handle = layer.handle();
    let backend = Arc::new(Backend::default());
    backend.capacity.store(c, Ordering::SeqCst);
    let b = backend.clone();
    let svc = layer.layer(service_fn(move |_: ()| {
        let b = b.clone();
        let n = b.running.fetch_add(1, Ordering::SeqCst) + 1;
        let cap = b.capacity.load(Ordering::SeqCst);
        let latency = BASE.mul_f64((n as f64 / cap as f64).max(1.0));
        b.calls.fetch_add(1, Ordering::SeqCst);
        b.latency_nanos
            .fetch_add(latency.as_nanos() as u64, Ordering::SeqCst);
        let done = Done(b);
        async move {
            tokio::time::sleep(latency).await;
            drop(done);
            Ok::<_, Infallible>(())
        }
    }));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                loop {
                    let _ = svc.ready().await.unwrap().call(()).await;
                }
            })
        })
        .collect();

    // Settle, then watch for 5 s.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (calls0, lat0) = (
        backend.calls.load(Ordering::SeqCst),
        backend.latency_nanos.load(Ordering::SeqCst),
    );
    let (lo, hi) = observe(&handle, Duration::from_secs(5)).await;
    let calls = backend.calls.load(Ordering::SeqCst) - calls0;
    let mean = Duration::from_nanos((backend.latency_nanos.load(Ordering::SeqCst) - lat0) / calls);
    println!("{name}: C={c} limit {lo}..={hi}, backend latency {mean:?}, {calls} calls");
    assert!(
        within(lo, c) && within(hi, c),
        "{name}: limit {lo}..={hi} not within ±25 % of {c}"
    );
    assert!(
        mean <= BASE.mul_f64(1.3),
        "{name}: backend latency {mean:?} far above {BASE:?}"
    );

    // Halve the capacity: the limit must follow within FOLLOW and stay there.
    let c = c / 2;
    backend.capacity.store(c, Ordering::SeqCst);
    let mut waited = Duration::ZERO;
    while !within(handle.limit(), c) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
        assert!(
            waited <= FOLLOW,
            "{name}: limit {} after {waited:?}, C={c}",
            handle.limit()
        );
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (lo, hi) = observe(&handle, Duration::from_secs(5)).await;
    println!("{name}: C={c} followed in {waited:?}; limit {lo}..={hi}");
    assert!(
        within(lo, c) && within(hi, c),
        "{name}: limit {lo}..={hi} not within ±25 % of {c}"
    );

    for client in clients {
        client.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn aimd_settles_near_capacity_and_follows_it() {
    let aimd = Aimd::default().latency_threshold(BASE.mul_f64(1.1));
    scenario("aimd", AdaptiveLimit::aimd(aimd)).await;
}

#[tokio::test(start_paused = true)]
async fn gradient2_settles_near_capacity_and_follows_it() {
    let gradient = Gradient2::default().tolerance(1.05).queue_size(2.0);
    scenario("gradient2", AdaptiveLimit::gradient2(gradient)).await;
}

#[tokio::test(start_paused = true)]
async fn vegas_settles_near_capacity_and_follows_it() {
    let vegas = Vegas::default().alpha(1.0).beta(2.0);
    scenario("vegas", AdaptiveLimit::vegas(vegas)).await;
}

/// The backend sheds load (an `Err("busy")` the classifier calls overload) when more
/// than `C` calls run; latency stays flat. AIMD without a latency threshold learns the
/// limit from the overload outcomes alone.
#[tokio::test(start_paused = true)]
async fn aimd_learns_from_overload_outcomes() {
    use tower_fortify::classify::{Outcome, classify_fn};
    let c = 40;
    let layer = BulkheadLayer::builder()
        .adaptive(AdaptiveLimit::aimd(Aimd::default()).initial(10).max(400))
        .queue(CLIENTS, Duration::from_secs(60))
        .classifier(classify_fn(|r: Result<&(), &&str>| match r {
            Ok(()) => Outcome::Success,
            Err(_) => Outcome::Overloaded(Default::default()),
        }))
        .build()
        .unwrap();
    let handle = layer.handle();
    let running = Arc::new(AtomicUsize::new(0));
    let r = running.clone();
    let svc = layer.layer(service_fn(move |_: ()| {
        let r = r.clone();
        let n = r.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(BASE).await;
            r.fetch_sub(1, Ordering::SeqCst);
            if n > c { Err("busy") } else { Ok(()) }
        }
    }));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                loop {
                    let _ = svc.ready().await.unwrap().call(()).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (lo, hi) = observe(&handle, Duration::from_secs(5)).await;
    println!("aimd/overload: C={c} limit {lo}..={hi}");
    assert!(
        within(lo, c) && within(hi, c),
        "limit {lo}..={hi} not within ±25 % of {c}"
    );
    for client in clients {
        client.abort();
    }
}
