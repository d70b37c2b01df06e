//! The series behind the metrics table (feature `metrics`): per-call attempts only
//! for listeners that ask, queue waits, chaos injections, gauges read from the
//! handles at scrape time, names in refusals. Each test renders a local Prometheus
//! recorder (`metrics::with_local_recorder`), so tests do not share a global one.

#![cfg(all(
    feature = "metrics",
    feature = "failover",
    feature = "bulkhead",
    feature = "chaos"
))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::bulkhead::{BulkheadFull, BulkheadLayer};
use tower_fortify::chaos::{ChaosLayer, Fault, Rule};
use tower_fortify::failover::{Backend, Failover, NoHealthyBackend, Selection};
use tower_fortify::observe::metrics::{Gauges, METRIC_NAMES};
use tower_fortify::observe::{
    BulkheadEvent, ChaosEvent, Event, FailoverEvent, Listener, MetricsListener,
};

fn ok() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|x: u32| async move { Ok::<_, BoxError>(x) })
}

fn failing() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|_: u32| async { Err::<u32, BoxError>("refused".into()) })
}

/// Every event a listener got, with the instance's name.
#[derive(Clone, Default)]
struct Log {
    events: Arc<Mutex<Vec<(String, Event)>>>,
    per_call: bool,
}

impl Listener for Log {
    fn on_event(&self, _: &Event) {}
    fn on_named_event(&self, name: &str, event: &Event) {
        self.events
            .lock()
            .unwrap()
            .push((name.to_string(), event.clone()));
    }
    fn per_call(&self) -> bool {
        self.per_call
    }
}

impl Log {
    fn attempts(&self) -> Vec<(String, Arc<str>, bool)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(name, e)| match e {
                Event::Failover(FailoverEvent::Attempt {
                    backend, success, ..
                }) => Some((name.clone(), backend.clone(), *success)),
                _ => None,
            })
            .collect()
    }
}

/// The value of `metric{labels...}` in a Prometheus text rendering.
fn value(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(metric)?;
        if !rest.starts_with('{') && !rest.starts_with(' ') {
            return None;
        }
        labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            .then(|| rest.rsplit(' ').next()?.parse().ok())
            .flatten()
    })
}

fn recorder() -> PrometheusRecorder {
    PrometheusBuilder::new().build_recorder()
}

/// A router's per-call attempt events reach only listeners that ask for them
/// (`Listener::per_call`), with the backend and the outcome; a plain listener gets
/// the state changes only, so per-call work is off unless wanted.
#[tokio::test(start_paused = true)]
async fn attempts_reach_only_per_call_listeners() {
    let (quiet, loud) = (
        Log::default(),
        Log {
            per_call: true,
            ..Log::default()
        },
    );
    let mut router = Failover::builder()
        .backend(Backend::new(
            "a",
            tower::util::BoxCloneSyncService::new(ok()),
        ))
        .backend(Backend::new(
            "b",
            tower::util::BoxCloneSyncService::new(failing()),
        ))
        .selection(Selection::WeightedRoundRobin)
        .name("orders")
        .listener(quiet.clone())
        .listener(loud.clone())
        .build()
        .unwrap();
    for i in 0..4 {
        let _ = router.ready().await.unwrap().call(i).await;
    }
    let attempts = loud.attempts();
    assert_eq!(attempts.len(), 4, "one event per call");
    assert!(attempts.iter().all(|(name, _, _)| name == "orders"));
    let to = |id: &str, success: bool| {
        attempts
            .iter()
            .filter(|(_, b, s)| &**b == id && *s == success)
            .count()
    };
    assert_eq!((to("a", true), to("b", false)), (2, 2), "{attempts:?}");
    assert!(quiet.attempts().is_empty(), "not asked for");
}

