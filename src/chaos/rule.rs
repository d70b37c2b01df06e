//! What to inject ([`Fault`]) and when ([`Rule`]).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use super::Latency;
use super::error::Aborted;
use crate::config::{ConfigError, check_range};

type MakeFn<T> = Arc<dyn Fn() -> T + Send + Sync>;
type KeyFn<Req> = Arc<dyn Fn(&Req) -> bool + Send + Sync>;

/// One kind of fault.
pub struct Fault<Res, E> {
    pub(super) kind: FaultKind<Res, E>,
}

pub(super) enum FaultKind<Res, E> {
    Error(MakeFn<E>),
    Respond(MakeFn<Res>),
    Latency(Latency),
    Hang,
}

impl<Res, E> Clone for Fault<Res, E> {
    fn clone(&self) -> Self {
        let kind = match &self.kind {
            FaultKind::Error(f) => FaultKind::Error(f.clone()),
            FaultKind::Respond(f) => FaultKind::Respond(f.clone()),
            FaultKind::Latency(l) => FaultKind::Latency(*l),
            FaultKind::Hang => FaultKind::Hang,
        };
        Self { kind }
    }
}

impl<Res, E> fmt::Debug for Fault<Res, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FaultKind::Error(_) => f.write_str("Fault::Error"),
            FaultKind::Respond(_) => f.write_str("Fault::Respond"),
            FaultKind::Latency(l) => f.debug_tuple("Fault::Latency").field(l).finish(),
            FaultKind::Hang => f.write_str("Fault::Hang"),
        }
    }
}

impl<Res, E> Fault<Res, E> {
    /// Fail the call with the error `make` builds; the inner service is not called.
    pub fn error(make: impl Fn() -> E + Send + Sync + 'static) -> Self {
        Self {
            kind: FaultKind::Error(Arc::new(make)),
        }
    }

    /// Answer the call with the response `make` builds (an HTTP 503, a gRPC status);
    /// the inner service is not called.
    pub fn respond(make: impl Fn() -> Res + Send + Sync + 'static) -> Self {
        Self {
            kind: FaultKind::Respond(Arc::new(make)),
        }
    }

    /// Delay the call by a sample of `latency`, then send it to the inner service.
    pub fn latency(latency: Latency) -> Self {
        Self {
            kind: FaultKind::Latency(latency),
        }
    }

    /// Never answer: the call stays pending until the caller gives up (a black-holed
    /// connection). Only a timeout above the chaos layer ends it.
    pub fn hang() -> Self {
        Self {
            kind: FaultKind::Hang,
        }
    }

    /// Fail the call with an [`Aborted`] error without reaching the inner service, as
    /// if the connection had been reset.
    pub fn abort() -> Self
    where
        E: From<Aborted>,
    {
        Self::error(|| Aborted::new().into())
    }
}

/// A time window in which a rule is active, measured from the layer's epoch (see
/// [`ChaosHandle::restart_schedule`](super::ChaosHandle::restart_schedule)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Window {
    Once {
        start: Duration,
        end: Duration,
    },
    Every {
        period: Duration,
        on: Duration,
        offset: Duration,
    },
}

impl Window {
    #[inline]
    fn contains(&self, t: Duration) -> bool {
        match *self {
            Window::Once { start, end } => start <= t && t < end,
            Window::Every { period, on, offset } => {
                if t < offset {
                    return false;
                }
                let phase = (t - offset).as_nanos() % period.as_nanos();
                phase < on.as_nanos()
            }
        }
    }
}

/// When to inject a [`Fault`]: with a probability, inside time windows, for selected
/// requests. A rule without windows is always active; one without a key filter applies
/// to every request; the default probability is 1.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::chaos::{Fault, Rule};
///
/// // 30 % of tenant 7's calls fail between the 10th and the 70th second.
/// let rule: Rule<u32, String, &str> = Rule::new(Fault::error(|| "injected"))
///     .probability(0.3)
///     .during(Duration::from_secs(10)..Duration::from_secs(70))
///     .only(|tenant: &u32| *tenant == 7);
/// # let _ = rule;
/// ```
pub struct Rule<Req, Res, E> {
    pub(super) fault: Fault<Res, E>,
    pub(super) probability: f64,
    pub(super) windows: Vec<Window>,
    pub(super) key: Option<KeyFn<Req>>,
}

impl<Req, Res, E> Clone for Rule<Req, Res, E> {
    fn clone(&self) -> Self {
        Self {
            fault: self.fault.clone(),
            probability: self.probability,
            windows: self.windows.clone(),
            key: self.key.clone(),
        }
    }
}

impl<Req, Res, E> fmt::Debug for Rule<Req, Res, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("fault", &self.fault)
            .field("probability", &self.probability)
            .field("windows", &self.windows)
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl<Req, Res, E> Rule<Req, Res, E> {
    /// A rule that injects `fault` into every call, always.
    pub fn new(fault: Fault<Res, E>) -> Self {
        Self {
            fault,
            probability: 1.0,
            windows: Vec::new(),
            key: None,
        }
    }

    /// Inject into this share of the matching calls (`0.0..=1.0`; checked by
    /// [`ChaosBuilder::build`](super::ChaosBuilder::build), field `chaos.probability`).
    pub fn probability(mut self, probability: f64) -> Self {
        self.probability = probability;
        self
    }

    /// Active from `window.start` to `window.end` after the epoch. Several windows add
    /// up.
    pub fn during(mut self, window: Range<Duration>) -> Self {
        self.windows.push(Window::Once {
            start: window.start,
            end: window.end,
        });
        self
    }

    /// Active for `on` at the start of every `period`, from `offset` after the epoch
    /// (a flapping dependency).
    pub fn every(mut self, period: Duration, on: Duration, offset: Duration) -> Self {
        self.windows.push(Window::Every { period, on, offset });
        self
    }

    /// Applies only to requests for which `key` answers `true` (one backend, one
    /// route, one tenant).
    pub fn only(mut self, key: impl Fn(&Req) -> bool + Send + Sync + 'static) -> Self {
        self.key = Some(Arc::new(key));
        self
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_range("chaos.probability", self.probability, 0.0, 1.0)?;
        for w in &self.windows {
            match *w {
                Window::Once { start, end } if end <= start => {
                    return Err(ConfigError::new(
                        "chaos.during",
                        format!("the window must end after it starts ({start:?}..{end:?})"),
                    ));
                }
                Window::Every { period, on, .. } if period.is_zero() || on > period => {
                    return Err(ConfigError::new(
                        "chaos.every",
                        format!(
                            "needs a non-zero period and on <= period (period {period:?}, on {on:?})"
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether the rule's schedule and key select this call (the probability is drawn
    /// by the caller).
    #[inline]
    pub(super) fn selects(&self, req: &Req, elapsed: impl FnOnce() -> Duration) -> bool {
        if self.probability <= 0.0 {
            return false;
        }
        if let Some(key) = &self.key
            && !key(req)
        {
            return false;
        }
        if !self.windows.is_empty() {
            let t = elapsed();
            if !self.windows.iter().any(|w| w.contains(t)) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_windows() {
        let w = Window::Every {
            period: Duration::from_secs(10),
            on: Duration::from_secs(3),
            offset: Duration::from_secs(5),
        };
        assert!(!w.contains(Duration::from_secs(4)));
        assert!(w.contains(Duration::from_secs(5)));
        assert!(w.contains(Duration::from_millis(7_999)));
        assert!(!w.contains(Duration::from_secs(8)));
        assert!(w.contains(Duration::from_secs(16)));
    }
}
