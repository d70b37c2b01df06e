//! The serde models of the builders: one struct per kind, every field optional.
//!
//! A field left out keeps the builder's own default (argued on each builder, and for
//! the stack on [`Stack::builder`](crate::stack::Stack::builder)). Each model applies
//! itself to the layer's public builder (`apply`), so the builder stays the one place
//! that validates: its errors name the field (`breaker.failure_rate`), and the file
//! loader turns that name into the path in the file
//! (`stacks.payments.breaker.failure_rate`) with its line.
//!
//! Models also merge: `defaults.merged(&overrides)` takes every field the overrides
//! set and the defaults' value for the others (tables inside, such as a retry's
//! `backoff`, merge field by field too).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::switch::OrOff;
use crate::backoff::{Backoff, Jitter};
use crate::budget::Budget;
use crate::bulkhead::BulkheadBuilder;
use crate::circuit_breaker::{CircuitBreakerBuilder, CircuitBreakerLayer};
use crate::failover::{FailoverBuilder, PanicMode, Selection};
use crate::hedge::HedgeBuilder;
use crate::retry::RetryBuilder;

/// `over`'s value where it has one, else `base`'s.
fn pick<T: Clone>(base: &Option<T>, over: &Option<T>) -> Option<T> {
    over.clone().or_else(|| base.clone())
}

/// Both tables merged field by field, or whichever exists.
fn pick_merged<T: Clone>(
    base: &Option<T>,
    over: &Option<T>,
    merge: impl FnOnce(&T, &T) -> T,
) -> Option<T> {
    match (base, over) {
        (Some(b), Some(o)) => Some(merge(b, o)),
        _ => pick(base, over),
    }
}

macro_rules! merge_fields {
    ($base:ident, $over:ident; $($field:ident),* $(,)?) => {
        Self { $($field: pick(&$base.$field, &$over.$field),)* }
    };
}

/// A backoff's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackoffKind {
    /// The same delay each time ([`Backoff::constant`]).
    Constant,
    /// `base × n` ([`Backoff::linear`]).
    Linear,
    /// `base × multiplierⁿ` ([`Backoff::exponential`]).
    Exponential,
}

/// How a backoff's delay is spread: `"none"`, `"full"`, `"equal"`, `"decorrelated"`
/// or `{ proportional = 0.2 }` (see [`Jitter`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JitterConfig {
    /// [`Jitter::None`].
    None,
    /// [`Jitter::Full`].
    Full,
    /// [`Jitter::Equal`].
    Equal,
    /// [`Jitter::Decorrelated`].
    Decorrelated,
    /// [`Jitter::Proportional`].
    Proportional(f64),
}

impl From<JitterConfig> for Jitter {
    fn from(j: JitterConfig) -> Self {
        match j {
            JitterConfig::None => Jitter::None,
            JitterConfig::Full => Jitter::Full,
            JitterConfig::Equal => Jitter::Equal,
            JitterConfig::Decorrelated => Jitter::Decorrelated,
            JitterConfig::Proportional(r) => Jitter::Proportional(r),
        }
    }
}

/// A [`Backoff`]: `kind` (default `"exponential"`), `base`, `max_delay`,
/// `multiplier` (exponential), `step` (linear), `jitter`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// The shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<BackoffKind>,
    /// The first delay.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub base: Option<Duration>,
    /// The cap on every delay.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_delay: Option<Duration>,
    /// The growth factor of an exponential backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
    /// The increment of a linear backoff.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub step: Option<Duration>,
    /// The jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<JitterConfig>,
}

impl BackoffConfig {
    /// Field by field: `over`'s values, else `self`'s.
    pub fn merged(&self, over: &Self) -> Self {
        merge_fields!(self, over; kind, base, max_delay, multiplier, step, jitter)
    }

