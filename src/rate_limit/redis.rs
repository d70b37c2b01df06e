//! Fleet-wide rate limits: the GCRA state in Redis, shared by every instance.
//!
//! A [`RateLimitLayer`](super::RateLimitLayer) keeps its quota in the process: ten
//! instances of a service each admit the whole quota. With the `redis` feature,
//! [`RateLimitBuilder::redis`] builds a [`RedisRateLimitLayer`] whose quota lives in
//! Redis, so every instance that names the same key draws from one quota.
//!
//! **The check.** One Lua script per call (`EVALSHA`, loaded on first use) does the
//! whole GCRA step atomically on the server: read the key's theoretical arrival
//! time, compare it with Redis's own clock (`TIME`, so instances' clocks need not
//! agree), and either move it on by one interval or answer how long to wait. The
//! key expires when its quota is full again, so idle keys cost Redis nothing. Keyed
//! limits ([`RedisRateLimitBuilder::keyed`]) use the key `prefix:key`. Times are in
//! microseconds: rates up to a million calls a second. Redis 5 or later (a script
//! that reads `TIME` and then writes needs effects replication, the default since 5).
//! The client is the `redis` crate (redis-rs) with its tokio `ConnectionManager`,
//! which reconnects on its own; build it with the timeouts and retries you want.
//!
//! **When Redis is unreachable** (an error, or no answer within
//! [`timeout`](RedisRateLimitBuilder::timeout), default 100 ms) the call is decided
//! as [`Unavailable`] says: by a local limiter with the same quota (the default;
//! [`local_quota`](RedisRateLimitBuilder::local_quota) sets a smaller one, such as
//! the fleet's quota divided by its size), or admitted (`Open`), or rejected
//! (`Closed`). While Redis is down, one call per
//! [`retry_interval`](RedisRateLimitBuilder::retry_interval) (default 1 s) tries it
//! again and the rest are decided locally at once, without a round trip. Each
//! transition is logged once at WARN (target `tower_fortify::rate_limit`, with the
//! limiter's name and the mode) and, with the `metrics` feature, sets the gauge
//! `fortify_rate_limit_redis_up{name}` (1 reachable, 0 not) and counts
//! `fortify_rate_limit_redis_transitions_total{name, to}` (`to` = `up`, `down`).
//! [`RedisRateLimitLayer::is_reachable`] and
//! [`fallback_decisions`](RedisRateLimitLayer::fallback_decisions) say the same
//! to code.
//!
//! **Cost.** A round trip to Redis per call (measured against a local
//! `redis-server`: see the README), a boxed future and the command's buffers: this
//! is a network path, not the local limiter's zero-allocation one. The call waits
//! for the answer in its response future; `poll_ready` still only passes on the
//! inner service's readiness, and the inner service (a clone) is readied only once
//! Redis has admitted the call. A call dropped while its check is in flight may
//! have used a slot in Redis: fewer calls than the quota, never more. There is no
//! [`max_wait`](super::RateLimitBuilder::max_wait) here: a call over the quota is
//! rejected with [`RateLimited`].
//!
//! ```no_run
//! use std::time::Duration;
//! use tower::{service_fn, Layer, Service, ServiceExt};
//! use tower_fortify::rate_limit::RateLimitLayer;
//! use tower_fortify::rate_limit::redis::Unavailable;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_fortify::BoxError> {
//! let client = redis::Client::open("redis://127.0.0.1:6379/")?;
//! let conn = redis::aio::ConnectionManager::new(client).await?;
//! // 100 calls a second per tenant, across every instance of the service.
//! let limit = RateLimitLayer::builder()
//!     .rate(100, Duration::from_secs(1))
//!     .burst(20)
//!     .name("api")
//!     .redis(conn, "ratelimit:api")
//!     .keyed(|tenant: &String| tenant.clone())
//!     .when_unavailable(Unavailable::Local)
//!     .build()?;
//! let mut svc = limit.layer(service_fn(|t: String| async move { Ok::<_, tower_fortify::BoxError>(t) }));
//! svc.ready().await?.call("acme".to_string()).await?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use redis::aio::ConnectionManager;
use tower_layer::Layer;
use tower_service::Service;

