//! Simulated backends: latency, errors, capacity and a schedule of phases.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower_service::Service;

use crate::BoxError;
use crate::chaos::Latency;
use crate::classify::{Classified, Classify, NeverEos, Outcome, ServerHint};
use crate::config::{ConfigError, check_range};
use crate::rng::Rng;

/// What a simulated backend is doing during part of a drill.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Phase {
    /// Normal latency and the backend's base error rate.
    Healthy,
    /// Every call fails fast, like a refused connection.
    Down,
    /// The backend stops answering (a process stopped with SIGSTOP, a full GC pause,
    /// a deadlock): calls that arrive wait until the phase ends and are then served
    /// normally, as a process resumed with SIGCONT answers its backlog. With no later
    /// phase they never answer; only the caller's timeouts end them.
    Hang,
    /// This share of calls fails fast (`0.0..=1.0`); the others are served normally.
    Brownout {
        /// The share of calls that fail.
        error_rate: f64,
    },
    /// Every latency sample is multiplied by `factor`.
    Slow {
        /// The latency multiplier (at least 1 to slow down).
        factor: f64,
    },
    /// A latency tail: this share of calls (`0.0..=1.0`) is `factor` times slower,
    /// the others served normally (a garbage-collection pause, a cold cache).
    Tail {
        /// The share of calls slowed down.
        share: f64,
        /// Their latency multiplier.
        factor: f64,
    },
    /// Down for `down`, then healthy for `up`, again and again from the phase's start.
    Flapping {
        /// How long each down spell lasts.
        down: Duration,
        /// How long each healthy spell lasts.
        up: Duration,
    },
}