    /// The backoff, with `default_base` and `default_max` where the table has none.
    pub fn to_backoff(
        &self,
        default_base: Option<Duration>,
        default_max: Option<Duration>,
    ) -> Result<Backoff, ConfigError> {
        let base = self
            .base
            .or(default_base)
            .ok_or_else(|| ConfigError::new("backoff.base", "missing: the first delay"))?;
        let mut b = match self.kind.unwrap_or(BackoffKind::Exponential) {
            BackoffKind::Constant => Backoff::constant(base),
            BackoffKind::Linear => Backoff::linear(base),
            BackoffKind::Exponential => Backoff::exponential(base),
        };
        if let Some(m) = self.multiplier {
            if self.kind.is_some_and(|k| k != BackoffKind::Exponential) {
                return Err(ConfigError::new(
                    "backoff.multiplier",
                    "only for kind = \"exponential\"",
                ));
            }
            b = b.multiplier(m);
        }
        if let Some(s) = self.step {
            if self.kind != Some(BackoffKind::Linear) {
                return Err(ConfigError::new(
                    "backoff.step",
                    "only for kind = \"linear\"",
                ));
            }
            b = b.step(s);
        }
        if let Some(max) = self.max_delay.or(default_max) {
            b = b.max_delay(max);
        }
        if let Some(j) = self.jitter {
            b = b.jitter(j.into());
        }
        b.build()
    }
}

/// A retry budget's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    /// Finagle's ratio budget ([`Budget::ratio`]): `ttl`, `min_per_sec`, `percent`.
    Ratio,
    /// gRPC's token bucket ([`Budget::token_bucket`]): `max_tokens`, `token_ratio`.
    TokenBucket,
    /// No budget: retries bounded by `max_attempts` only.
    None,
}

/// A retry [`Budget`]: `kind` (default `"ratio"`) and its fields. The ratio budget's
/// defaults are those of [`Budget::default_ratio`] (10 s, 10 per second, 20 %).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Which budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<BudgetKind>,
    /// The ratio budget's window.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
    /// The ratio budget's retries per second allowed whatever the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_per_sec: Option<u32>,
    /// The ratio budget's share of requests that may be retried, in `0..=1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// The token bucket's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<f64>,
    /// The token bucket's refill per success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ratio: Option<f64>,
}

/// The ratio budget of [`Budget::default_ratio`].
pub(crate) const DEFAULT_BUDGET_TTL: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_BUDGET_MIN_PER_SEC: u32 = 10;
pub(crate) const DEFAULT_BUDGET_PERCENT: f64 = 0.2;

impl BudgetConfig {
    /// Field by field: `over`'s values, else `self`'s. A different `kind` replaces
    /// the whole table.
    pub fn merged(&self, over: &Self) -> Self {
        if over.kind.is_some() && over.kind != self.kind {
            return over.clone();
        }
        merge_fields!(self, over; kind, ttl, min_per_sec, percent, max_tokens, token_ratio)
    }

    fn kind(&self) -> BudgetKind {
        self.kind.unwrap_or(BudgetKind::Ratio)
    }

    /// The budget (`None` for `kind = "none"`).
    pub fn to_budget(&self) -> Result<Option<Budget>, ConfigError> {
        let only = |field: &'static str, set: bool, kind: &str| {
            if set {
                Err(ConfigError::new(
                    field,
                    format!("only for kind = \"{kind}\""),
                ))
            } else {
                Ok(())
            }
        };
        match self.kind() {
            BudgetKind::Ratio => {
                only(
                    "budget.max_tokens",
                    self.max_tokens.is_some(),
                    "token_bucket",
                )?;
                only(
                    "budget.token_ratio",
                    self.token_ratio.is_some(),
                    "token_bucket",
                )?;
                Budget::ratio(
                    self.ttl.unwrap_or(DEFAULT_BUDGET_TTL),
                    self.min_per_sec.unwrap_or(DEFAULT_BUDGET_MIN_PER_SEC),
                    self.percent.unwrap_or(DEFAULT_BUDGET_PERCENT),
                )
                .map(Some)
            }
            BudgetKind::TokenBucket => {
                only("budget.ttl", self.ttl.is_some(), "ratio")?;
                only("budget.min_per_sec", self.min_per_sec.is_some(), "ratio")?;
                only("budget.percent", self.percent.is_some(), "ratio")?;
                let max = self.max_tokens.ok_or_else(|| {
                    ConfigError::new("budget.max_tokens", "missing: required for a token bucket")
                })?;
                let ratio = self.token_ratio.ok_or_else(|| {
                    ConfigError::new("budget.token_ratio", "missing: required for a token bucket")
                })?;
                Budget::token_bucket(max, ratio).map(Some)
            }
            BudgetKind::None => {
                let any = self.ttl.is_some()
                    || self.min_per_sec.is_some()
                    || self.percent.is_some()
                    || self.max_tokens.is_some()
                    || self.token_ratio.is_some();
                only("budget.kind", any, "ratio\" or \"token_bucket")?;
                Ok(None)
            }
        }
    }
}

