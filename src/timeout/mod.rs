//! Timeouts: one per attempt, and one deadline for the whole request.
//!
//! # What it is for
//!
//! A backend that hangs is worse than one that fails: it holds a connection, a
//! bulkhead permit and the caller's patience, and no breaker or router can count a
//! failure that never arrives. Two timeouts turn time into failures the other layers
//! can act on:
//!
//! * [`TimeoutLayer`] bounds **one attempt** (put it right above the backend client,
//!   below the per-backend breaker). When it fires the attempt fails with
//!   [`Elapsed`]: a retryable failure the breaker counts, the router counts against
//!   that backend, and the retry layer above may send to another backend.
//! * [`DeadlineLayer`] bounds **the whole request**, retries, backoff and queueing
//!   included (put it outermost). When it fires the request fails with
//!   [`DeadlineExceeded`], which is final: nothing below it is running any more, and
//!   there is no time left to try again.
//!
//! Both are tokio timers ([`tokio::time`]), so they run in paused time in tests, and
//! dropping the response future cancels the inner call with everything it held.
//!
//! # Where they go
//!
//! ```text
//! DeadlineLayer (overall)         the caller's patience, for all attempts
//!   -> bulkhead -> retry -> failover router -> per-backend breaker
//!     -> TimeoutLayer (per attempt)
//!       -> backend client
//! ```
//!
//! The retry layer does not start a backoff or an attempt that would end past its own
//! deadline ([`RetryBuilder::deadline`](crate::retry::RetryBuilder::deadline)); give
//! it the same deadline as the [`DeadlineLayer`] (the one-call stacks in
//! [`stack`](crate::stack) do, and pass the exact instant down with each request), so
//! the request is not retried into a deadline that will cut it.
//!
//! # Deadlines travel
//!
//! A [`Deadline`] (and the one-call stack) keeps the earlier of its own deadline and
//! the one in scope ([`current_deadline`]): the deadline of the request a server is
//! handling, set by [`InheritDeadlineLayer`](crate::http::InheritDeadlineLayer) from
//! the caller's `grpc-timeout` or deadline header. It puts that deadline in scope for
//! everything below it, so the retry and hedging layers start no attempt past it and
//! [`PropagateDeadlineLayer`](crate::http::PropagateDeadlineLayer) writes what is
//! left of it on the outgoing request. A request whose inherited deadline has already
//! passed is not sent at all: it fails with [`DeadlineExceeded`] at once.
//!
//! Unlike tower's `Timeout`, the errors are this crate's own, say how long they
//! waited, and are told apart by the HTTP and gRPC integrations: an attempt's
//! [`Elapsed`] and a request's [`DeadlineExceeded`] both become `504` / gRPC
//! `DEADLINE_EXCEEDED` when they reach a server's edge.
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_fortify::BoxError;
//! use tower_fortify::timeout::{DeadlineLayer, Elapsed, TimeoutLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let hung = service_fn(|_: ()| async {
//!     tokio::time::sleep(Duration::from_secs(3600)).await;
//!     Ok::<_, BoxError>("late")
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(2)))
//!     .layer(TimeoutLayer::new(Duration::from_millis(300)))
//!     .service(hung);
//! let err = svc.oneshot(()).await.unwrap_err();
//! let elapsed = err.downcast_ref::<Elapsed>().expect("the attempt timed out");
//! assert_eq!(elapsed.after(), Duration::from_millis(300));
//! assert_eq!(err.to_string(), "attempt timed out after 300 ms");
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod future;
mod layer;
mod service;

pub use error::{DeadlineExceeded, Elapsed};
pub use layer::{DeadlineLayer, TimeoutLayer};
pub use service::{Deadline, LiveTimeout, Timeout, TimeoutSource};

/// The deadline of the request being served on this thread, if one is in scope: set
/// by a server layer that read the caller's deadline
/// ([`http::InheritDeadlineLayer`](crate::http::InheritDeadlineLayer)), or by a
/// [`Deadline`] or one-call [`Stack`](crate::stack::Stack) while it polls the calls
/// below it. Every deadline-aware layer keeps the earlier of its own deadline and
/// this one.
pub fn current_deadline() -> Option<tokio::time::Instant> {
    crate::scope::current()
}

#[allow(unused_imports)] // Used by the one-call stack.
pub(crate) use layer::check;
#[allow(unused_imports)] // Used by the one-call stack.
pub(crate) use service::{effective, scoped_call, until};
