//! Latency a fleet-wide (Redis) rate limit adds per check, against a local
//! `redis-server` this bench starts on a free port (`--save '' --appendonly no`) and
//! reaps when done. Skipped, saying why, when `redis-server` is not installed.
//!
//! Each row is a timed loop on a current-thread tokio runtime, one call at a time
//! (`ready().await` + `call().await`, as users call): bare (no limiter), a Redis
//! `PING` through the same connection manager (the round trip the check cannot
//! avoid), the Redis limiter unkeyed, and keyed (1,000 keys). A quota so large that
//! every call is admitted. Mean, p50 and p99 per call over 20,000 calls after 2,000
//! warm-up calls; "added" is the limiter's figure minus bare's.
//!
//! ```sh
//! cargo bench -p tower-fortify-benches --bench rate_limit_redis
//! ```

// Benchmarks measure wall time and manage a child process: the bans are for library code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tower::{Layer, Service, ServiceExt};
use tower_fortify::rate_limit::RateLimitLayer;

mod common;
use common::Bare;

const WARMUP: usize = 2_000;
const CALLS: usize = 20_000;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> Option<(Server, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server(child);
    for _ in 0..500 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((server, port));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Per-call latencies (ns) of `$body` (with `$i` the call's index), sorted, after
/// the warm-up.
macro_rules! timed {
    (|$i:ident| $body:expr) => {{
        for $i in 0..WARMUP as u64 {
            $body;
        }
        let mut out = Vec::with_capacity(CALLS);
        for $i in 0..CALLS as u64 {
            let start = Instant::now();
            $body;
            out.push(start.elapsed().as_nanos() as u64);
        }
        out.sort_unstable();
        out
    }};
}

struct Stats {
    mean: f64,
    p50: f64,
    p99: f64,
}

fn stats(v: &[u64]) -> Stats {
    let us = |ns: u64| ns as f64 / 1e3;
    Stats {
        mean: v.iter().sum::<u64>() as f64 / v.len() as f64 / 1e3,
        p50: us(v[v.len() / 2]),
        p99: us(v[v.len() * 99 / 100]),
    }
}

fn row(name: &str, s: &Stats, bare: Option<&Stats>) {
    let added = bare.map_or(String::new(), |b| {
        format!(
            "   added: mean {:>6.1} µs  p50 {:>6.1} µs  p99 {:>6.1} µs",
            s.mean - b.mean,
            s.p50 - b.p50,
            s.p99 - b.p99
        )
    });
    println!(
        "redis {name:<22} mean {:>7.1} µs  p50 {:>7.1} µs  p99 {:>7.1} µs{added}",
        s.mean, s.p50, s.p99
    );
}

fn main() {
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"redis".contains(&*a))
    {
        return;
    }
    if Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        println!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
        return;
    }
    let (_server, port) = start().expect("start redis-server");
    let rt = common::runtime();
    rt.block_on(async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        let conn = ConnectionManager::new(client).await.unwrap();
        let quota = || RateLimitLayer::builder().rate(u32::MAX, Duration::from_secs(1));

        let mut bare = Bare;
        let b = stats(&timed!(|i| bare
            .ready()
            .await
            .unwrap()
            .call(i)
            .await
            .unwrap()));
        row("bare", &b, None);

        let mut c = conn.clone();
        let ping = stats(&timed!(|_i| {
            let _: String = redis::cmd("PING").query_async(&mut c).await.unwrap();
        }));
        row("PING (round trip)", &ping, Some(&b));

        let mut svc = quota()
            .redis(conn.clone(), "bench:one")
            .build()
            .unwrap()
            .layer(Bare);
        let one = stats(&timed!(|i| svc
            .ready()
            .await
            .unwrap()
            .call(i)
            .await
            .unwrap()));
        row("limiter, unkeyed", &one, Some(&b));

        let mut svc = quota()
            .redis(conn.clone(), "bench:keyed")
            .keyed(|r: &u64| *r % 1000)
            .build()
            .unwrap()
            .layer(Bare);
        let keyed = stats(&timed!(|i| svc
            .ready()
            .await
            .unwrap()
            .call(i)
            .await
            .unwrap()));
        row("limiter, 1,000 keys", &keyed, Some(&b));
    });
}
