//! Scenarios: backends with their schedules, a load and a duration.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::backend::{BackendSpec, Phase};
use crate::chaos::Latency;
use crate::config::{ConfigError, check_range};
use crate::rng::Rng;

/// The load a drill sends: open loop, so requests keep arriving at the scheduled rate
/// however slowly the stack answers (as real users do).
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    poisson: bool,
    pub(crate) rate: f64,
    pub(crate) steps: Vec<(Duration, f64)>,
}

impl Load {
    /// Evenly spaced requests, `rate` per second.
    pub fn constant(rate: f64) -> Self {
        Self {
            poisson: false,
            rate,
            steps: Vec::new(),
        }
    }

    /// Poisson arrivals (exponential gaps) averaging `rate` per second: bursts and lulls
    /// like independent users.
    pub fn poisson(rate: f64) -> Self {
        Self {
            poisson: true,
            ..Self::constant(rate)
        }
    }

    /// From `at` on, the rate becomes `rate` (steps must be in time order).
    pub fn step(mut self, at: Duration, rate: f64) -> Self {
        self.steps.push((at, rate));
        self
    }

    /// The rate in force `t` after the start.
    pub fn rate_at(&self, t: Duration) -> f64 {
        let mut rate = self.rate;
        for &(at, r) in &self.steps {
            if at <= t {
                rate = r;
            } else {
                break;
            }
        }
        rate
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_range("load.rate", self.rate, 0.0, 1e7)?;
        for pair in self.steps.windows(2) {
            if pair[1].0 < pair[0].0 {
                return Err(ConfigError::new(
                    "load.steps.at",
                    "steps must be in time order",
                ));
            }
        }
        for &(_, r) in &self.steps {
            check_range("load.steps.rate", r, 0.0, 1e7)?;
        }
        Ok(())
    }

    /// The arrival times of every request in `0..duration`, in order.
    pub(crate) fn arrivals(&self, duration: Duration, rng: Rng) -> Arrivals<'_> {
        Arrivals {
            load: self,
            t: 0.0,
            segment: 0.0,
            k: 0,
            end: duration.as_secs_f64(),
            rng,
        }
    }
}

/// Iterator over arrival times, in seconds since the start.
pub(crate) struct Arrivals<'a> {
    load: &'a Load,
    /// The next arrival.
    t: f64,
    /// Where the current rate started, and how many arrivals since: constant
    /// arrivals are `segment + k / rate`, so rounding errors do not add up.
    segment: f64,
    k: u64,
    end: f64,
    rng: Rng,
}

