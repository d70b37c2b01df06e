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
//! | `fortify_rejections_total` | counter | `name`, `layer` (`breaker`, `bulkhead`, `router`), `reason` (`circuit_open`, `bulkhead_full`, `queue_timeout`, `no_healthy_backend`) | calls refused without being sent |
//! | `fortify_bulkhead_limit` | gauge | `name` | the limit in force (adaptive ones move) |
//! | `fortify_bulkhead_queued_total` | counter | `name` | calls that had to queue |
//! | `fortify_backend_ejections_total` | counter | `name`, `backend`, `reason` | ejections by the router's outlier detection |
//! | `fortify_backend_ejected` | gauge | `name`, `backend` | 1 while the backend is ejected, 0 once it is back in rotation |
//! | `fortify_backend_healthy` | gauge | `name`, `backend` | the active health check's verdict (1 healthy) |
//! | `fortify_hedges_total` | counter | `name` | hedges sent |
//! | `fortify_hedges_skipped_total` | counter | `name`, `reason` (`budget`, `deadline`, `not_replayable`, `not_ready`) | hedges due but not sent, and why |
//! | `fortify_fallbacks_total` | counter | `name` | failures answered by a fallback |
//!
//! **Label bounds.** `name` takes the values you give your instances; `backend` the
//! router's backend ids (bounded by its membership); every other label a fixed set
//! listed above. Keys of keyed breakers and bulkheads are never labels.
//!
//! **Cost.** Nothing unless a `MetricsListener` is installed: events are only built
//! for a layer with a listener. With one installed, the per-request series (requests,
//! attempts) use handles registered on the instance's first event, so each request
//! costs the event, a call through the listener and two handle updates; every other
//! series is written on a state change or a rejection.

use std::sync::{Arc, OnceLock};

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
                    FailoverEvent::HealthCheck { backend, healthy } => {
                        gauge!("fortify_backend_healthy", "name" => label(name), "backend" => backend.to_string())
                            .set(if *healthy { 1.0 } else { 0.0 });
                    }
                    _ => {}
                }
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
            #[cfg(feature = "fallback")]
            Event::Fallback(_) => {
                counter!("fortify_fallbacks_total", "name" => label(name)).increment(1);
            }
            _ => {}
        }
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
    "fortify_backend_ejections_total",
    "fortify_backend_ejected",
    "fortify_backend_healthy",
    "fortify_hedges_total",
    "fortify_hedges_skipped_total",
    "fortify_fallbacks_total",
];
