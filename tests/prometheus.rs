//! Prometheus end to end, over 127.0.0.1: the one-call HTTP stack with metrics on,
//! a `/metrics` endpoint served by axum from `metrics-exporter-prometheus`, and a
//! backend killed mid-run. The scrape before and after the kill shows the series
//! move. Also: every metric the shipped alert rules and Grafana dashboard name
//! exists, and the label sets stay bounded.
//!
//! One test function: a process has one global recorder.

#![cfg(all(feature = "metrics", feature = "http-client", feature = "axum"))]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};
use tower_fortify::observe::CircuitState;
use tower_fortify::observe::metrics::METRIC_NAMES;
use tower_fortify::stack::Stack;

struct Server {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

async fn serve() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let service =
                hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
            connections.spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server { url, task }
}

/// The value of the series `metric{labels...}` in a Prometheus text scrape.
fn value(scrape: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let rest = line.strip_prefix(metric)?;
        if !rest.starts_with('{') && !rest.starts_with(' ') {
            return None;
        }
        let all = labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        all.then(|| rest.rsplit(' ').next()?.parse().ok()).flatten()
    })
}

async fn scrape(url: &str) -> String {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(
            Request::get(format!("{url}/metrics"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn a_scrape_during_a_kill_shows_the_breaker_open_and_requests_served() {
    let handle = PrometheusBuilder::new().install_recorder().unwrap();

    let (a, b) = (serve().await, serve().await);
    let mut stack = Stack::http([&a.url, &b.url])
        .unwrap()
        .name("payments")
        .metrics()
        .build()
        .unwrap();

    // The app's /metrics endpoint: the stack's gauges are read at each scrape.
    let gauges = stack.gauges();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (handle, gauges) = (handle.clone(), gauges.clone());
            async move {
                gauges.sample();
                handle.render()
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_url = format!("http://{}", listener.local_addr().unwrap());
    let metrics_server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let breaker = stack.breaker(&a.url).unwrap().clone();
    let served = Arc::new(AtomicU32::new(0));
    // Sends up to `n` requests, stopping early once `done` says so.
    let mut send = async |n: u32, done: &dyn Fn() -> bool| {
        for _ in 0..n {
            if done() {
                break;
            }
            let req = Request::get("/pay").body(Full::<Bytes>::default()).unwrap();
            let response = stack.ready().await.unwrap().call(req).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            served.fetch_add(1, Ordering::SeqCst);
        }
    };
    send(40, &|| false).await;
    let before = scrape(&metrics_url).await;
    let breaker_a = format!("payments/{}", a.url);
    assert_eq!(
        value(
            &before,
            "fortify_requests_total",
            &[("name", "payments"), ("outcome", "success")]
        ),
        Some(40.0),
        "{before}"
    );

    a.task.abort(); // killed: listener and connections gone
    // The latency-aware selection steers away from the dead backend after its first
    // failures; it is probed again as its cost decays (about a second), and its
    // breaker opens on the fifth failure in a row. Bounded: a dead backend's breaker
    // opens long before this many requests.
    send(100_000, &|| breaker.state() == CircuitState::Open).await;
    assert_eq!(breaker.state(), CircuitState::Open);
    let sent = served.load(Ordering::SeqCst);
    let after = scrape(&metrics_url).await;
    println!("{after}");
    assert_eq!(
        value(
            &after,
            "fortify_requests_total",
            &[("name", "payments"), ("outcome", "success")]
        ),
        Some(f64::from(sent)),
        "no request lost"
    );
    assert_eq!(
        value(&after, "fortify_breaker_state", &[("name", &breaker_a)]),
        Some(2.0),
        "the killed backend's breaker is open"
    );
    assert!(
        value(
            &after,
            "fortify_breaker_opened_total",
            &[("name", &breaker_a)]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        value(&after, "fortify_retries_total", &[("name", "payments")]).unwrap_or(0.0) >= 1.0,
        "the failed attempts were retried"
    );
    assert!(after.contains("fortify_attempts_per_request"), "{after}");

    // Per backend: traffic share and attempt latency, and the state read at scrape.
    let attempts = |scrape: &str, url: &str, outcome: &str| {
        value(
            scrape,
            "fortify_backend_attempts_total",
            &[("name", "payments"), ("backend", url), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(attempts(&before, &a.url, "failure"), 0.0, "{before}");
    assert!(attempts(&before, &a.url, "success") > 0.0, "{before}");
    assert!(attempts(&after, &a.url, "failure") >= 1.0, "{after}");
    assert!(
        attempts(&after, &b.url, "success") > attempts(&before, &b.url, "success"),
        "traffic moved to the live backend"
    );
    assert!(
        value(
            &after,
            "fortify_attempt_duration_seconds_count",
            &[("name", "payments"), ("backend", &b.url)]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{after}"
    );
    assert_eq!(
        value(&before, "fortify_backend_state", &[("backend", &a.url)]),
        Some(0.0),
        "in rotation before the kill"
    );
    assert_eq!(
        value(&after, "fortify_backend_state", &[("backend", &b.url)]),
        Some(0.0),
        "the live backend stays in rotation"
    );
    let out = value(
        &after,
        "fortify_router_out_of_rotation_ratio",
        &[("name", "payments")],
    );
    assert!(
        matches!(out, Some(r) if (0.0..=0.5).contains(&r)),
        "{out:?}"
    );
    assert_eq!(
        value(
            &after,
            "fortify_bulkhead_in_flight",
            &[("name", "payments")]
        ),
        Some(0.0),
        "nothing in flight between requests"
    );
    assert!(
        value(&after, "fortify_budget_remaining", &[("name", "payments")]).is_some(),
        "{after}"
    );

    // Bounded labels: only the names, backends and fixed reasons of the docs.
    for line in after.lines().filter(|l| l.starts_with("fortify_")) {
        let series = line.split(['{', ' ']).next().unwrap();
        let metric = ["_bucket", "_count", "_sum"]
            .iter()
            .fold(series, |m, suffix| m.strip_suffix(suffix).unwrap_or(m));
        assert!(
            METRIC_NAMES.contains(&metric),
            "`{metric}` is missing from METRIC_NAMES (and the module docs' table)"
        );
        if let Some(name) = line
            .split("name=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        {
            assert!(
                name == "payments"
                    || name == format!("payments/{}", a.url)
                    || name == format!("payments/{}", b.url),
                "unexpected name label in {line}"
            );
        }
    }

    // The shipped alert rules and dashboard name only metrics that exist.
    for file in [
        "examples/monitoring/alerts.yml",
        "examples/monitoring/grafana-dashboard.json",
    ] {
        let text = std::fs::read_to_string(file).unwrap();
        let mut named = 0;
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if let Some(base) = word.strip_prefix("fortify_") {
                let metric = format!("fortify_{base}");
                let metric = metric.trim_end_matches("_bucket");
                assert!(
                    METRIC_NAMES.contains(&metric),
                    "{file} names `{metric}`, which no layer writes"
                );
                named += 1;
            }
        }
        assert!(named >= 5, "{file} names {named} metrics");
    }
    b.task.abort();
    metrics_server.abort();
}
