//! The runner: open-loop load in paused time against a user-built stack.

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tower_service::Service;

use super::backend::{SimBackend, SimRequest, SimResponse};
use super::measure::{EventLog, Recorder, StateFn};
use super::report::{self, Report};
use super::scenario::Scenario;
use crate::classify::{Classify, DefaultClassifier};
use crate::config::{ConfigError, check_range};
use crate::observe::Event;
use crate::rng::Rng;

/// Runs a [`Scenario`] against a stack you build over its simulated backends, in
/// paused tokio time, and returns a [`Report`].
///
/// The load is open loop: each request is sent at its arrival time in its own task,
/// whatever happened to the earlier ones. Time is virtual — sleeps end as soon as
/// nothing else can run — so ten minutes at 1,000 requests per second take a few
/// seconds of real time, and the same seed gives the same report.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::drill::{Drill, Scenario};
///
/// let scenario = Scenario::builtin("backend-outage").unwrap().scaled(0.1, 0.1);
/// let report = Drill::new(scenario)
///     .seed(7)
///     .label("first backend only")
///     .run(|env| env.backends()[0].clone())
///     .unwrap();
/// // With no resilience, the outage of the only backend used shows.
/// assert!(report.availability() < 0.9);
/// ```
#[derive(Clone)]
pub struct Drill<C = DefaultClassifier> {
    scenario: Scenario,
    seed: u64,
    label: String,
    threshold: f64,
    classifier: C,
    states: Option<StateFn>,
}

impl<C: fmt::Debug> fmt::Debug for Drill<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drill")
            .field("scenario", &self.scenario.name)
            .field("seed", &self.seed)
            .field("label", &self.label)
            .field("threshold", &self.threshold)
            .field("classifier", &self.classifier)
            .field("states", &self.states.is_some())
            .finish()
    }
}

impl Drill {
    /// A drill of `scenario` with seed 0, threshold 99 % and the
    /// [`DefaultClassifier`] (`Ok` is a success).
    pub fn new(scenario: Scenario) -> Self {
        Self {
            scenario,
            seed: 0,
            label: String::from("stack"),
            threshold: 0.99,
            classifier: DefaultClassifier,
            states: None,
        }
    }
}

impl<C> Drill<C> {
    /// The seed for arrivals, backend behaviour and the stack's [`DrillEnv::rng`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The name of the stack under test, shown in reports.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// The per-second availability under which a second counts as impaired, for the
    /// recovery figures of the report (default 0.99).
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// Decides which results are successes (the same classifier your layers use).
    pub fn classifier<C2>(self, classifier: C2) -> Drill<C2> {
        Drill {
            scenario: self.scenario,
            seed: self.seed,
            label: self.label,
            threshold: self.threshold,
            classifier,
            states: self.states,
        }
    }

    /// Reads states out of the events the stack reports through its listeners: `f`
    /// gets the listener's source (given to [`DrillEnv::listener_for`]; `"stack"` for
    /// [`DrillEnv::listener`]) and the event, and returns `Some((source, state))` for
    /// an event that puts a source in a state — the listener's own source (a breaker's
    /// transition), or one the event names (a router's ejection of a backend). The
    /// report lists the transitions and the time each source spent in each state, and
    /// the chart draws every state other than `closed`, `healthy` and `up` as a band,
    /// one row per source.
    ///
    /// ```
    /// use tower_fortify::drill::{Drill, Scenario};
    /// use tower_fortify::observe::{Event, RetryEvent, SkipReason};
    ///
    /// let drill = Drill::new(Scenario::builtin("total-outage").unwrap()).states(|source, event| {
    ///     match event {
    ///         Event::Retry(RetryEvent::RetrySkipped { reason: SkipReason::Budget, .. }) => {
    ///             Some((source.to_string(), "exhausted".into()))
    ///         }
    ///         Event::Retry(RetryEvent::RetryScheduled { .. }) => {
    ///             Some((source.to_string(), "up".into()))
    ///         }
    ///         _ => None,
    ///     }
    /// });
    /// # let _ = drill;
    /// ```
    pub fn states(
        mut self,
        f: impl Fn(&str, &Event) -> Option<(String, String)> + Send + Sync + 'static,
    ) -> Self {
        self.states = Some(Arc::new(f));
        self
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Runs the drill on a new current-thread runtime with paused time. `build` gets
    /// the simulated backends and returns the stack to drive. Call it outside any
    /// runtime; inside a `#[tokio::test(start_paused = true)]` use
    /// [`Drill::run_async`].
    pub fn run<F, S>(&self, build: F) -> Result<Report, ConfigError>
    where
        F: FnOnce(&DrillEnv) -> S,
        S: Service<SimRequest, Response = SimResponse> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Send + 'static,
        C: Classify<SimResponse, S::Error> + Clone + Send + Sync + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime starts");
        runtime.block_on(self.run_async(build))
    }

