//! Failover router: simulated backends in paused time.
#![cfg(feature = "failover")]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::failover::{
    Backend, BackendHealth, Failover, HealthCheck, NoHealthyBackend, PanicMode, Selection, Tried,
    tried_fn,
};
use tower_fortify::observe::{EjectReason, Event, FailoverEvent};
use tower_fortify::rng::Rng;

#[derive(Clone, Debug)]
struct Req {
    id: u64,
    tried: Tried,
}

fn req(id: u64) -> Req {
    Req {
        id,
        tried: Tried::new(),
    }
}

/// A simulated backend's knobs and counters.
#[derive(Default)]
struct Sim {
    name: &'static str,
    hits: AtomicU64,
    down: AtomicBool,
    /// Fail `fail_per_ten` calls out of every ten (by call count).
    fail_per_ten: AtomicU64,
    latency_ms: AtomicU64,
    served: Mutex<Vec<u64>>,
}

fn sim(name: &'static str) -> Arc<Sim> {
    Arc::new(Sim {
        name,
        ..Sim::default()
    })
}

fn service(
    s: Arc<Sim>,
) -> impl Service<Req, Response = &'static str, Error = BoxError, Future: Send> + Clone + Send + 'static
{
    service_fn(move |r: Req| {
        let s = s.clone();
        async move {
            let n = s.hits.fetch_add(1, Ordering::SeqCst);
            s.served.lock().unwrap().push(r.id);
            let ms = s.latency_ms.load(Ordering::SeqCst);
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if s.down.load(Ordering::SeqCst) || n % 10 < s.fail_per_ten.load(Ordering::SeqCst) {
                Err::<&'static str, BoxError>(format!("{} failed", s.name).into())
            } else {
                Ok(s.name)
            }
        }
    })
}

fn hits(s: &Sim) -> u64 {
    s.hits.load(Ordering::SeqCst)
}

fn events() -> (
    Arc<Mutex<Vec<FailoverEvent>>>,
    impl Fn(&Event) + Send + Sync + 'static,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    (log, move |e: &Event| {
        if let Event::Failover(f) = e {
            l.lock().unwrap().push(f.clone());
        }
    })
}

async fn send<S>(svc: &mut S, r: Req) -> Result<&'static str, BoxError>
where
    S: Service<Req, Response = &'static str, Error = BoxError>,
{
    svc.ready().await?.call(r).await
}

#[tokio::test(start_paused = true)]
async fn builder_rejects_bad_configuration_naming_the_field() {
    let s = sim("a");
    let one = || Backend::new("a", service(s.clone()));
    let field = |b: tower_fortify::failover::FailoverBuilder<_>| b.build().unwrap_err().field();
    assert_eq!(field(Failover::builder()), "failover.backends");
    assert_eq!(
        field(Failover::builder().backend(one()).backend(one())),
        "failover.backends.id"
    );
    assert_eq!(
        field(Failover::builder().backend(one().weight(0))),
        "failover.backends.weight"
    );
    assert_eq!(
        field(Failover::builder().backend(one()).failure_rate(Some(1.5))),
        "failover.failure_rate"
    );
    assert_eq!(
        field(
            Failover::builder()
                .backend(one())
                .success_rate_drop(Some(f64::NAN))
        ),
        "failover.success_rate_drop"
    );
    assert_eq!(
        field(
            Failover::builder()
                .backend(one())
                .consecutive_failures(Some(0))
        ),
        "failover.consecutive_failures"
    );
    assert_eq!(
        field(Failover::builder().backend(one()).latency_factor(Some(0.5))),
        "failover.latency_factor"
    );
    assert_eq!(
        field(
            Failover::builder()
                .backend(one())
                .max_ejection_percent(150.0)
        ),
        "failover.max_ejection_percent"
    );
    assert_eq!(
        field(
            Failover::builder()
                .backend(one())
                .overprovisioning_factor(0.9)
        ),
        "failover.overprovisioning_factor"
    );
    assert_eq!(
        field(Failover::builder().backend(one()).panic_threshold(-1.0)),
        "failover.panic_threshold"
    );
    assert_eq!(
        field(
            Failover::builder()
                .backend(one())
                .base_ejection_time(Duration::from_secs(10))
                .max_ejection_time(Duration::from_secs(1))
        ),
        "failover.max_ejection_time"
    );
    assert_eq!(
        field(Failover::builder().backend(one()).interval(Duration::ZERO)),
        "failover.interval"
    );
    assert_eq!(
        field(Failover::builder().backend(one()).min_hosts(1)),
        "failover.min_hosts"
    );
    assert_eq!(
        field(
            Failover::builder()
                .backend(one())
                .health_check(HealthCheck::every(Duration::ZERO))
        ),
        "failover.health_check.interval"
    );
}

/// Two primaries (tier 0) and two secondaries (tier 1); the primaries go hard down.
/// Consecutive-failure ejection after 3 failures each: at most 2 × 3 = 6 requests
/// fail, then every request goes to tier 1.
#[tokio::test(start_paused = true)]
async fn primary_tier_down_moves_all_traffic_within_six_requests() {
    let (p1, p2, s1, s2) = (sim("p1"), sim("p2"), sim("s1"), sim("s2"));
    p1.down.store(true, Ordering::SeqCst);
    p2.down.store(true, Ordering::SeqCst);
    let mut router = Failover::builder()
        .backend(Backend::new("p1", service(p1.clone())))
        .backend(Backend::new("p2", service(p2.clone())))
        .backend(Backend::new("s1", service(s1.clone())).tier(1))
        .backend(Backend::new("s2", service(s2.clone())).tier(1))
        .consecutive_failures(Some(3))
        .rng(Rng::seeded(1))
        .build()
        .unwrap();
    let mut failed = 0;
    let mut last_failure = 0;
    for i in 0..200 {
        if send(&mut router, req(i)).await.is_err() {
            failed += 1;
            last_failure = i;
        }
    }
    assert!(failed <= 6, "{failed} requests failed");
    assert!(
        last_failure < 20,
        "the last failure was request {last_failure}"
    );
    assert_eq!(hits(&p1) + hits(&p2), failed);
    let primaries = hits(&p1) + hits(&p2);
    for i in 200..300 {
        send(&mut router, req(i)).await.unwrap();
    }
    assert_eq!(
        hits(&p1) + hits(&p2),
        primaries,
        "no traffic to tier 0 after detection"
    );
    assert!(
        hits(&s1) > 20 && hits(&s2) > 20,
        "tier 1 shares the traffic"
    );
}

#[cfg(feature = "retry")]
fn retry_layer() -> tower_fortify::retry::RetryLayer {
    tower_fortify::retry::RetryLayer::builder()
        .max_attempts(3)
        .backoff(tower_fortify::backoff::Backoff::constant(
            Duration::from_millis(5),
        ))
        .no_budget()
        .build()
        .unwrap()
}

