//! Retry budgets: a bound on the extra load that retries (and hedges, and failover
//! attempts) may add.
//!
//! A maximum number of attempts per request does not stop a retry storm: when a
//! backend is down, *every* request fails, and three attempts per request triple the
//! load on a backend that is already struggling — exactly when it can least afford it.
//! A budget bounds retries across *all* requests instead: while most calls succeed it
//! lets the few failures retry; when everything fails it stops retries, so the backend
//! sees close to the load it would see without retries at all.
//!
//! Two kinds are offered, both lock-free on the success path and shared by every clone
//! of the layers that use them (a [`Budget`] is a cheap handle to shared state):
//!
//! * [`Budget::token_bucket`] — gRPC's retry throttling. The bucket holds up to
//!   `max_tokens`; every failed attempt takes one token, every successful one returns
//!   `token_ratio`; retries are allowed only while more than half the tokens remain.
//!   **Bound:** once the bucket is at half, further retries need successes to refill it:
//!   over any run, retries ≤ `max_tokens / 2 + token_ratio × successes`. Under a total
//!   outage retries stop after about `max_tokens / 2` failures.
//! * [`Budget::ratio`] — Finagle's retry budget. Every request deposits one; a retry
//!   withdraws one. The window of `ttl` is kept as ten buckets of `ttl / 10`.
//!   **Bound:** a retry is granted only if the retries of the current window, itself
//!   included, stay within `percent × requests in the window + min_per_sec × ttl`;
//!   over a run of length `T`, retries ≤ `percent × requests + min_per_sec × (T + ttl)`.
//!   The minimum lets a service with little traffic still retry. Deposits are counted
//!   in per-thread shards (one uncontended atomic add per request); the window is kept
//!   by the retry path, which reads the clock and takes a short lock, since it runs
//!   only after a failure. Requests are dated when the budget is next consulted, at the
//!   time of the previous consultation — the earliest they can have arrived — so the
//!   window never holds more requests than it really does: after a long quiet spell
//!   only the minimum is available until the window fills again (within one bucket
//!   while failures are frequent).
//!
//! Layers call [`Budget::deposit`] once per request, [`Budget::record`] with each
//! attempt's outcome, and [`Budget::try_withdraw`] before each extra attempt. A
//! [`Withdrawal`] is returned to the budget if it is dropped before it is
//! [committed](Withdrawal::commit): a retry cancelled during its backoff costs nothing.
//!
//! ```
//! use std::time::Duration;
//! use tower_fortify::budget::Budget;
//! use tower_fortify::classify::Outcome;
//!
//! // Allow retries worth 10 % of recent traffic, plus 5 per second.
//! let budget = Budget::ratio(Duration::from_secs(10), 5, 0.1).unwrap();
//! budget.deposit();
//! let withdrawal = budget.try_withdraw().expect("the minimum allows a retry");
//! withdrawal.commit(); // the retry was sent
//!
//! // gRPC-style throttling: 10 tokens, each success refills 0.1.
//! let grpc = Budget::token_bucket(10.0, 0.1).unwrap();
//! for _ in 0..5 {
//!     grpc.record(Outcome::RetryableFailure);
//! }
//! assert!(grpc.try_withdraw().is_none(), "no retries at half the tokens or below");
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::clock::Epoch;

use crate::classify::Outcome;
use crate::config::{ConfigError, check_range};
use crate::shard::{self, Padded, SHARDS};

/// A shared retry budget. Cloning shares the state. See the [module docs](self).
#[derive(Clone)]
pub struct Budget {
    inner: Arc<Kind>,
}

#[allow(
    clippy::large_enum_variant,
    reason = "lives behind an Arc; boxing would add a pointer chase to every deposit"
)]
enum Kind {
    TokenBucket(TokenBucket),
    Ratio(Ratio),
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Kind::TokenBucket(t) => f
                .debug_struct("Budget::TokenBucket")
                .field("max_tokens", &(t.max as f64 / MILLI))
                .field(
                    "token_ratio",
                    &(t.ratio.load(Ordering::Relaxed) as f64 / MILLI),
                )
                .field("tokens", &(t.tokens.load(Ordering::Relaxed) as f64 / MILLI))
                .finish(),
            Kind::Ratio(r) => f
                .debug_struct("Budget::Ratio")
                .field("ttl", &r.ttl)
                .field("min_per_sec", &r.min_per_sec.load(Ordering::Relaxed))
                .field("percent", &r.percent())
                .finish(),
        }
    }
}

const MILLI: f64 = 1000.0;

struct TokenBucket {
    /// Tokens in thousandths, like gRPC's three decimal places.
    tokens: AtomicU64,
    max: u64,
    /// The refill per success, in thousandths; changes with [`Budget::reconfigure`].
    ratio: AtomicU64,
}