impl Phase {
    /// A short name: `healthy`, `down`, `brownout`, `slow`, `flapping`.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Healthy => "healthy",
            Phase::Down => "down",
            Phase::Hang => "hang",
            Phase::Brownout { .. } => "brownout",
            Phase::Slow { .. } => "slow",
            Phase::Tail { .. } => "tail",
            Phase::Flapping { .. } => "flapping",
        }
    }

    /// A description with the phase's parameters, for reports.
    pub fn describe(&self) -> String {
        match self {
            Phase::Healthy | Phase::Down | Phase::Hang => self.name().to_string(),
            Phase::Brownout { error_rate } => format!("brownout {:.0}% errors", error_rate * 100.0),
            Phase::Slow { factor } => format!("slow x{factor}"),
            Phase::Tail { share, factor } => format!("tail {}% x{factor}", share * 100.0),
            Phase::Flapping { down, up } => {
                format!(
                    "flapping {}s down / {}s up",
                    down.as_secs_f64(),
                    up.as_secs_f64()
                )
            }
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Phase::Brownout { error_rate } => {
                check_range("backend.phases.error_rate", error_rate, 0.0, 1.0)
            }
            Phase::Slow { factor } => check_range("backend.phases.factor", factor, 0.0, 1e6),
            Phase::Tail { share, factor } => {
                check_range("backend.phases.share", share, 0.0, 1.0)?;
                check_range("backend.phases.factor", factor, 0.0, 1e6)
            }
            Phase::Flapping { down, up } if down.is_zero() || up.is_zero() => {
                Err(ConfigError::new(
                    "backend.phases.down",
                    "flapping needs non-zero down and up spells",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The description of one simulated backend: what it is like when healthy and the
/// phases it goes through. Built in code or loaded from a scenario file.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::chaos::Latency;
/// use tower_fortify::drill::{BackendSpec, Phase};
///
/// let primary = BackendSpec::new("primary-1")
///     .tier(0)
///     .zone("eu-west-1a")
///     .latency(Latency::log_normal(Duration::from_millis(20), Duration::from_millis(120)).unwrap())
///     .capacity(200)
///     .phase(Duration::from_secs(60), Phase::Down)
///     .phase(Duration::from_secs(120), Phase::Healthy);
/// # let _ = primary;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BackendSpec {
    pub(crate) name: String,
    pub(crate) tier: u32,
    pub(crate) zone: String,
    pub(crate) latency: Latency,
    pub(crate) error_rate: f64,
    pub(crate) capacity: usize,
    pub(crate) queue: usize,
    pub(crate) fail_latency: Duration,
    pub(crate) phases: Vec<(Duration, Phase)>,
}

impl BackendSpec {
    /// A healthy backend: tier 0, zone `"default"`, log-normal latency with a 20 ms
    /// median and a 100 ms p99, no errors, 1,000 concurrent calls, a queue of 1,000,
    /// failures answered in 1 ms.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            tier: 0,
            zone: "default".into(),
            latency: Latency::log_normal(Duration::from_millis(20), Duration::from_millis(100))
                .expect("valid default"),
            error_rate: 0.0,
            capacity: 1000,
            queue: 1000,
            fail_latency: Duration::from_millis(1),
            phases: Vec::new(),
        }
    }

    /// The priority tier (0 is the primary); a failover router reads it through
    /// [`SimBackend::tier`].
    pub fn tier(mut self, tier: u32) -> Self {
        self.tier = tier;
        self
    }

    /// The zone the backend lives in.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = zone.into();
        self
    }

    /// The service time of a healthy call.
    pub fn latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// The share of calls that fail while healthy (`0.0..=1.0`).
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.error_rate = rate;
        self
    }

    /// How many calls the backend serves at once; more wait in its queue, so latency
    /// grows with load beyond this point.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// How many calls may wait for capacity; beyond it calls fail fast as overloaded.
    pub fn queue(mut self, queue: usize) -> Self {
        self.queue = queue;
        self
    }

    /// How long a failing call (down, brownout, overloaded) takes to fail.
    pub fn fail_latency(mut self, latency: Duration) -> Self {
        self.fail_latency = latency;
        self
    }

    /// From `at` after the drill's start, the backend behaves as `phase` (until the
    /// next phase). Before the first phase it is healthy.
    pub fn phase(mut self, at: Duration, phase: Phase) -> Self {
        self.phases.push((at, phase));
        self
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The phases, in order.
    pub fn phases(&self) -> &[(Duration, Phase)] {
        &self.phases
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check_range("backend.error_rate", self.error_rate, 0.0, 1.0)?;
        if self.capacity == 0 {
            return Err(ConfigError::new("backend.capacity", "must be at least 1"));
        }
        for pair in self.phases.windows(2) {
            if pair[1].0 < pair[0].0 {
                return Err(ConfigError::new(
                    "backend.phases.at",
                    format!(
                        "phases must be in time order ({:?} after {:?})",
                        pair[1].0, pair[0].0
                    ),
                ));
            }
        }
        for (_, phase) in &self.phases {
            phase.validate()?;
        }
        Ok(())
    }

    /// The phase in force `t` after the start.
    pub(crate) fn phase_at(&self, t: Duration) -> (Duration, Phase) {
        let mut current = (Duration::ZERO, Phase::Healthy);
        for &(at, phase) in &self.phases {
            if at <= t {
                current = (at, phase);
            } else {
                break;
            }
        }
        current
    }

    /// When the phase that started at `since` ends: the next phase's start.
    pub(crate) fn phase_end(&self, since: Duration) -> Option<Duration> {
        self.phases.iter().map(|p| p.0).find(|&at| at > since)
    }
}

/// A request sent by the drill's load generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SimRequest {
    /// The request's sequence number, from 0.
    pub id: u64,
}

/// A simulated backend's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimResponse {
    /// The index of the backend that answered (its position in the scenario).
    pub backend: usize,
}

/// Why a simulated backend failed a call. Returned boxed as a [`BoxError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError {
    backend: usize,
    kind: SimErrorKind,
}

/// The kind of a [`SimError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimErrorKind {
    /// The backend is down (connection refused).
    Down,
    /// The backend failed the call (its base error rate, or a brownout).
    Failed,
    /// The backend's queue is full.
    Overloaded,
}

impl SimError {
    /// The index of the backend that failed.
    pub fn backend(&self) -> usize {
        self.backend
    }

    /// Why it failed.
    pub fn kind(&self) -> SimErrorKind {
        self.kind
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            SimErrorKind::Down => "connection refused",
            SimErrorKind::Failed => "internal error",
            SimErrorKind::Overloaded => "overloaded",
        };
        write!(f, "simulated backend {}: {what}", self.backend)
    }
}

impl std::error::Error for SimError {}

