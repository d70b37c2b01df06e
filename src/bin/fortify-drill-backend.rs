//! `fortify-drill-backend`: one backend of a process drill (`drill::ProcessDrill`,
//! feature `drill-process`). A server on 127.0.0.1 that answers after its latency,
//! fails a share of calls, and takes its faults from
//! `POST /_control?error_rate=E&factor=F&tail_share=S&tail_factor=T` (brownout,
//! slow, a latency tail). The drill kills it with SIGKILL for `down` and starts it
//! again on the same port.
//!
//! By default it speaks HTTP/1: `200 ok`, or `503` for a failed call. With `--grpc`
//! it speaks gRPC over HTTP/2 (and still HTTP/1 for the control endpoint, on the same
//! port): any unary call answers the message `ok` with `grpc-status: 0` in the
//! trailers, and a failed call is a trailers-only `UNAVAILABLE` (`grpc-status: 14`).
//!
//! ```text
//! fortify-drill-backend --port 8081 [--latency-ms 20] [--error-rate 0.0] [--grpc]
//! ```

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What the control endpoint sets: an error rate and a latency factor, as f64 bits.
struct State {
    rng: tower_fortify::rng::Rng,
    latency_ms: f64,
    error_rate: AtomicU64,
    factor: AtomicU64,
    tail_share: AtomicU64,
    tail_factor: AtomicU64,
    grpc: bool,
}

/// A response body: at most one data frame, then trailers if any.
struct Reply {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for Reply {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

fn usage(error: &str) -> ! {
    eprintln!("fortify-drill-backend: {error}");
    eprintln!(
        "usage: fortify-drill-backend --port PORT [--latency-ms MS] [--error-rate SHARE] [--grpc]"
    );
    std::process::exit(2)
}

fn main() {
    let mut port = None;
    let mut latency_ms = 20.0;
    let mut error_rate = 0.0;
    let mut grpc = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--port" => port = value("--port").parse::<u16>().ok(),
            "--latency-ms" => {
                latency_ms = value("--latency-ms")
                    .parse::<f64>()
                    .ok()
                    .filter(|ms| ms.is_finite() && *ms >= 0.0)
                    .unwrap_or_else(|| usage("--latency-ms must be a number of milliseconds"))
            }
            "--error-rate" => {
                error_rate = value("--error-rate")
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .unwrap_or_else(|| usage("--error-rate must be in [0, 1]"))
            }
            "--grpc" => grpc = true,
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    let port = port.unwrap_or_else(|| usage("--port PORT is required"));
    let state = Arc::new(State {
        rng: tower_fortify::rng::Rng::from_entropy(),
        latency_ms,
        error_rate: AtomicU64::new(f64::to_bits(error_rate)),
        factor: AtomicU64::new(f64::to_bits(1.0)),
        tail_share: AtomicU64::new(f64::to_bits(0.0)),
        tail_factor: AtomicU64::new(f64::to_bits(1.0)),
        grpc,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| usage(&format!("cannot start a runtime: {e}")));
    runtime.block_on(serve(port, state));
}

async fn serve(port: u16, state: Arc<State>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| usage(&format!("cannot listen on 127.0.0.1:{port}: {e}")));
    // Serves until killed: the drill owns this process and always reaps it.
    while let Ok((stream, _)) = listener.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            let grpc = state.grpc;
            let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let io = TokioIo::new(stream);
            if grpc {
                // HTTP/2 for the gRPC calls, HTTP/1 for the control endpoint.
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            }
        });
    }
}

fn respond(status: StatusCode, body: &'static str) -> Response<Reply> {
    let mut response = Response::new(Reply {
        data: Some(Bytes::from_static(body.as_bytes())),
        trailers: None,
    });
    *response.status_mut() = status;
    response
}

/// A gRPC answer: the message `ok` and `grpc-status: 0` in the trailers, or, failed,
/// a trailers-only `UNAVAILABLE`.
fn respond_grpc(ok: bool) -> Response<Reply> {
    let grpc_header = |status: &'static str| {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", http::HeaderValue::from_static(status));
        h
    };
    let mut response = if ok {
        // One message: not compressed, 2 bytes long, "ok".
        Response::new(Reply {
            data: Some(Bytes::from_static(&[0, 0, 0, 0, 2, b'o', b'k'])),
            trailers: Some(grpc_header("0")),
        })
    } else {
        let mut r = Response::new(Reply {
            data: None,
            trailers: None,
        });
        r.headers_mut().extend(grpc_header("14"));
        r.headers_mut()
            .insert("grpc-message", http::HeaderValue::from_static("brownout"));
        r
    };
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

async fn handle(
    state: Arc<State>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Reply>, Infallible> {
    if req.uri().path() == "/_control" {
        for pair in req.uri().query().unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            match key {
                "error_rate" if (0.0..=1.0).contains(&value) => {
                    state.error_rate.store(value.to_bits(), Ordering::Relaxed)
                }
                "factor" if value.is_finite() && value >= 0.0 => {
                    state.factor.store(value.to_bits(), Ordering::Relaxed)
                }
                "tail_share" if (0.0..=1.0).contains(&value) => {
                    state.tail_share.store(value.to_bits(), Ordering::Relaxed)
                }
                "tail_factor" if value.is_finite() && value >= 0.0 => {
                    state.tail_factor.store(value.to_bits(), Ordering::Relaxed)
                }
                _ => {}
            }
        }
        return Ok(respond(StatusCode::OK, "ok\n"));
    }
    let error_rate = f64::from_bits(state.error_rate.load(Ordering::Relaxed));
    if error_rate > 0.0 && state.rng.next_f64() < error_rate {
        if state.grpc {
            return Ok(respond_grpc(false));
        }
        return Ok(respond(StatusCode::SERVICE_UNAVAILABLE, "brownout\n"));
    }
    let mut factor = f64::from_bits(state.factor.load(Ordering::Relaxed));
    let tail_share = f64::from_bits(state.tail_share.load(Ordering::Relaxed));
    if tail_share > 0.0 && state.rng.next_f64() < tail_share {
        factor *= f64::from_bits(state.tail_factor.load(Ordering::Relaxed));
    }
    // ±10 % around the latency, so calls do not arrive in lockstep.
    let jitter = 0.9 + 0.2 * state.rng.next_f64();
    let ms = state.latency_ms * factor * jitter;
    if ms > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
    }
    if state.grpc {
        return Ok(respond_grpc(true));
    }
    Ok(respond(StatusCode::OK, "ok\n"))
}
