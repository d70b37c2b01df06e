//! The chaos TCP proxy in front of any service, and the drill driving a stack against
//! services it did not start, with the faults injected by the proxies. Real sockets on
//! 127.0.0.1; the timing tests run in paused time (the proxy's delays are tokio
//! timers), the drill in real time (about 9 s).

#![cfg(feature = "drill-process")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_fortify::drill::{ChaosProxy, NetFault, ProcessDrill, Scenario};
use tower_fortify::stack::Stack;

/// An echo server on 127.0.0.1 that ends with the test's runtime.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn ping(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    stream.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await?;
    Ok(buf.to_vec())
}

/// Waits (boundedly) until `check` holds, letting the proxy's task see a change.
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test]
async fn forwards_then_refuses_then_forwards_again() {
    let proxy = ChaosProxy::start(echo().await).await.unwrap();
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(ping(&mut conn).await.unwrap(), b"ping");

    proxy.set(NetFault::Refuse);
    assert_eq!(proxy.fault(), NetFault::Refuse);
    // The open connection is cut, and the port refuses new ones.
    assert!(ping(&mut conn).await.is_err() || ping(&mut conn).await.is_err());
    assert!(
        eventually(async || TcpStream::connect(proxy.addr()).await.is_err()).await,
        "connections refused"
    );

    proxy.set(NetFault::None);
    let mut again = None;
    assert!(
        eventually(async || {
            again = TcpStream::connect(proxy.addr()).await.ok();
            again.is_some()
        })
        .await,
        "the same port accepts again"
    );
    assert_eq!(ping(again.as_mut().unwrap()).await.unwrap(), b"ping");
}

#[tokio::test]
async fn reset_cuts_open_and_new_connections() {
    let proxy = ChaosProxy::start(echo().await).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(ping(&mut open).await.unwrap(), b"ping");
    proxy.set(NetFault::Reset);
    assert!(eventually(async || ping(&mut open).await.is_err()).await);
    // A new connection is accepted and reset at once: nothing comes back.
    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(ping(&mut new).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn blackhole_answers_nothing_and_latency_delays_answers() {
    let proxy = ChaosProxy::start(echo().await).await.unwrap();
    proxy.set(NetFault::Blackhole);
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(60), ping(&mut conn)).await;
    assert!(answer.is_err(), "no answer within a minute: {answer:?}");

    proxy.set(NetFault::Latency(Duration::from_millis(250)));
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    let start = tokio::time::Instant::now();
    assert_eq!(ping(&mut conn).await.unwrap(), b"ping");
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
}

/// An HTTP service on 127.0.0.1, standing for one written in any language.
async fn service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = hyper::service::service_fn(|_req| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), handler)
                    .await;
            });
        }
    });
    addr
}

/// Against services the drill did not start: one of three cut off by its proxy
/// (port closed, connections reset) for a third of the run. The one-call stack with
/// its defaults serves at least 99.9 % and sends traffic back within 3 s (2 s
/// measured on a quiet machine; the report's times are whole seconds, upper bounds,
/// and this drill runs in real time next to the other tests of this file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_against_running_services_through_proxies() {
    let services = [service().await, service().await, service().await];
    // The built-in outage at a twentieth of its length, a tenth of its rate: 9 s at
    // 100 req/s, `a` cut off from 3 s to 6 s.
    let scenario = Scenario::builtin("backend-outage")
        .unwrap()
        .scaled(0.05, 0.1);
    let report = ProcessDrill::against(scenario, services)
        .label("recommended")
        .run(|env| {
            let env = env.clone();
            Stack::http(env.urls())
                .unwrap()
                .listeners(move |source| Some(env.listener_for(source)))
                .build()
                .unwrap()
        })
        .await
        .unwrap();
    println!("{report}");
    report.assert_availability_at_least(0.999).unwrap();
    report
        .assert_recovered_within(Duration::from_secs(3))
        .unwrap();
    let a: Vec<u64> = report.timeline.iter().map(|s| s.attempts[0]).collect();
    assert!(a[..3].iter().sum::<u64>() > 20, "{a:?}");
    assert!(a[7..9].iter().sum::<u64>() > 10, "{a:?}");
}

/// A brownout cannot be made by a proxy: the drill says so, naming the backend.
#[tokio::test]
async fn a_brownout_through_a_proxy_is_refused_by_name() {
    let services = [service().await, service().await, service().await];
    let scenario = Scenario::builtin("brownout").unwrap().scaled(0.01, 0.01);
    let err = ProcessDrill::against(scenario, services)
        .run(|env| Stack::http(env.urls()).unwrap().build().unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("backend a: phase `brownout` needs the service's cooperation"),
        "{err}"
    );
}
