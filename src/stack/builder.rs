//! The one-call stack's builder: one place for the recommended values.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::attempt::{AttemptReplay, AttemptTried, Unwrap};
use super::health::Health;
use super::service::{Leg, Parts, Stack};
use crate::bulkhead::{BulkheadBuilder, BulkheadLayer};
use crate::circuit_breaker::{CircuitBreakerBuilder, CircuitBreakerLayer};
use crate::classify::DefaultClassifier;
use crate::config::ConfigError;
use crate::failover::{Backend, BreakerAware, Failover, FailoverBuilder};
use crate::hedge::{HedgeBuilder, HedgeLayer};
use crate::observe::NameId;
use crate::observe::{Event, Listener};
use crate::retry::{CloneReplay, RetryBuilder, RetryLayer};
use crate::rng::Rng;
use crate::timeout::Timeout;

type BreakerFn = Arc<dyn Fn(CircuitBreakerBuilder) -> CircuitBreakerBuilder + Send + Sync>;
type ListenerFn = Arc<dyn Fn(&str) -> Option<Arc<dyn Listener>> + Send + Sync>;

/// A listener handed over by [`StackBuilder::listeners`], names included.
struct Forward(Arc<dyn Listener>);

impl Listener for Forward {
    fn on_event(&self, event: &Event) {
        self.0.on_event(event);
    }

    fn on_named_event(&self, name: &str, event: &Event) {
        self.0.on_named_event(name, event);
    }

    fn per_call(&self) -> bool {
        self.0.per_call()
    }
}

/// A duration in nanoseconds for an atomic, saturating (585 years).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The overall deadline of a request, retries included. See [`StackBuilder::deadline`].
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);
/// The per-attempt timeout. See [`StackBuilder::attempt_timeout`].
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// The bulkhead's limit on requests in flight. See [`StackBuilder::bulkhead`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// The latency quantile the stack hedges at once hedging is on. See
/// [`StackBuilder::hedge`].
pub const DEFAULT_HEDGE_PERCENTILE: f64 = 0.97;

/// Builds a [`Stack`]; see [`Stack::builder`] for the defaults and why.
pub struct StackBuilder<S, C = DefaultClassifier, P = CloneReplay> {
    backends: Vec<Backend<S>>,
    classifier: C,
    replay: P,
    deadline: Duration,
    attempt_timeout: Duration,
    bulkhead: BulkheadBuilder,
    retry: RetryBuilder,
    hedge: Option<HedgeBuilder>,
    breaker: Option<BreakerFn>,
    router: FailoverBuilder<()>,
    rng: Option<Rng>,
    listeners: Option<ListenerFn>,
    name: Arc<str>,
    metrics: bool,
    applied: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl<S, C, P> fmt::Debug for StackBuilder<S, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackBuilder")
            .field("backends", &self.backends)
            .field("deadline", &self.deadline)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("bulkhead", &self.bulkhead)
            .field("retry", &self.retry)
            .field("router", &self.router)
            .finish_non_exhaustive()
    }
}

impl<S> Stack<S> {
    /// A builder for the recommended stack over backends of type `S`, with these
    /// defaults (each layer's own builder defaults, except where said):
    ///
    /// | layer | default | why |
    /// |---|---|---|
    /// | overall deadline | 5 s | what a caller waits for one request, all attempts, backoff and queueing included; the retry layer sees the same instant and starts nothing that would end past it |
    /// | bulkhead | 1,024 in flight, no queue | protects this process: past it, calls fail at once with `BulkheadFull` instead of piling up (Envoy's default `max_requests` is 1,024) |
    /// | retry | 3 attempts, exponential backoff from 100 ms with full jitter, the 20 % ratio budget | every retry goes to a backend the request has not tried; the budget bounds the extra load of an outage to 20 % (plus 10 retries per second) whatever fails |
    /// | hedge | **off**; with [`hedging`](StackBuilder::hedging): one hedge at the 97th percentile, drawn from the retry budget | a hedge sends a second copy of a request that is merely slow: only safe for requests that may run twice (the stack cannot know that of an arbitrary request), and a trade of load for tail latency the caller should choose. Once on, the 97th percentile sends about 3 % more requests (Finagle sets the percentile from the extra load it allows); not the 98th, because a tail of 2 % of calls then puts the trigger at the tail's own edge and hedges late (the `tail-everywhere` drill: p99.9 149 ms at p98, 95 ms at p97, for 1.9 % and 2.5 % extra load). The shared budget bounds retries and hedges together |
    /// | router | peak-EWMA with failures as cost; ejection 2 s × times ejected, at most 10 s, rules judged every 2 s; **no consecutive-failure ejection** | the per-backend breakers detect a backend that is down, and the router holds a backend out exactly as long as its breaker is open ([`BreakerAware`]); its own rules (failure rate, success rate and latency against the other backends) catch brownouts and slow backends. Without a second consecutive-failure detector, a breaker's failed probe is not counted again as an outlier failure |
    /// | breaker, per backend | 5 failures in a row or 50 % of the last 100 calls; open 1 s, fixed; load shedding counts as a success ([`Health`](super::Health)) | a backend that is down is detected within 5 calls; a healed one gets traffic back within about a second; a backend that sheds load keeps its share |
    /// | per-attempt timeout | 2 s | turns a hung backend into a failure the breaker and router count, with time left in the deadline for two more attempts |
    /// | classifier | [`DefaultClassifier`] (every error is a failure) | [`Stack::http`] and [`Stack::grpc`] use the protocol's classifier in every layer |
    ///
    /// Every value can be changed here ([`deadline`](StackBuilder::deadline),
    /// [`bulkhead`](StackBuilder::bulkhead), [`retry`](StackBuilder::retry),
    /// [`router`](StackBuilder::router), [`breaker`](StackBuilder::breaker),
    /// [`attempt_timeout`](StackBuilder::attempt_timeout)).
    pub fn builder() -> StackBuilder<S> {
        StackBuilder {
            backends: Vec::new(),
            classifier: DefaultClassifier,
            replay: CloneReplay,
            deadline: DEFAULT_DEADLINE,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            bulkhead: BulkheadLayer::builder().max_concurrent(DEFAULT_MAX_IN_FLIGHT),
            retry: RetryLayer::builder(),
            hedge: None,
            breaker: None,
            router: Failover::builder().consecutive_failures(None),
            rng: None,
            listeners: None,
            name: Arc::from("stack"),
            metrics: false,
            applied: None,
        }
    }
}

