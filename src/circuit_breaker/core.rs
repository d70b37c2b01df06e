//! The breaker's state machine: admission, recording and transitions over one state
//! word (`word.rs`), sharded success counters, and a slow-path mutex for everything
//! that only failures and transitions touch (the windows of `window.rs`).

use std::collections::VecDeque;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_utils::atomic::AtomicCell;
use tokio::sync::watch;
use tokio::time::Instant;

use super::config::{Config, OpenPolicy};
use super::error::CircuitOpen;
use super::figures::{Figures, Status};
use super::window::{Bucket, CountWindow, TIME_TICK, TimeWindow};
use super::word::{
    GEN_SHIFT, HALF_OPEN, LOW_MASK, MODE_MASK, OPEN, PHASE_MASK, PROBE_ONE, generation, mode,
    mode_bits, phase, probes, word,
};
use crate::backoff::Rng;
use crate::classify::{Outcome, ServerHint};
use crate::clock::{Epoch, nanos};
use crate::observe::{CircuitBreakerEvent, CircuitState, Event, Listeners, Mode, TripReason};
use crate::shard::{self, Padded, SHARDS};
use crate::sync::{AtomicU32, AtomicU64, Mutex, MutexGuard};

/// The decision to admit a call, carried by its future: the generation it was
/// admitted in (high 32 bits) and its kind (low bits), packed in one word so that it
/// travels in a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admit(u64);

/// Admitted while closed (or disabled): its result is recorded.
const NORMAL: u64 = 0;
/// A half-open probe: holds a probe slot.
const PROBE: u64 = 1;
/// Metrics-only mode admitted a call it would have rejected: nothing is recorded.
const SHADOW: u64 = 2;

impl Admit {
    #[inline]
    fn new(generation: u32, kind: u64) -> Self {
        Self(((generation as u64) << GEN_SHIFT) | kind)
    }

    #[inline]
    fn generation(self) -> u32 {
        (self.0 >> GEN_SHIFT) as u32
    }

    #[inline]
    fn kind(self) -> u64 {
        self.0 & 0b11
    }

    pub(crate) fn is_probe(self) -> bool {
        self.kind() == PROBE
    }
}

/// The settings a running breaker may change ([`Core::retune`]): read under the
/// slow-path lock, except the two the call path reads, which are atomics on `Core`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tunables {
    /// Failures in a row that trip (meaningful when the condition is on).
    pub(crate) consecutive: u32,
    pub(crate) failure_rate: f64,
    /// The slow-call rate that trips (meaningful when slow-call detection is on).
    pub(crate) slow_rate: f64,
    pub(crate) min_calls: u32,
    pub(crate) open: OpenPolicy,
    pub(crate) reset_after: Duration,
    pub(crate) max_hint: Duration,
}

impl Tunables {
    fn of(cfg: &Config) -> Self {
        Self {
            consecutive: cfg.consecutive.unwrap_or(0),
            failure_rate: cfg.failure_rate,
            slow_rate: cfg.slow.map_or(f64::INFINITY, |(_, r)| r),
            min_calls: cfg.min_calls,
            open: cfg.open,
            reset_after: cfg.reset_after,
            max_hint: cfg.max_hint,
        }
    }
}

/// State that only failures, slow calls, probes and transitions touch.
struct Inner {
    tun: Tunables,
    failures_total: u64,
    count: Option<CountWindow>,
    time: Option<TimeWindow>,
    probe_successes: u32,
    trips: u32,
    previous_open: Duration,
    closed_at: u64,
    hint_until: u64,
    /// Events of the current lock hold, delivered to the listener once the lock is
    /// released (a listener may then use the handle). At most three per hold.
    outbox: [Option<CircuitBreakerEvent>; 3],
}

impl Inner {
    fn post(&mut self, event: CircuitBreakerEvent) {
        if let Some(slot) = self.outbox.iter_mut().find(|e| e.is_none()) {
            *slot = Some(event);
        }
    }
}

