//! Metrics through the [`metrics`] facade: any exporter (Prometheus, StatsD,
//! OpenTelemetry through a bridge) records what the layers decide.
//!
//! [`MetricsListener`] is a [`Listener`]: give one to each layer's builder
//! (`.listener(MetricsListener::new())`), or call
//! [`StackBuilder::metrics`](crate::stack::StackBuilder::metrics) to give one to every
//! part of a one-call stack. Series are labelled with the instance's name (its
//! builder's `.name(..)`); install the exporter before building the layers.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `fortify_requests_total` | counter | `name`, `outcome` (`success`, `failure`) | requests through a retry layer, by final outcome |
//! | `fortify_attempts_per_request` | histogram | `name` | attempts sent per request (1 when nothing was retried) |
//! | `fortify_retries_total` | counter | `name`, `cause` (`backoff`, `server_hint`) | retries scheduled |
//! | `fortify_retries_skipped_total` | counter | `name`, `reason` (`budget`, `deadline`, `max_attempts`, `not_retryable`, ...) | failed attempts not retried, and why; `reason="budget"` is the budget refusing |
//! | `fortify_breaker_state` | gauge | `name` | 0 closed, 1 half-open, 2 open |
//! | `fortify_breaker_transitions_total` | counter | `name`, `to` (`closed`, `half_open`, `open`) | state changes |
//! | `fortify_breaker_opened_total` | counter | `name`, `reason` (`consecutive_failures`, `count_window_failure_rate`, `probe_failed`, ...) | trips, and why |
//! | `fortify_rejections_total` | counter | `name`, `layer` (`breaker`, `bulkhead`, `router`, `rate_limit`), `reason` (`circuit_open`, `bulkhead_full`, `queue_timeout`, `no_healthy_backend`, `rate_limited`) | calls refused without being sent |
//! | `fortify_bulkhead_limit` | gauge | `name` | the limit in force (adaptive ones move) |
//! | `fortify_bulkhead_queued_total` | counter | `name` | calls that had to queue |
//! | `fortify_backend_ejections_total` | counter | `name`, `backend`, `reason` | ejections by the router's outlier detection |
//! | `fortify_backend_ejected` | gauge | `name`, `backend` | 1 while the backend is ejected, 0 once it is back in rotation |
//! | `fortify_backend_healthy` | gauge | `name`, `backend` | the active health check's verdict (1 healthy) |
//! | `fortify_backend_attempts_total` | counter | `name`, `backend`, `outcome` (`success`, `failure`) | calls the router sent to each backend: the traffic share |
//! | `fortify_attempt_duration_seconds` | histogram | `name`, `backend` | each attempt's latency (when the router measures it; its default selection does) |
//! | `fortify_bulkhead_queue_wait_seconds` | histogram | `name` | how long a queued call waited for its permit |
//! | `fortify_chaos_injections_total` | counter | `name`, `fault` (`error`, `response`, `hang`, `latency`) | faults a chaos layer injected |
//! | `fortify_hedges_total` | counter | `name` | hedges sent |
//! | `fortify_hedges_skipped_total` | counter | `name`, `reason` (`budget`, `deadline`, `not_replayable`, `not_ready`) | hedges due but not sent, and why |
//! | `fortify_fallbacks_total` | counter | `name` | failures answered by a fallback |
//! | `fortify_reconfigurations_total` | counter | `name` (the stack's), `result` (`applied`, `refused`) | [`Stack::reconfigure`](crate::stack::Stack::reconfigure) calls (feature `config`), applied whole or refused whole |
//! | `fortify_rate_limit_redis_up` | gauge | `name` | 1 while a Redis-backed rate limiter's store answers, 0 while its calls are decided without it |
//! | `fortify_rate_limit_redis_transitions_total` | counter | `name`, `to` (`up`, `down`) | changes of the Redis store's reachability |
//!
//! Gauges read from the handles at scrape time (bulkhead in flight and queue depth,
//! budget balance, each backend's state and load, the share of backends out of
//! rotation) come from [`Gauges`]; its docs have their table, and
//! [`Stack::gauges`](crate::stack::Stack::gauges) gives one for a whole stack.
//!
//! **Label bounds.** `name` takes the values you give your instances; `backend` the
//! router's backend ids (bounded by its membership); every other label a fixed set
//! listed above. A keyed breaker's or bulkhead's key is part of its `name` only when
//! it has a `key_label`
//! ([breaker](crate::circuit_breaker::KeyedCircuitBreakerBuilder::key_label),
//! [bulkhead](crate::bulkhead::KeyedBulkheadBuilder::key_label)), and then the series
//! are bounded by the map's `max_keys` (an evicted key's series keep their last value).
//!
//! **Cost.** Nothing unless a `MetricsListener` is installed: events are only built
//! for a layer with a listener. With one installed, the per-request series (requests,
//! attempts) use handles registered on the instance's first event, so each request
//! costs the event, a call through the listener and two handle updates; a router's
//! per-attempt series add, per attempt, an event, a lock-free scan of the listener's
//! per-backend handles (by the address of the backend's id) and two handle updates
//! (this per-call event goes only to listeners whose [`Listener::per_call`] is true).
//! With a recorder, that work is about 400 instructions per request on the one-call
//! stack over three backends (`cargo bench -p tower-fortify-benches --bench icount --
//! metrics`). A `MetricsListener` given to a layer by hand does that work with no
//! recorder installed too (its handles then do nothing). [`StackBuilder::metrics`](crate::stack::StackBuilder::metrics)
//! does not: when the stack is built with no recorder installed (see
//! [`recorder_installed`]), it leaves its listeners out and logs a warning, so the
//! stack costs what one without `.metrics()` does. Every
//! other series is written on a state change, a queued call or a rejection; gauges
//! only when sampled.
//!
//! **OpenTelemetry.** There is no OpenTelemetry example: the OpenTelemetry crates
//! (`opentelemetry`, its SDK, a bridge from the `metrics` facade) are outside this
//! project's dependency list. Because the layers only talk to the facade, an
//! OpenTelemetry meter provider is a recorder swap: install a `metrics` recorder that
//! forwards to it (such as the `metrics-exporter-opentelemetry` crate) where this
//! module's examples install the Prometheus one; the series and labels stay the same.

