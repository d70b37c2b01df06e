//! Prometheus metrics for the one-call stack: an axum app serves `/metrics` from
//! `metrics-exporter-prometheus` while its client stack (`Stack::http` with
//! `.metrics()`) calls two local backends, one of which is killed halfway. The demo
//! prints the scrape taken after the kill and exits.
//!
//! `cargo run --example prometheus --features metrics,http-client,axum`
//!
//! Alert rules and a Grafana dashboard for these series: `examples/monitoring/`.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};
use tower_fortify::stack::Stack;

/// A backend on 127.0.0.1 answering every request with 200; abort the task to kill it.
async fn backend() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        // Connections live in the task: aborting it closes them all, like a kill.
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let service =
                hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
            connections.spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (url, task)
}

#[tokio::main]
async fn main() -> Result<(), tower_fortify::BoxError> {
    // 1. The exporter, installed before any layer is built.
    let prometheus = PrometheusBuilder::new().install_recorder()?;

    // 2. The client stack, with metrics on.
    let ((a, a_task), (b, b_task)) = (backend().await, backend().await);
    let mut stack = Stack::http([&a, &b])?.name("payments").metrics().build()?;

    // 3. The app's `/metrics` endpoint: the stack's gauges (bulkhead, budget, backend
    //    states, breakers) are read from its handles at each scrape.
    let (handle, gauges) = (prometheus.clone(), stack.gauges());
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
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let metrics_addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    for i in 0..400 {
        if i == 100 {
            a_task.abort();
            println!("killed {a}");
        }
        let req = Request::get("/pay").body(Full::<Bytes>::default())?;
        stack.ready().await?.call(req).await?;
    }

    // 4. What Prometheus would scrape now.
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let response = client
        .request(Request::get(format!("http://{metrics_addr}/metrics")).body(Full::default())?)
        .await?;
    let scrape = response.into_body().collect().await?.to_bytes();
    println!("GET /metrics:\n{}", String::from_utf8_lossy(&scrape));
    b_task.abort();
    server.abort();
    Ok(())
}