/// The slow-path lock. Dropping it releases the lock, then delivers the events
/// posted while it was held.
struct Locked<'a> {
    core: &'a Core,
    guard: Option<MutexGuard<'a, Inner>>,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        let events = std::mem::take(&mut guard.outbox);
        drop(guard);
        for event in events.into_iter().flatten() {
            self.core.listeners.emit(|| Event::CircuitBreaker(event));
        }
    }
}

/// One circuit breaker. Shared by every clone of a layer, its services and handles.
pub(crate) struct Core {
    state: Padded<AtomicU64>,
    consecutive: Padded<AtomicU32>,
    open_until: Padded<AtomicU64>,
    /// `open_until` as an instant, for the rejection path: comparing instants costs
    /// less than turning the clock into nanoseconds since the epoch. Read without a
    /// lock (an optimistic sequence-lock read: two 16-byte words are not one atomic).
    open_until_at: AtomicCell<Option<Instant>>,
    successes: [Padded<AtomicU64>; SHARDS],
    /// Probe slots in half-open (a tunable read by admission, without the lock).
    probes: AtomicU32,
    /// The slow-call threshold in nanoseconds (a tunable read by every timed call).
    slow_threshold: AtomicU64,
    inner: Mutex<Inner>,
    /// The configuration built with: its trip conditions and windows are fixed; its
    /// tunable values are the initial ones (the live ones are in `Inner::tun`,
    /// `probes` and `slow_threshold`).
    pub(crate) cfg: Config,
    /// The origin of every time in nanoseconds here, read on first use.
    epoch: Epoch,
    rng: Rng,
    listeners: Listeners,
    status: watch::Sender<Status>,
}

impl Core {
    pub(crate) fn new(cfg: Config, rng: Rng, listeners: Listeners) -> Self {
        let epoch = Epoch::new();
        // The rings grow with the failures (slow calls) in the window, not with its
        // size: a window of a million calls over a healthy backend costs nothing, where
        // reserving its capacity took 16 MB per breaker (per key, for keyed breakers).
        let count = cfg.count_window.map(|n| CountWindow {
            size: n as u64,
            base: 0,
            failures: VecDeque::new(),
            slow: VecDeque::new(),
        });
        let time = cfg.time_window.map(|(d, buckets)| {
            let mut t = TimeWindow {
                width: (nanos(d) / buckets as u64).max(1),
                buckets: vec![Bucket::default(); buckets as usize],
                seen: 0,
                seen_at: 0,
            };
            t.clear(0, 0);
            t
        });
        let (status, _) = watch::channel(Status {
            state: CircuitState::Closed,
            mode: Mode::Automatic,
        });
        Self {
            state: Padded(AtomicU64::new(0)),
            consecutive: Padded(AtomicU32::new(0)),
            open_until: Padded(AtomicU64::new(0)),
            open_until_at: AtomicCell::new(None),
            successes: Default::default(),
            probes: AtomicU32::new(cfg.probes),
            slow_threshold: AtomicU64::new(cfg.slow.map_or(u64::MAX, |(t, _)| nanos(t))),
            inner: Mutex::new(Inner {
                tun: Tunables::of(&cfg),
                failures_total: 0,
                count,
                time,
                probe_successes: 0,
                trips: 0,
                previous_open: Duration::ZERO,
                closed_at: 0,
                hint_until: 0,
                outbox: Default::default(),
            }),
            cfg,
            epoch,
            rng,
            listeners,
            status,
        }
    }

    fn now(&self) -> u64 {
        self.epoch.now()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the slow-path lock for work that may post events.
    fn lock_events(&self) -> Locked<'_> {
        Locked {
            core: self,
            guard: Some(self.lock()),
        }
    }

    fn successes(&self) -> u64 {
        self.successes
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .sum()
    }