use std::sync::{Arc, OnceLock, PoisonError, RwLock};

#[allow(unused_imports)] // With no layer feature on, some go unused.
use metrics::{Counter, Histogram, counter, gauge, histogram};

use super::{Event, Listener};

/// Records the layers' events as metrics; see the [module docs](self) for the
/// series.
///
/// ```
/// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
/// use tower_fortify::observe::MetricsListener;
///
/// let breaker = CircuitBreakerLayer::builder()
///     .name("payments")
///     .listener(MetricsListener::new())
///     .build()
///     .unwrap();
/// # let _ = breaker;
/// ```
#[derive(Debug, Default, Clone)]
pub struct MetricsListener {
    hot: Arc<OnceLock<Hot>>,
    /// Per-backend series: registered on a backend's first attempt, then found
    /// without a lock by a scan that compares the backend id's address (the router's
    /// id is one shared string per backend, and each entry keeps it alive, so an
    /// address names one backend of one router), so no hashing and no string
    /// comparison per call. Past [`FAST_BACKENDS`] backends, the rest are found under
    /// a read lock.
    #[allow(dead_code)] // Used by the router's series only.
    backends: Arc<BackendTable>,
}

/// How many backends' series are found without a lock.
#[allow(dead_code)] // Used by the router's series only.
const FAST_BACKENDS: usize = 64;

#[derive(Debug)]
#[allow(dead_code)] // Used by the router's series only.
struct BackendTable {
    /// Filled in order, never emptied: a scan stops at the first empty slot.
    fast: [OnceLock<BackendEntry>; FAST_BACKENDS],
    /// Serialises the registrations; the backends past the fast slots.
    more: RwLock<Vec<BackendEntry>>,
}

impl Default for BackendTable {
    fn default() -> Self {
        Self {
            fast: std::array::from_fn(|_| OnceLock::new()),
            more: RwLock::new(Vec::new()),
        }
    }
}

/// One backend's series, with the instance name and id they were registered for
/// (kept alive, so their addresses are never reused while the entry lives).
#[derive(Debug)]
#[allow(dead_code)] // Used by the router's series only.
struct BackendEntry {
    name: Arc<str>,
    backend: Arc<str>,
    series: BackendSeries,
}

/// The series a router writes per attempt, for one backend.
#[derive(Debug)]
#[allow(dead_code)] // Used by the router's series only.
struct BackendSeries {
    ok: Counter,
    failed: Counter,
    latency: Histogram,
}

/// The per-request series of the first instance that reports to this listener.
#[derive(Debug)]
#[allow(dead_code)] // Read by the retry layer's series only.
struct Hot {
    name: Arc<str>,
    ok: Counter,
    failed: Counter,
    attempts: Histogram,
}

