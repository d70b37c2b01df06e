//! A keyed circuit breaker in front of two backends, one of which goes down for a
//! while. Runs in paused time, so the minute it simulates passes at once.
//!
//! `cargo run --example circuit_breaker`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::circuit_breaker::CircuitBreakerLayer;
use tower_fortify::circuit_breaker::error::CircuitOpen;
use tower_fortify::observe::{CircuitBreakerEvent, Event};

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let start = tokio::time::Instant::now();
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(5)
        .count_window(50)
        .minimum_calls(10)
        .open_backoff(
            Backoff::exponential(Duration::from_secs(2))
                .max_delay(Duration::from_secs(16))
                .jitter(Jitter::Equal),
        )
        .half_open_probes(2)
        .listener(move |e: &Event| {
            if let Event::CircuitBreaker(e) = e
                && !matches!(e, CircuitBreakerEvent::Rejected { .. })
            {
                println!("{:>6.1?}  {e:?}", start.elapsed());
            }
        })
        .keyed(|req: &&'static str| *req)
        .max_keys(16)
        .build()
        .expect("valid configuration");
    let breakers = layer.handle();

    // "b" is down from the 10th to the 40th second.
    let b_down = Arc::new(AtomicBool::new(false));
    let down = b_down.clone();
    let mut client =
        ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(move |backend: &'static str| {
                let fail = backend == "b" && down.load(Ordering::Relaxed);
                async move {
                    if fail {
                        Err::<&str, BoxError>("connection refused".into())
                    } else {
                        Ok(backend)
                    }
                }
            }));

    let (mut sent_to_b, mut rejected) = (0, 0);
    for tick in 0..600u32 {
        let now = tick / 10;
        b_down.store((10..40).contains(&now), Ordering::Relaxed);
        for backend in ["a", "b"] {
            match client.ready().await.unwrap().call(backend).await {
                Err(e) if e.is::<CircuitOpen>() => rejected += 1,
                _ if backend == "b" => sent_to_b += 1,
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "calls that reached b: {sent_to_b}, rejected fast: {rejected}; a is {:?}, b is {:?}",
        breakers.get(&"a").unwrap().state(),
        breakers.get(&"b").unwrap().state(),
    );
}
