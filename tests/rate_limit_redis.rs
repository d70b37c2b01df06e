//! The fleet-wide rate limiter against a real `redis-server`: several limiter
//! instances (each with its own connection, as separate processes would have) share
//! one quota, unkeyed and keyed; Redis killed mid-test, then the configured mode
//! (local limiter, open, closed) decides, with one WARN per transition; Redis back,
//! the quota is shared again.
//!
//! Each test starts its own `redis-server --port <free port> --save '' --appendonly no`
//! on 127.0.0.1 as a child process and always reaps it (a drop guard). Without
//! `redis-server` on the PATH the tests fail when `CI` is set and are skipped, saying
//! why, otherwise. These tests run in real time (they talk to a process): they assert
//! counts and decisions, never durations.

#![cfg(feature = "redis")]
// Test support, not library code: waiting for a child process to listen.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::rate_limit::RateLimitLayer;
use tower_fortify::rate_limit::RateLimited;
use tower_fortify::rate_limit::redis::Unavailable;
use tracing_subscriber::fmt::MakeWriter;

/// A `redis-server` child process, killed and reaped on drop.
struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts one on a free port, or `None` (after saying why) when `redis-server`
    /// is not installed and `CI` is not set.
    fn start() -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            if std::env::var_os("CI").is_some() {
                panic!("redis-server is not installed, and CI is set: .ci/run installs it");
            }
            eprintln!(
                "SKIPPED: redis-server is not installed (apt-get install redis-server); \
                 these tests fail instead when CI is set"
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Some(Self::start_on(port))
    }

    fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let server = Self {
            child: Some(child),
            port,
        };
        for _ in 0..500 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not listen on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server now (mid-test) and reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A connection of its own, as another process would have, that gives up quickly
/// once the server is gone.
async fn connect(server: &RedisServer) -> ConnectionManager {
    let client = redis::Client::open(server.url()).unwrap();
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_connection_timeout(Some(Duration::from_millis(200)))
        .set_response_timeout(Some(Duration::from_millis(500)));
    ConnectionManager::new_with_config(client, config)
        .await
        .unwrap()
}

fn counted() -> (
    impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone,
    Arc<AtomicUsize>,
) {
    let sent = Arc::new(AtomicUsize::new(0));
    let n = sent.clone();
    let svc = service_fn(move |x: u32| {
        n.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, BoxError>(x) }
    });
    (svc, sent)
}

/// `burst` calls per hour: nothing refills during a test.
fn quota(burst: u32) -> tower_fortify::rate_limit::RateLimitBuilder {
    RateLimitLayer::builder()
        .rate(burst, Duration::from_secs(3600))
        .burst(burst)
        .name("fleet")
}

/// Whether a result is a refusal by the rate limiter.
fn refused<T: std::fmt::Debug>(r: &Result<T, BoxError>) -> bool {
    match r {
        Ok(_) => false,
        Err(e) => {
            assert!(e.downcast_ref::<RateLimited>().is_some(), "{e}");
            true
        }
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn count(&self, text: &str) -> usize {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .filter(|l| l.contains(text) && l.contains("WARN"))
            .count()
    }
}

/// One test at a time: a thread-local subscriber can miss events while another
/// test's thread registers the same callsites.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(out.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (out, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn several_instances_share_one_quota() {
    let _serial = SERIAL.lock().await;
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut instances = Vec::new();
    let mut sent = Vec::new();
    for _ in 0..3 {
        let layer = quota(5)
            .redis(connect(&server).await, "test:shared")
            .build()
            .unwrap();
        let (inner, n) = counted();
        instances.push(layer.layer(inner));
        sent.push(n);
    }
    let mut admitted = 0;
    for i in 0..15u32 {
        let svc = &mut instances[i as usize % 3];
        let r = svc.ready().await.unwrap().call(i).await;
        if !refused(&r) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5, "one quota of 5 across three instances");
    let total: usize = sent.iter().map(|n| n.load(Ordering::SeqCst)).sum();
    assert_eq!(total, 5, "refused calls were never sent");
    // The refusal says when: the next slot, about 12 minutes away at 5 an hour.
    let err = instances[0]
        .ready()
        .await
        .unwrap()
        .call(99)
        .await
        .unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().unwrap();
    assert!(
        limited.retry_after() > Duration::from_secs(600),
        "{limited}"
    );
    assert!(
        limited.retry_after() <= Duration::from_secs(720),
        "{limited}"
    );
}