/// The retry layer ([`RetryBuilder`]): `max_attempts`, `backoff`, `budget`,
/// `max_server_delay`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per request, the first included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The delay before each retry (default exponential from 100 ms, capped at 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffConfig>,
    /// The budget retries draw from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,
    /// The longest server-requested delay honoured.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_server_delay: Option<Duration>,
}

impl RetryConfig {
    /// Field by field: `over`'s values, else `self`'s.
    pub fn merged(&self, over: &Self) -> Self {
        Self {
            max_attempts: pick(&self.max_attempts, &over.max_attempts),
            backoff: pick_merged(&self.backoff, &over.backoff, BackoffConfig::merged),
            budget: pick_merged(&self.budget, &over.budget, BudgetConfig::merged),
            max_server_delay: pick(&self.max_server_delay, &over.max_server_delay),
        }
    }

    /// Sets what this table sets on `b`.
    pub fn apply<C, P>(
        &self,
        mut b: RetryBuilder<C, P>,
    ) -> Result<RetryBuilder<C, P>, ConfigError> {
        if let Some(n) = self.max_attempts {
            b = b.max_attempts(n);
        }
        if let Some(backoff) = &self.backoff {
            b = b.backoff(backoff.to_backoff(
                Some(Duration::from_millis(100)),
                Some(Duration::from_secs(10)),
            )?);
        }
        if let Some(budget) = &self.budget {
            b = match budget.to_budget()? {
                Some(budget) => b.budget(budget),
                None => b.no_budget(),
            };
        }
        if let Some(d) = self.max_server_delay {
            b = b.max_server_delay(d);
        }
        Ok(b)
    }

    /// A retry builder with this table's settings, checked.
    pub fn builder(&self) -> Result<RetryBuilder, ConfigError> {
        let b = self.apply(crate::retry::RetryLayer::builder())?;
        Ok(b)
    }
}

/// An adaptive bulkhead's AIMD settings ([`Aimd`](crate::bulkhead::Aimd)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AimdConfig {
    /// The factor applied to the limit on a decrease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ratio: Option<f64>,
    /// How much the limit grows after a good window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub increase: Option<u32>,
    /// A mean latency above which a window counts as overloaded.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub latency_threshold: Option<Duration>,
}

/// An adaptive bulkhead's Gradient2 settings ([`Gradient2`](crate::bulkhead::Gradient2)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gradient2Config {
    /// How much latency above the baseline is tolerated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// How fast the limit follows its target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothing: Option<f64>,
    /// The queue the limit leaves room for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<f64>,
    /// Windows in the long-term baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_window: Option<u32>,
}

/// An adaptive bulkhead's Vegas settings ([`Vegas`](crate::bulkhead::Vegas)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VegasConfig {
    /// Queued calls below which the limit grows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Queued calls above which the limit shrinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// How fast the limit follows its target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothing: Option<f64>,
    /// Windows between probes of the no-load latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_every: Option<u32>,
}

/// An adaptive limit ([`AdaptiveLimit`](crate::bulkhead::AdaptiveLimit)): exactly
/// one of the `aimd`, `gradient2` and `vegas` tables (an empty one takes that
/// algorithm's defaults), and the bounds. A stack's `adaptive` table replaces the
/// defaults' whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveConfig {
    /// The starting limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<usize>,
    /// The lowest limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<usize>,
    /// The highest limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<usize>,
    /// How long each measurement window lasts.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<Duration>,
    /// Samples a window needs to count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<u32>,
    /// AIMD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aimd: Option<AimdConfig>,
    /// Gradient2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient2: Option<Gradient2Config>,
    /// Vegas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vegas: Option<VegasConfig>,
}