/// With a recorder, the attempts become per-backend counters by outcome (the
/// traffic share a dashboard plots) and, where the router measures latency (its
/// default peak-EWMA selection does), a latency histogram.
#[tokio::test(start_paused = true)]
async fn attempts_become_per_backend_series() {
    let recorder = recorder();
    let handle = recorder.handle();
    let router = |selection: Selection, name: &'static str| {
        metrics::with_local_recorder(&recorder, || {
            Failover::builder()
                .backend(Backend::new(
                    "a",
                    tower::util::BoxCloneSyncService::new(ok()),
                ))
                .backend(Backend::new(
                    "b",
                    tower::util::BoxCloneSyncService::new(failing()),
                ))
                .selection(selection)
                .name(name)
                .listener(MetricsListener::new())
                .build()
                .unwrap()
        })
    };
    // Round robin: three calls to each backend.
    let mut rr = router(Selection::WeightedRoundRobin, "orders");
    let mut ewma = router(Selection::peak_ewma(), "timed");
    for i in 0..6 {
        for router in [&mut rr, &mut ewma] {
            router.ready().await.unwrap();
            // The backends answer at once: the call completes (and records) in one poll.
            let done = metrics::with_local_recorder(&recorder, || router.call(i).now_or_never());
            assert!(done.is_some());
        }
    }
    let text = handle.render();
    let count = |name: &str, backend: &str, outcome: &str| {
        value(
            &text,
            "fortify_backend_attempts_total",
            &[("name", name), ("backend", backend), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(count("orders", "a", "success"), 3.0, "{text}");
    assert_eq!(count("orders", "b", "failure"), 3.0, "{text}");
    assert_eq!(
        count("orders", "a", "failure") + count("orders", "b", "success"),
        0.0
    );
    assert!(
        value(
            &text,
            "fortify_attempt_duration_seconds_count",
            &[("name", "timed"), ("backend", "a")]
        )
        .is_some(),
        "the default selection measures latency: {text}"
    );
}

/// A call that queued reports how long it waited when it gets its permit.
#[tokio::test(start_paused = true)]
async fn a_queued_call_reports_its_wait() {
    let log = Log::default();
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent(1)
        .queue(4, Duration::from_secs(5))
        .name("api")
        .listener(log.clone())
        .build()
        .unwrap();
    let slow = service_fn(|x: u32| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<u32, BoxError>(x)
    });
    let mut svc = bulkhead.layer(slow);
    let first = tokio::spawn(svc.ready().await.unwrap().call(0));
    let second = tokio::spawn(svc.ready().await.unwrap().call(1));
    assert_eq!(first.await.unwrap().unwrap(), 0);
    assert_eq!(second.await.unwrap().unwrap(), 1);
    let waits: Vec<Duration> = log
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Bulkhead(BulkheadEvent::Dequeued { waited }) => Some(*waited),
            _ => None,
        })
        .collect();
    assert_eq!(waits, vec![Duration::from_millis(300)]);
}

/// Each injected fault is an event carrying the layer's name and a counter by fault.
#[tokio::test(start_paused = true)]
async fn chaos_injections_are_events_and_counted() {
    let recorder = recorder();
    let log = Log::default();
    let chaos = metrics::with_local_recorder(&recorder, || {
        ChaosLayer::<u32, u32, BoxError>::builder()
            .rule(Rule::new(Fault::error(|| "injected".into())).probability(1.0))
            .name("drill")
            .listener(log.clone())
            .listener(MetricsListener::new())
            .build()
            .unwrap()
    });
    let mut svc = chaos.layer(ok());
    for i in 0..3 {
        let done = metrics::with_local_recorder(&recorder, || svc.call(i).now_or_never());
        assert!(done.unwrap().is_err());
    }
    let events = log.events.lock().unwrap().clone();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|(name, e)| name == "drill"
        && *e
            == Event::Chaos(ChaosEvent::Injected {
                fault: "error",
                delay: None
            })));
    let text = recorder.handle().render();
    assert_eq!(
        value(
            &text,
            "fortify_chaos_injections_total",
            &[("name", "drill"), ("fault", "error")]
        ),
        Some(3.0),
        "{text}"
    );
}

