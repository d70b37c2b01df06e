//! HTTP integration: per-request cost of the classifier + replay body + retry (+
//! breaker, + bulkhead and breaker held to the end of the response body) stack over
//! an in-memory HTTP service, against the bare service and tower's `Retry`
//! (tower-resilience's retry needs `Clone` requests, which `http::Request` is not, so
//! it cannot wrap an HTTP client); the replay body's cost per streamed byte against
//! the raw body; and contention with 64 tasks on 1 and 2 workers.
//!
//! Run: `cargo bench -p tower-fortify-benches --bench http`.

// Benchmarks measure wall time: the ban on std::time::Instant is for library code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::future::{Future, Ready};
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Bencher, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use tokio::runtime::Runtime;
use tower::retry::{Policy, Retry as TowerRetry};
use tower::{Service, ServiceExt};
use tower_fortify::bulkhead::BulkheadLayer;
use tower_fortify::circuit_breaker::CircuitBreakerLayer;
use tower_fortify::http::HttpReplay;
use tower_fortify::http::{HoldToEosLayer, HttpClassifier, ReplayBody, ReplayBodyLayer};
use tower_fortify::retry::RetryLayer;
use tower_layer::Layer;

const PAYLOAD: &[u8] = b"{\"id\":42,\"name\":\"a small json request body, about 64 bytes\"}";

/// An in-memory HTTP backend: reads the request body to its end, answers 200.
#[derive(Clone, Copy, Debug, Default)]
struct Backend;

impl<B: Body + Unpin> Service<Request<B>> for Backend {
    type Response = Response<Full<Bytes>>;
    type Error = std::io::Error;
    type Future = Drain<B>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Drain<B> {
        Drain {
            body: req.into_body(),
        }
    }
}

/// Polls a body to its end (without allocating), then answers.
struct Drain<B> {
    body: B,
}

impl<B: Body + Unpin> Future for Drain<B> {
    type Output = Result<Response<Full<Bytes>>, std::io::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    black_box(&f);
                }
                Poll::Ready(Some(Err(_))) => {
                    return Poll::Ready(Err(std::io::Error::other("body")));
                }
                Poll::Ready(None) => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    }
}

/// A request built without allocating, so the figures are the layers' cost.
fn request() -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from_static(PAYLOAD)));
    *req.method_mut() = http::Method::PUT;
    *req.uri_mut() = http::Uri::from_static("http://backend/items/42");
    req
}

/// Times `iters` requests on `rt`, each `ready().await` then `call(..).await` as users
/// call, and with `read` the response body read to its end (what releases a permit
/// held to the end of the stream).
fn timed<S, B>(b: &mut Bencher<'_>, rt: &Runtime, svc: &mut S, read: bool)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body + Unpin,
{
    b.iter_custom(|iters| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                let response = svc.ready().await.unwrap().call(black_box(request())).await;
                let response = response.unwrap();
                if read {
                    let mut body = response.into_body();
                    while let Some(frame) = body.frame().await {
                        black_box(frame.is_ok());
                    }
                } else {
                    black_box(&response);
                }
            }
            start.elapsed()
        })
    });
}

fn breaker() -> CircuitBreakerLayer<HttpClassifier> {
    CircuitBreakerLayer::builder()
        .classifier(HttpClassifier::new())
        .build()
        .unwrap()
}

/// tower's retry over HTTP: a policy that copies the request by hand (what users
/// write today for `Clone` bodies) and retries 5xx.
#[derive(Clone)]
struct TowerHttpPolicy(u32);

impl<B: Clone, Res, E> Policy<Request<B>, Response<Res>, E> for TowerHttpPolicy {
    type Future = Ready<()>;
    fn retry(
        &mut self,
        _: &mut Request<B>,
        result: &mut Result<Response<Res>, E>,
    ) -> Option<Self::Future> {
        let failed = match result {
            Ok(r) => r.status().is_server_error(),
            Err(_) => true,
        };
        (failed && self.0 > 1).then(|| {
            self.0 -= 1;
            std::future::ready(())
        })
    }
    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        let mut copy = Request::new(req.body().clone());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.headers_mut() = req.headers().clone();
        Some(copy)
    }
}

fn fortify_retry() -> RetryLayer<HttpClassifier, HttpReplay> {
    RetryLayer::builder()
        .max_attempts(3)
        .classifier(HttpClassifier::new())
        .replay(HttpReplay)
        .build()
        .unwrap()
}

