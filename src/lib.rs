//! Composable [tower] layers for fault tolerance.
//!
//! tower-fortify builds fault tolerance into a service at the code level: retries with
//! jittered backoff and budgets, circuit breaking, bulkheads, failover routing across
//! backends and fault injection, each a tower [`Layer`](tower_layer::Layer) or
//! [`Service`](tower_service::Service) that follows tower's readiness and cancellation
//! rules, costs a few atomic operations on the success path, and reports what it
//! decides. The [`drill`] harness runs an outage scenario against the stack you build,
//! in paused time, so that "the primary zone goes down for a minute and 99.9 % of
//! requests still succeed" is an ordinary test.
//!
//! **Start with [`stack::Stack`]**: the recommended stack in one call
//! (`Stack::builder()`, `Stack::http(urls)`, `Stack::grpc()`), with defaults that
//! recover in seconds and every knob overridable. The layers below are what it is made
//! of, each usable alone.
//!
//! # The layers
//!
//! | module | feature | what it is for |
//! |---|---|---|
//! | [`stack`] | `stack` | the recommended stack in one call, over any services, HTTP URLs or gRPC channels |
//! | [`timeout`] | `timeout` | a timeout per attempt and a deadline per request |
//! | [`rate_limit`] | `rate-limit` | at most so many calls per second, per service or per key (GCRA) |
//! | [`retry`] | `retry` | retry failed calls with jittered backoff, a budget, a deadline and server hints |
//! | [`circuit_breaker`] | `circuit-breaker` | stop calling a backend that is down, probe it, come back |
//! | [`bulkhead`] | `bulkhead` | bound concurrent calls (fixed or adaptive, queued or rejected, partitioned) so one slow dependency or tenant cannot take the process |
//! | [`hedge`] | `hedge` | when a call is slower than usual, send a budgeted copy to another backend and take the first answer |
//! | [`failover`] | `failover` | route across backends by priority tier; eject outliers, health-check, fail over and back |
//! | [`fallback`] | `fallback` | answer a failed call with a value, a function of the request and failure, or another service |
//! | [`http`], [`axum`], [`grpc`] | `http`, `axum`, `grpc` | body replay, HTTP/gRPC classification and server hints; layer errors as responses and `Status` |
//! | [`chaos`] | `chaos` | inject errors, responses, latency and hangs by probability, schedule and key |
//! | [`drill`] | `drill` | run an outage scenario against your stack in paused time and assert on the report |
//! | [`config`] | `config` | every builder and named stacks from a TOML, YAML or JSON file (errors with file, line and field), a stack's configuration printed back, live reconfiguration that keeps state |
//!
//! Shared ground: [`classify`] (one outcome model for every layer), [`backoff`],
//! [`budget`], [`rng`] (seedable randomness) and [`observe`] (events).
//!
//! # The recommended order (outermost first)
//!
//! ```text
//! deadline (overall)                  the caller's patience, for all attempts
//!   -> bulkhead                       protect this process before doing any work
//!     -> retry                        budgeted, deadline-aware, replays the body
//!       -> hedge (optional)           a budgeted copy of a slow request to another backend
//!         -> failover router          priority tiers, outlier ejection, health checks
//!           -> per-backend breaker    fail fast while that backend is down
//!             -> per-attempt timeout
//!               -> backend client     hyper, a tonic Channel
//! ```
//!
//! A [`fallback`] goes outside all of it, and answers once everything below gave up.
//!
//! * The **bulkhead** sits outside retry so that one request holds one permit for all
//!   its attempts, and a full process sheds load before spending anything.
//! * **Retry** sits outside the router so that each attempt is routed afresh: with a
//!   [`Tried`](failover::Tried) set the next attempt goes to a backend the request has
//!   not tried, and the budget bounds the extra load across all backends.
//! * **Hedge** sits between them: a request that failed is retried, each attempt may
//!   be hedged, and each copy is routed afresh (the hedge shares the `Tried` set).
//! * The **router** sits above one **breaker per backend**: an open breaker's fast
//!   rejection is a retryable failure the retry layer routes around, and
//!   [`BreakerAware`](failover::BreakerAware) tells the router to hold that backend
//!   out until the breaker admits again.
//! * A **per-attempt timeout** below the breaker turns a hung backend into a failure
//!   the breaker and the router can count; the overall deadline on top bounds what the
//!   caller waits, retries included.
//!
//! `cargo run --example drill --features drill -- --wrong-order` shows what happens
//! when the order is wrong.
//!
//! # Architecture
//!
//! Floors, each using only the ones below it:
//!
//! 1. **Ground:** [`classify`] (the outcome model), [`backoff`], [`budget`], [`rng`],
//!    [`chaos`], then [`observe`] (events, listeners, names, metrics) and [`guard`]
//!    (the seams the protocol floor uses: [`EndGuard`](guard::EndGuard) /
//!    [`GuardedFuture`](guard::GuardedFuture) to hold a permit to the end of a
//!    stream, [`Reject`](guard::Reject) / [`Rejection`](guard::Rejection) to say what
//!    a refusal means on the wire). No layer, but for one arrow up still to move:
//!    `observe`'s metrics exporter reads the layers' handles.
//! 2. **Layers:** [`retry`], [`circuit_breaker`], [`bulkhead`], [`timeout`],
//!    [`rate_limit`], [`fallback`] use only the ground floor; [`failover`] may also use
//!    `circuit_breaker` (its [`BreakerAware`](failover::BreakerAware) classifier and
//!    [`Backend::breaker`](failover::Backend::breaker)), [`hedge`] the retry layer's
//!    replay. Each implements the ground floor's traits in its own files. No layer
//!    knows HTTP.
//! 3. **Protocols:** [`http`] implements the ground floor's traits for HTTP, adds
//!    body wrappers, and holds the protocol impls of layer traits
//!    ([`HttpReplay`](http::HttpReplay) in `http/replay.rs`,
//!    [`HttpTried`](http::HttpTried) in `http/tried.rs`); [`axum`] and [`grpc`] sit
//!    on it (`grpc.rs` holds `GrpcReplay` and the gRPC end-of-stream impl). It names
//!    no concrete layer: a new layer needs no edit here.
//! 4. **Assembly:** [`stack`] builds the recommended stack from the layers and the
//!    protocol floor; nothing below knows it. [`drill`] drives any stack and knows
//!    only `chaos` and `classify`.
//!
//! Each layer has the same files, as tower's middleware do: `mod.rs` (docs, the why),
//! `layer.rs` (configuration, the builder), `shared.rs` (the state its services
//! share), `service.rs`, `future.rs`, `error.rs`, and `handle.rs` where state is
//! shared; imports between them run one way (from `layer` down to `shared`), never
//! in a circle. `tests/architecture.rs` checks the floors and the circles from the
//! source text.
//!
//! ## One shape for every layer
//!
//! **Modules.** `future` and `error` are public in every layer; the rest is private
//! and re-exported at the layer's root. Every future a layer returns is in its
//! `future` module (`future::ResponseFuture`, and a variant's own, such as
//! `bulkhead::future::PartitionedFuture`). Every error type is in its `error` module
//! and re-exported at the root (`circuit_breaker::CircuitOpen` is
//! `circuit_breaker::error::CircuitOpen`); errors are named for what happened
//! (`CircuitOpen`, `BulkheadFull`, `RateLimited`, `Elapsed`, `NoHealthyBackend`). A
//! layer that adds no error of its own (retry, hedge, fallback: they return the inner
//! service's) has an `error` module that says so.
//!
//! **Names.** A layer `Foo` names its types `{Variant}Foo{Role}`:
//!
//! | role | name | what it is |
//! |---|---|---|
//! | service | `Foo` | the tower service (`Retry`, `CircuitBreaker`, `Bulkhead`) |
//! | layer | `FooLayer` | configuration only, cheap to clone; makes a `Foo` |
//! | builder | `FooBuilder` | from `FooLayer::builder()`; `build()` gives the layer or a [`ConfigError`] |
//! | handle | `FooHandle` | from `layer.handle()` where services share state: read it, control it |
//! | permit | `FooPermit` | what a response future holds, for a body to keep to the end of its stream |
//!
//! A variant's word comes first: `KeyedCircuitBreakerLayer`, `KeyedBulkheadBuilder`,
//! `PartitionedBulkheadHandle`, `RedisRateLimitLayer`. Three layers leave out a role
//! where it has no job: [`failover`] is a router that owns its backends, so
//! `Failover::builder()` builds the service itself and there is no layer;
//! [`timeout`] has two services (`Timeout` per attempt, `Deadline` for all of them)
//! and nothing to check but a zero, so `TimeoutLayer::new` and `try_new` stand in for
//! a builder; [`fallback`] has nothing to check, so its layer is made by its
//! constructors (`FallbackLayer::value`, `from_failure`, `from_request`, `service`).
//!
//! **Builders.** A builder keeps every setting that is not a type parameter in one
//! crate-private `settings` struct. A method that changes the builder's type
//! (`classifier`, `replay`, `tried`, `keyed`) moves that struct whole, so a new option
//! is written in two places: the struct and its setter. `build` checks everything
//! once and names the field it rejects (`retry.max_attempts`).
//!
//! **Keyed variants** (the circuit breaker, the bulkhead, the rate limiter) are made
//! alike: `FooBuilder::keyed(key_fn)` gives a `KeyedFooBuilder` with
//! [`max_keys`](circuit_breaker::KeyedCircuitBreakerBuilder::max_keys) (the bound of
//! the map), [`idle_timeout`](circuit_breaker::KeyedCircuitBreakerBuilder::idle_timeout)
//! (an entry unused this long goes first at the bound) and, where a key's state
//! reports events of its own, [`key_label`](bulkhead::KeyedBulkheadBuilder::key_label);
//! `build()` gives a `KeyedFooLayer` whose `handle()` is a `KeyedFooHandle` with
//! `len`, `is_empty`, `contains_key` and, where the layer has a `FooHandle`,
//! `get(&key)`. The breaker and the bulkhead keep 1,024 keys and forget them after
//! 5 min idle; the rate limiter 10,000 keys and 60 s: a key's state is one counter,
//! and a key idle that long has mostly earned its quota back, so forgetting it loses
//! little. Its keys have no label: a key's quota reports no events of its own, and a
//! rejection carries the limiter's name.
//!
//! **Switching an option off.** An option that is on by default is switched off with
//! `no_<option>()` ([`no_budget`](retry::RetryBuilder::no_budget),
//! [`no_count_window`](circuit_breaker::CircuitBreakerBuilder::no_count_window),
//! [`no_latency_factor`](failover::FailoverBuilder::no_latency_factor),
//! [`no_borrowing`](bulkhead::PartitionedBulkheadBuilder::no_borrowing)); an option
//! that is off by default is switched on by its setter (`deadline`, `time_window`,
//! `slow_calls`, `queue`, `max_wait`, `adaptive`) and is off otherwise. Zero is never
//! a switch: a zero count, limit or window is rejected with an error naming the
//! field, and a zero bound on something optional means none of it, as it reads
//! (`max_wait(Duration::ZERO)`: no waiting; `queue(0, _)`: no queue;
//! `max_server_delay(Duration::ZERO)`: no server-requested delay is waited for). The
//! setters that take an `Option` (failover's ejection rules, where `None` is off) or
//! a `bool` (`borrowing`) stay for configuration files, each beside its `no_*` twin.
//! `ChaosBuilder::enabled(bool)` is not an option but the start state of the switch
//! its handle flips at run time.
//!
//! `tests/architecture.rs` checks this shape from the source text too: the public
//! `error` and `future` modules and what they hold, the names, the one `settings`
//! field, the keyed variants' entry, knobs and handle, and the `no_*` twins.
//!
//! # Principles
//!
//! * Rejections (open breaker, full bulkhead, spent budget) are returned from `call`
//!   as ready futures with small typed errors; `poll_ready` only passes on the inner
//!   service's readiness.
//! * A request that waits (backoff, queue) readies its inner service when it is sent,
//!   so no capacity is reserved for work that may never happen.
//! * Dropping a response future at any point releases every permit and budget token it
//!   held; a cancelled call is never recorded as a success or a failure.
//! * All time comes from [`tokio::time`], so every layer can be tested in paused time.
//! * Builders validate configuration once and name the field they reject.
//!
//! [tower]: https://docs.rs/tower
#![cfg_attr(docsrs, feature(doc_cfg))]
// The crate docs link every module; with some features off, some links have no target.
#![cfg_attr(
    not(all(feature = "full", feature = "drill")),
    allow(rustdoc::broken_intra_doc_links)
)]
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    rust_2018_idioms
)]