impl<S, C, P> StackBuilder<S, C, P> {
    /// Adds a backend in tier 0 (the primary tier).
    pub fn backend(mut self, id: impl Into<String>, service: S) -> Self {
        self.backends.push(Backend::new(id, service));
        self
    }

    /// Adds a backend with its tier, weight or health probe set
    /// ([`Backend::tier`], [`Backend::weight`], [`Backend::probe`]).
    pub fn backend_with(mut self, backend: Backend<S>) -> Self {
        self.backends.push(backend);
        self
    }

    /// Adds several backends.
    pub fn backends(mut self, backends: impl IntoIterator<Item = Backend<S>>) -> Self {
        self.backends.extend(backends);
        self
    }

    /// The overall deadline of each request (greater than zero). Default 5 s.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// How long one attempt may take (greater than zero). Default 2 s.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Changes the bulkhead's settings: `f` gets the stack's bulkhead builder
    /// (1,024 in flight, no queue) and returns it changed.
    pub fn bulkhead(mut self, f: impl FnOnce(BulkheadBuilder) -> BulkheadBuilder) -> Self {
        self.bulkhead = f(self.bulkhead);
        self
    }

    /// Changes the retry layer's settings: `f` gets the retry builder (its own
    /// defaults) and returns it changed. The classifier and the replay are the
    /// stack's ([`classifier`](Self::classifier), [`replay`](Self::replay)); the
    /// deadline is the stack's overall deadline.
    pub fn retry(mut self, f: impl FnOnce(RetryBuilder) -> RetryBuilder) -> Self {
        self.retry = f(self.retry);
        self
    }

    /// Turns hedging on and changes its settings: `f` gets the stack's hedge builder
    /// (one hedge once a request has been in flight longer than the 97th percentile
    /// of recent latencies, at least 1 ms, at most 1 s) and returns it changed. The
    /// hedge sits between the retry layer and the router, so each copy goes to a
    /// backend the request has not tried; it uses the stack's classifier and replay
    /// (under [`Stack::http_builder`], non-idempotent requests are never hedged) and
    /// draws from the retry layer's budget (from its own, the hedge builder's, when
    /// the retry layer has none). Off by default; see [`Stack::builder`] for why.
    pub fn hedge(mut self, f: impl FnOnce(HedgeBuilder) -> HedgeBuilder) -> Self {
        let current = self
            .hedge
            .take()
            .unwrap_or_else(|| HedgeLayer::builder().percentile(DEFAULT_HEDGE_PERCENTILE));
        self.hedge = Some(f(current));
        self
    }

    /// The hedging preset: [`hedge`](Self::hedge) with the stack's hedge defaults.
    /// For services whose tail latency matters more than a few percent of load.
    pub fn hedging(self) -> Self {
        self.hedge(|h| h)
    }

    /// Changes every backend's circuit breaker: `f` gets each breaker's builder
    /// (its own defaults) and returns it changed. Called once per backend.
    pub fn breaker(
        mut self,
        f: impl Fn(CircuitBreakerBuilder) -> CircuitBreakerBuilder + Send + Sync + 'static,
    ) -> Self {
        self.breaker = Some(match self.breaker.take() {
            None => Arc::new(f),
            Some(g) => Arc::new(move |b| f(g(b))),
        });
        self
    }