/// With the retry layer above and attempt-aware routing, the primary tier going down
/// costs no request: each failed attempt is retried on another backend.
#[cfg(feature = "retry")]
#[tokio::test(start_paused = true)]
async fn with_retry_above_no_request_fails_when_the_primary_tier_dies() {
    let (p1, p2, s1, s2) = (sim("p1"), sim("p2"), sim("s1"), sim("s2"));
    let router = Failover::builder()
        .backend(Backend::new("p1", service(p1.clone())))
        .backend(Backend::new("p2", service(p2.clone())))
        .backend(Backend::new("s1", service(s1.clone())).tier(1))
        .backend(Backend::new("s2", service(s2.clone())).tier(1))
        .consecutive_failures(Some(3))
        .tried(tried_fn(|r: &Req| Some(&r.tried)))
        .rng(Rng::seeded(2))
        .build()
        .unwrap();
    let mut svc = tower::ServiceBuilder::new()
        .layer(retry_layer())
        .service(router);
    for i in 0..50 {
        send(&mut svc, req(i)).await.unwrap();
    }
    p1.down.store(true, Ordering::SeqCst);
    p2.down.store(true, Ordering::SeqCst);
    for i in 50..300 {
        let answer = send(&mut svc, req(i)).await.unwrap();
        assert!(answer == "s1" || answer == "s2", "request {i}");
    }
    assert!(hits(&p1) + hits(&p2) <= 50 + 6);
}

#[tokio::test(start_paused = true)]
async fn ejected_backend_gets_traffic_back_after_the_ejection_time() {
    let (a, b) = (sim("a"), sim("b"));
    let mut router = Failover::builder()
        .backend(Backend::new("a", service(a.clone())))
        .backend(Backend::new("b", service(b.clone())).tier(1))
        .consecutive_failures(Some(2))
        .base_ejection_time(Duration::from_secs(10))
        .max_ejection_percent(50.0)
        .build()
        .unwrap();
    let handle = router.handle();
    a.down.store(true, Ordering::SeqCst);
    for i in 0..20 {
        let _ = send(&mut router, req(i)).await;
    }
    assert!(matches!(
        handle.backend("a").unwrap().health,
        BackendHealth::Ejected { .. }
    ));
    a.down.store(false, Ordering::SeqCst);
    let before = hits(&a);
    tokio::time::advance(Duration::from_secs(9)).await;
    for i in 0..20 {
        send(&mut router, req(i)).await.unwrap();
    }
    assert_eq!(hits(&a), before, "still ejected before the ejection time");
    tokio::time::advance(Duration::from_secs(2)).await;
    let status = handle.backend("a").unwrap();
    assert_eq!(status.health, BackendHealth::Healthy);
    assert!(status.probing, "on probation until its first success");
    for i in 0..20 {
        assert_eq!(send(&mut router, req(i)).await.unwrap(), "a");
    }
    let status = handle.backend("a").unwrap();
    assert_eq!(status.health, BackendHealth::Healthy);
    assert!(!status.probing, "the first success ends the probation");
}

/// After the ejection time the primary comes back only once its probe has passed
/// `healthy_threshold` times.
#[tokio::test(start_paused = true)]
async fn recovery_waits_for_the_ejection_time_and_a_passing_probe() {
    let (a, b) = (sim("a"), sim("b"));
    let probe_state = a.clone();
    let mut router = Failover::builder()
        .backend(Backend::new("a", service(a.clone())).probe(move || {
            let up = !probe_state.down.load(Ordering::SeqCst);
            async move { up }
        }))
        .backend(Backend::new("b", service(b.clone())).tier(1))
        .consecutive_failures(Some(2))
        .base_ejection_time(Duration::from_secs(5))
        .health_check(
            HealthCheck::every(Duration::from_secs(1))
                .unhealthy_threshold(2)
                .healthy_threshold(3),
        )
        .build()
        .unwrap();
    let handle = router.handle();
    a.down.store(true, Ordering::SeqCst);
    for i in 0..10 {
        let _ = send(&mut router, req(i)).await;
    }
    // Let the probe see it down.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        handle.backend("a").unwrap().health,
        BackendHealth::Unhealthy
    );
    // The backend recovers at t ≈ 2.5 s; the ejection ends at ≈ 5 s; the probe needs
    // three passes (t = 3, 4, 5 s).
    a.down.store(false, Ordering::SeqCst);
    let before = hits(&a);
    tokio::time::sleep(Duration::from_millis(1100)).await; // one pass
    for i in 0..10 {
        assert_eq!(send(&mut router, req(i)).await.unwrap(), "b");
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // three passes, ejection over
    assert_eq!(handle.backend("a").unwrap().health, BackendHealth::Healthy);
    for i in 0..10 {
        assert_eq!(send(&mut router, req(i)).await.unwrap(), "a");
    }
    assert_eq!(hits(&a), before + 10);
}

#[tokio::test(start_paused = true)]
async fn health_check_task_ends_when_the_router_is_dropped() {
    let probes = Arc::new(AtomicU64::new(0));
    let count = probes.clone();
    let router = Failover::builder()
        .backend(Backend::new("a", service(sim("a"))).probe(move || {
            count.fetch_add(1, Ordering::SeqCst);
            async { true }
        }))
        .health_check(HealthCheck::every(Duration::from_secs(1)))
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let seen = probes.load(Ordering::SeqCst);
    assert_eq!(seen, 4, "probes at 0, 1, 2 and 3 s");
    drop(router);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        probes.load(Ordering::SeqCst),
        seen,
        "no probe after the drop"
    );
}

