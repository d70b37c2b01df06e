use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::core::Core;
use super::figures::{Figures, Status};
use crate::observe::{CircuitState, Mode};

/// Read access and manual control of one circuit breaker.
///
/// Cheap to clone; every clone, the layer and all services it made share the same
/// breaker. Manual changes take effect for the next call. Each one starts a new
/// generation: results of calls admitted before it are not recorded.
#[derive(Clone)]
pub struct CircuitBreakerHandle {
    pub(crate) core: Arc<Core>,
}

impl fmt::Debug for CircuitBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerHandle")
            .field("status", &self.core.status())
            .finish()
    }
}

impl CircuitBreakerHandle {
    /// The state of the automatic state machine. An open breaker whose open duration
    /// has passed still reports `Open` until a call moves it to `HalfOpen`.
    pub fn state(&self) -> CircuitState {
        self.core.status().state
    }

    /// How the breaker is operated.
    pub fn mode(&self) -> Mode {
        self.core.status().mode
    }

    /// State and mode together.
    pub fn status(&self) -> Status {
        self.core.status()
    }

    /// What the windows hold now (takes the breaker's slow-path lock).
    pub fn figures(&self) -> Figures {
        self.core.figures()
    }

    /// When an open breaker starts admitting probes; `None` unless open.
    pub fn open_until(&self) -> Option<Instant> {
        self.core.open_until()
    }

    /// How many probe slots are taken in half-open (in flight or completed).
    pub fn probes_admitted(&self) -> u32 {
        self.core.probes_admitted()
    }

    /// Reject every call until another mode is set ([`resume`](Self::resume),
    /// [`reset`](Self::reset), [`force_closed`](Self::force_closed)).
    pub fn force_open(&self) {
        self.core.set_mode(Mode::ForcedOpen);
    }

    /// Close the breaker now and return to automatic mode, with empty windows. The
    /// count of consecutive trips (for a growing open duration) is kept.
    pub fn force_closed(&self) {
        self.core.force_closed();
    }

    /// Admit every call and keep recording, but never trip (see [`Mode::Disabled`]).
    pub fn disable(&self) {
        self.core.set_mode(Mode::Disabled);
    }

    /// Shadow mode: decide as usual but admit what would be rejected, reporting it
    /// (see [`Mode::MetricsOnly`]).
    pub fn metrics_only(&self) {
        self.core.set_mode(Mode::MetricsOnly);
    }

    /// Return to automatic mode, keeping the current automatic state.
    pub fn resume(&self) {
        self.core.set_mode(Mode::Automatic);
    }

    /// Back to the initial state: automatic, closed, empty windows, no trip history.
    pub fn reset(&self) {
        self.core.reset();
    }

    /// A receiver that sees every change of state or mode.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    /// use tower_fortify::observe::Mode;
    ///
    /// let layer = CircuitBreakerLayer::default();
    /// let mut changes = layer.handle().subscribe();
    /// layer.handle().force_open();
    /// changes.changed().await.unwrap();
    /// assert_eq!(changes.borrow().mode, Mode::ForcedOpen);
    /// # }
    /// ```
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.core.subscribe()
    }
}
