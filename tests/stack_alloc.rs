//! The one-call stack allocates nothing per request on its success path: a counting
//! global allocator (this thread's allocations only) proves it, over one and three
//! backends, with and without the hedging preset.

#![cfg(feature = "stack")]

use std::time::Duration;

use tower::{Service, ServiceExt};
use tower_fortify::failover::Backend;
use tower_fortify::stack::Stack;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

/// Answers `x + offset` at once: the answer says which backend took the call.
#[derive(Clone)]
struct Offset(u64);

impl Service<u64> for Offset {
    type Response = u64;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<u64, std::io::Error>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, x: u64) -> Self::Future {
        std::future::ready(Ok(x + self.0))
    }
}

/// Allocations made by 1,000 requests through `svc` after a warm-up in which every
/// one of the `n` backends answered (a backend's first call clones its service once,
/// for good). Paused time: no health sweep falls inside the count; an hour passes now
/// and then in the warm-up so that no backend's latency estimate keeps it out.
fn allocations_per_thousand<S>(mut svc: S, n: u64) -> u64
where
    S: Service<u64, Response = u64, Error = tower_fortify::BoxError>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut seen = vec![false; n as usize];
        let mut i = 0u64;
        while seen.iter().any(|s| !s) {
            let got = svc.ready().await.unwrap().call(i).await.unwrap();
            seen[(got - i) as usize] = true;
            i += 1;
            if i.is_multiple_of(50) {
                tokio::time::advance(Duration::from_secs(3600)).await;
            }
            assert!(i < 100_000, "the warm-up reached every backend");
        }
        let before = allocations();
        for i in 0..1_000 {
            let got = svc.ready().await.unwrap().call(i).await.unwrap();
            assert!(got >= i && got < i + n);
        }
        allocations() - before
    })
}

fn backends(n: u64) -> impl Iterator<Item = Backend<Offset>> {
    (0..n).map(|i| Backend::new(format!("b{i}"), Offset(i)))
}

/// `Stack::builder()` with its defaults. The stack used to allocate one `Tried` set
/// per request (an `Arc`); the sets are recycled now.
#[test]
fn the_default_stack_allocates_nothing_per_request() {
    for n in [1, 3] {
        let stack = Stack::builder().backends(backends(n)).build().unwrap();
        assert_eq!(allocations_per_thousand(stack, n), 0, "{n} backends");
    }
}

/// With the hedging preset on, no hedge fires when every answer is immediate.
#[test]
fn the_hedging_stack_allocates_nothing_when_no_hedge_fires() {
    let stack = Stack::builder()
        .backends(backends(3))
        .hedging()
        .build()
        .unwrap();
    assert_eq!(allocations_per_thousand(stack, 3), 0);
}

/// A stack built from a configuration file, and reconfigured (limits, timeouts,
/// weights, breaker thresholds): still nothing per request.
#[cfg(feature = "config")]
#[test]
fn a_stack_from_a_file_allocates_nothing_per_request_after_a_reconfiguration() {
    use tower_fortify::config::FortifyConfig;
    let file = |limit: u32, weight: u32| {
        format!(
            "[stacks.s.bulkhead]\nmax_concurrent = {limit}\n[stacks.s.breaker]\nfailure_rate = 0.3\n\
             [[stacks.s.backends]]\nid = \"b0\"\nweight = {weight}\n\
             [[stacks.s.backends]]\nid = \"b1\"\n[[stacks.s.backends]]\nid = \"b2\"\n"
        )
    };
    let settings = FortifyConfig::from_toml_str(&file(64, 1))
        .unwrap()
        .stack("s")
        .unwrap();
    let stack = settings
        .builder(|b| Offset(b.id[1..].parse().unwrap()))
        .unwrap()
        .build()
        .unwrap();
    let new = FortifyConfig::from_toml_str(&file(32, 2))
        .unwrap()
        .stack("s")
        .unwrap();
    assert_eq!(stack.reconfigure(&new).unwrap().changes.len(), 2);
    assert_eq!(allocations_per_thousand(stack, 3), 0);
}