fn per_request(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("http_per_request");
    g.throughput(Throughput::Elements(1));

    let mut bare = Backend;
    g.bench_function("bare", |b| timed(b, &rt, &mut bare, false));

    let mut tower_retry = TowerRetry::new(TowerHttpPolicy(3), Backend);
    g.bench_function("tower_retry_manual_clone", |b| {
        timed(b, &rt, &mut tower_retry, false)
    });

    let mut fortify_clone = fortify_retry().layer(Backend);
    g.bench_function("fortify_classifier_retry_clone_body", |b| {
        timed(b, &rt, &mut fortify_clone, false)
    });

    let mut fortify_replay = ReplayBodyLayer::new(64 * 1024).layer(fortify_retry().layer(Backend));
    g.bench_function("fortify_classifier_retry_replay_body", |b| {
        timed(b, &rt, &mut fortify_replay, false)
    });

    // From here on the response body is read to its end as well.
    let mut bare = Backend;
    g.bench_function("bare_read_body", |b| timed(b, &rt, &mut bare, true));

    let mut with_breaker =
        ReplayBodyLayer::new(64 * 1024).layer(fortify_retry().layer(breaker().layer(Backend)));
    g.bench_function("fortify_replay_retry_breaker_read_body", |b| {
        timed(b, &rt, &mut with_breaker, true)
    });

    let hold = HoldToEosLayer::new(HttpClassifier::new());
    let bulkhead = BulkheadLayer::new(1024).unwrap();
    let mut held = ReplayBodyLayer::new(64 * 1024).layer(
        fortify_retry().layer(hold.layer(breaker().layer(hold.layer(bulkhead.layer(Backend))))),
    );
    g.bench_function(
        "fortify_replay_retry_held_breaker_bulkhead_read_body",
        |b| timed(b, &rt, &mut held, true),
    );
    g.finish();
}

/// A streamed body: `count` chunks of `chunk` (a static buffer: cloning is free), like
/// a large upload arriving from the network.
#[derive(Clone)]
struct Chunks {
    chunk: Bytes,
    count: usize,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.count == 0 {
            return Poll::Ready(None);
        }
        self.count -= 1;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }
}

static CHUNK: [u8; 4096] = [7; 4096];

fn chunks() -> Chunks {
    Chunks {
        chunk: Bytes::from_static(&CHUNK),
        count: 16,
    }
}

fn drain<B: Body + Unpin>(mut body: B) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    let mut frames = 0;
    while let Poll::Ready(Some(Ok(f))) = Pin::new(&mut body).poll_frame(&mut cx) {
        black_box(&f);
        frames += 1;
    }
    frames
}

fn per_byte(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay_body_64KiB_in_16_chunks");
    g.throughput(Throughput::Bytes(64 * 1024));
    g.bench_function("raw", |b| b.iter(|| drain(black_box(chunks()))));
    g.bench_function("replay_body_first_pass", |b| {
        b.iter(|| drain(ReplayBody::new(black_box(chunks()), 128 * 1024)))
    });
    g.bench_function("replay_body_first_pass_and_replay", |b| {
        b.iter(|| {
            let first = ReplayBody::new(black_box(chunks()), 128 * 1024);
            let copy = first.try_clone().unwrap();
            drain(first) + drain(copy)
        })
    });
    g.bench_function("replay_body_past_cap", |b| {
        b.iter(|| drain(ReplayBody::new(black_box(chunks()), 8 * 1024)))
    });
    g.finish();
}

fn contention<S>(svc: S, workers: usize, tasks: usize, calls: u64) -> Duration
where
    S: Service<Request<Full<Bytes>>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + std::fmt::Debug,
    S::Response: Send,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let mut svc = svc.clone();
            set.spawn(async move {
                for _ in 0..calls {
                    let r = svc.ready().await.unwrap().call(request()).await;
                    black_box(r.is_ok());
                }
            });
        }
        while set.join_next().await.is_some() {}
        start.elapsed()
    })
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_contention_64_tasks");
    g.throughput(Throughput::Elements(64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(2));
    let stack = ReplayBodyLayer::new(64 * 1024).layer(fortify_retry().layer(Backend));
    for workers in [1, 2] {
        let bare = Backend;
        g.bench_function(format!("bare_{workers}w"), |b| {
            b.iter_custom(|iters| contention(bare, workers, 64, iters.max(1)))
        });
        let s = stack.clone();
        g.bench_function(format!("fortify_replay_retry_{workers}w"), |b| {
            b.iter_custom(|iters| contention(s.clone(), workers, 64, iters.max(1)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = per_request, per_byte, contended
}
criterion_main!(benches);