/// Gauges are read from the handles when sampled: in flight and queue depth of a
/// bulkhead, a budget's balance, each backend's state, the share out of rotation.
#[tokio::test(start_paused = true)]
async fn gauges_read_the_handles_when_sampled() {
    let recorder = recorder();
    let bulkhead = BulkheadLayer::builder().max_concurrent(4).build().unwrap();
    let budget = tower_fortify::budget::Budget::default_ratio();
    let router = Failover::builder()
        .backend(Backend::new(
            "a",
            tower::util::BoxCloneSyncService::new(ok()),
        ))
        .backend(Backend::new(
            "b",
            tower::util::BoxCloneSyncService::new(ok()),
        ))
        .build()
        .unwrap();
    let gauges = metrics::with_local_recorder(&recorder, || {
        Gauges::new()
            .bulkhead("api", bulkhead.handle())
            .budget("api", budget.clone())
            .router("api", router.handle())
    });
    let held = bulkhead.handle().try_acquire().unwrap();
    router.handle().eject("a");
    metrics::with_local_recorder(&recorder, || gauges.sample());
    let text = recorder.handle().render();
    let get = |metric: &str, labels: &[(&str, &str)]| value(&text, metric, labels);
    assert_eq!(
        get("fortify_bulkhead_in_flight", &[("name", "api")]),
        Some(1.0)
    );
    assert_eq!(
        get("fortify_bulkhead_queue_depth", &[("name", "api")]),
        Some(0.0)
    );
    assert_eq!(get("fortify_bulkhead_limit", &[("name", "api")]), Some(4.0));
    assert_eq!(
        get("fortify_budget_remaining", &[("name", "api")]),
        Some(budget.remaining())
    );
    assert_eq!(get("fortify_backend_state", &[("backend", "a")]), Some(4.0));
    assert_eq!(get("fortify_backend_state", &[("backend", "b")]), Some(0.0));
    assert_eq!(
        get("fortify_router_out_of_rotation_ratio", &[("name", "api")]),
        Some(0.5)
    );
    // The next sample sees the permit returned and the backend restored.
    drop(held);
    router.handle().restore("a");
    metrics::with_local_recorder(&recorder, || gauges.sample());
    let text = recorder.handle().render();
    assert_eq!(
        value(&text, "fortify_bulkhead_in_flight", &[("name", "api")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            "fortify_router_out_of_rotation_ratio",
            &[("name", "api")]
        ),
        Some(0.0)
    );
    for line in text.lines().filter(|l| l.starts_with("fortify_")) {
        let metric = line.split(['{', ' ']).next().unwrap();
        assert!(
            METRIC_NAMES.contains(&metric),
            "{metric} is not in the table"
        );
    }
}

/// A refusal's error names the instance that refused, first in its message.
#[tokio::test(start_paused = true)]
async fn refusals_carry_the_instance_name() {
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent(1)
        .name("api")
        .build()
        .unwrap();
    let mut svc = bulkhead.layer(service_fn(|_: u32| {
        std::future::pending::<Result<u32, BoxError>>()
    }));
    let _held = svc.ready().await.unwrap().call(0);
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    let full = err.downcast_ref::<BulkheadFull>().unwrap();
    assert_eq!(full.name(), Some("api"));
    assert!(err.to_string().starts_with("api: bulkhead full"), "{err}");

    let unnamed = BulkheadLayer::builder().max_concurrent(1).build().unwrap();
    let err = unnamed.handle().try_acquire().and_then(|p| {
        let again = unnamed.handle().try_acquire();
        drop(p);
        again
    });
    let err = err.unwrap_err();
    assert_eq!(err.name(), None);
    assert!(err.to_string().starts_with("bulkhead full"), "{err}");

    let router = Failover::builder()
        .backend(Backend::new(
            "a",
            tower::util::BoxCloneSyncService::new(ok()),
        ))
        .name("orders")
        .build()
        .unwrap();
    router.handle().eject("a");
    let mut router = router;
    let err = router.ready().await.unwrap().call(0).await.unwrap_err();
    let none = err.downcast_ref::<NoHealthyBackend>().unwrap();
    assert_eq!(none.name(), Some("orders"));
    assert!(
        err.to_string().starts_with("orders: no healthy backend"),
        "{err}"
    );
}
