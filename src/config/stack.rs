//! One named stack's settings: the defaults with the stack's overrides, checked by
//! the builders, and applied to [`Stack::builder`] or [`Stack::http`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::layout::{BackendConfig, Defaults, FileModel, Seg, StackConfig, key};
use super::model::{
    BreakerConfig, BulkheadConfig, HedgeConfig, RetryConfig, RouterConfig, TimeoutsConfig,
};
use crate::bulkhead::BulkheadLayer;
use crate::circuit_breaker::CircuitBreakerLayer;
use crate::failover::{Backend, Failover};
use crate::hedge::HedgeLayer;
use crate::retry::RetryLayer;
use crate::stack::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_DEADLINE, DEFAULT_HEDGE_PERCENTILE, DEFAULT_MAX_IN_FLIGHT,
    Stack, StackBuilder,
};

/// The settings of one stack: what the file says for it, its overrides over the
/// defaults, every kind merged. A field left out keeps the builder's default (see
/// [`Stack::builder`]).
///
/// Serializable: [`to_toml`](Self::to_toml) prints it as a file holding this one
/// stack, which reads back to equal settings. A stack built from settings gives them
/// back with [`Stack::effective_config`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackSettings {
    /// The stack's name (its key under `[stacks]`): every part's log lines, events
    /// and metrics carry it.
    pub name: String,
    /// Every kind's table, merged, and the backends.
    pub config: StackConfig,
}

fn merge<T: Clone>(base: &Option<T>, over: &Option<T>, f: impl FnOnce(&T, &T) -> T) -> Option<T> {
    match (base, over) {
        (Some(b), Some(o)) => Some(f(b, o)),
        (None, o) => o.clone(),
        (b, None) => b.clone(),
    }
}

/// A builder's field name (`breaker.failure_rate`) as a path below the stack, for
/// the kind `kind` it was checked in.
pub(crate) fn rel_path(kind: &str, field: &str) -> Vec<Seg> {
    let (head, rest) = field.split_once('.').unwrap_or((field, ""));
    let keys = |p: &[&str], rest: &str| -> Vec<Seg> {
        p.iter()
            .copied()
            .chain(rest.split('.').filter(|k| !k.is_empty()))
            .map(key)
            .collect()
    };
    match (kind, head) {
        ("retry", "backoff") | ("retry", "budget") => keys(&["retry", head], rest),
        ("breaker", "backoff") => keys(&["breaker", "open_backoff"], rest),
        ("breaker", _) if rest == "trip_conditions" => keys(&["breaker"], ""),
        ("bulkhead", _)
            if ["aimd.", "gradient2.", "vegas."]
                .iter()
                .any(|a| rest.starts_with(a)) =>
        {
            keys(&["bulkhead", "adaptive"], rest)
        }
        ("router", _) if rest == "selection.decay" => keys(&["router", "ewma_decay"], ""),
        ("router", _) if rest.starts_with("backends") => keys(&["backends"], ""),
        _ => keys(&[kind], rest),
    }
}

type Located = (Vec<Seg>, ConfigError);

fn at(kind: &'static str) -> impl Fn(ConfigError) -> Located {
    move |e| (rel_path(kind, e.field()), e)
}

impl StackSettings {
    pub(crate) fn resolve(name: &str, d: &Defaults, over: &StackConfig) -> Self {
        Self {
            name: name.to_string(),
            config: StackConfig {
                timeouts: merge(&d.timeouts, &over.timeouts, TimeoutsConfig::merged),
                bulkhead: merge(&d.bulkhead, &over.bulkhead, BulkheadConfig::merged),
                retry: merge(&d.retry, &over.retry, RetryConfig::merged),
                hedge: merge(&d.hedge, &over.hedge, HedgeConfig::merged),
                breaker: merge(&d.breaker, &over.breaker, BreakerConfig::merged),
                router: merge(&d.router, &over.router, RouterConfig::merged),
                backends: over.backends.clone(),
            },
        }
    }

