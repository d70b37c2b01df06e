use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::Fallback;
use super::shared::Shared;
use super::strategy::{Backup, FromFailure, FromRequest, Value};
use crate::classify::{Classified, Classify, DefaultClassifier, NeverEos, Outcome};
use crate::observe::{Listener, Listeners};

/// Wraps services in [`Fallback`]. Made by [`value`](Self::value),
/// [`from_failure`](Self::from_failure), [`from_request`](Self::from_request) or
/// [`service`](Self::service); [`classifier`](Self::classifier) or
/// [`on_error`](Self::on_error) choose which results are replaced (by default every
/// error, [`DefaultClassifier`]).
#[derive(Clone)]
pub struct FallbackLayer<F, C = DefaultClassifier> {
    strategy: F,
    classifier: C,
    listeners: Listeners,
}

impl<F, C> fmt::Debug for FallbackLayer<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("listeners", &self.listeners)
            .finish_non_exhaustive()
    }
}

impl<T> FallbackLayer<Value<T>> {
    /// Answer every failure with a clone of `value`.
    pub fn value(value: T) -> Self {
        Self::new(Value(value))
    }
}

impl<F> FallbackLayer<FromFailure<F>> {
    /// Answer a failure with `f(failed_result)`: `Ok` replaces it, `Err` passes an
    /// error on (the same or another). The request is not kept.
    pub fn from_failure(f: F) -> Self {
        Self::new(FromFailure(f))
    }
}

impl<F> FallbackLayer<FromRequest<F>> {
    /// Answer a failure with `f(request, failed_result)`.
    ///
    /// **Cost:** the request is cloned before every call (the original goes to the
    /// inner service), whether or not it fails; choose
    /// [`from_failure`](Self::from_failure) when the failure alone is enough.
    pub fn from_request(f: F) -> Self {
        Self::new(FromRequest(f))
    }
}

impl<S> FallbackLayer<Backup<S>> {
    /// Send a failed request to `service` (a stale cache, a degraded path) and answer
    /// with its result; its errors convert into the inner service's error type.
    ///
    /// **Cost:** the request is cloned before every call, as for
    /// [`from_request`](Self::from_request); a clone of `service` is readied only
    /// when a fallback is needed.
    pub fn service(service: S) -> Self {
        Self::new(Backup(service))
    }
}

impl<F> FallbackLayer<F> {
    fn new(strategy: F) -> Self {
        Self {
            strategy,
            classifier: DefaultClassifier,
            listeners: Listeners::default(),
        }
    }
}

impl<F, C> FallbackLayer<F, C> {
    /// Replace the results `classifier` calls failures (any
    /// [`Outcome`] but `Success`): with
    /// [`HttpClassifier`](crate::http::HttpClassifier) a `503` response is replaced
    /// too, not only transport errors.
    pub fn classifier<C2>(self, classifier: C2) -> FallbackLayer<F, C2> {
        FallbackLayer {
            strategy: self.strategy,
            classifier,
            listeners: self.listeners,
        }
    }

    /// Replace only the errors for which `pred` is true; every response and every
    /// other error passes through.
    pub fn on_error<P>(self, pred: P) -> FallbackLayer<F, OnError<P>> {
        self.classifier(OnError(pred))
    }

    /// Names this layer: its log lines and events carry the name.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.listeners = std::mem::take(&mut self.listeners).named(name);
        self
    }

    /// Sends a [`FallbackEvent`](crate::observe::FallbackEvent) to `listener` each
    /// time a fallback answers. Listeners add up.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listeners = std::mem::take(&mut self.listeners).with(listener);
        self
    }
}

impl<S, F: Clone, C: Clone> Layer<S> for FallbackLayer<F, C> {
    type Service = Fallback<S, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback {
            inner,
            shared: Arc::new(Shared {
                strategy: self.strategy.clone(),
                classifier: self.classifier.clone(),
                listeners: self.listeners.clone(),
            }),
        }
    }
}

/// A classifier that calls an error a failure when a predicate says so; see
/// [`FallbackLayer::on_error`].
#[derive(Clone, Copy)]
pub struct OnError<P>(P);

impl<P> fmt::Debug for OnError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnError").finish_non_exhaustive()
    }
}

impl<P, Res, E> Classify<Res, E> for OnError<P>
where
    P: Fn(&E) -> bool,
{
    type Eos = NeverEos;

    #[inline]
    fn classify(&self, result: Result<&Res, &E>) -> Classified<NeverEos> {
        Classified::Ready(match result {
            Err(e) if (self.0)(e) => Outcome::NonRetryableFailure,
            _ => Outcome::Success,
        })
    }
}
