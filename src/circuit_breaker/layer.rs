use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::config::{Config, OpenPolicy};
use super::core::Core;
use super::handle::CircuitBreakerHandle;
use super::service::CircuitBreaker;
use super::shared::{Shards, shards};
use crate::backoff::{Backoff, Rng};
use crate::classify::DefaultClassifier;
use crate::config::{ConfigError, check_range};
use crate::observe::{Listener, Listeners};

/// Wraps services in a [`CircuitBreaker`]. Built by [`CircuitBreakerLayer::builder`].
///
/// **One layer, one breaker:** every service the layer (or a clone of it) wraps shares
/// the same breaker, so applying one layer to the clients of several backends makes
/// them trip together. Build one layer per backend, or use a
/// [keyed breaker](CircuitBreakerBuilder::keyed).
pub struct CircuitBreakerLayer<C = DefaultClassifier> {
    pub(crate) shards: Shards<C>,
}

impl<C> Clone for CircuitBreakerLayer<C> {
    fn clone(&self) -> Self {
        Self {
            shards: self.shards.clone(),
        }
    }
}

impl<C> fmt::Debug for CircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("config", &self.shards[0].core.cfg)
            .field("status", &self.shards[0].core.status())
            .finish()
    }
}

impl CircuitBreakerLayer {
    /// A builder with the defaults: trips on 5 failures in a row or a failure rate of
    /// 50 % over a count window of the last 100 calls, judged from 20 calls on; no
    /// time window, no slow-call detection; open for 1 s (fixed); 3 half-open probes;
    /// backoff reset after 60 s closed; server hints honoured up to 60 s;
    /// [`DefaultClassifier`].
    ///
    /// Why these values:
    ///
    /// * **5 in a row** detects a backend that is hard down within its first few
    ///   calls. A count window alone is slow exactly when it matters: a router in
    ///   front that routes around failures sends the dead backend few calls, and the
    ///   window still holds its successes from before the outage, so 50 % of the last
    ///   100 calls can take seconds. The rate over 100 calls catches a backend that
    ///   fails often but not always. Load shedding (`429`, a full queue) should not
    ///   count: the one-call [`Stack`](crate::stack::Stack) judges health with
    ///   [`Health`](crate::stack::Health), which counts a shed as a success.
    /// * **Open 1 s, fixed.** The open time is how late a healed backend gets its
    ///   traffic back: it is the longest a caller waits after the backend recovers.
    ///   While it is down, each open period costs one failed probe (the first probe
    ///   failure reopens), so 1 s costs one call per second per breaker; under a
    ///   failover router with retries that call is retried on another backend.
    ///   resilience4j waits 60 s and Polly 5 s, which keeps a healed backend idle that
    ///   long. A growing open time ([`open_backoff`](CircuitBreakerBuilder::open_backoff))
    ///   saves a few probes during a long outage and pays for them with late recovery;
    ///   it is there for backends that must not be probed often.
    /// * **No jitter** on a fixed open time: a breaker's probes are a handful of calls,
    ///   so clients probing at the same moment do not add up to a thundering herd.
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder {
            settings: Settings {
                consecutive: Some(5),
                count_window: Some(100),
                time_window: None,
                buckets: 10,
                failure_rate: 0.5,
                slow: None,
                min_calls: 20,
                open: OpenPolicy::Fixed(Duration::from_secs(1)),
                reset_after: Duration::from_secs(60),
                max_hint: Duration::from_secs(60),
                probes: 3,
                rng: None,
                listeners: Listeners::default(),
            },
            classifier: DefaultClassifier,
        }
    }
}

impl Default for CircuitBreakerLayer {
    fn default() -> Self {
        Self::builder().build().expect("the defaults are valid")
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// A handle on the breaker: its state, its figures, and manual control.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            core: self.shards[0].core.clone(),
        }
    }
}

impl<S, C> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            shards: self.shards.clone(),
        }
    }
}

/// Builds a [`CircuitBreakerLayer`]; see [`CircuitBreakerLayer::builder`] for the
/// defaults. Every trip condition that is configured can trip the breaker.
pub struct CircuitBreakerBuilder<C = DefaultClassifier> {
    pub(crate) settings: Settings,
    pub(crate) classifier: C,
}

/// A [`CircuitBreakerBuilder`]'s settings but the classifier: the methods that change
/// the builder's type move them as one value, and a new option is added here and in
/// its setter.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) consecutive: Option<u32>,
    pub(crate) count_window: Option<u32>,
    pub(crate) time_window: Option<Duration>,
    pub(crate) buckets: u32,
    pub(crate) failure_rate: f64,
    pub(crate) slow: Option<(Duration, f64)>,
    pub(crate) min_calls: u32,
    pub(crate) open: OpenPolicy,
    pub(crate) reset_after: Duration,
    pub(crate) max_hint: Duration,
    pub(crate) probes: u32,
    pub(crate) rng: Option<Rng>,
    pub(crate) listeners: Listeners,
}

