//! `fortify-drill-backend`: one backend of a process drill (`drill::ProcessDrill`,
//! feature `drill-process`). An HTTP/1 server on 127.0.0.1 that answers `200 ok`
//! after its latency, or `503` for a share of calls, and takes its faults from
//! `POST /_control?error_rate=E&factor=F&tail_share=S&tail_factor=T` (brownout,
//! slow, a latency tail). The drill kills it with
//! SIGKILL for `down` and starts it again on the same port.
//!
//! ```text
//! fortify-drill-backend --port 8081 [--latency-ms 20] [--error-rate 0.0]
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// What the control endpoint sets: an error rate and a latency factor, as f64 bits.
struct State {
    rng: tower_fortify::rng::Rng,
    latency_ms: f64,
    error_rate: AtomicU64,
    factor: AtomicU64,
    tail_share: AtomicU64,
    tail_factor: AtomicU64,
}

fn usage(error: &str) -> ! {
    eprintln!("fortify-drill-backend: {error}");
    eprintln!("usage: fortify-drill-backend --port PORT [--latency-ms MS] [--error-rate SHARE]");
    std::process::exit(2)
}

fn main() {
    let mut port = None;
    let mut latency_ms = 20.0;
    let mut error_rate = 0.0;
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
            let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

async fn handle(
    state: Arc<State>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
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
    Ok(respond(StatusCode::OK, "ok\n"))
}
