//! Validated router configuration.

use std::time::Duration;

/// How backends are chosen within a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selection {
    /// Power of two choices: pick two eligible backends at random and send to the
    /// cheaper one, where cost is (calls in flight + a penalty per consecutive
    /// failure) ÷ weight. Blind to latency: a backend that turns slow keeps its
    /// share until its calls pile up in flight.
    PowerOfTwoChoices,
    /// Smooth weighted round robin (nginx's): each backend gets its weight's share of
    /// calls, interleaved. The order is kept per router clone.
    WeightedRoundRobin,
    /// Power of two choices by peak-EWMA latency (Finagle's and tower's
    /// `PeakEwma`): cost is the backend's latency estimate × (calls in flight + 1 +
    /// failure penalty) ÷ weight. The estimate jumps to a slower response at once and
    /// decays towards faster ones (and towards zero while no response arrives) with
    /// time constant `decay`; a backend starts at `default_rtt`. Times every call
    /// (two clock reads) and reads the clock once per selection. The default, as
    /// [`Selection::peak_ewma`]; see [`Selection::default`].
    PeakEwma {
        /// How fast old latencies are forgotten.
        decay: Duration,
        /// The estimate of a backend without a measurement yet.
        default_rtt: Duration,
    },
}

impl Selection {
    /// [`Selection::PeakEwma`] with a decay of 1 s and a default latency of 30 ms.
    ///
    /// Why 1 s: the decay is how long a backend that was slow stays expensive after
    /// it is fast again, and how often a slow backend gets a call that re-measures it.
    /// Finagle and tower use 10 s, which keeps a healed backend at a fraction of its
    /// share for about 30 s (the estimate must decay from the slow latency back to the
    /// fast one: `decay × ln(slow / fast)`). With 1 s a backend 20× slower than its
    /// peers loses its traffic within a second and gets it back about 3 s after it
    /// heals; the price is a noisier estimate, which the power of two choices and the
    /// load factor (calls in flight) absorb.
    pub fn peak_ewma() -> Self {
        Selection::PeakEwma {
            decay: Duration::from_secs(1),
            default_rtt: Duration::from_millis(30),
        }
    }
}

impl Default for Selection {
    /// [`Selection::peak_ewma`]: latency-aware, with failures as cost. A backend
    /// that turns slow loses its share within about a second, and gets it back when
    /// it is fast again; one that fails fast does not look cheap, because each
    /// failure in a row adds to its cost.
    fn default() -> Self {
        Selection::peak_ewma()
    }
}

/// What the router does when too few backends are healthy (the total health of all
/// tiers is below the panic threshold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PanicMode {
    /// Ignore outlier ejections and route to every backend of the highest tier that
    /// has any (Envoy's panic routing): some calls may succeed where the detector was
    /// wrong or the outage is partial. Backends disabled by hand, removed, or failing
    /// their active health checks stay out. The default.
    #[default]
    RouteToAll,
    /// Fail every call at once with [`NoHealthyBackend`](super::NoHealthyBackend).
    FailFast,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) selection: Selection,
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) success_rate_drop: Option<f64>,
    pub(crate) latency_factor: Option<f64>,
    pub(crate) min_requests: u32,
    pub(crate) min_hosts: u32,
    pub(crate) interval: Duration,
    pub(crate) base_ejection: Duration,
    pub(crate) max_ejection: Duration,
    /// The longest hold-off a server hint may ask; `None`: the base ejection time.
    pub(crate) max_server_delay: Option<Duration>,
    pub(crate) max_ejection_percent: f64,
    pub(crate) overprovisioning: f64,
    pub(crate) panic_threshold: f64,
    pub(crate) panic_mode: PanicMode,
}

impl Config {
    /// The longest hold-off a server hint may ask.
    #[inline]
    pub(crate) fn max_server_delay(&self) -> Duration {
        self.max_server_delay.unwrap_or(self.base_ejection)
    }

    /// Whether calls must be counted against the clock for the interval sweep.
    #[inline]
    pub(crate) fn needs_sweep(&self) -> bool {
        self.failure_rate.is_some() || self.success_rate_drop.is_some()
    }

    #[inline]
    pub(crate) fn times_calls(&self) -> bool {
        self.latency_factor.is_some() || matches!(self.selection, Selection::PeakEwma { .. })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            selection: Selection::default(),
            consecutive_failures: Some(5),
            failure_rate: Some(0.5),
            success_rate_drop: Some(0.15),
            latency_factor: Some(5.0),
            min_requests: 10,
            min_hosts: 3,
            interval: Duration::from_secs(2),
            base_ejection: Duration::from_secs(2),
            max_ejection: Duration::from_secs(10),
            max_server_delay: None,
            max_ejection_percent: 50.0,
            overprovisioning: 1.4,
            panic_threshold: 50.0,
            panic_mode: PanicMode::RouteToAll,
        }
    }
}