impl AdaptiveConfig {
    /// The adaptive limit (checked when the bulkhead is built).
    pub fn to_limit(&self) -> Result<crate::bulkhead::AdaptiveLimit, ConfigError> {
        use crate::bulkhead::{AdaptiveLimit, Aimd, Gradient2, Vegas};
        let chosen = [
            self.aimd.is_some(),
            self.gradient2.is_some(),
            self.vegas.is_some(),
        ]
        .iter()
        .filter(|c| **c)
        .count();
        if chosen != 1 {
            return Err(ConfigError::new(
                "bulkhead.adaptive",
                "needs exactly one algorithm table: aimd, gradient2 or vegas",
            ));
        }
        let mut l = if let Some(a) = &self.aimd {
            let mut x = Aimd::default();
            if let Some(v) = a.backoff_ratio {
                x = x.backoff_ratio(v);
            }
            if let Some(v) = a.increase {
                x = x.increase(v);
            }
            if let Some(v) = a.latency_threshold {
                x = x.latency_threshold(v);
            }
            AdaptiveLimit::aimd(x)
        } else if let Some(g) = &self.gradient2 {
            let mut x = Gradient2::default();
            if let Some(v) = g.tolerance {
                x = x.tolerance(v);
            }
            if let Some(v) = g.smoothing {
                x = x.smoothing(v);
            }
            if let Some(v) = g.queue_size {
                x = x.queue_size(v);
            }
            if let Some(v) = g.long_window {
                x = x.long_window(v);
            }
            AdaptiveLimit::gradient2(x)
        } else {
            let v = self.vegas.clone().unwrap_or_default();
            let mut x = Vegas::default();
            if let Some(a) = v.alpha {
                x = x.alpha(a);
            }
            if let Some(b) = v.beta {
                x = x.beta(b);
            }
            if let Some(s) = v.smoothing {
                x = x.smoothing(s);
            }
            if let Some(p) = v.probe_every {
                x = x.probe_every(p);
            }
            AdaptiveLimit::vegas(x)
        };
        if let Some(n) = self.initial {
            l = l.initial(n);
        }
        if let Some(n) = self.min {
            l = l.min(n);
        }
        if let Some(n) = self.max {
            l = l.max(n);
        }
        if let Some(d) = self.window {
            l = l.window(d);
        }
        if let Some(n) = self.min_samples {
            l = l.min_samples(n);
        }
        Ok(l)
    }
}

/// The bulkhead ([`BulkheadBuilder`]): `max_concurrent`, a queue with
/// `max_queued` and `max_wait` (both, or neither), or an `adaptive` limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkheadConfig {
    /// Calls in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
    /// Callers that may wait for a permit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queued: Option<usize>,
    /// How long a queued caller waits at most.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_wait: Option<Duration>,
    /// An adaptive limit instead of `max_concurrent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveConfig>,
}

impl BulkheadConfig {
    /// Field by field: `over`'s values, else `self`'s.
    pub fn merged(&self, over: &Self) -> Self {
        merge_fields!(self, over; max_concurrent, max_queued, max_wait, adaptive)
    }

    /// Sets what this table sets on `b`.
    pub fn apply<C>(&self, mut b: BulkheadBuilder<C>) -> Result<BulkheadBuilder<C>, ConfigError> {
        if let Some(n) = self.max_concurrent {
            b = b.max_concurrent(n);
        }
        if let Some(a) = &self.adaptive {
            if self.max_concurrent.is_some() {
                return Err(ConfigError::new(
                    "bulkhead.adaptive",
                    "set max_concurrent or adaptive, not both",
                ));
            }
            b = b.adaptive(a.to_limit()?);
        }
        match (self.max_queued, self.max_wait) {
            (Some(q), Some(w)) => b = b.queue(q, w),
            (None, None) => {}
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "bulkhead.max_wait",
                    "missing: a queue needs max_queued and max_wait",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "bulkhead.max_queued",
                    "missing: a queue needs max_queued and max_wait",
                ));
            }
        }
        Ok(b)
    }

    /// A bulkhead builder with this table's settings.
    pub fn builder(&self) -> Result<BulkheadBuilder, ConfigError> {
        self.apply(crate::bulkhead::BulkheadLayer::builder())
    }
}

