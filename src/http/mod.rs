//! HTTP integration: body replay, status classification, server hints, idempotency.
//!
//! # What it is for
//!
//! The core layers know no protocol. This module teaches them HTTP:
//!
//! * [`HttpClassifier`] judges responses by status code (5xx failures; 502, 503, 504
//!   retryable; 429 throttled; all configurable) and reads `Retry-After` (seconds or
//!   HTTP-date) into a [`ServerHint`](crate::classify::ServerHint), so the retry
//!   waits as long as the server asked.
//! * [`ReplayBody`] records a streamed request body up to a cap so that the retry
//!   layer can send it again — something a hyper `Incoming`, an axum `Body` or a tonic
//!   client stream cannot do by themselves. Past the cap the request is sent once and
//!   the skipped retry is reported as not replayable.
//! * [`HttpReplay`] copies requests for the retry layer and
//!   only lets idempotent methods (or requests marked [`RetrySafe`]) be retried; a
//!   [`RetryOverride`](crate::retry::RetryOverride) in a request's extensions changes
//!   its attempts or deadline.
//! * [`HeldBody`] finishes a call when a streamed response ends or fails, and
//!   reports a body dropped early as a cancellation (no outcome), so layers can hold
//!   permits and verdicts for the life of a stream: [`HoldToEosLayer`] moves in the
//!   guard of any layer that implements [`GuardedFuture`] (a bulkhead's permit, a
//!   breaker's verdict; gRPC: judged from its trailers), and [`EosBody`] is the same
//!   body reporting to a callback;
//!   [`PeekTrailersLayer`] reads a short response's trailers ahead so a gRPC status
//!   sent in trailers can be retried.
//! * [`InheritDeadlineLayer`] (server) and [`PropagateDeadlineLayer`] (client) carry
//!   the caller's deadline across the wire in `grpc-timeout` or [`DEADLINE_HEADER`],
//!   so a server's own outgoing calls stop when its caller gave up ([`deadline`]).
//! * [`Rejection`] (from [`guard`](crate::guard), where each layer says what its
//!   refusal means) is what a layer's error means on the wire (503 + `Retry-After`,
//!   429, 504); the `axum` and `grpc` features turn it into responses and statuses.
//!
//! The header parsers ([`retry_after`], [`parse_grpc_pushback`], …) never panic and
//! ignore malformed input; they are property-tested over arbitrary bytes.
//!
//! # Where it goes
//!
//! On a client (hyper, a tonic `Channel`), outermost first:
//!
//! ```text
//! ReplayBodyLayer          wrap the request body so it can be replayed
//!   -> retry               HttpClassifier + HttpReplay
//!     -> PeekTrailersLayer (gRPC: see statuses sent in trailers)
//!       -> client
//! ```
//!
//! With a breaker, a bulkhead or the failover router in the stack, put a
//! [`HoldToEosLayer`] right above each of them when responses stream, so the permit,
//! the in-flight count and the verdict last until the body ends:
//!
//! ```text
//! ReplayBodyLayer -> retry -> HoldToEos -> failover router
//!   -> per backend: HoldToEos -> breaker -> HoldToEos -> bulkhead -> client
//! ```
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "retry")] {
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_fortify::backoff::Backoff;
//! use tower_fortify::http::{HttpClassifier, ReplayBody, ReplayBodyLayer};
//! use tower_fortify::http::HttpReplay;
//! use tower_fortify::retry::RetryLayer;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let calls = Arc::new(AtomicU32::new(0));
//! let seen = calls.clone();
//! // A backend whose first answer is a 503.
//! let backend = tower::service_fn(move |req: http::Request<ReplayBody<String>>| {
//!     let n = seen.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         let body = http_body_util::BodyExt::collect(req.into_body()).await?.to_bytes();
//!         let status = if n == 0 { 503 } else { 200 };
//!         Ok::<_, tower_fortify::BoxError>(
//!             http::Response::builder().status(status).body(body).unwrap(),
//!         )
//!     }
//! });
//! let retry = RetryLayer::builder()
//!     .backoff(Backoff::constant(Duration::from_millis(1)))
//!     .classifier(HttpClassifier::new())
//!     .replay(HttpReplay)
//!     .no_budget()
//!     .build()
//!     .unwrap();
//! let client = ServiceBuilder::new()
//!     .layer(ReplayBodyLayer::new(64 * 1024))
//!     .layer(retry)
//!     .service(backend);
//! let req = http::Request::put("http://backend/item").body(String::from("data")).unwrap();
//! let response = client.oneshot(req).await.unwrap();
//! assert_eq!(response.status(), 200);
//! assert_eq!(response.body(), "data"); // the body was sent again
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! # }
//! # }
//! ```

mod classify;
pub mod deadline;
mod eos;
mod hint;
mod hold;
mod peek;
mod rejection;
#[cfg(feature = "retry")]
pub(crate) mod replay;
mod replay_body;
#[cfg(feature = "failover")]
mod tried;
mod upstream;

pub use classify::{HttpClassifier, RetrySafe, StatusSet, is_idempotent, may_retry};
pub use deadline::{
    DEADLINE_HEADER, GRPC_TIMEOUT, InheritDeadline, InheritDeadlineLayer, InheritFuture,
    MAX_INHERITED, PropagateDeadline, PropagateDeadlineLayer, RequestDeadline, format_grpc_timeout,
    inherited_timeout, parse_deadline_ms, parse_grpc_timeout,
};
pub use eos::{EosBody, HeldBody, HttpEos};
pub use hint::{
    GRPC_RETRY_PUSHBACK_MS, MAX_HINT, grpc_pushback, parse_grpc_pushback, parse_retry_after_date,
    parse_retry_after_seconds, retry_after,
};
// The ground-floor seams, re-exported where they were first defined.
pub use crate::guard::{EndGuard, GuardedFuture, Rejection, RejectionKind};
pub use hold::{HoldFuture, HoldToEos, HoldToEosLayer};
pub use peek::{PeekFuture, PeekTrailers, PeekTrailersLayer, PeekedBody, PeekedTrailers};
pub use rejection::REJECTED_HEADER;
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub use replay::HttpReplay;
pub use replay_body::{ReplayBody, ReplayBodyLayer, ReplayError, WithReplayBody};
#[cfg(feature = "failover")]
#[cfg_attr(docsrs, doc(cfg(feature = "failover")))]
pub use tried::HttpTried;
pub use upstream::Upstream;
