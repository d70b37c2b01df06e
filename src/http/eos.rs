//! End of stream: response bodies that finish a call's classification, and release
//! what a layer held for it, when their stream ends, fails or is dropped.
//!
//! One state machine, [`HeldBody`], does it; [`EosBody`] is the same body reporting
//! to a callback.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::classify::{ClassifyEos, NeverEos, Outcome};
use crate::guard::EndGuard;

/// A [`ClassifyEos`] that reads HTTP trailers, as [`HoldToEos`](super::HoldToEos) needs. Implemented
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

/// How a held call will be judged when its body ends.
pub(super) enum Verdict<E> {
    /// From the response head; a body that fails before its end turns a success
    /// into a retryable failure (the stream broke).
    Known(Outcome),
    /// From the trailers (gRPC without `grpc-status` in its headers).
    Eos(E),
}

impl<E: HttpEos> Verdict<E> {
    pub(super) fn at_end(self, trailers: Option<&HeaderMap>) -> Outcome {
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

pin_project! {
    /// The body of a response whose call is not over until its stream ends: the inner
    /// body, holding a layer's guard (or an [`EosBody`]'s callback) until it ends,
    /// fails or is dropped. [`HoldToEos`](super::HoldToEos) makes them.
    ///
    /// The guard is finished exactly once:
    ///
    /// * at the end of the stream, with the outcome the response head said, or, when
    ///   the classifier needed the trailers (gRPC), the one they say;
    /// * when the body fails, with a failure (a success from the head becomes a
    ///   retryable failure: the stream broke);
    /// * when the body is dropped before its end, with `None` (a cancelled call).
    pub struct HeldBody<B, E, G: EndGuard> {
        #[pin]
        inner: B,
        pending: Option<(Verdict<E>, G)>,
    }

    impl<B, E, G: EndGuard> PinnedDrop for HeldBody<B, E, G> {
        fn drop(this: Pin<&mut Self>) {
            if let Some((_, guard)) = this.project().pending.take() {
                guard.finish(None);
            }
        }
    }
}

impl<B, E, G: EndGuard> fmt::Debug for HeldBody<B, E, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldBody")
            .field("holding", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl<B, E, G: EndGuard> HeldBody<B, E, G> {
    /// `inner`, finishing `pending` when it ends; a body already at its end finishes
    /// it at once.
    pub(super) fn new(inner: B, pending: Option<(Verdict<E>, G)>) -> Self
    where
        B: Body,
        E: HttpEos,
    {
        let mut pending = pending;
        if inner.is_end_stream()
            && let Some((verdict, guard)) = pending.take()
        {
            guard.finish(Some(verdict.at_end(None)));
        }
        Self { inner, pending }
    }

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

/// An [`EosBody`]'s classifier, as [`HeldBody`] asks for one.
struct FromTrailers<E>(E);

impl<E: ClassifyEos<Trailers = HeaderMap>> ClassifyEos for FromTrailers<E> {
    type Trailers = HeaderMap;

    fn classify_eos(self, trailers: Option<&HeaderMap>) -> Outcome {
        self.0.classify_eos(trailers)
    }

    fn classify_early_end(self) -> Outcome {
        self.0.classify_early_end()
    }
}

impl<E: ClassifyEos<Trailers = HeaderMap>> HttpEos for FromTrailers<E> {
    fn classify_trailers(self, trailers: Option<&HeaderMap>) -> Outcome {
        self.0.classify_eos(trailers)
    }
}

pin_project! {
    /// A response body that finishes a classification when its stream ends.
    ///
    /// A classifier that answers [`Classified::RequiresEos`] (gRPC without
    /// `grpc-status` in its headers) hands over a [`ClassifyEos`]; wrap the response
    /// body in an `EosBody` with it and a callback, and the callback is called
    /// exactly once:
    ///
    /// * at the end of the stream with `Some(outcome)`, from its trailers (or their
    ///   absence);
    /// * when the stream fails with `Some(outcome)` from
    ///   [`ClassifyEos::classify_early_end`];
    /// * when the body is dropped before its end with `None`: the caller gave up on
    ///   the call, which says nothing about the server, so a layer releases what it
    ///   holds and records neither a success nor a failure.
    ///
    /// Layers that hold something for the life of a call (a bulkhead permit, a
    /// breaker's verdict) release it in the callback, so a streaming response keeps
    /// them until it is done.
    ///
    /// ```
    /// # #[cfg(feature = "grpc")] {
    /// use std::sync::{Arc, Mutex};
    /// use tower_fortify::classify::Outcome;
    /// use tower_fortify::grpc::GrpcEos;
    /// use tower_fortify::http::EosBody;
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let body = EosBody::new(String::from("partial"), GrpcEos::default(), move |o: Option<Outcome>| {
    ///     log.lock().unwrap().push(o);
    /// });
    /// drop(body); // dropped before its end: a cancellation
    /// assert_eq!(*seen.lock().unwrap(), vec![None]);
    /// # }
    /// ```
    ///
    /// [`Classified::RequiresEos`]: crate::classify::Classified::RequiresEos
    pub struct EosBody<B, E, F>
    where
        E: ClassifyEos,
        F: FnOnce(Option<Outcome>),
    {
        #[pin]
        inner: HeldBody<B, FromTrailers<E>, F>,
    }
}

impl<B, E, F> fmt::Debug for EosBody<B, E, F>
where
    E: ClassifyEos,
    F: FnOnce(Option<Outcome>),
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EosBody")
            .field("pending", &self.inner.is_holding())
            .finish_non_exhaustive()
    }
}

impl<B, E, F> EosBody<B, E, F>
where
    E: ClassifyEos,
    F: FnOnce(Option<Outcome>),
{
    /// Wraps `inner`; `report` receives the outcome `eos` decides at the end, or
    /// `None` if the body is dropped first.
    pub fn new(inner: B, eos: E, report: F) -> Self {
        Self {
            inner: HeldBody {
                inner,
                pending: Some((Verdict::Eos(FromTrailers(eos)), report)),
            },
        }
    }
}

impl<B, E, F> Body for EosBody<B, E, F>
where
    B: Body,
    E: ClassifyEos<Trailers = HeaderMap>,
    F: FnOnce(Option<Outcome>),
{
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
