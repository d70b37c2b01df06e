use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::service::{Deadline, Timeout};
use crate::config::ConfigError;
use crate::observe::NameId;

/// Wraps services in a per-attempt [`Timeout`].
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeout: Duration,
    name: NameId,
}

impl TimeoutLayer {
    /// Each call may take `timeout`; longer, it fails with
    /// [`Elapsed`](super::Elapsed). A zero timeout fails every call that is not ready
    /// at its first poll; see [`try_new`](Self::try_new) to reject it.
    pub const fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            name: NameId::NONE,
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
    /// starts with it, as does the DEBUG line logged when it fires. Costs nothing per
    /// call: the future carries a 4-byte id, and the name is looked up when it fires
    /// (a process keeps at most 4,096 distinct names for this).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = NameId::intern(&name.into());
        self
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout::with_name(inner, self.timeout, self.name)
    }
}

/// Wraps services in an overall [`Deadline`].
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    deadline: Duration,
    name: NameId,
}

impl DeadlineLayer {
    /// Each request may take `deadline` in all; longer, it fails with
    /// [`DeadlineExceeded`](super::DeadlineExceeded).
    pub const fn new(deadline: Duration) -> Self {
        Self {
            deadline,
            name: NameId::NONE,
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
    /// name and its message starts with it. Costs nothing per call (see
    /// [`TimeoutLayer::name`]).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = NameId::intern(&name.into());
        self
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline::with_name(inner, self.deadline, self.name)
    }
}

pub(crate) fn check(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::new(field, "must be greater than zero"));
    }
    Ok(())
}