    /// Changes the router's settings: `f` gets the router's builder (its own
    /// defaults, without consecutive-failure ejection) and returns it changed. Its
    /// backends, classifier and attempt tracking are the stack's.
    pub fn router(mut self, f: impl FnOnce(FailoverBuilder<()>) -> FailoverBuilder<()>) -> Self {
        self.router = f(self.router);
        self
    }

    /// Names the stack (default `"stack"`): the bulkhead, the retry layer and the
    /// router take this name, each backend's breaker `"{name}/{backend id}"`, and
    /// every log line and event of theirs carries it.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Records every part's decisions as metrics through the `metrics` facade (an
    /// [`observe::MetricsListener`](crate::observe::MetricsListener) on the bulkhead,
    /// the retry layer, the hedge (when on), the router and each breaker; series
    /// labelled with the names of [`name`](Self::name)). Off by default: with it on, each request builds its
    /// retry events. Install the exporter before building the stack: when
    /// [`build`](Self::build) finds no `metrics` recorder installed (neither a global nor
    /// a local one), it logs a warning and leaves the listeners out, so the stack then
    /// costs what one without `.metrics()` does.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics(mut self) -> Self {
        self.metrics = true;
        self
    }

    /// The random stream of every layer (retry jitter, routing, breakers). Seed it
    /// for reproducible runs, as the drill does.
    pub fn rng(mut self, rng: Rng) -> Self {
        self.rng = Some(rng);
        self
    }

    /// Event listeners by source: `f` is asked once for `"bulkhead"`, `"retry"`,
    /// `"hedge"`, `"router"`, each backend's id (its breaker) and `"stack"` (the
    /// stack's own events: a reconfiguration), and returns the listener for that
    /// source, if any.
    pub fn listeners<L>(mut self, f: impl Fn(&str) -> Option<L> + Send + Sync + 'static) -> Self
    where
        L: Listener,
    {
        self.listeners = Some(Arc::new(move |source| {
            f(source).map(|l| Arc::new(l) as Arc<dyn Listener>)
        }));
        self
    }

    /// The classifier of every layer: what counts as a failure for the retry layer,
    /// the breakers and the router.
    pub fn classifier<C2>(self, classifier: C2) -> StackBuilder<S, C2, P> {
        StackBuilder {
            backends: self.backends,
            classifier,
            replay: self.replay,
            deadline: self.deadline,
            attempt_timeout: self.attempt_timeout,
            bulkhead: self.bulkhead,
            retry: self.retry,
            hedge: self.hedge,
            breaker: self.breaker,
            router: self.router,
            rng: self.rng,
            listeners: self.listeners,
            name: self.name,
            metrics: self.metrics,
            applied: self.applied,
        }
    }

    /// How the retry layer copies a request for another attempt (and what the
    /// request says about being retried). Default [`CloneReplay`].
    pub fn replay<P2>(self, replay: P2) -> StackBuilder<S, C, P2> {
        StackBuilder {
            backends: self.backends,
            classifier: self.classifier,
            replay,
            deadline: self.deadline,
            attempt_timeout: self.attempt_timeout,
            bulkhead: self.bulkhead,
            retry: self.retry,
            hedge: self.hedge,
            breaker: self.breaker,
            router: self.router,
            rng: self.rng,
            listeners: self.listeners,
            name: self.name,
            metrics: self.metrics,
            applied: self.applied,
        }
    }

    /// Remembers the settings the stack is built from (the configuration module's).
    #[allow(dead_code)] // Used by the configuration module only.
    pub(crate) fn applied(mut self, settings: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        self.applied = Some(settings);
        self
    }

    fn listener(&self, source: &str) -> Option<Forward> {
        self.listeners.as_ref()?(source).map(Forward)
    }

    /// Checks every layer's configuration and builds the stack. Errors name the
    /// field (`stack.deadline`, `retry.max_attempts`, `breaker.open_duration`, ...).
    pub fn build(mut self) -> Result<Stack<S, C, P>, ConfigError>
    where
        S: Clone,
        C: Clone,
        P: Clone,
    {
        crate::timeout::check("stack.deadline", self.deadline)?;
        crate::timeout::check("stack.attempt_timeout", self.attempt_timeout)?;
        if self.backends.is_empty() {
            return Err(ConfigError::new(
                "stack.backends",
                "needs at least one backend",
            ));
        }
        #[cfg(feature = "metrics")]
        if self.metrics && !crate::observe::metrics::recorder_installed() {
            // Nothing would record what the listeners report: leave them out, so a
            // stack with `.metrics()` and no exporter costs what one without it does.
            tracing::warn!(
                stack = %self.name,
                "metrics are on but no `metrics` recorder is installed: this stack records \
                 none; install the exporter before building the stack"
            );
            self.metrics = false;
        }
        let rng = self.rng.take().unwrap_or_default();
        let fork = || Rng::seeded(rng.next_u64());

        let name = self.name.clone();
        let mut bulkhead =
            std::mem::replace(&mut self.bulkhead, BulkheadLayer::builder()).name(name.clone());
        if let Some(l) = self.listener("bulkhead") {
            bulkhead = bulkhead.listener(l);
        }
        #[cfg(feature = "metrics")]
        if self.metrics {
            bulkhead = bulkhead.listener(crate::observe::MetricsListener::new());
        }
        let bulkhead = bulkhead.build()?;

        let mut retry = std::mem::replace(&mut self.retry, RetryLayer::builder())
            .rng(fork())
            .name(name.clone());
        if let Some(l) = self.listener("retry") {
            retry = retry.listener(l);
        }
        #[cfg(feature = "metrics")]
        if self.metrics {
            retry = retry.listener(crate::observe::MetricsListener::new());
        }
        let retry = retry
            .classifier(self.classifier.clone())
            .replay(AttemptReplay(self.replay.clone()))
            .build()?;

        let hedge = {
            let (builder, on) = match self.hedge.take() {
                Some(h) => (h, true),
                None => (HedgeLayer::builder(), false),
            };
            let mut h = builder.name(name.clone());
            if let Some(budget) = retry.budget() {
                h = h.draw_from(budget.clone());
            }
            if let Some(l) = self.listener("hedge") {
                h = h.listener(l);
            }
            #[cfg(feature = "metrics")]
            if self.metrics && on {
                h = h.listener(crate::observe::MetricsListener::new());
            }
            let h = h
                .classifier(self.classifier.clone())
                .replay(AttemptReplay(self.replay.clone()));
            if on { h.build()? } else { h.build_off()? }
        };

        let attempt_timeout = crate::timeout::LiveTimeout::new(self.attempt_timeout);
        let mut breakers = Vec::with_capacity(self.backends.len());
        let mut legs = Vec::with_capacity(self.backends.len());
        let listeners = self.listeners.clone();
        for backend in std::mem::take(&mut self.backends) {
            let mut b = CircuitBreakerLayer::builder()
                .rng(fork())
                .name(format!("{name}/{}", backend.id));
            if let Some(f) = &self.breaker {
                b = f(b);
            }
            if let Some(l) = listeners.as_ref().and_then(|f| f(&backend.id)) {
                b = b.listener(Forward(l));
            }
            #[cfg(feature = "metrics")]
            if self.metrics {
                b = b.listener(crate::observe::MetricsListener::new());
            }
            let layer = b.classifier(Health(self.classifier.clone())).build()?;
            breakers.push((Arc::<str>::from(backend.id.as_str()), layer.handle()));
            let attempt_timeout = attempt_timeout.clone();
            let handle = layer.handle();
            let timeout_name = NameId::intern(&format!("{name}/{}", backend.id));
            legs.push(
                backend
                    .map(|s| -> Leg<S, C> {
                        layer.layer(Timeout::live_with_name(
                            Unwrap::new(s),
                            attempt_timeout,
                            timeout_name,
                        ))
                    })
                    .breaker(handle),
            );
        }

        let mut listeners = crate::observe::Listeners::default().named(self.name.clone());
        if let Some(l) = self.listener("stack") {
            listeners = listeners.with(l);
        }
        #[cfg(feature = "metrics")]
        if self.metrics {
            listeners = listeners.with(crate::observe::MetricsListener::new());
        }
        let mut router = std::mem::replace(&mut self.router, Failover::builder())
            .retype::<Leg<S, C>>()
            .rng(fork())
            .name(name);
        if let Some(l) = self.listener("router") {
            router = router.listener(l);
        }
        #[cfg(feature = "metrics")]
        if self.metrics {
            router = router.listener(crate::observe::MetricsListener::new());
        }
        let router = router
            .backends(legs)
            .classifier(BreakerAware::new(Health(self.classifier)))
            .tried(AttemptTried)
            .build()?;

        let parts = Arc::new(Parts {
            name_id: NameId::intern(&self.name),
            name: self.name.clone(),
            deadline: std::sync::atomic::AtomicU64::new(nanos(self.deadline)),
            attempt_timeout,
            applied: std::sync::Mutex::new(self.applied.take()),
            listeners,
            router: router.handle(),
            breakers,
            bulkhead: bulkhead.handle(),
            budget: retry.budget().cloned(),
            retry: retry.handle(),
        });
        Ok(Stack {
            inner: bulkhead.layer(retry.layer(hedge.layer(router))),
            parts,
        })
    }
}
