//! Retry failed calls, with jittered backoff, a budget, a deadline and server hints.
//!
//! # What it is for
//!
//! Transient faults — a refused connection while a backend restarts, a 503 from an
//! instance that is shedding load — make up most failures a client sees, and another
//! attempt usually fixes them. Retries are also the classic way to turn a small outage
//! into a retry storm. This layer retries with the safeguards that prevent that:
//!
//! * **Classification.** Every result goes through the shared [classifier]
//!   (`Ok`/`Err` by default); only retryable failures and overload are retried.
//! * **Backoff with jitter** ([`Backoff`]) spreads retries out in time.
//! * **A budget** ([`Budget`]) bounds retries across all requests, so a total outage
//!   adds a bounded share of load instead of multiplying it. On by default.
//! * **A deadline** for all attempts together: a retry whose delay would end past it
//!   is not started.
//! * **Server hints**: a `Retry-After` or pushback delay replaces the backoff delay; a
//!   "do not retry" pushback ends the retries.
//! * **Per-request control**: a request can disable retries or change its attempts and
//!   deadline ([`RetryOverride`], read through [`Replay::overrides`]).
//!
//! Every decision is reported as a `tracing` event and a typed
//! [`RetryEvent`](crate::observe::RetryEvent).
//!
//! # Where it goes
//!
//! Inside the bulkhead and the overall timeout, outside the circuit breaker or
//! failover router: each attempt is then judged by the breaker, and an open breaker's
//! fast rejection becomes a retryable failure. Put a per-attempt timeout below it.
//!
//! # Readiness and cancellation
//!
//! `poll_ready` passes on the inner service's readiness. `call` moves the readied
//! inner service into the response future (the clone-and-`mem::replace` idiom); before
//! each retry the future readies it again, so nothing is reserved while it waits.
//! Dropping the response future at any point cancels the request and gives back a
//! budget withdrawal that has not been spent on a sent attempt.
//!
//! # Cost
//!
//! On the success path: no allocation, no lock, no clock read (unless a deadline is
//! set), one uncontended atomic add for a ratio budget, and one clone of a per-thread
//! configuration handle.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use tower_fortify::backoff::{Backoff, Jitter};
//! use tower_fortify::budget::Budget;
//! use tower_fortify::retry::RetryLayer;
//! use tower_fortify::ServiceBuilderExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let layer = RetryLayer::builder()
//!     .max_attempts(3)
//!     .backoff(
//!         Backoff::exponential(Duration::from_millis(10))
//!             .max_delay(Duration::from_secs(1))
//!             .jitter(Jitter::Full),
//!     )
//!     .budget(Budget::ratio(Duration::from_secs(10), 10, 0.2).unwrap())
//!     .deadline(Duration::from_secs(2))
//!     .build()
//!     .expect("valid configuration");
//!
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let counter = calls.clone();
//! let flaky = service_fn(move |req: u32| {
//!     let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     async move { if n == 0 { Err("connection refused") } else { Ok(req * 2) } }
//! });
//!
//! let mut svc = ServiceBuilder::new().with_retry(layer).service(flaky);
//! let answer = svc.ready().await.unwrap().call(21).await.unwrap();
//! assert_eq!(answer, 42);
//! assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
//! # }
//! ```
//!
//! [classifier]: crate::classify
//! [`Backoff`]: crate::backoff::Backoff
//! [`Budget`]: crate::budget::Budget

pub mod error;
pub mod future;
mod handle;
mod layer;
mod replay;
mod service;
mod shared;

pub use handle::RetryHandle;
pub use layer::{RetryBuilder, RetryLayer};
pub use replay::{CloneReplay, Replay, ReplayFn, RetryOverride, replay_fn};
pub use service::Retry;
