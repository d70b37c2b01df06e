//! Changing a running breaker's thresholds and durations, keeping its state.

use super::core::Tunables;
use super::handle::CircuitBreakerHandle;
use super::layer::CircuitBreakerBuilder;
use crate::config::ConfigError;

impl CircuitBreakerHandle {
    /// Takes the thresholds and durations of `settings` while the breaker runs,
    /// keeping its state (an open breaker stays open until its current open period
    /// ends), its windows and its trip history; the next decision uses the new
    /// values. What changes: `consecutive_failures` (when the breaker counts them),
    /// `failure_rate`, `minimum_calls`, the slow-call threshold and rate (when it
    /// times calls), the open duration or backoff, `reset_backoff_after`,
    /// `max_server_delay` and `half_open_probes`.
    ///
    /// `settings` is checked whole first, as `build` would; nothing changes if it is
    /// invalid or if it changes what the breaker was built around (which trip
    /// conditions are on, the count window's size, the time window): the error names
    /// the field. Its listeners, name and classifier are ignored.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder().build().unwrap();
    /// let handle = layer.handle();
    /// handle.force_open();
    /// let stricter = CircuitBreakerLayer::builder()
    ///     .failure_rate(0.2)
    ///     .open_duration(Duration::from_secs(5));
    /// handle.reconfigure(&stricter).unwrap();
    /// assert_eq!(handle.mode(), tower_fortify::observe::Mode::ForcedOpen); // state kept
    ///
    /// let err = handle
    ///     .reconfigure(&CircuitBreakerLayer::builder().count_window(10).minimum_calls(5))
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "breaker.count_window");
    /// ```
    pub fn reconfigure<C>(&self, settings: &CircuitBreakerBuilder<C>) -> Result<(), ConfigError> {
        let (tun, probes, slow) = self.prepare(settings)?;
        self.core.retune(tun, probes, slow);
        Ok(())
    }

    /// Checks `settings` as [`reconfigure`](Self::reconfigure) would, changing
    /// nothing.
    pub fn check_reconfigure<C>(
        &self,
        settings: &CircuitBreakerBuilder<C>,
    ) -> Result<(), ConfigError> {
        self.prepare(settings).map(|_| ())
    }

    fn prepare<C>(
        &self,
        settings: &CircuitBreakerBuilder<C>,
    ) -> Result<(Tunables, u32, Option<std::time::Duration>), ConfigError> {
        let new = settings.config()?;
        let old = &self.core.cfg;
        let fixed =
            "cannot change while the breaker runs (it was built around it): rebuild the stack";
        if new.consecutive.is_some() != old.consecutive.is_some() {
            return Err(ConfigError::new("breaker.consecutive_failures", fixed));
        }
        if new.count_window != old.count_window {
            return Err(ConfigError::new("breaker.count_window", fixed));
        }
        if new.time_window.map(|t| t.0) != old.time_window.map(|t| t.0) {
            return Err(ConfigError::new("breaker.time_window", fixed));
        }
        if new.time_window.map(|t| t.1) != old.time_window.map(|t| t.1) {
            return Err(ConfigError::new("breaker.time_window_buckets", fixed));
        }
        if new.slow.is_some() != old.slow.is_some() {
            return Err(ConfigError::new("breaker.slow_call_threshold", fixed));
        }
        let tun = Tunables {
            consecutive: new.consecutive.unwrap_or(0),
            failure_rate: new.failure_rate,
            slow_rate: new.slow.map_or(f64::INFINITY, |(_, r)| r),
            min_calls: new.min_calls,
            open: new.open,
            reset_after: new.reset_after,
            max_hint: new.max_hint,
        };
        Ok((tun, new.probes, new.slow.map(|(t, _)| t)))
    }
}
