//! The chaos layer allocates nothing per call when it injects nothing: switched off,
//! or switched on with rules that do not select the call.

#![cfg(feature = "chaos")]

use std::time::Duration;

use futures::FutureExt;
use tower::{Service, service_fn};
use tower_fortify::BoxError;
use tower_fortify::chaos::{ChaosLayer, Fault, Latency, Rule};
use tower_fortify::rng::Rng;
use tower_layer::Layer;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

fn count_calls<S: Service<u64, Response = u64>>(svc: &mut S) -> u64 {
    // Warm up (thread-local initialisation, tracing's callsite registration).
    for i in 0..10 {
        let _ = svc.call(i).now_or_never();
    }
    let before = allocations();
    for i in 0..1_000 {
        let r = svc.call(i).now_or_never();
        assert!(r.is_some());
    }
    allocations() - before
}

#[test]
fn no_allocation_when_nothing_is_injected() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let inner = service_fn(|x: u64| std::future::ready(Ok::<_, BoxError>(x)));

    let off: ChaosLayer<u64, u64, BoxError> = ChaosLayer::builder()
        .enabled(false)
        .rule(Rule::new(Fault::error(|| "injected".into())))
        .build()
        .unwrap();
    assert_eq!(count_calls(&mut off.layer(inner)), 0, "switched off");

    let zero: ChaosLayer<u64, u64, BoxError> = ChaosLayer::builder()
        .rng(Rng::seeded(1))
        .rule(Rule::new(Fault::latency(Latency::fixed(Duration::from_secs(1)))).probability(0.0))
        .rule(
            Rule::new(Fault::error(|| "injected".into()))
                .only(|x: &u64| *x > u64::MAX / 2)
                .during(Duration::ZERO..Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    assert_eq!(
        count_calls(&mut zero.layer(inner)),
        0,
        "switched on, nothing selected"
    );

    // The counter works: building an injected `BoxError` allocates.
    let always: ChaosLayer<u64, u64, BoxError> = ChaosLayer::builder()
        .rule(Rule::new(Fault::error(|| "injected".into())))
        .build()
        .unwrap();
    assert!(count_calls_err(&mut always.layer(inner)) >= 1_000);
}

fn count_calls_err<S: Service<u64, Response = u64>>(svc: &mut S) -> u64 {
    let before = allocations();
    for i in 0..1_000 {
        let _ = svc.call(i).now_or_never();
    }
    allocations() - before
}
