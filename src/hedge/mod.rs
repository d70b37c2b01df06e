//! Hedged requests: when a call is slower than usual, send a copy to another backend
//! and take whichever answers first.
//!
//! # What it is for
//!
//! Outages are loud; slow backends are common. A backend that answers 2 % of its
//! calls fifty times slower than the rest (a garbage-collection pause, a cold cache,
//! a noisy neighbour) sets the caller's p99.9 alone, and no retry helps: nothing
//! failed. "The Tail at Scale" (Dean & Barroso, 2013) measured the remedy: send a
//! second copy once the first has been outstanding longer than the 95th percentile,
//! and most of the tail goes for about 5 % more requests. Finagle's
//! `BackupRequestFilter` and gRPC's hedging policy (A6) do the same.
//!
//! [`HedgeLayer`] does it for any tower service:
//!
//! * **When.** A fixed [`delay`](HedgeBuilder::delay), or the
//!   [`percentile`](HedgeBuilder::percentile) of this instance's recent latencies
//!   (default the 95th), tracked lock-free in a small log-bucket histogram (about a
//!   kilobyte, 12.5 % resolution) that halves every few thousand requests so it
//!   follows a backend that changed. While a hedge is in flight the original's true
//!   latency is not seen; the layer records the time the request took instead, a
//!   lower bound that is above the delay exactly when the original was, so the
//!   quantile is still that of the original's latencies.
//! * **How many.** At most [`max_hedges`](HedgeBuilder::max_hedges) (default 1), each
//!   one delay after the previous copy, and only while the budget allows: the
//!   layer's own [`Budget`](crate::budget::Budget) (5 % of recent requests by
//!   default) or, with [`draw_from`](HedgeBuilder::draw_from), the retry layer's, so
//!   that retries and hedges share one bound on extra load as gRPC's throttling does.
//!   A deadline (the request's [`RetryOverride`](crate::retry::RetryOverride) or the
//!   deadline in scope, see [`timeout::current_deadline`](crate::timeout::current_deadline))
//!   stops hedges that could not start before it.
//! * **Where.** Copies are made by the retry layer's [`Replay`](crate::retry::Replay)
//!   (an HTTP request's body through [`ReplayBody`](crate::http::ReplayBody)), and a
//!   request it refuses — a non-idempotent HTTP request under
//!   [`HttpReplay`](crate::http::HttpReplay) — is never hedged. A copy shares the
//!   request's [`Tried`](crate::failover::Tried) set, so a failover router below
//!   sends the hedge to a backend the original did not go to.
//! * **Who wins.** The first success (by the layer's classifier) ends the request,
//!   and every other copy is dropped at once, giving back its bulkhead permit,
//!   breaker probe and connection. A failure while another copy is in flight is
//!   dropped and the other copy awaited; when every copy failed, the last failure is
//!   returned (the retry layer above decides what to do with it).
//!
//! Every decision is a `tracing` event (target `tower_fortify::hedge`) and a typed
//! [`HedgeEvent`](crate::observe::HedgeEvent).
//!
//! # Where it goes
//!
//! Between the retry layer and the failover router (the one-call stack puts it there
//! with [`StackBuilder::hedge`](crate::stack::StackBuilder::hedge)):
//!
//! ```text
//! deadline -> bulkhead -> retry -> hedge -> failover router -> breaker -> attempt timeout -> backend
//! ```
//!
//! Below retry, so a request that failed is retried, and each retry may be hedged;
//! above the router, so each copy is routed afresh to another backend; under the
//! bulkhead, so one request holds one permit whatever its copies.
//!
//! # Readiness and cancellation
//!
//! `poll_ready` passes on the inner service's readiness and `call` sends the original
//! at once. A hedge is sent on a clone of the inner service, readied when the delay
//! has passed: nothing is reserved for a hedge that is never sent. Dropping the
//! response future cancels every copy and refunds a withdrawal not yet spent.
//!
//! # Cost
//!
//! When no hedge fires: no allocation, no lock; one copy of the request (what the
//! retry layer also keeps — free for an `Attempt` of a `Copy` request, a header map
//! clone for HTTP), one reference-count increment, two clock reads and one histogram
//! update in percentile mode (none with a fixed delay), and a timer registered only
//! if the inner future was not ready at its first poll. A hedge allocates: a clone of
//! the inner service (taken under a short lock) and a box for its future.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use tower_fortify::hedge::HedgeLayer;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let counter = calls.clone();
//! // The first call hangs for a second; every other answers in 10 ms.
//! let backend = service_fn(move |req: u32| {
//!     let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     async move {
//!         let ms = if n == 0 { 1000 } else { 10 };
//!         tokio::time::sleep(Duration::from_millis(ms)).await;
//!         Ok::<_, std::io::Error>(req * 2)
//!     }
//! });
//! let hedge = HedgeLayer::builder()
//!     .delay(Duration::from_millis(50))
//!     .build()
//!     .expect("valid configuration");
//! let mut svc = ServiceBuilder::new().layer(hedge).service(backend);
//!
//! let start = tokio::time::Instant::now();
//! let answer = svc.ready().await.unwrap().call(21).await.unwrap();
//! assert_eq!(answer, 42);
//! assert_eq!(start.elapsed(), Duration::from_millis(60)); // 50 ms delay + 10 ms hedge
//! # }
//! ```

pub mod error;
pub mod future;
mod histogram;
mod layer;
mod service;
mod shared;

pub use layer::{DEFAULT_PERCENTILE, HedgeBuilder, HedgeLayer};
pub use service::Hedge;