pub(crate) struct Shared {
    pub(crate) index: usize,
    pub(crate) spec: BackendSpec,
    epoch: Instant,
    rng: Rng,
    permits: Semaphore,
    waiting: AtomicU64,
    pub(crate) attempts: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// Attempts and failures received in each second of the drill.
    pub(crate) per_second: Box<[[AtomicU64; 2]]>,
    /// Shared by a drill's backends: which requests reached any backend, so that an
    /// attempt of a request seen before counts as a retry.
    pub(crate) seen: std::sync::OnceLock<Arc<Seen>>,
}

/// The requests a drill's backends have received, and how many attempts were
/// repeats (retries and hedges).
#[derive(Debug, Default)]
pub(crate) struct Seen {
    ids: std::sync::Mutex<std::collections::HashSet<u64>>,
    pub(crate) repeats: AtomicU64,
}

impl Seen {
    fn record(&self, id: u64) {
        let new = self
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        if !new {
            self.repeats.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A simulated backend: a [`Service`] that answers [`SimRequest`]s as its
/// [`BackendSpec`] and the current [`Phase`] say, and counts what it receives.
///
/// Cheap to clone; clones are the same backend. `poll_ready` is always ready: calls
/// beyond the capacity wait in the backend's queue, as they would on a real server.
#[derive(Clone)]
pub struct SimBackend {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimBackend")
            .field("index", &self.shared.index)
            .field("name", &self.shared.spec.name)
            .field("tier", &self.shared.spec.tier)
            .field("attempts", &self.attempts())
            .finish()
    }
}

impl SimBackend {
    /// A backend that follows `spec` from `epoch` on, drawing from `rng`, with per-second
    /// counters for `seconds` seconds (later calls count in the last second).
    pub fn new(index: usize, spec: BackendSpec, epoch: Instant, seconds: usize, rng: Rng) -> Self {
        let permits = Semaphore::new(spec.capacity.min(Semaphore::MAX_PERMITS));
        let per_second = (0..seconds.max(1)).map(|_| Default::default()).collect();
        Self {
            shared: Arc::new(Shared {
                index,
                spec,
                epoch,
                rng,
                permits,
                waiting: AtomicU64::new(0),
                attempts: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                per_second,
                seen: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Counts this backend's attempts into `seen`, shared by the drill's backends.
    pub(crate) fn track(&self, seen: Arc<Seen>) {
        let _ = self.shared.seen.set(seen);
    }

    /// The backend's position in the scenario.
    pub fn index(&self) -> usize {
        self.shared.index
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.shared.spec.name
    }

    /// The backend's priority tier (0 is the primary).
    pub fn tier(&self) -> u32 {
        self.shared.spec.tier
    }

    /// The backend's zone.
    pub fn zone(&self) -> &str {
        &self.shared.spec.zone
    }

    /// How many calls the backend has received.
    pub fn attempts(&self) -> u64 {
        self.shared.attempts.load(Ordering::Relaxed)
    }

    /// How many calls it has failed.
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// The phase it is in now.
    pub fn phase(&self) -> Phase {
        self.shared.spec.phase_at(self.elapsed()).1
    }

    fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.shared.epoch)
    }
}

/// The response future of a [`SimBackend`].
pub type SimFuture = Pin<Box<dyn Future<Output = Result<SimResponse, BoxError>> + Send>>;

impl Service<SimRequest> for SimBackend {
    type Response = SimResponse;
    type Error = BoxError;
    type Future = SimFuture;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: SimRequest) -> SimFuture {
        if let Some(seen) = self.shared.seen.get() {
            seen.record(req.id);
        }
        let shared = self.shared.clone();
        let t = self.elapsed();
        let second = (t.as_secs() as usize).min(shared.per_second.len() - 1);
        shared.attempts.fetch_add(1, Ordering::Relaxed);
        shared.per_second[second][0].fetch_add(1, Ordering::Relaxed);
        let (since, phase) = shared.spec.phase_at(t);
        let spec = &shared.spec;
        // A hung backend holds the call until the phase ends (forever with no end).
        let hold = match phase {
            Phase::Hang => Some(spec.phase_end(since).map(|end| end.saturating_sub(t))),
            _ => None,
        };
        let (fail, kind, scale) = match phase {
            Phase::Hang => (
                roll(&shared.rng, spec.error_rate),
                SimErrorKind::Failed,
                1.0,
            ),
            Phase::Healthy => (
                roll(&shared.rng, spec.error_rate),
                SimErrorKind::Failed,
                1.0,
            ),
            Phase::Down => (true, SimErrorKind::Down, 1.0),
            Phase::Brownout { error_rate } => (
                roll(&shared.rng, error_rate.max(spec.error_rate)),
                SimErrorKind::Failed,
                1.0,
            ),
            Phase::Slow { factor } => (
                roll(&shared.rng, spec.error_rate),
                SimErrorKind::Failed,
                factor,
            ),
            Phase::Tail { share, factor } => (
                roll(&shared.rng, spec.error_rate),
                SimErrorKind::Failed,
                if roll(&shared.rng, share) {
                    factor
                } else {
                    1.0
                },
            ),
            Phase::Flapping { down, up } => {
                let cycle = (down + up).as_nanos();
                let pos = (t - since).as_nanos() % cycle;
                if pos < down.as_nanos() {
                    (true, SimErrorKind::Down, 1.0)
                } else {
                    (
                        roll(&shared.rng, spec.error_rate),
                        SimErrorKind::Failed,
                        1.0,
                    )
                }
            }
        };
        let service_time = if fail {
            spec.fail_latency
        } else if scale == 1.0 {
            spec.latency.sample(&shared.rng)
        } else {
            spec.latency.scaled(scale).sample(&shared.rng)
        };
        Box::pin(async move {
            let index = shared.index;
            match hold {
                Some(Some(wait)) => tokio::time::sleep(wait).await,
                Some(None) => std::future::pending::<()>().await,
                None => {}
            }
            if fail {
                tokio::time::sleep(service_time).await;
                return Err(failure(&shared, second, kind));
            }
            // Wait for capacity, bounded by the queue.
            let permit = match shared.permits.try_acquire() {
                Ok(p) => p,
                Err(_) => {
                    if shared.waiting.load(Ordering::Relaxed) >= shared.spec.queue as u64 {
                        tokio::time::sleep(shared.spec.fail_latency).await;
                        return Err(failure(&shared, second, SimErrorKind::Overloaded));
                    }
                    let _waiting = Waiting::enter(&shared.waiting);
                    shared
                        .permits
                        .acquire()
                        .await
                        .expect("the semaphore is never closed")
                }
            };
            tokio::time::sleep(service_time).await;
            drop(permit);
            Ok(SimResponse { backend: index })
        })
    }
}

#[inline]
fn roll(rng: &Rng, p: f64) -> bool {
    p > 0.0 && rng.next_f64() < p
}

fn failure(shared: &Shared, second: usize, kind: SimErrorKind) -> BoxError {
    shared.failures.fetch_add(1, Ordering::Relaxed);
    shared.per_second[second][1].fetch_add(1, Ordering::Relaxed);
    Box::new(SimError {
        backend: shared.index,
        kind,
    })
}

/// Counts a call waiting in the queue; leaves the count on drop, so a cancelled call
/// frees its place.
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The simulated backends' protocol classifier: what [`HttpClassifier`] is for HTTP.
///
/// A full queue ([`SimErrorKind::Overloaded`], found anywhere in an error's source
/// chain) is load shedding, [`Outcome::Overloaded`]; every other error is a retryable
/// failure; every response is a success. Give it to the stack under test
/// (`Stack::builder().classifier(SimClassifier)`), so that a backend shedding load is
/// told apart from one that is broken, as an HTTP stack tells a `429` from a `500`.
///
/// [`HttpClassifier`]: https://docs.rs/tower-fortify/latest/tower_fortify/http/struct.HttpClassifier.html
#[derive(Debug, Clone, Copy, Default)]
pub struct SimClassifier;

impl<Res> Classify<Res, crate::BoxError> for SimClassifier {
    type Eos = NeverEos;

    #[inline]
    fn classify(&self, result: Result<&Res, &crate::BoxError>) -> Classified<NeverEos> {
        Classified::Ready(match result {
            Ok(_) => Outcome::Success,
            Err(e) => {
                let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
                let mut outcome = Outcome::RetryableFailure;
                while let Some(err) = current {
                    if let Some(sim) = err.downcast_ref::<SimError>() {
                        if sim.kind == SimErrorKind::Overloaded {
                            outcome = Outcome::Overloaded(ServerHint::None);
                        }
                        break;
                    }
                    current = err.source();
                }
                outcome
            }
        })
    }
}
