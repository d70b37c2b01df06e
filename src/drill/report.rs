//! The report of a drill: figures, timeline, faults, table, JSON, assertions.

use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::backend::{Phase, SimBackend};
use super::measure::{EventsInner, Second};
use super::scenario::Scenario;

/// What a drill measured. See the [module docs](super) for how each figure is defined.
///
/// Serialize it with [`Report::to_json`]; print it with `{}` (a table) or compare
/// several with [`comparison_table`]; chart it with [`svg_chart`](super::svg_chart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The stack's label.
    pub stack: String,
    /// The seed.
    pub seed: u64,
    /// How long requests were sent, in seconds.
    pub duration_s: f64,
    /// The per-second availability under which a second counts as impaired.
    pub threshold: f64,
    /// Requests sent.
    pub requests: u64,
    /// Requests that succeeded (by the drill's classifier).
    pub succeeded: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Requests still unfinished when the drain time ran out (counted as failed).
    pub unfinished: u64,
    /// `succeeded / requests`.
    pub availability: f64,
    /// Latency quantiles of every finished request, in milliseconds.
    pub latency_ms: Quantiles,
    /// Calls the backends received, retries included.
    pub attempts: u64,
    /// Of those, attempts of a request a backend had received before: the retries
    /// (and hedges) that reached a backend. Rejections that never left the stack are
    /// not attempts.
    #[serde(default)]
    pub retries: u64,
    /// `attempts / requests`: the load the stack put on the backends per request.
    pub amplification: f64,
    /// Per-backend figures, in scenario order.
    pub backends: Vec<BackendReport>,
    /// The faults of the scenario and how the stack coped with each.
    pub faults: Vec<FaultReport>,
    /// One entry per second.
    pub timeline: Vec<SecondReport>,
    /// The first events the stack reported through [`DrillEnv::listener`](super::DrillEnv::listener).
    pub events: Vec<EventRecord>,
    /// How many events of each kind were reported.
    pub event_counts: Vec<(String, u64)>,
    /// State changes read from the events by [`Drill::states`](super::Drill::states).
    pub transitions: Vec<Transition>,
    /// The time each source spent in each state, from the transitions.
    pub states: Vec<StateSpan>,
}

/// A source (a breaker, a backend's ejection) entered a state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Seconds since the start.
    pub at_s: f64,
    /// What changed state.
    pub source: String,
    /// The state it entered.
    pub state: String,
}

/// A span of time a source spent in one state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateSpan {
    /// What was in the state.
    pub source: String,
    /// The state.
    pub state: String,
    /// When it entered it, in seconds since the start.
    pub start_s: f64,
    /// When it left it (or the drill ended).
    pub end_s: f64,
}

/// Latency quantiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

/// One backend's share of the work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendReport {
    /// Its name.
    pub name: String,
    /// Its tier.
    pub tier: u32,
    /// Its zone.
    pub zone: String,
    /// Calls it received.
    pub attempts: u64,
    /// Calls it failed.
    pub failures: u64,
    /// Its share of all attempts.
    pub share: f64,
}

/// A fault of the scenario (one non-healthy phase, merged across backends that share
/// it) and how the stack coped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultReport {
    /// The backends affected (none for a load surge).
    pub backends: Vec<String>,
    /// The phase, described.
    pub phase: String,
    /// When it started, in seconds from the start.
    pub start_s: f64,
    /// When it ended (or the drill did).
    pub end_s: f64,
    /// The share of requests sent during the fault that succeeded.
    pub availability: f64,
    /// Seconds from the start of the fault to the end of the first second in which the
    /// affected backends received at most half their attempts per request of the ten
    /// seconds before: the stack noticed and routed around them. `None`: never during
    /// the fault.
    pub detected_after_s: Option<f64>,
    /// Seconds from the end of the fault to the end of the first second in which the
    /// affected backends were back to at least half their earlier attempts per request
    /// and availability was at or above the threshold. `None`: not by the end of the
    /// drill, or the fault lasted until the end.
    pub recovered_after_s: Option<f64>,
    /// Seconds below the availability threshold from the fault's start to 30 s after
    /// its end.
    pub impaired_s: u64,
    /// 99th percentile latency of the requests sent during the fault, in
    /// milliseconds (0 when none was sent).
    #[serde(default)]
    pub p99_ms: f64,
    /// 99th percentile latency of the requests sent in the 10 s before the fault, in
    /// milliseconds: the healthy figure to compare [`p99_ms`](Self::p99_ms) with.
    /// `None` when the fault starts at the beginning.
    #[serde(default)]
    pub baseline_p99_ms: Option<f64>,
}

