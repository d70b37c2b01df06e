//! What serde reads from a scenario file, and how it becomes a [`Scenario`].

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::backend::{BackendSpec, Phase};
use super::load::Load;
use super::scenario::Scenario;
use super::scenario_error::{ScenarioError, locate};
use crate::chaos::Latency;
use crate::config::ConfigError;

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
                let phase = p
                    .get_ref()
                    .to_phase()
                    .map_err(|(key, e)| at(Some(p.span()), &format!("backend.phases.{key}"), e))?;
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
}
