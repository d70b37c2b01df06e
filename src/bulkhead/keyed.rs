//! One bulkhead per key: [`KeyedLayer`], re-exported by [`partition`](super::partition),
//! whose module docs describe it.

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
use crate::keyed::{Evict, KeyedMap, View};

struct KeyedShared<K, C> {
    template: BulkheadBuilder<C>,
    map: KeyedMap<K, Slots>,
    overflow: Slots,
    /// Names each key's bulkhead (see [`KeyedLayer::key_label`]).
    label: std::sync::OnceLock<KeyLabel<K>>,
}

/// Names a key in its bulkhead's events and logs.
type KeyLabel<K> = Arc<dyn Fn(&K) -> String + Send + Sync>;

impl<K: Eq + Hash, C> KeyedShared<K, C> {
    #[inline]
    fn slots(&self, view: &mut View<K, Slots>, key: K) -> Slots {
        let make = |key: &K| {
            let listeners = match self.label.get() {
                Some(label) => {
                    let base = self.template.listeners.name();
                    let name = match base {
                        "" => label(key),
                        base => format!("{base}/{}", label(key)),
                    };
                    self.template.listeners.clone().named(name)
                }
                None => self.template.listeners.clone(),
            };
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

/// Wraps services in [`Keyed`]: one bulkhead per key. See the [module docs](super::partition).
pub struct KeyedLayer<K, F, C = DefaultClassifier> {
    shared: Arc<KeyedShared<K, C>>,
    key: F,
    classifier: C,
}

impl<K, F: Clone, C: Clone> Clone for KeyedLayer<K, F, C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            key: self.key.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<K, F, C> fmt::Debug for KeyedLayer<K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLayer")
            .field("template", &self.shared.template)
            .field("max_keys", &self.shared.map.max_keys())
            .finish_non_exhaustive()
    }
}

impl<K, F, C: Clone> KeyedLayer<K, F, C> {
    /// One bulkhead configured like `template` for each key `key(&request)` returns,
    /// for at most `max_keys` keys (at least 1); further keys share an overflow
    /// bulkhead of the same configuration.
    pub fn new<Req>(
        template: BulkheadBuilder<C>,
        max_keys: usize,
        key: F,
    ) -> Result<Self, ConfigError>
    where
        F: Fn(&Req) -> K,
    {
        if max_keys == 0 {
            return Err(ConfigError::new(
                "bulkhead.keyed.max_keys",
                "must be at least 1",
            ));
        }
        let overflow = template.make_slots()?;
        let classifier = template.clone().build()?.classifier;
        Ok(Self {
            shared: Arc::new(KeyedShared {
                template,
                map: KeyedMap::new(max_keys, Duration::from_secs(300)),
                overflow,
                label: std::sync::OnceLock::new(),
            }),
            key,
            classifier,
        })
    }

    /// A bulkhead whose key made no call for this long may be evicted when a new key
    /// arrives at `max_keys` (greater than zero). Default 5 minutes. Applies to every
    /// clone of the layer.
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

    /// Names each key's bulkhead `"{name}/{label(key)}"` (`"db/tenant-7"`), so its
    /// events and log lines (a full bulkhead's warning) say which key was refused.
    /// The label is made once per key, when its bulkhead is made, never on a hit.
    /// Set once, before the first call: a second call is an error naming the field.
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
    pub fn handle(&self) -> KeyedHandle<K, C> {
        KeyedHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S, K, F: Clone, C: Clone> Layer<S> for KeyedLayer<K, F, C> {
    type Service = Keyed<S, K, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Keyed {
            inner,
            view: self.shared.map.view(),
            shared: self.shared.clone(),
            key: self.key.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// Reads the bulkheads of a [`KeyedLayer`].
pub struct KeyedHandle<K, C = DefaultClassifier> {
    shared: Arc<KeyedShared<K, C>>,
}

impl<K, C> Clone for KeyedHandle<K, C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<K, C> fmt::Debug for KeyedHandle<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedHandle")
            .field("max_keys", &self.shared.map.max_keys())
            .finish_non_exhaustive()
    }
}

impl<K: Eq + Hash, C> KeyedHandle<K, C> {
    /// The bulkhead of `key`, if it has one of its own.
    pub fn get(&self, key: &K) -> Option<BulkheadHandle> {
        self.shared
            .map
            .peek(key)
            .map(|slots| BulkheadHandle { slots })
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

/// One bulkhead per key. Made by a [`KeyedLayer`]; behaves like
/// [`Bulkhead`](super::Bulkhead) with the key's bulkhead.
pub struct Keyed<S, K, F, C = DefaultClassifier> {
    inner: S,
    /// This service's snapshot of the map (hits read it without a lock).
    view: View<K, Slots>,
    shared: Arc<KeyedShared<K, C>>,
    key: F,
    classifier: C,
}

impl<S: Clone, K, F: Clone, C: Clone> Clone for Keyed<S, K, F, C> {
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

impl<S: fmt::Debug, K, F, C> fmt::Debug for Keyed<S, K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyed")
            .field("inner", &self.inner)
            .field("max_keys", &self.shared.map.max_keys())
            .finish_non_exhaustive()
    }
}

impl<S, K, F, C, Req> Service<Req> for Keyed<S, K, F, C>
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