impl<C> fmt::Debug for CircuitBreakerBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("CircuitBreakerBuilder")
            .field("consecutive_failures", &s.consecutive)
            .field("count_window", &s.count_window)
            .field("time_window", &s.time_window)
            .field("failure_rate", &s.failure_rate)
            .field("slow_calls", &s.slow)
            .field("minimum_calls", &s.min_calls)
            .field("half_open_probes", &s.probes)
            .finish_non_exhaustive()
    }
}

/// The largest count window accepted.
const MAX_COUNT_WINDOW: u32 = 1_000_000;

impl<C> CircuitBreakerBuilder<C> {
    /// Trip after `n` failures in a row (at least 1). Default 5.
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.settings.consecutive = Some(n);
        self
    }

    /// Remove the consecutive-failure trip condition (keep the windows).
    pub fn no_consecutive_failures(mut self) -> Self {
        self.settings.consecutive = None;
        self
    }

    /// Judge the failure rate over the last `n` calls (1 to 1 000 000): a true
    /// sliding window, so old history never dilutes a new outage. Default 100.
    pub fn count_window(mut self, n: u32) -> Self {
        self.settings.count_window = Some(n);
        self
    }

    /// Remove the count window (keep the other trip conditions).
    pub fn no_count_window(mut self) -> Self {
        self.settings.count_window = None;
        self
    }

    /// Judge the failure rate over the calls of the last `window` of time, kept in
    /// buckets ([`time_window_buckets`](Self::time_window_buckets), 10 by default).
    /// Off by default.
    pub fn time_window(mut self, window: Duration) -> Self {
        self.settings.time_window = Some(window);
        self
    }

    /// How many buckets the time window is divided into (1 to 1000; default 10). The
    /// window forgets a bucket at a time.
    pub fn time_window_buckets(mut self, buckets: u32) -> Self {
        self.settings.buckets = buckets;
        self
    }

    /// The failure rate (in `(0, 1]`) over a window at which the breaker trips.
    /// Default 0.5.
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.settings.failure_rate = rate;
        self
    }

    /// Count calls that take `threshold` or longer as slow, and trip when the slow
    /// share of a window reaches `rate` (in `(0, 1]`). A slow call that succeeds is
    /// still a success. Needs a count or time window.
    ///
    /// **Cost:** with slow-call detection on, every call reads the clock twice.
    pub fn slow_calls(mut self, threshold: Duration, rate: f64) -> Self {
        self.settings.slow = Some((threshold, rate));
        self
    }

    /// The number of calls a window must hold before its rates are judged. Default 20.
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.settings.min_calls = n;
        self
    }

    /// Stay open for a fixed `duration` (greater than zero) after each trip.
    /// Default 1 s; see [`CircuitBreakerLayer::builder`] for why.
    pub fn open_duration(mut self, duration: Duration) -> Self {
        self.settings.open = OpenPolicy::Fixed(duration);
        self
    }

    /// Stay open longer after each consecutive trip, following `backoff` (trip 1
    /// uses its first delay; its cap applies, and its jitter within ±10 % of the raw
    /// delay: full jitter over `0..d` would sometimes reopen the breaker after a few
    /// milliseconds). The count of trips resets once
    /// the breaker has stayed closed for [`reset_backoff_after`](Self::reset_backoff_after).
    pub fn open_backoff(mut self, backoff: Backoff) -> Self {
        self.settings.open = OpenPolicy::Backoff(backoff);
        self
    }

    /// How long the breaker must stay closed before a growing open duration starts
    /// over. Default 60 s.
    pub fn reset_backoff_after(mut self, duration: Duration) -> Self {
        self.settings.reset_after = duration;
        self
    }

    /// The longest server hint (`Retry-After`) that may keep the breaker open beyond
    /// its own duration. Default 60 s; `Duration::ZERO` ignores hints.
    pub fn max_server_delay(mut self, max: Duration) -> Self {
        self.settings.max_hint = max;
        self
    }

    /// How many probe calls half-open admits (1 to 65 535; default 3). All of them
    /// must succeed to close the breaker; one failure reopens it.
    pub fn half_open_probes(mut self, n: u32) -> Self {
        self.settings.probes = n;
        self
    }

    /// The random stream for the jitter of a growing open duration.
    pub fn rng(mut self, rng: Rng) -> Self {
        self.settings.rng = Some(rng);
        self
    }

    /// Names this breaker (`"payments"`, `"eu-1"`): every log line it writes carries
    /// the name as the field `name`, and listeners get it with each event
    /// ([`Listener::on_named_event`](crate::observe::Listener::on_named_event)).
    /// Unnamed by default.
    pub fn name(mut self, name: impl Into<std::sync::Arc<str>>) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).named(name);
        self
    }

    /// Sends [`CircuitBreakerEvent`](crate::observe::CircuitBreakerEvent)s to
    /// `listener`. Events are delivered after the breaker's internal lock is
    /// released, so a listener may read the breaker through its handle.
    /// Listeners add up: each one registered gets every event.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).with(listener);
        self
    }

    /// Decides which results are failures. A `ServerHint::RetryAfter` on a failure
    /// can keep the breaker open longer.
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerBuilder<C2> {
        CircuitBreakerBuilder {
            settings: self.settings,
            classifier,
        }
    }

    pub(crate) fn config(&self) -> Result<Config, ConfigError> {
        let s = &self.settings;
        if s.consecutive == Some(0) {
            return Err(ConfigError::new(
                "breaker.consecutive_failures",
                "must be at least 1",
            ));
        }
        if let Some(n) = s.count_window
            && !(1..=MAX_COUNT_WINDOW).contains(&n)
        {
            return Err(ConfigError::new(
                "breaker.count_window",
                format!("must lie in 1..={MAX_COUNT_WINDOW} calls (got {n})"),
            ));
        }
        if s.time_window == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "breaker.time_window",
                "must be greater than zero",
            ));
        }
        if !(1..=1000).contains(&s.buckets) {
            return Err(ConfigError::new(
                "breaker.time_window_buckets",
                format!("must lie in 1..=1000 (got {})", s.buckets),
            ));
        }
        check_rate("breaker.failure_rate", s.failure_rate)?;
        if let Some((threshold, rate)) = s.slow {
            if threshold.is_zero() {
                return Err(ConfigError::new(
                    "breaker.slow_call_threshold",
                    "must be greater than zero",
                ));
            }
            check_rate("breaker.slow_call_rate", rate)?;
            if s.count_window.is_none() && s.time_window.is_none() {
                return Err(ConfigError::new(
                    "breaker.slow_call_rate",
                    "needs a count window or a time window to judge the rate over",
                ));
            }
        }
        if let Some(n) = s.count_window
            && s.min_calls > n
        {
            return Err(ConfigError::new(
                "breaker.minimum_calls",
                format!(
                    "must not exceed the count window ({} > {n}), or the window never trips",
                    s.min_calls
                ),
            ));
        }
        match &s.open {
            OpenPolicy::Fixed(d) if d.is_zero() => {
                return Err(ConfigError::new(
                    "breaker.open_duration",
                    "must be greater than zero",
                ));
            }
            OpenPolicy::Fixed(_) => {}
            OpenPolicy::Backoff(b) => b.validate()?,
        }
        if !(1..=u16::MAX as u32).contains(&s.probes) {
            return Err(ConfigError::new(
                "breaker.half_open_probes",
                format!("must lie in 1..=65535 (got {})", s.probes),
            ));
        }
        if s.consecutive.is_none() && s.count_window.is_none() && s.time_window.is_none() {
            return Err(ConfigError::new(
                "breaker.trip_conditions",
                "no trip condition: set consecutive_failures, count_window or time_window",
            ));
        }
        Ok(Config {
            consecutive: s.consecutive,
            count_window: s.count_window,
            time_window: s.time_window.map(|d| (d, s.buckets)),
            failure_rate: s.failure_rate,
            slow: s.slow,
            min_calls: s.min_calls,
            open: s.open,
            reset_after: s.reset_after,
            max_hint: s.max_hint,
            probes: s.probes,
        })
    }

    pub(crate) fn core(&self) -> Result<Core, ConfigError> {
        let cfg = self.config()?;
        Ok(Core::new(
            cfg,
            self.settings.rng.clone().unwrap_or_default(),
            self.settings.listeners.clone(),
        ))
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<CircuitBreakerLayer<C>, ConfigError>
    where
        C: Clone,
    {
        let core = Arc::new(self.core()?);
        Ok(CircuitBreakerLayer {
            shards: shards(core, &self.classifier),
        })
    }
}

fn check_rate(field: &'static str, rate: f64) -> Result<(), ConfigError> {
    check_range(field, rate, 0.0, 1.0)?;
    if rate <= 0.0 {
        return Err(ConfigError::new(field, "must be greater than zero"));
    }
    Ok(())
}