    /// Whether slow-call detection is on (the call path then reads the clock).
    #[inline]
    pub(crate) fn times_calls(&self) -> bool {
        self.cfg.slow.is_some()
    }

    /// Admits a call or says why not. Closed and automatic: one atomic load.
    #[inline]
    pub(crate) fn admit(&self) -> Result<Admit, CircuitOpen> {
        let w = self.state.load(Ordering::Acquire);
        if w & LOW_MASK == 0 {
            return Ok(Admit::new(generation(w), NORMAL));
        }
        self.admit_slow(w)
    }

    #[cold]
    #[inline(never)]
    fn admit_slow(&self, mut w: u64) -> Result<Admit, CircuitOpen> {
        loop {
            let normal = Admit::new(generation(w), NORMAL);
            // Compared as bits: the rejection path runs hardest during an outage.
            match w & MODE_MASK {
                m if m == mode_bits(Mode::Disabled) => return Ok(normal),
                m if m == mode_bits(Mode::ForcedOpen) => return Err(self.reject_unknown()),
                _ => {}
            }
            match w & PHASE_MASK {
                OPEN => {
                    let now = Instant::now();
                    if let Some(until) = self.open_until_at.load()
                        && now < until
                    {
                        return self.reject_or_shadow(w, Some((now, until)));
                    }
                    self.to_half_open(w, self.epoch.since(now));
                    w = self.state.load(Ordering::Acquire);
                }
                HALF_OPEN => {
                    if probes(w) < self.probes.load(Ordering::Relaxed) {
                        match self.state.compare_exchange_weak(
                            w,
                            w + PROBE_ONE,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        ) {
                            Ok(_) => return Ok(Admit::new(generation(w), PROBE)),
                            Err(actual) => w = actual,
                        }
                    } else {
                        return self.reject_or_shadow(w, None);
                    }
                }
                _ => return Ok(normal),
            }
        }
    }

    #[inline(always)]
    fn reject_or_shadow(
        &self,
        w: u64,
        open: Option<(Instant, Instant)>,
    ) -> Result<Admit, CircuitOpen> {
        if w & MODE_MASK == mode_bits(Mode::MetricsOnly) {
            let retry_after = open.map(|(now, until)| until.saturating_duration_since(now));
            tracing::trace!(target: "tower_fortify::circuit_breaker", "would reject (metrics only)");
            self.listeners
                .emit(|| Event::CircuitBreaker(CircuitBreakerEvent::WouldReject { retry_after }));
            return Ok(Admit::new(generation(w), SHADOW));
        }
        let name = self.listeners.name_ref().cloned();
        let err = match open {
            Some((now, until)) => CircuitOpen::until(now, until, name),
            None => CircuitOpen::unknown(name),
        };
        Err(self.reject_with(err))
    }

    fn reject_unknown(&self) -> CircuitOpen {
        self.reject_with(CircuitOpen::unknown(self.listeners.name_ref().cloned()))
    }

    #[inline(always)]
    fn reject_with(&self, err: CircuitOpen) -> CircuitOpen {
        tracing::trace!(target: "tower_fortify::circuit_breaker", "call rejected");
        self.listeners.emit(|| {
            Event::CircuitBreaker(CircuitBreakerEvent::Rejected {
                retry_after: err.retry_after(),
            })
        });
        err
    }

