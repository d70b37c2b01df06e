//! One breaker per key, in a bounded map.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use super::config::Config;
use super::core::Core;
use super::error::BreakerError;
use super::future::{Permit, ResponseFuture};
use super::handle::CircuitBreakerHandle;
use super::layer::CircuitBreakerBuilder;
use super::shared::Slot;
use crate::BoxError;
use crate::backoff::Rng;
use crate::classify::Classify;
use crate::config::ConfigError;
use crate::keyed::{Evict, KeyLabel, KeySettings, KeyedMap, View};
use crate::observe::{CircuitState, Listeners};
use crate::shard::Padded;

impl<C> CircuitBreakerBuilder<C> {
    /// One breaker per key: `key` picks the key of each request (host, route,
    /// tenant). See [`KeyedCircuitBreakerBuilder`].
    pub fn keyed<K, F, Req>(self, key: F) -> KeyedCircuitBreakerBuilder<K, F, C>
    where
        F: Fn(&Req) -> K,
        K: Hash + Eq,
    {
        KeyedCircuitBreakerBuilder::new(self, key)
    }
}

/// Builds a [`KeyedCircuitBreakerLayer`]: every key gets its own breaker with the
/// configuration of the [`CircuitBreakerBuilder`] it came from.
///
/// **The bound.** The map holds at most [`max_keys`](Self::max_keys) breakers
/// (default 1024). When a new key arrives and the map is full, breakers idle for
/// [`idle_timeout`](Self::idle_timeout) (default 5 min) are evicted first; if none
/// is, the least recently used *closed* breaker goes, and if every breaker is open
/// or half-open, the least recently used one. An evicted key starts again closed,
/// with empty windows. The scan that finds a victim is O(`max_keys`) and only runs
/// when a new key arrives. Recency is kept without a clock read on the call path:
/// idle and least-recently-used are measured to the resolution of those scans (a
/// breaker used within `idle_timeout` is never evicted as idle). The map is read by
/// concurrent calls, so keys must be `Send + Sync`.
pub struct KeyedCircuitBreakerBuilder<K, F, C> {
    base: CircuitBreakerBuilder<C>,
    key: F,
    settings: KeySettings<Option<KeyLabel<K>>>,
}

impl<K, F, C> fmt::Debug for KeyedCircuitBreakerBuilder<K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerBuilder")
            .field("breaker", &self.base)
            .field("max_keys", &self.settings.max_keys)
            .field("idle_timeout", &self.settings.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl<K, F, C> KeyedCircuitBreakerBuilder<K, F, C> {
    pub(crate) fn new(base: CircuitBreakerBuilder<C>, key: F) -> Self {
        Self {
            base,
            key,
            settings: KeySettings::new(1024, Duration::from_secs(300)),
        }
    }

    /// The most breakers kept at once (at least 1). Default 1024.
    pub fn max_keys(mut self, n: usize) -> Self {
        self.settings.max_keys = n;
        self
    }

    /// A breaker not used for this long may be evicted when the map is full
    /// (greater than zero). Default 5 minutes.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.settings.idle_timeout = idle;
        self
    }

    /// Names each key's breaker `"{name}/{label(key)}"` (`"payments/tenant-7"`), so
    /// its events, log lines and metric series say which key tripped. The label is
    /// made once per key, when its breaker is made (a miss), never on a hit. Series
    /// stay bounded as the map is: at most `max_keys` keys at once (an evicted key's
    /// series keep their last value). Without it, every key's breaker carries the
    /// layer's name.
    pub fn key_label(mut self, label: impl Fn(&K) -> String + Send + Sync + 'static) -> Self {
        self.settings.label = Some(Arc::new(label));
        self
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<KeyedCircuitBreakerLayer<K, F, C>, ConfigError> {
        let cfg = self.base.config()?;
        self.settings
            .validate("breaker.max_keys", "breaker.idle_timeout")?;
        let base = self.base.settings;
        Ok(KeyedCircuitBreakerLayer {
            shared: Arc::new(KeyedShared {
                map: self.settings.map(),
                key: self.key,
                cfg,
                rng: base.rng.unwrap_or_default(),
                listeners: base.listeners,
                keys: self.settings,
                classifier: self.base.classifier,
            }),
        })
    }
}

pub(crate) struct KeyedShared<K, F, C> {
    map: KeyedMap<K, Arc<Padded<Slot<C>>>>,
    key: F,
    cfg: Config,
    rng: Rng,
    listeners: Listeners,
    /// The key settings: the label names each key's breaker.
    keys: KeySettings<Option<KeyLabel<K>>>,
    classifier: C,
}

impl<K: Hash + Eq, F, C: Clone> KeyedShared<K, F, C> {
    #[inline]
    fn slot(&self, view: &mut View<K, Arc<Padded<Slot<C>>>>, key: K) -> Arc<Padded<Slot<C>>> {
        let make = |key: &K| {
            let listeners = self.keys.listeners_for(&self.listeners, key);
            Arc::new(Padded(Slot {
                core: Arc::new(Core::new(self.cfg.clone(), self.rng.clone(), listeners)),
                classifier: self.classifier.clone(),
            }))
        };
        let rank = |slot: &Arc<Padded<Slot<C>>>| {
            if slot.core.status().state == CircuitState::Closed {
                Evict::First
            } else {
                Evict::Last
            }
        };
        self.map
            .get_or_insert_in(view, key, make, rank)
            .expect("a breaker may always be evicted")
    }
}

/// Wraps services in a [`KeyedCircuitBreaker`]: one breaker per key, shared by every
/// service the layer (or a clone) makes. Built by [`CircuitBreakerBuilder::keyed`].
pub struct KeyedCircuitBreakerLayer<K, F, C> {
    shared: Arc<KeyedShared<K, F, C>>,
}

impl<K, F, C> Clone for KeyedCircuitBreakerLayer<K, F, C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<K, F, C> fmt::Debug for KeyedCircuitBreakerLayer<K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerLayer")
            .field("max_keys", &self.shared.map.max_keys())
            .finish_non_exhaustive()
    }
}