    /// The overall deadline in force (the default when the file sets none).
    pub fn deadline(&self) -> Duration {
        self.timeouts().deadline.unwrap_or(DEFAULT_DEADLINE)
    }

    /// The per-attempt timeout in force (the default when the file sets none).
    pub fn attempt_timeout(&self) -> Duration {
        self.timeouts().attempt.unwrap_or(DEFAULT_ATTEMPT_TIMEOUT)
    }

    /// The bulkhead's fixed limit (the default when the file sets none; an adaptive
    /// bulkhead's starting point is its `adaptive.initial`).
    pub fn max_concurrent(&self) -> usize {
        self.bulkhead()
            .max_concurrent
            .unwrap_or(DEFAULT_MAX_IN_FLIGHT)
    }

    pub(crate) fn timeouts(&self) -> TimeoutsConfig {
        self.config.timeouts.clone().unwrap_or_default()
    }

    pub(crate) fn bulkhead(&self) -> BulkheadConfig {
        self.config.bulkhead.clone().unwrap_or_default()
    }

    pub(crate) fn retry(&self) -> RetryConfig {
        self.config.retry.clone().unwrap_or_default()
    }

    pub(crate) fn breaker(&self) -> BreakerConfig {
        self.config.breaker.clone().unwrap_or_default()
    }

    pub(crate) fn hedge(&self) -> HedgeConfig {
        self.config.hedge.clone().unwrap_or_default()
    }

    pub(crate) fn router(&self) -> RouterConfig {
        self.config.router.clone().unwrap_or_default()
    }

    /// Checks every part with its builder; the error's path is relative to the stack.
    pub(crate) fn check(&self) -> Result<(), Located> {
        let t = self.timeouts();
        if let Some(d) = t.deadline {
            crate::timeout::check("timeouts.deadline", d).map_err(at("timeouts"))?;
        }
        if let Some(d) = t.attempt {
            crate::timeout::check("timeouts.attempt", d).map_err(at("timeouts"))?;
        }
        self.check_backends()?;
        self.bulkhead()
            .apply(BulkheadLayer::builder().max_concurrent(DEFAULT_MAX_IN_FLIGHT))
            .and_then(|b| b.build())
            .map_err(at("bulkhead"))?;
        self.retry()
            .apply(RetryLayer::builder())
            .and_then(|b| b.build())
            .map_err(at("retry"))?;
        let hedge = self.hedge();
        hedge
            .apply(HedgeLayer::builder().percentile(DEFAULT_HEDGE_PERCENTILE))
            .and_then(|b| b.build())
            .map_err(at("hedge"))?;
        self.breaker()
            .builder()
            .and_then(|b| b.build())
            .map_err(at("breaker"))?;
        let backends = self.config.backends.iter().map(|b| {
            Backend::new(b.id.clone(), ())
                .tier(b.tier.unwrap_or(0))
                .weight(b.weight.unwrap_or(1))
        });
        self.router()
            .apply(Failover::<()>::builder().consecutive_failures(None))
            .and_then(|r| r.backends(backends).build())
            .map_err(at("router"))?;
        Ok(())
    }

    fn check_backends(&self) -> Result<(), Located> {
        let backends = &self.config.backends;
        if backends.is_empty() {
            return Err((
                vec![key("backends")],
                ConfigError::new("stack.backends", "needs at least one backend"),
            ));
        }
        for (i, b) in backends.iter().enumerate() {
            let here = |k: &str| vec![key("backends"), Seg::Index(i), key(k)];
            if b.id.is_empty() {
                return Err((
                    here("id"),
                    ConfigError::new("stack.backends.id", "must not be empty"),
                ));
            }
            if backends[..i].iter().any(|o| o.id == b.id) {
                return Err((
                    here("id"),
                    ConfigError::new(
                        "stack.backends.id",
                        format!("duplicate backend id `{}`", b.id),
                    ),
                ));
            }
            if b.weight == Some(0) {
                return Err((
                    here("weight"),
                    ConfigError::new("stack.backends.weight", "must be at least 1"),
                ));
            }
            #[cfg(feature = "http")]
            if let Some(url) = &b.url {
                crate::http::Upstream::new((), url).map_err(|e| (here("url"), e))?;
            }
        }
        Ok(())
    }

