//! Shared health state: per-backend counters, ejection, the outlier sweep.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::config::{Config, Selection};
use crate::classify::{Outcome, ServerHint};
use crate::clock::{Epoch, micros, nanos};
use crate::observe::{EjectReason, Event, FailoverEvent, Listeners};
use crate::rng::Rng;
use crate::shard::Padded;

/// Failures count as cost in the load-aware selection: the n-th failure in a row adds
/// `FAILURE_COST × n` to the backend's penalty, which the power of two choices adds to
/// its calls in flight. Each time the backend loses a comparison while it has a
/// penalty, the penalty shrinks by one, and a success clears it: a backend that fails
/// fast does not look cheap, and one that failed once is not starved forever.
pub(crate) const FAILURE_COST: u32 = 4;

/// The largest penalty.
const MAX_PENALTY: u32 = 10_000;

/// Counters every call to a backend writes: kept together on the backend's own lines.
///
/// They are not split into per-thread shards like the retry layer's counters: the
/// selection reads `in_flight` (and the penalty) of two backends on every call, and
/// summing shards there would cost more than the sharing it saves. Traffic spreads over
/// the backends, so two threads only meet on a line when they pick the same backend.
#[derive(Default)]
pub(crate) struct Hot {
    pub(crate) in_flight: AtomicU32,
    pub(crate) consecutive: AtomicU32,
    pub(crate) penalty: AtomicU32,
    pub(crate) successes: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// Sum of call latencies in microseconds, and how many calls were timed.
    pub(crate) latency_us: AtomicU64,
    pub(crate) timed: AtomicU64,
    /// Peak-EWMA latency estimate (f64 nanoseconds, as bits) and when it was updated.
    pub(crate) ewma: AtomicU64,
    pub(crate) ewma_at: AtomicU64,
}

/// State written rarely: ejections, probes, the sweep's snapshot.
#[derive(Default)]
pub(crate) struct Cold {
    /// Nanoseconds since the pool's origin until which the backend is ejected; 0 if
    /// never ejected. A value in the past means the ejection ended.
    pub(crate) ejected_until: AtomicU64,
    /// Nanoseconds since the pool's origin until which the backend is held out at its
    /// own (or its breaker's) request: a server hint or an open circuit breaker. Not an
    /// ejection: no failure is counted, and panic routing does not override it.
    pub(crate) held_until: AtomicU64,
    /// When the last ejection began (ns), for the decay of `times_ejected`.
    pub(crate) ejected_at: AtomicU64,
    pub(crate) times_ejected: AtomicU32,
    pub(crate) ejections: AtomicU64,
    /// Set by an ejection, cleared by the first success after it.
    pub(crate) probation: AtomicBool,
    pub(crate) manual: AtomicBool,
    /// Verdict of the active health check (true when none is configured).
    pub(crate) probe_ok: AtomicBool,
    pub(crate) probe_streak: AtomicU32,
    pub(crate) removed: AtomicBool,
    /// The sweep's snapshot of the hot counters.
    pub(crate) seen_successes: AtomicU64,
    pub(crate) seen_failures: AtomicU64,
    pub(crate) seen_latency_us: AtomicU64,
    pub(crate) seen_timed: AtomicU64,
}

/// One backend's identity and health, shared by every router clone and in-flight call.
pub(crate) struct Node {
    pub(crate) hot: Padded<Hot>,
    pub(crate) cold: Cold,
    pub(crate) id: Arc<str>,
    pub(crate) serial: u64,
    /// Its tier and weight: atomics, so that a handle can change them while calls
    /// run ([`FailoverHandle::set_tier`](super::FailoverHandle::set_tier)).
    pub(crate) tier: AtomicU32,
    pub(crate) weight: AtomicU32,
    /// The breaker in front of the backend, if the router was told of one.
    #[cfg(feature = "circuit-breaker")]
    pub(crate) breaker: Option<crate::circuit_breaker::CircuitBreakerHandle>,
}

