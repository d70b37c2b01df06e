use std::sync::Arc;
use std::time::Duration;

/// What a failover router decided. `backend` is the backend's id.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FailoverEvent {
    /// No backend could take the call.
    NoHealthyBackend,
    /// A backend was ejected (taken out of rotation) for `duration`.
    Ejected {
        /// The backend.
        backend: Arc<str>,
        /// Which rule ejected it.
        reason: EjectReason,
        /// How long it stays out (`Duration::MAX` for a manual ejection).
        duration: Duration,
    },
    /// A rule wanted to eject a backend but the maximum ejected percentage was reached.
    EjectionSkipped {
        /// The backend.
        backend: Arc<str>,
        /// Which rule wanted to eject it.
        reason: EjectReason,
    },
    /// A backend is back in rotation: restored by hand, or its first success after an
    /// ejection ended.
    Restored {
        /// The backend.
        backend: Arc<str>,
    },
    /// An active health check changed a backend's verdict.
    HealthCheck {
        /// The backend.
        backend: Arc<str>,
        /// The new verdict.
        healthy: bool,
    },
    /// A backend joined the router.
    Added {
        /// The backend.
        backend: Arc<str>,
    },
    /// A backend left the router (its in-flight calls finish).
    Removed {
        /// The backend.
        backend: Arc<str>,
    },
    /// A call sent to a backend finished (per call: delivered only to listeners
    /// whose [`per_call`](super::Listener::per_call) is true). A cancelled call
    /// reports nothing.
    Attempt {
        /// The backend.
        backend: Arc<str>,
        /// Whether the router's classifier counted it a success.
        success: bool,
        /// How long it took, when the router measures latency (peak-EWMA selection
        /// or a latency ejection rule; the default selection does).
        latency: Option<Duration>,
    },
}

impl FailoverEvent {
    /// The kind of event, `"Failover(Variant)"` (for example `"Failover(NoHealthyBackend)"`):
    /// the layer and the variant without the fields, a fixed string for counting
    /// events by kind. See [`Event::kind`](super::Event::kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoHealthyBackend => "Failover(NoHealthyBackend)",
            Self::Ejected { .. } => "Failover(Ejected)",
            Self::EjectionSkipped { .. } => "Failover(EjectionSkipped)",
            Self::Restored { .. } => "Failover(Restored)",
            Self::Attempt { .. } => "Failover(Attempt)",
            Self::HealthCheck { .. } => "Failover(HealthCheck)",
            Self::Added { .. } => "Failover(Added)",
            Self::Removed { .. } => "Failover(Removed)",
        }
    }
}

/// Why a backend was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EjectReason {
    /// Too many failures in a row.
    ConsecutiveFailures,
    /// Its failure rate over the last interval passed the absolute threshold.
    FailureRate,
    /// Its success rate fell too far below the other backends' median.
    SuccessRate,
    /// Its mean latency was too many times the other backends' median.
    Latency,
    /// It failed its first call after an ejection ended.
    Probation,
    /// Ejected by hand through the handle.
    Manual,
}

impl EjectReason {
    /// A short, stable name, used as the `reason` field of tracing events.
    pub fn as_str(self) -> &'static str {
        match self {
            EjectReason::ConsecutiveFailures => "consecutive_failures",
            EjectReason::FailureRate => "failure_rate",
            EjectReason::SuccessRate => "success_rate",
            EjectReason::Latency => "latency",
            EjectReason::Probation => "probation",
            EjectReason::Manual => "manual",
        }
    }
}
