use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower_layer::Layer;

use super::Hedge;
use super::histogram::Histogram;
use super::shared::{BudgetUse, Config, DelayMode, Shared};
use crate::budget::Budget;
use crate::classify::DefaultClassifier;
use crate::config::{ConfigError, check_range};
use crate::observe::{Listener, Listeners};
use crate::retry::CloneReplay;

/// Wraps services in [`Hedge`]. Built by [`HedgeLayer::builder`].
///
/// Each service the layer makes keeps its own latency histogram (clones of that
/// service share it); all of them share the layer's budget.
pub struct HedgeLayer<C = DefaultClassifier, P = CloneReplay> {
    pub(crate) config: Arc<Config<C, P>>,
}

impl<C, P> Clone for HedgeLayer<C, P> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<C, P> fmt::Debug for HedgeLayer<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("HedgeLayer")
            .field("delay", &c.delay)
            .field("min_delay", &c.min_delay)
            .field("max_delay", &c.max_delay)
            .field("max_hedges", &c.max_hedges)
            .field("budget", &c.budget)
            .finish_non_exhaustive()
    }
}

/// The quantile [`HedgeLayer::builder`] hedges at.
pub const DEFAULT_PERCENTILE: f64 = 0.95;

impl HedgeLayer {
    /// A builder with the defaults:
    ///
    /// | setting | default | why |
    /// |---|---|---|
    /// | delay | the 95th percentile of this instance's recent latencies | "The Tail at Scale": a hedge after the p95 adds about 5 % load and removes most of the tail; a fixed delay goes stale when the backend changes |
    /// | bounds | at least 1 ms, at most 1 s; 1 s until 100 latencies are known | below a millisecond a hedge mostly doubles work on a healthy path; with no estimate yet the layer hedges only what is clearly stuck |
    /// | decay | the histogram halves every 4,096 requests | the estimate follows a backend that changed within a few thousand requests |
    /// | max hedges | 1 | a second hedge helps only when two backends are slow at once, for another copy's worth of load |
    /// | budget | its own: 5 % of the requests of the last 10 s, plus 1 per second | a hard bound on the extra load, whatever the latency does; share the retry layer's budget with [`draw_from`](HedgeBuilder::draw_from) |
    /// | classifier | [`DefaultClassifier`] | an attempt that fails while another copy is in flight is dropped, and the other copy may still answer |
    /// | replay | [`CloneReplay`] | every request is copied by `Clone`; with HTTP use [`HttpReplay`](crate::http::HttpReplay), which refuses non-idempotent requests |
    pub fn builder() -> HedgeBuilder {
        HedgeBuilder {
            settings: Settings {
                delay: DelayMode::Percentile {
                    quantile: DEFAULT_PERCENTILE,
                },
                min_delay: Duration::from_millis(1),
                max_delay: Duration::from_secs(1),
                min_samples: 100,
                decay_every: 4096,
                max_hedges: 1,
                budget: BudgetUse::Own(
                    Budget::ratio(Duration::from_secs(10), 1, 0.05).expect("valid defaults"),
                ),
                listeners: Listeners::default(),
            },
            classifier: DefaultClassifier,
            replay: CloneReplay,
        }
    }
}

impl<C, P> HedgeLayer<C, P> {
    /// The budget hedges draw from, if any.
    pub fn budget(&self) -> Option<&Budget> {
        self.config.budget.budget()
    }

    /// A layer that never hedges: requests pass through untouched (no copy, no
    /// clock read, no timer). The one-call stack uses it while hedging is off.
    pub(crate) fn is_off(&self) -> bool {
        self.config.max_hedges == 0
    }
}

impl<S: Clone, C, P> Layer<S> for HedgeLayer<C, P> {
    type Service = Hedge<S, C, P>;

    fn layer(&self, inner: S) -> Self::Service {
        let histogram = match self.config.delay {
            DelayMode::Percentile { quantile } if !self.is_off() => Some(Histogram::new(
                quantile,
                self.config.min_samples,
                self.config.decay_every,
            )),
            _ => None,
        };
        Hedge {
            shared: Arc::new(Shared {
                config: self.config.clone(),
                histogram,
                template: Mutex::new(inner.clone()),
            }),
            inner,
        }
    }
}

/// Builds a [`HedgeLayer`]; see [`HedgeLayer::builder`] for the defaults.
pub struct HedgeBuilder<C = DefaultClassifier, P = CloneReplay> {
    settings: Settings,
    classifier: C,
    replay: P,
}

/// A [`HedgeBuilder`]'s settings but the classifier and the replay: the methods that
/// change the builder's type move them as one value, and a new option is added here
/// and in its setter.
struct Settings {
    delay: DelayMode,
    min_delay: Duration,
    max_delay: Duration,
    min_samples: u64,
    decay_every: u64,
    max_hedges: u32,
    budget: BudgetUse,
    listeners: Listeners,
}

impl<C, P> fmt::Debug for HedgeBuilder<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("HedgeBuilder")
            .field("delay", &s.delay)
            .field("min_delay", &s.min_delay)
            .field("max_delay", &s.max_delay)
            .field("max_hedges", &s.max_hedges)
            .field("budget", &s.budget)
            .finish_non_exhaustive()
    }
}

