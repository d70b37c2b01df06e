//! One bulkhead per key: [`BulkheadBuilder::keyed`] makes a [`KeyedBulkheadLayer`];
//! the [`partition`](super::partition) module docs describe its bound.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower_layer::Layer;
use tower_service::Service;

use super::future::ResponseFuture;
use super::service::dispatch;
use super::shared::Slots;
use super::{BulkheadBuilder, BulkheadHandle};
use crate::BoxError;
use crate::classify::{Classify, DefaultClassifier};
use crate::config::ConfigError;
use crate::keyed::{Evict, KeyLabel, KeySettings, KeyedMap, View, listeners_for};

struct KeyedShared<K, C> {
    template: BulkheadBuilder<C>,
    map: KeyedMap<K, Slots>,
    overflow: Slots,
    /// Names each key's bulkhead (see [`KeyedBulkheadBuilder::key_label`]); set once,
    /// when the layer is built (or by the deprecated setter on the layer).
    label: std::sync::OnceLock<KeyLabel<K>>,
}

impl<K: Eq + Hash, C> KeyedShared<K, C> {
    #[inline]
    fn slots(&self, view: &mut View<K, Slots>, key: K) -> Slots {
        let make = |key: &K| {
            let listeners = listeners_for(self.label.get(), &self.template.settings.listeners, key);
            self.template
                .make_slots_with(listeners)
                .expect("the template was validated when the layer was built")
        };
        let rank = |slots: &Slots| {
            if slots[0].shared.core.in_flight() == 0 {
                Evict::First
            } else {
                Evict::Never
            }
        };
        self.map
            .get_or_insert_in(view, key, make, rank)
            .unwrap_or_else(|| self.overflow.clone())
    }
}

impl<C> BulkheadBuilder<C> {
    /// One bulkhead per key: `key` picks the key of each request (tenant, route,
    /// host), and each key gets a bulkhead configured like this one. See
    /// [`KeyedBulkheadBuilder`].
    pub fn keyed<K, F, Req>(self, key: F) -> KeyedBulkheadBuilder<K, F, C>
    where
        F: Fn(&Req) -> K,
        K: Hash + Eq,
    {
        KeyedBulkheadBuilder {
            base: self,
            key,
            settings: KeySettings::new(1024, Duration::from_secs(300)),
        }
    }
}

/// Builds a [`KeyedBulkheadLayer`]: every key gets its own bulkhead with the
/// configuration of the [`BulkheadBuilder`] it came from. From
/// [`BulkheadBuilder::keyed`]; the bound and what happens at it are in the
/// [partition docs](super::partition#one-bulkhead-per-key).
pub struct KeyedBulkheadBuilder<K, F, C = DefaultClassifier> {
    base: BulkheadBuilder<C>,
    key: F,
    settings: KeySettings<Option<KeyLabel<K>>>,
}

impl<K, F, C> fmt::Debug for KeyedBulkheadBuilder<K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkheadBuilder")
            .field("bulkhead", &self.base)
            .field("max_keys", &self.settings.max_keys)
            .field("idle_timeout", &self.settings.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl<K, F, C> KeyedBulkheadBuilder<K, F, C> {
    /// The most keys with a bulkhead of their own at once (at least 1); further keys
    /// share an overflow bulkhead of the same configuration. Default 1024.
    pub fn max_keys(mut self, n: usize) -> Self {
        self.settings.max_keys = n;
        self
    }

    /// A bulkhead whose key made no call for this long may be evicted when a new key
    /// arrives at `max_keys` (greater than zero). Default 5 minutes.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.settings.idle_timeout = idle;
        self
    }

    /// Names each key's bulkhead `"{name}/{label(key)}"` (`"db/tenant-7"`), so its
    /// events and log lines (a full bulkhead's warning) say which key was refused.
    /// The label is made once per key, when its bulkhead is made, never on a hit.
    /// Without it, every key's bulkhead carries the layer's name.
    pub fn key_label(mut self, label: impl Fn(&K) -> String + Send + Sync + 'static) -> Self {
        self.settings.label = Some(Arc::new(label));
        self
    }

    /// Checks the configuration and builds the layer. Errors name the field
    /// (`bulkhead.keyed.max_keys`, `bulkhead.keyed.idle_timeout`, and the
    /// bulkhead's own).
    pub fn build(self) -> Result<KeyedBulkheadLayer<K, F, C>, ConfigError>
    where
        C: Clone,
    {
        self.settings
            .validate("bulkhead.keyed.max_keys", "bulkhead.keyed.idle_timeout")?;
        KeyedBulkheadLayer::make(self.base, self.settings, self.key)
    }
}

/// Wraps services in [`KeyedBulkhead`]: one bulkhead per key, shared by every
/// service the layer (or a clone) makes. Built by [`BulkheadBuilder::keyed`]; see
/// the [partition docs](super::partition#one-bulkhead-per-key).
pub struct KeyedBulkheadLayer<K, F, C = DefaultClassifier> {
    shared: Arc<KeyedShared<K, C>>,
    key: F,
    classifier: C,
}

impl<K, F: Clone, C: Clone> Clone for KeyedBulkheadLayer<K, F, C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            key: self.key.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<K, F, C> fmt::Debug for KeyedBulkheadLayer<K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkheadLayer")
            .field("template", &self.shared.template)
            .field("max_keys", &self.shared.map.max_keys())
            .finish_non_exhaustive()
    }
}