impl Iterator for Arrivals<'_> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        loop {
            if self.t >= self.end {
                return None;
            }
            let rate = self.load.rate_at(Duration::from_secs_f64(self.t));
            let next_step = self
                .load
                .steps
                .iter()
                .map(|s| s.0.as_secs_f64())
                .find(|&at| at > self.t);
            if rate <= 0.0 {
                // Jump to the next step, if any.
                self.t = next_step.unwrap_or(self.end);
                self.segment = self.t;
                self.k = 0;
                continue;
            }
            let arrival = self.t;
            self.k += 1;
            let next = if self.load.poisson {
                self.t - (1.0 - self.rng.next_f64()).ln() / rate
            } else {
                self.segment + self.k as f64 / rate
            };
            match next_step {
                // The rate changes before the next arrival: start afresh at the step.
                Some(at) if next >= at => {
                    self.t = at;
                    self.segment = at;
                    self.k = 0;
                }
                _ => self.t = next,
            }
            return Some(Duration::from_secs_f64(arrival));
        }
    }
}

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

    /// The names of the built-in scenarios, the default first.
    pub fn builtin_names() -> &'static [&'static str] {
        &BUILTIN
    }

    /// Every built-in scenario, the default first.
    pub fn builtins() -> Vec<Scenario> {
        BUILTIN.iter().filter_map(|n| Self::builtin(n)).collect()
    }

    /// The built-in scenario called `name`, if there is one; see
    /// [`Scenario::builtin_names`]. Each runs three minutes at 1,000 requests per
    /// second unless said otherwise, against backends with a 20 ms median latency:
    ///
    /// * `zone-outage` (the default) — two primary backends in zone `a` (tier 0) go
    ///   down together from 0:60 to 2:00; two backends in zone `b` (tier 1, slower)
    ///   can take the load.
    /// * `backend-outage` — one of three equal backends is down from 0:60 to 2:00.
    /// * `brownout` — one of three backends fails 30 % of its calls from 0:60 to 2:00.
    /// * `latency-spike` — one of three backends is 20 times slower from 0:60 to 2:00.
    /// * `flapping` — one of three backends is down 5 s, up 5 s, from 0:30 to 2:30.
    /// * `overload` — the load steps from 1,000 to 2,500 requests per second from
    ///   0:60 to 2:00, beyond what the three backends can serve at once.
    /// * `total-outage` — every backend is down from 0:60 to 2:00.
    /// * `tail-latency` — one minute, three steady backends (20 ms median, 50 ms
    ///   p99); one answers 2 % of its calls 50 times slower, for the whole run: nothing fails, the tail is the fault (the
    ///   hedging scenario; compare p99.9 and extra load).
    pub fn builtin(name: &str) -> Option<Scenario> {
        let s = Duration::from_secs;
        let lat = Latency::log_normal(Duration::from_millis(20), Duration::from_millis(100))
            .expect("valid");
        let trio = |name: &str, describe: &str, first: BackendSpec| {
            Scenario::new(name)
                .describe(describe)
                .duration(s(180))
                .load(Load::constant(1000.0))
                .backend(first)
                .backend(BackendSpec::new("b").latency(lat).capacity(200))
                .backend(BackendSpec::new("c").latency(lat).capacity(200))
        };
        let a = BackendSpec::new("a").latency(lat).capacity(200);
        let scenario = match name {
            "zone-outage" => Scenario::new("zone-outage")
                .describe("primary zone (2 backends, tier 0) down from 1:00 to 2:00; zone b (tier 1) takes over")
                .duration(s(180))
                .load(Load::constant(1000.0))
                .backend(
                    BackendSpec::new("primary-a1").zone("a").latency(lat).capacity(200)
                        .phase(s(60), Phase::Down).phase(s(120), Phase::Healthy),
                )
                .backend(
                    BackendSpec::new("primary-a2").zone("a").latency(lat).capacity(200)
                        .phase(s(60), Phase::Down).phase(s(120), Phase::Healthy),
                )
                .backend(
                    BackendSpec::new("secondary-b1").tier(1).zone("b").capacity(200).latency(
                        Latency::log_normal(Duration::from_millis(40), Duration::from_millis(150)).expect("valid"),
                    ),
                )
                .backend(
                    BackendSpec::new("secondary-b2").tier(1).zone("b").capacity(200).latency(
                        Latency::log_normal(Duration::from_millis(40), Duration::from_millis(150)).expect("valid"),
                    ),
                ),
            "backend-outage" => trio(
                name,
                "one of three backends down from 1:00 to 2:00",
                a.phase(s(60), Phase::Down).phase(s(120), Phase::Healthy),
            ),
            "brownout" => trio(
                name,
                "one of three backends fails 30% of calls from 1:00 to 2:00",
                a.phase(s(60), Phase::Brownout { error_rate: 0.3 }).phase(s(120), Phase::Healthy),
            ),
            "latency-spike" => trio(
                name,
                "one of three backends 20x slower from 1:00 to 2:00",
                a.phase(s(60), Phase::Slow { factor: 20.0 }).phase(s(120), Phase::Healthy),
            ),
            "flapping" => trio(
                name,
                "one of three backends flaps (5 s down, 5 s up) from 0:30 to 2:30",
                a.phase(s(30), Phase::Flapping { down: s(5), up: s(5) }).phase(s(150), Phase::Healthy),
            ),
            "overload" => Scenario::new(name)
                .describe("load steps from 1,000 to 2,500 req/s from 1:00 to 2:00, beyond capacity")
                .duration(s(180))
                .load(Load::constant(1000.0).step(s(60), 2500.0).step(s(120), 1000.0))
                .backend(BackendSpec::new("a").latency(lat).capacity(15).queue(100))
                .backend(BackendSpec::new("b").latency(lat).capacity(15).queue(100))
                .backend(BackendSpec::new("c").latency(lat).capacity(15).queue(100)),
            "total-outage" => Scenario::new(name)
                .describe("every backend down from 1:00 to 2:00")
                .duration(s(180))
                .load(Load::constant(1000.0))
                .backend(a.phase(s(60), Phase::Down).phase(s(120), Phase::Healthy))
                .backend(BackendSpec::new("b").latency(lat).capacity(200).phase(s(60), Phase::Down).phase(s(120), Phase::Healthy))
                .backend(BackendSpec::new("c").latency(lat).capacity(200).phase(s(60), Phase::Down).phase(s(120), Phase::Healthy)),
            "tail-latency" | "tail-everywhere" => {
                // Steady backends (p99 2.5x the median), so that the tail is the fault.
                let steady = Latency::log_normal(Duration::from_millis(20), Duration::from_millis(50))
                    .expect("valid");
                let tail = Phase::Tail { share: 0.02, factor: 50.0 };
                let everywhere = name == "tail-everywhere";
                let b = |n: &str, slow: bool| {
                    let spec = BackendSpec::new(n).latency(steady).capacity(200);
                    if slow { spec.phase(s(0), tail) } else { spec }
                };
                Scenario::new(name)
                    .describe(if everywhere {
                        "every backend answers 2% of calls 50x slower, all along"
                    } else {
                        "one of three backends answers 2% of calls 50x slower, all along"
                    })
                    .duration(s(60))
                    .load(Load::constant(1000.0))
                    .backend(b("a", true))
                    .backend(b("b", everywhere))
                    .backend(b("c", everywhere))
            }
            _ => return None,
        };
        Some(scenario)
    }

    /// The scenario as a TOML file that [`Scenario::from_toml`] reads back to an equal
    /// scenario: a starting point for your own (`cargo run --example drill --features drill -- --print
    /// NAME`).
    pub fn to_toml(&self) -> String {
        use crate::chaos::Parts;
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "name = {}", quote(&self.name));
        if !self.description.is_empty() {
            let _ = writeln!(out, "description = {}", quote(&self.description));
        }
        let _ = writeln!(out, "duration = {}", format_duration(self.duration));
        let _ = writeln!(out, "drain = {}", format_duration(self.drain));
        let _ = writeln!(out, "\n[load]");
        let _ = writeln!(out, "rate = {:?}", self.load.rate);
        let kind = if self.load.poisson {
            "poisson"
        } else {
            "constant"
        };
        let _ = writeln!(out, "kind = \"{kind}\"");
        if !self.load.steps.is_empty() {
            let steps: Vec<String> = self
                .load
                .steps
                .iter()
                .map(|(at, rate)| format!("{{ at = {}, rate = {rate:?} }}", format_duration(*at)))
                .collect();
            let _ = writeln!(out, "steps = [{}]", steps.join(", "));
        }
        for b in &self.backends {
            let _ = writeln!(out, "\n[[backend]]");
            let _ = writeln!(out, "name = {}", quote(&b.name));
            let _ = writeln!(out, "tier = {}", b.tier);
            let _ = writeln!(out, "zone = {}", quote(&b.zone));
            let latency = match b.latency.parts() {
                Parts::Fixed(d) => format!("{{ fixed = {} }}", format_duration(d)),
                Parts::Uniform(lo, hi) => {
                    format!(
                        "{{ min = {}, max = {} }}",
                        format_duration(lo),
                        format_duration(hi)
                    )
                }
                Parts::Exponential(m) => format!("{{ mean = {} }}", format_duration(m)),
                Parts::LogNormal(m, p) => {
                    format!(
                        "{{ median = {}, p99 = {} }}",
                        format_duration(m),
                        format_duration(p)
                    )
                }
            };
            let _ = writeln!(out, "latency = {latency}");
            let _ = writeln!(out, "error_rate = {:?}", b.error_rate);
            let _ = writeln!(out, "capacity = {}", b.capacity);
            let _ = writeln!(out, "queue = {}", b.queue);
            let _ = writeln!(out, "fail_latency = {}", format_duration(b.fail_latency));
            if !b.phases.is_empty() {
                let _ = writeln!(out, "phases = [");
                for (at, phase) in &b.phases {
                    let at = format_duration(*at);
                    let line = match *phase {
                        Phase::Healthy => format!("{{ at = {at}, phase = \"healthy\" }}"),
                        Phase::Down => format!("{{ at = {at}, phase = \"down\" }}"),
                        Phase::Hang => format!("{{ at = {at}, phase = \"hang\" }}"),
                        Phase::Brownout { error_rate } => {
                            format!(
                                "{{ at = {at}, phase = \"brownout\", error_rate = {error_rate:?} }}"
                            )
                        }
                        Phase::Slow { factor } => {
                            format!("{{ at = {at}, phase = \"slow\", factor = {factor:?} }}")
                        }
                        Phase::Tail { share, factor } => format!(
                            "{{ at = {at}, phase = \"tail\", share = {share:?}, factor = {factor:?} }}"
                        ),
                        Phase::Flapping { down, up } => format!(
                            "{{ at = {at}, phase = \"flapping\", down = {}, up = {} }}",
                            format_duration(down),
                            format_duration(up)
                        ),
                    };
                    let _ = writeln!(out, "  {line},");
                }
                let _ = writeln!(out, "]");
            }
        }
        out
    }

    /// Reads a scenario from a TOML file; see the [type docs](Scenario) for the format.
    pub fn load_file(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: Some(path.display().to_string()),
            line: None,
            column: None,
            field: String::new(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text).map_err(|mut e| {
            e.file = Some(path.display().to_string());
            e
        })
    }

    /// Parses a scenario from TOML text; see the [type docs](Scenario) for the format.
    /// The error names the line, the column and the field that is wrong.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let parsed = toml::Deserializer::parse(text)
            .map_err(|e| ScenarioError::from_toml(text, &e, String::new()))?;
        let file: file::ScenarioFile = serde_path_to_error::deserialize(parsed).map_err(|e| {
            let field = field_name(e.path(), e.inner().message());
            ScenarioError::from_toml(text, e.inner(), field)
        })?;
        file.into_scenario(text)
    }
}

