//! Reading a short response's trailers ahead, so a status sent in trailers can be
//! judged before the caller reads the body.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Buf;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// The trailers of a response, read ahead by [`PeekTrailers`] and put in the
/// response's extensions so a classifier can judge the call before the caller reads
/// the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeekedTrailers(pub HeaderMap);

/// Reads up to a cap of each response body ahead, so that a short response's trailers
/// (a unary or client-streaming gRPC call's `grpc-status`) are known when the
/// response is returned. Built by [`PeekTrailersLayer`].
///
/// The trailers go into the response's extensions as [`PeekedTrailers`], where
/// [`GrpcClassifier`](crate::grpc::GrpcClassifier) looks for them; the body replays
/// what was read, then streams the rest. A response longer than the cap is returned
/// as soon as more than `max_bytes` were read (so at most one frame beyond the cap
/// is held), without trailers, and is classified from its head. A body error met
/// while reading ahead is kept and handed to the reader after the frames before it.
///
/// The response is returned only once its first `max_bytes` arrived: keep the cap
/// small (a few KiB) and do not use it for long-lived streams, whose first messages
/// would be held back.
///
/// Put it below the retry layer (between retry and the client) to let the retry see
/// statuses sent in trailers.
#[derive(Debug, Clone)]
pub struct PeekTrailers<S> {
    inner: S,
    max_bytes: usize,
}

/// Makes [`PeekTrailers`] services.
#[derive(Debug, Clone, Copy)]
pub struct PeekTrailersLayer {
    max_bytes: usize,
}

impl PeekTrailersLayer {
    /// Reads at most `max_bytes` of body ahead per response.
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }
}

impl<S> tower_layer::Layer<S> for PeekTrailersLayer {
    type Service = PeekTrailers<S>;

    fn layer(&self, inner: S) -> PeekTrailers<S> {
        PeekTrailers {
            inner,
            max_bytes: self.max_bytes,
        }
    }
}

impl<S, Req, B> tower_service::Service<Req> for PeekTrailers<S>
where
    S: tower_service::Service<Req, Response = http::Response<B>>,
    B: Body + Unpin,
{
    type Response = http::Response<PeekedBody<B>>;
    type Error = S::Error;
    type Future = PeekFuture<S::Future, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        PeekFuture {
            fut: self.inner.call(req),
            reading: None,
            max_bytes: self.max_bytes,
        }
    }
}

pin_project! {
    /// The response future of [`PeekTrailers`].
    pub struct PeekFuture<F, B: Body> {
        #[pin]
        fut: F,
        reading: Option<(http::response::Parts, PeekedBody<B>, usize)>,
        max_bytes: usize,
    }
}

impl<F, B: Body> fmt::Debug for PeekFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeekFuture")
            .field("reading", &self.reading.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for PeekFuture<F, B>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: Body + Unpin,
{
    type Output = Result<http::Response<PeekedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.reading.is_none() {
            let response = ready!(this.fut.as_mut().poll(cx))?;
            let (parts, body) = response.into_parts();
            let peeked = PeekedBody {
                ahead: VecDeque::new(),
                error: None,
                inner: (!body.is_end_stream()).then_some(body),
            };
            *this.reading = Some((parts, peeked, 0));
        }
        let (parts, peeked, read) = this.reading.as_mut().expect("set above");
        while *read <= *this.max_bytes {
            let Some(inner) = peeked.inner.as_mut() else {
                break;
            };
            match ready!(Pin::new(inner).poll_frame(cx)) {
                None => {
                    peeked.inner = None;
                }
                Some(Err(e)) => {
                    peeked.error = Some(e);
                    peeked.inner = None;
                }
                Some(Ok(frame)) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        parts.extensions.insert(PeekedTrailers(trailers.clone()));
                    } else if let Some(data) = frame.data_ref() {
                        *read += data.remaining();
                    }
                    peeked.ahead.push_back(frame);
                }
            }
        }
        let (parts, body, _) = this.reading.take().expect("set above");
        Poll::Ready(Ok(http::Response::from_parts(parts, body)))
    }
}

/// The body of a response that went through [`PeekTrailers`]: the frames read ahead,
/// then the rest of the stream.
pub struct PeekedBody<B: Body> {
    ahead: VecDeque<Frame<B::Data>>,
    error: Option<B::Error>,
    inner: Option<B>,
}

impl<B: Body> fmt::Debug for PeekedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeekedBody")
            .field("ahead", &self.ahead.len())
            .field("streaming", &self.inner.is_some())
            .finish_non_exhaustive()
    }
}

// The body is never pinned structurally: frames and errors are moved out by value.
impl<B: Body + Unpin> Unpin for PeekedBody<B> {}

impl<B: Body + Unpin> Body for PeekedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        if let Some(frame) = this.ahead.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(e) = this.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match this.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ahead.is_empty()
            && self.error.is_none()
            && self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let ahead: u64 = self
            .ahead
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.remaining() as u64))
            .sum();
        let rest = self
            .inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint());
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + ahead);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + ahead);
        }
        hint
    }
}