    /// Sets everything but the backends on `b`: the name, the timeouts, the
    /// bulkhead, the retry layer, hedging (when `enabled`), every breaker, the
    /// router. Also remembers the settings, for [`Stack::effective_config`] and
    /// [`Stack::reconfigure`].
    pub fn apply<S, C, P>(
        &self,
        b: StackBuilder<S, C, P>,
    ) -> Result<StackBuilder<S, C, P>, ConfigError> {
        self.check().map_err(|(_, e)| e)?;
        let t = self.timeouts();
        let mut b = b.name(self.name.as_str());
        if let Some(d) = t.deadline {
            b = b.deadline(d);
        }
        if let Some(d) = t.attempt {
            b = b.attempt_timeout(d);
        }
        // Each part was checked above: the fallbacks below are never taken.
        let bulkhead = self.bulkhead();
        b = b.bulkhead(move |x| {
            bulkhead
                .apply(x)
                .unwrap_or_else(|_| BulkheadLayer::builder())
        });
        let retry = self.retry();
        b = b.retry(move |x| retry.apply(x).unwrap_or_else(|_| RetryLayer::builder()));
        let hedge = self.hedge();
        if hedge.is_enabled() {
            b = b.hedge(move |x| hedge.apply(x).unwrap_or_else(|_| HedgeLayer::builder()));
        }
        let breaker = self.breaker();
        if breaker != BreakerConfig::default() {
            b = b.breaker(move |x| {
                breaker
                    .apply(x)
                    .unwrap_or_else(|_| CircuitBreakerLayer::builder())
            });
        }
        let router = self.router();
        b = b.router(move |x| router.apply(x).unwrap_or_else(|_| Failover::builder()));
        Ok(b.applied(Arc::new(self.clone())))
    }

    /// [`Stack::builder`] with these settings and the file's backends, each
    /// backend's service made by `make` (given the backend's table: its id, tier,
    /// weight, URL).
    pub fn builder<S>(
        &self,
        mut make: impl FnMut(&BackendConfig) -> S,
    ) -> Result<StackBuilder<S>, ConfigError> {
        let mut b = Stack::builder();
        for backend in &self.config.backends {
            b = b.backend_with(
                Backend::new(backend.id.clone(), make(backend))
                    .tier(backend.tier.unwrap_or(0))
                    .weight(backend.weight.unwrap_or(1)),
            );
        }
        self.apply(b)
    }

    /// [`Stack::http`] with these settings: each backend is its `url` (required)
    /// through one shared hyper-util client, with its tier and weight.
    #[cfg(feature = "http-client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http-client")))]
    #[allow(clippy::type_complexity)]
    pub fn http<B>(
        &self,
    ) -> Result<
        StackBuilder<
            crate::http::Upstream<crate::stack::HttpClient<B>>,
            crate::http::HttpClassifier,
            crate::http::HttpReplay,
        >,
        ConfigError,
    >
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
    {
        let client: crate::stack::HttpClient<B> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let mut b = Stack::http_builder();
        for backend in &self.config.backends {
            let url = backend.url.as_deref().ok_or_else(|| {
                ConfigError::new(
                    "stack.backends.url",
                    format!("backend `{}` has no url", backend.id),
                )
            })?;
            let upstream = crate::http::Upstream::new(client.clone(), url)?;
            b = b.backend_with(
                Backend::new(backend.id.clone(), upstream)
                    .tier(backend.tier.unwrap_or(0))
                    .weight(backend.weight.unwrap_or(1)),
            );
        }
        self.apply(b)
    }

    /// The settings printed as a configuration file holding this one stack
    /// (`[stacks.NAME]`), which [`FortifyConfig`](super::FortifyConfig) reads back
    /// to equal settings.
    pub fn to_toml(&self) -> String {
        let mut model = FileModel::default();
        model.stacks.insert(self.name.clone(), self.config.clone());
        super::layout::to_toml(&model)
    }
}
