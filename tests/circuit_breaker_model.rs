//! A reference model of the breaker, driven side by side with the real one through
//! the same random sequence of outcomes, call durations (pending calls completed
//! after time advances), cancellations and time advances (paused time). They must
//! agree on every admit/reject decision and on the state after every step. The
//! configurations cover consecutive failures, the count window with failure and
//! slow-call rates, minimum calls, probes, and fixed or growing open durations.
#![cfg(feature = "circuit-breaker")]

use std::time::Duration;

use proptest::prelude::*;
use tokio::sync::oneshot;
use tokio_test::task::{self, Spawn};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::circuit_breaker::error::{BreakerError, CircuitOpen};
use tower_fortify::circuit_breaker::{CircuitBreakerLayer, CircuitState};

#[derive(Debug, Clone)]
struct Cfg {
    consecutive: Option<u32>,
    window: Option<u32>,
    min_calls: u32,
    rate: f64,
    probes: u32,
    open_ms: u64,
    /// Slow-call threshold (ms) and rate; only with a count window.
    slow: Option<(u64, f64)>,
    /// Growing open duration: doubles from `open_ms` up to 4 × `open_ms`, reset
    /// after `reset_ms` closed.
    growing: Option<u64>,
}

#[derive(Debug, Clone)]
enum Op {
    /// A call that completes at once with this outcome (true = success).
    Call(bool),
    /// A call that stays pending.
    Start,
    /// Complete the pending call at this index (modulo) with this outcome.
    Complete(usize, bool),
    /// Drop the pending call at this index (modulo).
    Cancel(usize),
    /// Let time pass.
    Advance(u64),
}