/// One second of the drill (by the time requests were sent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondReport {
    /// Seconds since the start.
    pub t: u32,
    /// Requests sent in this second.
    pub sent: u64,
    /// Of those, succeeded.
    pub ok: u64,
    /// `ok / sent` (1 when nothing was sent).
    pub availability: f64,
    /// Median latency of those requests, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// Calls each backend received in this second.
    pub attempts: Vec<u64>,
    /// Calls each backend failed in this second.
    pub backend_failures: Vec<u64>,
}

/// An event reported by the stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Seconds since the start.
    pub at_s: f64,
    /// The event, as its `Debug` text.
    pub event: String,
}

pub(crate) struct Inputs<'a> {
    pub(crate) scenario: &'a Scenario,
    pub(crate) label: &'a str,
    pub(crate) seed: u64,
    pub(crate) threshold: f64,
    pub(crate) backends: &'a [BackendCounts],
    pub(crate) latency: Histogram<u64>,
    pub(crate) seconds: Vec<Second>,
    pub(crate) events: EventsInner,
    pub(crate) repeats: u64,
}

/// What a report needs of one backend: who it is and the calls it got, per second.
/// Read from a simulated backend, or counted by the client for a real one.
pub(crate) struct BackendCounts {
    pub(crate) name: String,
    pub(crate) tier: u32,
    pub(crate) zone: String,
    /// Calls received and calls failed, per second of the drill.
    pub(crate) per_second: Vec<[u64; 2]>,
}

impl BackendCounts {
    pub(crate) fn of(b: &SimBackend) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Self {
            name: b.name().to_string(),
            tier: b.tier(),
            zone: b.zone().to_string(),
            per_second: b
                .shared
                .per_second
                .iter()
                .map(|c| [c[0].load(Relaxed), c[1].load(Relaxed)])
                .collect(),
        }
    }

    fn attempts(&self) -> u64 {
        self.per_second.iter().map(|c| c[0]).sum()
    }

    fn failures(&self) -> u64 {
        self.per_second.iter().map(|c| c[1]).sum()
    }

    fn at(&self, t: usize, which: usize) -> u64 {
        self.per_second.get(t).map_or(0, |c| c[which])
    }
}

