//! A request body that can be sent again.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::BoxError;

/// A request body that records what it streams, up to a cap, so that a copy made with
/// [`try_clone`](Self::try_clone) can send the same bytes again.
///
/// All copies share one record. Whichever copy is furthest along reads the wrapped
/// body and appends each chunk to the record; the others replay the record. So a
/// retry can start while the first attempt's connection still holds its copy, and
/// the body is read from the network only once.
///
/// **The cap.** Once more than `cap` bytes have been read, the record is dropped (the
/// memory goes back at once) and the body becomes one-shot: the copy at the front
/// keeps streaming, [`try_clone`](Self::try_clone) returns `None`, [`is_capped`]
/// turns true and the retry layer reports
/// [`SkipReason::NotReplayable`](crate::observe::SkipReason::NotReplayable) instead of
/// retrying. A copy that had fallen behind fails with a [`ReplayError`]. A body whose
/// wrapped stream failed cannot be replayed either.
///
/// Two copies may stream at once (a retry sent while the first attempt's connection
/// still reads its copy, a hedge): the wrapped body is polled with a waker that wakes
/// every copy waiting on it, so none misses new data.
///
/// The wrapped body must be `Unpin + Send + 'static` (hyper's `Incoming`, axum's
/// `Body`, tonic's `Body`, `Full` and every boxed body are); `Box::pin` others.
///
/// **Cost.** One allocation for the shared record per request, and one for a chunk
/// list when the body has more than one chunk; an uncontended lock per frame. A copy waiting on the network registers
/// its waker in a list (an allocation per wait).
///
/// ```
/// use bytes::Bytes;
/// use http_body::Body;
/// use tower_fortify::http::ReplayBody;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::future::poll_fn;
/// use std::pin::Pin;
///
/// let mut first = ReplayBody::new(String::from("hello"), 1024);
/// let mut second = first.try_clone().expect("nothing read yet");
/// let chunk = poll_fn(|cx| Pin::new(&mut first).poll_frame(cx)).await.unwrap().unwrap();
/// assert_eq!(chunk.into_data().unwrap(), Bytes::from("hello"));
/// // The copy replays the recorded bytes.
/// let again = poll_fn(|cx| Pin::new(&mut second).poll_frame(cx)).await.unwrap().unwrap();
/// assert_eq!(again.into_data().unwrap(), Bytes::from("hello"));
/// # }
/// ```
///
/// [`is_capped`]: Self::is_capped
pub struct ReplayBody<B> {
    shared: Arc<Shared<B>>,
    /// Index of the next chunk this copy sends.
    cursor: usize,
    /// Bytes this copy has sent, for its size hint.
    sent: u64,
    trailers_sent: bool,
    hint: SizeHint,
}

struct Shared<B> {
    record: Mutex<Record<B>>,
    /// Copies waiting for the wrapped body to make progress.
    waiters: Mutex<Vec<Waker>>,
    has_waiters: AtomicBool,
    /// Set by the wrapped body's waker; lets a copy that registers late see a wake
    /// that came before its registration.
    notified: AtomicBool,
    /// Whether a client ever looked at a copy (its frames, size or end).
    touched: AtomicBool,
}

impl<B> Shared<B> {
    #[inline]
    fn touch(&self) {
        if !self.touched.load(Ordering::Relaxed) {
            self.touched.store(true, Ordering::Relaxed);
        }
    }

    fn wake_waiters(&self) {
        if self.has_waiters.swap(false, Ordering::SeqCst) {
            let waiters = std::mem::take(&mut *lock(&self.waiters));
            for waker in waiters {
                waker.wake();
            }
        }
    }

    fn register(&self, waker: &Waker) {
        let mut waiters = lock(&self.waiters);
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
        self.has_waiters.store(true, Ordering::SeqCst);
    }
}

/// The waker the wrapped body is polled with: it wakes every waiting copy.
impl<B: Send + 'static> Wake for Shared<B> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notified.store(true, Ordering::SeqCst);
        self.wake_waiters();
    }
}

