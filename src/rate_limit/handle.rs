//! The handle on a running rate limiter: change its quota while it runs.

use std::fmt;
use std::sync::Arc;

use super::layer::{RateLimitBuilder, RateLimitLayer};
use super::shared::Shared;
use crate::config::ConfigError;

/// Changes the quota of a running [`RateLimitLayer`] and of every service it made.
/// From [`RateLimitLayer::handle`].
#[derive(Clone)]
pub struct RateLimitHandle {
    pub(super) shared: Arc<Shared>,
}

impl fmt::Debug for RateLimitHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitHandle")
            .field("quota", &self.shared.quota.get())
            .finish_non_exhaustive()
    }
}

impl RateLimitHandle {
    /// Changes the quota to `settings`' rate, period, burst and longest wait (its
    /// name and listeners are not taken), keeping the limiter's state: what was spent
    /// counts against the new quota, so a lower rate applies at once and a higher one
    /// from the next call. Checked first, as [`RateLimitBuilder::build`] checks: a bad
    /// one changes nothing and names its field. Logged at INFO.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::rate_limit::RateLimitLayer;
    ///
    /// let limit = RateLimitLayer::builder().rate(100, Duration::from_secs(1)).build().unwrap();
    /// let handle = limit.handle();
    /// handle.reconfigure(&RateLimitLayer::builder().rate(50, Duration::from_secs(1))).unwrap();
    /// let err = handle.reconfigure(&RateLimitLayer::builder().burst(0)).unwrap_err();
    /// assert_eq!(err.field(), "rate_limit.burst");
    /// ```
    pub fn reconfigure(&self, settings: &RateLimitBuilder) -> Result<(), ConfigError> {
        self.shared.set_quota(settings.quota()?);
        Ok(())
    }

    /// Checks `settings` as [`reconfigure`](Self::reconfigure) would, changing nothing.
    pub fn check_reconfigure(&self, settings: &RateLimitBuilder) -> Result<(), ConfigError> {
        settings.quota().map(|_| ())
    }
}

impl RateLimitLayer {
    /// A handle that changes this limiter's quota while it runs
    /// ([`RateLimitHandle::reconfigure`]).
    pub fn handle(&self) -> RateLimitHandle {
        RateLimitHandle {
            shared: self.shared.clone(),
        }
    }
}
