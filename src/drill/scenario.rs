//! Scenarios: backends with their schedules, a load and a duration.
//!
//! The type and its builder live here; the built-in scenarios in `builtin.rs`, the
//! TOML file format in `scenario_file.rs` (reading and writing), `file_model.rs`
//! (what serde reads) and `scenario_error.rs` (what is wrong, where).

use std::time::Duration;

use super::backend::{BackendSpec, Phase};
use super::load::Load;
use crate::config::ConfigError;

/// A drill scenario: simulated backends with their schedules, a load and a duration.
///
/// Build one in code, take a [built-in](Scenario::builtin) one, or load one from a
/// TOML file ([`Scenario::from_toml`]):
///
/// ```toml
/// name = "primary-outage"
/// description = "The primary goes down for a minute."
/// duration = "3m"
///
/// [load]
/// rate = 1000              # requests per second
/// kind = "poisson"         # or "constant" (the default)
/// steps = [{ at = "2m", rate = 2000 }]
///
/// [[backend]]
/// name = "primary"
/// tier = 0
/// zone = "a"
/// latency = { median = "20ms", p99 = "100ms" }   # or fixed, min/max, mean
/// error_rate = 0.001
/// capacity = 200
/// queue = 1000
/// phases = [
///   { at = "60s", phase = "down" },
///   { at = "120s", phase = "healthy" },
/// ]
///
/// [[backend]]
/// name = "secondary"
/// tier = 1
/// phases = [{ at = "30s", phase = "brownout", error_rate = 0.2 }]
/// ```
///
/// Phases are `healthy`, `down`, `hang` (calls held until the phase ends), `brownout`
/// (with `error_rate`), `slow` (with
/// `factor`), `tail` (with `share` and `factor`) and `flapping` (with `down` and `up`
/// spells). Durations are strings with a
/// unit (`"250ms"`, `"60s"`, `"2m"`, `"1h"`; also `"us"` and `"ns"`) or numbers of seconds.
/// [`Scenario::to_toml`] writes any scenario in this format.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) duration: Duration,
    pub(crate) drain: Duration,
    pub(crate) load: Load,
    pub(crate) backends: Vec<BackendSpec>,
}

impl Scenario {
    /// An empty scenario: one minute of 100 requests per second, no backends yet, 30 s
    /// for the last requests to finish.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            duration: Duration::from_secs(60),
            drain: Duration::from_secs(30),
            load: Load::constant(100.0),
            backends: Vec::new(),
        }
    }

    /// A one-line description, shown in reports and by `--list`.
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// How long requests are sent.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// How long, after the last request is sent, the drill waits for the requests
    /// still in flight; those still unfinished count as failures.
    pub fn drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// The load.
    pub fn load(mut self, load: Load) -> Self {
        self.load = load;
        self
    }

    /// Adds a backend (its index is its position).
    pub fn backend(mut self, backend: BackendSpec) -> Self {
        self.backends.push(backend);
        self
    }

    /// The same scenario with every time (duration, phases, load steps) and the load
    /// multiplied: `scaled(2.0, 0.5)` runs twice as long at half the rate.
    pub fn scaled(mut self, time: f64, rate: f64) -> Self {
        let t = |d: Duration| d.mul_f64(time);
        self.duration = t(self.duration);
        self.load.rate *= rate;
        for step in &mut self.load.steps {
            step.0 = t(step.0);
            step.1 *= rate;
        }
        for b in &mut self.backends {
            for (at, phase) in &mut b.phases {
                *at = t(*at);
                if let Phase::Flapping { down, up } = phase {
                    *down = t(*down);
                    *up = t(*up);
                }
            }
        }
        self
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// How long requests are sent.
    pub fn run_time(&self) -> Duration {
        self.duration
    }

    /// Its backends.
    pub fn backends(&self) -> &[BackendSpec] {
        &self.backends
    }

    /// Its load.
    pub fn load_profile(&self) -> &Load {
        &self.load
    }

    /// Checks the scenario; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.duration.is_zero() || self.duration > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::new("duration", "must lie between 0 and 24 h"));
        }
        if self.backends.is_empty() {
            return Err(ConfigError::new(
                "backend",
                "a scenario needs at least one backend",
            ));
        }
        self.load.validate()?;
        for b in &self.backends {
            b.validate()?;
        }
        Ok(())
    }
}