impl<K, F, C: Clone> KeyedBulkheadLayer<K, F, C> {
    fn make(
        template: BulkheadBuilder<C>,
        settings: KeySettings<Option<KeyLabel<K>>>,
        key: F,
    ) -> Result<Self, ConfigError> {
        let overflow = template.make_slots()?;
        let classifier = template.classifier.clone();
        let label = std::sync::OnceLock::new();
        if let Some(l) = settings.label.clone() {
            let _ = label.set(l);
        }
        Ok(Self {
            shared: Arc::new(KeyedShared {
                map: settings.map(),
                template,
                overflow,
                label,
            }),
            key,
            classifier,
        })
    }

    /// One bulkhead configured like `template` for each key `key(&request)` returns,
    /// for at most `max_keys` keys (at least 1); further keys share an overflow
    /// bulkhead of the same configuration.
    #[deprecated(
        since = "0.1.0",
        note = "use `BulkheadBuilder::keyed(key).max_keys(n).build()`, the entry every keyed layer shares"
    )]
    pub fn new<Req>(
        template: BulkheadBuilder<C>,
        max_keys: usize,
        key: F,
    ) -> Result<Self, ConfigError>
    where
        F: Fn(&Req) -> K,
    {
        let settings = KeySettings::new(max_keys, Duration::from_secs(300));
        settings.validate("bulkhead.keyed.max_keys", "bulkhead.keyed.idle_timeout")?;
        Self::make(template, settings, key)
    }

    /// A bulkhead whose key made no call for this long may be evicted when a new key
    /// arrives at `max_keys` (greater than zero). Applies to every clone of the layer.
    #[deprecated(
        since = "0.1.0",
        note = "use `KeyedBulkheadBuilder::idle_timeout`, from `BulkheadBuilder::keyed`"
    )]
    pub fn idle_timeout(self, idle: Duration) -> Result<Self, ConfigError> {
        if idle.is_zero() {
            return Err(ConfigError::new(
                "bulkhead.keyed.idle_timeout",
                "must be greater than zero",
            ));
        }
        self.shared.map.set_idle(idle);
        Ok(self)
    }

    /// Names each key's bulkhead `"{name}/{label(key)}"`. Set once, before the first
    /// call: a second call is an error naming the field.
    #[deprecated(
        since = "0.1.0",
        note = "use `KeyedBulkheadBuilder::key_label`, from `BulkheadBuilder::keyed`"
    )]
    pub fn key_label(
        self,
        label: impl Fn(&K) -> String + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        self.shared
            .label
            .set(Arc::new(label))
            .map_err(|_| ConfigError::new("bulkhead.keyed.key_label", "is already set"))?;
        Ok(self)
    }

    /// A handle on the keyed bulkheads.
    pub fn handle(&self) -> KeyedBulkheadHandle<K, C> {
        KeyedBulkheadHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S, K, F: Clone, C: Clone> Layer<S> for KeyedBulkheadLayer<K, F, C> {
    type Service = KeyedBulkhead<S, K, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedBulkhead {
            inner,
            view: self.shared.map.view(),
            shared: self.shared.clone(),
            key: self.key.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// Reads the bulkheads of a [`KeyedBulkheadLayer`].
pub struct KeyedBulkheadHandle<K, C = DefaultClassifier> {
    shared: Arc<KeyedShared<K, C>>,
}

impl<K, C> Clone for KeyedBulkheadHandle<K, C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<K, C> fmt::Debug for KeyedBulkheadHandle<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkheadHandle")
            .field("max_keys", &self.shared.map.max_keys())
            .finish_non_exhaustive()
    }
}

impl<K: Eq + Hash, C> KeyedBulkheadHandle<K, C> {
    /// The bulkhead of `key`, if it has one of its own.
    pub fn get(&self, key: &K) -> Option<BulkheadHandle> {
        self.shared
            .map
            .peek(key)
            .map(|slots| BulkheadHandle { slots })
    }

    /// Whether `key` has a bulkhead of its own.
    pub fn contains_key(&self, key: &K) -> bool {
        self.shared.map.peek(key).is_some()
    }

    /// Keys that have a bulkhead of their own.
    pub fn len(&self) -> usize {
        self.shared.map.len()
    }

    /// Whether no key has a bulkhead yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bulkhead shared by new keys while every key's bulkhead is busy at
    /// `max_keys`.
    pub fn overflow(&self) -> BulkheadHandle {
        BulkheadHandle {
            slots: self.shared.overflow.clone(),
        }
    }
}

/// One bulkhead per key. Made by a [`KeyedBulkheadLayer`]; behaves like
/// [`Bulkhead`](super::Bulkhead) with the key's bulkhead.
pub struct KeyedBulkhead<S, K, F, C = DefaultClassifier> {
    inner: S,
    /// This service's snapshot of the map (hits read it without a lock).
    view: View<K, Slots>,
    shared: Arc<KeyedShared<K, C>>,
    key: F,
    classifier: C,
}

impl<S: Clone, K, F: Clone, C: Clone> Clone for KeyedBulkhead<S, K, F, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            view: self.view.clone(),
            shared: self.shared.clone(),
            key: self.key.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S: fmt::Debug, K, F, C> fmt::Debug for KeyedBulkhead<S, K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkhead")
            .field("inner", &self.inner)
            .field("max_keys", &self.shared.map.max_keys())
            .finish_non_exhaustive()
    }
}

impl<S, K, F, C, Req> Service<Req> for KeyedBulkhead<S, K, F, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    K: Eq + Hash + Clone,
    F: Fn(&Req) -> K,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let slots = self.shared.slots(&mut self.view, (self.key)(&req));
        let shared = &slots[0].shared;
        let (ticket, adaptive) = (shared.core.ticket(), shared.adaptive.is_some());
        dispatch(
            &slots,
            ticket,
            adaptive,
            &mut self.inner,
            &self.classifier,
            req,
        )
    }
}