    /// Runs the drill on the current runtime, which must be a current-thread runtime
    /// with paused time (`#[tokio::test(start_paused = true)]`); with real time it
    /// takes as long as the scenario. Requests still hanging when the report is made
    /// are left to the runtime.
    pub async fn run_async<F, S>(&self, build: F) -> Result<Report, ConfigError>
    where
        F: FnOnce(&DrillEnv) -> S,
        S: Service<SimRequest, Response = SimResponse> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Send + 'static,
        C: Classify<SimResponse, S::Error> + Clone + Send + Sync + 'static,
    {
        self.scenario.validate()?;
        check_range("drill.threshold", self.threshold, 0.0, 1.0)?;
        let scenario = &self.scenario;
        let epoch = Instant::now();
        let seconds = scenario.duration.as_secs_f64().ceil() as usize;
        let counted = seconds + scenario.drain.as_secs_f64().ceil() as usize + 1;
        let backends: Vec<SimBackend> = scenario
            .backends
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                SimBackend::new(
                    i,
                    spec.clone(),
                    epoch,
                    counted,
                    Rng::seeded(stream(self.seed, 1 + i as u64)),
                )
            })
            .collect();
        let seen = Arc::new(super::backend::Seen::default());
        for b in &backends {
            b.track(seen.clone());
        }
        let events = EventLog::new(epoch, self.states.clone());
        let env = DrillEnv {
            backends,
            rng: Rng::seeded(stream(self.seed, u64::MAX)),
            events: events.clone(),
            seed: self.seed,
        };
        let service = build(&env);
        let recorder = Arc::new(Recorder::new(seconds));
        let classifier = self.classifier.clone();

        send_load(
            scenario,
            Rng::seeded(stream(self.seed, 0)),
            epoch,
            &recorder,
            |id, done| {
                let mut svc = service.clone();
                let classifier = classifier.clone();
                let req = SimRequest { id };
                async move {
                    let result = match poll_fn(|cx| svc.poll_ready(cx)).await {
                        Ok(()) => svc.call(req).await,
                        Err(e) => Err(e),
                    };
                    done(
                        classifier
                            .classify(result.as_ref())
                            .now_or_success()
                            .is_success(),
                    );
                }
            },
        )
        .await;
        drop(service);
        let _ = tokio::time::timeout(scenario.drain, recorder.drained()).await;

        let inner = recorder.take();
        Ok(report::build(report::Inputs {
            scenario,
            label: &self.label,
            seed: self.seed,
            threshold: self.threshold,
            backends: &env
                .backends
                .iter()
                .map(report::BackendCounts::of)
                .collect::<Vec<_>>(),
            latency: inner.latency,
            seconds: inner.seconds,
            events: events.take(),
            repeats: seen.repeats.load(Ordering::Relaxed),
        }))
    }
}

/// What `build` gets: the simulated backends, a seeded random stream for the stack's
/// own layers, and a listener that records the stack's events into the report.
#[derive(Debug)]
pub struct DrillEnv {
    backends: Vec<SimBackend>,
    rng: Rng,
    events: EventLog,
    seed: u64,
}

impl DrillEnv {
    /// The simulated backends, in scenario order (clone the ones you route to).
    pub fn backends(&self) -> &[SimBackend] {
        &self.backends
    }

    /// A random stream derived from the drill's seed, for the stack's jitter and
    /// fault injection, so that the whole run is reproducible.
    pub fn rng(&self) -> Rng {
        self.rng.clone()
    }

    /// The drill's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A [`Listener`](crate::observe::Listener) to pass to your layers' builders: their events (breaker
    /// transitions, ejections, retries) appear in the report and the chart, with the
    /// source `"stack"`.
    pub fn listener(&self) -> EventLog {
        self.events.clone()
    }

    /// The same listener for one part of the stack (the breaker in front of one
    /// backend, say): its events and states are reported under `source`.
    pub fn listener_for(&self, source: impl Into<String>) -> EventLog {
        self.events.with_source(&source.into())
    }
}

/// Sends the scenario's load, open loop: each request at its arrival time (grouped by
/// millisecond: one timer per millisecond at most), on a task of its own, counted as
/// sent in its second. `request(id, done)` makes the request's future, which calls
/// `done(ok)` once it has its answer.
pub(crate) async fn send_load<F, Fut>(
    scenario: &Scenario,
    rng: Rng,
    epoch: Instant,
    recorder: &Arc<Recorder>,
    mut request: F,
) where
    F: FnMut(u64, Box<dyn FnOnce(bool) + Send>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let seconds = scenario.duration.as_secs_f64().ceil() as usize;
    for (id, at) in scenario.load.arrivals(scenario.duration, rng).enumerate() {
        let due = epoch + Duration::from_millis(u64::try_from(at.as_millis()).unwrap_or(u64::MAX));
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let second = (at.as_secs() as usize).min(seconds.saturating_sub(1));
        recorder.sent(second);
        let start = Instant::now();
        let finish = recorder.clone();
        let done: Box<dyn FnOnce(bool) + Send> =
            Box::new(move |ok| finish.finish(second, ok, start.elapsed()));
        tokio::spawn(request(id as u64, done));
    }
}

/// Independent streams from one seed.
fn stream(seed: u64, n: u64) -> u64 {
    seed ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03).rotate_left(17)
}