use super::error::RateLimited;
use super::gcra::{Gcra, Quota};
use super::layer::RateLimitBuilder;
use crate::BoxError;
use crate::clock::Epoch;
use crate::config::ConfigError;
use crate::keyed::{Evict, KeyedMap};
use crate::observe::{Listeners, Warn};

/// GCRA on the server: KEYS[1] holds the theoretical arrival time (µs of Redis's
/// clock); ARGV[1] is the emission interval, ARGV[2] the tolerance (burst ×
/// interval), both in µs. Returns `{1, 0}` when admitted, `{0, wait_µs}` when not.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + interval
local ahead = next_tat - now
if ahead > tolerance then
  return {0, ahead - tolerance}
end
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil(ahead / 1000) + 1)
return {1, 0}
";

/// What a [`RedisRateLimitLayer`] does with a call while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Unavailable {
    /// Decide by a limiter in this process, with the same quota unless
    /// [`local_quota`](RedisRateLimitBuilder::local_quota) sets one: each instance
    /// then enforces its own quota. The default.
    #[default]
    Local,
    /// Admit every call (fail open): Redis being down never refuses a caller.
    Open,
    /// Reject every call with [`RateLimited`] (fail closed), `retry_after` the retry
    /// interval.
    Closed,
}

impl Unavailable {
    fn as_str(self) -> &'static str {
        match self {
            Unavailable::Local => "local",
            Unavailable::Open => "open",
            Unavailable::Closed => "closed",
        }
    }
}

/// The unkeyed form's key: every call draws from the prefix's one quota.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKey;

/// The keyed form's key: `prefix:key`, the key a function of the request; from
/// [`RedisRateLimitBuilder::keyed`].
#[derive(Debug, Clone, Copy)]
pub struct ByKey<F>(F);

/// How a [`RedisRateLimit`] names the Redis key of a request: [`NoKey`] (the prefix
/// itself) or [`ByKey`] (`prefix:key`).
pub trait RedisKey<Req> {
    /// The Redis key of `req`.
    fn redis_key(&self, prefix: &str, req: &Req) -> String;
}

impl<Req> RedisKey<Req> for NoKey {
    fn redis_key(&self, prefix: &str, _: &Req) -> String {
        prefix.to_owned()
    }
}

impl<Req, F, K> RedisKey<Req> for ByKey<F>
where
    F: Fn(&Req) -> K,
    K: fmt::Display,
{
    fn redis_key(&self, prefix: &str, req: &Req) -> String {
        format!("{prefix}:{}", (self.0)(req))
    }
}

impl RateLimitBuilder {
    /// Keeps this quota in Redis under `prefix` (the key; keyed limits use
    /// `prefix:key`), shared by every instance that uses the same prefix and quota.
    /// See the [module docs](crate::rate_limit::redis).
    pub fn redis(
        self,
        conn: ConnectionManager,
        prefix: impl Into<String>,
    ) -> RedisRateLimitBuilder {
        RedisRateLimitBuilder {
            base: self,
            key: NoKey,
            settings: Settings {
                conn,
                prefix: prefix.into(),
                unavailable: Unavailable::Local,
                timeout: Duration::from_millis(100),
                retry_interval: Duration::from_secs(1),
                local: None,
                max_keys: 10_000,
            },
        }
    }
}

/// Builds a [`RedisRateLimitLayer`]; from [`RateLimitBuilder::redis`].
pub struct RedisRateLimitBuilder<K = NoKey> {
    base: RateLimitBuilder,
    key: K,
    settings: Settings,
}

/// A [`RedisRateLimitBuilder`]'s own settings but the key: [`keyed`](RedisRateLimitBuilder::keyed)
/// moves them as one value, and a new option is added here and in its setter.
struct Settings {
    conn: ConnectionManager,
    prefix: String,
    unavailable: Unavailable,
    timeout: Duration,
    retry_interval: Duration,
    local: Option<(u32, Duration, u32)>,
    max_keys: usize,
}

impl<K> fmt::Debug for RedisRateLimitBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimitBuilder")
            .field("prefix", &self.settings.prefix)
            .field("unavailable", &self.settings.unavailable)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimitBuilder<NoKey> {
    /// One quota per key: `key` picks the key of each request (a tenant, a client
    /// address); the Redis key is `prefix:key`.
    pub fn keyed<F>(self, key: F) -> RedisRateLimitBuilder<ByKey<F>> {
        RedisRateLimitBuilder {
            base: self.base,
            key: ByKey(key),
            settings: self.settings,
        }
    }
}

