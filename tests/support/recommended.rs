//! The recommended stack over a drill's simulated backends, for the drill tests and
//! the drill benchmark: the one-call [`Stack`] with its defaults. Nothing is tuned
//! here; the only settings are the drill's seed and, with `listen`, event listeners.

use std::collections::HashMap;

use tower::Service;
use tower_fortify::BoxError;
use tower_fortify::drill::{DrillEnv, SimClassifier, SimRequest, SimResponse};
use tower_fortify::failover::Backend;
use tower_fortify::stack::Stack;

/// Builds the stack over `env`'s backends; with `listen`, the breakers and the router
/// report their events to the drill (for state bands), at a small cost per event.
pub fn recommended_stack(
    env: &DrillEnv,
    listen: bool,
) -> impl Service<SimRequest, Response = SimResponse, Error = BoxError, Future: Send>
+ Clone
+ Send
+ use<> {
    let mut stack = Stack::builder()
        .backends(
            env.backends()
                .iter()
                .map(|b| Backend::new(b.name(), b.clone()).tier(b.tier())),
        )
        .classifier(SimClassifier)
        .rng(env.rng());
    if listen {
        let logs: HashMap<String, _> = env
            .backends()
            .iter()
            .map(|b| b.name().to_string())
            .chain(["router".to_string()])
            .map(|source| (source.clone(), env.listener_for(source)))
            .collect();
        stack = stack.listeners(move |source| logs.get(source).cloned());
    }
    stack.build().unwrap()
}

/// The same stack with the hedging preset ([`StackBuilder::hedging`]): nothing else
/// changed.
///
/// [`StackBuilder::hedging`]: tower_fortify::stack::StackBuilder::hedging
#[allow(dead_code)] // not every includer hedges
pub fn hedging_stack(
    env: &DrillEnv,
) -> impl Service<SimRequest, Response = SimResponse, Error = BoxError, Future: Send>
+ Clone
+ Send
+ use<> {
    Stack::builder()
        .backends(
            env.backends()
                .iter()
                .map(|b| Backend::new(b.name(), b.clone()).tier(b.tier())),
        )
        .classifier(SimClassifier)
        .rng(env.rng())
        .hedging()
        .build()
        .unwrap()
}