impl Node {
    pub(crate) fn new(id: Arc<str>, serial: u64, tier: u32, weight: u32) -> Self {
        let node = Self {
            hot: Padded(Hot::default()),
            cold: Cold::default(),
            id,
            serial,
            tier: AtomicU32::new(tier),
            weight: AtomicU32::new(weight),
            #[cfg(feature = "circuit-breaker")]
            breaker: None,
        };
        node.cold.probe_ok.store(true, Ordering::Relaxed);
        node
    }

    /// Its weight now (at least 1).
    #[inline]
    pub(crate) fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Its tier now.
    #[inline]
    pub(crate) fn tier(&self) -> u32 {
        self.tier.load(Ordering::Relaxed)
    }

    pub(crate) fn with_rtt(self, rtt: f64, now: u64) -> Self {
        self.hot.ewma.store(rtt.to_bits(), Ordering::Relaxed);
        self.hot.ewma_at.store(now, Ordering::Relaxed);
        self
    }

    /// Peak-EWMA cost at `now`: the decayed latency estimate × (calls in flight + 1 +
    /// penalty) ÷ weight.
    #[inline]
    pub(crate) fn ewma_cost(&self, now: u64, decay_ns: f64) -> f64 {
        let hot = &self.hot;
        let rtt = f64::from_bits(hot.ewma.load(Ordering::Relaxed));
        let at = hot.ewma_at.load(Ordering::Relaxed);
        let elapsed = now.saturating_sub(at) as f64;
        let estimate = rtt * (-elapsed / decay_ns).exp();
        let in_flight = hot.in_flight.load(Ordering::Relaxed) as f64;
        let penalty = hot.penalty.load(Ordering::Relaxed) as f64;
        (estimate + 1.0) * (in_flight + 1.0 + penalty) / self.weight() as f64
    }

    /// Folds one measured latency into the peak-EWMA estimate.
    #[inline]
    fn observe_rtt(&self, rtt: f64, now: u64, decay_ns: f64) {
        let hot = &self.hot;
        let prev = f64::from_bits(hot.ewma.load(Ordering::Relaxed));
        let at = hot.ewma_at.load(Ordering::Relaxed);
        let next = if rtt > prev {
            rtt
        } else {
            let w = (-(now.saturating_sub(at) as f64) / decay_ns).exp();
            prev * w + rtt * (1.0 - w)
        };
        hot.ewma.store(next.to_bits(), Ordering::Relaxed);
        hot.ewma_at.store(now, Ordering::Relaxed);
    }

    /// Whether an outlier ejection is in force at `now`.
    #[inline]
    pub(crate) fn is_ejected(&self, now: u64) -> bool {
        self.cold.ejected_until.load(Ordering::Acquire) > now
    }

    /// Whether a hold-off (a server hint, an open breaker) is in force at `now`.
    #[inline]
    pub(crate) fn is_held(&self, now: u64) -> bool {
        self.cold.held_until.load(Ordering::Acquire) > now
    }

    /// Whether it is out of rotation at `now` by an ejection or a hold-off: what the
    /// maximum ejected share counts.
    #[inline]
    pub(crate) fn is_out(&self, now: u64) -> bool {
        self.is_ejected(now) || self.is_held(now)
    }

    /// Whether routing may send to it at `now`.
    #[inline]
    pub(crate) fn is_eligible(&self, now: u64) -> bool {
        !self.is_ejected(now) && !self.is_held(now) && self.is_member()
    }

    /// Whether panic routing may send to it at `now`: a member that is not held off
    /// and whose breaker (if the router knows it) is not open. Panic overrides the
    /// outlier detector's guesses, never a backend's own "not now" (an open breaker
    /// would only reject the call).
    #[inline]
    pub(crate) fn is_panic_eligible(&self, now: u64) -> bool {
        !self.is_held(now) && self.is_member() && !self.breaker_in_charge(true)
    }

