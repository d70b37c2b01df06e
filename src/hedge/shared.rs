//! What the services of one hedge layer share: the configuration, the latency
//! histogram, the service hedges are cloned from.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::histogram::Histogram;
use crate::budget::Budget;
use crate::observe::Listeners;

/// When a hedge is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum DelayMode {
    /// A fixed time after the original.
    Fixed(Duration),
    /// At a quantile of the instance's recent latencies, within `min..=max`.
    Percentile { quantile: f64 },
}

/// How the layer draws from its budget.
#[derive(Debug, Clone)]
pub(crate) enum BudgetUse {
    None,
    /// The layer deposits a request and records outcomes itself.
    Own(Budget),
    /// Another layer (the retry layer above) deposits and records; hedges only
    /// withdraw.
    Shared(Budget),
}

impl BudgetUse {
    pub(crate) fn budget(&self) -> Option<&Budget> {
        match self {
            BudgetUse::None => None,
            BudgetUse::Own(b) | BudgetUse::Shared(b) => Some(b),
        }
    }
}

/// The configuration of a hedging layer, shared by every clone of it.
pub(crate) struct Config<C, P> {
    pub(crate) delay: DelayMode,
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) min_samples: u64,
    pub(crate) decay_every: u64,
    pub(crate) max_hedges: u32,
    pub(crate) budget: BudgetUse,
    pub(crate) listeners: Listeners,
    pub(crate) classifier: C,
    pub(crate) replay: P,
}

/// What the services made from one `layer` call share: the configuration, the
/// latency histogram, and the service hedges are cloned from.
pub(crate) struct Shared<S, C, P> {
    pub(crate) config: Arc<Config<C, P>>,
    pub(crate) histogram: Option<Histogram>,
    pub(crate) template: Mutex<S>,
}

impl<S, C, P> Shared<S, C, P> {
    /// The delay before the next hedge.
    #[inline]
    pub(crate) fn delay(&self) -> Duration {
        let c = &self.config;
        match c.delay {
            DelayMode::Fixed(d) => d,
            DelayMode::Percentile { .. } => {
                match self.histogram.as_ref().and_then(|h| h.estimate()) {
                    Some(d) => d.clamp(c.min_delay, c.max_delay),
                    None => c.max_delay,
                }
            }
        }
    }
}
