//! The rate limiter: GCRA against a reference token bucket (proptest), quotas in
//! paused time, keys with their own quotas and a bound that never refuses a key,
//! refusals as 429 / RESOURCE_EXHAUSTED, named fields, no allocation per call.

#![cfg(feature = "rate-limit")]

use std::time::Duration;

use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::rate_limit::{RateLimitLayer, RateLimited};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

fn echo() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|x: u32| async move { Ok::<_, BoxError>(x) })
}

/// A token bucket written plainly: `burst` tokens, one more every `interval` ns, in
/// exact integer arithmetic (tokens scaled by `interval`).
struct Reference {
    interval: u64,
    burst: u64,
    /// Tokens × interval, and when they were counted.
    level: u64,
    at: u64,
}

impl Reference {
    fn new(interval: u64, burst: u64) -> Self {
        Self {
            interval,
            burst,
            level: burst * interval,
            at: 0,
        }
    }
    fn admit(&mut self, now: u64) -> bool {
        self.level = (self.level + (now - self.at)).min(self.burst * self.interval);
        self.at = now;
        if self.level >= self.interval {
            self.level -= self.interval;
            true
        } else {
            false
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every admission decision matches the reference bucket, for any rate, burst and
    /// arrival pattern (gaps in milliseconds, including bursts of zero gaps).
    #[test]
    fn gcra_agrees_with_a_token_bucket(
        per_second in 1u32..2000,
        burst in 1u32..50,
        gaps in proptest::collection::vec(0u64..50, 1..300),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async move {
            let layer = RateLimitLayer::builder()
                .rate(per_second, Duration::from_secs(1))
                .burst(burst)
                .build()
                .unwrap();
            let mut svc = layer.layer(echo());
            let interval = 1_000_000_000 / u64::from(per_second);
            let mut reference = Reference::new(interval, u64::from(burst));
            // The limiter's clock starts at its first call.
            let mut now = 0u64;
            for (i, gap) in gaps.into_iter().enumerate() {
                if i > 0 {
                    tokio::time::advance(Duration::from_millis(gap)).await;
                    now += gap * 1_000_000;
                }
                let got = svc.ready().await.unwrap().call(1).await.is_ok();
                prop_assert_eq!(got, reference.admit(now), "call {} at {} ms", i, now / 1_000_000);
            }
            Ok(())
        })?;
    }
}

/// A burst of `burst`, then one call per interval; the refusal says exactly when.
#[tokio::test(start_paused = true)]
async fn a_quota_admits_its_burst_then_its_rate() {
    let layer = RateLimitLayer::builder()
        .rate(10, Duration::from_secs(1))
        .burst(3)
        .name("api")
        .build()
        .unwrap();
    let mut svc = layer.layer(echo());
    for i in 0..3 {
        svc.ready().await.unwrap().call(i).await.unwrap();
    }
    let err = svc.ready().await.unwrap().call(3).await.unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().expect("RateLimited");
    assert_eq!(limited.retry_after(), Duration::from_millis(100));
    assert_eq!(limited.name(), Some("api"), "the error names the limiter");
    assert_eq!(err.to_string(), "api: rate limit exceeded; retry in 100 ms");
    tokio::time::advance(Duration::from_millis(100)).await;
    svc.ready().await.unwrap().call(4).await.unwrap();
    assert!(svc.ready().await.unwrap().call(5).await.is_err());
}

/// Clones share one quota: two handles on one layer draw from the same bucket.
#[tokio::test(start_paused = true)]
async fn clones_share_the_quota() {
    let layer = RateLimitLayer::builder()
        .rate(1, Duration::from_secs(1))
        .burst(2)
        .build()
        .unwrap();
    let mut a = layer.layer(echo());
    let mut b = a.clone();
    a.ready().await.unwrap().call(1).await.unwrap();
    b.ready().await.unwrap().call(2).await.unwrap();
    assert!(a.ready().await.unwrap().call(3).await.is_err());
    assert!(b.ready().await.unwrap().call(4).await.is_err());
}

/// One quota per key: a noisy tenant is limited, a quiet one is not; at the bound a
/// new key still gets in (a full, idle key is forgotten first).
#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_quota_and_the_bound_admits_new_keys() {
    let layer = RateLimitLayer::builder()
        .rate(1, Duration::from_secs(1))
        .burst(2)
        .keyed(|tenant: &u32| *tenant)
        .max_keys(3)
        .build()
        .unwrap();
    let mut svc = layer.layer(echo());
    for _ in 0..2 {
        svc.ready().await.unwrap().call(7).await.unwrap();
    }
    assert!(
        svc.ready().await.unwrap().call(7).await.is_err(),
        "tenant 7 is over"
    );
    svc.ready().await.unwrap().call(8).await.unwrap();
    for tenant in 100..120 {
        svc.ready().await.unwrap().call(tenant).await.unwrap();
    }
    assert!(layer.keys() <= 3, "{} keys", layer.keys());
}