/// The dotted field name of a serde path (`backend[1].phases[0].at` gives
/// `backend.phases.at`, the form of [`ConfigError::field`]). An error about a
/// missing or unknown key is raised by the table that lacks or holds it, so its path
/// ends at the table; serde's message (`` missing field `name` ``) names the key,
/// which is added.
fn field_name(path: &serde_path_to_error::Path, message: &str) -> String {
    use serde_path_to_error::Segment;
    let mut keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            // `toml::Spanned` wraps a value in a private one-key table: not a field.
            Segment::Map { key } if key.starts_with("$__") => None,
            Segment::Map { key } | Segment::Enum { variant: key } => Some(key.as_str()),
            Segment::Seq { .. } | Segment::Unknown => None,
        })
        .collect();
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|p| message.trim().strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    if let Some(key) = named
        && keys.last() != Some(&key)
    {
        keys.push(key);
    }
    keys.join(".")
}

impl ScenarioError {
    /// An error of the toml parser or of serde: the line and column come from the
    /// parser's span.
    fn from_toml(text: &str, e: &toml::de::Error, field: String) -> Self {
        let (line, column) = match e.span() {
            Some(span) => locate(text, span.start),
            None => (None, None),
        };
        Self {
            file: None,
            line,
            column,
            field,
            message: e.message().trim().to_string(),
        }
    }
}

