//! The ground-floor seams between the layers and the protocols: holding a layer's
//! permit until a streamed response ends, and saying what a layer's refusal means on
//! the wire.
//!
//! # What it is for
//!
//! The protocol floor ([`http`](crate::http), [`axum`](crate::axum),
//! [`grpc`](crate::grpc)) must act on what the layers hold and refuse without naming
//! any of them, so that a new layer needs no edit there. Each layer implements these
//! traits in its own files instead:
//!
//! * [`EndGuard`] and [`GuardedFuture`], in a layer's `future.rs`: what the layer
//!   holds for a call (a bulkhead permit, a breaker's verdict, the router's in-flight
//!   count) and how its response future hands it over.
//!   [`HoldToEos`](crate::http::HoldToEos) moves it into the response body, which
//!   finishes it when the stream ends.
//! * [`Reject`], in a layer's `error.rs`: the [`Rejection`] an error stands for — its
//!   [`RejectionKind`] (which decides the HTTP status and the gRPC code), a short
//!   reason (`circuit-open`), and when to come back. [`Rejection::of`] finds it in a
//!   `BoxError`; `axum` answers it with a 503 + `Retry-After` or a 429, `grpc` with
//!   `UNAVAILABLE` or `RESOURCE_EXHAUSTED` with pushback.
//!
//! # Recognising a rejection behind a `BoxError`
//!
//! Layers return `BoxError`s, and a `dyn Error` can be downcast only to a concrete
//! type, never to a trait object: there is no stable way to ask a `dyn Error` whether
//! its type implements [`Reject`] (`Error::provide` would be it, once stable). Three
//! ways around that were weighed:
//!
//! * one list of every layer's error type, tried in turn — what `http` held before,
//!   and on the ground floor it would make the ground know every layer (and every new
//!   layer edit it);
//! * a `Rejection` value hidden in each error's `source()` chain — it would change
//!   what every error report prints;
//! * **a registry** (chosen): each `Reject` type keeps a [`Registration`] in a
//!   `static` and registers a downcast-and-ask function with it. [`Rejection::of`]
//!   walks the source chain and tries the registered functions on each error.
//!
//! The registration is made from the type's own `Error::source`, because that is the
//! one method every error has that `Rejection::of` calls on each error *before* it
//! looks the error up: an error is registered exactly when something first asks
//! whether it is a rejection, whoever built it, with no hook in the code that
//! constructs it and nothing to call at start-up. After the first time it costs one
//! atomic load, and only on that slow path; the success path and the fast rejection
//! itself do not touch it. The registry is a fixed array of write-once slots
//! (lock-free to read); 32 types are more than enough for this crate's six.
//!
//! # Example
//!
//! A layer's refusal, recognised without naming its type:
//!
//! ```
//! # #[cfg(feature = "bulkhead")] {
//! use tower::{Service, ServiceExt};
//! use tower_fortify::bulkhead::BulkheadLayer;
//! use tower_fortify::guard::{Rejection, RejectionKind};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let layer = BulkheadLayer::builder().max_concurrent(1).build().unwrap();
//! let mut svc = tower::Layer::layer(
//!     &layer,
//!     tower::service_fn(|()| std::future::pending::<Result<(), tower_fortify::BoxError>>()),
//! );
//! let _held = svc.ready().await.unwrap().call(()); // takes the only permit
//! let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
//! let r = Rejection::of(err.as_ref()).unwrap();
//! assert_eq!((r.kind(), r.reason()), (RejectionKind::Unavailable, "bulkhead-full"));
//! # }
//! # }
//! ```

mod end;
mod rejection;

pub use end::{EndGuard, GuardedFuture};
pub use rejection::{Registration, Reject, Rejection, RejectionKind};