    /// Whether the backend's own breaker is judging it now: not closed (or, with
    /// `open_only`, open), so the router leaves its failures to the breaker.
    #[inline]
    pub(crate) fn breaker_in_charge(&self, open_only: bool) -> bool {
        #[cfg(feature = "circuit-breaker")]
        if let Some(b) = &self.breaker {
            use crate::circuit_breaker::{CircuitState, Mode};
            let status = b.status();
            return match (status.mode, status.state) {
                (Mode::ForcedOpen, _) => true,
                (Mode::Disabled | Mode::MetricsOnly, _) => false,
                (_, CircuitState::Closed) => false,
                (_, CircuitState::Open) => true,
                (_, CircuitState::HalfOpen) => !open_only,
            };
        }
        let _ = open_only;
        false
    }

    /// Not removed, not disabled by hand, passing its health checks: a backend that
    /// panic routing may still use.
    #[inline]
    pub(crate) fn is_member(&self) -> bool {
        !self.cold.removed.load(Ordering::Acquire)
            && !self.cold.manual.load(Ordering::Acquire)
            && self.cold.probe_ok.load(Ordering::Acquire)
    }

    /// The cost the load-aware selection compares: calls in flight plus the failure
    /// penalty, per unit of weight.
    #[inline]
    pub(crate) fn cost(&self) -> u64 {
        let in_flight = self.hot.in_flight.load(Ordering::Relaxed) as u64;
        let penalty = self.hot.penalty.load(Ordering::Relaxed) as u64;
        ((in_flight + 1 + penalty) << 16) / self.weight() as u64
    }

    /// It lost a comparison: its penalty, if any, shrinks by one.
    #[inline]
    pub(crate) fn passed_over(&self) {
        let penalty = &self.hot.penalty;
        if penalty.load(Ordering::Relaxed) != 0 {
            let _ =
                penalty.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| p.checked_sub(1));
        }
    }

    /// `times_ejected` after its decay: one step per base ejection time spent healthy
    /// since the last ejection ended.
    pub(crate) fn effective_times(&self, now: u64, base: Duration) -> u32 {
        let times = self.cold.times_ejected.load(Ordering::Relaxed);
        let until = self.cold.ejected_until.load(Ordering::Relaxed);
        if times == 0 || until == 0 || until > now {
            return times;
        }
        let healthy = now - until;
        let steps = healthy / nanos(base).max(1);
        times.saturating_sub(steps.min(u32::MAX as u64) as u32)
    }
}

/// What an ejection attempt decided.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Verdict {
    /// Already ejected or removed.
    Nothing,
    /// The maximum ejected share was reached.
    Skipped,
    /// Ejected for this long.
    Ejected(Duration),
}

/// What the router and its response futures share, whatever the backend type.
pub(crate) struct Pool {
    pub(crate) cfg: Config,
    /// The origin of every time in nanoseconds here, read on first use.
    pub(crate) origin: Epoch,
    pub(crate) nodes: Mutex<Vec<Arc<Node>>>,
    /// Bumped whenever membership changes.
    pub(crate) epoch: AtomicU64,
    /// Bumped whenever a backend's eligibility changes (other than by time passing).
    pub(crate) version: AtomicU64,
    pub(crate) next_sweep: AtomicU64,
    pub(crate) sweep: Mutex<()>,
    pub(crate) serials: AtomicU64,
    pub(crate) listeners: Listeners,
    pub(crate) rng: Rng,
}

impl Pool {
    pub(crate) fn new(cfg: Config, listeners: Listeners, rng: Rng) -> Self {
        Self {
            next_sweep: AtomicU64::new(nanos(cfg.interval)),
            cfg,
            origin: Epoch::new(),
            nodes: Mutex::new(Vec::new()),
            epoch: AtomicU64::new(0),
            version: AtomicU64::new(0),
            sweep: Mutex::new(()),
            serials: AtomicU64::new(0),
            listeners,
            rng,
        }
    }

