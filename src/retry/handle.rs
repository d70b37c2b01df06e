//! The handle on a running retry layer: change its attempts and backoff while it
//! runs.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::layer::{RetryBuilder, RetryLayer};
use super::shared::Live;
use crate::backoff::Backoff;
use crate::config::ConfigError;

/// Changes the attempts and the backoff of a running [`RetryLayer`] and of every
/// service it made. From [`RetryLayer::handle`].
#[derive(Clone)]
pub struct RetryHandle {
    live: Arc<Live>,
}

impl fmt::Debug for RetryHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (max_attempts, backoff) = self.get();
        f.debug_struct("RetryHandle")
            .field("max_attempts", &max_attempts)
            .field("backoff", &backoff)
            .finish()
    }
}

impl RetryHandle {
    fn get(&self) -> (u32, Backoff) {
        (
            self.live.max_attempts.load(Ordering::Relaxed),
            self.live.backoff.load(),
        )
    }

    /// Total attempts per request now in force.
    pub fn max_attempts(&self) -> u32 {
        self.get().0
    }

    /// The backoff now in force.
    pub fn backoff(&self) -> Backoff {
        self.get().1
    }

    /// Takes `settings`' `max_attempts` and `backoff` (its other settings are not
    /// taken: the budget has [`Budget::reconfigure`](crate::budget::Budget::reconfigure),
    /// the classifier and replay are types). A request already running keeps the
    /// attempts it started with; its next backoff uses the new shape. Checked first,
    /// as [`RetryBuilder::build`] checks: a bad value changes nothing and names its
    /// field.
    ///
    /// ```
    /// use tower_fortify::retry::RetryLayer;
    ///
    /// let retry = RetryLayer::builder().build().unwrap();
    /// let handle = retry.handle();
    /// handle.reconfigure(&RetryLayer::builder().max_attempts(2)).unwrap();
    /// assert_eq!(handle.max_attempts(), 2);
    /// let err = handle.reconfigure(&RetryLayer::builder().max_attempts(0)).unwrap_err();
    /// assert_eq!(err.field(), "retry.max_attempts");
    /// assert_eq!(handle.max_attempts(), 2);
    /// ```
    pub fn reconfigure<C, P>(&self, settings: &RetryBuilder<C, P>) -> Result<(), ConfigError> {
        let (max_attempts, backoff) = settings.check_live()?;
        if self.get() != (max_attempts, backoff) {
            self.live
                .max_attempts
                .store(max_attempts, Ordering::Relaxed);
            self.live.backoff.store(backoff);
            tracing::info!(
                target: "tower_fortify::retry",
                max_attempts,
                ?backoff,
                "retry settings changed"
            );
        }
        Ok(())
    }

    /// Checks `settings` as [`reconfigure`](Self::reconfigure) would, changing nothing.
    pub fn check_reconfigure<C, P>(
        &self,
        settings: &RetryBuilder<C, P>,
    ) -> Result<(), ConfigError> {
        settings.check_live().map(|_| ())
    }
}

impl<C, P> RetryLayer<C, P> {
    /// A handle that changes this layer's attempts and backoff while it runs
    /// ([`RetryHandle::reconfigure`]).
    pub fn handle(&self) -> RetryHandle {
        RetryHandle {
            live: self.shards[0].live.clone(),
        }
    }
}