/// Each backend's circuit breaker ([`CircuitBreakerBuilder`]). `"off"` for
/// `consecutive_failures`, `count_window` or `time_window` turns that trip condition
/// off (a zero is rejected, as the builder rejects it); `open_duration` and `open_backoff` exclude each other; `slow_call_threshold`
/// and `slow_call_rate` go together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Failures in a row that trip (`"off"`: not this rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<OrOff<u32>>,
    /// The last calls judged for the failure rate (`"off"`: no count window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_window: Option<OrOff<u32>>,
    /// The time judged for the failure rate (`"off"`: no time window, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<OrOff<Duration>>,
    /// The time window's buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window_buckets: Option<u32>,
    /// The failure rate that trips, in `(0, 1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_rate: Option<f64>,
    /// A call slower than this is slow.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub slow_call_threshold: Option<Duration>,
    /// The slow-call rate that trips, in `(0, 1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_call_rate: Option<f64>,
    /// Calls a window needs before its rates count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_calls: Option<u32>,
    /// How long the breaker stays open (fixed).
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub open_duration: Option<Duration>,
    /// How long the breaker stays open, growing with consecutive trips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_backoff: Option<BackoffConfig>,
    /// Healthy time after which the trip count resets.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub reset_backoff_after: Option<Duration>,
    /// The longest server hint that holds the breaker open.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_server_delay: Option<Duration>,
    /// Probes admitted in half-open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_open_probes: Option<u32>,
}

impl BreakerConfig {
    /// Field by field: `over`'s values, else `self`'s. Setting one of
    /// `open_duration` and `open_backoff` in `over` drops the other of `self`.
    pub fn merged(&self, over: &Self) -> Self {
        let mut m = Self {
            consecutive_failures: pick(&self.consecutive_failures, &over.consecutive_failures),
            count_window: pick(&self.count_window, &over.count_window),
            time_window: pick(&self.time_window, &over.time_window),
            time_window_buckets: pick(&self.time_window_buckets, &over.time_window_buckets),
            failure_rate: pick(&self.failure_rate, &over.failure_rate),
            slow_call_threshold: pick(&self.slow_call_threshold, &over.slow_call_threshold),
            slow_call_rate: pick(&self.slow_call_rate, &over.slow_call_rate),
            minimum_calls: pick(&self.minimum_calls, &over.minimum_calls),
            open_duration: pick(&self.open_duration, &over.open_duration),
            open_backoff: pick_merged(
                &self.open_backoff,
                &over.open_backoff,
                BackoffConfig::merged,
            ),
            reset_backoff_after: pick(&self.reset_backoff_after, &over.reset_backoff_after),
            max_server_delay: pick(&self.max_server_delay, &over.max_server_delay),
            half_open_probes: pick(&self.half_open_probes, &over.half_open_probes),
        };
        if over.open_duration.is_some() && over.open_backoff.is_none() {
            m.open_backoff = None;
        }
        if over.open_backoff.is_some() && over.open_duration.is_none() {
            m.open_duration = None;
        }
        m
    }

    /// Sets what this table sets on `b`.
    pub fn apply<C>(
        &self,
        mut b: CircuitBreakerBuilder<C>,
    ) -> Result<CircuitBreakerBuilder<C>, ConfigError> {
        match self.consecutive_failures {
            Some(OrOff::Off) => b = b.no_consecutive_failures(),
            Some(OrOff::Value(n)) => b = b.consecutive_failures(n),
            None => {}
        }
        match self.count_window {
            Some(OrOff::Off) => b = b.no_count_window(),
            Some(OrOff::Value(n)) => b = b.count_window(n),
            None => {}
        }
        // Off is the builder's default: nothing to set.
        if let Some(OrOff::Value(d)) = self.time_window {
            b = b.time_window(d);
        }
        if let Some(n) = self.time_window_buckets {
            b = b.time_window_buckets(n);
        }
        if let Some(r) = self.failure_rate {
            b = b.failure_rate(r);
        }
        match (self.slow_call_threshold, self.slow_call_rate) {
            (Some(t), Some(r)) => b = b.slow_calls(t, r),
            (None, None) => {}
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "breaker.slow_call_rate",
                    "missing: slow_call_threshold needs slow_call_rate",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "breaker.slow_call_threshold",
                    "missing: slow_call_rate needs slow_call_threshold",
                ));
            }
        }
        if let Some(n) = self.minimum_calls {
            b = b.minimum_calls(n);
        }
        match (self.open_duration, &self.open_backoff) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "breaker.open_backoff",
                    "set open_duration or open_backoff, not both",
                ));
            }
            (Some(d), None) => b = b.open_duration(d),
            (None, Some(backoff)) => b = b.open_backoff(backoff.to_backoff(None, None)?),
            (None, None) => {}
        }
        if let Some(d) = self.reset_backoff_after {
            b = b.reset_backoff_after(d);
        }
        if let Some(d) = self.max_server_delay {
            b = b.max_server_delay(d);
        }
        if let Some(n) = self.half_open_probes {
            b = b.half_open_probes(n);
        }
        Ok(b)
    }

    /// A breaker builder with this table's settings.
    pub fn builder(&self) -> Result<CircuitBreakerBuilder, ConfigError> {
        self.apply(CircuitBreakerLayer::builder())
    }
}

