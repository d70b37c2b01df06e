use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::gcra::{Gcra, LiveQuota, Quota};
use super::service::{KeyedRateLimit, RateLimit};
use super::shared::{Keyed, Shared};
use crate::clock::Epoch;
use crate::config::ConfigError;
use crate::keyed::KeySettings;
use crate::observe::Listeners;
use crate::shard::Padded;

/// Limits the rate of calls to a service: the same quota for every clone. Built by
/// [`RateLimitLayer::builder`]; see the [module docs](super).
#[derive(Clone)]
pub struct RateLimitLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("quota", &self.shared.quota.get())
            .finish_non_exhaustive()
    }
}

/// Builds a [`RateLimitLayer`] or, with [`keyed`](Self::keyed), a
/// [`KeyedRateLimitLayer`].
#[derive(Debug)]
pub struct RateLimitBuilder {
    pub(super) settings: Settings,
}

/// A [`RateLimitBuilder`]'s settings, as one value: the keyed and Redis builders
/// carry it over whole, and a new option is added here and in its setter.
#[derive(Debug)]
pub(super) struct Settings {
    rate: u32,
    per: Duration,
    burst: Option<u32>,
    max_wait: Duration,
    pub(super) listeners: Listeners,
}

impl RateLimitLayer {
    /// A builder: `rate` calls per `per` (default 100 per second), in bursts of up to
    /// `burst` (default: one second's worth of calls, at least 1).
    pub fn builder() -> RateLimitBuilder {
        RateLimitBuilder {
            settings: Settings {
                rate: 100,
                per: Duration::from_secs(1),
                burst: None,
                max_wait: Duration::ZERO,
                listeners: Listeners::default(),
            },
        }
    }

    /// `rate` calls per second, bursts of one second's worth.
    pub fn per_second(rate: u32) -> Result<Self, ConfigError> {
        Self::builder().rate(rate, Duration::from_secs(1)).build()
    }
}

impl RateLimitBuilder {
    /// `rate` calls (at least 1) per `per` (greater than zero).
    pub fn rate(mut self, rate: u32, per: Duration) -> Self {
        self.settings.rate = rate;
        self.settings.per = per;
        self
    }

    /// How many calls may arrive at once after a quiet spell (at least 1). Default:
    /// the calls of one second at the rate (at least 1).
    pub fn burst(mut self, burst: u32) -> Self {
        self.settings.burst = Some(burst);
        self
    }

    /// Lets a call over the limit wait for its slot when the slot comes within
    /// `max_wait`, instead of being rejected; a call whose slot is further away is
    /// still rejected at once with [`RateLimited`](super::RateLimited). Default zero:
    /// every call over the limit is rejected.
    ///
    /// This is resilience4j's `timeoutDuration` and Guava's `tryAcquire(timeout)`;
    /// the name is the one this crate's bulkhead uses for its queue (`queue(max_queued,
    /// max_wait)`), and "timeout" here would read as the timeout layer.
    ///
    /// The decision is still made in `call`, never in `poll_ready`: a waiting call
    /// reserves its slot at once (later callers queue behind it, in arrival order)
    /// and its response future sleeps until the slot, then readies a clone of the
    /// inner service and sends. Dropping the future before it sends gives the slot
    /// back when no later call has reserved since (otherwise the slot goes unused:
    /// fewer calls than the quota, never more). The waiting call's future holds one
    /// allocation (the timer, the request and the clone); a call admitted at once
    /// allocates nothing.
    #[doc(alias = "wait_up_to")]
    #[doc(alias = "timeout_duration")]
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.settings.max_wait = max_wait;
        self
    }

    /// Names this limiter: its log lines, events and errors carry the name.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).named(name);
        self
    }

    /// Sends [`RateLimitEvent`](crate::observe::RateLimitEvent)s to `listener`: one
    /// per call over the limit (rejected or waiting) and one per change of the Redis
    /// store's reachability; a call within the limit sends none. Listeners add up.
    pub fn listener(mut self, listener: impl crate::observe::Listener) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).with(listener);
        self
    }

    pub(super) fn quota(&self) -> Result<Quota, ConfigError> {
        let s = &self.settings;
        if s.rate == 0 {
            return Err(ConfigError::new("rate_limit.rate", "must be at least 1"));
        }
        if s.per.is_zero() {
            return Err(ConfigError::new(
                "rate_limit.per",
                "must be greater than zero",
            ));
        }
        if s.burst == Some(0) {
            return Err(ConfigError::new("rate_limit.burst", "must be at least 1"));
        }
        let per_second = f64::from(s.rate) / s.per.as_secs_f64();
        let burst = s
            .burst
            .unwrap_or(per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32);
        Ok(Quota::new(s.rate, s.per, burst, s.max_wait))
    }

    fn shared(self) -> Result<Shared, ConfigError> {
        Ok(Shared {
            quota: LiveQuota::new(self.quota()?),
            epoch: Epoch::new(),
            cell: Padded(Gcra::default()),
            listeners: self.settings.listeners,
        })
    }

    /// Checks the settings and builds the layer. Errors name the field
    /// (`rate_limit.rate`, `rate_limit.per`, `rate_limit.burst`).
    pub fn build(self) -> Result<RateLimitLayer, ConfigError> {
        Ok(RateLimitLayer {
            shared: Arc::new(self.shared()?),
        })
    }

    /// One quota per key: `key` picks the key of each request (a tenant, a client
    /// address, a route). At most `max_keys` keys are tracked (default 10,000); see
    /// [`KeyedRateLimitLayer`] for what happens at the bound.
    pub fn keyed<F>(self, key: F) -> KeyedRateLimitBuilder<F> {
        KeyedRateLimitBuilder {
            base: self,
            key,
            settings: KeySettings::new(10_000, Duration::from_secs(60)),
        }
    }
}

