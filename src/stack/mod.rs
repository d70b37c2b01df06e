//! One call builds the recommended stack.
//!
//! # What it is for
//!
//! Each layer of this crate can be used alone, but the protection users want comes
//! from all of them together, in the right order, with values that work together:
//!
//! ```text
//! overall deadline                 the caller's patience, for all attempts
//!   -> bulkhead                    protect this process before doing any work
//!     -> retry                     budgeted, jittered, to a backend not yet tried
//!       -> hedge                   off by default; `.hedging()`: a copy of a slow request
//!         -> failover router       tiers, peak-EWMA, outlier ejection, hold-offs
//!           -> circuit breaker     one per backend
//!             -> attempt timeout   one per attempt
//!               -> backend         your service, a hyper client, a tonic Channel
//! ```
//!
//! [`Stack::builder`] builds exactly that over any set of tower services, with the
//! defaults argued on [`Stack::builder`]; [`Stack::http`] builds it over URLs with a
//! hyper-util client (feature `http-client`), and [`Stack::grpc`] over tonic channels
//! (feature `grpc`), each with the protocol's classifier in every layer. Nothing is
//! left to do per request: the stack tracks which backends a request tried (so a
//! retry goes elsewhere) and passes the deadline down to the retry layer itself.
//!
//! The drill tests (`tests/drill.rs`) run every built-in scenario against this stack
//! with its defaults; the thresholds they assert are the ones this crate promises.
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceExt};
//! use tower_fortify::BoxError;
//! use tower_fortify::failover::Backend;
//! use tower_fortify::stack::Stack;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let backend = |name: &'static str| {
//!     service_fn(move |req: String| async move { Ok::<_, BoxError>(format!("{name}: {req}")) })
//! };
//! let mut stack = Stack::builder()
//!     .backend("eu-1", backend("eu-1"))
//!     .backend("eu-2", backend("eu-2"))
//!     .backend_with(Backend::new("us-1", backend("us-1")).tier(1)) // failover tier
//!     .deadline(Duration::from_secs(2))                              // any knob
//!     .build()?;
//! let answer = stack.ready().await?.call("hello".to_string()).await?;
//! assert!(answer.starts_with("eu-"));
//! assert_eq!(stack.router().backends().len(), 3);
//! # Ok(())
//! # }
//! ```
//!
//! # Cost
//!
//! A call through the whole stack costs what its layers cost (see the README's
//! benchmark tables), plus one small allocation for the request's
//! [`Tried`](crate::failover::Tried) set and one clock read for its deadline.

mod attempt;
mod builder;
mod health;
mod presets;
mod service;

pub use attempt::{Attempt, AttemptReplay, AttemptTried, Unwrap};
#[cfg(feature = "config")]
pub(crate) use builder::nanos;
pub use builder::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_DEADLINE, DEFAULT_HEDGE_PERCENTILE, DEFAULT_MAX_IN_FLIGHT,
    StackBuilder,
};
pub use health::Health;
#[cfg(feature = "http-client")]
pub use presets::HttpClient;
pub use service::{Hedged, Leg, Router, Stack};
