//! HTTP end to end over 127.0.0.1: a hyper server, and a hyper-util client called
//! bare or through the one-call HTTP stack (`Stack::http`, its defaults). Reports the
//! throughput of each, the ratio stack / bare, and the latency quantiles with what
//! the stack adds at p50 and p99.
//!
//! Closed loop: `TASKS` tasks each send `PER_TASK` GET requests one after another
//! (`ready().await`, `call(..).await`, then the response body read to its end) on
//! a client runtime with 1 worker thread; the server has its own runtime and worker
//! thread. Bare and stack runs alternate, `RUNS` of each; the throughput is the
//! median run's, the quantiles are over every request of every run. On a busy host
//! the figures move from run to run: the instruction counts (`icount`) are the stable
//! measure of the layers, this bench shows what they cost beside a real socket.
//!
//! Run: `cargo bench -p tower-fortify-benches --bench http_e2e`.

// Benchmarks measure wall time: the ban on std::time::Instant is for library code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::{Service, ServiceExt};
use tower_fortify::stack::Stack;

const TASKS: usize = 16;
const PER_TASK: usize = 1_500;
const RUNS: usize = 5;

/// `HTTP_E2E_PROFILE=bare|stack`: one run of that side only, for a profiler.
fn profile_only() -> Option<String> {
    std::env::var("HTTP_E2E_PROFILE").ok()
}

/// Starts the server on its own thread and runtime; returns its URL.
fn server() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap()))
                .unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let service =
                    hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

/// One closed-loop run through clones of `svc`: (requests per second, latencies in ns).
async fn run<S, B>(svc: S, url: &str) -> (f64, Vec<u64>)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug + Send,
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    let uri: http::Uri = format!("{url}/item").parse().unwrap();
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let mut svc = svc.clone();
        let uri = uri.clone();
        set.spawn(async move {
            let mut latencies = Vec::with_capacity(PER_TASK);
            for _ in 0..PER_TASK {
                let req = Request::get(uri.clone()).body(Full::default()).unwrap();
                let t = Instant::now();
                let response = svc.ready().await.unwrap().call(req).await.unwrap();
                assert!(response.status().is_success());
                response.into_body().collect().await.unwrap();
                latencies.push(t.elapsed().as_nanos() as u64);
            }
            latencies
        });
    }
    let mut all = Vec::with_capacity(TASKS * PER_TASK);
    while let Some(l) = set.join_next().await {
        all.extend(l.unwrap());
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    (rate, all)
}

fn quantile(sorted: &[u64], q: f64) -> Duration {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Duration::from_nanos(sorted[i])
}

fn main() {
    if std::env::args().skip(1).any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing to list for this runner.
    }
    let url = server();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bare: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let stack = Stack::http([url.as_str()]).unwrap().build().unwrap();
        if let Some(side) = profile_only() {
            run(bare.clone(), &url).await;
            run(stack.clone(), &url).await;
            if side == "stack" {
                run(stack.clone(), &url).await;
            } else {
                run(bare.clone(), &url).await;
            }
            return;
        }
        // Warm up: connections open, pools filled.
        run(bare.clone(), &url).await;
        run(stack.clone(), &url).await;
        let (mut bare_rates, mut stack_rates) = (Vec::new(), Vec::new());
        let (mut bare_lat, mut stack_lat) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let (r, l) = run(bare.clone(), &url).await;
            bare_rates.push(r);
            bare_lat.extend(l);
            let (r, l) = run(stack.clone(), &url).await;
            stack_rates.push(r);
            stack_lat.extend(l);
        }
        bare_rates.sort_by(f64::total_cmp);
        stack_rates.sort_by(f64::total_cmp);
        bare_lat.sort_unstable();
        stack_lat.sort_unstable();
        let (b, s) = (bare_rates[RUNS / 2], stack_rates[RUNS / 2]);
        println!(
            "http end to end, 127.0.0.1, {TASKS} tasks x {PER_TASK} requests, median of {RUNS} runs"
        );
        for (name, rate, lat) in [("bare", b, &bare_lat), ("Stack::http", s, &stack_lat)] {
            println!(
                "  {name:<12} {rate:>9.0} requests/s   p50 {:>9.1?}   p99 {:>9.1?}   p99.9 {:>9.1?}",
                quantile(lat, 0.5),
                quantile(lat, 0.99),
                quantile(lat, 0.999),
            );
        }
        let added = |q| quantile(&stack_lat, q).as_secs_f64() - quantile(&bare_lat, q).as_secs_f64();
        println!(
            "  throughput ratio {:.3}   added at p50 {:+.1} us   added at p99 {:+.1} us",
            s / b,
            added(0.5) * 1e6,
            added(0.99) * 1e6
        );
    });
}
