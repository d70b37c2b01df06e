//! Holding a layer's permit and verdict until a streamed response ends.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::classify::{Classified, Classify, ClassifyEos, NeverEos, Outcome};
use crate::shard::{self, Padded, SHARDS};

/// One copy of the classifier per shard, so that the reference a response future
/// takes is not one cache line shared by all cores (and the future stays small).
type Shards<C> = Arc<[Arc<Padded<C>>]>;

/// What a layer holds for one call and gives up when the call is over: a bulkhead
/// permit, a breaker's pending verdict.
///
/// [`finish`](Self::finish) is called exactly once, with the call's outcome, or with
/// `None` when the caller gave up first (a response body dropped before its end),
/// which a layer treats as a cancelled call.
pub trait EndGuard {
    /// The call is over.
    fn finish(self, outcome: Option<Outcome>);
}

/// A layer's response future that can hand its [`EndGuard`] over to the response,
/// instead of giving it up when the future completes.
///
/// [`HoldToEos`] calls [`hold_guard`](Self::hold_guard) before it first polls the
/// future and [`take_guard`](Self::take_guard) once it completed; a future hands its
/// guard over from one of the two. Implemented for the bulkhead's and the circuit
/// breaker's response futures, and the failover router's.
pub trait GuardedFuture: Future {
    /// What the future holds for the call.
    type Guard: EndGuard;

    /// Called before the first poll: from now on the future must not give its guard
    /// up when it completes. It may hand the guard over at once.
    fn hold_guard(self: Pin<&mut Self>) -> Option<Self::Guard>;

    /// Called once the future completed: the guard it kept, if any.
    fn take_guard(self: Pin<&mut Self>) -> Option<Self::Guard>;
}

#[cfg(feature = "bulkhead")]
impl EndGuard for crate::bulkhead::BulkheadPermit {
    #[inline]
    fn finish(self, outcome: Option<Outcome>) {
        match outcome {
            Some(outcome) => self.record(outcome),
            None => drop(self),
        }
    }
}

#[cfg(feature = "bulkhead")]
impl<S, Req, C> GuardedFuture for crate::bulkhead::future::ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    S::Error: Into<crate::BoxError>,
    C: Classify<S::Response, S::Error>,
{
    type Guard = crate::bulkhead::BulkheadPermit;

    #[inline]
    fn hold_guard(self: Pin<&mut Self>) -> Option<Self::Guard> {
        // The permit may come later (a queued call): keep it past completion.
        self.hold_permit();
        None
    }

    #[inline]
    fn take_guard(self: Pin<&mut Self>) -> Option<Self::Guard> {
        self.take_permit()
    }
}

#[cfg(feature = "circuit-breaker")]
impl<C> EndGuard for crate::circuit_breaker::BreakerPermit<C> {
    #[inline]
    fn finish(self, outcome: Option<Outcome>) {
        match outcome {
            Some(outcome) => self.record(outcome),
            None => drop(self),
        }
    }
}

#[cfg(feature = "circuit-breaker")]
impl<F, C, T, E> GuardedFuture for crate::circuit_breaker::future::ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<crate::BoxError>,
    C: Classify<T, E>,
{
    type Guard = crate::circuit_breaker::BreakerPermit<C>;

    #[inline]
    fn hold_guard(self: Pin<&mut Self>) -> Option<Self::Guard> {
        // Admitted at `call`: the claim is there already.
        self.take_permit()
    }

    #[inline]
    fn take_guard(self: Pin<&mut Self>) -> Option<Self::Guard> {
        None
    }
}

#[cfg(feature = "failover")]
impl<C> EndGuard for crate::failover::FailoverPermit<C> {
    #[inline]
    fn finish(self, outcome: Option<Outcome>) {
        match outcome {
            Some(outcome) => self.record(outcome),
            None => drop(self),
        }
    }
}

#[cfg(feature = "failover")]
impl<F, C, T, E> GuardedFuture for crate::failover::future::ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<crate::BoxError>,
    C: Classify<T, E>,
{
    type Guard = crate::failover::FailoverPermit<C>;

    #[inline]
    fn hold_guard(self: Pin<&mut Self>) -> Option<Self::Guard> {
        // Routed at `call`: the claim on the backend is there already.
        self.take_permit()
    }

    #[inline]
    fn take_guard(self: Pin<&mut Self>) -> Option<Self::Guard> {
        None
    }
}

