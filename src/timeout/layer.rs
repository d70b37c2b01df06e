use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::service::{Deadline, Timeout};
use crate::config::ConfigError;

/// Wraps services in a per-attempt [`Timeout`].
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    timeout: Duration,
    name: Option<Arc<str>>,
}

impl TimeoutLayer {
    /// Each call may take `timeout`; longer, it fails with
    /// [`Elapsed`](super::Elapsed). A zero timeout fails every call that is not ready
    /// at its first poll; see [`try_new`](Self::try_new) to reject it.
    pub const fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            name: None,
        }
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

    /// Names the timeout: [`Elapsed`](super::Elapsed) carries the name and its message
    /// starts with it, as does the DEBUG line logged when it fires. Costs a reference
    /// count per call (two atomic operations); unnamed, nothing.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout::named(inner, self.timeout, self.name.clone())
    }
}

/// Wraps services in an overall [`Deadline`].
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    deadline: Duration,
    name: Option<Arc<str>>,
}

impl DeadlineLayer {
    /// Each request may take `deadline` in all; longer, it fails with
    /// [`DeadlineExceeded`](super::DeadlineExceeded).
    pub const fn new(deadline: Duration) -> Self {
        Self {
            deadline,
            name: None,
        }
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

    /// Names the deadline: [`DeadlineExceeded`](super::DeadlineExceeded) carries the
    /// name and its message starts with it. Costs a reference count per call (two
    /// atomic operations); unnamed, nothing.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline::named(inner, self.deadline, self.name.clone())
    }
}

pub(crate) fn check(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::new(field, "must be greater than zero"));
    }
    Ok(())
}