/// The keyed limiter's handle reads its map as the keyed breaker's and bulkhead's do.
#[tokio::test(start_paused = true)]
async fn the_keyed_handle_says_which_keys_are_tracked() {
    let layer = RateLimitLayer::builder()
        .keyed(|tenant: &u32| *tenant)
        .max_keys(2)
        .build()
        .unwrap();
    let handle = layer.handle();
    assert!(handle.is_empty());
    let mut svc = layer.layer(echo());
    svc.ready().await.unwrap().call(7).await.unwrap();
    assert!(handle.contains_key(&7));
    assert!(!handle.contains_key(&8));
    for tenant in 10..20 {
        svc.ready().await.unwrap().call(tenant).await.unwrap();
    }
    assert_eq!(handle.len(), 2, "bounded by max_keys");
    assert_eq!(handle.len(), layer.keys());
}

/// The handle changes a running limiter's quota, keeping what was spent: a lower
/// rate applies at once, a higher burst from the next call; a bad quota changes
/// nothing and names its field.
#[tokio::test(start_paused = true)]
async fn the_handle_changes_the_quota_keeping_what_was_spent() {
    let per = |rate, burst| {
        RateLimitLayer::builder()
            .rate(rate, Duration::from_secs(1))
            .burst(burst)
    };
    let layer = per(10, 3).build().unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(echo());
    for i in 0..3 {
        svc.ready().await.unwrap().call(i).await.unwrap();
    }
    assert!(
        svc.ready().await.unwrap().call(3).await.is_err(),
        "burst of 3 spent"
    );

    // A bigger burst: the 3 already spent count, so 2 more go through, not 5.
    handle.reconfigure(&per(10, 5)).unwrap();
    for i in 0..2 {
        svc.ready().await.unwrap().call(10 + i).await.unwrap();
    }
    let err = svc.ready().await.unwrap().call(12).await.unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(limited.retry_after(), Duration::from_millis(100));

    // A bad quota changes nothing: the old one still admits after 100 ms.
    let err = handle.reconfigure(&per(0, 5)).unwrap_err();
    assert_eq!(err.field(), "rate_limit.rate");
    assert_eq!(
        handle.check_reconfigure(&per(1, 0)).unwrap_err().field(),
        "rate_limit.burst"
    );
    tokio::time::advance(Duration::from_millis(100)).await;
    svc.ready().await.unwrap().call(13).await.unwrap();

    // A lower rate applies at once: one call per second, burst 1.
    handle.reconfigure(&per(1, 1)).unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    svc.ready().await.unwrap().call(14).await.unwrap();
    let err = svc.ready().await.unwrap().call(15).await.unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(limited.retry_after(), Duration::from_secs(1));
}

/// A keyed limiter's handle changes every key's quota; each key keeps its state.
#[tokio::test(start_paused = true)]
async fn the_keyed_handle_changes_every_keys_quota() {
    let layer = RateLimitLayer::builder()
        .rate(1, Duration::from_secs(1))
        .burst(1)
        .keyed(|tenant: &u32| *tenant)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(echo());
    svc.ready().await.unwrap().call(7).await.unwrap();
    assert!(svc.ready().await.unwrap().call(7).await.is_err());
    handle
        .reconfigure(
            &RateLimitLayer::builder()
                .rate(1, Duration::from_secs(1))
                .burst(3),
        )
        .unwrap();
    // Tenant 7 spent 1 of the new 3; a new tenant has all 3.
    for _ in 0..2 {
        svc.ready().await.unwrap().call(7).await.unwrap();
    }
    assert!(svc.ready().await.unwrap().call(7).await.is_err());
    for _ in 0..3 {
        svc.ready().await.unwrap().call(8).await.unwrap();
    }
    assert!(svc.ready().await.unwrap().call(8).await.is_err());
}

#[test]
fn bad_settings_name_their_field() {
    let b = RateLimitLayer::builder;
    assert_eq!(
        b().rate(0, Duration::from_secs(1))
            .build()
            .unwrap_err()
            .field(),
        "rate_limit.rate"
    );
    assert_eq!(
        b().rate(1, Duration::ZERO).build().unwrap_err().field(),
        "rate_limit.per"
    );
    assert_eq!(
        b().burst(0).build().unwrap_err().field(),
        "rate_limit.burst"
    );
    assert_eq!(
        b().keyed(|x: &u32| *x)
            .max_keys(0)
            .build::<u32>()
            .unwrap_err()
            .field(),
        "rate_limit.max_keys"
    );
    assert_eq!(
        b().keyed(|x: &u32| *x)
            .idle_timeout(Duration::ZERO)
            .build::<u32>()
            .unwrap_err()
            .field(),
        "rate_limit.idle_timeout"
    );
}

