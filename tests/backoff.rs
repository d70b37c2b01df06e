//! Property tests for backoff delays: every delay lies within its documented bounds,
//! never exceeds the cap, and the same seed gives the same sequence.

use std::time::Duration;

use proptest::prelude::*;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::rng::Rng;

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
        (0.0f64..=1.0).prop_map(Jitter::Proportional),
    ]
}

fn backoff() -> impl Strategy<Value = Backoff> {
    (
        0u64..2_000,
        0u64..5_000,
        1.0f64..5.0,
        0u64..500,
        0u8..3,
        jitter(),
    )
        .prop_map(|(base, extra, mult, step, shape, jitter)| {
            let base = Duration::from_millis(base);
            let b = match shape {
                0 => Backoff::constant(base),
                1 => Backoff::linear(base).step(Duration::from_millis(step)),
                _ => Backoff::exponential(base).multiplier(mult),
            };
            b.max_delay(base + Duration::from_millis(extra))
                .jitter(jitter)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn delays_lie_within_documented_bounds(b in backoff(), seed in any::<u64>()) {
        prop_assert!(b.validate().is_ok());
        let rng = Rng::seeded(seed);
        let cap = b.cap();
        let mut prev = Duration::ZERO;
        for retry in 1..=40u32 {
            let raw = b.raw_delay(retry);
            let d = b.delay(retry, prev, &rng);
            prop_assert!(raw <= cap);
            prop_assert!(d <= cap, "delay {:?} above cap {:?}", d, cap);
            match b.jitter_kind() {
                Jitter::None => prop_assert_eq!(d, raw),
                Jitter::Full => prop_assert!(d <= raw),
                Jitter::Equal => prop_assert!(d >= raw / 2 && d <= raw),
                Jitter::Decorrelated => {
                    prop_assert!(d >= b.base().min(cap));
                    let hi = prev.max(b.base()).mul_f64(3.0).min(cap);
                    prop_assert!(d <= hi + Duration::from_nanos(1), "{:?} > {:?}", d, hi);
                }
                Jitter::Proportional(r) => {
                    let lo = raw.as_secs_f64() * (1.0 - r);
                    prop_assert!(d.as_secs_f64() >= lo - 1e-6, "{:?} below {}", d, lo);
                }
            }
            prev = d;
        }
    }

    #[test]
    fn raw_delays_never_shrink(b in backoff()) {
        let mut last = Duration::ZERO;
        for retry in 1..=64u32 {
            let d = b.raw_delay(retry);
            prop_assert!(d >= last);
            last = d;
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence(b in backoff(), seed in any::<u64>()) {
        let seq = |rng: Rng| {
            let mut prev = Duration::ZERO;
            (1..=20u32).map(|n| { prev = b.delay(n, prev, &rng); prev }).collect::<Vec<_>>()
        };
        prop_assert_eq!(seq(Rng::seeded(seed)), seq(Rng::seeded(seed)));
    }

    #[test]
    fn invalid_settings_are_rejected_not_panicking(
        mult in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), -10.0f64..1.0],
        r in prop_oneof![Just(f64::NAN), 1.0001f64..10.0, -10.0f64..-0.0001],
    ) {
        let err = Backoff::exponential(Duration::from_millis(1)).multiplier(mult).build().unwrap_err();
        prop_assert_eq!(err.field(), "backoff.multiplier");
        let err = Backoff::constant(Duration::from_millis(1)).jitter(Jitter::Proportional(r)).build().unwrap_err();
        prop_assert_eq!(err.field(), "backoff.jitter");
    }
}
