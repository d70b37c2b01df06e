//! The file's shape: the defaults, the named stacks and their backends, and paths
//! into it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "rate-limit")]
use super::model::RateLimitConfig;
use super::model::{
    BreakerConfig, BulkheadConfig, HedgeConfig, RetryConfig, RouterConfig, TimeoutsConfig,
};

/// The defaults of every kind, under `[defaults]`: each stack starts from these and
/// overrides what it sets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// `[defaults.timeouts]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsConfig>,
    /// `[defaults.bulkhead]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulkhead: Option<BulkheadConfig>,
    /// `[defaults.retry]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// `[defaults.hedge]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge: Option<HedgeConfig>,
    /// `[defaults.breaker]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerConfig>,
    /// `[defaults.router]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterConfig>,
    /// `[defaults.rate_limit]`, for the `[rate_limits.*]` instances.
    #[cfg(feature = "rate-limit")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
}

/// One backend of a stack: its `id`, and optionally `url` (for
/// [`Stack::http`](crate::stack::Stack::http)), `tier` (default 0) and `weight`
/// (default 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// The backend's id (unique in the stack).
    pub id: String,
    /// Where an HTTP stack sends (`http://host:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Its priority tier: 0 is served first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<u32>,
    /// Its share within its tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// One named stack, under `[stacks.NAME]`: a table per kind that overrides the
/// defaults, and its `[[stacks.NAME.backends]]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackConfig {
    /// The deadline and the per-attempt timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsConfig>,
    /// The bulkhead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulkhead: Option<BulkheadConfig>,
    /// The retry layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// Hedging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge: Option<HedgeConfig>,
    /// Every backend's breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerConfig>,
    /// The router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterConfig>,
    /// The backends, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendConfig>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileModel {
    #[serde(default, skip_serializing_if = "is_default")]
    pub(crate) defaults: Defaults,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) stacks: BTreeMap<String, StackConfig>,
    #[cfg(feature = "rate-limit")]
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) rate_limits: BTreeMap<String, RateLimitConfig>,
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

/// One step of a path into the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

pub(crate) fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

/// Writes a path the way errors show it: `stacks.payments.backends[1].weight`.
pub(crate) fn path_text(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

pub(crate) fn to_toml(model: &FileModel) -> String {
    toml::to_string(model).unwrap_or_else(|e| format!("# not printable: {e}\n"))
}