/// Three backends, one failing 30 % of its calls: the success-rate rule ejects it.
#[tokio::test(start_paused = true)]
async fn brownout_backend_is_ejected_by_the_success_rate_rule() {
    let (a, b, c) = (sim("a"), sim("b"), sim("c"));
    c.fail_per_ten.store(3, Ordering::SeqCst);
    let (log, listener) = events();
    let mut router = Failover::builder()
        // Pinned: the test watches one ejection with the load-only selection.
        .selection(Selection::PowerOfTwoChoices)
        .base_ejection_time(Duration::from_secs(30))
        .max_ejection_time(Duration::from_secs(300))
        .backend(Backend::new("a", service(a.clone())))
        .backend(Backend::new("b", service(b.clone())))
        .backend(Backend::new("c", service(c.clone())))
        .interval(Duration::from_secs(1))
        .listener(listener)
        .rng(Rng::seeded(3))
        .build()
        .unwrap();
    let handle = router.handle();
    for i in 0..300 {
        let _ = send(&mut router, req(i)).await;
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    let ejected: Vec<_> = log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            FailoverEvent::Ejected {
                backend, reason, ..
            } => Some((backend.to_string(), *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(ejected, vec![("c".to_string(), EjectReason::SuccessRate)]);
    assert!(matches!(
        handle.backend("c").unwrap().health,
        BackendHealth::Ejected { .. }
    ));
    let before = hits(&c);
    for i in 0..100 {
        send(&mut router, req(i)).await.unwrap();
    }
    assert_eq!(hits(&c), before);
}

/// Two of three backends brown out; at most 34 % may be ejected: never more than one
/// at a time, and the skipped ejection is reported.
#[tokio::test(start_paused = true)]
async fn max_ejection_percent_is_never_exceeded() {
    let (a, b, c) = (sim("a"), sim("b"), sim("c"));
    b.fail_per_ten.store(6, Ordering::SeqCst);
    c.fail_per_ten.store(6, Ordering::SeqCst);
    let (log, listener) = events();
    let mut router = Failover::builder()
        // Pinned: the test watches one ejection with the load-only selection.
        .selection(Selection::PowerOfTwoChoices)
        .base_ejection_time(Duration::from_secs(30))
        .max_ejection_time(Duration::from_secs(300))
        .backend(Backend::new("a", service(a.clone())))
        .backend(Backend::new("b", service(b.clone())))
        .backend(Backend::new("c", service(c.clone())))
        .interval(Duration::from_secs(1))
        .consecutive_failures(Some(2))
        .base_ejection_time(Duration::from_secs(2))
        .max_ejection_percent(34.0)
        .listener(listener)
        .rng(Rng::seeded(4))
        .build()
        .unwrap();
    let handle = router.handle();
    for i in 0..600 {
        let _ = send(&mut router, req(i)).await;
        let ejected = handle
            .backends()
            .iter()
            .filter(|s| matches!(s.health, BackendHealth::Ejected { .. }))
            .count();
        assert!(ejected <= 1, "{ejected} ejected at request {i}");
        tokio::time::advance(Duration::from_millis(20)).await;
    }
    let log = log.lock().unwrap();
    assert!(
        log.iter()
            .any(|e| matches!(e, FailoverEvent::Ejected { .. }))
    );
    assert!(
        log.iter()
            .any(|e| matches!(e, FailoverEvent::EjectionSkipped { .. }))
    );
}

fn all_down_router(
    mode: PanicMode,
) -> (
    Failover<impl Service<Req, Response = &'static str, Error = BoxError> + Clone>,
    [Arc<Sim>; 3],
) {
    let sims = [sim("a"), sim("b"), sim("c")];
    for s in &sims {
        s.down.store(true, Ordering::SeqCst);
    }
    let router = Failover::builder()
        .backends(
            sims.iter()
                .map(|s| Backend::new(s.name, service(s.clone()))),
        )
        .consecutive_failures(Some(1))
        .max_ejection_percent(100.0)
        .panic_threshold(50.0)
        .panic_mode(mode)
        .rng(Rng::seeded(5))
        .build()
        .unwrap();
    (router, sims)
}

#[tokio::test(start_paused = true)]
async fn panic_fail_fast_rejects_with_no_healthy_backend() {
    let (mut router, sims) = all_down_router(PanicMode::FailFast);
    for i in 0..20 {
        let _ = send(&mut router, req(i)).await;
    }
    let total: u64 = sims.iter().map(|s| hits(s)).sum();
    // Two ejections bring health to 33 % × 1.4 = 47 % < 50 %: panic, fail fast.
    assert!(total <= 3, "{total} calls reached a backend");
    let err = send(&mut router, req(99)).await.unwrap_err();
    let typed = err.downcast_ref::<NoHealthyBackend>().expect("typed error");
    assert_eq!(typed.backends(), 3);
    assert_eq!(sims.iter().map(|s| hits(s)).sum::<u64>(), total);
}

#[tokio::test(start_paused = true)]
async fn panic_route_to_all_keeps_sending_to_every_backend() {
    let (mut router, sims) = all_down_router(PanicMode::RouteToAll);
    for i in 0..300 {
        let err = send(&mut router, req(i)).await.unwrap_err();
        assert!(err.downcast_ref::<NoHealthyBackend>().is_none());
    }
    for s in &sims {
        assert!(hits(s) > 50, "{} got {}", s.name, hits(s));
    }
}

/// One backend of three answers in 100 ms, the others in 10 ms: the latency rule
/// ejects it and it gets no more calls.
#[tokio::test(start_paused = true)]
async fn latency_outlier_loses_its_traffic() {
    let (a, b, c) = (sim("a"), sim("b"), sim("slow"));
    a.latency_ms.store(10, Ordering::SeqCst);
    b.latency_ms.store(10, Ordering::SeqCst);
    c.latency_ms.store(100, Ordering::SeqCst);
    let (log, listener) = events();
    let mut router = Failover::builder()
        // Pinned: the test watches one ejection with the load-only selection.
        .selection(Selection::PowerOfTwoChoices)
        .base_ejection_time(Duration::from_secs(30))
        .max_ejection_time(Duration::from_secs(300))
        .backend(Backend::new("a", service(a.clone())))
        .backend(Backend::new("b", service(b.clone())))
        .backend(Backend::new("slow", service(c.clone())))
        .interval(Duration::from_secs(1))
        .min_requests(5)
        .listener(listener)
        .rng(Rng::seeded(6))
        .build()
        .unwrap();
    // Sequential calls: about 3 s of virtual time.
    for i in 0..100 {
        send(&mut router, req(i)).await.unwrap();
    }
    assert!(log.lock().unwrap().iter().any(|e| matches!(
        e,
        FailoverEvent::Ejected { backend, reason: EjectReason::Latency, .. } if &**backend == "slow"
    )));
    let before = hits(&c);
    for i in 0..100 {
        send(&mut router, req(i)).await.unwrap();
    }
    assert_eq!(
        hits(&c),
        before,
        "the slow backend gets nothing while ejected"
    );
}

/// Each request fails on the first backend it reaches; with a retry layer above, the
/// retry never goes back to a backend that already failed the request.
#[cfg(feature = "retry")]
#[tokio::test(start_paused = true)]
async fn a_retried_request_never_returns_to_a_backend_that_failed_it() {
    let served: Arc<Mutex<std::collections::HashMap<u64, Vec<&'static str>>>> = Arc::default();
    let make = |name: &'static str| {
        let served = served.clone();
        service_fn(move |r: Req| {
            let served = served.clone();
            async move {
                let mut map = served.lock().unwrap();
                let seen = map.entry(r.id).or_default();
                seen.push(name);
                if seen.len() == 1 {
                    Err::<&'static str, BoxError>("first attempt fails".into())
                } else {
                    Ok(name)
                }
            }
        })
    };
    let router = Failover::builder()
        .backends(["a", "b", "c"].map(|n| Backend::new(n, make(n))))
        .consecutive_failures(None)
        .failure_rate(None)
        .success_rate_drop(None)
        .tried(tried_fn(|r: &Req| Some(&r.tried)))
        .rng(Rng::seeded(7))
        .build()
        .unwrap();
    let mut svc = tower::ServiceBuilder::new()
        .layer(retry_layer())
        .service(router);
    for i in 0..200 {
        send(&mut svc, req(i)).await.unwrap();
    }
    for (id, backends) in served.lock().unwrap().iter() {
        assert_eq!(backends.len(), 2, "request {id}");
        assert_ne!(
            backends[0], backends[1],
            "request {id} went back to {}",
            backends[0]
        );
    }
}

/// Without a tried set the router may pick the same backend again: the test above is
/// not passing by chance.
#[tokio::test(start_paused = true)]
async fn without_a_tried_set_repeats_happen() {
    let a = sim("a");
    let b = sim("b");
    let mut router = Failover::builder()
        .backend(Backend::new("a", service(a.clone())))
        .backend(Backend::new("b", service(b.clone())))
        .rng(Rng::seeded(8))
        .build()
        .unwrap();
    let mut same = 0;
    for i in 0..100 {
        let first = send(&mut router, req(i)).await.unwrap();
        let second = send(&mut router, req(i)).await.unwrap();
        same += (first == second) as u32;
    }
    assert!(same > 10);
}

/// Backends are added and removed while 200 slow calls are in flight: every call
/// succeeds, the removed backend finishes its calls and gets no new ones.
#[tokio::test(start_paused = true)]
async fn membership_changes_under_load_lose_no_request() {
    let (a, b, c) = (sim("a"), sim("b"), sim("c"));
    for s in [&a, &b, &c] {
        s.latency_ms.store(50, Ordering::SeqCst);
    }
    let router = Failover::builder()
        .backend(Backend::new("a", service(a.clone())))
        .backend(Backend::new("b", service(b.clone())))
        .latency_factor(None)
        .rng(Rng::seeded(9))
        .build()
        .unwrap();
    let handle = router.handle();
    let mut tasks = Vec::new();
    for i in 0..400u64 {
        if i == 100 {
            handle.add(Backend::new("c", service(c.clone()))).unwrap();
            assert!(handle.add(Backend::new("c", service(c.clone()))).is_err());
        }
        if i == 200 {
            assert!(handle.remove("a"));
            assert!(handle.backend("a").is_none());
        }
        let mut r = router.clone();
        tasks.push(tokio::spawn(async move { send(&mut r, req(i)).await }));
        tokio::time::advance(Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let a_served = a.served.lock().unwrap().clone();
    assert!(
        a_served.iter().all(|&id| id < 200),
        "no call to a after removal"
    );
    assert!(a_served.len() > 30);
    let c_served = c.served.lock().unwrap().clone();
    assert!(c_served.iter().all(|&id| id >= 100));
    assert!(c_served.len() > 60);
}

#[tokio::test(start_paused = true)]
async fn a_backend_that_is_not_ready_is_skipped() {
    let (mock_a, mut ha) = tower_test::mock::pair::<Req, &'static str>();
    let (mock_b, mut hb) = tower_test::mock::pair::<Req, &'static str>();
    let mut router = Failover::builder()
        .backend(Backend::new("a", mock_a))
        .backend(Backend::new("b", mock_b))
        .build()
        .unwrap();
    ha.allow(0);
    hb.allow(1);
    let mut task = tokio_test::task::spawn(());
    task.enter(|cx, _| {
        assert!(router.poll_ready(cx).is_ready());
    });
    let fut = router.call(req(1));
    let (r, send) = hb.next_request().await.unwrap();
    assert_eq!(r.id, 1);
    send.send_response("b");
    assert_eq!(fut.await.unwrap(), "b");
    // Both pending: the router is pending, and wakes when one becomes ready.
    task.enter(|cx, _| {
        assert!(router.poll_ready(cx).is_pending());
    });
    ha.allow(1);
    assert!(task.is_woken());
    task.enter(|cx, _| {
        assert!(router.poll_ready(cx).is_ready());
    });
    let fut = router.call(req(2));
    let (r, send) = ha.next_request().await.unwrap();
    assert_eq!(r.id, 2);
    send.send_response("a");
    assert_eq!(fut.await.unwrap(), "a");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_response_future_records_nothing_and_frees_the_slot() {
    let (mock, mut h) = tower_test::mock::pair::<Req, &'static str>();
    let mut router = Failover::builder()
        .backend(Backend::new("a", mock))
        .build()
        .unwrap();
    let handle = router.handle();
    h.allow(1);
    router.ready().await.unwrap();
    let fut = router.call(req(1));
    let _pending = h.next_request().await.unwrap();
    assert_eq!(handle.backend("a").unwrap().in_flight, 1);
    drop(fut);
    let s = handle.backend("a").unwrap();
    assert_eq!((s.in_flight, s.successes, s.failures), (0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn manual_eject_and_restore() {
    let (a, b) = (sim("a"), sim("b"));
    let (log, listener) = events();
    let mut router = Failover::builder()
        .backend(Backend::new("a", service(a.clone())))
        .backend(Backend::new("b", service(b.clone())))
        .listener(listener)
        .build()
        .unwrap();
    let handle = router.handle();
    assert!(handle.eject("a"));
    assert!(!handle.eject("nope"));
    assert_eq!(handle.backend("a").unwrap().health, BackendHealth::Disabled);
    for i in 0..50 {
        assert_eq!(send(&mut router, req(i)).await.unwrap(), "b");
    }
    assert!(handle.restore("a"));
    for i in 0..50 {
        send(&mut router, req(i)).await.unwrap();
    }
    assert!(hits(&a) > 10);
    let log = log.lock().unwrap();
    assert!(log.contains(&FailoverEvent::Restored {
        backend: "a".into()
    }));
}

#[tokio::test(start_paused = true)]
async fn weighted_round_robin_follows_weights_exactly() {
    let (a, b) = (sim("a"), sim("b"));
    let mut router = Failover::builder()
        .backend(Backend::new("a", service(a.clone())).weight(1))
        .backend(Backend::new("b", service(b.clone())).weight(3))
        .selection(Selection::WeightedRoundRobin)
        .build()
        .unwrap();
    for i in 0..400 {
        send(&mut router, req(i)).await.unwrap();
    }
    assert_eq!((hits(&a), hits(&b)), (100, 300));
}

/// Ten primaries with five disabled: tier 0's health is 50 % × 1.4 = 70 %, so 30 % of
/// the traffic spills to tier 1.
#[tokio::test(start_paused = true)]
async fn traffic_spills_to_the_next_tier_in_proportion() {
    let names: [&'static str; 10] = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"];
    let secondary = sim("s");
    let mut router = Failover::builder()
        .backends(names.map(|n| Backend::new(n, service(sim(n)))))
        .backend(Backend::new("s", service(secondary.clone())).tier(1))
        .rng(Rng::seeded(10))
        .build()
        .unwrap();
    let handle = router.handle();
    for n in &names[..5] {
        handle.eject(n);
    }
    for i in 0..10_000 {
        send(&mut router, req(i)).await.unwrap();
    }
    let share = hits(&secondary) as f64 / 10_000.0;
    assert!((share - 0.30).abs() < 0.02, "tier 1 got {share}");
}

/// Failures count as cost: a backend that fails fast gets less traffic than its
/// healthy peer under the power of two choices, even before it is ejected.
#[tokio::test(start_paused = true)]
async fn failing_backend_looks_expensive_to_the_selection() {
    let (a, b) = (sim("a"), sim("b"));
    b.down.store(true, Ordering::SeqCst);
    let mut router = Failover::builder()
        .backend(Backend::new("a", service(a.clone())))
        .backend(Backend::new("b", service(b.clone())))
        .consecutive_failures(None)
        .failure_rate(None)
        .success_rate_drop(None)
        .rng(Rng::seeded(11))
        .build()
        .unwrap();
    for i in 0..200 {
        let _ = send(&mut router, req(i)).await;
    }
    assert!(hits(&b) < 20, "the failing backend got {}", hits(&b));
}

/// Backends follow a `Discover` stream: inserted ones take traffic, removed ones stop.
#[tokio::test(start_paused = true)]
async fn backends_follow_a_discover_stream() {
    use futures::channel::mpsc;
    use tower::discover::Change;

    let (seed, x, y) = (sim("seed"), sim("x"), sim("y"));
    let mut router = Failover::builder()
        .backend(Backend::new("seed", service(seed.clone())).tier(1))
        .build()
        .unwrap();
    let handle = router.handle();
    let (tx, rx) = mpsc::unbounded::<Result<Change<u32, _>, Infallible>>();
    let driver = tokio::spawn({
        let handle = handle.clone();
        async move {
            handle
                .discover(rx, |key, svc| Backend::new(format!("d{key}"), svc))
                .await
        }
    });
    tx.unbounded_send(Ok(Change::Insert(1, service(x.clone()))))
        .unwrap();
    tx.unbounded_send(Ok(Change::Insert(2, service(y.clone()))))
        .unwrap();
    tokio::task::yield_now().await;
    for i in 0..100 {
        send(&mut router, req(i)).await.unwrap();
    }
    assert_eq!(hits(&seed), 0, "tier 0 (discovered) takes everything");
    assert!(hits(&x) > 20 && hits(&y) > 20);
    tx.unbounded_send(Ok(Change::Remove(1))).unwrap();
    tokio::task::yield_now().await;
    let x_before = hits(&x);
    for i in 0..50 {
        send(&mut router, req(i)).await.unwrap();
    }
    assert_eq!(hits(&x), x_before);
    drop(tx);
    driver.await.unwrap().unwrap();
    let ids: Vec<String> = handle.backends().iter().map(|b| b.id.to_string()).collect();
    assert_eq!(ids, ["seed", "d2"]);
}

/// A service whose `poll_ready` fails when `broken`.
#[derive(Clone)]
struct Flaky {
    name: &'static str,
    broken: bool,
    polls: Arc<AtomicU64>,
}

impl Service<Req> for Flaky {
    type Response = &'static str;
    type Error = BoxError;
    type Future = std::future::Ready<Result<&'static str, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        std::task::Poll::Ready(if self.broken {
            Err("broken".into())
        } else {
            Ok(())
        })
    }

    fn call(&mut self, _: Req) -> Self::Future {
        std::future::ready(Ok(self.name))
    }
}

/// A backend whose `poll_ready` fails counts a failure each time and is skipped;
/// every call goes to the healthy backend.
#[tokio::test(start_paused = true)]
async fn a_backend_failing_poll_ready_is_skipped_and_counted() {
    let polls = Arc::new(AtomicU64::new(0));
    let flaky = |name, broken| Flaky {
        name,
        broken,
        polls: if broken {
            polls.clone()
        } else {
            Arc::default()
        },
    };
    let mut router = Failover::builder()
        .backend(Backend::new("a", flaky("a", true)))
        .backend(Backend::new("b", flaky("b", false)))
        .consecutive_failures(None)
        .build()
        .unwrap();
    let handle = router.handle();
    for i in 0..50 {
        assert_eq!(send(&mut router, req(i)).await.unwrap(), "b");
    }
    let a = handle.backend("a").unwrap();
    assert!(polls.load(Ordering::SeqCst) > 0);
    assert_eq!(a.failures, polls.load(Ordering::SeqCst));
    assert_eq!(handle.backend("b").unwrap().successes, 50);
}

#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn http_requests_carry_their_tried_set_in_extensions() {
    use tower_fortify::http::HttpTried;

    let make = |name: &'static str| {
        service_fn(move |_: http::Request<()>| async move { Ok::<_, BoxError>(name) })
    };
    let mut router = Failover::builder()
        .backends(["a", "b"].map(|n| Backend::new(n, make(n))))
        .tried(HttpTried)
        .build()
        .unwrap();
    for _ in 0..50 {
        let tried = Tried::new();
        let mut first = http::Request::new(());
        first.extensions_mut().insert(tried.clone());
        let mut second = http::Request::new(());
        second.extensions_mut().insert(tried.clone());
        let x = router.ready().await.unwrap().call(first).await.unwrap();
        let y = router.ready().await.unwrap().call(second).await.unwrap();
        assert_ne!(x, y);
        assert_eq!(tried.len(), 2);
    }
}

fn ewma_router(
    sims: [&Arc<Sim>; 3],
) -> Failover<impl Service<Req, Response = &'static str, Error = BoxError> + Clone> {
    Failover::builder()
        .backends(sims.map(|s| Backend::new(s.name, service(s.clone()))))
        .selection(Selection::PeakEwma {
            decay: Duration::from_secs(1),
            default_rtt: Duration::from_millis(10),
        })
        .consecutive_failures(None)
        .failure_rate(None)
        .success_rate_drop(None)
        .latency_factor(None)
        .rng(Rng::seeded(12))
        .build()
        .unwrap()
}

/// Peak-EWMA selection: a backend 4× slower than its peers (not slow enough to be
/// ejected) gets little traffic: only when its estimate has decayed while idle.
#[tokio::test(start_paused = true)]
async fn peak_ewma_avoids_a_slow_backend() {
    let (a, b, slow) = (sim("a"), sim("b"), sim("slow"));
    a.latency_ms.store(10, Ordering::SeqCst);
    b.latency_ms.store(10, Ordering::SeqCst);
    slow.latency_ms.store(40, Ordering::SeqCst);
    let mut router = ewma_router([&a, &b, &slow]);
    for i in 0..400 {
        send(&mut router, req(i)).await.unwrap();
    }
    assert!(hits(&slow) < 20, "slow got {}", hits(&slow));
}

/// A backend that fails instantly does not look cheap to the latency estimate: its
/// failures count as cost.
#[tokio::test(start_paused = true)]
async fn peak_ewma_counts_fast_failures_as_cost() {
    let (a, b, broken) = (sim("a"), sim("b"), sim("broken"));
    a.latency_ms.store(10, Ordering::SeqCst);
    b.latency_ms.store(10, Ordering::SeqCst);
    broken.down.store(true, Ordering::SeqCst);
    let mut router = ewma_router([&a, &b, &broken]);
    for i in 0..400 {
        let _ = send(&mut router, req(i)).await;
    }
    assert!(hits(&broken) < 40, "broken got {}", hits(&broken));
}

#[tokio::test(start_paused = true)]
async fn peak_ewma_rejects_a_zero_decay() {
    let err = Failover::builder()
        .backend(Backend::new("a", service(sim("a"))))
        .selection(Selection::PeakEwma {
            decay: Duration::ZERO,
            default_rtt: Duration::from_millis(1),
        })
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "failover.selection.decay");
}

/// Ejections grow as base × times ejected, are capped, and the count shrinks again
/// while the backend stays healthy.
#[tokio::test(start_paused = true)]
async fn ejection_time_grows_is_capped_and_decays_while_healthy() {
    let (a, b) = (sim("a"), sim("b"));
    let (log, listener) = events();
    let mut router = Failover::builder()
        .backend(Backend::new("a", service(a.clone())))
        .backend(Backend::new("b", service(b.clone())))
        .consecutive_failures(Some(1))
        .base_ejection_time(Duration::from_secs(10))
        .max_ejection_time(Duration::from_secs(25))
        .listener(listener)
        .rng(Rng::seeded(13))
        .build()
        .unwrap();
    let handle = router.handle();
    a.down.store(true, Ordering::SeqCst);
    let eject_once = async |router: &mut Failover<_>| {
        let before = handle.backend("a").unwrap().ejections;
        for i in 0..100 {
            let _ = send(router, req(i)).await;
            if handle.backend("a").unwrap().ejections > before {
                return;
            }
        }
        panic!("a was not ejected");
    };
    eject_once(&mut router).await;
    tokio::time::advance(Duration::from_secs(11)).await;
    eject_once(&mut router).await; // on probation: its first failure ejects it again
    tokio::time::advance(Duration::from_secs(21)).await;
    eject_once(&mut router).await;
    assert_eq!(handle.backend("a").unwrap().ejection_level, 3);
    // Healthy again: 25 s to the end of the ejection, then 30 s = three steps of decay.
    a.down.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(26)).await;
    for i in 0..20 {
        send(&mut router, req(i)).await.unwrap();
    }
    assert_eq!(handle.backend("a").unwrap().ejection_level, 3);
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(handle.backend("a").unwrap().ejection_level, 0);
    a.down.store(true, Ordering::SeqCst);
    eject_once(&mut router).await;
    let durations: Vec<u64> = log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            FailoverEvent::Ejected { duration, .. } => Some(duration.as_secs()),
            _ => None,
        })
        .collect();
    assert_eq!(durations, [10, 20, 25, 10]);
}

