//! Failover in action, in paused time: two tiers of simulated backends, a retry layer
//! above the router, the primary region down from t = 5 s to t = 25 s.
//!
//! `cargo run --example failover`
//!
//! Each second prints how many requests succeeded and where they were served. The
//! primary tier is ejected within a few requests, its traffic moves to the secondary
//! tier, no request fails (the retry goes to another backend), and the primary gets
//! its traffic back once its ejection ends and its health check passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::backoff::Backoff;
use tower_fortify::failover::{Backend, Failover, HealthCheck, Tried, tried_fn};
use tower_fortify::observe::{Event, FailoverEvent};
use tower_fortify::retry::RetryLayer;

#[derive(Clone)]
struct Request {
    tried: Tried,
}

struct Region {
    down: AtomicBool,
    served: AtomicU64,
}

fn backend(
    region: Arc<Region>,
) -> impl Service<Request, Response = (), Error = BoxError, Future: Send> + Clone + Send + 'static {
    service_fn(move |_: Request| {
        let region = region.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if region.down.load(Ordering::SeqCst) {
                Err::<(), BoxError>("connection refused".into())
            } else {
                region.served.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tokio::time::pause();
    let region = |_: &str| {
        Arc::new(Region {
            down: AtomicBool::new(false),
            served: AtomicU64::new(0),
        })
    };
    let (eu, us) = (region("eu"), region("us"));
    let probe = |r: &Arc<Region>| {
        let r = r.clone();
        move || {
            let up = !r.down.load(Ordering::SeqCst);
            async move { up }
        }
    };
    let router = Failover::builder()
        .backend(Backend::new("eu-1", backend(eu.clone())).probe(probe(&eu)))
        .backend(Backend::new("eu-2", backend(eu.clone())).probe(probe(&eu)))
        .backend(Backend::new("us-1", backend(us.clone())).tier(1))
        .backend(Backend::new("us-2", backend(us.clone())).tier(1))
        .consecutive_failures(Some(3))
        .base_ejection_time(Duration::from_secs(10))
        .health_check(HealthCheck::every(Duration::from_secs(2)))
        .tried(tried_fn(|r: &Request| Some(&r.tried)))
        .listener(|e: &Event| {
            if let Event::Failover(
                e @ (FailoverEvent::Ejected { .. } | FailoverEvent::HealthCheck { .. }),
            ) = e
            {
                println!("    event: {e:?}");
            }
        })
        .build()
        .expect("valid configuration");
    let retry = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .build()
        .expect("valid configuration");
    let mut svc = ServiceBuilder::new().layer(retry).service(router);

    println!("second  ok  failed  served-by-eu  served-by-us");
    for second in 0..40u32 {
        if second == 5 {
            println!("    -- the eu region goes down --");
            eu.down.store(true, Ordering::SeqCst);
        }
        if second == 25 {
            println!("    -- the eu region is back --");
            eu.down.store(false, Ordering::SeqCst);
        }
        let (eu0, us0) = (
            eu.served.load(Ordering::SeqCst),
            us.served.load(Ordering::SeqCst),
        );
        let (mut ok, mut failed) = (0, 0);
        for _ in 0..20 {
            let request = Request {
                tried: Tried::new(),
            };
            match svc.ready().await.unwrap().call(request).await {
                Ok(()) => ok += 1,
                Err(_) => failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(45)).await;
        }
        println!(
            "{second:>6}  {ok:>2}  {failed:>6}  {:>12}  {:>12}",
            eu.served.load(Ordering::SeqCst) - eu0,
            us.served.load(Ordering::SeqCst) - us0
        );
    }
}