struct Record<B> {
    /// The rest of the wrapped body; `None` once it ended.
    inner: Option<B>,
    /// Every chunk read so far (empty once capped). The first is kept apart so
    /// that a one-chunk body (the usual `Full`) needs no list.
    first: Option<Bytes>,
    rest: Vec<Bytes>,
    /// How many chunks have been read from `inner`.
    read: usize,
    buffered: usize,
    cap: usize,
    capped: bool,
    failed: bool,
    trailers: Option<HeaderMap>,
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let record = lock(&self.shared.record);
        f.debug_struct("ReplayBody")
            .field("cursor", &self.cursor)
            .field("buffered", &record.buffered)
            .field("cap", &record.cap)
            .field("capped", &record.capped)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the record consistent (every field is
    // written once per step), so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl<B: Body> ReplayBody<B> {
    /// Wraps `body`, recording up to `cap` bytes of it.
    pub fn new(body: B, cap: usize) -> Self {
        let hint = body.size_hint();
        let ended = body.is_end_stream();
        Self {
            shared: Arc::new(Shared {
                record: Mutex::new(Record {
                    inner: if ended { None } else { Some(body) },
                    first: None,
                    rest: Vec::new(),
                    read: 0,
                    buffered: 0,
                    cap,
                    capped: false,
                    failed: false,
                    trailers: None,
                }),
                waiters: Mutex::new(Vec::new()),
                has_waiters: AtomicBool::new(false),
                notified: AtomicBool::new(false),
                touched: AtomicBool::new(false),
            }),
            cursor: 0,
            sent: 0,
            trailers_sent: false,
            hint,
        }
    }
}

impl<B> ReplayBody<B> {
    /// A copy that sends the body again from its start, or `None` once the body went
    /// past its cap or its stream failed.
    pub fn try_clone(&self) -> Option<Self> {
        let record = lock(&self.shared.record);
        if record.capped || record.failed {
            return None;
        }
        Some(Self {
            shared: self.shared.clone(),
            cursor: 0,
            sent: 0,
            trailers_sent: false,
            hint: self.hint,
        })
    }

    /// Whether the body went past its cap, so it can no longer be replayed.
    pub fn is_capped(&self) -> bool {
        lock(&self.shared.record).capped
    }

    /// Whether a copy can still be made ([`try_clone`](Self::try_clone) would return
    /// `Some`).
    pub fn is_replayable(&self) -> bool {
        let record = lock(&self.shared.record);
        !record.capped && !record.failed
    }

    /// Whether a client ever looked at this body or a copy of it: read a frame, or
    /// asked for its size or whether it is empty.
    ///
    /// A client does that when it writes the request head, which it can only do on an
    /// established connection. So after a failed attempt, `false` means the request
    /// never left this process (the connection was refused or never established), and
    /// sending it again is safe whatever its method.
    /// [`HttpReplay`](super::HttpReplay) relies on this to retry a POST whose
    /// connection failed. The signal errs on the safe side: a layer that inspects the
    /// body before the client connects makes it `true` early, which only forgoes a
    /// retry.
    pub fn was_read(&self) -> bool {
        self.shared.touched.load(Ordering::Relaxed)
    }

