//! Bulkheads: bound the calls in flight to a dependency, fixed or adaptive.
//!
//! # What it is for
//!
//! A slow dependency does not fail; it holds on. Every request that reaches it waits,
//! holding a task, a socket and memory, until the whole process is waiting on one
//! backend. A bulkhead caps the calls in flight to what the dependency (or one tenant)
//! may occupy, and turns the excess away at once with [`BulkheadFull`] — a fast,
//! typed error the caller can answer with a 503 or a fallback — instead of queueing it
//! without bound.
//!
//! * **Fixed limit** with an optional bounded FIFO queue and a maximum wait
//!   ([`BulkheadBuilder::queue`]); without a queue (the default) a full bulkhead
//!   rejects at once.
//! * **Adaptive limit** ([`AdaptiveLimit`]: [`Aimd`], [`Gradient2`], [`Vegas`]): the
//!   limit follows the latency the dependency shows and the overload outcomes the
//!   [classifier](crate::classify) reports, within bounds.
//!   An adaptive limit over HTTP needs the HTTP classifier to see a `429` or a `503`
//!   as overload (`BulkheadLayer::builder().classifier(HttpClassifier::new())`); with
//!   the default classifier only errors count.
//! * **Partitions** ([`partition`]): shares of one pool (90 % interactive, 10 % batch)
//!   with borrowing of idle capacity ([`PartitionedBulkheadLayer`]), and per-key
//!   bulkheads (tenant, route) over a bounded key set ([`BulkheadBuilder::keyed`]).
//! * **A handle** ([`BulkheadHandle`]) shows the limit, calls in flight and callers
//!   queued, and changes a fixed limit at runtime.
//!
//! Every rejection, queueing, queue timeout and limit change is reported as a `tracing`
//! event and a typed [`BulkheadEvent`](crate::observe::BulkheadEvent).
//!
//! # Where it goes
//!
//! Near the top of the stack, inside the overall timeout and outside retry: one
//! request then holds one permit for all its attempts, and a full process sheds load
//! before it spends anything. One layer is one bulkhead: every service the layer (or
//! its clones) wraps draws from the same permits; build one layer per dependency.
//!
//! # Readiness, queueing and cancellation
//!
//! `poll_ready` passes on the inner service's readiness and nothing else, so axum,
//! `Buffer` and balancers keep working (tower's `ConcurrencyLimit` waits for a permit
//! in `poll_ready`, which axum turns into an unbounded queue). `call` takes a permit if
//! one is free and no caller is queued. Otherwise the call joins the queue if there is
//! room: its response future waits, in arrival order, up to the maximum wait; when it
//! is granted a permit it readies a clone of the inner service and sends the request.
//! Nothing is reserved in the inner service while a call waits.
//!
//! The permit ([`BulkheadPermit`]) lives in the response future until the inner future
//! completes, and returns when it is dropped. Dropping a queued future leaves the queue
//! at once; dropping a running one returns its permit. A cancelled call is never
//! recorded by an adaptive limit. A response whose body streams after the future
//! completed can keep its permit with
//! [`ResponseFuture::take_permit`](future::ResponseFuture::take_permit).
//!
//! # Cost
//!
//! The permit count is split into per-thread shards with a shared overflow pool (the
//! design notes are in the source of `limiter.rs`): an uncontended fixed call takes
//! one compare-and-swap on its own thread's cache line to take a permit and one to
//! return it, and reads two words that only change when callers queue or the limit
//! shrinks. No allocation, no lock, no clock read, and no reference count: a fixed
//! permit refers to counters that are allocated once per bulkhead and recycled (with
//! a generation check) when the bulkhead is dropped, so the memory they take is
//! bounded by the most bulkheads alive at once. The count stays exact: calls in flight
//! never exceed the limit. Because no counter is shared by all threads, a second
//! worker thread adds throughput instead of contention.
//!
//! The queue (slow path) uses a mutex. An adaptive bulkhead adds two clock reads (none
//! for AIMD without a latency threshold, which only counts), a reference count and a
//! few plain stores on the thread's own line per call, and once per window a short
//! lock to update the limit.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use tower_fortify::bulkhead::{BulkheadFull, BulkheadLayer};
//! use tower_fortify::ServiceBuilderExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let layer = BulkheadLayer::builder()
//!     .max_concurrent(1)
//!     .queue(8, Duration::from_millis(50))
//!     .build()
//!     .expect("valid configuration");
//! let handle = layer.handle();
//! let mut svc = ServiceBuilder::new()
//!     .bulkhead(layer)
//!     .service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x * 2) });
//!
//! assert_eq!(svc.ready().await.unwrap().call(21).await.unwrap(), 42);
//!
//! // Hold the only permit: the next call waits 50 ms, then gives up.
//! let held = handle.try_acquire().unwrap();
//! let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
//! let full = err.downcast_ref::<BulkheadFull>().unwrap();
//! assert!(full.waited());
//! assert_eq!(full.limit(), 1);
//! drop(held);
//! assert_eq!(handle.in_flight(), 0);
//! # }
//! ```

pub mod adaptive;
pub mod error;
pub mod future;
mod handle;
mod keyed;
mod layer;
mod limiter;
pub mod partition;
mod permit;
mod service;
mod shared;

pub use adaptive::{AdaptiveLimit, Aimd, Gradient2, Vegas};
pub use error::BulkheadFull;
pub use handle::BulkheadHandle;
pub use keyed::{KeyedBulkhead, KeyedBulkheadBuilder, KeyedBulkheadHandle, KeyedBulkheadLayer};
pub use layer::{BulkheadBuilder, BulkheadLayer};
pub use partition::{
    PartitionedBulkhead, PartitionedBulkheadBuilder, PartitionedBulkheadHandle,
    PartitionedBulkheadLayer,
};
pub use permit::BulkheadPermit;
pub use service::Bulkhead;