fn cfg() -> impl Strategy<Value = Cfg> {
    (
        proptest::option::of(1u32..5),
        proptest::option::of(1u32..12),
        0u32..12,
        prop_oneof![Just(0.2), Just(0.5), Just(1.0)],
        1u32..4,
        1u64..5,
        proptest::option::of((1u64..3000, prop_oneof![Just(0.3), Just(0.6), Just(1.0)])),
        proptest::option::of(1u64..6),
    )
        .prop_map(
            |(consecutive, window, min_calls, rate, probes, open_s, slow, growing)| {
                let window = if consecutive.is_none() && window.is_none() {
                    Some(5)
                } else {
                    window
                };
                Cfg {
                    consecutive,
                    window,
                    min_calls: window.map_or(0, |n| min_calls.min(n)),
                    rate,
                    probes,
                    open_ms: open_s * 1000,
                    slow: window.and(slow),
                    growing: growing.map(|s| s * 1000),
                }
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<bool>().prop_map(Op::Call),
        2 => Just(Op::Start),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Op::Complete(i, ok)),
        1 => any::<usize>().prop_map(Op::Cancel),
        2 => (0u64..3000).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Closed,
    Open { until: u64 },
    HalfOpen { admitted: u32, succeeded: u32 },
}

#[derive(Debug, Clone, Copy)]
struct Ticket {
    generation: u64,
    probe: bool,
}

struct Model {
    cfg: Cfg,
    phase: Phase,
    generation: u64,
    /// (failed, slow) of each call recorded since the last transition.
    history: Vec<(bool, bool)>,
    consecutive: u32,
    trips: u32,
    closed_at: u64,
}

impl Model {
    fn state(&self) -> CircuitState {
        match self.phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    fn transition(&mut self, phase: Phase) {
        self.phase = phase;
        self.generation += 1;
        self.history.clear();
        self.consecutive = 0;
    }

    fn admit(&mut self, now: u64) -> Option<Ticket> {
        if let Phase::Open { until } = self.phase {
            if now < until {
                return None;
            }
            self.transition(Phase::HalfOpen {
                admitted: 0,
                succeeded: 0,
            });
        }
        match &mut self.phase {
            Phase::Closed => Some(Ticket {
                generation: self.generation,
                probe: false,
            }),
            Phase::HalfOpen { admitted, .. } if *admitted < self.cfg.probes => {
                *admitted += 1;
                Some(Ticket {
                    generation: self.generation,
                    probe: true,
                })
            }
            _ => None,
        }
    }

    fn open(&mut self, now: u64) {
        let open_ms = match self.cfg.growing {
            None => self.cfg.open_ms,
            Some(reset_ms) => {
                if self.phase == Phase::Closed && now - self.closed_at >= reset_ms {
                    self.trips = 0;
                }
                self.trips += 1;
                (self.cfg.open_ms << (self.trips - 1).min(2)).min(4 * self.cfg.open_ms)
            }
        };
        self.transition(Phase::Open {
            until: now + open_ms,
        });
    }

    fn record(&mut self, t: Ticket, ok: bool, elapsed: u64, now: u64) {
        if t.generation != self.generation {
            return;
        }
        let slow = self.cfg.slow.is_some_and(|(ms, _)| elapsed >= ms);
        if t.probe {
            if !ok || slow {
                self.open(now);
            } else if let Phase::HalfOpen { succeeded, .. } = &mut self.phase {
                *succeeded += 1;
                if *succeeded >= self.cfg.probes {
                    self.transition(Phase::Closed);
                    self.closed_at = now;
                }
            }
            return;
        }
        self.history.push((!ok, slow));
        self.consecutive = if ok { 0 } else { self.consecutive + 1 };
        let mut trip = !ok && self.cfg.consecutive.is_some_and(|k| self.consecutive >= k);
        if let Some(n) = self.cfg.window {
            let last = &self.history[self.history.len().saturating_sub(n as usize)..];
            let calls = last.len() as f64;
            let failures = last.iter().filter(|(f, _)| *f).count() as f64;
            let slows = last.iter().filter(|(_, s)| *s).count() as f64;
            if calls >= self.cfg.min_calls as f64 && calls > 0.0 {
                trip |= !ok && failures / calls >= self.cfg.rate;
                if let Some((_, rate)) = self.cfg.slow {
                    trip |= slow && slows / calls >= rate;
                }
            }
        }
        if trip {
            self.open(now);
        }
    }

    fn cancel(&mut self, t: Ticket) {
        if t.probe
            && t.generation == self.generation
            && let Phase::HalfOpen { admitted, .. } = &mut self.phase
        {
            *admitted -= 1;
        }
    }
}

enum Req {
    Now(bool),
    Wait(oneshot::Receiver<bool>),
}

type Fut = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), BreakerError>> + Send>>;

struct Pending {
    fut: Spawn<Fut>,
    tx: oneshot::Sender<bool>,
    ticket: Ticket,
    started: u64,
}

fn run(cfg: Cfg, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut b = CircuitBreakerLayer::builder()
            .no_count_window()
            .no_consecutive_failures()
            .failure_rate(cfg.rate)
            .minimum_calls(cfg.min_calls)
            .half_open_probes(cfg.probes)
            .open_duration(Duration::from_millis(cfg.open_ms));
        if let Some(k) = cfg.consecutive {
            b = b.consecutive_failures(k);
        }
        if let Some(n) = cfg.window {
            b = b.count_window(n);
        }
        if let Some((ms, rate)) = cfg.slow {
            b = b.slow_calls(Duration::from_millis(ms), rate);
        }
        if let Some(reset_ms) = cfg.growing {
            b = b
                .open_backoff(
                    Backoff::exponential(Duration::from_millis(cfg.open_ms))
                        .max_delay(Duration::from_millis(4 * cfg.open_ms))
                        .jitter(Jitter::None),
                )
                .reset_backoff_after(Duration::from_millis(reset_ms));
        }
        let layer = b.build().unwrap();
        let handle = layer.handle();
        let mut svc = layer.layer(service_fn(|req: Req| async move {
            let ok = match req {
                Req::Now(ok) => ok,
                Req::Wait(rx) => rx.await.unwrap_or(false),
            };
            if ok {
                Ok(())
            } else {
                Err::<(), BoxError>("failed".into())
            }
        }));
        let mut model = Model {
            cfg: cfg.clone(),
            phase: Phase::Closed,
            generation: 0,
            history: Vec::new(),
            consecutive: 0,
            trips: 0,
            closed_at: 0,
        };
        let start = tokio::time::Instant::now();
        let now = || (tokio::time::Instant::now() - start).as_millis() as u64;
        let mut pending: Vec<Pending> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Call(ok) => {
                    let expected = model.admit(now());
                    let result = svc.ready().await.unwrap().call(Req::Now(ok)).await;
                    let rejected = matches!(&result, Err(e) if e.is::<CircuitOpen>());
                    prop_assert_eq!(rejected, expected.is_none(), "step {}: {:?}", step, op);
                    if let Some(t) = expected {
                        prop_assert_eq!(result.is_ok(), ok);
                        model.record(t, ok, 0, now());
                    }
                }
                Op::Start => {
                    let expected = model.admit(now());
                    let (tx, rx) = oneshot::channel();
                    let fut: Fut = Box::pin(svc.ready().await.unwrap().call(Req::Wait(rx)));
                    let mut fut = task::spawn(fut);
                    match fut.poll() {
                        std::task::Poll::Pending => {
                            let ticket = expected.ok_or_else(|| {
                                TestCaseError::fail(format!("step {step}: admitted, model rejects"))
                            })?;
                            pending.push(Pending {
                                fut,
                                tx,
                                ticket,
                                started: now(),
                            });
                        }
                        std::task::Poll::Ready(r) => {
                            prop_assert!(matches!(&r, Err(e) if e.is::<CircuitOpen>()));
                            prop_assert!(
                                expected.is_none(),
                                "step {}: rejected, model admits",
                                step
                            );
                        }
                    }
                }
                Op::Complete(i, ok) => {
                    if !pending.is_empty() {
                        let p = pending.remove(i % pending.len());
                        p.tx.send(ok).unwrap();
                        let r = p.fut.await;
                        prop_assert_eq!(r.is_ok(), ok);
                        model.record(p.ticket, ok, now() - p.started, now());
                    }
                }
                Op::Cancel(i) => {
                    if !pending.is_empty() {
                        let p = pending.remove(i % pending.len());
                        drop(p.fut);
                        model.cancel(p.ticket);
                    }
                }
                Op::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
            }
            prop_assert_eq!(handle.state(), model.state(), "step {}", step);
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn breaker_agrees_with_the_reference_model(cfg in cfg(), ops in proptest::collection::vec(op(), 1..120)) {
        run(cfg, ops)?;
    }
}
