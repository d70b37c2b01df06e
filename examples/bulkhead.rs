//! Bulkheads in action, in paused time: a fixed bulkhead sheds a burst with a typed
//! error, and an adaptive one finds a backend's capacity and follows it when it halves.
//!
//! Run with `cargo run --example bulkhead`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tower::{Layer, Service, ServiceExt, service_fn};
use tower_fortify::bulkhead::{AdaptiveLimit, Aimd, BulkheadFull, BulkheadLayer};

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    fixed_sheds_a_burst().await;
    adaptive_follows_capacity().await;
}

async fn fixed_sheds_a_burst() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(4)
        .queue(4, Duration::from_millis(50))
        .build()
        .expect("valid configuration");
    let handle = layer.handle();
    let svc = layer.layer(service_fn(|i: u32| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, std::io::Error>(i)
    }));
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let mut svc = svc.clone();
            tokio::spawn(async move { svc.ready().await?.call(i).await })
        })
        .collect();
    tokio::task::yield_now().await;
    println!(
        "burst of 12: {} in flight, {} queued",
        handle.in_flight(),
        handle.queued()
    );
    let (mut ok, mut full_now, mut full_after_wait) = (0, 0, 0);
    for call in calls {
        match call.await.expect("task") {
            Ok(_) => ok += 1,
            Err(e) => match e.downcast_ref::<BulkheadFull>() {
                Some(f) if f.waited() => full_after_wait += 1,
                Some(_) => full_now += 1,
                None => panic!("unexpected error: {e}"),
            },
        }
    }
    println!(
        "served {ok}, rejected at once {full_now}, rejected after the 50 ms wait {full_after_wait}"
    );
}

async fn adaptive_follows_capacity() {
    let capacity = Arc::new(AtomicUsize::new(40));
    let running = Arc::new(AtomicUsize::new(0));
    let layer = BulkheadLayer::builder()
        .adaptive(
            AdaptiveLimit::aimd(Aimd::default().latency_threshold(Duration::from_millis(11)))
                .initial(10)
                .max(200),
        )
        .queue(200, Duration::from_secs(10))
        .build()
        .expect("valid configuration");
    let handle = layer.handle();
    let (cap, run) = (capacity.clone(), running.clone());
    // Latency is 10 ms up to `capacity` concurrent calls and grows beyond it.
    let svc = layer.layer(service_fn(move |_: ()| {
        let (cap, run) = (cap.clone(), run.clone());
        async move {
            let n = run.fetch_add(1, Ordering::SeqCst) + 1;
            let c = cap.load(Ordering::SeqCst);
            let latency = Duration::from_millis(10).mul_f64((n as f64 / c as f64).max(1.0));
            tokio::time::sleep(latency).await;
            run.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(())
        }
    }));
    for _ in 0..120 {
        let mut svc = svc.clone();
        tokio::spawn(async move {
            loop {
                let _ = svc.ready().await.unwrap().call(()).await;
            }
        });
    }
    for second in 1..=20 {
        if second == 11 {
            capacity.store(20, Ordering::SeqCst);
            println!("-- capacity halves to 20 --");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!(
            "t={second:>2}s capacity {:>2}  limit {:>3}  in flight {:>3}  queued {:>3}",
            capacity.load(Ordering::SeqCst),
            handle.limit(),
            handle.in_flight(),
            handle.queued()
        );
    }
}