impl<K> RedisRateLimitBuilder<K> {
    /// What to do with calls while Redis is unreachable. Default
    /// [`Unavailable::Local`].
    pub fn when_unavailable(mut self, unavailable: Unavailable) -> Self {
        self.settings.unavailable = unavailable;
        self
    }

    /// The quota of the local limiter that decides while Redis is unreachable
    /// ([`Unavailable::Local`]): `rate` calls per `per` in bursts of `burst`.
    /// Default: the Redis quota itself.
    pub fn local_quota(mut self, rate: u32, per: Duration, burst: u32) -> Self {
        self.settings.local = Some((rate, per, burst));
        self
    }

    /// How long a check may take before Redis counts as unreachable (greater than
    /// zero). Default 100 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// While Redis is unreachable, how often one call tries it again; the others
    /// are decided locally at once. Default 1 s; zero tries it on every call.
    pub fn retry_interval(mut self, retry_interval: Duration) -> Self {
        self.settings.retry_interval = retry_interval;
        self
    }

    /// The most keys the local fallback tracks at once (at least 1). Default
    /// 10,000, evicted as the local keyed limiter's are.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.settings.max_keys = max_keys;
        self
    }

    /// Checks the settings and builds the layer. Errors name the field
    /// (`rate_limit.rate`, `.per`, `.burst`, `rate_limit.redis.prefix`,
    /// `.timeout`, `.max_keys`, `rate_limit.redis.local_quota`).
    pub fn build(self) -> Result<RedisRateLimitLayer<K>, ConfigError> {
        let quota = self.base.quota()?;
        let s = self.settings;
        if s.prefix.is_empty() {
            return Err(ConfigError::new(
                "rate_limit.redis.prefix",
                "must not be empty",
            ));
        }
        if s.timeout.is_zero() {
            return Err(ConfigError::new(
                "rate_limit.redis.timeout",
                "must be greater than zero",
            ));
        }
        if s.max_keys == 0 {
            return Err(ConfigError::new(
                "rate_limit.redis.max_keys",
                "must be at least 1",
            ));
        }
        let local_quota = match s.local {
            None => quota,
            Some((rate, per, burst)) => {
                if rate == 0 || per.is_zero() || burst == 0 {
                    return Err(ConfigError::new(
                        "rate_limit.redis.local_quota",
                        "rate, per and burst must be greater than zero",
                    ));
                }
                Quota::new(rate, per, burst, Duration::ZERO)
            }
        };
        let listeners = self.base.settings.listeners;
        #[cfg(feature = "metrics")]
        metrics::gauge!("fortify_rate_limit_redis_up", "name" => listeners.name().to_owned())
            .set(1.0);
        Ok(RedisRateLimitLayer {
            shared: Arc::new(RedisShared {
                conn: s.conn,
                script: redis::Script::new(SCRIPT),
                prefix: s.prefix,
                interval_us: (quota.interval / 1_000).max(1),
                tolerance_us: (quota.tolerance / 1_000).max(1),
                timeout: s.timeout,
                retry_interval: crate::clock::nanos(s.retry_interval),
                unavailable: s.unavailable,
                local: KeyedMap::new(s.max_keys, Duration::from_secs(60)),
                local_quota,
                epoch: Epoch::new(),
                listeners,
                reachable: AtomicBool::new(true),
                retry_at: AtomicU64::new(0),
                fallbacks: AtomicU64::new(0),
            }),
            key: self.key,
        })
    }
}

struct RedisShared {
    conn: ConnectionManager,
    script: redis::Script,
    prefix: String,
    interval_us: u64,
    tolerance_us: u64,
    timeout: Duration,
    retry_interval: u64,
    unavailable: Unavailable,
    local: KeyedMap<String, Arc<Gcra>>,
    local_quota: Quota,
    epoch: Epoch,
    listeners: Listeners,
    reachable: AtomicBool,
    /// While unreachable: when (ns since the epoch) one call may try Redis again.
    retry_at: AtomicU64,
    fallbacks: AtomicU64,
}

