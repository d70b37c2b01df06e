//! A flaky backend made reliable by the retry layer.
//!
//! A simulated backend fails 30 % of calls at random and, for two seconds in the
//! middle of the run, every call (an outage). The same 2,000 requests are sent
//! without retries and through `RetryLayer` with jittered backoff and a budget; the
//! example prints what each got and what the retry layer decided.
//!
//! Runs in paused tokio time: ten virtual seconds take a moment, and the numbers are
//! the same on every run.
//!
//! ```text
//! cargo run --example flaky
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn};
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::budget::Budget;
use tower_fortify::observe::{Event, RetryEvent};
use tower_fortify::retry::RetryLayer;
use tower_fortify::rng::Rng;
use tower_layer::Layer;

const REQUESTS: u64 = 2_000;
const RATE_PER_SEC: u64 = 200;

/// A backend that fails 30 % of calls, and all calls between 4 s and 6 s.
fn flaky_backend(
    start: Instant,
    rng: Rng,
    calls: Arc<AtomicU64>,
) -> impl Service<u64, Response = u64, Error = &'static str, Future = impl Send> + Clone + Send {
    service_fn(move |req: u64| {
        calls.fetch_add(1, Ordering::Relaxed);
        let t = start.elapsed();
        let down = t >= Duration::from_secs(4) && t < Duration::from_secs(6);
        let fail = down || rng.next_f64() < 0.3;
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if fail {
                Err("503 service unavailable")
            } else {
                Ok(req)
            }
        }
    })
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    backend_calls: u64,
}

async fn drive<S>(svc: S, calls: Arc<AtomicU64>) -> Tally
where
    S: Service<u64, Response = u64, Error = &'static str> + Clone + Send + 'static,
    S::Future: Send,
{
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let svc = svc.clone();
        tasks.spawn(svc.oneshot(i));
        tokio::time::sleep(Duration::from_secs(1) / RATE_PER_SEC as u32).await;
    }
    let mut tally = Tally::default();
    while let Some(r) = tasks.join_next().await {
        match r.expect("task") {
            Ok(_) => tally.ok += 1,
            Err(_) => tally.failed += 1,
        }
    }
    tally.backend_calls = calls.load(Ordering::Relaxed);
    tally
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!("A backend that fails 30 % of calls, and every call from 4 s to 6 s.");
        println!("{REQUESTS} requests at {RATE_PER_SEC}/s, in paused (virtual) time.\n");

        // Without retries.
        let calls = Arc::new(AtomicU64::new(0));
        let plain = drive(
            flaky_backend(Instant::now(), Rng::seeded(1), calls.clone()),
            calls,
        )
        .await;

        // With retries: 4 attempts, exponential backoff with full jitter, a budget.
        let skipped: Arc<Mutex<BTreeMap<&'static str, u64>>> = Arc::default();
        let log = skipped.clone();
        let layer = RetryLayer::builder()
            .max_attempts(4)
            .backoff(
                Backoff::exponential(Duration::from_millis(20))
                    .max_delay(Duration::from_millis(500))
                    .jitter(Jitter::Full),
            )
            .budget(Budget::ratio(Duration::from_secs(10), 5, 0.5).expect("budget"))
            .deadline(Duration::from_secs(2))
            .rng(Rng::seeded(2))
            .listener(move |e: &Event| {
                if let Event::Retry(RetryEvent::RetrySkipped { reason, .. }) = e {
                    *log.lock().unwrap().entry(reason.as_str()).or_default() += 1;
                }
            })
            .build()
            .expect("valid retry configuration");
        let calls = Arc::new(AtomicU64::new(0));
        let retried = drive(
            layer.layer(flaky_backend(Instant::now(), Rng::seeded(1), calls.clone())),
            calls,
        )
        .await;

        // The same retries without a budget: a retry storm during the outage.
        let unbudgeted = RetryLayer::builder()
            .max_attempts(4)
            .backoff(
                Backoff::exponential(Duration::from_millis(20))
                    .max_delay(Duration::from_millis(500))
                    .jitter(Jitter::Full),
            )
            .no_budget()
            .deadline(Duration::from_secs(2))
            .rng(Rng::seeded(2))
            .build()
            .expect("valid retry configuration");
        let calls = Arc::new(AtomicU64::new(0));
        let storm = drive(
            unbudgeted.layer(flaky_backend(Instant::now(), Rng::seeded(1), calls.clone())),
            calls,
        )
        .await;

        println!(
            "{:<18} {:>9} {:>9} {:>13} {:>14}",
            "stack", "succeeded", "failed", "availability", "backend calls"
        );
        for (name, t) in [
            ("no retry", &plain),
            ("retry + budget", &retried),
            ("retry, no budget", &storm),
        ] {
            println!(
                "{:<18} {:>9} {:>9} {:>12.2}% {:>14}",
                name,
                t.ok,
                t.failed,
                100.0 * t.ok as f64 / REQUESTS as f64,
                t.backend_calls
            );
        }
        println!(
            "\nretry + budget added {:.1} % load (backend calls per request: {:.2}).",
            100.0 * (retried.backend_calls as f64 / REQUESTS as f64 - 1.0),
            retried.backend_calls as f64 / REQUESTS as f64
        );
        println!("Failures the retry layer did not retry, by reason:");
        for (reason, n) in skipped.lock().unwrap().iter() {
            println!("  {reason:<14} {n}");
        }
        println!(
            "\nJittered retries turned most random failures into successes. During the\n\
             outage the budget stopped retries, so the dead backend saw close to its normal\n\
             load; without a budget it got {:.1}x the calls for {} more successes.",
            storm.backend_calls as f64 / retried.backend_calls as f64,
            storm.ok as i64 - retried.ok as i64
        );
    });
}