    /// The bytes recorded so far.
    pub fn buffered(&self) -> usize {
        lock(&self.shared.record).buffered
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let shared = &*this.shared;
        shared.touch();
        let mut record = lock(&shared.record);
        if this.cursor < record.read {
            if record.capped {
                return Poll::Ready(Some(Err(ReplayError::capped(record.cap).into())));
            }
            let chunk = match this.cursor {
                0 => record.first.clone().unwrap_or_default(),
                i => record.rest[i - 1].clone(),
            };
            this.cursor += 1;
            this.sent += chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if record.failed {
            return Poll::Ready(Some(Err(ReplayError::failed().into())));
        }
        if !this.trailers_sent
            && let Some(trailers) = &record.trailers
        {
            this.trailers_sent = true;
            return Poll::Ready(Some(Ok(Frame::trailers(trailers.clone()))));
        }
        let Some(inner) = record.inner.as_mut() else {
            return Poll::Ready(None);
        };
        // Poll with the fan-out waker, so that whichever copy is woken, all are.
        shared.notified.store(false, Ordering::SeqCst);
        let waker = Waker::from(this.shared.clone());
        let polled = match Pin::new(inner).poll_frame(&mut Context::from_waker(&waker)) {
            Poll::Ready(polled) => polled,
            Poll::Pending => {
                shared.register(cx.waker());
                if shared.notified.load(Ordering::SeqCst) {
                    // Woken between the poll and the registration: poll again.
                    cx.waker().wake_by_ref();
                }
                return Poll::Pending;
            }
        };
        // Progress: copies waiting on the wrapped body may now replay it.
        shared.wake_waiters();
        match polled {
            None => {
                record.inner = None;
                Poll::Ready(None)
            }
            Some(Err(e)) => {
                record.failed = true;
                record.inner = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    let chunk = data.copy_to_bytes(data.remaining());
                    record.read += 1;
                    this.cursor = record.read;
                    this.sent += chunk.len() as u64;
                    if !record.capped {
                        if record.buffered + chunk.len() > record.cap {
                            record.capped = true;
                            record.first = None;
                            record.rest = Vec::new();
                            record.buffered = 0;
                            tracing::debug!(
                                target: "tower_fortify::http",
                                cap = record.cap,
                                "request body exceeded the replay cap; it will not be replayed"
                            );
                        } else {
                            record.buffered += chunk.len();
                            if record.first.is_none() {
                                record.first = Some(chunk.clone());
                            } else {
                                record.rest.push(chunk.clone());
                            }
                        }
                    }
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        record.trailers = Some(trailers.clone());
                        this.trailers_sent = true;
                        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                    }
                    // A frame kind this version does not know: pass it on unrecorded.
                    Err(frame) => Poll::Ready(Some(Ok(
                        frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))
                    ))),
                },
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.shared.touch();
        let record = lock(&self.shared.record);
        record.inner.as_ref().is_none_or(Body::is_end_stream)
            && !record.failed
            && self.cursor >= record.read
            && (self.trailers_sent || record.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        self.shared.touch();
        let lower = self.hint.lower().saturating_sub(self.sent);
        match self.hint.upper() {
            Some(upper) if upper == self.hint.lower() => SizeHint::with_exact(lower),
            Some(upper) => {
                let mut hint = SizeHint::new();
                hint.set_lower(lower);
                hint.set_upper(upper.saturating_sub(self.sent).max(lower));
                hint
            }
            None => {
                let mut hint = SizeHint::new();
                hint.set_lower(lower);
                hint
            }
        }
    }
}

/// Why a copy of a [`ReplayBody`] could not send the body again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayError {
    cap: Option<usize>,
}

impl ReplayError {
    fn capped(cap: usize) -> Self {
        Self { cap: Some(cap) }
    }

    fn failed() -> Self {
        Self { cap: None }
    }

    /// Whether the body went past its replay cap (otherwise its stream failed).
    pub fn is_capped(&self) -> bool {
        self.cap.is_some()
    }
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cap {
            Some(cap) => write!(
                f,
                "request body went past its replay cap of {cap} bytes and cannot be sent again"
            ),
            None => f.write_str("request body stream failed and cannot be sent again"),
        }
    }
}

impl std::error::Error for ReplayError {}

/// Wraps each request's body in a [`ReplayBody`] with the given cap, so the retry
/// layer below (with [`HttpReplay`](super::HttpReplay)) can resend it.
///
/// Put it directly above the retry layer:
///
/// ```
/// # #[cfg(feature = "retry")] {
/// use tower::ServiceBuilder;
/// use tower_fortify::http::{HttpClassifier, ReplayBody, ReplayBodyLayer};
/// use tower_fortify::http::HttpReplay;
/// use tower_fortify::retry::RetryLayer;
///
/// let retry = RetryLayer::builder()
///     .classifier(HttpClassifier::new())
///     .replay(HttpReplay)
///     .build()
///     .unwrap();
/// let client = tower::service_fn(|req: http::Request<ReplayBody<String>>| async move {
///     Ok::<_, std::io::Error>(http::Response::new(()))
/// });
/// let svc = ServiceBuilder::new()
///     .layer(ReplayBodyLayer::new(64 * 1024))
///     .layer(retry)
///     .service(client);
/// # let _ = svc;
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ReplayBodyLayer {
    cap: usize,
}

impl ReplayBodyLayer {
    /// Records up to `cap` bytes of each request body.
    pub fn new(cap: usize) -> Self {
        Self { cap }
    }
}

impl<S> tower_layer::Layer<S> for ReplayBodyLayer {
    type Service = WithReplayBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithReplayBody {
            inner,
            cap: self.cap,
        }
    }
}

/// The service made by [`ReplayBodyLayer`].
#[derive(Debug, Clone)]
pub struct WithReplayBody<S> {
    inner: S,
    cap: usize,
}

impl<S, B> tower_service::Service<http::Request<B>> for WithReplayBody<S>
where
    S: tower_service::Service<http::Request<ReplayBody<B>>>,
    B: Body,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> S::Future {
        let cap = self.cap;
        self.inner.call(req.map(|body| ReplayBody::new(body, cap)))
    }
}