impl MetricsListener {
    /// A listener that records to the global `metrics` recorder.
    pub fn new() -> Self {
        Self::default()
    }

    #[allow(dead_code)] // Used by the retry layer's series only.
    fn hot(&self, name: &str) -> Option<&Hot> {
        let hot = self.hot.get_or_init(|| Hot {
            name: Arc::from(name),
            ok: counter!("fortify_requests_total", "name" => name.to_string(), "outcome" => "success"),
            failed: counter!("fortify_requests_total", "name" => name.to_string(), "outcome" => "failure"),
            attempts: histogram!("fortify_attempts_per_request", "name" => name.to_string()),
        });
        (*hot.name == *name).then_some(hot)
    }
}

impl MetricsListener {
    /// Records one attempt on `backend` (per call: handles registered once).
    #[allow(dead_code)] // Used by the router's series only.
    fn attempt(
        &self,
        name: &str,
        backend: &Arc<str>,
        success: bool,
        latency: Option<std::time::Duration>,
    ) {
        let write = |series: &BackendSeries| {
            if success {
                series.ok.increment(1);
            } else {
                series.failed.increment(1);
            }
            if let Some(latency) = latency {
                series.latency.record(latency.as_secs_f64());
            }
        };
        let table = &*self.backends;
        let matches = |e: &BackendEntry| std::ptr::eq(e.backend.as_ptr(), backend.as_ptr());
        for slot in &table.fast {
            match slot.get() {
                Some(e) if matches(e) => return write(&e.series),
                Some(_) => {}
                None => break,
            }
        }
        self.attempt_slow(name, backend, write);
    }

    /// A backend past the fast slots, or its first attempt: registers its series.
    #[cold]
    #[inline(never)]
    #[allow(dead_code)] // Used by the router's series only.
    fn attempt_slow(&self, name: &str, backend: &Arc<str>, write: impl Fn(&BackendSeries)) {
        let table = &*self.backends;
        let matches = |e: &BackendEntry| std::ptr::eq(e.backend.as_ptr(), backend.as_ptr());
        {
            let more = table.more.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = more.iter().find(|e| matches(e)) {
                return write(&e.series);
            }
        }
        // Registrations take the write lock, so two never race for a slot.
        let mut more = table.more.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = table
            .fast
            .iter()
            .filter_map(OnceLock::get)
            .find(|e| matches(e))
        {
            return write(&e.series);
        }
        if let Some(e) = more.iter().find(|e| matches(e)) {
            return write(&e.series);
        }
        let counter = |outcome: &'static str| counter!("fortify_backend_attempts_total", "name" => label(name), "backend" => backend.to_string(), "outcome" => outcome);
        let entry = BackendEntry {
            name: Arc::from(name),
            backend: backend.clone(),
            series: BackendSeries {
                ok: counter("success"),
                failed: counter("failure"),
                latency: histogram!("fortify_attempt_duration_seconds", "name" => label(name), "backend" => backend.to_string()),
            },
        };
        match table.fast.iter().find(|slot| slot.get().is_none()) {
            Some(slot) => write(&slot.get_or_init(|| entry).series),
            None => {
                more.push(entry);
                if let Some(e) = more.last() {
                    write(&e.series);
                }
            }
        }
    }
}

/// Whether a `metrics` recorder is installed for this thread: a local one
/// ([`metrics::with_local_recorder`]) or the global one.
///
/// The facade answers with its no-op recorder when neither is, and that recorder is
/// the one recorder without state (a zero-sized type), which is how it is told
/// apart: a recorder of your own that is zero-sized is taken for it.
pub fn recorder_installed() -> bool {
    metrics::with_recorder(|recorder| std::mem::size_of_val(recorder) != 0)
}

#[allow(dead_code)] // With no layer feature on, unused.
fn label(name: &str) -> String {
    name.to_string()
}

impl Listener for MetricsListener {
    fn on_event(&self, event: &Event) {
        self.on_named_event("", event);
    }