/// Builds a [`KeyedRateLimitLayer`]; from [`RateLimitBuilder::keyed`].
#[derive(Debug)]
pub struct KeyedRateLimitBuilder<F> {
    base: RateLimitBuilder,
    key: F,
    settings: KeySettings,
}

impl<F> KeyedRateLimitBuilder<F> {
    /// The most keys tracked at once (at least 1). Default 10,000.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.settings.max_keys = max_keys;
        self
    }

    /// Lets a call over its key's limit wait up to `max_wait` for its slot; see
    /// [`RateLimitBuilder::max_wait`].
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.base.settings.max_wait = max_wait;
        self
    }

    /// How long a key may go unused before it may be forgotten (greater than zero).
    /// Default 60 s.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.settings.idle_timeout = idle;
        self
    }

    /// Checks the settings and builds the layer.
    pub fn build<K>(self) -> Result<KeyedRateLimitLayer<K, F>, ConfigError>
    where
        K: Hash + Eq,
    {
        self.settings
            .validate("rate_limit.max_keys", "rate_limit.idle_timeout")?;
        let shared = self.base.shared()?;
        Ok(KeyedRateLimitLayer {
            keyed: Arc::new(Keyed {
                map: self.settings.map(),
                shared,
            }),
            key: self.key,
        })
    }
}

/// One rate limit per key, in a bounded map shared by every clone.
///
/// **The bound.** At most `max_keys` keys are tracked. When a new key arrives at the
/// bound, a key unused for the idle timeout goes first; then the least recently used
/// key whose quota is full again (forgetting it loses nothing); only then the least
/// recently used key of all, which gets a full quota back if it returns. The bound
/// therefore never refuses a new key.
pub struct KeyedRateLimitLayer<K, F> {
    pub(crate) keyed: Arc<Keyed<K>>,
    pub(crate) key: F,
}

impl<K, F: Clone> Clone for KeyedRateLimitLayer<K, F> {
    fn clone(&self) -> Self {
        Self {
            keyed: self.keyed.clone(),
            key: self.key.clone(),
        }
    }
}

impl<K, F> fmt::Debug for KeyedRateLimitLayer<K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitLayer")
            .field("quota", &self.keyed.shared.quota.get())
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, F> KeyedRateLimitLayer<K, F> {
    /// How many keys are tracked now (the same as `handle().len()`).
    pub fn keys(&self) -> usize {
        self.keyed.map.len()
    }

    /// A handle on the map of keys.
    pub fn handle(&self) -> KeyedRateLimitHandle<K> {
        KeyedRateLimitHandle {
            keyed: self.keyed.clone(),
        }
    }
}

/// Reads the keys of a [`KeyedRateLimitLayer`] (which are tracked, and how many) and
/// changes the quota they share.
pub struct KeyedRateLimitHandle<K> {
    keyed: Arc<Keyed<K>>,
}

impl<K> Clone for KeyedRateLimitHandle<K> {
    fn clone(&self) -> Self {
        Self {
            keyed: self.keyed.clone(),
        }
    }
}

impl<K> fmt::Debug for KeyedRateLimitHandle<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitHandle")
            .field("quota", &self.keyed.shared.quota.get())
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq> KeyedRateLimitHandle<K> {
    /// Whether `key` is tracked (a key that is not starts with a full quota).
    pub fn contains_key(&self, key: &K) -> bool {
        self.keyed.map.peek(key).is_some()
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.keyed.map.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes every key's quota to `settings`' rate, period, burst and longest wait,
    /// keeping each key's state (what a key has spent counts against the new quota);
    /// see [`RateLimitHandle::reconfigure`](super::RateLimitHandle::reconfigure).
    pub fn reconfigure(&self, settings: &RateLimitBuilder) -> Result<(), ConfigError> {
        self.keyed.shared.set_quota(settings.quota()?);
        Ok(())
    }

    /// Checks `settings` as [`reconfigure`](Self::reconfigure) would, changing nothing.
    pub fn check_reconfigure(&self, settings: &RateLimitBuilder) -> Result<(), ConfigError> {
        settings.quota().map(|_| ())
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            shared: self.shared.clone(),
        }
    }
}

impl<S, K: Hash + Eq, F: Clone> Layer<S> for KeyedRateLimitLayer<K, F> {
    type Service = KeyedRateLimit<S, K, F>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedRateLimit {
            inner,
            view: self.keyed.map.view(),
            keyed: self.keyed.clone(),
            key: self.key.clone(),
        }
    }
}
