use std::time::Duration;

/// The state of a circuit breaker's automatic state machine.
///
/// * **Closed** — admitting: every call goes through and its outcome is recorded.
/// * **Open** — rejecting: calls fail fast with
///   [`CircuitOpen`](crate::circuit_breaker::error::CircuitOpen) until the open
///   duration has passed.
/// * **HalfOpen** — probing: a configured number of probe calls go through; their
///   results close the breaker again or reopen it. Other calls are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Admitting every call.
    Closed,
    /// Rejecting every call until the open duration has passed.
    Open,
    /// Admitting a limited number of probe calls.
    HalfOpen,
}

impl CircuitState {
    /// A short, stable name (`closed`, `open`, `half_open`).
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// How a circuit breaker is operated, set through its handle.
///
/// * **Automatic** (the default) — the state machine decides.
/// * **Disabled** — every call is admitted and recorded (the window figures stay
///   live), but the breaker never trips.
/// * **ForcedOpen** — every call is rejected until the mode is changed.
/// * **MetricsOnly** — a shadow mode for a safe rollout: the state machine runs as in
///   automatic mode, but a call it would reject is admitted and reported as
///   [`CircuitBreakerEvent::WouldReject`]; such a call's result is not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// The state machine decides.
    #[default]
    Automatic,
    /// Always admit, still record, never trip.
    Disabled,
    /// Always reject.
    ForcedOpen,
    /// Decide as in automatic mode, but admit what would be rejected.
    MetricsOnly,
}

impl Mode {
    /// A short, stable name, used as the `mode` field of tracing events.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Automatic => "automatic",
            Mode::Disabled => "disabled",
            Mode::ForcedOpen => "forced_open",
            Mode::MetricsOnly => "metrics_only",
        }
    }
}

/// Why a circuit breaker opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TripReason {
    /// Too many consecutive failures.
    ConsecutiveFailures,
    /// The failure rate over the count window reached the threshold.
    CountWindowFailureRate,
    /// The failure rate over the time window reached the threshold.
    TimeWindowFailureRate,
    /// The slow-call rate over a window reached the threshold.
    SlowCallRate,
    /// A probe call failed (or was slow) in half-open.
    ProbeFailed,
}

impl TripReason {
    /// A short, stable name, used as the `reason` field of tracing events.
    pub fn as_str(self) -> &'static str {
        match self {
            TripReason::ConsecutiveFailures => "consecutive_failures",
            TripReason::CountWindowFailureRate => "count_window_failure_rate",
            TripReason::TimeWindowFailureRate => "time_window_failure_rate",
            TripReason::SlowCallRate => "slow_call_rate",
            TripReason::ProbeFailed => "probe_failed",
        }
    }
}

/// What a circuit breaker decided.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CircuitBreakerEvent {
    /// A call was rejected because the breaker is open (or half-open with every
    /// probe slot taken, or forced open).
    Rejected {
        /// How long until the breaker may admit again, when known.
        retry_after: Option<Duration>,
    },
    /// Metrics-only mode: the breaker would have rejected this call, and admitted it.
    WouldReject {
        /// How long until the breaker would admit again, when known.
        retry_after: Option<Duration>,
    },
    /// The breaker opened.
    Opened {
        /// Why.
        reason: TripReason,
        /// How long it stays open before probing.
        open_for: Duration,
    },
    /// The automatic state changed.
    StateChanged {
        /// The state before.
        from: CircuitState,
        /// The state after.
        to: CircuitState,
    },
    /// The mode was changed through the handle.
    ModeChanged {
        /// The new mode.
        mode: Mode,
    },
}

impl CircuitBreakerEvent {
    /// The kind of event, `"CircuitBreaker(Variant)"` (for example `"CircuitBreaker(Rejected)"`):
    /// the layer and the variant without the fields, a fixed string for counting
    /// events by kind. See [`Event::kind`](super::Event::kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => "CircuitBreaker(Rejected)",
            Self::WouldReject { .. } => "CircuitBreaker(WouldReject)",
            Self::Opened { .. } => "CircuitBreaker(Opened)",
            Self::StateChanged { .. } => "CircuitBreaker(StateChanged)",
            Self::ModeChanged { .. } => "CircuitBreaker(ModeChanged)",
        }
    }
}
