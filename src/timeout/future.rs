//! The timeouts' response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::error::{DeadlineExceeded, Elapsed};
use crate::BoxError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Attempt,
    Request,
}

pin_project! {
    /// The future of [`Timeout`](super::Timeout) and [`Deadline`](super::Deadline):
    /// the inner result, or [`Elapsed`] / [`DeadlineExceeded`] when the timer fires
    /// first. The inner future is polled first, so a response that is ready when the
    /// timer fires is kept.
    ///
    /// The deadline (or the attempt's end, if earlier) is in scope while the inner
    /// future is polled ([`current_deadline`](super::current_deadline)), so the calls
    /// below see it. A
    /// request whose inherited deadline had already passed was never sent: the future
    /// fails with [`DeadlineExceeded`] at its first poll.
    pub struct ResponseFuture<F> {
        #[pin]
        fut: Option<F>,
        #[pin]
        sleep: Sleep,
        kind: Kind,
        after: Duration,
        scope: Option<Instant>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(fut: F, sleep: Sleep, kind: Kind, after: Duration) -> Self {
        Self {
            fut: Some(fut),
            sleep,
            kind,
            after,
            scope: None,
        }
    }

    /// An attempt timeout ending at `at`, in scope while `fut` is polled.
    pub(crate) fn attempt(fut: F, at: Instant, after: Duration) -> Self {
        Self {
            fut: Some(fut),
            sleep: tokio::time::sleep_until(at),
            kind: Kind::Attempt,
            after,
            scope: Some(at),
        }
    }

    /// A request deadline at `at`, in scope while `fut` is polled; `fut` is `None`
    /// when the deadline passed before the request could be sent.
    pub(crate) fn scoped(fut: Option<F>, at: Instant, after: Duration) -> Self {
        Self {
            fut,
            sleep: tokio::time::sleep_until(at),
            kind: Kind::Request,
            after,
            scope: Some(at),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("kind", &self.kind)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(fut) = this.fut.as_pin_mut() else {
            tracing::debug!(
                target: "tower_fortify::timeout",
                "deadline passed before the request was sent"
            );
            return Poll::Ready(Err(Box::new(DeadlineExceeded { after: *this.after })));
        };
        let polled = crate::scope::enter(*this.scope, || fut.poll(cx));
        if let Poll::Ready(result) = polled {
            return Poll::Ready(result.map_err(Into::into));
        }
        match this.sleep.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                let after = *this.after;
                tracing::debug!(
                    target: "tower_fortify::timeout",
                    after_ms = after.as_millis() as u64,
                    per_request = *this.kind == Kind::Request,
                    "timed out"
                );
                Poll::Ready(Err(match this.kind {
                    Kind::Attempt => Box::new(Elapsed { after }) as BoxError,
                    Kind::Request => Box::new(DeadlineExceeded { after }),
                }))
            }
        }
    }
}
