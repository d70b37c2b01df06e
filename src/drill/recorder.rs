//! The flight recorder: what each backend did, second by second, for the last few
//! minutes, written back as a drill scenario.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::backend::{BackendSpec, Phase};
use super::load::Load;
use super::scenario::Scenario;
use crate::chaos::Latency;
use crate::observe::{Event, FailoverEvent, Listener, RetryEvent};

/// Latency buckets: powers of two of microseconds, 1 µs to about 70 s.
const BUCKETS: usize = 27;

/// One backend's second.
#[derive(Clone, Copy, Default)]
struct Cell {
    calls: u32,
    failures: u32,
    /// Successful calls by latency, in power-of-two microsecond buckets.
    latency: [u32; BUCKETS],
}

impl Cell {
    fn quantile(&self, q: f64) -> Option<Duration> {
        let n: u64 = self.latency.iter().map(|&c| u64::from(c)).sum();
        if n == 0 {
            return None;
        }
        let rank = ((n as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, &c) in self.latency.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                // The bucket's middle: between 2^b and 2^(b+1) µs.
                return Some(Duration::from_micros((1u64 << b) * 3 / 2));
            }
        }
        None
    }
}

struct Track {
    /// Seconds since the recorder started → cells, as a ring of `capacity` seconds.
    cells: Vec<Cell>,
}

struct Inner {
    epoch: Instant,
    /// The newest second recorded.
    newest: u64,
    backends: Vec<(Arc<str>, Track)>,
    index: HashMap<Arc<str>, usize>,
    /// Requests finished per second (from a retry layer), same ring.
    requests: Vec<u32>,
    saw_requests: bool,
}

/// A bounded flight recorder: each backend's calls, failures and latency per second
/// for the last `capacity` seconds (10 minutes by default), fed by a stack's events.
/// After an incident, [`scenario`](Self::scenario) writes what it saw as a drill
/// [`Scenario`]: the load, and each backend's phases (down, brownout, slow, healthy)
/// as they happened, so the incident becomes a regression drill in CI
/// ([`Scenario::to_toml`] to keep it as a file).
///
/// It is a [`Listener`] that takes the router's per-call events
/// ([`FailoverEvent::Attempt`]) and the retry layer's per-request ones; give it to
/// the stack (`StackBuilder::listeners(move |_| Some(recorder.clone()))`). Memory is
/// bounded: `capacity` seconds × at most `max_backends` backends (64 by default;
/// later ones are not recorded), about 120 bytes each. A call costs one short lock.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::drill::FlightRecorder;
///
/// let recorder = FlightRecorder::new(Duration::from_secs(600));
/// // ... give it to the stack, run, then after an incident:
/// let scenario = recorder.scenario("incident-2026-12-03");
/// println!("{}", scenario.to_toml());
/// ```
#[derive(Clone)]
pub struct FlightRecorder {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
    max_backends: usize,
}

impl fmt::Debug for FlightRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("FlightRecorder")
            .field("capacity_s", &self.capacity)
            .field("backends", &inner.backends.len())
            .finish()
    }
}

impl FlightRecorder {
    /// Keeps the last `window` (rounded up to whole seconds, at least one).
    pub fn new(window: Duration) -> Self {
        let capacity = (window.as_secs_f64().ceil() as usize).clamp(1, 86_400);
        Self {
            inner: Arc::new(Mutex::new(Inner {
                epoch: Instant::now(),
                newest: 0,
                backends: Vec::new(),
                index: HashMap::new(),
                requests: vec![0; capacity],
                saw_requests: false,
            })),
            capacity,
            max_backends: 64,
        }
    }

