//! Fault and latency injection: break things on purpose, reproducibly.
//!
//! # What it is for
//!
//! A retry policy, a breaker or a failover router is only known to work once it has
//! seen the faults it is meant to absorb. [`ChaosLayer`] injects them in front of any
//! service:
//!
//! * **errors** — any error the caller builds ([`Fault::error`]), or an [`Aborted`]
//!   error as if the connection were reset ([`Fault::abort`]);
//! * **responses** — any response the caller builds, such as an HTTP 503
//!   ([`Fault::respond`]);
//! * **latency** — a fixed delay or one drawn from a [`Latency`] distribution, after
//!   which the call goes through ([`Fault::latency`]);
//! * **hangs** — a call that never answers ([`Fault::hang`]), which only a timeout ends.
//!
//! Each [`Rule`] says when its fault applies: with a probability, inside time windows
//! (once, or periodically to make a dependency flap), and only for requests a key
//! function selects (one backend, one route, one tenant). Rules are tried in order and
//! the first that selects a call injects its fault.
//!
//! Injection is switched on and off at runtime through a [`ChaosHandle`]; switched off,
//! a call costs one relaxed atomic load. A call that gets no fault allocates nothing;
//! a latency fault allocates its timer. Probability draws and latency samples come from
//! a seedable [`Rng`](crate::rng::Rng), and schedules from `tokio::time`, so a test in
//! paused time sees the same faults on every run.
//!
//! # Where it goes
//!
//! Right above the client of the dependency you want to break, below every resilience
//! layer (per-attempt timeout, breaker, failover, retry), so that those layers see the
//! injected faults as they would see real ones. The drill harness
//! ([`crate::drill`]) uses the same [`Latency`] distributions for its simulated
//! backends.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use tower_fortify::chaos::{ChaosLayer, Fault, Latency, Rule};
//! use tower_fortify::rng::Rng;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let chaos = ChaosLayer::builder()
//!     .rng(Rng::seeded(42))
//!     // Every call for tenant 7 fails during the first minute.
//!     .rule(
//!         Rule::new(Fault::error(|| "injected outage"))
//!             .during(Duration::ZERO..Duration::from_secs(60))
//!             .only(|tenant: &u32| *tenant == 7),
//!     )
//!     // 10 % of the other calls take 50 ms longer.
//!     .rule(Rule::new(Fault::latency(Latency::fixed(Duration::from_millis(50)))).probability(0.1))
//!     .build()
//!     .expect("valid rules");
//! let handle = chaos.handle();
//!
//! let mut svc = ServiceBuilder::new()
//!     .layer(chaos)
//!     .service(service_fn(|tenant: u32| async move { Ok::<_, &str>(tenant) }));
//!
//! assert_eq!(svc.ready().await.unwrap().call(7).await, Err("injected outage"));
//! handle.disable();
//! assert_eq!(svc.ready().await.unwrap().call(7).await, Ok(7));
//! assert_eq!(handle.injected(), 1);
//! # }
//! ```

pub mod error;
pub mod future;
mod handle;
mod latency;
mod layer;
mod rule;
mod service;
mod shared;

pub use error::Aborted;
pub use handle::ChaosHandle;
pub use latency::Latency;
#[cfg(feature = "drill")]
pub(crate) use latency::Parts;
pub use layer::{ChaosBuilder, ChaosLayer};
pub use rule::{Fault, Rule};
pub use service::Chaos;