/// How the router picks a backend within a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectionKind {
    /// [`Selection::PeakEwma`], with `ewma_decay` and `ewma_default_rtt`.
    PeakEwma,
    /// [`Selection::PowerOfTwoChoices`].
    PowerOfTwoChoices,
    /// [`Selection::WeightedRoundRobin`].
    WeightedRoundRobin,
}

/// What the router does in panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PanicModeConfig {
    /// [`PanicMode::RouteToAll`].
    RouteToAll,
    /// [`PanicMode::FailFast`].
    FailFast,
}

/// The failover router ([`FailoverBuilder`]). `"off"` for `consecutive_failures`,
/// `failure_rate`, `success_rate_drop` or `latency_factor` turns that ejection rule
/// off (a zero is rejected, as the builder rejects it). `ewma_decay` and `ewma_default_rtt` apply to the `peak_ewma` selection only
/// (the default), and are ignored by the others, so that defaults may set them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// The selection within a tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionKind>,
    /// Peak-EWMA's decay.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub ewma_decay: Option<Duration>,
    /// Peak-EWMA's latency of a backend not measured yet.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub ewma_default_rtt: Option<Duration>,
    /// Failures in a row that eject (`"off"`: not this rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<OrOff<u32>>,
    /// Failure rate in an interval that ejects (`"off"`: not this rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_rate: Option<OrOff<f64>>,
    /// Success rate below the median that ejects (`"off"`: not this rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate_drop: Option<OrOff<f64>>,
    /// Latency over the median that ejects (`"off"`: not this rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_factor: Option<OrOff<f64>>,
    /// Calls a backend needs in an interval to be judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u32>,
    /// Backends the relative rules need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_hosts: Option<u32>,
    /// How often the rate and latency rules judge.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// The first ejection's length.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub base_ejection_time: Option<Duration>,
    /// The longest ejection.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_ejection_time: Option<Duration>,
    /// The longest hold-off a server hint may ask.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_server_delay: Option<Duration>,
    /// The largest share of backends ejected at once, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<f64>,
    /// Envoy's overprovisioning factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overprovisioning_factor: Option<f64>,
    /// The total health, in percent, below which the router panics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic_threshold: Option<f64>,
    /// What the router does in panic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic_mode: Option<PanicModeConfig>,
}

impl RouterConfig {
    /// Field by field: `over`'s values, else `self`'s.
    pub fn merged(&self, over: &Self) -> Self {
        merge_fields!(self, over;
            selection, ewma_decay, ewma_default_rtt, consecutive_failures, failure_rate,
            success_rate_drop, latency_factor, min_requests, min_hosts, interval,
            base_ejection_time, max_ejection_time, max_server_delay, max_ejection_percent,
            overprovisioning_factor, panic_threshold, panic_mode)
    }

