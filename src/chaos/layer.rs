use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::handle::{ChaosHandle, Control};
use super::rule::Rule;
use super::service::Chaos;
use super::shared::Shared;
use crate::config::ConfigError;
use crate::observe::{Listener, Listeners};
use crate::rng::Rng;

/// Wraps services in [`Chaos`]. Built by [`ChaosLayer::builder`].
///
/// Every service the layer (or a clone of it) makes shares the rules, the random
/// stream and the [`ChaosHandle`].
pub struct ChaosLayer<Req, Res, E> {
    shared: Arc<Shared<Req, Res, E>>,
}

impl<Req, Res, E> Clone for ChaosLayer<Req, Res, E> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<Req, Res, E> fmt::Debug for ChaosLayer<Req, Res, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosLayer")
            .field("rules", &self.shared.rules)
            .field("enabled", &self.shared.control.is_enabled())
            .finish()
    }
}

impl<Req, Res, E> ChaosLayer<Req, Res, E> {
    /// A builder with no rules, enabled, with a random stream seeded from the
    /// operating system.
    pub fn builder() -> ChaosBuilder<Req, Res, E> {
        ChaosBuilder {
            settings: Settings {
                rules: Vec::new(),
                rng: None,
                enabled: true,
                listeners: Listeners::default(),
            },
        }
    }

    /// The handle that switches injection on and off and reads its counters.
    pub fn handle(&self) -> ChaosHandle {
        ChaosHandle {
            control: self.shared.control.clone(),
        }
    }
}

impl<S, Req, Res, E> Layer<S> for ChaosLayer<Req, Res, E> {
    type Service = Chaos<S, Req, Res, E>;

    fn layer(&self, inner: S) -> Self::Service {
        Chaos {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Builds a [`ChaosLayer`].
pub struct ChaosBuilder<Req, Res, E> {
    settings: Settings<Req, Res, E>,
}

/// A [`ChaosBuilder`]'s settings, as one value (as every builder keeps them).
struct Settings<Req, Res, E> {
    rules: Vec<Rule<Req, Res, E>>,
    rng: Option<Rng>,
    enabled: bool,
    listeners: Listeners,
}

impl<Req, Res, E> fmt::Debug for ChaosBuilder<Req, Res, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("ChaosBuilder")
            .field("rules", &s.rules)
            .field("enabled", &s.enabled)
            .field("name", &s.listeners.name())
            .finish_non_exhaustive()
    }
}

impl<Req, Res, E> ChaosBuilder<Req, Res, E> {
    /// Adds a rule. Rules are tried in the order they were added; the first one that
    /// selects a call (schedule, key, then a probability draw) injects its fault, and
    /// the others are not tried.
    pub fn rule(mut self, rule: Rule<Req, Res, E>) -> Self {
        self.settings.rules.push(rule);
        self
    }

    /// The random stream for probability draws and latency samples. Seed it for
    /// reproducible faults.
    pub fn rng(mut self, rng: Rng) -> Self {
        self.settings.rng = Some(rng);
        self
    }

    /// Whether injection starts switched on (default `true`); switch it later with the
    /// [`ChaosHandle`].
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.settings.enabled = enabled;
        self
    }

    /// The instance's name, carried by its events (an
    /// [`ChaosEvent::Injected`](crate::observe::ChaosEvent::Injected) per fault) and
    /// by the `fortify_chaos_injections_total` metric, so a dashboard shows when a
    /// drill's faults ran.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).named(name);
        self
    }

    /// Adds a listener for the layer's events (one per injected fault); it never
    /// replaces one given before.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).with(listener);
        self
    }

    /// Checks every rule and builds the layer. Schedules are measured from this moment
    /// (`tokio::time::Instant::now()`) until
    /// [`ChaosHandle::restart_schedule`] is called.
    pub fn build(self) -> Result<ChaosLayer<Req, Res, E>, ConfigError> {
        let s = self.settings;
        for rule in &s.rules {
            rule.validate()?;
        }
        Ok(ChaosLayer {
            shared: Arc::new(Shared {
                rules: s.rules.into_boxed_slice(),
                rng: s.rng.unwrap_or_default(),
                control: Arc::new(Control::new(s.enabled)),
                listeners: s.listeners,
            }),
        })
    }
}
