//! Configuration: the error every builder returns, and (feature `config`) files.
//!
//! Every builder checks its settings once, when built, and names the field it
//! rejects with a [`ConfigError`]. With the `config` feature, the same builders are
//! described by serde data: a model per kind ([`RetryConfig`], [`BreakerConfig`],
//! ...), and a file ([`FortifyConfig`]) that holds defaults per kind and named
//! stacks with their overrides and backends.
#![cfg_attr(feature = "config", doc = include_str!("file_docs.md"))]

use std::fmt;

#[cfg(feature = "config")]
mod duration;
#[cfg(feature = "config")]
mod file;
#[cfg(feature = "config")]
mod layout;
#[cfg(feature = "config")]
mod model;
#[cfg(feature = "config")]
mod reload;
#[cfg(feature = "config")]
mod stack;
#[cfg(feature = "config")]
mod switch;

#[cfg(feature = "config")]
pub use duration::{DurationError, format_duration, parse_duration};
#[cfg(feature = "config")]
pub use file::{FileError, Format, FortifyConfig};
#[cfg(feature = "config")]
pub use layout::{BackendConfig, Defaults, StackConfig};
#[cfg(feature = "rate-limit")]
#[cfg(feature = "config")]
pub use model::RateLimitConfig;
#[cfg(feature = "config")]
pub use model::{
    AdaptiveConfig, AimdConfig, BackoffConfig, BackoffKind, BreakerConfig, BudgetConfig,
    BudgetKind, BulkheadConfig, Gradient2Config, HedgeConfig, JitterConfig, PanicModeConfig,
    RetryConfig, RouterConfig, SelectionKind, TimeoutsConfig, VegasConfig,
};
#[cfg(feature = "config")]
pub use reload::{Change, ReconfigureError, Reconfigured};
#[cfg(feature = "config")]
pub use stack::StackSettings;
#[cfg(feature = "config")]
pub use switch::OrOff;

/// A builder rejected its configuration.
///
/// The error names the field that is wrong and says why, so a configuration loaded
/// from a file can be fixed without reading the source:
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::backoff::Backoff;
///
/// let err = Backoff::exponential(Duration::from_millis(100))
///     .max_delay(Duration::from_millis(10))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "backoff.max_delay");
/// assert!(err.to_string().contains("backoff.max_delay"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    /// Creates an error for `field` with a human-readable `reason`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The dotted name of the field that was rejected, for example `retry.max_attempts`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why the value was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Checks that a float is finite and lies in `lo..=hi`.
pub(crate) fn check_range(
    field: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
) -> Result<(), ConfigError> {
    if !value.is_finite() {
        return Err(ConfigError::new(
            field,
            format!("must be a finite number (got {value})"),
        ));
    }
    if value < lo || value > hi {
        return Err(ConfigError::new(
            field,
            format!("must lie in {lo}..={hi} (got {value})"),
        ));
    }
    Ok(())
}