fn ms(micros: u64) -> f64 {
    round3(micros as f64 / 1000.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

pub(crate) fn build(input: Inputs<'_>) -> Report {
    let Inputs {
        scenario,
        label,
        seed,
        threshold,
        backends,
        latency,
        seconds,
        events,
        repeats,
    } = input;
    let timeline: Vec<SecondReport> = seconds
        .iter()
        .enumerate()
        .map(|(t, s)| {
            let (p50, p99) = s.latency.as_ref().map_or((0.0, 0.0), |h| {
                (ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)))
            });
            SecondReport {
                t: t as u32,
                sent: s.sent,
                ok: s.ok,
                availability: ratio(s.ok, s.sent),
                p50_ms: p50,
                p99_ms: p99,
                attempts: backends.iter().map(|b| b.at(t, 0)).collect(),
                backend_failures: backends.iter().map(|b| b.at(t, 1)).collect(),
            }
        })
        .collect();
    let requests: u64 = seconds.iter().map(|s| s.sent).sum();
    let succeeded: u64 = seconds.iter().map(|s| s.ok).sum();
    let finished_failed: u64 = seconds.iter().map(|s| s.failed).sum();
    let unfinished = requests - succeeded - finished_failed;
    let attempts: u64 = backends.iter().map(BackendCounts::attempts).sum();
    let backend_reports = backends
        .iter()
        .map(|b| BackendReport {
            name: b.name.clone(),
            tier: b.tier,
            zone: b.zone.clone(),
            attempts: b.attempts(),
            failures: b.failures(),
            share: round3(ratio(b.attempts(), attempts.max(1))),
        })
        .collect();
    let faults = faults(scenario, &timeline, &seconds, threshold);
    Report {
        scenario: scenario.name.clone(),
        stack: label.to_string(),
        seed,
        duration_s: scenario.duration.as_secs_f64(),
        threshold,
        requests,
        succeeded,
        failed: requests - succeeded,
        unfinished,
        availability: ratio(succeeded, requests),
        latency_ms: Quantiles {
            p50: ms(latency.value_at_quantile(0.5)),
            p90: ms(latency.value_at_quantile(0.9)),
            p99: ms(latency.value_at_quantile(0.99)),
            p999: ms(latency.value_at_quantile(0.999)),
            max: ms(latency.max()),
        },
        attempts,
        retries: repeats,
        amplification: round3(ratio(attempts, requests.max(1))),
        backends: backend_reports,
        faults,
        timeline,
        events: events
            .log
            .into_iter()
            .map(|(at, event)| EventRecord {
                at_s: round3(at.as_secs_f64()),
                event,
            })
            .collect(),
        event_counts: events.counts.into_iter().collect(),
        states: spans(&events.transitions, scenario.duration.as_secs_f64()),
        transitions: events
            .transitions
            .into_iter()
            .map(|(at, source, state)| Transition {
                at_s: round3(at.as_secs_f64()),
                source,
                state,
            })
            .collect(),
    }
}

fn spans(transitions: &[(Duration, String, String)], end: f64) -> Vec<StateSpan> {
    let mut spans: Vec<StateSpan> = Vec::new();
    for (k, (at, source, state)) in transitions.iter().enumerate() {
        let until = transitions[k + 1..]
            .iter()
            .find(|t| &t.1 == source)
            .map_or(end, |t| t.0.as_secs_f64());
        let start = at.as_secs_f64();
        if until > start {
            spans.push(StateSpan {
                source: source.clone(),
                state: state.clone(),
                start_s: round3(start),
                end_s: round3(until.min(end.max(start))),
            });
        }
    }
    spans
}

/// The 99th percentile of the requests sent in seconds `from..to`, in milliseconds.
fn p99_between(seconds: &[Second], from: usize, to: usize) -> Option<f64> {
    let mut merged: Option<Histogram<u32>> = None;
    for s in seconds.get(from..to.min(seconds.len()))? {
        if let Some(h) = &s.latency {
            match &mut merged {
                None => merged = Some(h.clone()),
                Some(m) => {
                    let _ = m.add(h);
                }
            }
        }
    }
    merged.map(|h| ms(h.value_at_quantile(0.99)))
}