    // With some layer features off, some arms are not compiled.
    #[allow(unused_variables, unreachable_patterns)]
    fn on_named_event(&self, name: &str, event: &Event) {
        match event {
            #[cfg(feature = "retry")]
            Event::Retry(e) => {
                use super::{DelayCause, RetryEvent};
                match e {
                    RetryEvent::Finished { attempts, success } => match self.hot(name) {
                        Some(hot) => {
                            if *success {
                                hot.ok.increment(1)
                            } else {
                                hot.failed.increment(1)
                            }
                            hot.attempts.record(f64::from(*attempts));
                        }
                        None => {
                            let outcome = if *success { "success" } else { "failure" };
                            counter!("fortify_requests_total", "name" => label(name), "outcome" => outcome)
                                .increment(1);
                            histogram!("fortify_attempts_per_request", "name" => label(name))
                                .record(f64::from(*attempts));
                        }
                    },
                    RetryEvent::RetryScheduled { cause, .. } => {
                        let cause = match cause {
                            DelayCause::Backoff => "backoff",
                            DelayCause::ServerHint => "server_hint",
                        };
                        counter!("fortify_retries_total", "name" => label(name), "cause" => cause)
                            .increment(1);
                    }
                    RetryEvent::RetrySkipped { reason, .. } => {
                        counter!("fortify_retries_skipped_total", "name" => label(name), "reason" => reason.as_str())
                            .increment(1);
                    }
                    _ => {}
                }
            }
            #[cfg(feature = "circuit-breaker")]
            Event::CircuitBreaker(e) => {
                use super::{CircuitBreakerEvent, CircuitState};
                match e {
                    CircuitBreakerEvent::Rejected { .. } => {
                        counter!("fortify_rejections_total", "name" => label(name), "layer" => "breaker", "reason" => "circuit_open")
                            .increment(1);
                    }
                    CircuitBreakerEvent::Opened { reason, .. } => {
                        counter!("fortify_breaker_opened_total", "name" => label(name), "reason" => reason.as_str())
                            .increment(1);
                    }
                    CircuitBreakerEvent::StateChanged { to, .. } => {
                        let value = match to {
                            CircuitState::Closed => 0.0,
                            CircuitState::HalfOpen => 1.0,
                            CircuitState::Open => 2.0,
                        };
                        gauge!("fortify_breaker_state", "name" => label(name)).set(value);
                        counter!("fortify_breaker_transitions_total", "name" => label(name), "to" => to.as_str())
                            .increment(1);
                    }
                    _ => {}
                }
            }
            #[cfg(feature = "bulkhead")]
            Event::Bulkhead(e) => {
                use super::BulkheadEvent;
                match e {
                    BulkheadEvent::Rejected { .. } => {
                        counter!("fortify_rejections_total", "name" => label(name), "layer" => "bulkhead", "reason" => "bulkhead_full")
                            .increment(1);
                    }
                    BulkheadEvent::QueueTimeout { .. } => {
                        counter!("fortify_rejections_total", "name" => label(name), "layer" => "bulkhead", "reason" => "queue_timeout")
                            .increment(1);
                    }
                    BulkheadEvent::Queued { .. } => {
                        counter!("fortify_bulkhead_queued_total", "name" => label(name))
                            .increment(1);
                    }
                    BulkheadEvent::Dequeued { waited } => {
                        histogram!("fortify_bulkhead_queue_wait_seconds", "name" => label(name))
                            .record(waited.as_secs_f64());
                    }
                    BulkheadEvent::LimitChanged { to, .. } => {
                        gauge!("fortify_bulkhead_limit", "name" => label(name)).set(*to as f64);
                    }
                    _ => {}
                }
            }
            #[cfg(feature = "failover")]
            Event::Failover(e) => {
                use super::FailoverEvent;
                match e {
                    FailoverEvent::NoHealthyBackend => {
                        counter!("fortify_rejections_total", "name" => label(name), "layer" => "router", "reason" => "no_healthy_backend")
                            .increment(1);
                    }
                    FailoverEvent::Ejected {
                        backend, reason, ..
                    } => {
                        counter!("fortify_backend_ejections_total", "name" => label(name), "backend" => backend.to_string(), "reason" => reason.as_str())
                            .increment(1);
                        gauge!("fortify_backend_ejected", "name" => label(name), "backend" => backend.to_string())
                            .set(1.0);
                    }
                    FailoverEvent::Restored { backend } => {
                        gauge!("fortify_backend_ejected", "name" => label(name), "backend" => backend.to_string())
                            .set(0.0);
                    }
                    FailoverEvent::Attempt {
                        backend,
                        success,
                        latency,
                    } => self.attempt(name, backend, *success, *latency),
                    FailoverEvent::HealthCheck { backend, healthy } => {
                        gauge!("fortify_backend_healthy", "name" => label(name), "backend" => backend.to_string())
                            .set(if *healthy { 1.0 } else { 0.0 });
                    }
                    _ => {}
                }
            }
            #[cfg(feature = "chaos")]
            Event::Chaos(super::ChaosEvent::Injected { fault, .. }) => {
                counter!("fortify_chaos_injections_total", "name" => label(name), "fault" => *fault)
                    .increment(1);
            }
            #[cfg(feature = "hedge")]
            Event::Hedge(e) => {
                use super::HedgeEvent;
                match e {
                    HedgeEvent::HedgeSent { .. } => {
                        counter!("fortify_hedges_total", "name" => label(name)).increment(1);
                    }
                    HedgeEvent::HedgeSkipped { reason, .. } => {
                        counter!("fortify_hedges_skipped_total", "name" => label(name), "reason" => reason.as_str())
                            .increment(1);
                    }
                    _ => {}
                }
            }
            #[cfg(feature = "rate-limit")]
            Event::RateLimit(super::RateLimitEvent::Rejected { .. }) => {
                counter!("fortify_rejections_total", "name" => label(name), "layer" => "rate_limit", "reason" => "rate_limited")
                    .increment(1);
            }
            #[cfg(feature = "fallback")]
            Event::Fallback(_) => {
                counter!("fortify_fallbacks_total", "name" => label(name)).increment(1);
            }
            #[cfg(feature = "stack")]
            Event::Stack(e) => {
                use super::StackEvent;
                let result = match e {
                    StackEvent::Reconfigured { .. } => "applied",
                    StackEvent::ReconfigureRefused { .. } => "refused",
                    #[allow(unreachable_patterns)]
                    _ => return,
                };
                counter!("fortify_reconfigurations_total", "name" => label(name), "result" => result)
                    .increment(1);
            }
            _ => {}
        }
    }

