//! Every layer's errors and futures are where the crate docs say: in its `error` and
//! `future` modules, the errors re-exported at the layer's root, and the old paths
//! still name the same types.
#![cfg(all(
    feature = "retry",
    feature = "circuit-breaker",
    feature = "bulkhead",
    feature = "failover",
    feature = "timeout",
    feature = "rate-limit",
    feature = "chaos",
    feature = "hedge",
    feature = "fallback"
))]

use std::any::TypeId;

use tower_fortify::{bulkhead, chaos, circuit_breaker, failover, rate_limit, timeout};

fn same<A: 'static, B: 'static>() -> bool {
    TypeId::of::<A>() == TypeId::of::<B>()
}

#[test]
fn each_error_is_in_its_layers_error_module_and_at_its_root() {
    assert!(same::<
        circuit_breaker::CircuitOpen,
        circuit_breaker::error::CircuitOpen,
    >());
    assert!(same::<
        circuit_breaker::BreakerError,
        circuit_breaker::error::BreakerError,
    >());
    assert!(same::<bulkhead::BulkheadFull, bulkhead::error::BulkheadFull>());
    assert!(same::<
        failover::NoHealthyBackend,
        failover::error::NoHealthyBackend,
    >());
    assert!(same::<timeout::Elapsed, timeout::error::Elapsed>());
    assert!(same::<
        timeout::DeadlineExceeded,
        timeout::error::DeadlineExceeded,
    >());
    assert!(same::<
        rate_limit::RateLimited,
        rate_limit::error::RateLimited,
    >());
    assert!(same::<chaos::Aborted, chaos::error::Aborted>());
}

#[test]
fn each_future_is_in_its_layers_future_module() {
    type Svc = tower::util::BoxCloneService<u32, u32, tower_fortify::BoxError>;
    type F = <Svc as tower::Service<u32>>::Future;
    assert!(same::<
        rate_limit::future::ResponseFuture<Svc, u32, F>,
        <rate_limit::RateLimit<Svc> as tower::Service<u32>>::Future,
    >());
    assert!(same::<
        bulkhead::future::PartitionedFuture<F>,
        <bulkhead::PartitionedBulkhead<Svc, fn(&u32) -> usize> as tower::Service<u32>>::Future,
    >());
}
