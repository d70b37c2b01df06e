//! The drill harness: prove, in a test, that a stack survives an outage.
//!
//! # What it is for
//!
//! Resilience that is never exercised is shelfware. A drill runs a [`Scenario`] —
//! simulated backends that go down, brown out, slow down or flap on a schedule, and
//! a load — against the stack you build over those backends, and reports what your
//! callers would have seen. It runs in paused tokio time, so ten virtual minutes at
//! 1,000 requests per second take seconds, and the same seed gives the same report:
//! write "with the primary down for a minute, 99.9 % of requests succeed and retries
//! add at most 10 % load" as an ordinary test and run it in CI.
//!
//! The pieces:
//!
//! * [`SimBackend`] — a tower service with a [`Latency`](crate::chaos::Latency)
//!   distribution, an error rate and a capacity (calls beyond it queue, so latency
//!   grows with load, and past the queue they fail fast), following a schedule of
//!   [`Phase`]s: healthy, down (fails fast, like a refused connection), brownout (a
//!   share of calls fail), slow (latency multiplied), flapping (down and up in turn).
//!   Each backend counts the calls it receives.
//! * [`Scenario`] — backends with their schedules, a [`Load`] (constant, Poisson, with
//!   steps) and a duration; built in code, taken from the
//!   [built-in set](Scenario::builtin) or loaded from a TOML file whose errors name
//!   the line and the field.
//! * [`Drill`] — the runner. Open-loop load: each request is sent at its arrival
//!   time, whatever happened to the others. The stack is anything that implements
//!   `Service<SimRequest>` and `Clone`; the drill knows no concrete layer.
//! * `ProcessDrill` (feature `drill-process`) — the same scenarios on real backend
//!   processes on 127.0.0.1 that it starts itself (`fortify-drill-backend`): `down` is
//!   SIGKILL and a restart on the same port, `brownout` and `slow` go through the
//!   backend's control endpoint, the load goes through your real HTTP client stack in
//!   real time, and the report is the same.
//! * `FlightRecorder` (with the `failover` and `retry` features) — keeps what each
//!   backend did per second for the last minutes, from a production stack's events,
//!   and writes it as a [`Scenario`]: an incident becomes a regression drill.
//! * [`Report`] — the figures below, a per-second timeline, as a table (`{}` and
//!   [`comparison_table`]), JSON ([`Report::to_json`]) and an SVG chart
//!   ([`svg_chart`]); with assertion helpers that return a descriptive error.
//!
//! # What the report measures
//!
//! * **availability** — requests that succeeded (by the [classifier](crate::classify)
//!   given to the drill; `Ok` by default) over requests sent. Requests still running
//!   when the drain time ends count as failed.
//! * **latency** — p50, p90, p99, p99.9 and max of every finished request, as the
//!   caller waited for it (retries and backoff included), from an HDR histogram.
//! * **load amplification** — calls the backends received over requests sent: 1.0
//!   without retries; what a retry storm multiplies.
//! * **traffic share** — each backend's share of the calls, overall and per second.
//! * For each **fault** (a non-healthy phase, merged across the backends that share
//!   it; a load step above the starting rate is a fault of the whole stack):
//!   * *detected after* — from the fault's start to the end of the first second in
//!     which the affected backends received at most half the calls per request they
//!     received in the ten seconds before: the stack noticed and routed around them
//!     (a breaker opened, a router ejected them). Round robin with retries never
//!     detects anything.
//!   * *recovered after* — from the fault's end to the end of the first second in
//!     which the affected backends are back to at least half their earlier calls per
//!     request and the availability of that second is at or above the drill's
//!     threshold (99 % by default): traffic came back and callers are served.
//!   * *impaired* — seconds below the threshold, from the fault's start to 30 s after
//!     its end.
//!
//!   Times have a resolution of one second; each figure is an upper bound.
//!
//! Events the stack's layers emit through [`DrillEnv::listener`] are kept in the
//! report (the first [`MAX_EVENTS`], and a count of every kind); with
//! [`Drill::states`] the report also lists state transitions (breaker opened,
//! backend ejected) and the chart draws them as bands.
//!
//! # Requests that carry state
//!
//! [`SimRequest`] is a plain number. A layer that needs state in the request — an
//! attempt-aware router's set of backends already tried, a tenant for a keyed breaker
//! — gets it from a wrapper: map each `SimRequest` into your request type at the top
//! of the stack (`ServiceBuilder::map_request`) and back in front of each backend.
//!
//! # Determinism
//!
//! Arrivals, every backend and [`DrillEnv::rng`] draw from streams derived from the
//! drill's seed, time is tokio's paused clock, and the runtime has one thread, so the
//! same seed, scenario and stack give the same JSON byte for byte. Give the stack's
//! own randomness (retry jitter, chaos rules) `env.rng()` to keep it that way.
//! Arrivals are grouped by millisecond.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use tower_fortify::backoff::Backoff;
//! use tower_fortify::drill::{Drill, Scenario};
//! use tower_fortify::retry::RetryLayer;
//!
//! // The built-in single-backend outage, shortened for the example: three backends,
//! // one of them down for the middle third of the drill.
//! let scenario = Scenario::builtin("backend-outage").unwrap().scaled(0.2, 0.2);
//! let report = Drill::new(scenario)
//!     .seed(7)
//!     .label("retry")
//!     .run(|env| {
//!         let retry = RetryLayer::builder()
//!             .max_attempts(3)
//!             .backoff(Backoff::constant(Duration::from_millis(5)))
//!             .no_budget()
//!             .rng(env.rng())
//!             .build()
//!             .unwrap();
//!         // Send each attempt to the next backend in turn.
//!         let backends = env.backends().to_vec();
//!         let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
//!         let balance = tower::service_fn(move |req| {
//!             let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!             let mut backend = backends[i % backends.len()].clone();
//!             tower::Service::call(&mut backend, req)
//!         });
//!         ServiceBuilder::new().layer(retry).service(balance)
//!     })
//!     .unwrap();
//!
//! println!("{report}");
//! report.assert_availability_at_least(0.99).unwrap();
//! report.assert_amplification_at_most(1.2).unwrap();
//! ```

mod backend;
mod builtin;
mod chart;
mod file_model;
mod load;
mod measure;
#[cfg(feature = "drill-process")]
mod process;
#[cfg(feature = "drill-process")]
mod proxy;
#[cfg(all(feature = "failover", feature = "retry"))]
mod recorder;
mod report;
mod runner;
mod scenario;
mod scenario_error;
mod scenario_file;

pub use backend::{
    BackendSpec, Phase, SimBackend, SimClassifier, SimError, SimErrorKind, SimFuture, SimRequest,
    SimResponse,
};
pub use chart::svg_chart;
pub use load::Load;
pub use measure::{EventLog, MAX_EVENTS, StateFn};
#[cfg(feature = "drill-process")]
#[cfg_attr(docsrs, doc(cfg(feature = "drill-process")))]
pub use process::{ProcessBody, ProcessDrill, ProcessDrillError, ProcessEnv, ProcessListener};
#[cfg(feature = "drill-process")]
#[cfg_attr(docsrs, doc(cfg(feature = "drill-process")))]
pub use proxy::{ChaosProxy, NetFault};
#[cfg(all(feature = "failover", feature = "retry"))]
pub use recorder::FlightRecorder;
pub use report::{
    AssertionFailed, BackendReport, EventRecord, FaultReport, Quantiles, Report, SecondReport,
    StateSpan, Transition, comparison_table, verdicts,
};
pub use runner::{Drill, DrillEnv};
pub use scenario::Scenario;
pub use scenario_error::ScenarioError;