impl<K, F, C> KeyedCircuitBreakerLayer<K, F, C>
where
    K: Hash + Eq + Send + Sync + 'static,
    F: Send + Sync + 'static,
    C: Clone + Send + Sync + 'static,
{
    /// A handle on the map of breakers.
    pub fn handle(&self) -> KeyedCircuitBreakerHandle<K> {
        KeyedCircuitBreakerHandle {
            view: self.shared.clone(),
        }
    }
}

impl<S, K, F, C> Layer<S> for KeyedCircuitBreakerLayer<K, F, C> {
    type Service = KeyedCircuitBreaker<S, K, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedCircuitBreaker {
            inner,
            view: self.shared.map.view(),
            shared: self.shared.clone(),
        }
    }
}

/// A circuit breaker per key. Made by a [`KeyedCircuitBreakerLayer`].
///
/// Each call computes its key and looks its breaker up in this service's snapshot of
/// the map (no lock, no clock read unless the key is new or the map changed since);
/// after that it behaves like [`CircuitBreaker`](super::CircuitBreaker).
pub struct KeyedCircuitBreaker<S, K, F, C> {
    inner: S,
    view: View<K, Arc<Padded<Slot<C>>>>,
    shared: Arc<KeyedShared<K, F, C>>,
}

impl<S: Clone, K, F, C> Clone for KeyedCircuitBreaker<S, K, F, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            view: self.view.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, K, F, C> fmt::Debug for KeyedCircuitBreaker<S, K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreaker")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, C> KeyedCircuitBreaker<S, K, F, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the breaker and returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req, K, F, C> Service<Req> for KeyedCircuitBreaker<S, K, F, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    F: Fn(&Req) -> K,
    K: Hash + Eq,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BreakerError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(BreakerError::inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let key = (self.shared.key)(&req);
        let slot = self.shared.slot(&mut self.view, key);
        match slot.core.admit() {
            Ok(admit) => {
                let start = slot.core.times_calls().then(Instant::now);
                // The looked-up handle becomes the permit: no second clone.
                let permit = Permit::new(slot, admit, start);
                ResponseFuture::called(self.inner.call(req), permit)
            }
            Err(open) => ResponseFuture::rejected(open),
        }
    }
}

trait KeyedView<K>: Send + Sync {
    fn get(&self, key: &K) -> Option<CircuitBreakerHandle>;
    fn len(&self) -> usize;
}

impl<K, F, C> KeyedView<K> for KeyedShared<K, F, C>
where
    K: Hash + Eq + Send + Sync,
    F: Send + Sync,
    C: Clone + Send + Sync,
{
    fn get(&self, key: &K) -> Option<CircuitBreakerHandle> {
        self.map.peek(key).map(|slot| CircuitBreakerHandle {
            core: slot.core.clone(),
        })
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// Read access to the breakers of a keyed layer.
#[derive(Clone)]
pub struct KeyedCircuitBreakerHandle<K> {
    view: Arc<dyn KeyedView<K>>,
}

impl<K> fmt::Debug for KeyedCircuitBreakerHandle<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerHandle")
            .field("keys", &self.view.len())
            .finish()
    }
}

impl<K> KeyedCircuitBreakerHandle<K> {
    /// The breaker of `key`, if the map holds one. Manual control through it
    /// (force open, reset) lasts as long as the key stays in the map.
    pub fn get(&self, key: &K) -> Option<CircuitBreakerHandle> {
        self.view.get(key)
    }

    /// Whether the map holds a breaker for `key`.
    pub fn contains_key(&self, key: &K) -> bool {
        self.view.get(key).is_some()
    }

    /// How many breakers the map holds.
    pub fn len(&self) -> usize {
        self.view.len()
    }

    /// Whether the map holds no breaker.
    pub fn is_empty(&self) -> bool {
        self.view.len() == 0
    }
}