    /// Per-call events: a router's attempts, for traffic share and latency.
    fn per_call(&self) -> bool {
        true
    }
}

/// Every metric this module writes, for dashboards and alert rules to check against.
pub const METRIC_NAMES: &[&str] = &[
    "fortify_requests_total",
    "fortify_attempts_per_request",
    "fortify_retries_total",
    "fortify_retries_skipped_total",
    "fortify_breaker_state",
    "fortify_breaker_transitions_total",
    "fortify_breaker_opened_total",
    "fortify_rejections_total",
    "fortify_bulkhead_limit",
    "fortify_bulkhead_queued_total",
    "fortify_bulkhead_queue_wait_seconds",
    "fortify_backend_ejections_total",
    "fortify_backend_ejected",
    "fortify_backend_healthy",
    "fortify_backend_attempts_total",
    "fortify_attempt_duration_seconds",
    "fortify_chaos_injections_total",
    "fortify_bulkhead_in_flight",
    "fortify_bulkhead_queue_depth",
    "fortify_budget_remaining",
    "fortify_backend_in_flight",
    "fortify_backend_state",
    "fortify_router_out_of_rotation_ratio",
    "fortify_hedges_total",
    "fortify_hedges_skipped_total",
    "fortify_fallbacks_total",
    "fortify_rate_limit_redis_up",
    "fortify_rate_limit_redis_transitions_total",
];

/// Gauges read from the layers' handles when you ask: calls in flight and queued in a
/// bulkhead, a retry budget's balance, each backend's state and load in a router, a
/// breaker's state. Nothing is written on the request path: call
/// [`sample`](Self::sample) just before each scrape (in the `/metrics` handler), or
/// spawn [`run`](Self::run) to sample on a period.
///
/// | metric | type | labels | meaning |
/// |---|---|---|---|
/// | `fortify_bulkhead_in_flight` | gauge | `name` | calls holding a permit |
/// | `fortify_bulkhead_queue_depth` | gauge | `name` | callers waiting in the queue |
/// | `fortify_bulkhead_limit` | gauge | `name` | the limit in force |
/// | `fortify_budget_remaining` | gauge | `name` | retries the budget would allow now |
/// | `fortify_backend_in_flight` | gauge | `name`, `backend` | calls in flight on the backend |
/// | `fortify_backend_state` | gauge | `name`, `backend` | 0 in rotation, 1 held off (server hint or open breaker), 2 ejected, 3 failing health checks, 4 disabled by hand |
/// | `fortify_router_out_of_rotation_ratio` | gauge | `name` | share of the router's backends out of rotation (alert on it) |
/// | `fortify_breaker_state` | gauge | `name` | 0 closed, 1 half-open, 2 open (also set on each transition) |
///
/// [`Stack::gauges`](crate::stack::Stack::gauges) gives one with every part of a
/// one-call stack registered. Install the recorder first: a bulkhead's, a budget's
/// and a breaker's gauges are registered when added, a router's looked up at each
/// sample (its backends can change).
///
/// ```
/// use tower_fortify::bulkhead::BulkheadLayer;
/// use tower_fortify::observe::metrics::Gauges;
///
/// let bulkhead = BulkheadLayer::builder().max_concurrent(64).build().unwrap();
/// let gauges = Gauges::new().bulkhead("api", bulkhead.handle());
/// // In the `/metrics` handler, before rendering:
/// gauges.sample();
/// ```
#[derive(Clone, Default)]
pub struct Gauges {
    samplers: Vec<Arc<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for Gauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauges")
            .field("sources", &self.samplers.len())
            .finish()
    }
}