/// A [`ClassifyEos`] that reads HTTP trailers, as [`HoldToEos`] needs. Implemented
/// for [`NeverEos`] (classifiers that answer from the head, like
/// [`HttpClassifier`](super::HttpClassifier)) and, with the `grpc` feature, for
/// [`GrpcEos`](crate::grpc::GrpcEos); implement it for your own end-of-stream
/// classifier by forwarding to [`ClassifyEos::classify_eos`].
pub trait HttpEos: ClassifyEos {
    /// The stream ended, with these trailers if it had any.
    fn classify_trailers(self, trailers: Option<&HeaderMap>) -> Outcome;
}

impl HttpEos for NeverEos {
    fn classify_trailers(self, _: Option<&HeaderMap>) -> Outcome {
        match self {}
    }
}

#[cfg(feature = "grpc")]
impl HttpEos for crate::grpc::GrpcEos {
    fn classify_trailers(self, trailers: Option<&HeaderMap>) -> Outcome {
        self.classify_eos(trailers)
    }
}

/// How a held call will be judged when its body ends.
enum Verdict<E> {
    /// From the response head; a body that fails before its end turns a success
    /// into a retryable failure (the stream broke).
    Known(Outcome),
    /// From the trailers (gRPC without `grpc-status` in its headers).
    Eos(E),
}

impl<E: HttpEos> Verdict<E> {
    fn at_end(self, trailers: Option<&HeaderMap>) -> Outcome {
        match self {
            Verdict::Known(outcome) => outcome,
            Verdict::Eos(eos) => eos.classify_trailers(trailers),
        }
    }

    fn at_error(self) -> Outcome {
        match self {
            Verdict::Known(Outcome::Success) => Outcome::RetryableFailure,
            Verdict::Known(outcome) => outcome,
            Verdict::Eos(eos) => eos.classify_early_end(),
        }
    }
}

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
                let mut pending = guard.map(|g| (verdict, g));
                if body.is_end_stream()
                    && let Some((verdict, guard)) = pending.take()
                {
                    guard.finish(Some(verdict.at_end(None)));
                }
                let body = HeldBody {
                    inner: body,
                    pending,
                };
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

pin_project! {
    /// The body of a response that went through [`HoldToEos`]: the inner body,
    /// holding the layer's guard until it ends, fails or is dropped.
    pub struct HeldBody<B, E: HttpEos, G: EndGuard> {
        #[pin]
        inner: B,
        pending: Option<(Verdict<E>, G)>,
    }

    impl<B, E: HttpEos, G: EndGuard> PinnedDrop for HeldBody<B, E, G> {
        fn drop(this: Pin<&mut Self>) {
            if let Some((_, guard)) = this.project().pending.take() {
                guard.finish(None);
            }
        }
    }
}

impl<B, E: HttpEos, G: EndGuard> fmt::Debug for HeldBody<B, E, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldBody")
            .field("holding", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl<B, E: HttpEos, G: EndGuard> HeldBody<B, E, G> {
    /// `true` while the body still holds the guard (the stream has not ended).
    pub fn is_holding(&self) -> bool {
        self.pending.is_some()
    }
}

impl<B, E, G> Body for HeldBody<B, E, G>
where
    B: Body,
    E: HttpEos,
    G: EndGuard,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let Some((verdict, guard)) = this.pending.take() else {
            return Poll::Ready(frame);
        };
        match &frame {
            None => guard.finish(Some(verdict.at_end(None))),
            Some(Err(_)) => guard.finish(Some(verdict.at_error())),
            Some(Ok(f)) => {
                if let Some(trailers) = f.trailers_ref() {
                    guard.finish(Some(verdict.at_end(Some(trailers))));
                } else if this.inner.is_end_stream() {
                    guard.finish(Some(verdict.at_end(None)));
                } else {
                    *this.pending = Some((verdict, guard));
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