/// When every backend already took the request, the call still goes out (to the one
/// readied) rather than failing.
#[tokio::test(start_paused = true)]
async fn a_request_that_tried_every_backend_is_still_sent() {
    let (a, b) = (sim("a"), sim("b"));
    let mut router = Failover::builder()
        .backend(Backend::new("a", service(a.clone())))
        .backend(Backend::new("b", service(b.clone())))
        .tried(tried_fn(|r: &Req| Some(&r.tried)))
        .build()
        .unwrap();
    let r = req(1);
    let first = send(&mut router, r.clone()).await.unwrap();
    let second = send(&mut router, r.clone()).await.unwrap();
    assert_ne!(first, second);
    assert_eq!(r.tried.len(), 2);
    send(&mut router, r.clone()).await.unwrap();
    assert_eq!(hits(&a) + hits(&b), 3);
}

/// A listener may use the handle: events are emitted with no lock held.
#[tokio::test(start_paused = true)]
async fn a_listener_may_read_the_handle() {
    let (a, b) = (sim("a"), sim("b"));
    a.down.store(true, Ordering::SeqCst);
    let slot: Arc<std::sync::OnceLock<tower_fortify::failover::FailoverHandle<_>>> = Arc::default();
    let seen = Arc::new(AtomicU64::new(0));
    let (listener_slot, listener_seen) = (slot.clone(), seen.clone());
    let mut router = Failover::builder()
        .backend(Backend::new("a", service(a.clone())))
        .backend(Backend::new("b", service(b.clone())))
        .consecutive_failures(Some(2))
        .listener(move |e: &Event| {
            if let Event::Failover(FailoverEvent::Ejected { .. }) = e {
                let handle = listener_slot.get().expect("set before traffic");
                let ejected = handle
                    .backends()
                    .iter()
                    .filter(|s| matches!(s.health, BackendHealth::Ejected { .. }))
                    .count();
                listener_seen.store(ejected as u64, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    assert!(slot.set(router.handle()).is_ok());
    for i in 0..20 {
        let _ = send(&mut router, req(i)).await;
    }
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

/// Many clones on a multi-thread runtime, failures, ejections, manual ejections and
/// membership changes at once: afterwards every backend's in-flight count is back to
/// zero and its success and failure counts add up to the calls it received.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_stay_consistent_under_concurrency() {
    let sims: Vec<Arc<Sim>> = ["a", "b", "c", "d"].into_iter().map(sim).collect();
    sims[1].fail_per_ten.store(5, Ordering::SeqCst);
    let router = Failover::builder()
        .backends(
            sims.iter()
                .map(|s| Backend::new(s.name, service(s.clone()))),
        )
        .consecutive_failures(Some(3))
        .base_ejection_time(Duration::from_millis(1))
        .max_ejection_percent(50.0)
        .latency_factor(None)
        .build()
        .unwrap();
    let handle = router.handle();
    let tasks: Vec<_> = (0..32u64)
        .map(|t| {
            let mut r = router.clone();
            let handle = handle.clone();
            let extra = sims[3].clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    let _ = send(&mut r, req(t * 1000 + i)).await;
                    if t == 0 && i % 50 == 25 {
                        handle.eject("c");
                        tokio::task::yield_now().await;
                        handle.restore("c");
                    }
                    if t == 1 && i == 100 {
                        handle.remove("d");
                    }
                    if t == 1 && i == 150 {
                        handle
                            .add(Backend::new("d", service(extra.clone())))
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let statuses = handle.backends();
    assert_eq!(statuses.len(), 4);
    for s in &statuses {
        assert_eq!(s.in_flight, 0, "{}", s.id);
    }
    // `d` was removed and re-added: its first incarnation's counts left with it, so
    // compare the other three.
    assert_eq!(
        statuses
            .iter()
            .filter(|s| &*s.id != "d")
            .map(|s| s.successes + s.failures)
            .sum::<u64>(),
        sims[..3].iter().map(|s| hits(s)).sum::<u64>()
    );
}

#[cfg(feature = "circuit-breaker")]
mod breaker_aware {
    use super::*;
    use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    use tower_fortify::classify::{Classify, DefaultClassifier, NeverEos};
    use tower_fortify::failover::BreakerAware;
    use tower_layer::Layer;

    const OPEN: Duration = Duration::from_secs(27);

    /// `a` (tier 0) sits behind a breaker that opens for `OPEN` after two failures; `b`
    /// is tier 1. `a` fails twice — its breaker opens and the router ejects it for
    /// 5 s — and then recovers at once. Traffic runs for 40 s; returns how often the
    /// router ejected `a` and when `a` served again.
    async fn run<C>(classifier: C) -> (u64, Option<Duration>)
    where
        C: Classify<
                &'static str,
                tower_fortify::circuit_breaker::error::BreakerError,
                Eos = NeverEos,
            > + Clone
            + Send
            + Sync
            + 'static,
    {
        let (a, b) = (sim("a"), sim("b"));
        // One breaker per backend (b never fails, so its breaker stays closed).
        let breaker = || {
            CircuitBreakerLayer::builder()
                .consecutive_failures(2)
                .open_duration(OPEN)
                .build()
                .unwrap()
        };
        let mut router = Failover::builder()
            .backend(Backend::new("a", breaker().layer(service(a.clone()))))
            .backend(Backend::new("b", breaker().layer(service(b.clone()))).tier(1))
            .consecutive_failures(Some(2))
            .base_ejection_time(Duration::from_secs(5))
            .max_ejection_time(Duration::from_secs(60))
            .max_ejection_percent(50.0)
            .classifier(classifier)
            .build()
            .unwrap();
        let handle = router.handle();
        a.down.store(true, Ordering::SeqCst);
        for i in 0..2 {
            assert!(send(&mut router, req(i)).await.is_err());
        }
        a.down.store(false, Ordering::SeqCst);
        let start = tokio::time::Instant::now();
        let mut back = None;
        for i in 0..400 {
            tokio::time::advance(Duration::from_millis(100)).await;
            if let Ok("a") = send(&mut router, req(i)).await {
                back.get_or_insert(start.elapsed());
            }
        }
        (handle.backend("a").unwrap().ejections, back)
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_holds_its_backend_out_without_growing_ejections() {
        let (ejections, back) = run(BreakerAware::default()).await;
        assert_eq!(
            ejections, 1,
            "the open breaker's rejections are not outlier failures"
        );
        let back = back.expect("a serves again");
        // The breaker admits again `OPEN` after it opened; `a` is back within 200 ms.
        assert!(
            back >= OPEN - Duration::from_millis(100) && back <= OPEN + Duration::from_millis(200),
            "a came back after {back:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_it_the_router_keeps_ejecting_a_backend_whose_breaker_is_open() {
        let (ejections, back) = run(DefaultClassifier).await;
        assert!(ejections >= 3, "re-ejected on probation: {ejections}");
        let back = back.expect("a serves again");
        // Ejected for 5, 10, then 15 s: back only at 30 s, 3 s after its breaker.
        assert!(
            back > OPEN + Duration::from_secs(2),
            "a came back after {back:?}"
        );
    }
}

/// A backend that asked to be left alone (`Overloaded` with a delay: a server hint,
/// or its breaker open under `BreakerAware`) is `HeldOff`, not `Ejected`, and panic
/// routing does not send to it: with every backend held off the router fails fast.
#[tokio::test(start_paused = true)]
async fn panic_routing_never_sends_to_a_held_off_backend() {
    use tower_fortify::classify::{Outcome, ServerHint, classify_fn};
    let (a, b) = (sim("a"), sim("b"));
    a.down.store(true, Ordering::SeqCst);
    b.down.store(true, Ordering::SeqCst);
    let hold = classify_fn(|r: Result<&&'static str, &BoxError>| match r {
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Overloaded(ServerHint::RetryAfter(Duration::from_secs(5))),
    });
    let mut router = Failover::builder()
        .backend(Backend::new("a", service(a.clone())))
        .backend(Backend::new("b", service(b.clone())))
        .classifier(hold)
        // Both may be out at once (hold-offs count towards the ejected share).
        .max_ejection_percent(100.0)
        .max_server_delay(Duration::from_secs(5))
        .build()
        .unwrap();
    let handle = router.handle();
    for i in 0..10 {
        let _ = send(&mut router, req(i)).await;
    }
    assert_eq!(
        hits(&a) + hits(&b),
        2,
        "each backend answered once, then was held off"
    );
    for id in ["a", "b"] {
        assert!(
            matches!(
                handle.backend(id).unwrap().health,
                BackendHealth::HeldOff { .. }
            ),
            "{id}: {:?}",
            handle.backend(id).unwrap().health
        );
        assert_eq!(handle.backend(id).unwrap().ejections, 0);
    }
    let err = send(&mut router, req(99)).await.unwrap_err();
    assert!(err.is::<NoHealthyBackend>(), "{err}");
    // The hold ends after the hinted 5 s.
    tokio::time::advance(Duration::from_millis(5001)).await;
    a.down.store(false, Ordering::SeqCst);
    b.down.store(false, Ordering::SeqCst);
    assert!(send(&mut router, req(100)).await.is_ok());
}

/// While a backend's own breaker is not closed, the router leaves that backend's
/// failures to it: no ejection, however many fail. With the breaker closed, the same
/// failures eject the backend.
#[cfg(feature = "circuit-breaker")]
#[tokio::test(start_paused = true)]
async fn failures_behind_an_open_breaker_are_left_to_the_breaker() {
    use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    for breaker_open in [true, false] {
        let (a, b) = (sim("a"), sim("b"));
        a.down.store(true, Ordering::SeqCst);
        // A breaker the router knows of, kept out of the call path here so the
        // failures reach the router whatever its state.
        let breaker = CircuitBreakerLayer::builder().build().unwrap().handle();
        if breaker_open {
            breaker.force_open();
        }
        let mut router = Failover::builder()
            .backend(Backend::new("a", service(a.clone())).breaker(breaker))
            .backend(Backend::new("b", service(b.clone())))
            .consecutive_failures(Some(3))
            .selection(Selection::WeightedRoundRobin)
            .build()
            .unwrap();
        let handle = router.handle();
        for i in 0..20 {
            let _ = send(&mut router, req(i)).await;
        }
        let ejections = handle.backend("a").unwrap().ejections;
        if breaker_open {
            assert_eq!(ejections, 0, "the open breaker is in charge");
            assert_eq!(handle.backend("a").unwrap().failures, 0);
        } else {
            assert_eq!(
                ejections, 1,
                "a closed breaker leaves the failures to the router"
            );
        }
    }
}

/// Every error is an overload with a `Retry-After` of `hint`.
fn hinting(
    hint: Duration,
) -> impl tower_fortify::classify::Classify<
    &'static str,
    BoxError,
    Eos = tower_fortify::classify::NeverEos,
> + Clone
+ Send
+ Sync
+ 'static {
    use tower_fortify::classify::{Outcome, ServerHint, classify_fn};
    classify_fn(move |r: Result<&&'static str, &BoxError>| match r {
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Overloaded(ServerHint::RetryAfter(hint)),
    })
}

fn hinted_router(
    sims: &[Arc<Sim>],
    hint: Duration,
    max_server_delay: Option<Duration>,
) -> Failover<
    impl Service<Req, Response = &'static str, Error = BoxError> + Clone,
    impl tower_fortify::classify::Classify<&'static str, BoxError> + Clone,
> {
    let mut builder = Failover::builder()
        .backends(
            sims.iter()
                .map(|s| Backend::new(s.name, service(s.clone()))),
        )
        // Load-only selection: these mocks answer in zero time, which peak-EWMA would
        // compare with the 30 ms estimate of a backend without a measurement.
        .selection(Selection::PowerOfTwoChoices)
        .base_ejection_time(Duration::from_secs(30))
        .max_ejection_time(Duration::from_secs(300))
        .max_ejection_percent(50.0)
        .overprovisioning_factor(1.4)
        .panic_threshold(50.0)
        .panic_mode(PanicMode::FailFast)
        .rng(Rng::seeded(11))
        .classifier(hinting(hint));
    if let Some(max) = max_server_delay {
        builder = builder.max_server_delay(max);
    }
    builder.build().unwrap()
}

/// One `503 Retry-After: 86400` used to hold a backend out for a day; the hint is
/// capped by `max_server_delay`, by default the base ejection time.
#[tokio::test(start_paused = true)]
async fn a_day_long_server_hint_is_capped_by_max_server_delay() {
    for (max, cap) in [
        (None, Duration::from_secs(30)),
        (Some(Duration::from_secs(2)), Duration::from_secs(2)),
    ] {
        let sims = [sim("a"), sim("b"), sim("c"), sim("d")];
        let mut router = hinted_router(&sims, Duration::from_secs(86_400), max);
        sims[0].down.store(true, Ordering::SeqCst);
        let mut i = 0;
        while hits(&sims[0]) == 0 {
            let _ = send(&mut router, req(i)).await;
            i += 1;
        }
        sims[0].down.store(false, Ordering::SeqCst);
        tokio::time::advance(cap - Duration::from_millis(1)).await;
        for i in 0..50 {
            send(&mut router, req(i)).await.unwrap();
        }
        assert_eq!(hits(&sims[0]), 1, "held out until the cap");
        // Within a millisecond of the cap (the pool's times are never zero: a hold-off
        // at its first instant ends a nanosecond late).
        tokio::time::advance(Duration::from_millis(2)).await;
        for i in 0..50 {
            send(&mut router, req(i)).await.unwrap();
        }
        assert!(hits(&sims[0]) > 1, "back after {cap:?}");
    }
}

/// A fleet-wide `429` used to hold every backend out, and with fail-fast panic mode
/// reject every call for the hint's duration; hold-offs now count in the maximum
/// ejected share.
#[tokio::test(start_paused = true)]
async fn a_fleet_wide_server_hint_holds_out_at_most_the_ejected_share() {
    let sims = [sim("a"), sim("b"), sim("c"), sim("d")];
    let mut router = hinted_router(&sims, Duration::from_secs(10), None);
    let handle = router.handle();
    for s in &sims {
        s.down.store(true, Ordering::SeqCst);
    }
    for i in 0..40 {
        let _ = send(&mut router, req(i)).await;
    }
    let held = handle
        .backends()
        .iter()
        .filter(|b| b.health != BackendHealth::Healthy)
        .count();
    assert_eq!(held, 2, "half of four");
    for s in &sims {
        s.down.store(false, Ordering::SeqCst);
    }
    for i in 0..40 {
        send(&mut router, req(i))
            .await
            .expect("two backends stay in rotation: no panic, no rejection");
    }
}

/// A router that readied a backend before `handle.eject(..)` used to send its next
/// call there, even after a fresh `poll_ready`.
#[tokio::test(start_paused = true)]
async fn an_ejection_takes_effect_on_the_next_call_of_a_readied_router() {
    for poll_again in [true, false] {
        let (a, b) = (sim("a"), sim("b"));
        let mut router = Failover::builder()
            .backend(Backend::new("a", service(a.clone())))
            .backend(Backend::new("b", service(b.clone())))
            .max_ejection_percent(100.0)
            .build()
            .unwrap();
        let handle = router.handle();
        // Ready `a`: the only backend in rotation at that moment.
        handle.eject("b");
        let mut clone = router.clone();
        clone.ready().await.unwrap();
        handle.restore("b");
        handle.eject("a");
        if poll_again {
            clone.ready().await.unwrap();
        }
        assert_eq!(clone.call(req(1)).await.unwrap(), "b");
        assert_eq!(hits(&a), 0, "poll_ready again: {poll_again}");
        // The router itself was never readied: unaffected.
        assert_eq!(send(&mut router, req(2)).await.unwrap(), "b");
    }
}

/// Weights and tiers change while the router serves: the shares follow at once, and
/// a backend's health and counters stay.
#[tokio::test(start_paused = true)]
async fn weights_and_tiers_change_at_runtime() {
    async fn count<S: Service<(), Response = u32, Error = BoxError>>(
        router: &mut S,
        n: u32,
    ) -> [u32; 2] {
        let mut hits = [0u32; 2];
        for _ in 0..n {
            let id = router.ready().await.unwrap().call(()).await.unwrap();
            hits[id as usize] += 1;
        }
        hits
    }
    let echo = |id: u32| service_fn(move |_: ()| async move { Ok::<_, BoxError>(id) });
    let mut router = Failover::builder()
        .selection(Selection::WeightedRoundRobin)
        .backend(Backend::new("a", echo(0)))
        .backend(Backend::new("b", echo(1)))
        .build()
        .unwrap();
    let handle = router.handle();
    assert_eq!(count(&mut router, 100).await, [50, 50]);
    handle.set_weight("b", 3).unwrap();
    assert_eq!(count(&mut router, 100).await, [25, 75]);
    handle.set_tier("b", 1).unwrap();
    assert_eq!(
        count(&mut router, 100).await,
        [100, 0],
        "tier 0 takes everything"
    );
    let b = handle.backend("b").unwrap();
    assert_eq!((b.tier, b.weight, b.successes), (1, 3, 125));
    assert_eq!(
        handle.set_weight("b", 0).unwrap_err().field(),
        "failover.backends.weight"
    );
    assert_eq!(
        handle.set_tier("zz", 0).unwrap_err().field(),
        "failover.backends.id"
    );
}
