use std::fmt;
use std::time::Duration;

use tower_layer::Layer;

use super::adaptive::{Adaptive, AdaptiveLimit};
use super::limiter::Core;
use super::shared::{Shared, Slots, slots};
use super::{Bulkhead, BulkheadHandle};
use crate::classify::DefaultClassifier;
use crate::config::ConfigError;
use crate::observe::{Listener, Listeners};

/// Wraps services in [`Bulkhead`]. Built by [`BulkheadLayer::builder`].
///
/// Every service made by one layer (and by its clones) draws from **one** bulkhead:
/// build one layer per dependency you want to isolate.
pub struct BulkheadLayer<C = DefaultClassifier> {
    pub(crate) slots: Slots,
    pub(crate) classifier: C,
}

impl<C: Clone> Clone for BulkheadLayer<C> {
    fn clone(&self) -> Self {
        Self {
            slots: self.slots.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C> fmt::Debug for BulkheadLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.slots[0].shared;
        f.debug_struct("BulkheadLayer")
            .field("limit", &shared.core.limit())
            .field("max_queued", &shared.core.max_queued())
            .field("max_wait", &shared.max_wait)
            .field("adaptive", &shared.adaptive.is_some())
            .finish_non_exhaustive()
    }
}

impl BulkheadLayer {
    /// A builder with the defaults: 100 concurrent calls, no queue (reject at once),
    /// a fixed limit, [`DefaultClassifier`].
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder {
            settings: Settings {
                max_concurrent: 100,
                max_queued: 0,
                max_wait: Duration::ZERO,
                adaptive: None,
                listeners: Listeners::default(),
            },
            classifier: DefaultClassifier,
        }
    }

    /// A fixed bulkhead of `max_concurrent` calls that rejects at once when full.
    pub fn new(max_concurrent: usize) -> Result<Self, ConfigError> {
        Self::builder().max_concurrent(max_concurrent).build()
    }
}

impl<C> BulkheadLayer<C> {
    /// A handle on the bulkhead this layer's services share.
    pub fn handle(&self) -> BulkheadHandle {
        BulkheadHandle {
            slots: self.slots.clone(),
        }
    }
}

impl<S, C: Clone> Layer<S> for BulkheadLayer<C> {
    type Service = Bulkhead<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        let shared = &self.slots[0].shared;
        Bulkhead {
            inner,
            ticket: shared.core.ticket(),
            adaptive: shared.adaptive.is_some(),
            slots: self.slots.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// Builds a [`BulkheadLayer`]; see [`BulkheadLayer::builder`] for the defaults.
pub struct BulkheadBuilder<C = DefaultClassifier> {
    pub(crate) settings: Settings,
    pub(crate) classifier: C,
}

/// A [`BulkheadBuilder`]'s settings but the classifier: the methods that change the
/// builder's type move them as one value, and a new option is added here and in its
/// setter.
#[derive(Clone)]
pub(crate) struct Settings {
    max_concurrent: usize,
    max_queued: usize,
    max_wait: Duration,
    adaptive: Option<AdaptiveLimit>,
    pub(crate) listeners: Listeners,
}

impl<C> fmt::Debug for BulkheadBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("BulkheadBuilder")
            .field("max_concurrent", &s.max_concurrent)
            .field("max_queued", &s.max_queued)
            .field("max_wait", &s.max_wait)
            .field("adaptive", &s.adaptive)
            .finish_non_exhaustive()
    }
}

impl<C> BulkheadBuilder<C> {
    /// The most calls in flight at once (a fixed limit; at least 1; default 100).
    pub fn max_concurrent(mut self, max_concurrent: usize) -> Self {
        self.settings.max_concurrent = max_concurrent;
        self
    }

    /// Lets up to `max_queued` callers wait, in arrival order, for at most `max_wait`
    /// each when the limit is reached. A caller that finds the queue full, or waits
    /// `max_wait` without a permit, gets [`BulkheadFull`](super::error::BulkheadFull).
    /// `max_queued == 0` or a zero `max_wait` means rejecting at once (the default).
    /// `max_wait` also bounds readying the inner service once a permit is granted: a
    /// call not sent by then gives its permit back and gets `BulkheadFull`.
    pub fn queue(mut self, max_queued: usize, max_wait: Duration) -> Self {
        self.settings.max_queued = max_queued;
        self.settings.max_wait = max_wait;
        self
    }

    /// Lets an algorithm choose the limit from observed latency and overload
    /// outcomes; `max_concurrent` is then ignored. See [`AdaptiveLimit`].
    pub fn adaptive(mut self, adaptive: AdaptiveLimit) -> Self {
        self.settings.adaptive = Some(adaptive);
        self
    }

    /// Names this bulkhead (`"payments"`, `"eu-1"`): every log line it writes carries
    /// the name as the field `name`, and listeners get it with each event
    /// ([`Listener::on_named_event`](crate::observe::Listener::on_named_event)).
    /// Unnamed by default.
    pub fn name(mut self, name: impl Into<std::sync::Arc<str>>) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).named(name);
        self
    }

    /// Sends [`BulkheadEvent`](crate::observe::BulkheadEvent)s to `listener`.
    /// Listeners add up: each one registered gets every event.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).with(listener);
        self
    }

    /// Decides which results are overload outcomes (adaptive mode only; the default
    /// classifier reports none, so only latency moves the limit).
    pub fn classifier<C2>(self, classifier: C2) -> BulkheadBuilder<C2> {
        BulkheadBuilder {
            settings: self.settings,
            classifier,
        }
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<BulkheadLayer<C>, ConfigError> {
        let slots = self.make_slots()?;
        Ok(BulkheadLayer {
            slots,
            classifier: self.classifier,
        })
    }

    /// Checks the configuration and makes the shared state of one bulkhead.
    pub(crate) fn make_slots(&self) -> Result<Slots, ConfigError> {
        self.make_slots_with(self.settings.listeners.clone())
    }

    /// As [`make_slots`](Self::make_slots), reporting to `listeners` (a keyed
    /// bulkhead's per-key name).
    pub(crate) fn make_slots_with(&self, listeners: Listeners) -> Result<Slots, ConfigError> {
        let s = &self.settings;
        let limit = match &s.adaptive {
            Some(a) => {
                a.validate()?;
                a.initial
            }
            None => {
                if s.max_concurrent == 0 {
                    return Err(ConfigError::new(
                        "bulkhead.max_concurrent",
                        "must be at least 1",
                    ));
                }
                s.max_concurrent
            }
        };
        let max_queued = if s.max_wait.is_zero() {
            0
        } else {
            s.max_queued
        };
        Ok(slots(Shared {
            core: Core::new(limit, max_queued),
            adaptive: s.adaptive.map(Adaptive::new),
            max_wait: s.max_wait,
            listeners,
        }))
    }
}

impl<C: Clone> Clone for BulkheadBuilder<C> {
    fn clone(&self) -> Self {
        Self {
            settings: self.settings.clone(),
            classifier: self.classifier.clone(),
        }
    }
}
