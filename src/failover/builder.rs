//! The router's builder: its settings, validated once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Failover;
use super::backend::{Backend, HealthCheck, check_backend};
use super::config::{Config, PanicMode, Selection};
use super::core::Core;
use super::pool::Pool;
use super::tried::NoTried;
use crate::classify::DefaultClassifier;
use crate::config::{ConfigError, check_range};
use crate::observe::{Listener, Listeners};
use crate::rng::Rng;

/// Builds a [`Failover`] router; see [`Failover::builder`] for the defaults.
pub struct FailoverBuilder<S, C = DefaultClassifier, T = NoTried> {
    backends: Vec<Backend<S>>,
    settings: Settings,
    classifier: C,
    tried: T,
}

/// A [`FailoverBuilder`]'s settings but the backends, the classifier and the tried
/// set: the methods that change the builder's type move them as one value, and a new
/// option is added here and in its setter.
struct Settings {
    cfg: Config,
    health_check: HealthCheck,
    listeners: Listeners,
    rng: Option<Rng>,
}

impl<S, C, T> fmt::Debug for FailoverBuilder<S, C, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverBuilder")
            .field("backends", &self.backends)
            .field("config", &self.settings.cfg)
            .field("health_check", &self.settings.health_check)
            .finish_non_exhaustive()
    }
}

impl<S> Failover<S> {
    /// A builder with the defaults: peak-EWMA selection with failures as cost (decay
    /// 1 s); ejection after 5 consecutive failures, a failure rate of 50 %, a success
    /// rate 15 points below the median, or a mean latency 5× the median (rates and
    /// latency judged every 2 s over backends with at least 10 calls, relative rules
    /// with at least 3 backends); ejections of 2 s × times ejected, at most 10 s, at
    /// most 50 % of backends at once; overprovisioning factor 1.4; panic below 50 %
    /// total health, routing to every member not held off; [`DefaultClassifier`]; no
    /// attempt tracking. The [module docs](super) say why.
    pub fn builder() -> FailoverBuilder<S> {
        FailoverBuilder::new()
    }
}

impl<S> FailoverBuilder<S> {
    pub(crate) fn new() -> Self {
        Self {
            backends: Vec::new(),
            settings: Settings {
                cfg: Config::default(),
                health_check: HealthCheck::default(),
                listeners: Listeners::default(),
                rng: None,
            },
            classifier: DefaultClassifier,
            tried: NoTried,
        }
    }
}

impl<S, C, T> FailoverBuilder<S, C, T> {
    /// Adds a backend.
    pub fn backend(mut self, backend: Backend<S>) -> Self {
        self.backends.push(backend);
        self
    }

    /// Adds several backends.
    pub fn backends(mut self, backends: impl IntoIterator<Item = Backend<S>>) -> Self {
        self.backends.extend(backends);
        self
    }

    /// How a backend is chosen within a tier. Default: [`Selection::peak_ewma`]
    /// (latency-aware power of two choices with failures as cost).
    pub fn selection(mut self, selection: Selection) -> Self {
        self.settings.cfg.selection = selection;
        self
    }

    /// Ejects a backend after this many failed calls in a row (at least 1), or never
    /// with `None`. Default 5.
    pub fn consecutive_failures(mut self, n: Option<u32>) -> Self {
        self.settings.cfg.consecutive_failures = n;
        self
    }

    /// Never ejects a backend for failures in a row
    /// (the same as `consecutive_failures(None)`).
    pub fn no_consecutive_failures(self) -> Self {
        self.consecutive_failures(None)
    }

    /// Ejects a backend whose share of failed calls in one interval reaches this
    /// (in `0.0..=1.0`, exclusive of 0), or never with `None`. Default 0.5.
    pub fn failure_rate(mut self, rate: Option<f64>) -> Self {
        self.settings.cfg.failure_rate = rate;
        self
    }

    /// Never ejects a backend for its failure rate
    /// (the same as `failure_rate(None)`).
    pub fn no_failure_rate(self) -> Self {
        self.failure_rate(None)
    }

    /// Ejects a backend whose success rate in one interval is more than `drop` below
    /// the median of the backends (in `0.0..=1.0`, exclusive of 0; needs
    /// [`min_hosts`](Self::min_hosts) backends with enough calls), or never with
    /// `None`. Default 0.15: with peers at 100 % a backend at 84 % is ejected.
    pub fn success_rate_drop(mut self, drop: Option<f64>) -> Self {
        self.settings.cfg.success_rate_drop = drop;
        self
    }

    /// Never ejects a backend for a success rate below its peers
    /// (the same as `success_rate_drop(None)`).
    pub fn no_success_rate_drop(self) -> Self {
        self.success_rate_drop(None)
    }

    /// Ejects a backend whose mean latency in one interval is more than `factor`
    /// times the backends' median (greater than 1; needs
    /// [`min_hosts`](Self::min_hosts) backends with enough calls), or never with
    /// `None`. Default 5. Latency tracking reads the clock twice per call; `None`
    /// turns it off.
    pub fn latency_factor(mut self, factor: Option<f64>) -> Self {
        self.settings.cfg.latency_factor = factor;
        self
    }

