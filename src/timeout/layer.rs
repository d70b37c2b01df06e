use std::time::Duration;

use tower_layer::Layer;

use super::service::{Deadline, Timeout};
use crate::config::ConfigError;

/// Wraps services in a per-attempt [`Timeout`].
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    /// Each call may take `timeout`; longer, it fails with
    /// [`Elapsed`](super::Elapsed). A zero timeout fails every call that is not ready
    /// at its first poll; see [`try_new`](Self::try_new) to reject it.
    pub const fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// Like [`new`](Self::new), rejecting a zero timeout (field `timeout.attempt`).
    pub fn try_new(timeout: Duration) -> Result<Self, ConfigError> {
        check("timeout.attempt", timeout)?;
        Ok(Self::new(timeout))
    }

    /// The timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout::new(inner, self.timeout)
    }
}

/// Wraps services in an overall [`Deadline`].
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    deadline: Duration,
}

impl DeadlineLayer {
    /// Each request may take `deadline` in all; longer, it fails with
    /// [`DeadlineExceeded`](super::DeadlineExceeded).
    pub const fn new(deadline: Duration) -> Self {
        Self { deadline }
    }

    /// Like [`new`](Self::new), rejecting a zero deadline (field `timeout.deadline`).
    pub fn try_new(deadline: Duration) -> Result<Self, ConfigError> {
        check("timeout.deadline", deadline)?;
        Ok(Self::new(deadline))
    }

    /// The deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline::new(inner, self.deadline)
    }
}

pub(crate) fn check(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::new(field, "must be greater than zero"));
    }
    Ok(())
}