    /// Nanoseconds since the pool's origin; never 0.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.ns(Instant::now())
    }

    #[inline]
    pub(crate) fn ns(&self, at: Instant) -> u64 {
        self.origin.since(at).max(1)
    }

    pub(crate) fn instant(&self, ns: u64) -> Instant {
        self.origin.instant(ns)
    }

    pub(crate) fn lock_nodes(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Node>>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn bump(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Records the outcome of one call; `elapsed` if it was timed.
    #[inline]
    pub(crate) fn record(
        &self,
        node: &Node,
        outcome: Outcome,
        elapsed: Option<(Instant, Instant)>,
    ) {
        let hot = &node.hot;
        self.listeners.emit_per_call(|| {
            Event::Failover(FailoverEvent::Attempt {
                backend: node.id.clone(),
                success: outcome.is_success(),
                latency: elapsed.map(|(start, end)| end.saturating_duration_since(start)),
            })
        });
        if let Outcome::Overloaded(ServerHint::RetryAfter(wait)) = outcome {
            // "Come back after `wait`": a backend shedding load or a breaker in front of
            // it that is open. Hold it out of rotation that long; it is not an outlier,
            // so its failure run, probation and ejection count stay as they are.
            self.hold_off(node, wait);
        } else if outcome.is_success() {
            hot.successes.fetch_add(1, Ordering::Relaxed);
            if hot.consecutive.load(Ordering::Relaxed) != 0 {
                hot.consecutive.store(0, Ordering::Relaxed);
                hot.penalty.store(0, Ordering::Relaxed);
            }
            if node.cold.probation.load(Ordering::Relaxed)
                && node.cold.probation.swap(false, Ordering::Relaxed)
            {
                tracing::info!(
                    target: "tower_fortify::failover",
                    name = self.listeners.name(),
                    backend = &*node.id,
                    "backend back in rotation: first success after its ejection"
                );
                self.listeners.emit(|| {
                    Event::Failover(FailoverEvent::Restored {
                        backend: node.id.clone(),
                    })
                });
            }
        } else if !node.breaker_in_charge(false) {
            hot.failures.fetch_add(1, Ordering::Relaxed);
            let run = hot.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
            self.on_failure(node, run);
        }
        let now = match elapsed {
            Some((start, end)) => {
                let took = end.saturating_duration_since(start);
                let now = self.ns(end);
                if self.cfg.latency_factor.is_some() {
                    hot.latency_us.fetch_add(micros(took), Ordering::Relaxed);
                    hot.timed.fetch_add(1, Ordering::Relaxed);
                }
                if let Selection::PeakEwma { decay, .. } = self.cfg.selection {
                    node.observe_rtt(nanos_f64(took), now, nanos_f64(decay));
                }
                now
            }
            None if self.cfg.needs_sweep() => self.now(),
            None => return,
        };
        if now >= self.next_sweep.load(Ordering::Relaxed) {
            self.sweep(now);
        }
    }

    /// Takes `node` out of rotation for `wait` (at most the maximum server delay),
    /// without counting an ejection. A hold-off counts towards the maximum ejected
    /// share like an ejection: a hint that would take one backend too many out is
    /// skipped (one that lengthens a hold-off or an ejection in force is not), so a
    /// fleet-wide `429` cannot empty the pool and, with fail-fast panic mode, reject
    /// every call for the hint's duration.
    #[cold]
    fn hold_off(&self, node: &Node, wait: Duration) {
        let wait = wait.min(self.cfg.max_server_delay());
        if wait.is_zero() {
            return;
        }
        let now = self.now();
        let until = now.saturating_add(nanos(wait)).max(1);
        if node.is_ejected(now) || node.is_held(now) {
            if node.cold.held_until.fetch_max(until, Ordering::AcqRel) < until {
                self.bump();
            }
            return;
        }
        // Counted and stored under the node list's lock, as `eject` does, so that two
        // hold-offs at once cannot both take the last share.
        let nodes = self.lock_nodes();
        if node.cold.removed.load(Ordering::Relaxed) {
            return;
        }
        let out = nodes.iter().filter(|n| n.is_out(now)).count();
        if out + 1 > self.max_ejected(nodes.len()) {
            drop(nodes);
            tracing::debug!(
                target: "tower_fortify::failover",
                name = self.listeners.name(),
                backend = &*node.id,
                "server hint ignored: maximum ejected share reached"
            );
            return;
        }
        if node.cold.held_until.fetch_max(until, Ordering::AcqRel) < until {
            self.bump();
        }
    }

    /// How many of `members` backends may be out of rotation at once.
    fn max_ejected(&self, members: usize) -> usize {
        (members as f64 * self.cfg.max_ejection_percent / 100.0).floor() as usize
    }

    #[cold]
    fn on_failure(&self, node: &Node, run: u32) {
        let add = FAILURE_COST.saturating_mul(run);
        let _ = node
            .hot
            .penalty
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(p.saturating_add(add).min(MAX_PENALTY))
            });
        let probation = node.cold.probation.load(Ordering::Relaxed);
        let limit = self.cfg.consecutive_failures;
        // At the limit, and again every `limit` failures after it if the ejection was
        // skipped (maximum ejected share): a total outage does not take the lock on
        // every failure.
        if probation || limit.is_some_and(|l| run >= l && (run - l).is_multiple_of(l)) {
            let now = self.now();
            if node.is_ejected(now) {
                return;
            }
            let reason = if probation {
                EjectReason::Probation
            } else {
                EjectReason::ConsecutiveFailures
            };
            let verdict = self.eject(&self.lock_nodes(), node, now);
            self.report(node, reason, verdict);
        }
    }

    /// A failed `poll_ready` counts as a failed call.
    pub(crate) fn record_not_ready_error(&self, node: &Node) {
        if node.breaker_in_charge(false) {
            return;
        }
        node.hot.failures.fetch_add(1, Ordering::Relaxed);
        let run = node.hot.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        self.on_failure(node, run);
    }

    /// Ejects `node` unless the maximum ejected share is reached. Call with the node
    /// list locked; report the verdict with [`report`](Self::report) once it is
    /// unlocked (a listener may use the handle).
    pub(crate) fn eject(&self, nodes: &[Arc<Node>], node: &Node, now: u64) -> Verdict {
        if node.is_ejected(now) || node.cold.removed.load(Ordering::Relaxed) {
            return Verdict::Nothing;
        }
        let members = nodes.len();
        // Held-off backends are out of rotation too: they count towards the share.
        let ejected = nodes.iter().filter(|n| n.is_out(now)).count();
        if ejected + 1 > self.max_ejected(members) {
            return Verdict::Skipped;
        }
        let times = node.effective_times(now, self.cfg.base_ejection) + 1;
        let duration = self
            .cfg
            .base_ejection
            .saturating_mul(times)
            .min(self.cfg.max_ejection);
        let cold = &node.cold;
        cold.times_ejected.store(times, Ordering::Relaxed);
        cold.ejected_at.store(now, Ordering::Relaxed);
        cold.ejections.fetch_add(1, Ordering::Relaxed);
        cold.probation.store(true, Ordering::Relaxed);
        cold.ejected_until.store(
            now.saturating_add(nanos(duration)).max(1),
            Ordering::Release,
        );
        self.bump();
        Verdict::Ejected(duration)
    }

    /// Logs and emits what [`eject`](Self::eject) decided.
    pub(crate) fn report(&self, node: &Node, reason: EjectReason, verdict: Verdict) {
        match verdict {
            Verdict::Nothing => {}
            Verdict::Skipped => {
                tracing::debug!(
                    target: "tower_fortify::failover",
                    name = self.listeners.name(),
                    backend = &*node.id,
                    reason = reason.as_str(),
                    "ejection skipped: maximum ejected share reached"
                );
                self.listeners.emit(|| {
                    Event::Failover(FailoverEvent::EjectionSkipped {
                        backend: node.id.clone(),
                        reason,
                    })
                });
            }
            Verdict::Ejected(duration) => {
                tracing::warn!(
                    target: "tower_fortify::failover",
                    name = self.listeners.name(),
                    backend = &*node.id,
                    reason = reason.as_str(),
                    duration_ms = micros(duration) / 1000,
                    "backend ejected"
                );
                self.listeners.emit(|| {
                    Event::Failover(FailoverEvent::Ejected {
                        backend: node.id.clone(),
                        reason,
                        duration,
                    })
                });
            }
        }
    }

    /// The interval's outlier analysis: failure rate, relative success rate, latency.
    #[cold]
    pub(crate) fn sweep(&self, now: u64) {
        let Ok(_guard) = self.sweep.try_lock() else {
            return;
        };
        if now < self.next_sweep.load(Ordering::Relaxed) {
            return;
        }
        self.next_sweep.store(
            now.saturating_add(nanos(self.cfg.interval)),
            Ordering::Relaxed,
        );
        let nodes = self.lock_nodes();
        // (node, calls, success rate, mean latency in µs if timed enough)
        let mut stats: Vec<(usize, u64, f64, Option<f64>)> = Vec::with_capacity(nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            let (hot, cold) = (&n.hot, &n.cold);
            let ok = hot.successes.load(Ordering::Relaxed);
            let fail = hot.failures.load(Ordering::Relaxed);
            let lat = hot.latency_us.load(Ordering::Relaxed);
            let timed = hot.timed.load(Ordering::Relaxed);
            let d_ok = ok - cold.seen_successes.swap(ok, Ordering::Relaxed).min(ok);
            let d_fail = fail - cold.seen_failures.swap(fail, Ordering::Relaxed).min(fail);
            let d_lat = lat - cold.seen_latency_us.swap(lat, Ordering::Relaxed).min(lat);
            let d_timed = timed - cold.seen_timed.swap(timed, Ordering::Relaxed).min(timed);
            let calls = d_ok + d_fail;
            if calls < self.cfg.min_requests as u64 || n.is_ejected(now) {
                continue;
            }
            let mean =
                (d_timed >= self.cfg.min_requests as u64).then(|| d_lat as f64 / d_timed as f64);
            stats.push((i, calls, d_ok as f64 / calls as f64, mean));
        }
        let mut verdicts: Vec<(usize, EjectReason)> = Vec::new();
        if let Some(threshold) = self.cfg.failure_rate {
            for &(i, _, sr, _) in &stats {
                if 1.0 - sr >= threshold {
                    verdicts.push((i, EjectReason::FailureRate));
                }
            }
        }
        if let Some(drop) = self.cfg.success_rate_drop
            && stats.len() >= self.cfg.min_hosts as usize
        {
            let median = median(stats.iter().map(|s| s.2));
            for &(i, _, sr, _) in &stats {
                if sr < median - drop {
                    verdicts.push((i, EjectReason::SuccessRate));
                }
            }
        }
        if let Some(factor) = self.cfg.latency_factor {
            let timed: Vec<(usize, f64)> =
                stats.iter().filter_map(|s| s.3.map(|m| (s.0, m))).collect();
            if timed.len() >= self.cfg.min_hosts as usize {
                let median = median(timed.iter().map(|t| t.1));
                for &(i, mean) in &timed {
                    if mean > factor * median.max(1.0) {
                        verdicts.push((i, EjectReason::Latency));
                    }
                }
            }
        }
        let decided: Vec<(Arc<Node>, EjectReason, Verdict)> = verdicts
            .into_iter()
            .map(|(i, reason)| (nodes[i].clone(), reason, self.eject(&nodes, &nodes[i], now)))
            .collect();
        drop(nodes);
        for (node, reason, verdict) in decided {
            self.report(&node, reason, verdict);
        }
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A duration in nanoseconds as an `f64`, without the 128-bit integer conversion that
/// `as_nanos() as f64` costs (a software routine of about 130 instructions, on every
/// call that chooses a backend or records a latency).
#[inline]
pub(crate) fn nanos_f64(d: Duration) -> f64 {
    d.as_secs() as f64 * 1e9 + f64::from(d.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert_eq!(median(std::iter::empty()), 0.0);
    }
}
