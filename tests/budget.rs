//! Property tests for the retry budgets: the token bucket against a reference model,
//! and the ratio budget's documented bound.

use std::time::Duration;

use proptest::prelude::*;
use tower_fortify::budget::Budget;
use tower_fortify::classify::Outcome;

#[derive(Debug, Clone, Copy)]
enum Op {
    Success,
    Failure,
    NonRetryable,
    Withdraw,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Success),
        3 => Just(Op::Failure),
        1 => Just(Op::NonRetryable),
        3 => Just(Op::Withdraw),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// gRPC's rules, written out plainly in thousandths of a token.
    #[test]
    fn token_bucket_matches_the_grpc_model(
        max in 1u32..100,
        ratio_milli in 1u32..1000,
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let budget = Budget::token_bucket(max as f64, ratio_milli as f64 / 1000.0).unwrap();
        let max_milli = max as i64 * 1000;
        let mut tokens = max_milli;
        for op in ops {
            match op {
                Op::Success => {
                    budget.record(Outcome::Success);
                    tokens = (tokens + ratio_milli as i64).min(max_milli);
                }
                Op::Failure => {
                    budget.record(Outcome::RetryableFailure);
                    tokens = (tokens - 1000).max(0);
                }
                Op::NonRetryable => budget.record(Outcome::NonRetryableFailure),
                Op::Withdraw => {
                    let allowed = tokens * 2 > max_milli;
                    prop_assert_eq!(budget.try_withdraw().is_some(), allowed);
                }
            }
            let expect = ((tokens as f64 - max_milli as f64 / 2.0) / 1000.0).max(0.0);
            prop_assert!((budget.remaining() - expect).abs() < 1e-9);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Requests(u16),
    Retries(u16),
    Advance(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u16..50).prop_map(Step::Requests),
        (0u16..50).prop_map(Step::Retries),
        (1u16..1500).prop_map(Step::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Each retry is granted only while the retries of the current window (ten buckets
    /// of `ttl / 10`), itself included, stay within `percent` of the requests deposited
    /// in it plus `min_per_sec × ttl`; and over the whole run, retries never exceed
    /// `percent × requests + min_per_sec × (run + ttl)`. Exact when the budget is
    /// consulted at least once per bucket (as it is whenever failures are frequent).
    #[test]
    fn ratio_budget_keeps_its_bound(
        percent in 0.0f64..=1.0,
        min_per_sec in 0u32..5,
        steps in proptest::collection::vec(step(), 1..200),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let ttl = Duration::from_secs(2);
            let bucket = ttl / 10;
            let reserve = min_per_sec as f64 * ttl.as_secs_f64();
            let budget = Budget::ratio(ttl, min_per_sec, percent).unwrap();
            // The window's buckets are aligned to the budget's first use.
            let _ = budget.remaining();
            let start = tokio::time::Instant::now();
            let mut deposits: Vec<Duration> = Vec::new();
            let mut granted: Vec<Duration> = Vec::new();
            for s in steps {
                match s {
                    Step::Requests(n) => {
                        for _ in 0..n {
                            budget.deposit();
                            deposits.push(start.elapsed());
                        }
                    }
                    Step::Retries(n) => {
                        for _ in 0..n {
                            if let Some(w) = budget.try_withdraw() {
                                w.commit();
                                let now = start.elapsed();
                                granted.push(now);
                                let epoch = (now.as_nanos() / bucket.as_nanos()) as u32;
                                let from = bucket * epoch.saturating_sub(9);
                                let used = granted.iter().filter(|t| **t >= from).count() as f64;
                                let dep = deposits.iter().filter(|t| **t >= from).count() as f64;
                                prop_assert!(
                                    used <= percent * dep + reserve + 1e-6,
                                    "{} retries in the window, bound {}", used, percent * dep + reserve
                                );
                            }
                        }
                    }
                    Step::Advance(ms) => {
                        // Consult the budget once per half bucket so the window is exact.
                        let mut left = Duration::from_millis(ms as u64);
                        while !left.is_zero() {
                            let d = left.min(bucket / 2);
                            tokio::time::advance(d).await;
                            left -= d;
                            let _ = budget.remaining();
                        }
                    }
                }
            }
            let run = start.elapsed().as_secs_f64();
            let total_bound = percent * deposits.len() as f64
                + min_per_sec as f64 * (run + ttl.as_secs_f64());
            prop_assert!(granted.len() as f64 <= total_bound + 1e-6);
            Ok(())
        })?;
    }
}

/// The ratio budget's window used to start when it was built: built outside the
/// paused runtime that later drives it, its withdrawals outlived their window.
#[test]
fn ratio_budget_built_outside_the_runtime_keeps_runtime_time() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    // One retry per window of one second, nothing from deposits.
    let budget = Budget::ratio(Duration::from_secs(1), 1, 0.0).unwrap();
    rt.block_on(async move {
        budget
            .try_withdraw()
            .expect("the reserve allows one")
            .commit();
        assert!(budget.try_withdraw().is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            budget.try_withdraw().map(|w| w.commit()).is_some(),
            "the first withdrawal left the window after one second"
        );
    });
}

/// A token bucket reconfigured keeps its tokens; only the refill changes.
#[test]
fn a_reconfigured_token_bucket_keeps_its_tokens() {
    let budget = Budget::token_bucket(10.0, 0.1).unwrap();
    for _ in 0..4 {
        budget.record(Outcome::RetryableFailure);
    }
    assert!(
        (budget.remaining() - 1.0).abs() < 1e-9,
        "{}",
        budget.remaining()
    );
    budget
        .reconfigure(&Budget::token_bucket(10.0, 0.5).unwrap())
        .unwrap();
    assert!((budget.remaining() - 1.0).abs() < 1e-9, "tokens kept");
    budget.record(Outcome::Success);
    assert!(
        (budget.remaining() - 1.5).abs() < 1e-9,
        "the new refill: {}",
        budget.remaining()
    );
    for (other, field) in [
        (
            Budget::token_bucket(20.0, 0.5).unwrap(),
            "budget.max_tokens",
        ),
        (Budget::default_ratio(), "budget.kind"),
    ] {
        assert_eq!(budget.reconfigure(&other).unwrap_err().field(), field);
    }
    assert!((budget.remaining() - 1.5).abs() < 1e-9, "nothing changed");
}
