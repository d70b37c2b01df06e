//! Circuit breaking: stop calling a backend that is down, probe it, come back.
//!
//! # What it is for
//!
//! When a backend fails, calling it anyway costs the caller time (timeouts, connection
//! attempts), costs the backend load while it tries to recover, and fills retry
//! queues. A circuit breaker watches the outcomes of calls and, once they look bad
//! enough, fails calls fast for a while instead of sending them; then it lets a few
//! probe calls through to find out whether the backend is back.
//!
//! # States
//!
//! * **Closed** — admitting: every call goes through and its outcome is recorded.
//! * **Open** — rejecting: calls fail at once with [`CircuitOpen`], which says when
//!   the breaker may admit again and names the breaker. It comes in a
//!   [`BreakerError`], without a heap allocation; that converts
//!   into a `BoxError` with `?` or `.into()`. After the open duration the next call moves the
//!   breaker to half-open (the move is made lazily, by a call; there is no timer).
//! * **HalfOpen** — probing: [`half_open_probes`] calls are admitted, each slot
//!   reserved atomically so clones racing each other never exceed it; the others are
//!   rejected. When every probe has succeeded the breaker closes; the first failed
//!   (or slow) probe opens it again.
//!
//! Manual modes, set through a [`CircuitBreakerHandle`] (see [`Mode`]): **disabled**
//! (admit everything, keep recording, never trip), **forced open** (reject
//! everything), and **metrics-only** (a shadow mode for a safe rollout: decide as
//! usual but admit what would be rejected, reporting it as
//! [`WouldReject`](crate::observe::CircuitBreakerEvent::WouldReject)).
//!
//! # Trip conditions
//!
//! Any configured condition trips the breaker:
//!
//! * [`consecutive_failures`]: `n` failures in a row.
//! * A failure rate over a [`count_window`] of the last `N` calls. The window really
//!   slides: 100 successes followed by 60 failures trip a 50 % threshold with
//!   `N = 100` at the 50th failure, because only the last 100 calls count.
//! * A failure rate over a [`time_window`], kept in buckets (O(1) per call): old
//!   buckets are forgotten as time passes.
//! * A [slow-call rate](CircuitBreakerBuilder::slow_calls): calls slower than a
//!   threshold count as slow.
//! * Rates are only judged once the window holds [`minimum_calls`].
//!
//! What counts as a failure is the [classifier]'s call (`Err` by default). **Over
//! HTTP, pass the HTTP classifier**, or a `500` response is an `Ok` and counts as a
//! success (the one-call [`Stack::http`](crate::stack::Stack::http) does it for you):
//!
//! ```
//! # #[cfg(feature = "http")] {
//! use tower_fortify::circuit_breaker::CircuitBreakerLayer;
//! use tower_fortify::http::HttpClassifier;
//!
//! let breaker = CircuitBreakerLayer::builder()
//!     .classifier(HttpClassifier::new()) // 5xx failures, 429 load shedding
//!     .build()
//!     .unwrap();
//! # let _ = breaker; }
//! ```
//!
//! A
//! failure with a server hint (`Retry-After` on a 503 or 429) can keep the breaker
//! open longer than its own duration. The open duration is fixed, or grows with each
//! consecutive trip through a [`Backoff`] (with jitter and a cap) and starts over once
//! the breaker has stayed closed for a while.
//!
//! **Generations.** Every transition starts a new generation, and each admitted call
//! carries the generation it was admitted in. Results from an older generation are
//! ignored, so a slow success that started before the breaker opened can never close
//! it. A call whose future is dropped is recorded as neither success nor failure and
//! gives back its probe slot.
//!
//! # Where it goes
//!
//! Per backend, inside retry and failover: each attempt is judged by the breaker of
//! the backend it went to, and a fast [`CircuitOpen`] rejection is a failure the
//! retry layer or a failover router can route around. Put the per-attempt timeout
//! below it so that hung calls count as failures.
//!
//! **Sharing.** One layer is one breaker: every service the layer wraps shares it,
//! and so do clones. For a client that talks to many backends through one service,
//! use a [keyed breaker](CircuitBreakerBuilder::keyed): one breaker per key (host,
//! authority, route, tenant) in a bounded map.
//!
//! # Cost
//!
//! Closed-state success path: one atomic load to admit; on completion one more load,
//! a read of the consecutive-failure counter (written only when it is non-zero) and,
//! with a window, one add to a per-thread counter shard; plus one reference-count
//! increment and decrement on a per-thread handle. No clock read, no lock, no
//! allocation, and no cache line written by every thread. Failures, slow calls and
//! transitions take a mutex. Slow-call detection reads the clock twice per call.
//! A keyed breaker adds a lookup in the service's snapshot of its map per call: no
//! lock (one atomic load checks that the snapshot is current), a cheap seeded hash of
//! the key and a reference count; the map's locks are taken only when a key is new
//! or the map changed since (see [`KeyedCircuitBreakerBuilder`]).
//!
//! Open-state rejection: one clock read compared with the end of the open period (an
//! instant read without a lock), no allocation (the [`CircuitOpen`] travels by value
//! in a [`BreakerError`]), and the time left is only worked out
//! when asked for.
//!
//! The time window does not read the clock on each success: successes are counted
//! per thread, and every update of the window (on each failure or slow call, and
//! every 256th success of a thread, which reads the clock and tries the lock)
//! spreads the successes counted since the previous update evenly over the time
//! between them (at most the window). Failures are placed exactly; successes at
//! bucket resolution, give or take the 256 per thread not yet placed.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use tower_fortify::circuit_breaker::{error::CircuitOpen, CircuitBreakerLayer};
//! use tower_fortify::observe::CircuitState;
//! use tower_fortify::ServiceBuilderExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let layer = CircuitBreakerLayer::builder()
//!     .consecutive_failures(3)
//!     .count_window(100)
//!     .failure_rate(0.5)
//!     .minimum_calls(10)
//!     .open_duration(Duration::from_secs(5))
//!     .half_open_probes(2)
//!     .build()
//!     .expect("valid configuration");
//! let handle = layer.handle();
//!
//! let mut svc = ServiceBuilder::new()
//!     .circuit_breaker(layer)
//!     .service(service_fn(|_: ()| async { Err::<(), _>("connection refused") }));
//!
//! for _ in 0..3 {
//!     assert!(svc.ready().await.unwrap().call(()).await.is_err());
//! }
//! assert_eq!(handle.state(), CircuitState::Open);
//! let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
//! let open = err.downcast_ref::<CircuitOpen>().expect("rejected by the breaker");
//! assert!(open.retry_after().unwrap() <= Duration::from_secs(5));
//! # }
//! ```
//!
//! [`half_open_probes`]: CircuitBreakerBuilder::half_open_probes
//! [`consecutive_failures`]: CircuitBreakerBuilder::consecutive_failures
//! [`count_window`]: CircuitBreakerBuilder::count_window
//! [`time_window`]: CircuitBreakerBuilder::time_window
//! [`minimum_calls`]: CircuitBreakerBuilder::minimum_calls
//! [classifier]: crate::classify
//! [`Backoff`]: crate::backoff::Backoff
//! [`Mode`]: crate::observe::Mode

mod config;
mod core;
pub mod error;
mod figures;
pub mod future;
mod handle;
mod keyed;
mod layer;
mod retune;
mod service;
mod shared;
mod window;
mod word;

pub use crate::observe::{CircuitState, Mode, TripReason};
pub use error::{BreakerError, CircuitOpen};
pub use figures::{Figures, Status, WindowFigures};
pub use future::CircuitBreakerPermit;
/// The breaker permit's old name.
#[deprecated(
    since = "0.1.0",
    note = "renamed `CircuitBreakerPermit`, as `BulkheadPermit` and `FailoverPermit`"
)]
pub type BreakerPermit<C> = CircuitBreakerPermit<C>;
pub use handle::CircuitBreakerHandle;
pub use keyed::{
    KeyedCircuitBreaker, KeyedCircuitBreakerBuilder, KeyedCircuitBreakerHandle,
    KeyedCircuitBreakerLayer,
};
pub use layer::{CircuitBreakerBuilder, CircuitBreakerLayer};
pub use service::CircuitBreaker;
