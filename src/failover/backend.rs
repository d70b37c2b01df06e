//! A backend to route to (its service, name, tier, weight, health check) and how it is checked.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ConfigError;

pub(crate) type ProbeFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// One backend of a router: a tower `Service` with an id, a priority tier and a
/// weight, and optionally an active health probe.
///
/// Tier 0 is the highest priority (the primary); tier 1 takes traffic as tier 0's
/// health falls, and so on.
pub struct Backend<S> {
    pub(crate) id: String,
    pub(crate) service: S,
    pub(crate) tier: u32,
    pub(crate) weight: u32,
    pub(crate) probe: Option<ProbeFn>,
    #[cfg(feature = "circuit-breaker")]
    pub(crate) breaker: Option<crate::circuit_breaker::CircuitBreakerHandle>,
}

impl<S> fmt::Debug for Backend<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("id", &self.id)
            .field("tier", &self.tier)
            .field("weight", &self.weight)
            .field("probe", &self.probe.is_some())
            .finish_non_exhaustive()
    }
}

impl<S> Backend<S> {
    /// A backend in tier 0 with weight 1 and no probe.
    pub fn new(id: impl Into<String>, service: S) -> Self {
        Self {
            id: id.into(),
            service,
            tier: 0,
            weight: 1,
            probe: None,
            #[cfg(feature = "circuit-breaker")]
            breaker: None,
        }
    }

    /// The same backend over another service: `f` wraps (or replaces) its service;
    /// the id, tier, weight and probe stay.
    pub fn map<S2>(self, f: impl FnOnce(S) -> S2) -> Backend<S2> {
        Backend {
            id: self.id,
            service: f(self.service),
            tier: self.tier,
            weight: self.weight,
            probe: self.probe,
            #[cfg(feature = "circuit-breaker")]
            breaker: self.breaker,
        }
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its priority tier: 0 is served first.
    pub fn tier(mut self, tier: u32) -> Self {
        self.tier = tier;
        self
    }

    /// Its share of its tier's traffic relative to the others (at least 1).
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// The circuit breaker in front of this backend's service (the one inside
    /// `service`). While it is not closed, the router counts none of this backend's
    /// failures for outlier detection: the breaker is in charge of the backend then,
    /// and its probes' failures, counted again by the router, would eject a backend
    /// that has healed (a breaker probing once a second, a router ejecting for 2 s,
    /// 4 s, ... 10 s on each failed probe). Its successes still count. Panic routing
    /// never sends to a backend whose breaker is open. The one-call
    /// [`Stack`](crate::stack::Stack) sets this for every backend.
    #[cfg(feature = "circuit-breaker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "circuit-breaker")))]
    pub fn breaker(mut self, breaker: crate::circuit_breaker::CircuitBreakerHandle) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// An active health check: `probe` is called every
    /// [`HealthCheck::interval`] by a background task and answers whether the backend
    /// is healthy. See [`HealthCheck`] for the thresholds.
    pub fn probe<F, Fut>(mut self, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.probe = Some(Arc::new(move || Box::pin(probe())));
        self
    }
}

/// Settings of the active health checks run for backends that have a
/// [probe](Backend::probe).
///
/// Each probed backend gets a background task (`tokio::spawn`) that calls its probe
/// every `interval`, counting a probe that takes longer than `timeout` as failed.
/// After `unhealthy_threshold` failures in a row the backend is taken out of rotation;
/// after `healthy_threshold` passes in a row it comes back. A backend starts healthy.
/// The task ends at its next tick once every router clone and handle is dropped, or
/// once the backend is removed. Backends out of rotation because of their health
/// checks do not count against the maximum ejected percentage, and stay out even in
/// panic routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) healthy_threshold: u32,
    pub(crate) unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    /// Every 5 s, 1 s timeout, 2 passes to come back, 3 failures to go out.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

impl HealthCheck {
    /// The default settings with another interval.
    pub fn every(interval: Duration) -> Self {
        Self {
            interval,
            ..Self::default()
        }
    }

    /// The time between two probes of a backend.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How long a probe may take before it counts as failed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Passes in a row that bring an unhealthy backend back (at least 1).
    pub fn healthy_threshold(mut self, n: u32) -> Self {
        self.healthy_threshold = n;
        self
    }

    /// Failures in a row that take a healthy backend out (at least 1).
    pub fn unhealthy_threshold(mut self, n: u32) -> Self {
        self.unhealthy_threshold = n;
        self
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.interval.is_zero() {
            return Err(ConfigError::new(
                "failover.health_check.interval",
                "must be greater than zero",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new(
                "failover.health_check.timeout",
                "must be greater than zero",
            ));
        }
        if self.healthy_threshold == 0 {
            return Err(ConfigError::new(
                "failover.health_check.healthy_threshold",
                "must be at least 1",
            ));
        }
        if self.unhealthy_threshold == 0 {
            return Err(ConfigError::new(
                "failover.health_check.unhealthy_threshold",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

pub(crate) fn check_backend<S>(b: &Backend<S>) -> Result<(), ConfigError> {
    if b.weight == 0 {
        return Err(ConfigError::new(
            "failover.backends.weight",
            format!(
                "backend `{}` has weight 0; weights must be at least 1",
                b.id
            ),
        ));
    }
    if b.id.is_empty() {
        return Err(ConfigError::new(
            "failover.backends.id",
            "backend ids must not be empty",
        ));
    }
    Ok(())
}