/// On the wire: 429 with `Retry-After` and `x-fortify-rejected: rate-limited`.
#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn a_refusal_is_a_429_with_retry_after() {
    use tower_fortify::http::{Rejection, RejectionKind};
    let layer = RateLimitLayer::builder()
        .rate(1, Duration::from_secs(2))
        .burst(1)
        .build()
        .unwrap();
    let mut svc = layer.layer(echo());
    svc.ready().await.unwrap().call(1).await.unwrap();
    let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
    let r = Rejection::of(err.as_ref()).unwrap();
    assert_eq!(r.kind(), RejectionKind::Throttled);
    assert_eq!(r.reason(), "rate-limited");
    assert_eq!(r.retry_after_hint(), Some(Duration::from_secs(2)));
    #[cfg(feature = "axum")]
    {
        let response = tower_fortify::axum::error_response(err.as_ref());
        assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "2");
        assert_eq!(response.headers()["x-fortify-rejected"], "rate-limited");
    }
    #[cfg(feature = "grpc")]
    {
        let status = tower_fortify::grpc::status_of(err.as_ref());
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.metadata().get("grpc-retry-pushback-ms").unwrap(),
            "2000"
        );
    }
}

/// No allocation per admitted call, keyed or not (after a key's first call), with
/// or without a `max_wait`.
#[tokio::test(start_paused = true)]
async fn admitted_calls_allocate_nothing() {
    let layer = RateLimitLayer::builder()
        .rate(1_000_000, Duration::from_secs(1))
        .build()
        .unwrap();
    let mut svc = layer.layer(tower::service_fn(|x: u32| {
        std::future::ready(Ok::<_, BoxError>(x))
    }));
    let keyed = RateLimitLayer::builder()
        .rate(1_000_000, Duration::from_secs(1))
        .max_wait(Duration::from_millis(10)) // never needed: no call waits
        .keyed(|k: &u32| *k % 4)
        .build()
        .unwrap();
    let mut ksvc = keyed.layer(tower::service_fn(|x: u32| {
        std::future::ready(Ok::<_, BoxError>(x))
    }));
    for i in 0..8 {
        ksvc.ready().await.unwrap().call(i).await.unwrap();
        svc.ready().await.unwrap().call(i).await.unwrap();
    }
    let before = counting_alloc::allocations();
    for i in 0..1000 {
        svc.ready().await.unwrap().call(i).await.unwrap();
        ksvc.ready().await.unwrap().call(i).await.unwrap();
    }
    assert_eq!(counting_alloc::allocations() - before, 0);
}

/// Calls over the limit are events: a rejection says when to come back, a waiting
/// call how long it waits; a call within the limit sends none. Each carries the
/// limiter's name.
#[tokio::test(start_paused = true)]
async fn calls_over_the_limit_are_events_with_the_limiters_name() {
    use std::sync::{Arc, Mutex};
    use tower_fortify::observe::{Event, Listener, RateLimitEvent};

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<(String, RateLimitEvent)>>>);
    impl Listener for Log {
        fn on_event(&self, _: &Event) {}
        fn on_named_event(&self, name: &str, event: &Event) {
            if let Event::RateLimit(e) = event {
                self.0.lock().unwrap().push((name.to_string(), e.clone()));
            }
        }
    }

    let log = Log::default();
    let limit = RateLimitLayer::builder()
        .rate(10, Duration::from_secs(1))
        .burst(1)
        .name("api")
        .listener(log.clone())
        .build()
        .unwrap();
    let mut svc = limit.layer(echo());
    svc.ready().await.unwrap().call(1).await.unwrap();
    assert!(
        log.0.lock().unwrap().is_empty(),
        "within the limit: no event"
    );
    let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
    assert!(err.is::<RateLimited>());
    assert_eq!(
        *log.0.lock().unwrap(),
        vec![(
            "api".to_string(),
            RateLimitEvent::Rejected {
                retry_after: Duration::from_millis(100)
            }
        )]
    );

    let log = Log::default();
    let limit = RateLimitLayer::builder()
        .rate(10, Duration::from_secs(1))
        .burst(1)
        .max_wait(Duration::from_millis(500))
        .listener(log.clone())
        .build()
        .unwrap();
    let mut svc = limit.layer(echo());
    svc.ready().await.unwrap().call(1).await.unwrap();
    svc.ready().await.unwrap().call(2).await.unwrap();
    assert_eq!(
        *log.0.lock().unwrap(),
        vec![(
            String::new(),
            RateLimitEvent::Waiting {
                wait: Duration::from_millis(100)
            }
        )]
    );
}

/// With the metrics listener, a rejection is counted under the rate limiter's layer.
#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn a_rejection_is_counted_in_the_rejections_series() {
    use futures::FutureExt;
    use tower_fortify::observe::MetricsListener;

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let limit = RateLimitLayer::builder()
        .rate(10, Duration::from_secs(1))
        .burst(1)
        .name("api")
        .listener(MetricsListener::new())
        .build()
        .unwrap();
    let mut svc = limit.layer(echo());
    for i in 0..3 {
        svc.ready().await.unwrap();
        let done = metrics::with_local_recorder(&recorder, || svc.call(i).now_or_never());
        assert!(done.is_some(), "admitted or rejected at once");
    }
    let text = handle.render();
    assert!(
        text.contains(
            r#"fortify_rejections_total{name="api",layer="rate_limit",reason="rate_limited"} 2"#
        ),
        "{text}"
    );
}
