//! What a breaker reports through its handle: its status and its windows' figures.

use crate::observe::{CircuitState, Mode};

/// The automatic state and the mode, as observed through a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    /// The state of the automatic state machine.
    pub state: CircuitState,
    /// How the breaker is operated.
    pub mode: Mode,
}

/// Calls, failures and slow calls in one window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowFigures {
    /// Calls recorded in the window (for a time window, an estimate: successes
    /// between two failures are spread evenly over the time between them).
    pub calls: f64,
    /// Failures recorded in the window.
    pub failures: u64,
    /// Slow calls recorded in the window (zero unless slow-call detection is on).
    pub slow_calls: u64,
}

impl WindowFigures {
    /// `failures / calls`, or zero when the window is empty.
    pub fn failure_rate(&self) -> f64 {
        if self.calls > 0.0 {
            (self.failures as f64 / self.calls).min(1.0)
        } else {
            0.0
        }
    }

    /// `slow_calls / calls`, or zero when the window is empty.
    pub fn slow_call_rate(&self) -> f64 {
        if self.calls > 0.0 {
            (self.slow_calls as f64 / self.calls).min(1.0)
        } else {
            0.0
        }
    }
}

/// A snapshot of what a breaker has recorded since it last changed state.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Figures {
    /// Failures in a row since the last success.
    pub consecutive_failures: u32,
    /// The count window, if one is configured.
    pub count_window: Option<WindowFigures>,
    /// The time window, if one is configured.
    pub time_window: Option<WindowFigures>,
    /// How many times in a row the breaker has opened (drives a growing open
    /// duration; reset after staying closed).
    pub consecutive_trips: u32,
}