struct Ratio {
    ttl: Duration,
    /// Both change with [`Budget::reconfigure`]; read by the retry path only.
    min_per_sec: AtomicU32,
    /// An `f64`'s bits.
    percent: AtomicU64,
    deposits: [Padded<AtomicU64>; SHARDS],
    window: Mutex<Window>,
}

const BUCKETS: u64 = 10;

struct Window {
    /// The origin of the buckets, read on first use (see `crate::clock` for why not
    /// at construction).
    start: Epoch,
    /// Total deposits seen by the last update, and when.
    seen: u64,
    seen_at: u128,
    buckets: [Bucket; BUCKETS as usize],
}

#[derive(Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    deposits: f64,
    withdrawals: u64,
}

impl Budget {
    /// gRPC's retry throttling: `max_tokens` in `(0, 1000]`, `token_ratio` in
    /// `(0, 1]`. The bucket starts full.
    pub fn token_bucket(max_tokens: f64, token_ratio: f64) -> Result<Self, ConfigError> {
        check_range("budget.max_tokens", max_tokens, 0.0, 1000.0)?;
        if max_tokens <= 0.0 {
            return Err(ConfigError::new(
                "budget.max_tokens",
                "must be greater than zero",
            ));
        }
        check_range("budget.token_ratio", token_ratio, 0.0, 1.0)?;
        let ratio = (token_ratio * MILLI).round() as u64;
        if ratio == 0 {
            return Err(ConfigError::new(
                "budget.token_ratio",
                format!("must be at least 0.001 (got {token_ratio})"),
            ));
        }
        let max = (max_tokens * MILLI).round() as u64;
        Ok(Self {
            inner: Arc::new(Kind::TokenBucket(TokenBucket {
                tokens: AtomicU64::new(max),
                max,
                ratio: AtomicU64::new(ratio),
            })),
        })
    }

    /// Finagle's retry budget: retries may add `percent` (in `0.0..=1.0`) of the
    /// requests of the last `ttl` (1 s to 60 s), plus `min_per_sec` per second.
    pub fn ratio(ttl: Duration, min_per_sec: u32, percent: f64) -> Result<Self, ConfigError> {
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(60) {
            return Err(ConfigError::new(
                "budget.ttl",
                format!("must lie between 1 s and 60 s (got {ttl:?})"),
            ));
        }
        check_range("budget.percent", percent, 0.0, 1.0)?;
        Ok(Self {
            inner: Arc::new(Kind::Ratio(Ratio {
                ttl,
                min_per_sec: AtomicU32::new(min_per_sec),
                percent: AtomicU64::new(percent.to_bits()),
                deposits: Default::default(),
                window: Mutex::new(Window {
                    start: Epoch::new(),
                    seen: 0,
                    seen_at: 0,
                    buckets: [Bucket::default(); BUCKETS as usize],
                }),
            })),
        })
    }

    /// The default: a ratio budget of 20 % over 10 s with a minimum of 10 retries per
    /// second (Finagle's and tower's defaults).
    pub fn default_ratio() -> Self {
        Self::ratio(Duration::from_secs(10), 10, 0.2).expect("valid defaults")
    }