    /// At most this many backends are recorded (64 by default).
    pub fn max_backends(mut self, max: usize) -> Self {
        self.max_backends = max;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the ring to `second`, clearing the seconds it passes.
    fn advance(&self, inner: &mut Inner, second: u64) {
        if second <= inner.newest {
            return;
        }
        let cap = self.capacity as u64;
        for s in (inner.newest + 1).max(second.saturating_sub(cap - 1))..=second {
            let i = (s % cap) as usize;
            inner.requests[i] = 0;
            for (_, track) in &mut inner.backends {
                track.cells[i] = Cell::default();
            }
        }
        inner.newest = second;
    }

    fn record(&self, backend: &Arc<str>, success: bool, latency: Option<Duration>) {
        let mut inner = self.lock();
        let second = inner.epoch.elapsed().as_secs();
        self.advance(&mut inner, second);
        let i = match inner.index.get(backend) {
            Some(&i) => i,
            None if inner.backends.len() < self.max_backends => {
                let i = inner.backends.len();
                inner.backends.push((
                    backend.clone(),
                    Track {
                        cells: vec![Cell::default(); self.capacity],
                    },
                ));
                inner.index.insert(backend.clone(), i);
                i
            }
            None => return,
        };
        let cell = &mut inner.backends[i].1.cells[(second % self.capacity as u64) as usize];
        cell.calls = cell.calls.saturating_add(1);
        if success {
            if let Some(latency) = latency {
                let micros = latency.as_micros().max(1) as u64;
                let bucket = (63 - micros.leading_zeros() as usize).min(BUCKETS - 1);
                cell.latency[bucket] = cell.latency[bucket].saturating_add(1);
            }
        } else {
            cell.failures = cell.failures.saturating_add(1);
        }
    }

    fn request(&self) {
        let mut inner = self.lock();
        let second = inner.epoch.elapsed().as_secs();
        self.advance(&mut inner, second);
        inner.saw_requests = true;
        let i = (second % self.capacity as u64) as usize;
        inner.requests[i] = inner.requests[i].saturating_add(1);
    }

    /// What was recorded, as a drill scenario named `name`: one second per recorded
    /// second (the oldest kept first), the load as the requests per second (the
    /// calls, if no retry layer reported), each backend with its healthy latency
    /// (median and p99 of its healthy seconds) and its phases:
    ///
    /// * **down** — a second where at least 95 % of its calls failed; a second with no
    ///   call keeps the phase before it (a backend held out of rotation is still down);
    /// * **brownout** — over 5 points more failures than its healthy seconds, the
    ///   error rate rounded to 5 points;
    /// * **slow** — a median latency over 3× its healthy median, the factor rounded to
    ///   a half;
    /// * **healthy** — otherwise.
    ///
    /// Neighbouring seconds in the same phase are merged; the load keeps a step where
    /// the rate moves by more than 10 %. Backends are listed by id, in order. Tiers are not seen by the recorder: every
    /// backend is tier 0 (set them on the scenario if the stack has tiers).
    pub fn scenario(&self, name: &str) -> Scenario {
        let inner = self.lock();
        let cap = self.capacity as u64;
        let first = inner.newest.saturating_sub(cap - 1);
        let mut seconds: Vec<u64> = (first..=inner.newest).collect();
        let slot = |s: u64| (s % cap) as usize;

        // The load, per second: requests finished (or calls, with no retry layer).
        let rate_at = |s: u64| -> f64 {
            if inner.saw_requests {
                f64::from(inner.requests[slot(s)])
            } else {
                inner
                    .backends
                    .iter()
                    .map(|(_, t)| f64::from(t.cells[slot(s)].calls))
                    .sum()
            }
        };
        let mut rates: Vec<f64> = seconds.iter().map(|&s| rate_at(s)).collect();
        let median = |xs: &[f64]| {
            let mut v = xs.to_vec();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        // The tail after the load ended (the last calls finishing) is not load.
        let typical = median(&rates);
        while rates.len() > 1 && rates.last().is_some_and(|&r| r < 0.1 * typical) {
            rates.pop();
            seconds.pop();
        }
        let mut scenario = Scenario::new(name)
            .describe(format!(
                "replayed from a flight recording of {} s",
                seconds.len()
            ))
            .duration(Duration::from_secs(seconds.len() as u64));
        // A step where the rate moves by over 10 % for two seconds in a row, from the
        // first seconds' median (the very first is short: calls count as they finish).
        let mut current = median(&rates[..rates.len().min(5)]);
        let mut load = Load::constant(current);
        let mut k = 1;
        while k + 1 < rates.len() {
            let off = |r: f64| (r - current).abs() > 0.1 * current.max(1.0);
            if off(rates[k]) && off(rates[k + 1]) {
                current = (rates[k] + rates[k + 1]) / 2.0;
                load = load.step(Duration::from_secs(k as u64), current);
                k += 2;
            } else {
                k += 1;
            }
        }
        scenario = scenario.load(load);

        let mut backends: Vec<&(Arc<str>, Track)> = inner.backends.iter().collect();
        backends.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, track) in backends {
            let cells: Vec<&Cell> = seconds.iter().map(|&s| &track.cells[slot(s)]).collect();
            let failing =
                |c: &Cell| c.calls > 0 && f64::from(c.failures) >= 0.95 * f64::from(c.calls);
            // The healthy baseline: the seconds that were not down.
            let mut base = Cell::default();
            for c in cells.iter().filter(|c| c.calls > 0 && !failing(c)) {
                base.calls += c.calls;
                base.failures += c.failures;
                for (b, n) in base.latency.iter_mut().zip(c.latency) {
                    *b += n;
                }
            }
            let base_rate = if base.calls > 0 {
                f64::from(base.failures) / f64::from(base.calls)
            } else {
                0.0
            };
            let median = base.quantile(0.5).unwrap_or(Duration::from_millis(20));
            let p99 = base.quantile(0.99).unwrap_or(median * 5).max(median);
            let latency = Latency::log_normal(median, p99)
                .or_else(|_| Latency::log_normal(median, median * 2))
                .unwrap_or_default();
            let mut spec = BackendSpec::new(id.to_string())
                .latency(latency)
                .error_rate((base_rate * 20.0).round() / 20.0);
            // Each second's phase (None: no call, so no news)...
            let mut phases: Vec<Option<Phase>> = cells
                .iter()
                .map(|c| {
                    if c.calls == 0 {
                        return None;
                    }
                    if failing(c) {
                        return Some(Phase::Down);
                    }
                    let rate = f64::from(c.failures) / f64::from(c.calls);
                    let slow = c
                        .quantile(0.5)
                        .map(|m| m.as_secs_f64() / median.as_secs_f64().max(1e-6))
                        .unwrap_or(1.0);
                    Some(if rate > base_rate + 0.05 {
                        Phase::Brownout {
                            error_rate: ((rate * 20.0).round() / 20.0).min(1.0),
                        }
                    } else if slow > 3.0 {
                        Phase::Slow {
                            factor: (slow * 2.0).round() / 2.0,
                        }
                    } else {
                        Phase::Healthy
                    })
                })
                .collect();
            // ...where a second that mostly failed next to a down one is the edge of
            // the outage (calls sent before it finished in it): down too.
            for k in 0..phases.len() {
                let edge = matches!(
                    phases[k],
                    Some(Phase::Brownout { error_rate }) if error_rate >= 0.5
                );
                let next_down = phases[k + 1..].iter().flatten().next() == Some(&Phase::Down);
                let prev_down = phases[..k].iter().flatten().last() == Some(&Phase::Down);
                if edge && (next_down || prev_down) {
                    phases[k] = Some(Phase::Down);
                }
            }
            let mut phase = Phase::Healthy;
            for (k, next) in phases.into_iter().enumerate() {
                let next = next.unwrap_or(phase);
                if next != phase {
                    spec = spec.phase(Duration::from_secs(k as u64), next);
                    phase = next;
                }
            }
            scenario = scenario.backend(spec);
        }
        scenario
    }
}

impl Listener for FlightRecorder {
    fn on_event(&self, event: &Event) {
        match event {
            Event::Failover(FailoverEvent::Attempt {
                backend,
                success,
                latency,
            }) => self.record(backend, *success, *latency),
            Event::Retry(RetryEvent::Finished { .. }) => self.request(),
            _ => {}
        }
    }

    /// It records every call: it needs the router's per-call events.
    fn per_call(&self) -> bool {
        true
    }
}