fn faults(
    scenario: &Scenario,
    timeline: &[SecondReport],
    seconds: &[Second],
    threshold: f64,
) -> Vec<FaultReport> {
    // (start, end, phase) -> backends
    let mut windows: Vec<(Duration, Duration, String, Vec<usize>)> = Vec::new();
    for (i, b) in scenario.backends.iter().enumerate() {
        for (k, &(at, phase)) in b.phases.iter().enumerate() {
            if phase == Phase::Healthy || at >= scenario.duration {
                continue;
            }
            let end = b
                .phases
                .get(k + 1)
                .map_or(scenario.duration, |p| p.0.min(scenario.duration));
            if end <= at {
                continue;
            }
            let desc = phase.describe();
            match windows
                .iter_mut()
                .find(|w| w.0 == at && w.1 == end && w.2 == desc)
            {
                Some(w) => w.3.push(i),
                None => windows.push((at, end, desc, vec![i])),
            }
        }
    }
    // Load surges: a step above the starting rate is a fault with no backend.
    let load = &scenario.load;
    for (k, &(at, rate)) in load.steps.iter().enumerate() {
        if rate <= load.rate || at >= scenario.duration {
            continue;
        }
        let end = load
            .steps
            .get(k + 1)
            .map_or(scenario.duration, |s| s.0.min(scenario.duration));
        if end > at {
            windows.push((at, end, format!("load {rate}/s"), Vec::new()));
        }
    }
    windows.sort_by_key(|w| w.0);
    let per_request = |t: usize, idx: &[usize]| {
        let s = &timeline[t];
        let a: u64 = idx.iter().map(|&i| s.attempts[i]).sum();
        (a, s.sent)
    };
    windows
        .into_iter()
        .map(|(start, end, phase, idx)| {
            let start_s = start.as_secs() as usize;
            let end_s = (end.as_secs_f64().ceil() as usize).min(timeline.len());
            let base_from = start_s.saturating_sub(10);
            let (ba, bs) = (base_from..start_s).fold((0, 0), |acc, t| {
                let (a, s) = per_request(t, &idx);
                (acc.0 + a, acc.1 + s)
            });
            let baseline = (bs > 0 && !idx.is_empty()).then(|| ba as f64 / bs as f64);
            let detected = baseline.and_then(|base| {
                (start_s..end_s)
                    .find(|&t| {
                        let (a, s) = per_request(t, &idx);
                        s > 0 && (a as f64 / s as f64) <= base / 2.0
                    })
                    .map(|t| (t + 1) as f64 - start.as_secs_f64())
            });
            let recovered = if end >= scenario.duration {
                None
            } else if idx.is_empty() {
                (end.as_secs() as usize..timeline.len())
                    .find(|&t| timeline[t].availability >= threshold)
                    .map(|t| (t + 1) as f64 - end.as_secs_f64())
            } else {
                baseline.and_then(|base| {
                    (end.as_secs() as usize..timeline.len())
                        .find(|&t| {
                            let (a, s) = per_request(t, &idx);
                            s > 0
                                && (a as f64 / s as f64) >= base / 2.0
                                && timeline[t].availability >= threshold
                        })
                        .map(|t| (t + 1) as f64 - end.as_secs_f64())
                })
            };
            let impaired = (start_s..(end_s + 30).min(timeline.len()))
                .filter(|&t| timeline[t].availability < threshold)
                .count() as u64;
            let (ok, sent) = (start_s..end_s).fold((0, 0), |acc, t| {
                (acc.0 + timeline[t].ok, acc.1 + timeline[t].sent)
            });
            FaultReport {
                backends: idx
                    .iter()
                    .map(|&i| scenario.backends[i].name.clone())
                    .collect(),
                phase,
                start_s: start.as_secs_f64(),
                end_s: end.as_secs_f64(),
                availability: ratio(ok, sent),
                detected_after_s: detected.map(round3),
                recovered_after_s: recovered.map(round3),
                impaired_s: impaired,
                p99_ms: p99_between(seconds, start_s, end_s).unwrap_or(0.0),
                baseline_p99_ms: (start_s > 0)
                    .then(|| p99_between(seconds, base_from, start_s))
                    .flatten(),
            }
        })
        .collect()
}

/// The slowest detection and the slowest return of traffic over a report's faults
/// (`None` when some fault never saw one).
fn worst_times(r: &Report) -> (Option<f64>, Option<f64>) {
    let worst = |v: Vec<Option<f64>>| {
        v.into_iter()
            .max_by(|a, b| {
                a.unwrap_or(f64::INFINITY)
                    .total_cmp(&b.unwrap_or(f64::INFINITY))
            })
            .flatten()
    };
    let detected = worst(r.faults.iter().map(|f| f.detected_after_s).collect());
    let recovered = worst(
        r.faults
            .iter()
            .filter(|f| f.end_s < r.duration_s)
            .map(|f| f.recovered_after_s)
            .collect(),
    );
    (detected, recovered)
}