#[tokio::test]
async fn keyed_quotas_are_per_key_and_shared_across_instances() {
    let _serial = SERIAL.lock().await;
    let Some(server) = RedisServer::start() else {
        return;
    };
    let make = async || {
        let layer = quota(3)
            .redis(connect(&server).await, "test:keyed")
            .keyed(|tenant: &u32| *tenant / 100)
            .build()
            .unwrap();
        layer.layer(counted().0)
    };
    let (mut a, mut b) = (make().await, make().await);
    let mut admitted = 0;
    for i in 0..6 {
        let svc = if i % 2 == 0 { &mut a } else { &mut b };
        admitted += u32::from(!refused(&svc.ready().await.unwrap().call(100 + i).await));
    }
    assert_eq!(admitted, 3, "tenant 1's quota of 3, across both instances");
    for i in 0..3 {
        assert!(
            !refused(&b.ready().await.unwrap().call(200 + i).await),
            "tenant 2 has its own"
        );
    }
    assert!(refused(&a.ready().await.unwrap().call(203).await));
    // The key is prefix:key, and it expires (when its quota would be full again).
    let mut conn = connect(&server).await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg("test:keyed:1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0, "PTTL {ttl}");
}

/// Builds two instances in `mode`, uses 2 of a quota of 4, kills Redis, then sends
/// 6 calls; returns how many of those were admitted.
async fn after_redis_dies(mode: Unavailable, local_burst: Option<u32>) -> (usize, Captured) {
    let server = RedisServer::start();
    let Some(mut server) = server else {
        return (usize::MAX, Captured::default());
    };
    let (out, _guard) = capture();
    let build = async |server: &RedisServer| {
        let b = quota(4)
            .redis(connect(server).await, "test:outage")
            .when_unavailable(mode)
            .retry_interval(Duration::ZERO);
        let b = match local_burst {
            Some(burst) => b.local_quota(burst, Duration::from_secs(3600), burst),
            None => b,
        };
        b.build().unwrap()
    };
    let (la, lb) = (build(&server).await, build(&server).await);
    let (mut a, mut b) = (la.layer(counted().0), lb.layer(counted().0));
    assert!(!refused(&a.ready().await.unwrap().call(1).await));
    assert!(!refused(&b.ready().await.unwrap().call(2).await));
    assert!(la.is_reachable());
    server.kill();
    let mut admitted = 0;
    for i in 0..6 {
        admitted += usize::from(!refused(&a.ready().await.unwrap().call(10 + i).await));
    }
    assert!(!la.is_reachable(), "the outage is seen");
    assert_eq!(
        la.fallback_decisions(),
        6,
        "every call after the kill decided locally"
    );
    assert_eq!(
        out.count("redis unreachable"),
        1,
        "one WARN for the transition, not one per call"
    );
    (admitted, out)
}

#[tokio::test]
async fn redis_killed_mid_test_fails_closed_when_configured() {
    let _serial = SERIAL.lock().await;
    let (admitted, out) = after_redis_dies(Unavailable::Closed, None).await;
    if admitted == usize::MAX {
        return;
    }
    assert_eq!(admitted, 0, "closed: every call refused");
    assert_eq!(out.count("mode closed"), 1);
}

#[tokio::test]
async fn redis_killed_mid_test_fails_open_when_configured() {
    let _serial = SERIAL.lock().await;
    let (admitted, out) = after_redis_dies(Unavailable::Open, None).await;
    if admitted == usize::MAX {
        return;
    }
    assert_eq!(admitted, 6, "open: every call admitted");
    assert_eq!(out.count("mode open"), 1);
}

#[tokio::test]
async fn redis_killed_mid_test_falls_back_to_the_local_quota() {
    let _serial = SERIAL.lock().await;
    let (admitted, out) = after_redis_dies(Unavailable::Local, Some(3)).await;
    if admitted == usize::MAX {
        return;
    }
    assert_eq!(admitted, 3, "local: this instance's own quota of 3");
    assert_eq!(out.count("mode local"), 1);
}

#[tokio::test]
async fn the_quota_is_shared_again_when_redis_returns() {
    let _serial = SERIAL.lock().await;
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let (out, _guard) = capture();
    let port = server.port;
    let layer = quota(2)
        .redis(connect(&server).await, "test:return")
        .when_unavailable(Unavailable::Open)
        .retry_interval(Duration::ZERO)
        .build()
        .unwrap();
    let mut svc = layer.layer(counted().0);
    svc.ready().await.unwrap().call(0).await.unwrap();
    server.kill();
    svc.ready().await.unwrap().call(1).await.unwrap();
    assert!(!layer.is_reachable());
    let _server = RedisServer::start_on(port); // a fresh, empty Redis
    // The connection manager reconnects in its own time: call until a check
    // reaches Redis (bounded; counts are asserted, not how long it took).
    let mut tries = 0;
    while !layer.is_reachable() {
        tries += 1;
        assert!(tries < 200, "Redis never reached again");
        svc.ready().await.unwrap().call(2).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(out.count("redis unreachable"), 1);
    assert_eq!(out.count("redis reachable again"), 1);
    // The check that found Redis again used one slot of the fresh quota of 2.
    assert!(!refused(&svc.ready().await.unwrap().call(3).await));
    assert!(refused(&svc.ready().await.unwrap().call(4).await));
}

#[test]
fn bad_settings_name_their_field() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // A lazy manager: no server needed to check the settings.
        let conn = || {
            ConnectionManager::new_lazy_with_config(
                redis::Client::open("redis://127.0.0.1:1/").unwrap(),
                ConnectionManagerConfig::new(),
            )
            .unwrap()
        };
        let field = |r: Result<_, tower_fortify::ConfigError>| r.unwrap_err().field();
        assert_eq!(
            field(quota(1).redis(conn(), "").build()),
            "rate_limit.redis.prefix"
        );
        assert_eq!(
            field(quota(1).redis(conn(), "p").timeout(Duration::ZERO).build()),
            "rate_limit.redis.timeout"
        );
        assert_eq!(
            field(quota(1).redis(conn(), "p").max_keys(0).build()),
            "rate_limit.redis.max_keys"
        );
        assert_eq!(
            field(
                quota(1)
                    .redis(conn(), "p")
                    .local_quota(0, Duration::from_secs(1), 1)
                    .build()
            ),
            "rate_limit.redis.local_quota"
        );
        assert_eq!(
            field(
                RateLimitLayer::builder()
                    .rate(0, Duration::from_secs(1))
                    .redis(conn(), "p")
                    .build()
            ),
            "rate_limit.rate"
        );
    });
}