const BUILTIN: [&str; 9] = [
    "zone-outage",
    "backend-outage",
    "brownout",
    "latency-spike",
    "flapping",
    "overload",
    "total-outage",
    "tail-latency",
    "tail-everywhere",
];

/// A scenario file could not be read or is wrong. The message names the line, the
/// column and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    file: Option<String>,
    line: Option<usize>,
    column: Option<usize>,
    field: String,
    message: String,
}

impl ScenarioError {
    /// The 1-based line of the mistake, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The 1-based column of the mistake, when known.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// The dotted name of the field, such as `backend.error_rate` (empty when unknown):
    /// serde's path to the value without array indices, ending with the key of a
    /// missing or unknown field.
    pub fn field(&self) -> &str {
        &self.field
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bad scenario")?;
        if let Some(file) = &self.file {
            write!(f, " {file}")?;
        }
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
            if let Some(col) = self.column {
                write!(f, ", column {col}")?;
            }
        }
        if !self.field.is_empty() {
            write!(f, ", field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

/// The 1-based line and column of a byte offset in the source.
fn locate(text: &str, offset: usize) -> (Option<usize>, Option<usize>) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (Some(line), Some(column))
}

/// A duration in a scenario file: `"250ms"`, `"60s"`, `"2m"`, `"1h"` (also `"us"`,
/// `"ns"`), or seconds. Whole numbers are exact.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let (num, unit) = (num.trim(), unit.trim());
    let nanos_per: u64 = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "" | "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}` (use ms, s, m or h)"
            ));
        }
    };
    let bad = || format!("`{s}` is not a duration (write \"250ms\", \"60s\", \"2m\" or \"1h\")");
    if let Ok(whole) = num.parse::<u64>() {
        let nanos = whole
            .checked_mul(nanos_per)
            .filter(|&n| n <= 10_000_000 * 1_000_000_000)
            .ok_or_else(|| format!("`{s}` is out of range"))?;
        return Ok(Duration::from_nanos(nanos));
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let secs = value * nanos_per as f64 / 1e9;
    if !secs.is_finite() || !(0.0..=1e7).contains(&secs) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration written back exactly, in the largest unit that divides it.
fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns.is_multiple_of(1_000_000_000) {
        format!("\"{}s\"", ns / 1_000_000_000)
    } else if ns.is_multiple_of(1_000_000) {
        format!("\"{}ms\"", ns / 1_000_000)
    } else if ns.is_multiple_of(1_000) {
        format!("\"{}us\"", ns / 1_000)
    } else {
        format!("\"{ns}ns\"")
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

mod file {
    use std::ops::Range;

    use toml::Spanned;

    use super::*;

    #[derive(Debug, Clone, Copy)]
    pub(super) struct Dur(pub(super) Duration);

    impl<'de> Deserialize<'de> for Dur {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Raw {
                Text(String),
                Secs(f64),
            }
            let secs = match Raw::deserialize(d)? {
                Raw::Text(s) => {
                    return parse_duration(&s)
                        .map(Dur)
                        .map_err(serde::de::Error::custom);
                }
                Raw::Secs(v) => v,
            };
            if !secs.is_finite() || !(0.0..=1e7).contains(&secs) {
                return Err(serde::de::Error::custom(format!(
                    "{secs} is not a valid number of seconds"
                )));
            }
            Ok(Dur(Duration::from_secs_f64(secs)))
        }
    }

    /// A share in `0.0..=1.0`.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Share(pub(super) f64);

    impl<'de> Deserialize<'de> for Share {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let v = f64::deserialize(d)?;
            if !(0.0..=1.0).contains(&v) {
                return Err(serde::de::Error::custom(format!(
                    "{v} is not a share between 0.0 and 1.0"
                )));
            }
            Ok(Share(v))
        }
    }

    /// A rate in requests per second, not negative.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Rate(pub(super) f64);

    impl<'de> Deserialize<'de> for Rate {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let v = f64::deserialize(d)?;
            if !v.is_finite() || !(0.0..=1e7).contains(&v) {
                return Err(serde::de::Error::custom(format!(
                    "{v} is not a rate between 0 and 10,000,000 per second"
                )));
            }
            Ok(Rate(v))
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct ScenarioFile {
        name: String,
        #[serde(default)]
        description: String,
        duration: Spanned<Dur>,
        drain: Option<Dur>,
        load: Spanned<LoadFile>,
        backend: Vec<Spanned<BackendFile>>,
    }

    #[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
    #[serde(rename_all = "snake_case")]
    enum LoadKind {
        Constant,
        Poisson,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LoadFile {
        rate: Rate,
        kind: Option<LoadKind>,
        #[serde(default)]
        steps: Vec<StepFile>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StepFile {
        at: Dur,
        rate: Rate,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct BackendFile {
        name: String,
        tier: Option<u32>,
        zone: Option<String>,
        latency: Option<Spanned<LatencyFile>>,
        error_rate: Option<Share>,
        capacity: Option<usize>,
        queue: Option<usize>,
        fail_latency: Option<Dur>,
        #[serde(default)]
        phases: Vec<Spanned<PhaseFile>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LatencyFile {
        fixed: Option<Dur>,
        min: Option<Dur>,
        max: Option<Dur>,
        mean: Option<Dur>,
        median: Option<Dur>,
        p99: Option<Dur>,
    }

    #[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
    #[serde(rename_all = "snake_case")]
    enum PhaseKind {
        Healthy,
        Down,
        Hang,
        Brownout,
        Slow,
        Tail,
        Flapping,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PhaseFile {
        at: Dur,
        phase: PhaseKind,
        error_rate: Option<Share>,
        share: Option<Share>,
        factor: Option<f64>,
        down: Option<Dur>,
        up: Option<Dur>,
    }

    impl ScenarioFile {
        pub(super) fn into_scenario(self, text: &str) -> Result<Scenario, ScenarioError> {
            // Errors found after parsing point at the value (or table) they are about,
            // by the span the parser kept for it.
            let at = |span: Option<Range<usize>>, field: &str, message: String| {
                let (line, column) = match span {
                    Some(span) => locate(text, span.start),
                    None => (None, None),
                };
                ScenarioError {
                    file: None,
                    line,
                    column,
                    field: field.to_string(),
                    message,
                }
            };
            let from_config = |span: Option<Range<usize>>, e: ConfigError| {
                at(span, e.field(), e.reason().to_string())
            };
            let (load_span, load_file) = (self.load.span(), self.load.into_inner());
            let mut load = match load_file.kind.unwrap_or(LoadKind::Constant) {
                LoadKind::Constant => Load::constant(load_file.rate.0),
                LoadKind::Poisson => Load::poisson(load_file.rate.0),
            };
            for step in &load_file.steps {
                load = load.step(step.at.0, step.rate.0);
            }
            let duration_span = self.duration.span();
            let mut scenario = Scenario::new(self.name)
                .describe(self.description)
                .duration(self.duration.into_inner().0)
                .load(load);
            if let Some(drain) = self.drain {
                scenario = scenario.drain(drain.0);
            }
            for b in self.backend {
                let (span, b) = (b.span(), b.into_inner());
                let mut spec = BackendSpec::new(b.name);
                if let Some(t) = b.tier {
                    spec = spec.tier(t);
                }
                if let Some(z) = b.zone {
                    spec = spec.zone(z);
                }
                if let Some(l) = b.latency {
                    let l_span = l.span();
                    let latency = l
                        .into_inner()
                        .into_latency()
                        .map_err(|e| at(Some(l_span), "backend.latency", e))?;
                    spec = spec.latency(latency);
                }
                if let Some(r) = b.error_rate {
                    spec = spec.error_rate(r.0);
                }
                if let Some(c) = b.capacity {
                    spec = spec.capacity(c);
                }
                if let Some(q) = b.queue {
                    spec = spec.queue(q);
                }
                if let Some(f) = b.fail_latency {
                    spec = spec.fail_latency(f.0);
                }
                for p in b.phases {
                    let phase = p.get_ref().to_phase().map_err(|(key, e)| {
                        at(Some(p.span()), &format!("backend.phases.{key}"), e)
                    })?;
                    spec = spec.phase(p.get_ref().at.0, phase);
                }
                spec.validate()
                    .map_err(|e| from_config(Some(span.clone()), e))?;
                scenario = scenario.backend(spec);
            }
            scenario.validate().map_err(|e: ConfigError| {
                let span = match e.field() {
                    "duration" => Some(duration_span.clone()),
                    f if f.starts_with("load") => Some(load_span.clone()),
                    _ => None,
                };
                from_config(span, e)
            })?;
            Ok(scenario)
        }
    }

    impl LatencyFile {
        fn into_latency(self) -> Result<Latency, String> {
            let r = match (
                self.fixed,
                self.min,
                self.max,
                self.mean,
                self.median,
                self.p99,
            ) {
                (Some(f), None, None, None, None, None) => Ok(Latency::fixed(f.0)),
                (None, Some(lo), Some(hi), None, None, None) => Latency::uniform(lo.0, hi.0),
                (None, None, None, Some(m), None, None) => Ok(Latency::exponential(m.0)),
                (None, None, None, None, Some(m), Some(p)) => Latency::log_normal(m.0, p.0),
                _ => {
                    return Err(
                        "give exactly one of: `fixed`; `min` and `max`; `mean`; `median` and `p99`"
                            .into(),
                    );
                }
            };
            r.map_err(|e| e.to_string())
        }
    }

    impl PhaseFile {
        fn to_phase(&self) -> Result<Phase, (&'static str, String)> {
            let need =
                |key: &'static str, phase: &str| (key, format!("a `{phase}` phase needs `{key}`"));
            Ok(match self.phase {
                PhaseKind::Healthy => Phase::Healthy,
                PhaseKind::Down => Phase::Down,
                PhaseKind::Hang => Phase::Hang,
                PhaseKind::Brownout => Phase::Brownout {
                    error_rate: self
                        .error_rate
                        .ok_or_else(|| need("error_rate", "brownout"))?
                        .0,
                },
                PhaseKind::Slow => {
                    let factor = self.factor.ok_or_else(|| need("factor", "slow"))?;
                    if !factor.is_finite() || !(0.0..=1e6).contains(&factor) {
                        return Err((
                            "factor",
                            format!("{factor} is not a factor between 0 and 1,000,000"),
                        ));
                    }
                    Phase::Slow { factor }
                }
                PhaseKind::Tail => {
                    let factor = self.factor.ok_or_else(|| need("factor", "tail"))?;
                    if !factor.is_finite() || !(0.0..=1e6).contains(&factor) {
                        return Err((
                            "factor",
                            format!("{factor} is not a factor between 0 and 1,000,000"),
                        ));
                    }
                    Phase::Tail {
                        share: self.share.ok_or_else(|| need("share", "tail"))?.0,
                        factor,
                    }
                }
                PhaseKind::Flapping => Phase::Flapping {
                    down: self.down.ok_or_else(|| need("down", "flapping"))?.0,
                    up: self.up.ok_or_else(|| need("up", "flapping"))?.0,
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn constant_and_stepped_arrivals() {
        let load = Load::constant(10.0)
            .step(Duration::from_secs(1), 0.0)
            .step(Duration::from_secs(2), 20.0);
        let n = load
            .arrivals(Duration::from_secs(3), Rng::seeded(1))
            .count();
        assert_eq!(n, 30);
        let p = Load::poisson(1000.0)
            .arrivals(Duration::from_secs(10), Rng::seeded(2))
            .count();
        assert!((9_700..10_300).contains(&p), "{p}");
    }

    #[test]
    fn builtins_are_valid() {
        for s in Scenario::builtins() {
            s.validate().unwrap();
        }
        assert_eq!(Scenario::builtins().len(), Scenario::builtin_names().len());
    }
}