impl Gauges {
    /// No source yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn with(mut self, sampler: impl Fn() + Send + Sync + 'static) -> Self {
        self.samplers.push(Arc::new(sampler));
        self
    }

    /// Adds a bulkhead's in-flight, queue depth and limit, labelled `name`.
    #[cfg(feature = "bulkhead")]
    pub fn bulkhead(self, name: &str, handle: crate::bulkhead::BulkheadHandle) -> Self {
        let in_flight = gauge!("fortify_bulkhead_in_flight", "name" => label(name));
        let queued = gauge!("fortify_bulkhead_queue_depth", "name" => label(name));
        let limit = gauge!("fortify_bulkhead_limit", "name" => label(name));
        self.with(move || {
            in_flight.set(handle.in_flight() as f64);
            queued.set(handle.queued() as f64);
            limit.set(handle.limit() as f64);
        })
    }

    /// Adds a retry budget's balance, labelled `name`.
    pub fn budget(self, name: &str, budget: crate::budget::Budget) -> Self {
        let remaining = gauge!("fortify_budget_remaining", "name" => label(name));
        self.with(move || remaining.set(budget.remaining()))
    }

    /// Adds a breaker's state, labelled `name`.
    #[cfg(feature = "circuit-breaker")]
    pub fn breaker(self, name: &str, handle: crate::circuit_breaker::CircuitBreakerHandle) -> Self {
        use super::CircuitState;
        let state = gauge!("fortify_breaker_state", "name" => label(name));
        self.with(move || {
            state.set(match handle.state() {
                CircuitState::Closed => 0.0,
                CircuitState::HalfOpen => 1.0,
                CircuitState::Open => 2.0,
            })
        })
    }

    /// Adds a router's backends (state and load per backend, and the share out of
    /// rotation), labelled `name` and `backend`. Backends added later are picked up
    /// at the next sample.
    #[cfg(feature = "failover")]
    pub fn router<S: 'static>(self, name: &str, handle: crate::failover::FailoverHandle<S>) -> Self
    where
        crate::failover::FailoverHandle<S>: Send + Sync,
    {
        use crate::failover::BackendHealth;
        let name: Arc<str> = Arc::from(name);
        let out = gauge!("fortify_router_out_of_rotation_ratio", "name" => label(&name));
        self.with(move || {
            let backends = handle.backends();
            let mut down = 0usize;
            for b in &backends {
                let state = match b.health {
                    BackendHealth::Healthy => 0.0,
                    BackendHealth::HeldOff { .. } => 1.0,
                    BackendHealth::Ejected { .. } => 2.0,
                    BackendHealth::Unhealthy => 3.0,
                    _ => 4.0,
                };
                if state > 0.0 {
                    down += 1;
                }
                let backend = b.id.to_string();
                gauge!("fortify_backend_state", "name" => label(&name), "backend" => backend.clone())
                    .set(state);
                gauge!("fortify_backend_in_flight", "name" => label(&name), "backend" => backend)
                    .set(f64::from(b.in_flight));
            }
            out.set(if backends.is_empty() {
                0.0
            } else {
                down as f64 / backends.len() as f64
            });
        })
    }

    /// Sets every gauge from its source now.
    pub fn sample(&self) {
        for sampler in &self.samplers {
            sampler();
        }
    }

    /// Samples every `every` (the first at once), forever: spawn it
    /// (`tokio::spawn(gauges.run(Duration::from_secs(5)))`) when the exporter pushes
    /// rather than being scraped.
    pub async fn run(self, every: std::time::Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.sample();
        }
    }
}