impl<C, P> HedgeBuilder<C, P> {
    /// Hedge a fixed `delay` after the original request (greater than zero).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.settings.delay = DelayMode::Fixed(delay);
        self
    }

    /// Hedge once the request has been in flight longer than the `quantile` (in
    /// `(0, 1)`, e.g. `0.95`) of this instance's recent latencies; about
    /// `1 - quantile` of requests then get a hedge. Default 0.95.
    pub fn percentile(mut self, quantile: f64) -> Self {
        self.settings.delay = DelayMode::Percentile { quantile };
        self
    }

    /// The shortest percentile delay (default 1 ms).
    pub fn min_delay(mut self, min: Duration) -> Self {
        self.settings.min_delay = min;
        self
    }

    /// The longest percentile delay, also used until the layer has seen enough
    /// latencies to estimate one (default 1 s).
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.settings.max_delay = max;
        self
    }

    /// How many latencies the percentile needs before it is used (at least 1;
    /// default 100).
    pub fn min_samples(mut self, n: u64) -> Self {
        self.settings.min_samples = n;
        self
    }

    /// Halve the histogram every `n` requests (at least 32; default 4,096), so old
    /// latencies fade.
    pub fn decay_every(mut self, n: u64) -> Self {
        self.settings.decay_every = n;
        self
    }

    /// At most this many hedges per request (1 to 8; default 1). Each further hedge
    /// is sent one more delay after the previous one.
    pub fn max_hedges(mut self, n: u32) -> Self {
        self.settings.max_hedges = n;
        self
    }

    /// Hedges draw from `budget`, and the layer records every request and outcome in
    /// it (use this when no retry layer shares the budget).
    pub fn budget(mut self, budget: Budget) -> Self {
        self.settings.budget = BudgetUse::Own(budget);
        self
    }

    /// Hedges draw from `budget`, which another layer — the retry layer above —
    /// fills: this layer only withdraws. Retries and hedges then share one bound on
    /// extra load, as gRPC's retry throttling bounds both.
    pub fn draw_from(mut self, budget: Budget) -> Self {
        self.settings.budget = BudgetUse::Shared(budget);
        self
    }

    /// Hedge without a budget, limited only by the delay and `max_hedges`. When
    /// every backend is slow, this sends `1 + max_hedges` copies of every request.
    pub fn no_budget(mut self) -> Self {
        self.settings.budget = BudgetUse::None;
        self
    }

    /// Names this layer: its log lines carry the name as the field `name`, and
    /// listeners get it with each event. Unnamed by default.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).named(name);
        self
    }

    /// Sends [`HedgeEvent`](crate::observe::HedgeEvent)s to `listener`. Listeners
    /// add up.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).with(listener);
        self
    }

    /// Decides which answers win: a success ends the request; a failure while
    /// another copy is in flight is dropped and the other copy awaited.
    pub fn classifier<C2>(self, classifier: C2) -> HedgeBuilder<C2, P> {
        HedgeBuilder {
            settings: self.settings,
            classifier,
            replay: self.replay,
        }
    }

    /// How requests are copied (the retry layer's [`Replay`](crate::retry::Replay)):
    /// a request the replay will not copy, or whose overrides disable retries (a
    /// non-idempotent HTTP request under [`HttpReplay`](crate::http::HttpReplay)), is
    /// never hedged.
    pub fn replay<P2>(self, replay: P2) -> HedgeBuilder<C, P2> {
        HedgeBuilder {
            settings: self.settings,
            classifier: self.classifier,
            replay,
        }
    }

    /// A layer that passes every request through unhedged (checked as configured,
    /// built with no hedge).
    #[allow(dead_code)] // Used by the one-call stack.
    pub(crate) fn build_off(self) -> Result<HedgeLayer<C, P>, ConfigError> {
        let layer = self.build()?;
        let mut config = Arc::into_inner(layer.config).expect("just built");
        config.max_hedges = 0;
        Ok(HedgeLayer {
            config: Arc::new(config),
        })
    }

    /// Checks the configuration and builds the layer. Errors name the field
    /// (`hedge.delay`, `hedge.percentile`, `hedge.max_hedges`, ...).
    pub fn build(self) -> Result<HedgeLayer<C, P>, ConfigError> {
        let s = self.settings;
        match s.delay {
            DelayMode::Fixed(d) if d.is_zero() => {
                return Err(ConfigError::new("hedge.delay", "must be greater than zero"));
            }
            DelayMode::Percentile { quantile } => {
                check_range("hedge.percentile", quantile, 0.0, 1.0)?;
                if quantile <= 0.0 || quantile >= 1.0 {
                    return Err(ConfigError::new(
                        "hedge.percentile",
                        format!("must lie strictly between 0 and 1 (got {quantile})"),
                    ));
                }
            }
            DelayMode::Fixed(_) => {}
        }
        if s.max_delay.is_zero() {
            return Err(ConfigError::new(
                "hedge.max_delay",
                "must be greater than zero",
            ));
        }
        if s.min_delay > s.max_delay {
            return Err(ConfigError::new(
                "hedge.min_delay",
                format!(
                    "must not exceed max_delay ({:?} > {:?})",
                    s.min_delay, s.max_delay
                ),
            ));
        }
        if s.min_samples == 0 {
            return Err(ConfigError::new("hedge.min_samples", "must be at least 1"));
        }
        if s.decay_every < super::histogram::RECOMPUTE_EVERY {
            return Err(ConfigError::new(
                "hedge.decay_every",
                format!(
                    "must be at least {} requests",
                    super::histogram::RECOMPUTE_EVERY
                ),
            ));
        }
        if !(1..=8).contains(&s.max_hedges) {
            return Err(ConfigError::new(
                "hedge.max_hedges",
                format!("must lie in 1..=8 (got {})", s.max_hedges),
            ));
        }
        Ok(HedgeLayer {
            config: Arc::new(Config {
                delay: s.delay,
                min_delay: s.min_delay,
                max_delay: s.max_delay,
                min_samples: s.min_samples,
                decay_every: s.decay_every,
                max_hedges: s.max_hedges,
                budget: s.budget,
                listeners: s.listeners,
                classifier: self.classifier,
                replay: self.replay,
            }),
        })
    }
}
