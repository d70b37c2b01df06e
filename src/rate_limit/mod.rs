//! Rate limiting: at most so many calls per second, per service or per key.
//!
//! # What it is for
//!
//! A bulkhead bounds how many calls run at once; a rate limit bounds how many start
//! per unit of time: a quota per tenant or client on a server, or a client staying
//! under a partner API's published limit. [`RateLimitLayer`] admits `rate` calls per
//! period in bursts of up to `burst`, and turns the rest away at once with
//! [`RateLimited`], which says when to come back. With the `axum` feature that is a
//! `429 Too Many Requests` with `Retry-After` (and `x-fortify-rejected:
//! rate-limited`); with `grpc`, `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`.
//!
//! The algorithm is GCRA (the generic cell rate algorithm, as in `governor`): one
//! word of state per limit, updated with one compare-and-swap, equivalent to a token
//! bucket of `burst` tokens refilled one every `period / rate`. Keyed limits
//! ([`RateLimitBuilder::keyed`]) keep one such word per key in a bounded map.
//!
//! # Where it goes
//!
//! On a server, outermost (above the bulkhead): a caller over its quota costs nothing
//! further. On a client, above the retry layer, so retries count against the quota.
//!
//! # Readiness and cost
//!
//! `poll_ready` passes on the inner service's readiness; the decision is made in
//! `call` (tower's `RateLimit` stalls `poll_ready` instead, which axum turns into
//! queueing). Per call: one clock read and one compare-and-swap, no allocation, no
//! lock; keyed, a check that this clone's view of the key map is current (no lock on a
//! hit) and a reference count on the key's cell.
//! A call that waits for its slot allocates once (its timer, request and service
//! clone, boxed); a call admitted at once never does.
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, Layer, Service, ServiceExt};
//! use tower_fortify::rate_limit::{RateLimitLayer, RateLimited};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let limit = RateLimitLayer::builder()
//!     .rate(10, Duration::from_secs(1))
//!     .burst(2)
//!     .build()
//!     .unwrap();
//! let mut svc = limit.layer(service_fn(|x: u32| async move { Ok::<_, tower_fortify::BoxError>(x) }));
//! assert!(svc.ready().await.unwrap().call(1).await.is_ok());
//! assert!(svc.ready().await.unwrap().call(2).await.is_ok());
//! let err = svc.ready().await.unwrap().call(3).await.unwrap_err();
//! let limited = err.downcast_ref::<RateLimited>().unwrap();
//! assert_eq!(limited.retry_after(), Duration::from_millis(100));
//! # }
//! ```
//!
//! # Waiting a little instead of rejecting
//!
//! A client that must stay under a partner's published limit would rather be a few
//! milliseconds late than fail. [`max_wait`](RateLimitBuilder::max_wait) lets a call
//! whose slot comes within that time wait for it in its response future (resilience4j's
//! `timeoutDuration`); a call whose slot is further away is still rejected at once.
//! The decision is made in `call` — `poll_ready` never stalls — and a waiting call
//! *reserves* its slot there, so waiters go in arrival order, one per interval. It
//! readies a clone of the inner service only when its slot comes (hence `S: Clone`),
//! so nothing downstream is held while it waits.
//!
//! Dropping a waiting future (a caller's timeout, a client gone) gives its slot back
//! when no later call has reserved since. Behind a later reservation the slot is not
//! given back: the later callers already hold their times, and moving the schedule
//! back would put two calls in one slot; the slot goes unused, which admits fewer
//! calls than the quota, never more (`tests/rate_limit_wait.rs` checks both, and a
//! property test checks that any mix of waits and drops sends within the quota). A
//! waiting call goes at its slot or up to 1 ms after (tokio's timer resolution); the
//! slots after it do not move.
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, Layer, Service, ServiceExt};
//! use tower_fortify::rate_limit::RateLimitLayer;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let limit = RateLimitLayer::builder()
//!     .rate(10, Duration::from_secs(1)) // a slot every 100 ms
//!     .burst(1)
//!     .max_wait(Duration::from_millis(150))
//!     .build()
//!     .unwrap();
//! let mut svc = limit.layer(service_fn(|x: u32| async move { Ok::<_, tower_fortify::BoxError>(x) }));
//! let start = tokio::time::Instant::now();
//! svc.ready().await.unwrap().call(1).await.unwrap(); // at once
//! svc.ready().await.unwrap().call(2).await.unwrap(); // waits for the slot at 100 ms
//! assert_eq!(start.elapsed(), Duration::from_millis(100));
//! // Two more now: the first slot (200 ms) is 100 ms away and is reserved; the
//! // next (300 ms) is 200 ms away, over the wait: rejected at once.
//! let third = svc.ready().await.unwrap().call(3);
//! let fourth = svc.ready().await.unwrap().call(4);
//! assert!(fourth.await.is_err());
//! assert_eq!(third.await.unwrap(), 3);
//! # }
//! ```

//!
//! # One quota for the whole fleet
//!
//! Each limiter above counts in its own process: ten instances admit ten quotas.
//! With the `redis` feature, [`RateLimitBuilder::redis`] keeps the quota in Redis
//! instead (GCRA in one atomic Lua script, keyed as `prefix:key`), shared by every
//! instance that names the same key, and decides by a local limiter, or fails open
//! or closed, as configured, while Redis is unreachable — saying so once per
//! transition in the logs and metrics. See the [`redis`] module (it is
//! documented with the feature on; docs.rs builds every feature). A check then
//! costs a round trip to Redis (tens of µs on one host, see the README) rather than
//! a compare-and-swap.
//!
//! ```
//! # #[cfg(feature = "redis")]
//! # async fn fleet(conn: redis::aio::ConnectionManager) -> Result<(), tower_fortify::ConfigError> {
//! use std::time::Duration;
//! use tower_fortify::rate_limit::RateLimitLayer;
//! use tower_fortify::rate_limit::redis::Unavailable;
//!
//! let limit = RateLimitLayer::builder()
//!     .rate(1_000, Duration::from_secs(1))
//!     .name("checkout")
//!     .redis(conn, "ratelimit:checkout")
//!     .when_unavailable(Unavailable::Local)
//!     .build()?;
//! # let _ = limit;
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod future;
mod gcra;
mod handle;
mod layer;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod service;
mod shared;

pub use error::RateLimited;
pub use handle::RateLimitHandle;
pub use layer::{
    KeyedRateLimitBuilder, KeyedRateLimitHandle, KeyedRateLimitLayer, RateLimitBuilder,
    RateLimitLayer,
};
pub use service::{KeyedRateLimit, RateLimit};
