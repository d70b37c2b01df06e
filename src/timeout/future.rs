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
use crate::observe::NameId;

/// Which timeout a future is, and what its error says it waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A per-attempt timeout of this length.
    Attempt(Duration),
    /// A request deadline, sent at this instant.
    Request(Instant),
}

pin_project! {
    /// The future of [`Timeout`](super::Timeout) and [`Deadline`](super::Deadline):
    /// the inner result, or [`Elapsed`] / [`DeadlineExceeded`] when the timer fires
    /// first. The inner future is polled first, so a response that is ready when the
    /// timer fires is kept; the timer itself is made the first time the inner future
    /// is not ready, so a call answered at once never touches the timer wheel.
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
        sleep: Option<Sleep>,
        at: Instant,
        kind: Kind,
        scoped: bool,
        name: NameId,
    }
}

impl<F> ResponseFuture<F> {
    /// An attempt timeout of `after` ending at `at`; with `scoped`, `at` is in scope
    /// while `fut` is polled.
    #[inline]
    pub(crate) fn attempt(
        fut: F,
        at: Instant,
        after: Duration,
        scoped: bool,
        name: NameId,
    ) -> Self {
        Self {
            fut: Some(fut),
            sleep: None,
            at,
            kind: Kind::Attempt(after),
            scoped,
            name,
        }
    }

    /// A request sent at `now` with its deadline at `at`, in scope while `fut` is
    /// polled; `fut` is `None` when the deadline passed before the request could be
    /// sent.
    #[inline]
    pub(crate) fn scoped(fut: Option<F>, at: Instant, now: Instant, name: NameId) -> Self {
        Self {
            fut,
            sleep: None,
            at,
            kind: Kind::Request(now),
            scoped: true,
            name,
        }
    }
}

impl Kind {
    /// How long a future of this kind, ending at `at`, waited.
    fn after(self, at: Instant) -> Duration {
        match self {
            Kind::Attempt(after) => after,
            Kind::Request(sent) => at.saturating_duration_since(sent),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("kind", &self.kind)
            .field("at", &self.at)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let at = *this.at;
        let Some(fut) = this.fut.as_pin_mut() else {
            return Poll::Ready(Err(not_sent(at, *this.kind, *this.name)));
        };
        let polled = if *this.scoped {
            crate::scope::enter(Some(at), || fut.poll(cx))
        } else {
            fut.poll(cx)
        };
        match polled {
            Poll::Ready(result) => Poll::Ready(result.map_err(Into::into)),
            Poll::Pending => poll_timer(this.sleep, at, *this.kind, *this.name, cx).map(Err),
        }
    }
}

/// The error of a request whose deadline passed before it could be sent.
#[cold]
#[inline(never)]
fn not_sent(at: Instant, kind: Kind, name: NameId) -> BoxError {
    let name = name.get();
    tracing::debug!(
        target: "tower_fortify::timeout",
        name = name.as_deref().unwrap_or(""),
        "deadline passed before the request was sent"
    );
    Box::new(DeadlineExceeded {
        after: kind.after(at),
        name,
    })
}

/// Polls the timer (making it the first time) once the inner future is not ready;
/// the error when it fired. Not generic, so every timeout shares one copy.
#[inline(never)]
fn poll_timer(
    mut sleep: Pin<&mut Option<Sleep>>,
    at: Instant,
    kind: Kind,
    name: NameId,
    cx: &mut Context<'_>,
) -> Poll<BoxError> {
    if sleep.is_none() {
        sleep.set(Some(tokio::time::sleep_until(at)));
    }
    let Some(sleep) = sleep.as_pin_mut() else {
        unreachable!("the timer was made above");
    };
    if sleep.poll(cx).is_pending() {
        return Poll::Pending;
    }
    let after = kind.after(at);
    let name = name.get();
    tracing::debug!(
        target: "tower_fortify::timeout",
        name = name.as_deref().unwrap_or(""),
        after_ms = after.as_millis() as u64,
        per_request = matches!(kind, Kind::Request(_)),
        "timed out"
    );
    Poll::Ready(match kind {
        Kind::Attempt(_) => Box::new(Elapsed { after, name }),
        Kind::Request(_) => Box::new(DeadlineExceeded { after, name }),
    })
}
