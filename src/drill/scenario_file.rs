//! Scenario files: a scenario read from TOML and written back to it.

use std::path::Path;
use std::time::Duration;

use super::backend::Phase;
use super::file_model::ScenarioFile;
use super::scenario::Scenario;
use super::scenario_error::{ScenarioError, field_name};

impl Scenario {
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
        let file: ScenarioFile = serde_path_to_error::deserialize(parsed).map_err(|e| {
            let field = field_name(e.path(), e.inner().message());
            ScenarioError::from_toml(text, e.inner(), field)
        })?;
        file.into_scenario(text)
    }
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