impl RedisShared {
    fn limited(&self, retry_after: Duration) -> RateLimited {
        if self.listeners.warn_due(Warn::RateLimited) {
            tracing::warn!(
                target: "tower_fortify::rate_limit",
                name = self.listeners.name(),
                retry_after_ms = retry_after.as_millis() as u64,
                "rate limit exceeded: calls rejected"
            );
        }
        self.listeners.emit(|| {
            crate::observe::Event::RateLimit(crate::observe::RateLimitEvent::Rejected {
                retry_after,
            })
        });
        RateLimited {
            retry_after,
            name: self.listeners.name_arc(),
        }
    }

    /// Whether this call should skip Redis: it is known unreachable and another call
    /// has the next try. The call whose time has come claims the try.
    fn skip_redis(&self, now: u64) -> bool {
        if self.reachable.load(Ordering::Relaxed) {
            return false;
        }
        let at = self.retry_at.load(Ordering::Relaxed);
        now < at
            || self
                .retry_at
                .compare_exchange(
                    at,
                    now.saturating_add(self.retry_interval),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
    }

    /// Decides a call without Redis.
    fn fallback(&self, key: String, now: u64) -> Result<(), RateLimited> {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        match self.unavailable {
            Unavailable::Open => Ok(()),
            Unavailable::Closed => Err(self.limited(Duration::from_nanos(self.retry_interval))),
            Unavailable::Local => {
                let cell = self
                    .local
                    .get_or_insert(
                        key,
                        |_| Arc::new(Gcra::default()),
                        |c| {
                            if c.is_idle(now) {
                                Evict::First
                            } else {
                                Evict::Last
                            }
                        },
                    )
                    .expect("the local fallback's map always makes room");
                match cell.check(self.local_quota, now) {
                    Ok(_) => Ok(()),
                    Err(wait) => Err(self.limited(wait)),
                }
            }
        }
    }

    fn unreachable(&self, error: &dyn fmt::Display) {
        let now = self.epoch.now();
        self.retry_at
            .store(now.saturating_add(self.retry_interval), Ordering::Relaxed);
        if self.reachable.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                target: "tower_fortify::rate_limit",
                name = self.listeners.name(),
                mode = self.unavailable.as_str(),
                error = %error,
                "redis unreachable: rate limit decided without it (mode {}) until it answers again",
                self.unavailable.as_str()
            );
            self.listeners.emit(|| {
                crate::observe::Event::RateLimit(crate::observe::RateLimitEvent::RedisDown {
                    mode: self.unavailable.as_str(),
                })
            });
            #[cfg(feature = "metrics")]
            {
                let name = self.listeners.name().to_owned();
                metrics::gauge!("fortify_rate_limit_redis_up", "name" => name.clone()).set(0.0);
                metrics::counter!("fortify_rate_limit_redis_transitions_total", "name" => name, "to" => "down")
                    .increment(1);
            }
        }
    }

    fn reachable(&self) {
        if !self.reachable.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "tower_fortify::rate_limit",
                name = self.listeners.name(),
                "redis reachable again: the rate limit is shared again"
            );
            self.listeners
                .emit(|| crate::observe::Event::RateLimit(crate::observe::RateLimitEvent::RedisUp));
            #[cfg(feature = "metrics")]
            {
                let name = self.listeners.name().to_owned();
                metrics::gauge!("fortify_rate_limit_redis_up", "name" => name.clone()).set(1.0);
                metrics::counter!("fortify_rate_limit_redis_transitions_total", "name" => name, "to" => "up")
                    .increment(1);
            }
        }
    }

    /// One check: the script in Redis, or the fallback when Redis does not answer.
    async fn check(self: Arc<Self>, key: String) -> Result<(), RateLimited> {
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(&key);
        invocation.arg(self.interval_us).arg(self.tolerance_us);
        let answer = tokio::time::timeout(
            self.timeout,
            invocation.invoke_async::<(i64, i64)>(&mut conn),
        )
        .await;
        match answer {
            Ok(Ok((admitted, wait_us))) => {
                self.reachable();
                if admitted == 1 {
                    Ok(())
                } else {
                    Err(self.limited(Duration::from_micros(wait_us.max(0) as u64)))
                }
            }
            Ok(Err(e)) => {
                self.unreachable(&e);
                self.fallback(key, self.epoch.now())
            }
            Err(_) => {
                self.unreachable(&"no answer within the timeout");
                self.fallback(key, self.epoch.now())
            }
        }
    }
}