    /// Never ejects a backend for its latency
    /// (the same as `latency_factor(None)`).
    pub fn no_latency_factor(self) -> Self {
        self.latency_factor(None)
    }

    /// Calls a backend needs in one interval before the rate and latency rules judge
    /// it (at least 1). Default 10.
    pub fn min_requests(mut self, n: u32) -> Self {
        self.settings.cfg.min_requests = n;
        self
    }

    /// Backends with enough calls the relative rules (success rate, latency) need
    /// before they compare (at least 2). Default 3.
    pub fn min_hosts(mut self, n: u32) -> Self {
        self.settings.cfg.min_hosts = n;
        self
    }

    /// How often the rate and latency rules run (they run on the first call after
    /// each interval). Default 2 s.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.settings.cfg.interval = interval;
        self
    }

    /// The first ejection's length; the n-th in a row lasts n times this, up to
    /// [`max_ejection_time`](Self::max_ejection_time). Each base time spent healthy
    /// after an ejection takes one step off the count. Default 2 s: a backend that
    /// heals after one ejection is back within 2 s.
    pub fn base_ejection_time(mut self, base: Duration) -> Self {
        self.settings.cfg.base_ejection = base;
        self
    }

    /// The longest ejection. Default 10 s: however often a backend was ejected, it is
    /// tried again within 10 s.
    pub fn max_ejection_time(mut self, max: Duration) -> Self {
        self.settings.cfg.max_ejection = max;
        self
    }

    /// The longest a server hint (`Retry-After`, gRPC pushback, an open breaker in
    /// front of the backend) may hold a backend out of rotation; longer hints are
    /// capped to it. `Duration::ZERO` ignores hints.
    ///
    /// Default: the [base ejection time](Self::base_ejection_time) (2 s unless set).
    /// A backend's own request to pause then takes it out no longer than a first
    /// ejection for misbehaving would, and one `503 Retry-After: 86400` (a maintenance
    /// page, a misconfigured proxy) cannot remove a healthy backend for a day. A
    /// shorter cap would send calls back to a backend that said it is busy; a longer
    /// one, up to the maximum ejection time, suits backends whose hints are trusted.
    /// The retry layer's own cap on hints (30 s) is the same order of magnitude.
    pub fn max_server_delay(mut self, max: Duration) -> Self {
        self.settings.cfg.max_server_delay = Some(max);
        self
    }

    /// The largest share of backends (in percent, `0.0..=100.0`) that outlier
    /// detection and server hints together may hold out of rotation at once; more
    /// ejections and hold-offs are skipped. Default 50.
    pub fn max_ejection_percent(mut self, percent: f64) -> Self {
        self.settings.cfg.max_ejection_percent = percent;
        self
    }

    /// Envoy's overprovisioning factor (at least 1): a tier keeps all traffic while
    /// `healthy share × factor ≥ 100 %`; below that the rest spills to the next tier.
    /// Default 1.4: a tier keeps everything while at least 72 % healthy.
    pub fn overprovisioning_factor(mut self, factor: f64) -> Self {
        self.settings.cfg.overprovisioning = factor;
        self
    }

    /// The total health (in percent, `0.0..=100.0`, summed over tiers after the
    /// overprovisioning factor) below which the router panics; see
    /// [`panic_mode`](Self::panic_mode). Default 50; 0 never panics while a backend
    /// is healthy.
    pub fn panic_threshold(mut self, percent: f64) -> Self {
        self.settings.cfg.panic_threshold = percent;
        self
    }

    /// What to do in panic. Default [`PanicMode::RouteToAll`].
    pub fn panic_mode(mut self, mode: PanicMode) -> Self {
        self.settings.cfg.panic_mode = mode;
        self
    }

    /// Settings of the active health checks (used by backends with a probe).
    pub fn health_check(mut self, health_check: HealthCheck) -> Self {
        self.settings.health_check = health_check;
        self
    }

    /// The random stream for the selection. Seed it for reproducible routing.
    pub fn rng(mut self, rng: Rng) -> Self {
        self.settings.rng = Some(rng);
        self
    }

    /// Names this router (`"payments"`, `"eu-1"`): every log line it writes carries
    /// the name as the field `name`, and listeners get it with each event
    /// ([`Listener::on_named_event`](crate::observe::Listener::on_named_event)).
    /// Unnamed by default.
    pub fn name(mut self, name: impl Into<std::sync::Arc<str>>) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).named(name);
        self
    }

    /// Sends [`FailoverEvent`](crate::observe::FailoverEvent)s to `listener`.
    /// Listeners add up: each one registered gets every event.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).with(listener);
        self
    }

    /// Decides which results count as failures for outlier detection.
    pub fn classifier<C2>(self, classifier: C2) -> FailoverBuilder<S, C2, T> {
        FailoverBuilder {
            backends: self.backends,
            settings: self.settings,
            classifier,
            tried: self.tried,
        }
    }

    /// Where requests carry their [`Tried`](super::Tried) set, for attempt-aware
    /// routing under a retry layer.
    pub fn tried<T2>(self, tried: T2) -> FailoverBuilder<S, C, T2> {
        FailoverBuilder {
            backends: self.backends,
            settings: self.settings,
            classifier: self.classifier,
            tried,
        }
    }

    /// These settings, for backends of another type; the backends added so far are
    /// dropped. The one-call stacks keep router settings this way before they have
    /// built their backends.
    #[cfg(feature = "stack")]
    pub(crate) fn retype<S2>(self) -> FailoverBuilder<S2, C, T> {
        FailoverBuilder {
            backends: Vec::new(),
            settings: self.settings,
            classifier: self.classifier,
            tried: self.tried,
        }
    }

    /// Checks the configuration and builds the router.
    ///
    /// Backends with a probe need a tokio runtime here, to spawn their health checks.
    pub fn build(self) -> Result<Failover<S, C, T>, ConfigError>
    where
        S: Clone,
        C: Clone,
    {
        let Settings {
            cfg,
            health_check,
            listeners,
            rng,
        } = self.settings;
        validate(&cfg)?;
        health_check.validate()?;
        if self.backends.is_empty() {
            return Err(ConfigError::new(
                "failover.backends",
                "needs at least one backend",
            ));
        }
        let probes = self.backends.iter().any(|b| b.probe.is_some());
        let runtime = if probes {
            Some(tokio::runtime::Handle::try_current().map_err(|_| {
                ConfigError::new(
                    "failover.health_check",
                    "active health checks need a tokio runtime: build the router inside one",
                )
            })?)
        } else {
            tokio::runtime::Handle::try_current().ok()
        };
        let pool = Arc::new(Pool::new(cfg, listeners, rng.unwrap_or_default()));
        let core = Arc::new(Core::new(pool, health_check, runtime));
        let mut seen = std::collections::HashSet::new();
        for b in &self.backends {
            check_backend(b)?;
            if !seen.insert(b.id.as_str()) {
                return Err(ConfigError::new(
                    "failover.backends.id",
                    format!("duplicate backend id `{}`", b.id),
                ));
            }
        }
        for b in self.backends {
            core.add(b)?;
        }
        Ok(Failover::new(core, self.classifier, self.tried))
    }
}

