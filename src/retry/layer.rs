use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tower_layer::Layer;

use super::shared::{Live, Shards, Shared};
use super::{CloneReplay, Retry};
use crate::backoff::{Backoff, Rng};
use crate::budget::Budget;
use crate::classify::DefaultClassifier;
use crate::config::ConfigError;
use crate::observe::{Listener, Listeners};
use crate::shard::{Padded, SHARDS};
use crossbeam_utils::atomic::AtomicCell;

/// Wraps services in [`Retry`]. Built by [`RetryLayer::builder`].
///
/// All services made by one layer (and by its clones) share one budget and one random
/// stream.
pub struct RetryLayer<C = DefaultClassifier, P = CloneReplay> {
    pub(crate) shards: Shards<C, P>,
}

impl<C, P> Clone for RetryLayer<C, P> {
    fn clone(&self) -> Self {
        Self {
            shards: self.shards.clone(),
        }
    }
}

impl<C, P> fmt::Debug for RetryLayer<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shards[0];
        f.debug_struct("RetryLayer")
            .field("max_attempts", &s.live.max_attempts.load(Ordering::Relaxed))
            .field("backoff", &s.live.backoff.load())
            .field("budget", &s.budget)
            .field("deadline", &s.deadline)
            .field("max_server_delay", &s.max_server_delay)
            .finish_non_exhaustive()
    }
}

impl RetryLayer {
    /// A builder with the defaults: 3 attempts, exponential backoff from 100 ms
    /// (×2, capped at 10 s) with full jitter, the default ratio budget
    /// ([`Budget::default_ratio`]), no deadline, server delays up to 30 s honoured,
    /// [`DefaultClassifier`], [`CloneReplay`].
    pub fn builder() -> RetryBuilder {
        RetryBuilder {
            settings: Settings {
                max_attempts: 3,
                backoff: Backoff::exponential(Duration::from_millis(100))
                    .max_delay(Duration::from_secs(10)),
                budget: Some(Budget::default_ratio()),
                deadline: None,
                max_server_delay: Duration::from_secs(30),
                rng: None,
                listeners: Listeners::default(),
            },
            classifier: DefaultClassifier,
            replay: CloneReplay,
        }
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::builder().build().expect("the defaults are valid")
    }
}

impl<C, P> RetryLayer<C, P> {
    /// The budget the layer draws from, if any.
    pub fn budget(&self) -> Option<&Budget> {
        self.shards[0].budget.as_ref()
    }
}

impl<S, C, P> Layer<S> for RetryLayer<C, P> {
    type Service = Retry<S, C, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner,
            shards: self.shards.clone(),
        }
    }
}

/// Builds a [`RetryLayer`]; see [`RetryLayer::builder`] for the defaults.
pub struct RetryBuilder<C = DefaultClassifier, P = CloneReplay> {
    settings: Settings,
    classifier: C,
    replay: P,
}

/// A [`RetryBuilder`]'s settings but the classifier and the replay: the methods that
/// change the builder's type move them as one value, and a new option is added here
/// and in its setter.
#[derive(Clone)]
struct Settings {
    max_attempts: u32,
    backoff: Backoff,
    budget: Option<Budget>,
    deadline: Option<Duration>,
    max_server_delay: Duration,
    rng: Option<Rng>,
    listeners: Listeners,
}

impl<C, P> fmt::Debug for RetryBuilder<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("RetryBuilder")
            .field("max_attempts", &s.max_attempts)
            .field("backoff", &s.backoff)
            .field("budget", &s.budget)
            .field("deadline", &s.deadline)
            .finish_non_exhaustive()
    }
}

impl<C, P> RetryBuilder<C, P> {
    /// Total attempts per request, the first included (at least 1; 1 means no retry).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.settings.max_attempts = max_attempts;
        self
    }

    /// The delay before each retry.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = backoff;
        self
    }

    /// The budget retries draw from. Share one `Budget` between layers to give them a
    /// common limit.
    pub fn budget(mut self, budget: Budget) -> Self {
        self.settings.budget = Some(budget);
        self
    }

    /// Retry without a budget, limited only by `max_attempts`. Under a total outage
    /// this multiplies the load on the backend by `max_attempts`.
    pub fn no_budget(mut self) -> Self {
        self.settings.budget = None;
        self
    }

    /// The time all attempts of one request may take together: a retry whose delay
    /// would end past it is not started. The in-flight attempt is not cut short; put a
    /// timeout outside the retry layer for that.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.settings.deadline = Some(deadline);
        self
    }

    /// The longest server-requested delay (`Retry-After`, pushback) the layer waits
    /// for; a longer one ends the retries. Default 30 s.
    pub fn max_server_delay(mut self, max: Duration) -> Self {
        self.settings.max_server_delay = max;
        self
    }

    /// The random stream for jitter. Seed it for reproducible delays.
    pub fn rng(mut self, rng: Rng) -> Self {
        self.settings.rng = Some(rng);
        self
    }

    /// Names this retry layer (`"payments"`, `"eu-1"`): every log line it writes carries
    /// the name as the field `name`, and listeners get it with each event
    /// ([`Listener::on_named_event`](crate::observe::Listener::on_named_event)).
    /// Unnamed by default.
    pub fn name(mut self, name: impl Into<std::sync::Arc<str>>) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).named(name);
        self
    }

    /// Sends [`RetryEvent`](crate::observe::RetryEvent)s to `listener`.
    /// Listeners add up: each one registered gets every event.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).with(listener);
        self
    }

    /// Decides which results are failures and which may be retried.
    pub fn classifier<C2>(self, classifier: C2) -> RetryBuilder<C2, P> {
        RetryBuilder {
            settings: self.settings,
            classifier,
            replay: self.replay,
        }
    }

    /// How requests are copied for another attempt.
    pub fn replay<P2>(self, replay: P2) -> RetryBuilder<C, P2> {
        RetryBuilder {
            settings: self.settings,
            classifier: self.classifier,
            replay,
        }
    }

    /// Checks what a running layer can take ([`RetryHandle::reconfigure`](super::RetryHandle::reconfigure)).
    pub(super) fn check_live(&self) -> Result<(u32, Backoff), ConfigError> {
        let s = &self.settings;
        if s.max_attempts == 0 {
            return Err(ConfigError::new(
                "retry.max_attempts",
                "must be at least 1 (1 means a single attempt, no retry)",
            ));
        }
        s.backoff.validate()?;
        Ok((s.max_attempts, s.backoff))
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<RetryLayer<C, P>, ConfigError>
    where
        C: Clone,
        P: Clone,
    {
        self.check_live()?;
        let s = self.settings;
        if s.deadline == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "retry.deadline",
                "must be greater than zero",
            ));
        }
        let rng = s.rng.unwrap_or_default();
        let live = Arc::new(Live {
            max_attempts: AtomicU32::new(s.max_attempts),
            backoff: AtomicCell::new(s.backoff),
        });
        let shards = (0..SHARDS)
            .map(|_| {
                Arc::new(Padded(Shared {
                    live: live.clone(),
                    budget: s.budget.clone(),
                    deadline: s.deadline,
                    max_server_delay: s.max_server_delay,
                    rng: rng.clone(),
                    listeners: s.listeners.clone(),
                    classifier: self.classifier.clone(),
                    replay: self.replay.clone(),
                }))
            })
            .collect();
        Ok(RetryLayer { shards })
    }
}
