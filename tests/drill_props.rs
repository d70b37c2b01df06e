//! Properties of the drill's formulas: arrival counts, report arithmetic, latency
//! distributions and chaos schedules.

#![cfg(feature = "drill")]

use std::time::Duration;

use proptest::prelude::*;
use tower::{Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::chaos::{ChaosLayer, Fault, Latency, Rule};
use tower_fortify::drill::{BackendSpec, Drill, Load, Phase, Scenario};
use tower_fortify::rng::Rng;
use tower_layer::Layer;

fn tiny(load: Load, secs: u64, error_rate: f64) -> Scenario {
    Scenario::new("tiny")
        .duration(Duration::from_secs(secs))
        .load(load)
        .backend(
            BackendSpec::new("only")
                .latency(Latency::fixed(Duration::from_millis(3)))
                .error_rate(error_rate),
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A constant load sends exactly `rate × duration` requests (rounded up), and the
    /// timeline adds up to the totals.
    #[test]
    fn constant_load_sends_rate_times_duration(rate in 1u32..400, secs in 1u64..6, seed in any::<u64>()) {
        let r = Drill::new(tiny(Load::constant(rate as f64), secs, 0.1)).seed(seed)
            .run(|env| env.backends()[0].clone())
            .unwrap();
        prop_assert_eq!(r.requests, rate as u64 * secs);
        prop_assert_eq!(r.timeline.len() as u64, secs);
        prop_assert_eq!(r.timeline.iter().map(|s| s.sent).sum::<u64>(), r.requests);
        prop_assert_eq!(r.timeline.iter().map(|s| s.ok).sum::<u64>(), r.succeeded);
        prop_assert_eq!(r.succeeded + r.failed, r.requests);
        prop_assert_eq!(r.attempts, r.requests, "no retries: one attempt each");
        prop_assert_eq!(r.amplification, 1.0);
        let availability = r.succeeded as f64 / r.requests as f64;
        prop_assert!((r.availability - availability).abs() < 1e-12);
        prop_assert!(r.latency_ms.p50 <= r.latency_ms.p90);
        prop_assert!(r.latency_ms.p90 <= r.latency_ms.p99);
        prop_assert!(r.latency_ms.p99 <= r.latency_ms.p999);
        prop_assert!(r.latency_ms.p999 <= r.latency_ms.max);
    }

    /// Steps change the rate at their time: each second sends the rate in force.
    #[test]
    fn steps_set_the_rate_of_each_second(a in 0u32..200, b in 0u32..200, at in 1u64..4) {
        let load = Load::constant(a as f64).step(Duration::from_secs(at), b as f64);
        let r = Drill::new(tiny(load, 5, 0.0)).run(|env| env.backends()[0].clone()).unwrap();
        for s in &r.timeline {
            let expected = if (s.t as u64) < at { a } else { b };
            prop_assert_eq!(s.sent, expected as u64, "second {}", s.t);
        }
    }

    /// A backend down for the whole drill fails every request, fast.
    #[test]
    fn a_down_backend_fails_everything(rate in 1u32..100, seed in any::<u64>()) {
        let scenario = Scenario::new("down")
            .duration(Duration::from_secs(2))
            .load(Load::poisson(rate as f64))
            .backend(BackendSpec::new("x").phase(Duration::ZERO, Phase::Down));
        let r = Drill::new(scenario).seed(seed).run(|env| env.backends()[0].clone()).unwrap();
        prop_assert_eq!(r.succeeded, 0);
        prop_assert!(r.latency_ms.max <= 1.01);
        prop_assert_eq!(r.backends[0].failures, r.requests);
    }

    /// Uniform samples stay in their bounds; scaling multiplies the median.
    #[test]
    fn latency_bounds_and_scaling(lo in 0u64..1_000, width in 0u64..1_000, factor in 0.0f64..50.0, seed in any::<u64>()) {
        let (min, max) = (Duration::from_micros(lo), Duration::from_micros(lo + width));
        let l = Latency::uniform(min, max).unwrap();
        let rng = Rng::seeded(seed);
        for _ in 0..100 {
            let d = l.sample(&rng);
            prop_assert!(d >= min && d <= max, "{:?} not in {:?}..={:?}", d, min, max);
        }
        let median = Latency::fixed(Duration::from_micros(lo)).scaled(factor).median();
        let expected = lo as f64 * factor;
        prop_assert!((median.as_secs_f64() * 1e6 - expected).abs() <= 1.0 + expected * 1e-9);
    }

    /// A periodic rule is active exactly when `(t - offset) mod period < on`.
    #[test]
    fn periodic_schedule(period in 2u64..20, on_frac in 0.0f64..1.0, offset in 0u64..10, probes in proptest::collection::vec(0u64..100, 1..20)) {
        let on = ((period as f64) * on_frac).floor() as u64;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        runtime.block_on(async {
            let layer: ChaosLayer<u32, u32, BoxError> = ChaosLayer::builder()
                .rule(Rule::new(Fault::error(|| "injected".into())).every(
                    Duration::from_secs(period),
                    Duration::from_secs(on),
                    Duration::from_secs(offset),
                ))
                .build()
                .unwrap();
            let mut svc = layer.layer(service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }));
            let mut sorted = probes.clone();
            sorted.sort_unstable();
            let start = tokio::time::Instant::now();
            for t in sorted {
                tokio::time::advance((start + Duration::from_secs(t)) - tokio::time::Instant::now()).await;
                let injected = svc.ready().await.unwrap().call(0).await.is_err();
                let expected = t >= offset && (t - offset) % period < on;
                assert_eq!(injected, expected, "t = {t}, period {period}, on {on}, offset {offset}");
            }
        });
    }
}