/// One line per stack that says how it did, for a reader who skips the table:
/// requests lost, what the retries cost, how soon traffic moved away from a fault
/// and came back.
pub fn verdicts(reports: &[Report]) -> String {
    let mut out = String::new();
    let width = reports.iter().map(|r| r.stack.len()).max().unwrap_or(0);
    for r in reports {
        let (detected, recovered) = worst_times(r);
        let lost = if r.failed == 0 {
            "lost no request".to_string()
        } else {
            format!(
                "lost {} of {} requests ({:.3} %)",
                r.failed,
                r.requests,
                100.0 * r.failed as f64 / r.requests.max(1) as f64
            )
        };
        let retries = if r.retries == 0 {
            "sent no retry".to_string()
        } else {
            format!(
                "sent {} retries ({:.1} % extra load)",
                r.retries,
                100.0 * r.retries as f64 / r.requests.max(1) as f64
            )
        };
        let moved = match (r.faults.is_empty(), detected) {
            (true, _) => String::new(),
            (false, Some(d)) => format!(", moved traffic away within {d:.0} s"),
            (false, None) => ", never moved traffic away from a fault".to_string(),
        };
        let back = match (r.faults.iter().any(|f| f.end_s < r.duration_s), recovered) {
            (false, _) => String::new(),
            (true, _) if detected.is_none() => String::new(),
            (true, Some(b)) => format!(", traffic back {b:.0} s after recovery"),
            (true, None) => ", traffic never came back".to_string(),
        };
        let _ = writeln!(out, "{:<width$}  {lost}, {retries}{moved}{back}", r.stack);
    }
    out
}

/// A report did not meet an expectation. Its message says what was expected, what
/// was measured, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct AssertionFailed {
    message: String,
}

impl fmt::Display for AssertionFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AssertionFailed {}

impl Report {
    /// `succeeded / requests`.
    pub fn availability(&self) -> f64 {
        self.availability
    }

    /// `attempts / requests`.
    pub fn amplification(&self) -> f64 {
        self.amplification
    }

    /// The report as pretty-printed JSON. The same seed gives the same text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }

    /// Reads a report back from [`Report::to_json`]'s text, to compare a run with a
    /// saved baseline.
    pub fn from_json(text: &str) -> Result<Report, serde_json::Error> {
        serde_json::from_str(text)
    }

    fn fail(&self, what: String) -> Result<(), AssertionFailed> {
        Err(AssertionFailed {
            message: format!(
                "drill `{}` with stack `{}` (seed {}): {what}",
                self.scenario, self.stack, self.seed
            ),
        })
    }

    /// Fails unless availability is at least `min` (0.999 means 99.9 %). The message
    /// names the worst second.
    pub fn assert_availability_at_least(&self, min: f64) -> Result<(), AssertionFailed> {
        if self.availability >= min {
            return Ok(());
        }
        let worst = self
            .timeline
            .iter()
            .min_by(|a, b| a.availability.total_cmp(&b.availability))
            .map(|s| format!("; worst second {} at {:.2} %", s.t, s.availability * 100.0))
            .unwrap_or_default();
        self.fail(format!(
            "availability {:.3} % is below the required {:.3} % ({} of {} requests failed{worst})",
            self.availability * 100.0,
            min * 100.0,
            self.failed,
            self.requests
        ))
    }

    /// Fails unless the backends received at most `max` attempts per request.
    pub fn assert_amplification_at_most(&self, max: f64) -> Result<(), AssertionFailed> {
        if self.amplification <= max {
            return Ok(());
        }
        self.fail(format!(
            "load amplification {:.3} exceeds {max:.3} ({} backend attempts for {} requests)",
            self.amplification, self.attempts, self.requests
        ))
    }

    /// Fails unless the 99th percentile latency is at most `max`.
    pub fn assert_p99_at_most(&self, max: Duration) -> Result<(), AssertionFailed> {
        let limit = max.as_secs_f64() * 1000.0;
        if self.latency_ms.p99 <= limit {
            return Ok(());
        }
        self.fail(format!(
            "p99 latency {:.1} ms exceeds {limit:.1} ms",
            self.latency_ms.p99
        ))
    }