/// A rate limit kept in Redis, shared by every instance of a service; from
/// [`RateLimitBuilder::redis`]. See the [module docs](crate::rate_limit::redis).
pub struct RedisRateLimitLayer<K = NoKey> {
    shared: Arc<RedisShared>,
    key: K,
}

impl<K: Clone> Clone for RedisRateLimitLayer<K> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            key: self.key.clone(),
        }
    }
}

impl<K> fmt::Debug for RedisRateLimitLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimitLayer")
            .field("prefix", &self.shared.prefix)
            .field("reachable", &self.is_reachable())
            .finish_non_exhaustive()
    }
}

impl<K> RedisRateLimitLayer<K> {
    /// Whether Redis answered the last check (true until a check fails).
    pub fn is_reachable(&self) -> bool {
        self.shared.reachable.load(Ordering::Relaxed)
    }

    /// How many calls were decided without Redis (by [`Unavailable`]'s mode).
    pub fn fallback_decisions(&self) -> u64 {
        self.shared.fallbacks.load(Ordering::Relaxed)
    }
}

impl<S, K: Clone> Layer<S> for RedisRateLimitLayer<K> {
    type Service = RedisRateLimit<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RedisRateLimit {
            inner,
            shared: self.shared.clone(),
            key: self.key.clone(),
        }
    }
}

/// A service under a rate limit kept in Redis; from [`RedisRateLimitLayer`].
pub struct RedisRateLimit<S, K = NoKey> {
    inner: S,
    shared: Arc<RedisShared>,
    key: K,
}

impl<S: Clone, K: Clone> Clone for RedisRateLimit<S, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            key: self.key.clone(),
        }
    }
}

impl<S, K> fmt::Debug for RedisRateLimit<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimit").finish_non_exhaustive()
    }
}

type Check = Pin<Box<dyn Future<Output = Result<(), RateLimited>> + Send>>;

pin_project! {
    /// The future of a call under a Redis rate limit: the check in Redis, then the
    /// inner call (readied when admitted), or a [`RateLimited`].
    pub struct RedisResponseFuture<S, Req, F> {
        #[pin]
        state: State<S, Req, F>,
    }
}

pin_project! {
    #[project = Proj]
    enum State<S, Req, F> {
        Checking { check: Check, admitted: bool, svc: S, req: Option<Req> },
        Called { #[pin] fut: F },
        Limited { error: Option<RateLimited> },
    }
}

impl<S, Req, F> fmt::Debug for RedisResponseFuture<S, Req, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<S, Req> Future for RedisResponseFuture<S, Req, S::Future>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                Proj::Called { fut } => return fut.poll(cx).map_err(Into::into),
                Proj::Limited { error } => {
                    return Poll::Ready(Err(match error.take() {
                        Some(e) => Box::new(e),
                        None => "rate limit future polled after completion".into(),
                    }));
                }
                Proj::Checking {
                    check,
                    admitted,
                    svc,
                    req,
                } => {
                    if !*admitted {
                        if let Err(e) = ready!(check.as_mut().poll(cx)) {
                            state.set(State::Limited { error: Some(e) });
                            continue;
                        }
                        *admitted = true;
                    }
                    if let Err(e) = ready!(svc.poll_ready(cx)) {
                        state.set(State::Limited { error: None });
                        return Poll::Ready(Err(e.into()));
                    }
                    let req = req.take().expect("a checking call holds its request");
                    let fut = svc.call(req);
                    state.set(State::Called { fut });
                }
            }
        }
    }
}

impl<S, K, Req> Service<Req> for RedisRateLimit<S, K>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    K: RedisKey<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = RedisResponseFuture<S, Req, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let key = self.key.redis_key(&self.shared.prefix, &req);
        let now = self.shared.epoch.now();
        if self.shared.skip_redis(now) {
            let state = match self.shared.fallback(key, now) {
                Ok(()) => State::Called {
                    fut: self.inner.call(req),
                },
                Err(e) => State::Limited { error: Some(e) },
            };
            return RedisResponseFuture { state };
        }
        RedisResponseFuture {
            state: State::Checking {
                check: Box::pin(self.shared.clone().check(key)),
                admitted: false,
                svc: self.inner.clone(),
                req: Some(req),
            },
        }
    }
}