    /// Sets what this table sets on `b`.
    pub fn apply<S, C, T>(
        &self,
        mut b: FailoverBuilder<S, C, T>,
    ) -> Result<FailoverBuilder<S, C, T>, ConfigError> {
        let ewma_set = self.ewma_decay.is_some() || self.ewma_default_rtt.is_some();
        match self.selection {
            Some(SelectionKind::PowerOfTwoChoices) => {
                b = b.selection(Selection::PowerOfTwoChoices);
            }
            Some(SelectionKind::WeightedRoundRobin) => {
                b = b.selection(Selection::WeightedRoundRobin);
            }
            Some(SelectionKind::PeakEwma) | None => {
                if self.selection.is_some() || ewma_set {
                    let (decay, default_rtt) = match Selection::peak_ewma() {
                        Selection::PeakEwma { decay, default_rtt } => (decay, default_rtt),
                        _ => (Duration::from_secs(1), Duration::from_millis(30)),
                    };
                    b = b.selection(Selection::PeakEwma {
                        decay: self.ewma_decay.unwrap_or(decay),
                        default_rtt: self.ewma_default_rtt.unwrap_or(default_rtt),
                    });
                }
            }
        }
        if let Some(n) = self.consecutive_failures {
            b = b.consecutive_failures(n.value());
        }
        if let Some(x) = self.failure_rate {
            b = b.failure_rate(x.value());
        }
        if let Some(x) = self.success_rate_drop {
            b = b.success_rate_drop(x.value());
        }
        if let Some(x) = self.latency_factor {
            b = b.latency_factor(x.value());
        }
        if let Some(n) = self.min_requests {
            b = b.min_requests(n);
        }
        if let Some(n) = self.min_hosts {
            b = b.min_hosts(n);
        }
        if let Some(d) = self.interval {
            b = b.interval(d);
        }
        if let Some(d) = self.base_ejection_time {
            b = b.base_ejection_time(d);
        }
        if let Some(d) = self.max_ejection_time {
            b = b.max_ejection_time(d);
        }
        if let Some(d) = self.max_server_delay {
            b = b.max_server_delay(d);
        }
        if let Some(x) = self.max_ejection_percent {
            b = b.max_ejection_percent(x);
        }
        if let Some(x) = self.overprovisioning_factor {
            b = b.overprovisioning_factor(x);
        }
        if let Some(x) = self.panic_threshold {
            b = b.panic_threshold(x);
        }
        if let Some(m) = self.panic_mode {
            b = b.panic_mode(match m {
                PanicModeConfig::RouteToAll => PanicMode::RouteToAll,
                PanicModeConfig::FailFast => PanicMode::FailFast,
            });
        }
        Ok(b)
    }
}

/// Hedging ([`HedgeBuilder`]): on in a stack only with `enabled = true`. `delay`
/// (fixed) excludes `percentile`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeConfig {
    /// Whether a stack hedges (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// A fixed delay before the hedge.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
    /// The latency quantile to hedge at, in `(0, 1)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
    /// The shortest percentile delay.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_delay: Option<Duration>,
    /// The longest percentile delay.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_delay: Option<Duration>,
    /// Latencies needed before the percentile is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<u64>,
    /// Requests between halvings of the histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay_every: Option<u64>,
    /// Hedges per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hedges: Option<u32>,
}

impl HedgeConfig {
    /// Field by field: `over`'s values, else `self`'s.
    pub fn merged(&self, over: &Self) -> Self {
        let mut m: Self = merge_fields!(self, over;
            enabled, delay, percentile, min_delay, max_delay, min_samples, decay_every, max_hedges);
        if over.delay.is_some() && over.percentile.is_none() {
            m.percentile = None;
        }
        if over.percentile.is_some() && over.delay.is_none() {
            m.delay = None;
        }
        m
    }

    /// Whether a stack with this table hedges.
    pub fn is_enabled(&self) -> bool {
        self.enabled == Some(true)
    }

    /// Sets what this table sets on `b` (`enabled` is the stack's business).
    pub fn apply<C, P>(
        &self,
        mut b: HedgeBuilder<C, P>,
    ) -> Result<HedgeBuilder<C, P>, ConfigError> {
        match (self.delay, self.percentile) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "hedge.delay",
                    "set delay or percentile, not both",
                ));
            }
            (Some(d), None) => b = b.delay(d),
            (None, Some(q)) => b = b.percentile(q),
            (None, None) => {}
        }
        if let Some(d) = self.min_delay {
            b = b.min_delay(d);
        }
        if let Some(d) = self.max_delay {
            b = b.max_delay(d);
        }
        if let Some(n) = self.min_samples {
            b = b.min_samples(n);
        }
        if let Some(n) = self.decay_every {
            b = b.decay_every(n);
        }
        if let Some(n) = self.max_hedges {
            b = b.max_hedges(n);
        }
        Ok(b)
    }
}

/// A stack's two timeouts: `deadline` (the whole request) and `attempt` (each
/// attempt).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// The overall deadline of each request.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub deadline: Option<Duration>,
    /// The per-attempt timeout.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub attempt: Option<Duration>,
}

impl TimeoutsConfig {
    /// Field by field: `over`'s values, else `self`'s.
    pub fn merged(&self, over: &Self) -> Self {
        merge_fields!(self, over; deadline, attempt)
    }

