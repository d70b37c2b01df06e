//! Holding a layer's permit and verdict until a streamed response ends.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::eos::{HeldBody, HttpEos, Verdict};
use crate::classify::{Classified, Classify};
use crate::guard::{EndGuard, GuardedFuture};
use crate::shard::{self, Padded, SHARDS};

/// One copy of the classifier per shard, so that the reference a response future
/// takes is not one cache line shared by all cores (and the future stays small).
type Shards<C> = Arc<[Arc<Padded<C>>]>;

/// Keeps the guard of the layer below (a bulkhead's permit, a circuit breaker's
/// verdict, the failover router's in-flight count and outlier verdict) until the response body ends, fails or is dropped, instead of releasing it when
/// the response head arrives. Built by [`HoldToEosLayer`].
///
/// Put one right above each layer whose guard must live as long as the stream
/// (the router has no layer: wrap it with `tower::Layer::layer`):
///
/// ```text
/// HoldToEos -> CircuitBreakerLayer -> HoldToEos -> BulkheadLayer -> client
/// ```
///
/// When the response arrives, the classifier judges its head. The guard moves into
/// the response's [`HeldBody`], which finishes it exactly once:
///
/// * at the end of the stream, with the head's outcome, or, when the classifier
///   answered [`Classified::RequiresEos`] (gRPC), with the outcome its trailers say;
/// * when the body fails, with a failure;
/// * when the body is dropped before its end, with `None`: the bulkhead gets its
///   permit back, the breaker and the router record nothing (a cancelled call).
///
/// An error from the layer below finishes the guard at once with the classifier's
/// outcome; a response whose body is already at its end finishes it at once too.
/// The classifier should be the one the guarded layer was built with, so that both
/// judge calls alike.
///
/// Without this layer a bulkhead returns its permit and a breaker records its
/// verdict as soon as the response head arrives, which for a long stream is far too
/// early (and, for gRPC, before the status is known).
///
/// ```
/// # #[cfg(feature = "bulkhead")] {
/// use http_body_util::{BodyExt, Full};
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_fortify::bulkhead::BulkheadLayer;
/// use tower_fortify::http::{HoldToEosLayer, HttpClassifier};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bulkhead = BulkheadLayer::builder().max_concurrent(4).build().unwrap();
/// let handle = bulkhead.handle();
/// let client = ServiceBuilder::new()
///     .layer(HoldToEosLayer::new(HttpClassifier::new()))
///     .layer(bulkhead)
///     .service_fn(|_req: http::Request<()>| async {
///         Ok::<_, tower_fortify::BoxError>(http::Response::new(Full::new(bytes::Bytes::from("stream"))))
///     });
/// let response = client.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(handle.in_flight(), 1); // the body has not been read yet
/// let body = response.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(body, "stream");
/// assert_eq!(handle.in_flight(), 0); // read to its end: the permit is back
/// # }
/// # }
/// ```
pub struct HoldToEos<S, C> {
    inner: S,
    shards: Shards<C>,
}

impl<S: Clone, C> Clone for HoldToEos<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shards: self.shards.clone(),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for HoldToEos<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HoldToEos")
            .field("inner", &self.inner)
            .field("classifier", &**self.shards[0])
            .finish()
    }
}

/// Makes [`HoldToEos`] services. Cheap to clone: every service it makes shares its
/// classifier.
pub struct HoldToEosLayer<C> {
    shards: Shards<C>,
}

impl<C> Clone for HoldToEosLayer<C> {
    fn clone(&self) -> Self {
        Self {
            shards: self.shards.clone(),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for HoldToEosLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HoldToEosLayer")
            .field("classifier", &**self.shards[0])
            .finish()
    }
}

impl<C: Clone> HoldToEosLayer<C> {
    /// Judges responses with `classifier` (the guarded layer's classifier).
    pub fn new(classifier: C) -> Self {
        let shards = (0..SHARDS)
            .map(|_| Arc::new(Padded(classifier.clone())))
            .collect();
        Self { shards }
    }
}

impl<S, C> tower_layer::Layer<S> for HoldToEosLayer<C> {
    type Service = HoldToEos<S, C>;

    fn layer(&self, inner: S) -> HoldToEos<S, C> {
        HoldToEos {
            inner,
            shards: self.shards.clone(),
        }
    }
}

impl<S, C> HoldToEos<S, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes the layer and returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Req, B> Service<Req> for HoldToEos<S, C>
where
    S: Service<Req, Response = http::Response<B>>,
    S::Future: GuardedFuture,
    C: Classify<http::Response<B>, S::Error>,
    C::Eos: HttpEos,
    B: Body,
{
    type Response = http::Response<HeldBody<B, C::Eos, <S::Future as GuardedFuture>::Guard>>;
    type Error = S::Error;
    type Future = HoldFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        HoldFuture {
            fut: self.inner.call(req),
            // `shards` holds exactly SHARDS copies: a mask instead of `%`.
            classifier: self.shards[shard::index() & (SHARDS - 1)].clone(),
            guard: None,
            started: false,
        }
    }
}

pin_project! {
    /// The response future of [`HoldToEos`]. Dropped before it completes, it drops
    /// the guard it took (a cancelled call).
    pub struct HoldFuture<F: GuardedFuture, C> {
        #[pin]
        fut: F,
        classifier: Arc<Padded<C>>,
        guard: Option<F::Guard>,
        started: bool,
    }
}

impl<F: GuardedFuture, C> fmt::Debug for HoldFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HoldFuture")
            .field("holding", &self.guard.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, C, B, E> Future for HoldFuture<F, C>
where
    F: GuardedFuture<Output = Result<http::Response<B>, E>>,
    C: Classify<http::Response<B>, E>,
    C::Eos: HttpEos,
    B: Body,
{
    type Output = Result<http::Response<HeldBody<B, C::Eos, F::Guard>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.started {
            *this.started = true;
            *this.guard = this.fut.as_mut().hold_guard();
        }
        let result = ready!(this.fut.as_mut().poll(cx));
        let guard = match this.guard.take() {
            Some(guard) => Some(guard),
            None => this.fut.as_mut().take_guard(),
        };
        match result {
            Ok(response) => {
                let verdict = match this.classifier.classify(Ok(&response)) {
                    Classified::Ready(outcome) => Verdict::Known(outcome),
                    Classified::RequiresEos(eos) => Verdict::Eos(eos),
                };
                let (parts, body) = response.into_parts();
                let body = HeldBody::new(body, guard.map(|g| (verdict, g)));
                Poll::Ready(Ok(http::Response::from_parts(parts, body)))
            }
            Err(e) => {
                if let Some(guard) = guard {
                    let outcome = this.classifier.classify(Err(&e)).now_or_success();
                    guard.finish(Some(outcome));
                }
                Poll::Ready(Err(e))
            }
        }
    }
}