fn validate(cfg: &Config) -> Result<(), ConfigError> {
    if cfg.consecutive_failures == Some(0) {
        return Err(ConfigError::new(
            "failover.consecutive_failures",
            "must be at least 1 (use None to turn the rule off)",
        ));
    }
    for (field, value) in [
        ("failover.failure_rate", cfg.failure_rate),
        ("failover.success_rate_drop", cfg.success_rate_drop),
    ] {
        if let Some(v) = value {
            check_range(field, v, 0.0, 1.0)?;
            if v == 0.0 {
                return Err(ConfigError::new(
                    field,
                    "must be greater than zero (use None to turn the rule off)",
                ));
            }
        }
    }
    if let Some(f) = cfg.latency_factor {
        check_range("failover.latency_factor", f, 1.0, 1e6)?;
        if f == 1.0 {
            return Err(ConfigError::new(
                "failover.latency_factor",
                "must be greater than 1",
            ));
        }
    }
    if let Selection::PeakEwma { decay, .. } = cfg.selection
        && decay.is_zero()
    {
        return Err(ConfigError::new(
            "failover.selection.decay",
            "must be greater than zero",
        ));
    }
    if cfg.min_requests == 0 {
        return Err(ConfigError::new(
            "failover.min_requests",
            "must be at least 1",
        ));
    }
    if cfg.min_hosts < 2 {
        return Err(ConfigError::new(
            "failover.min_hosts",
            "must be at least 2: a backend is compared with others",
        ));
    }
    if cfg.interval.is_zero() {
        return Err(ConfigError::new(
            "failover.interval",
            "must be greater than zero",
        ));
    }
    if cfg.base_ejection.is_zero() {
        return Err(ConfigError::new(
            "failover.base_ejection_time",
            "must be greater than zero",
        ));
    }
    if cfg.max_ejection < cfg.base_ejection {
        return Err(ConfigError::new(
            "failover.max_ejection_time",
            format!(
                "must be at least the base ejection time ({:?} < {:?})",
                cfg.max_ejection, cfg.base_ejection
            ),
        ));
    }
    check_range(
        "failover.max_ejection_percent",
        cfg.max_ejection_percent,
        0.0,
        100.0,
    )?;
    check_range(
        "failover.overprovisioning_factor",
        cfg.overprovisioning,
        1.0,
        100.0,
    )?;
    check_range("failover.panic_threshold", cfg.panic_threshold, 0.0, 100.0)?;
    Ok(())
}