    /// The per-attempt [`TimeoutLayer`](crate::timeout::TimeoutLayer) (requires
    /// `attempt`).
    pub fn attempt_layer(&self) -> Result<crate::timeout::TimeoutLayer, ConfigError> {
        let d = self
            .attempt
            .ok_or_else(|| ConfigError::new("timeouts.attempt", "missing"))?;
        crate::timeout::check("timeouts.attempt", d)?;
        Ok(crate::timeout::TimeoutLayer::new(d))
    }

    /// The overall [`DeadlineLayer`](crate::timeout::DeadlineLayer) (requires
    /// `deadline`).
    pub fn deadline_layer(&self) -> Result<crate::timeout::DeadlineLayer, ConfigError> {
        let d = self
            .deadline
            .ok_or_else(|| ConfigError::new("timeouts.deadline", "missing"))?;
        crate::timeout::check("timeouts.deadline", d)?;
        Ok(crate::timeout::DeadlineLayer::new(d))
    }
}

/// A rate limiter ([`RateLimitBuilder`](crate::rate_limit::RateLimitBuilder)):
/// `rate` calls per `per` (both, or neither), `burst`, `max_wait`.
#[cfg(feature = "rate-limit")]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Calls per `per`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// The period of `rate` (default 1 s).
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub per: Option<Duration>,
    /// Calls that may arrive at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// How long a call over the limit may wait for its slot.
    #[serde(
        default,
        with = "super::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_wait: Option<Duration>,
}

#[cfg(feature = "rate-limit")]
impl RateLimitConfig {
    /// Field by field: `over`'s values, else `self`'s.
    pub fn merged(&self, over: &Self) -> Self {
        merge_fields!(self, over; rate, per, burst, max_wait)
    }

    /// Sets what this table sets on `b`.
    pub fn apply(
        &self,
        mut b: crate::rate_limit::RateLimitBuilder,
    ) -> Result<crate::rate_limit::RateLimitBuilder, ConfigError> {
        if self.rate.is_some() || self.per.is_some() {
            let rate = self
                .rate
                .ok_or_else(|| ConfigError::new("rate_limit.rate", "missing: per needs a rate"))?;
            b = b.rate(rate, self.per.unwrap_or(Duration::from_secs(1)));
        }
        if let Some(n) = self.burst {
            b = b.burst(n);
        }
        if let Some(d) = self.max_wait {
            b = b.max_wait(d);
        }
        Ok(b)
    }
}

#[cfg(feature = "rate-limit")]
impl RateLimitConfig {
    /// Changes a running limiter to this table's quota (keys left out take the
    /// builder's defaults, as when built), keeping what was spent; checked first, so
    /// a bad table changes nothing and names its field.
    pub fn reconfigure(
        &self,
        handle: &crate::rate_limit::RateLimitHandle,
    ) -> Result<(), ConfigError> {
        handle.reconfigure(&self.apply(crate::rate_limit::RateLimitLayer::builder())?)
    }
}

#[cfg(feature = "rate-limit")]
impl TryFrom<&RateLimitConfig> for crate::rate_limit::RateLimitLayer {
    type Error = ConfigError;

    fn try_from(c: &RateLimitConfig) -> Result<Self, ConfigError> {
        c.apply(crate::rate_limit::RateLimitLayer::builder())?
            .build()
    }
}

impl TryFrom<&RetryConfig> for crate::retry::RetryLayer {
    type Error = ConfigError;

    fn try_from(c: &RetryConfig) -> Result<Self, ConfigError> {
        c.builder()?.build()
    }
}

impl TryFrom<&BreakerConfig> for CircuitBreakerLayer {
    type Error = ConfigError;

    fn try_from(c: &BreakerConfig) -> Result<Self, ConfigError> {
        c.builder()?.build()
    }
}

impl TryFrom<&BulkheadConfig> for crate::bulkhead::BulkheadLayer {
    type Error = ConfigError;

    fn try_from(c: &BulkheadConfig) -> Result<Self, ConfigError> {
        c.builder()?.build()
    }
}

impl TryFrom<&HedgeConfig> for crate::hedge::HedgeLayer {
    type Error = ConfigError;

    fn try_from(c: &HedgeConfig) -> Result<Self, ConfigError> {
        c.apply(crate::hedge::HedgeLayer::builder())?.build()
    }
}

impl TryFrom<&BackoffConfig> for Backoff {
    type Error = ConfigError;

    fn try_from(c: &BackoffConfig) -> Result<Self, ConfigError> {
        c.to_backoff(None, None)
    }
}