    /// Takes the rates of `settings` (a budget built for the purpose, of the same
    /// kind) while this one runs, keeping its balance: a ratio budget's `percent`
    /// and `min_per_sec` (its window of requests and retries stays), a token
    /// bucket's `token_ratio` (its tokens stay). The window length (`ttl`) and the
    /// bucket's size are what the balance is made of and cannot change: a budget
    /// that differs there, or is of the other kind, is refused, naming the field,
    /// and nothing changes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::budget::Budget;
    ///
    /// let budget = Budget::ratio(Duration::from_secs(10), 10, 0.2).unwrap();
    /// budget.reconfigure(&Budget::ratio(Duration::from_secs(10), 5, 0.1).unwrap()).unwrap();
    /// let other_ttl = Budget::ratio(Duration::from_secs(20), 5, 0.1).unwrap();
    /// assert_eq!(budget.reconfigure(&other_ttl).unwrap_err().field(), "budget.ttl");
    /// ```
    pub fn reconfigure(&self, settings: &Budget) -> Result<(), ConfigError> {
        self.check_reconfigure(settings)?;
        match (&*self.inner, &*settings.inner) {
            (Kind::Ratio(r), Kind::Ratio(n)) => {
                r.percent
                    .store(n.percent.load(Ordering::Relaxed), Ordering::Relaxed);
                r.min_per_sec
                    .store(n.min_per_sec.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            (Kind::TokenBucket(t), Kind::TokenBucket(n)) => {
                t.ratio
                    .store(n.ratio.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks `settings` as [`reconfigure`](Self::reconfigure) would, changing
    /// nothing.
    pub fn check_reconfigure(&self, settings: &Budget) -> Result<(), ConfigError> {
        let fixed = "cannot change while the budget runs (its balance is made of it)";
        match (&*self.inner, &*settings.inner) {
            (Kind::Ratio(r), Kind::Ratio(n)) if r.ttl != n.ttl => {
                Err(ConfigError::new("budget.ttl", fixed))
            }
            (Kind::TokenBucket(t), Kind::TokenBucket(n)) if t.max != n.max => {
                Err(ConfigError::new("budget.max_tokens", fixed))
            }
            (Kind::Ratio(_), Kind::Ratio(_)) | (Kind::TokenBucket(_), Kind::TokenBucket(_)) => {
                Ok(())
            }
            _ => Err(ConfigError::new("budget.kind", fixed)),
        }
    }

    /// Records a new request. Ratio budgets count it; token buckets ignore it.
    #[inline]
    pub fn deposit(&self) {
        if let Kind::Ratio(r) = &*self.inner {
            r.deposits[shard::index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records the outcome of one attempt. Token buckets lose a token on a retryable
    /// failure or overload and gain `token_ratio` on a success; ratio budgets ignore it.
    #[inline]
    pub fn record(&self, outcome: Outcome) {
        if let Kind::TokenBucket(t) = &*self.inner {
            match outcome {
                Outcome::Success => t.refill(),
                Outcome::RetryableFailure | Outcome::Overloaded(_) => t.drain(),
                Outcome::NonRetryableFailure => {}
            }
        }
    }

    /// Asks for one extra attempt. `None` means the budget is spent.
    pub fn try_withdraw(&self) -> Option<Withdrawal> {
        match &*self.inner {
            Kind::TokenBucket(t) => {
                (t.tokens.load(Ordering::Relaxed) * 2 > t.max).then(|| Withdrawal {
                    budget: None,
                    epoch: 0,
                })
            }
            Kind::Ratio(r) => r.try_withdraw().map(|epoch| Withdrawal {
                budget: Some(self.clone()),
                epoch,
            }),
        }
    }

    /// How many extra attempts the budget would allow right now: tokens above the
    /// threshold for a token bucket, retries left in the window for a ratio budget.
    pub fn remaining(&self) -> f64 {
        match &*self.inner {
            Kind::TokenBucket(t) => {
                let tokens = t.tokens.load(Ordering::Relaxed) as f64;
                ((tokens - t.max as f64 / 2.0) / MILLI).max(0.0)
            }
            Kind::Ratio(r) => {
                let mut w = r.window.lock().unwrap_or_else(PoisonError::into_inner);
                let (allowed, used) = r.update(&mut w);
                (allowed - used as f64).max(0.0)
            }
        }
    }
}

impl TokenBucket {
    #[inline]
    fn refill(&self) {
        let mut cur = self.tokens.load(Ordering::Relaxed);
        // Full: nothing to write, so the success path only reads a shared line.
        while cur < self.max {
            let next = (cur + self.ratio.load(Ordering::Relaxed)).min(self.max);
            match self
                .tokens
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    fn drain(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(1000))
            });
    }
}

impl Ratio {
    fn percent(&self) -> f64 {
        f64::from_bits(self.percent.load(Ordering::Relaxed))
    }

    fn width_nanos(&self) -> u128 {
        (self.ttl.as_nanos() / BUCKETS as u128).max(1)
    }

    /// Brings the window up to date; returns (retries allowed in it, retries used).
    fn update(&self, w: &mut Window) -> (f64, u64) {
        let width = self.width_nanos();
        let now = u128::from(w.start.now());
        let epoch = (now / width) as u64;
        let total: u64 = self
            .deposits
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .sum();
        let new = total.saturating_sub(w.seen);
        if new > 0 {
            // The requests since the last update arrived at some time in between; date
            // them all at the last update, the earliest they can be. They then leave the
            // window no later than they really do, so the estimate never grants more
            // than the true window allows.
            let at = (w.seen_at / width) as u64;
            if at + BUCKETS > epoch {
                w.bucket(at).deposits += new as f64;
            }
        }
        w.seen = total;
        w.seen_at = now;
        let oldest = epoch.saturating_sub(BUCKETS - 1);
        let (mut deposits, mut used) = (0.0, 0);
        for b in &w.buckets {
            if b.epoch >= oldest && b.epoch <= epoch && (b.deposits > 0.0 || b.withdrawals > 0) {
                deposits += b.deposits;
                used += b.withdrawals;
            }
        }
        let reserve = self.min_per_sec.load(Ordering::Relaxed) as f64 * self.ttl.as_secs_f64();
        (self.percent() * deposits + reserve, used)
    }

    fn try_withdraw(&self) -> Option<u64> {
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let (allowed, used) = self.update(&mut w);
        if (used + 1) as f64 <= allowed + 1e-9 {
            let epoch = (u128::from(w.start.now()) / self.width_nanos()) as u64;
            w.bucket(epoch).withdrawals += 1;
            Some(epoch)
        } else {
            None
        }
    }

    fn refund(&self, epoch: u64) {
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let b = &mut w.buckets[(epoch % BUCKETS) as usize];
        if b.epoch == epoch {
            b.withdrawals = b.withdrawals.saturating_sub(1);
        }
    }
}

impl Window {
    fn bucket(&mut self, epoch: u64) -> &mut Bucket {
        let b = &mut self.buckets[(epoch % BUCKETS) as usize];
        if b.epoch != epoch {
            *b = Bucket {
                epoch,
                deposits: 0.0,
                withdrawals: 0,
            };
        }
        b
    }
}

/// One extra attempt taken from a [`Budget`]. Dropped without
/// [`commit`](Self::commit), it is given back.
#[must_use = "a withdrawal is refunded when dropped; commit it once the attempt is sent"]
pub struct Withdrawal {
    budget: Option<Budget>,
    epoch: u64,
}

impl Withdrawal {
    /// The attempt was sent: keep the withdrawal.
    pub fn commit(mut self) {
        self.budget = None;
    }
}

impl fmt::Debug for Withdrawal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Withdrawal").finish_non_exhaustive()
    }
}

impl Drop for Withdrawal {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take()
            && let Kind::Ratio(r) = &*budget.inner
        {
            r.refund(self.epoch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_budgets_name_their_field() {
        assert_eq!(
            Budget::token_bucket(0.0, 0.1).unwrap_err().field(),
            "budget.max_tokens"
        );
        assert_eq!(
            Budget::token_bucket(2000.0, 0.1).unwrap_err().field(),
            "budget.max_tokens"
        );
        assert_eq!(
            Budget::token_bucket(10.0, f64::NAN).unwrap_err().field(),
            "budget.token_ratio"
        );
        assert_eq!(
            Budget::token_bucket(10.0, 0.0).unwrap_err().field(),
            "budget.token_ratio"
        );
        assert_eq!(
            Budget::ratio(Duration::ZERO, 1, 0.1).unwrap_err().field(),
            "budget.ttl"
        );
        assert_eq!(
            Budget::ratio(Duration::from_secs(10), 1, 1.5)
                .unwrap_err()
                .field(),
            "budget.percent"
        );
    }

    #[test]
    fn token_bucket_follows_grpc_rules() {
        let b = Budget::token_bucket(4.0, 0.5).unwrap();
        assert!(b.try_withdraw().is_some(), "full bucket allows retries");
        b.record(Outcome::RetryableFailure); // 3
        assert!(b.try_withdraw().is_some());
        b.record(Outcome::Overloaded(Default::default())); // 2 == max/2
        assert!(b.try_withdraw().is_none(), "at half, no retries");
        b.record(Outcome::NonRetryableFailure); // still 2
        assert!(b.try_withdraw().is_none());
        b.record(Outcome::Success); // 2.5
        assert!(b.try_withdraw().is_some());
        for _ in 0..10 {
            b.record(Outcome::Success);
        }
        assert_eq!(b.remaining(), 2.0, "refill stops at max");
        for _ in 0..10 {
            b.record(Outcome::RetryableFailure);
        }
        assert_eq!(b.remaining(), 0.0, "tokens never go below zero");
    }

    #[tokio::test(start_paused = true)]
    async fn ratio_budget_allows_percent_plus_reserve() {
        let b = Budget::ratio(Duration::from_secs(10), 1, 0.1).unwrap();
        for _ in 0..100 {
            b.deposit();
        }
        // 10 % of 100 plus 1/s × 10 s = 20 retries.
        let ws: Vec<_> = std::iter::from_fn(|| b.try_withdraw()).take(100).collect();
        assert_eq!(ws.len(), 20);
        assert!(b.try_withdraw().is_none());
        // Dropping uncommitted withdrawals refunds them.
        drop(ws);
        assert_eq!(b.remaining(), 20.0);
    }

    #[tokio::test(start_paused = true)]
    async fn ratio_budget_forgets_old_deposits() {
        let b = Budget::ratio(Duration::from_secs(10), 0, 0.5).unwrap();
        for _ in 0..100 {
            b.deposit();
        }
        assert_eq!(b.remaining(), 50.0);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(
            b.remaining(),
            0.0,
            "deposits older than ttl no longer count"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn committed_withdrawals_count_until_they_age_out() {
        let b = Budget::ratio(Duration::from_secs(2), 2, 0.0).unwrap();
        for _ in 0..4 {
            b.try_withdraw().unwrap().commit();
        }
        assert!(b.try_withdraw().is_none());
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(b.try_withdraw().is_some());
    }
}