    /// Records the outcome of an admitted call. `elapsed` is only given when
    /// slow-call detection is on.
    #[inline]
    pub(crate) fn record(&self, a: Admit, outcome: Outcome, elapsed: Option<Duration>) {
        let slow = match elapsed {
            Some(e) => nanos(e) >= self.slow_threshold.load(Ordering::Relaxed),
            None => false,
        };
        if a.kind() == NORMAL && outcome.is_success() && !slow {
            let w = self.state.load(Ordering::Acquire);
            if generation(w) != a.generation() {
                return;
            }
            if self.cfg.consecutive.is_some() {
                // Read first: a line that is only read is shared between cores
                // without bouncing.
                if self.consecutive.load(Ordering::Relaxed) != 0 {
                    self.consecutive.store(0, Ordering::Relaxed);
                }
            }
            if self.cfg.counts_successes() {
                let n = self.successes[shard::index()].fetch_add(1, Ordering::Relaxed);
                if n % TIME_TICK == TIME_TICK - 1 && self.cfg.time_window.is_some() {
                    self.tick();
                }
            }
            return;
        }
        if a.kind() != SHADOW {
            self.record_slow(a, outcome, slow);
        }
    }

    /// Brings the time window up to date, if nobody else holds the lock. Called every
    /// [`TIME_TICK`] successes of a shard, so that the successes spread over time by
    /// the next update arrived since a recent tick, not since a failure long ago.
    #[cold]
    #[inline(never)]
    fn tick(&self) {
        if let Ok(mut inner) = self.inner.try_lock() {
            let now = self.now();
            let successes = self.successes();
            if let Some(tw) = &mut inner.time {
                tw.update(now, successes);
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn record_slow(&self, a: Admit, outcome: Outcome, slow: bool) {
        let failure = outcome.is_failure();
        let now = self.now();
        let mut inner = self.lock_events();
        let w = self.state.load(Ordering::Acquire);
        if generation(w) != a.generation() {
            return;
        }
        if failure && let ServerHint::RetryAfter(d) = outcome.hint() {
            let d = d.min(inner.tun.max_hint);
            inner.hint_until = now.saturating_add(nanos(d));
        }
        if a.kind() == PROBE {
            if failure || slow {
                self.open(&mut inner, w, now, TripReason::ProbeFailed);
            } else {
                inner.probe_successes += 1;
                if inner.probe_successes >= self.probes.load(Ordering::Relaxed) {
                    self.close(&mut inner, w, now);
                }
            }
            return;
        }
        let mut reason = None;
        if failure {
            inner.failures_total += 1;
            if self.cfg.consecutive.is_some() {
                let k = inner.tun.consecutive;
                let c = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
                if c >= k {
                    reason = Some(TripReason::ConsecutiveFailures);
                }
            }
        } else {
            if self.cfg.counts_successes() {
                self.successes[shard::index()].fetch_add(1, Ordering::Relaxed);
            }
            if self.cfg.consecutive.is_some() {
                self.consecutive.store(0, Ordering::Relaxed);
            }
        }
        let successes = self.successes();
        let total = successes + inner.failures_total;
        let min_calls = inner.tun.min_calls as f64;
        let rate = inner.tun.failure_rate;
        let slow_rate = inner.tun.slow_rate;
        if let Some(cw) = &mut inner.count {
            if failure {
                cw.failures.push_back(total);
            }
            if slow {
                cw.slow.push_back(total);
            }
            cw.prune(total);
            let f = cw.figures(total);
            if f.calls >= min_calls && f.calls > 0.0 {
                if failure && f.failure_rate() >= rate {
                    reason = reason.or(Some(TripReason::CountWindowFailureRate));
                }
                if slow && f.slow_call_rate() >= slow_rate {
                    reason = reason.or(Some(TripReason::SlowCallRate));
                }
            }
        }
        if let Some(tw) = &mut inner.time {
            tw.update(now, successes);
            let b = tw.bucket(now / tw.width);
            if failure {
                b.calls += 1.0;
                b.failures += 1;
            }
            if slow {
                b.slow += 1;
            }
            let f = tw.figures(now);
            if f.calls + 1e-9 >= min_calls && f.calls > 0.0 {
                if failure && f.failure_rate() + 1e-9 >= rate {
                    reason = reason.or(Some(TripReason::TimeWindowFailureRate));
                }
                if slow && f.slow_call_rate() + 1e-9 >= slow_rate {
                    reason = reason.or(Some(TripReason::SlowCallRate));
                }
            }
        }
        if let Some(reason) = reason
            && mode(w) != Mode::Disabled
        {
            self.open(&mut inner, w, now, reason);
        }
    }

    /// Gives back the probe slot of a probe whose future was dropped.
    pub(crate) fn release_probe(&self, a: Admit) {
        let mut w = self.state.load(Ordering::Acquire);
        while generation(w) == a.generation() && w & PHASE_MASK == HALF_OPEN && probes(w) > 0 {
            match self.state.compare_exchange_weak(
                w,
                w - PROBE_ONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => w = actual,
            }
        }
    }

    fn clear_windows(&self, inner: &mut Inner, now: u64) {
        let successes = self.successes();
        let total = successes + inner.failures_total;
        if let Some(cw) = &mut inner.count {
            cw.base = total;
            cw.failures.clear();
            cw.slow.clear();
        }
        if let Some(tw) = &mut inner.time {
            tw.clear(now, successes);
        }
        inner.probe_successes = 0;
        self.consecutive.store(0, Ordering::Relaxed);
    }

    fn set(&self, inner: &mut Inner, w: u64, to: CircuitState, m: Mode, now: u64) {
        self.clear_windows(inner, now);
        let next = word(to, m, generation(w).wrapping_add(1));
        self.state.store(next, Ordering::Release);
        let from = phase(w);
        if from != to {
            let name = self.listeners.name();
            match to {
                // The open transition is logged by `open` with its reason.
                CircuitState::Open => {}
                CircuitState::HalfOpen => tracing::info!(
                    target: "tower_fortify::circuit_breaker",
                    name,
                    from = from.as_str(),
                    "circuit breaker half-open: probing"
                ),
                CircuitState::Closed => tracing::info!(
                    target: "tower_fortify::circuit_breaker",
                    name,
                    from = from.as_str(),
                    "circuit breaker closed"
                ),
            }
            if self.listeners.is_active() {
                inner.post(CircuitBreakerEvent::StateChanged { from, to });
            }
        }
        if mode(w) != m {
            tracing::info!(
                target: "tower_fortify::circuit_breaker",
                name = self.listeners.name(),
                mode = m.as_str(),
                "circuit breaker mode changed"
            );
            if self.listeners.is_active() {
                inner.post(CircuitBreakerEvent::ModeChanged { mode: m });
            }
        }
        self.status.send_if_modified(|s| {
            let new = Status { state: to, mode: m };
            let changed = *s != new;
            *s = new;
            changed
        });
    }

    fn open(&self, inner: &mut Inner, w: u64, now: u64, reason: TripReason) {
        if phase(w) == CircuitState::Closed
            && now.saturating_sub(inner.closed_at) >= nanos(inner.tun.reset_after)
        {
            inner.trips = 0;
            inner.previous_open = Duration::ZERO;
        }
        inner.trips = inner.trips.saturating_add(1);
        let d = match &inner.tun.open {
            OpenPolicy::Fixed(d) => *d,
            // The backoff's jitter, bounded to ±10 % of its raw delay: an open time
            // drawn over the whole of 0..d (full jitter) would reopen the breaker
            // after a few milliseconds and spend its probes for nothing.
            OpenPolicy::Backoff(b) => {
                let raw = b.raw_delay(inner.trips);
                b.delay(inner.trips, inner.previous_open, &self.rng)
                    .clamp(raw.mul_f64(0.9), raw.mul_f64(1.1))
            }
        };
        inner.previous_open = d;
        let mut until = now.saturating_add(nanos(d));
        if inner.hint_until > until {
            until = inner.hint_until;
        }
        inner.hint_until = 0;
        self.open_until_at.store(Some(self.epoch.instant(until)));
        self.open_until.store(until, Ordering::Release);
        let open_for = Duration::from_nanos(until - now);
        tracing::warn!(
            target: "tower_fortify::circuit_breaker",
            name = self.listeners.name(),
            reason = reason.as_str(),
            open_ms = open_for.as_millis() as u64,
            "circuit breaker opened"
        );
        if self.listeners.is_active() {
            inner.post(CircuitBreakerEvent::Opened { reason, open_for });
        }
        self.set(inner, w, CircuitState::Open, mode(w), now);
    }

    fn close(&self, inner: &mut Inner, w: u64, now: u64) {
        inner.closed_at = now;
        inner.hint_until = 0;
        self.set(inner, w, CircuitState::Closed, mode(w), now);
    }

    fn to_half_open(&self, seen: u64, now: u64) {
        let mut inner = self.lock_events();
        let w = self.state.load(Ordering::Acquire);
        if w != seen || now < self.open_until.load(Ordering::Acquire) {
            return;
        }
        self.set(&mut inner, w, CircuitState::HalfOpen, mode(w), now);
    }

    // --- handle operations ---

    /// Changes the tunable settings, keeping the state, the windows and the trip
    /// history: the next decision uses the new values.
    pub(crate) fn retune(&self, tun: Tunables, probes: u32, slow_threshold: Option<Duration>) {
        let mut inner = self.lock();
        inner.tun = tun;
        self.probes.store(probes, Ordering::Relaxed);
        if let Some(t) = slow_threshold {
            self.slow_threshold.store(nanos(t), Ordering::Relaxed);
        }
    }

    pub(crate) fn status(&self) -> Status {
        let w = self.state.load(Ordering::Acquire);
        Status {
            state: phase(w),
            mode: mode(w),
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    pub(crate) fn set_mode(&self, m: Mode) {
        let now = self.now();
        let mut inner = self.lock_events();
        let w = self.state.load(Ordering::Acquire);
        let to = match m {
            // Disabled holds the breaker closed; forced open keeps the automatic state
            // underneath for when the mode is lifted.
            Mode::Disabled => CircuitState::Closed,
            _ => phase(w),
        };
        if mode(w) == m && phase(w) == to {
            return;
        }
        if to == CircuitState::Closed && phase(w) != CircuitState::Closed {
            inner.closed_at = now;
        }
        self.set(&mut inner, w, to, m, now);
    }

    pub(crate) fn force_closed(&self) {
        let now = self.now();
        let mut inner = self.lock_events();
        let w = self.state.load(Ordering::Acquire);
        inner.closed_at = now;
        self.set(&mut inner, w, CircuitState::Closed, Mode::Automatic, now);
    }

    pub(crate) fn reset(&self) {
        let now = self.now();
        let mut inner = self.lock_events();
        let w = self.state.load(Ordering::Acquire);
        inner.closed_at = now;
        inner.trips = 0;
        inner.previous_open = Duration::ZERO;
        inner.hint_until = 0;
        self.set(&mut inner, w, CircuitState::Closed, Mode::Automatic, now);
    }

    pub(crate) fn figures(&self) -> Figures {
        let now = self.now();
        let mut inner = self.lock();
        let successes = self.successes();
        let total = successes + inner.failures_total;
        let trips = inner.trips;
        let count_window = inner.count.as_mut().map(|cw| {
            cw.prune(total);
            cw.figures(total)
        });
        let time_window = inner.time.as_mut().map(|tw| {
            tw.update(now, successes);
            tw.figures(now)
        });
        Figures {
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            count_window,
            time_window,
            consecutive_trips: trips,
        }
    }

    /// When an open breaker may admit again.
    pub(crate) fn open_until(&self) -> Option<Instant> {
        let w = self.state.load(Ordering::Acquire);
        (phase(w) == CircuitState::Open)
            .then(|| self.epoch.instant(self.open_until.load(Ordering::Acquire)))
    }

    pub(crate) fn probes_admitted(&self) -> u32 {
        let w = self.state.load(Ordering::Acquire);
        if w & PHASE_MASK == HALF_OPEN {
            probes(w)
        } else {
            0
        }
    }
}

/// loom models of probe admission and of the generation check. Run with
/// `RUSTFLAGS="--cfg tower_fortify_loom" cargo test --release --lib loom`.
#[cfg(all(test, tower_fortify_loom))]
mod loom_models {
    use super::*;

    fn config(probes: u32) -> Config {
        Config {
            consecutive: Some(1),
            count_window: None,
            time_window: None,
            failure_rate: 0.5,
            slow: None,
            min_calls: 1,
            // Far longer than a model runs: an open breaker stays open.
            open: OpenPolicy::Fixed(Duration::from_secs(3600)),
            reset_after: Duration::from_secs(3600),
            max_hint: Duration::from_secs(1),
            probes,
        }
    }

    fn core(probes: u32) -> loom::sync::Arc<Core> {
        loom::sync::Arc::new(Core::new(
            config(probes),
            Rng::seeded(1),
            Listeners::default(),
        ))
    }

    impl Core {
        /// Puts the breaker in half-open now, as the end of an open period would.
        fn half_open_now(&self) {
            let now = self.now();
            let mut inner = self.lock_events();
            let w = self.state.load(Ordering::Acquire);
            self.set(&mut inner, w, CircuitState::HalfOpen, mode(w), now);
        }
    }

    /// Two callers race for the one probe slot of a half-open breaker: exactly one
    /// gets it, and its success closes the breaker.
    #[test]
    fn loom_one_probe_slot_admits_exactly_one_probe() {
        loom::model(|| {
            let core = core(1);
            core.half_open_now();
            let other = core.clone();
            let t = loom::thread::spawn(move || {
                let a = other.admit().ok();
                if let Some(a) = a {
                    other.record(a, Outcome::Success, None);
                }
                a.is_some_and(Admit::is_probe)
            });
            let a = core.admit().ok();
            if let Some(a) = a {
                core.record(a, Outcome::Success, None);
            }
            let mine = a.is_some_and(Admit::is_probe);
            let theirs = t.join().unwrap();
            // The other caller is rejected, or admitted as a normal call once the
            // probe closed the breaker.
            assert!(mine != theirs, "exactly one probe");
            assert_eq!(core.status().state, CircuitState::Closed);
            assert_eq!(core.probes_admitted(), 0);
        });
    }

    /// A call admitted before the breaker opened reports its success after: the
    /// generation check drops it, so it neither closes the breaker nor clears the
    /// failure run of the new period.
    #[test]
    fn loom_a_late_success_from_an_old_generation_changes_nothing() {
        loom::model(|| {
            let core = core(1);
            let early = core.admit().expect("closed");
            let other = core.clone();
            let t = loom::thread::spawn(move || {
                let a = other.admit().expect("closed until the failure lands");
                other.record(a, Outcome::RetryableFailure, None);
            });
            core.record(early, Outcome::Success, None);
            t.join().unwrap();
            assert_eq!(core.status().state, CircuitState::Open);
            assert!(core.admit().is_err());
        });
    }

    /// A probe dropped (its slot given back) while another caller asks for the slot:
    /// the count of probes in flight is exact afterwards.
    #[test]
    fn loom_a_released_probe_slot_is_counted_exactly() {
        loom::model(|| {
            let core = core(1);
            core.half_open_now();
            let first = core.admit().expect("the one slot");
            let other = core.clone();
            let t = loom::thread::spawn(move || other.admit().ok());
            core.release_probe(first);
            let second = t.join().unwrap();
            assert_eq!(core.probes_admitted(), u32::from(second.is_some()));
            if let Some(a) = second {
                core.release_probe(a);
            }
            assert_eq!(core.probes_admitted(), 0);
            assert!(core.admit().is_ok(), "the slot is free again");
        });
    }
}
