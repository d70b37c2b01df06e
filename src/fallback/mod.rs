//! Fallbacks: when a call fails, answer with something else.
//!
//! # What it is for
//!
//! Some failures have a good-enough answer: yesterday's exchange rates, an empty
//! recommendation list, a cached profile, a degraded code path. Polly and
//! resilience4j call this a fallback. [`FallbackLayer`] replaces a failed result —
//! an error, or a response the [classifier](crate::classify) calls a failure (an
//! HTTP `503` with [`HttpClassifier`](crate::http::HttpClassifier), a gRPC
//! `UNAVAILABLE` with [`GrpcClassifier`](crate::grpc::GrpcClassifier)) — with:
//!
//! * a value: [`FallbackLayer::value`] (cloned for each failure);
//! * a function of the failure: [`FallbackLayer::from_failure`], which may also turn
//!   one error into another;
//! * a function of the request and the failure: [`FallbackLayer::from_request`];
//! * another service: [`FallbackLayer::service`] (a stale cache, a degraded path).
//!
//! The last two need the request after the inner service consumed it, so they clone
//! every request before sending it: pick a failure-only fallback when you can.
//! [`on_error`](FallbackLayer::on_error) limits the fallback to errors you choose.
//!
//! The layer is typed: its response and error are the inner service's, so under
//! axum and tonic the errors of the layers around it convert exactly as without it
//! ([`axum::InfallibleLayer`](crate::axum::InfallibleLayer),
//! [`grpc::status_of`](crate::grpc::status_of)), and a fallback answer is an ordinary response.
//!
//! # Where it goes
//!
//! Outermost, above the overall deadline and everything it protects, so it sees the
//! final failure — after retries, hedges and failover gave up:
//!
//! ```text
//! fallback -> deadline -> bulkhead -> retry -> hedge -> failover router -> ...
//! ```
//!
//! # Cost
//!
//! On the success path: one reference-count increment and the classifier's verdict;
//! with [`from_request`](FallbackLayer::from_request) or
//! [`service`](FallbackLayer::service), one clone of the request.
//!
//! # Example
//!
//! ```
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use tower_fortify::BoxError;
//! use tower_fortify::fallback::FallbackLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let rates = service_fn(|_: &'static str| async { Err::<f64, BoxError>("rates service down".into()) });
//! let mut svc = ServiceBuilder::new()
//!     .layer(FallbackLayer::value(1.08)) // the last known EUR/USD rate
//!     .service(rates);
//! assert_eq!(svc.ready().await.unwrap().call("EURUSD").await.unwrap(), 1.08);
//! # }
//! ```

pub mod error;
pub mod future;
mod layer;
mod service;
mod shared;
pub mod strategy;

pub use layer::{FallbackLayer, OnError};
pub use service::Fallback;
