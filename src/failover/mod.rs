//! Failover routing: priority tiers, outlier ejection, health checks, attempt-aware
//! retries.
//!
//! # What it is for
//!
//! When a backend, a zone or a region fails, traffic must move to healthy backends by
//! itself and come back when they recover. [`Failover`] is a tower `Service` over a
//! set of [`Backend`]s — each a tower `Service` with an id, a priority tier and a
//! weight — that does this inside the process:
//!
//! * **Within a tier**, each call goes to the cheaper of two random eligible backends
//!   (power of two choices). By default ([`Selection::PeakEwma`]) cost is the
//!   backend's peak-EWMA latency × (calls in flight + 1 + a failure penalty) per unit
//!   of weight: a backend that turns slow loses its share within about a second, and
//!   one that fails fast does not look cheap, since each failure in a row adds to its
//!   penalty (which shrinks each time it is passed over and clears on a success).
//!   [`Selection::PowerOfTwoChoices`] compares load and failures only, and
//!   [`Selection::WeightedRoundRobin`] follows the weights exactly. A backend that is
//!   not ready is skipped, not waited on, while another is ready.
//! * **Across tiers** (Envoy's priority levels): tier 0 serves while its healthy share
//!   × the overprovisioning factor (default 1.4) is at least 100 %; as its health
//!   falls the rest spills to tier 1, then tier 2. When the tiers together are under
//!   100 % the loads are scaled up to add to 100 %. When the total health falls below
//!   the panic threshold (default 50 %), [`PanicMode`] decides: route to every backend
//!   of the highest tier regardless of outlier ejections, or fail fast.
//! * **Passive health** (outlier detection) from the shared [classifier]: a backend is
//!   ejected after N consecutive failures (at once), or at the end of an interval if
//!   its failure rate passes a threshold, its success rate is too far below the
//!   median of the backends, or its mean latency is too many times their median (a
//!   backend 10× slower than its peers loses its traffic). An ejection lasts
//!   base × times ejected, capped, and the count shrinks again while the backend stays
//!   healthy. At most a set percentage of backends is ejected at once. After an
//!   ejection the backend is on probation: its first failure ejects it again.
//! * **Server hints**: an outcome of [`Overloaded`] with a
//!   [`RetryAfter`] delay (a `503` with `Retry-After`, a gRPC pushback, or
//!   an open circuit breaker in front of the backend, as [`BreakerAware`] reports it)
//!   holds the backend out of rotation for that delay, capped by
//!   [`max_server_delay`](FailoverBuilder::max_server_delay) (by default the base
//!   ejection time) and counted in the maximum ejected share, so that no hint takes a
//!   backend out for a day nor the whole pool out at once. It is not counted as an outlier
//!   failure: no ejection, no probation, no growing ejection time. This keeps a
//!   per-backend breaker and outlier ejection from fighting each other: without it, a
//!   backend whose breaker is still open when its ejection ends is ejected again for
//!   twice as long, and comes back late.
//! * **Active health checks** (optional): a user-supplied async [probe](Backend::probe)
//!   per backend, run every interval by a background task, with healthy and unhealthy
//!   thresholds ([`HealthCheck`]). A backend failing its checks takes no traffic, even
//!   in panic; a passive ejection that ends only restores a backend whose checks pass.
//! * **Attempt-aware**: requests may carry a [`Tried`] set. The router records each
//!   backend it sends the request to; when a retry layer above replays the request
//!   (sharing the set), the next attempt avoids those backends while another eligible
//!   backend is ready.
//! * **Membership at runtime** and inspection through a [`FailoverHandle`]: each
//!   backend's state, load and counts; manual eject and restore; add and remove (a
//!   removed backend finishes its calls in flight).
//! * When nothing can serve, `call` fails at once with [`NoHealthyBackend`].
//!
//! [`Overloaded`]: crate::classify::Outcome::Overloaded
//! [`RetryAfter`]: crate::classify::ServerHint::RetryAfter
//!
//! # How fast it fails over
//!
//! With `k` = [`consecutive_failures`](FailoverBuilder::consecutive_failures) and a
//! tier of `n` backends going hard down, at most `n × k` calls fail before every
//! backend of the tier is ejected and all traffic has moved to the next tier (the
//! maximum ejected percentage permitting); a retry layer above with attempt-aware
//! routing turns even those into successes, since each retry goes to a backend the
//! request has not tried. Brownouts and slow backends are caught by the interval
//! rules, within one [`interval`](FailoverBuilder::interval) of enough calls.
//!
//! Every ejection, skipped ejection, health verdict and membership change is reported
//! as a `tracing` event and a typed [`FailoverEvent`](crate::observe::FailoverEvent).
//!
//! # Defaults, and why
//!
//! The defaults are chosen so that a backend that heals gets its traffic back in
//! seconds (the drill's scenarios measure it):
//!
//! | setting | default | why |
//! |---|---|---|
//! | selection | peak-EWMA, decay 1 s, failures as cost | latency-aware: a 20× slower backend gets under 10 % of the calls within 2 s, and its share back about 3 s after it heals (see [`Selection::peak_ewma`]) |
//! | consecutive failures | 5 | a hard-down backend is out after 5 calls |
//! | failure rate / success-rate drop / latency factor | 50 % / 15 points / 5× the median | brownouts and slow backends, judged against their peers |
//! | interval | 2 s | the rate and latency rules judge within 2 s of enough calls |
//! | ejection | 2 s × times ejected, at most 10 s, decaying while healthy | a healed backend is back within 2 s after one ejection and within 10 s after many; Envoy's 30 s base keeps a healed backend idle for half a minute |
//! | max ejected | 50 % | outlier detection never takes out most of a tier |
//! | panic | below 50 % health: route to every member not held off | outlier ejection can be wrong; an open breaker or a server's `Retry-After` is not |
//!
//! With a circuit breaker per backend, tell the router about it
//! ([`Backend::breaker`], and [`BreakerAware`] as the classifier): it then holds a
//! backend out exactly while its breaker is open and leaves that backend's failures
//! to the breaker, so a failed probe does not eject a healed backend. The one-call
//! [`Stack`](crate::stack::Stack) does both, and leaves hard-down detection to the
//! breakers (no consecutive-failure ejection in the router).
//!
//! # Over HTTP: pass the HTTP classifier
//!
//! The default classifier counts every `Ok` as a success, so over an HTTP client a
//! `500` would look healthy. Give the router the protocol's classifier (or use
//! `Stack::http`, which does):
//!
//! ```
//! # #[cfg(feature = "http")] {
//! use tower_fortify::failover::{Backend, BreakerAware, Failover};
//! use tower_fortify::http::HttpClassifier;
//! # let (eu1, eu2) = (tower::service_fn(|_: http::Request<String>| async { Ok::<_, tower_fortify::BoxError>(http::Response::new(())) }), tower::service_fn(|_: http::Request<String>| async { Ok::<_, tower_fortify::BoxError>(http::Response::new(())) }));
//! # let (eu1, eu2) = (tower::util::BoxCloneSyncService::new(eu1), tower::util::BoxCloneSyncService::new(eu2));
//! let router = Failover::builder()
//!     .backend(Backend::new("eu-1", eu1))
//!     .backend(Backend::new("eu-2", eu2))
//!     .classifier(BreakerAware::new(HttpClassifier::new())) // a 5xx is a failure
//!     .build()
//!     .unwrap();
//! # let _ = router; }
//! ```
//!
//! # Where it goes
//!
//! Below the retry layer (and a hedge), above per-backend circuit breakers and
//! per-attempt timeouts: each attempt is routed anew, and a retry lands on another
//! backend. The router's error type is [`crate::BoxError`].
//!
//! A router is built from a list of backends rather than by wrapping one service, so
//! it has no layer: finish a `ServiceBuilder` with `.service(router)`, and put
//! per-backend layers (breaker, timeout) on each backend before adding it. All
//! backends have one type; box them (`tower::util::BoxCloneService`) to mix clients.
//!
//! # Using it with `crate::retry`
//!
//! The retry layer clones its inner service per request (clone + `mem::replace`), so
//! the router must be `Clone` (it is, when the backends are). For attempt-aware
//! routing, give each request a [`Tried`] and tell the router where it is with
//! [`FailoverBuilder::tried`] ([`tried_fn`] for your types, `http::HttpTried` for an
//! `http::Request`'s extensions). The retry layer's replay copies the request; the
//! copy shares the set. The router does not retry by itself: retries (and their
//! [`Budget`](crate::budget::Budget)) belong to the retry layer.
//!
//! ```
//! # #[cfg(feature = "retry")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use tower_fortify::backoff::Backoff;
//! use tower_fortify::failover::{tried_fn, Backend, Failover, Tried};
//! use tower_fortify::retry::RetryLayer;
//!
//! #[derive(Clone)]
//! struct Request { body: String, tried: Tried }
//!
//! fn backend(up: bool) -> impl Service<Request, Response = &'static str, Error = &'static str> + Clone {
//!     service_fn(move |_: Request| async move { if up { Ok("ok") } else { Err("refused") } })
//! }
//!
//! let router = Failover::builder()
//!     .backend(Backend::new("a", backend(false)))
//!     .backend(Backend::new("b", backend(true)))
//!     .tried(tried_fn(|r: &Request| Some(&r.tried)))
//!     .build()
//!     .unwrap();
//! let retry = RetryLayer::builder()
//!     .max_attempts(2)
//!     .backoff(Backoff::constant(Duration::from_millis(1)))
//!     .build()
//!     .unwrap();
//! let mut svc = ServiceBuilder::new().layer(retry).service(router);
//!
//! // Whichever backend the first attempt reaches, the second goes to the other one.
//! for _ in 0..10 {
//!     let request = Request { body: "hello".into(), tried: Tried::new() };
//!     assert_eq!(svc.ready().await.unwrap().call(request).await.unwrap(), "ok");
//! }
//! # }
//! # #[cfg(not(feature = "retry"))]
//! # fn main() {}
//! ```
//!
//! # Readiness and cancellation
//!
//! See [`Failover`]'s docs for the readiness contract: `poll_ready` readies one
//! backend (skipping those that are pending), `call` sends to it; when no backend is
//! eligible `poll_ready` is ready and `call` fails fast. Dropping a response future
//! takes the call off its backend's in-flight count and records neither a success nor
//! a failure.
//!
//! # Cost
//!
//! Per call: no allocation, no lock; one atomic increment and decrement of the chosen
//! backend's in-flight count and one counter add for its outcome (on the backend's own
//! cache line), a reference count on the backend's shared state, two atomic loads to
//! check that health and membership did not change, and a per-clone random number.
//! Clock reads: two per call with latency detection or peak-EWMA selection on (the
//! default has latency detection), otherwise one with the rate rules on (to start the
//! interval's analysis on time); one more per `poll_ready` while an ejection is in
//! force. Routing tables are rebuilt per clone only when health or membership
//! changes; the interval analysis allocates a little, once per interval. Measured by
//! `tests/failover_alloc.rs`: zero allocations per call, and zero under
//! `crate::retry`, which clones the router per request, for any number of backends,
//! boxed ones included (beyond the request's own `Tried`, if any). A clone shares the
//! backend list and routing table and clones no backend: it takes the service
//! instance of the backend it picks from that backend's spare slot (one atomic swap),
//! where the clone before it left it, and clones the backend's service only when the
//! slot is empty (the first requests, or more requests in flight than instances
//! parked).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceExt};
//! use tower_fortify::failover::{Backend, Failover};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // All backends have one type: here one function makes them all. To mix clients
//! // of different types, box them (`tower::util::BoxCloneService`).
//! fn backend(
//!     name: &'static str,
//!     up: bool,
//! ) -> impl Service<u32, Response = &'static str, Error = &'static str> + Clone {
//!     service_fn(move |_: u32| async move { if up { Ok(name) } else { Err("refused") } })
//! }
//!
//! let mut router = Failover::builder()
//!     .backend(Backend::new("eu-1", backend("primary", false)).tier(0))
//!     .backend(Backend::new("us-1", backend("secondary", true)).tier(1))
//!     .consecutive_failures(Some(3))
//!     .base_ejection_time(Duration::from_secs(10))
//!     .max_ejection_percent(50.0)
//!     .build()
//!     .expect("valid configuration");
//! let handle = router.handle();
//!
//! // Three failures eject the primary; then everything goes to the secondary.
//! for _ in 0..3 {
//!     assert!(router.ready().await.unwrap().call(1).await.is_err());
//! }
//! let answer = router.ready().await.unwrap().call(1).await.unwrap();
//! assert_eq!(answer, "secondary");
//! assert_eq!(handle.backend("eu-1").unwrap().ejections, 1);
//! # }
//! ```
//!
//! [classifier]: crate::classify

mod backend;
mod builder;
mod config;
mod core;
pub mod error;
pub mod future;
mod handle;
mod judge;
mod member;
mod pool;
mod ready;
mod route;
mod select;
mod service;
mod tiers;
mod tried;

#[cfg(feature = "circuit-breaker")]
mod breaker_aware;

pub use backend::{Backend, HealthCheck};
#[cfg(feature = "circuit-breaker")]
pub use breaker_aware::BreakerAware;
pub use builder::FailoverBuilder;
pub use config::{PanicMode, Selection};
pub use error::NoHealthyBackend;
pub use future::FailoverPermit;
pub use handle::{BackendHealth, BackendStatus, FailoverHandle};
pub use service::Failover;
pub use tried::{NoTried, TRIED_CAPACITY, Tried, TriedAccess, TriedFn, tried_fn};