    /// Fails unless every fault was detected (its backends routed around) within
    /// `max` of its start.
    pub fn assert_detected_within(&self, max: Duration) -> Result<(), AssertionFailed> {
        for f in &self.faults {
            match f.detected_after_s {
                Some(d) if d <= max.as_secs_f64() => {}
                other => {
                    let seen = other.map_or("never".to_string(), |d| format!("after {d} s"));
                    return self.fail(format!(
                        "fault `{}` on {:?} at {} s was detected {seen}, not within {} s",
                        f.phase,
                        f.backends,
                        f.start_s,
                        max.as_secs_f64()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Fails unless traffic and availability came back within `max` of the end of
    /// every fault that ended before the drill did.
    pub fn assert_recovered_within(&self, max: Duration) -> Result<(), AssertionFailed> {
        for f in self.faults.iter().filter(|f| f.end_s < self.duration_s) {
            match f.recovered_after_s {
                Some(d) if d <= max.as_secs_f64() => {}
                other => {
                    let seen = other.map_or("never".to_string(), |d| format!("after {d} s"));
                    return self.fail(format!(
                        "fault `{}` on {:?} ended at {} s; the stack recovered {seen}, not within {} s",
                        f.phase,
                        f.backends,
                        f.end_s,
                        max.as_secs_f64()
                    ));
                }
            }
        }
        Ok(())
    }
}

impl FaultReport {
    /// What the fault hit: the backends' names, or `every backend` for a load surge.
    pub fn target(&self) -> String {
        if self.backends.is_empty() {
            "every backend".to_string()
        } else {
            self.backends.join(", ")
        }
    }
}

fn opt_s(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |s| format!("{s:.0} s"))
}

/// A table comparing several reports of the same scenario, one row per stack.
pub fn comparison_table(reports: &[Report]) -> String {
    let mut out = String::new();
    let head = [
        "stack",
        "availability",
        "lost",
        "p50",
        "p99",
        "p99.9",
        "retries sent",
        "attempts/request",
        "moved away after",
        "traffic back after",
        "seconds impaired",
    ];
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let (detected, recovered) = worst_times(r);
            let impaired: u64 = r.faults.iter().map(|f| f.impaired_s).sum();
            vec![
                r.stack.clone(),
                format!("{:.3} %", r.availability * 100.0),
                r.failed.to_string(),
                format!("{:.1} ms", r.latency_ms.p50),
                format!("{:.1} ms", r.latency_ms.p99),
                format!("{:.1} ms", r.latency_ms.p999),
                r.retries.to_string(),
                format!("{:.3}", r.amplification),
                if r.faults.is_empty() {
                    "n/a".into()
                } else {
                    opt_s(detected)
                },
                if r.faults.is_empty() {
                    "n/a".into()
                } else if detected.is_none() {
                    // Traffic that never moved away cannot come back.
                    "-".into()
                } else {
                    opt_s(recovered)
                },
                format!("{impaired} s"),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..head.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([head[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut String, cells: &[&str]| {
        for (c, cell) in cells.iter().enumerate() {
            if c == 0 {
                let _ = write!(out, "{cell:<w$}", w = widths[c]);
            } else {
                let _ = write!(out, "  {cell:>w$}", w = widths[c]);
            }
        }
        out.push('\n');
    };
    line(&mut out, &head);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(
        &mut out,
        &rule.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for r in &rows {
        line(&mut out, &r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "drill `{}`: {} requests over {} s, seed {}",
            self.scenario, self.requests, self.duration_s, self.seed
        )?;
        f.write_str(&comparison_table(std::slice::from_ref(self)))?;
        for fault in &self.faults {
            writeln!(
                f,
                "fault {} on {} from {} s to {} s: availability {:.3} %, detected {}, recovered {}, {} s impaired",
                fault.phase,
                fault.target(),
                fault.start_s,
                fault.end_s,
                fault.availability * 100.0,
                opt_s(fault.detected_after_s),
                opt_s(fault.recovered_after_s),
                fault.impaired_s
            )?;
        }
        let shares: Vec<String> = self
            .backends
            .iter()
            .map(|b| format!("{} {:.1} %", b.name, b.share * 100.0))
            .collect();
        writeln!(f, "traffic share: {}", shares.join(", "))
    }
}
