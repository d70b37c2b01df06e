//! The recommended stack over a drill's simulated backends, shared by the drill tests
//! and the drill benchmark: bulkhead -> budgeted retry -> failover by tier
//! (attempt-aware, outlier ejection, breaker-aware) -> per-backend breaker ->
//! per-attempt timeout.

use std::time::Duration;

use tower::timeout::TimeoutLayer;
use tower::{Service, ServiceBuilder};
use tower_fortify::BoxError;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::budget::Budget;
use tower_fortify::bulkhead::BulkheadLayer;
use tower_fortify::circuit_breaker::CircuitBreakerLayer;
use tower_fortify::drill::{DrillEnv, SimRequest, SimResponse};
use tower_fortify::failover::{Backend, BreakerAware, Failover, Tried, tried_fn};
use tower_fortify::retry::RetryLayer;

/// A request with the set of backends its attempts have tried.
#[derive(Clone)]
pub struct Attempted {
    pub sim: SimRequest,
    pub tried: Tried,
}

/// Builds the stack over `env`'s backends; with `listen`, the breakers and the router
/// report their events to the drill (for state bands), at a small cost per event.
pub fn recommended_stack(
    env: &DrillEnv,
    listen: bool,
) -> impl Service<SimRequest, Response = SimResponse, Error = BoxError, Future: Send>
+ Clone
+ Send
+ use<> {
    let bulkhead = BulkheadLayer::new(200).unwrap();
    let retry = RetryLayer::builder()
        .max_attempts(3)
        .backoff(
            Backoff::exponential(Duration::from_millis(10))
                .max_delay(Duration::from_millis(200))
                .jitter(Jitter::Full),
        )
        .budget(Budget::default_ratio())
        .deadline(Duration::from_secs(1))
        .rng(env.rng())
        .build()
        .unwrap();
    let backends = env.backends().iter().map(|b| {
        let mut breaker = CircuitBreakerLayer::builder()
            .consecutive_failures(5)
            .count_window(50)
            .failure_rate(0.5)
            .minimum_calls(20)
            .open_duration(Duration::from_secs(5))
            .half_open_probes(3)
            .rng(env.rng());
        if listen {
            breaker = breaker.listener(env.listener_for(b.name()));
        }
        let service = ServiceBuilder::new()
            .map_request(|request: Attempted| request.sim)
            .layer(breaker.build().unwrap())
            .layer(TimeoutLayer::new(Duration::from_millis(300)))
            .service(b.clone());
        Backend::new(b.name(), service).tier(b.tier())
    });
    let mut router = Failover::builder()
        .backends(backends)
        .tried(tried_fn(|request: &Attempted| Some(&request.tried)))
        .classifier(BreakerAware::default())
        .base_ejection_time(Duration::from_secs(5))
        .max_ejection_time(Duration::from_secs(20))
        .rng(env.rng());
    if listen {
        router = router.listener(env.listener_for("router"));
    }
    let router = router.build().unwrap();
    ServiceBuilder::new()
        .map_request(|sim: SimRequest| Attempted {
            sim,
            tried: Tried::new(),
        })
        .layer(bulkhead)
        .layer(retry)
        .service(router)
}