pub mod backoff;
pub mod budget;
pub mod classify;
mod clock;
pub mod config;
pub mod guard;
#[cfg(any(
    feature = "circuit-breaker",
    feature = "bulkhead",
    feature = "rate-limit"
))]
mod keyed;
pub mod observe;
pub mod rng;
#[allow(dead_code)] // With no deadline-aware layer on, unused.
mod scope;
mod shard;
#[cfg(any(feature = "circuit-breaker", feature = "bulkhead"))]
mod sync;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "bulkhead")]
#[cfg_attr(docsrs, doc(cfg(feature = "bulkhead")))]
pub mod bulkhead;
#[cfg(feature = "chaos")]
#[cfg_attr(docsrs, doc(cfg(feature = "chaos")))]
pub mod chaos;
#[cfg(feature = "circuit-breaker")]
#[cfg_attr(docsrs, doc(cfg(feature = "circuit-breaker")))]
pub mod circuit_breaker;
#[cfg(feature = "drill")]
#[cfg_attr(docsrs, doc(cfg(feature = "drill")))]
pub mod drill;
#[cfg(feature = "failover")]
#[cfg_attr(docsrs, doc(cfg(feature = "failover")))]
pub mod failover;
#[cfg(feature = "fallback")]
#[cfg_attr(docsrs, doc(cfg(feature = "fallback")))]
pub mod fallback;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
#[cfg(feature = "hedge")]
#[cfg_attr(docsrs, doc(cfg(feature = "hedge")))]
pub mod hedge;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub mod rate_limit;
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub mod retry;
#[cfg(feature = "stack")]
#[cfg_attr(docsrs, doc(cfg(feature = "stack")))]
pub mod stack;
#[cfg(feature = "timeout")]
#[cfg_attr(docsrs, doc(cfg(feature = "timeout")))]
pub mod timeout;

mod builder;

pub use builder::ServiceBuilderExt;
pub use config::ConfigError;

/// The error type layers return: a boxed error that callers `downcast_ref` to the
/// typed errors of each layer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
