//! The rate limiter's response future: the inner call, a call waiting for its
//! reserved slot, or a ready refusal, and the reservation a waiting call holds.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tower_service::Service;

use super::error::RateLimited;
use super::gcra::{Gcra, Quota};
use super::shared::{KeyCell, Shared};
use crate::BoxError;
use crate::observe::Warn;

#[cfg(feature = "redis")]
pub use super::redis::RedisResponseFuture;

/// The cell a reservation was taken from.
pub(super) enum Cell {
    One(Arc<Shared>),
    Key(KeyCell, Quota),
}

/// A reserved slot not yet used: gives it back when dropped unless the call was sent.
struct Reservation {
    cell: Cell,
    stored: u64,
}

impl Reservation {
    /// The call was sent: the slot is used.
    fn spend(self) {
        std::mem::forget(self);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let _ = match &self.cell {
            Cell::One(shared) => shared.cell.refund(shared.quota.get(), self.stored),
            Cell::Key(cell, quota) => cell.refund(*quota, self.stored),
        };
    }
}

pin_project! {
    /// A call waiting for its reserved slot: the timer, a clone of the inner service
    /// (readied when the slot comes) and the request. Boxed: only calls that wait
    /// pay for it.
    struct Wait<S, Req> {
        #[pin]
        sleep: tokio::time::Sleep,
        slept: bool,
        svc: S,
        req: Option<Req>,
        reservation: Option<Reservation>,
    }
}

/// A waiting call, boxed, with its drop out of line: the response future's drop
/// (on every call) then stays small enough to inline.
/// (Always `Some` until dropped.)
struct Waiter<S, Req>(Option<Pin<Box<Wait<S, Req>>>>);

impl<S, Req> Drop for Waiter<S, Req> {
    #[cold]
    #[inline(never)]
    fn drop(&mut self) {
        drop(self.0.take());
    }
}

pin_project! {
    /// The future of a rate-limited call: the inner call, a call waiting for its
    /// slot ([`max_wait`](super::RateLimitBuilder::max_wait)), or a ready
    /// [`RateLimited`].
    ///
    /// Dropping it while it waits gives the reserved slot back (when no later call
    /// has reserved since; otherwise the slot goes unused).
    pub struct ResponseFuture<S, Req, F> {
        #[pin]
        state: State<S, Req, F>,
    }
}

pin_project! {
    #[project = Proj]
    enum State<S, Req, F> {
        Called { #[pin] fut: F },
        Waiting { wait: Waiter<S, Req> },
        Limited { error: Option<RateLimited> },
    }
}

impl<S, Req, F> ResponseFuture<S, Req, F> {
    #[inline]
    pub(super) fn called(fut: F) -> Self {
        Self {
            state: State::Called { fut },
        }
    }
}

impl<S, Req, F> fmt::Debug for ResponseFuture<S, Req, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Called { .. } => "called",
            State::Waiting { .. } => "waiting",
            State::Limited { .. } => "limited",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, Req> Future for ResponseFuture<S, Req, S::Future>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        if let Proj::Called { fut } = state.as_mut().project() {
            return fut.poll(cx).map_err(Into::into);
        }
        poll_slow(state, cx)
    }
}

/// A refusal, or a call waiting for its slot.
#[cold]
#[inline(never)]
fn poll_slow<S, Req>(
    mut state: Pin<&mut State<S, Req, S::Future>>,
    cx: &mut Context<'_>,
) -> Poll<Result<S::Response, BoxError>>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    loop {
        match state.as_mut().project() {
            Proj::Called { fut } => return fut.poll(cx).map_err(Into::into),
            Proj::Limited { error } => {
                return Poll::Ready(Err(match error.take() {
                    Some(e) => Box::new(e),
                    None => "rate limit future polled after completion".into(),
                }));
            }
            Proj::Waiting { wait } => {
                let Some(wait) = wait.0.as_mut() else {
                    unreachable!("a waiting call holds its wait until dropped")
                };
                let w = wait.as_mut().project();
                if !*w.slept {
                    ready!(w.sleep.poll(cx));
                    *w.slept = true;
                }
                if let Err(e) = ready!(w.svc.poll_ready(cx)) {
                    // Not sent: dropping the wait gives the slot back.
                    state.set(State::Limited { error: None });
                    return Poll::Ready(Err(e.into()));
                }
                let req = w.req.take().expect("a waiting call holds its request");
                if let Some(r) = w.reservation.take() {
                    r.spend();
                }
                let fut = w.svc.call(req);
                state.set(State::Called { fut });
            }
        }
    }
}

#[cold]
#[inline(never)]
pub(super) fn limited<S, Req, F>(
    shared: &Shared,
    retry_after: Duration,
) -> ResponseFuture<S, Req, F> {
    if shared.listeners.warn_due(Warn::RateLimited) {
        tracing::warn!(
            target: "tower_fortify::rate_limit",
            name = shared.listeners.name(),
            retry_after_ms = retry_after.as_millis() as u64,
            "rate limit exceeded: calls rejected"
        );
    }
    shared.listeners.emit(|| {
        crate::observe::Event::RateLimit(crate::observe::RateLimitEvent::Rejected { retry_after })
    });
    ResponseFuture {
        state: State::Limited {
            error: Some(RateLimited {
                retry_after,
                name: shared.listeners.name_arc(),
            }),
        },
    }
}

/// A call that waits for the slot its reservation (`stored`) took.
#[cold]
#[inline(never)]
pub(super) fn waiting<S, Req, F>(
    shared: &Shared,
    svc: S,
    req: Req,
    cell: impl FnOnce() -> Cell,
    stored: u64,
) -> ResponseFuture<S, Req, F> {
    let at = Gcra::send_at(shared.quota.get(), stored);
    tracing::trace!(
        target: "tower_fortify::rate_limit",
        name = shared.listeners.name(),
        "over the rate: waiting for a reserved slot"
    );
    shared.listeners.emit(|| {
        let wait = Duration::from_nanos(at.saturating_sub(shared.epoch.now()));
        crate::observe::Event::RateLimit(crate::observe::RateLimitEvent::Waiting { wait })
    });
    ResponseFuture {
        state: State::Waiting {
            wait: Waiter(Some(Box::pin(Wait {
                sleep: tokio::time::sleep_until(shared.epoch.origin() + Duration::from_nanos(at)),
                slept: false,
                svc,
                req: Some(req),
                reservation: Some(Reservation {
                    cell: cell(),
                    stored,
                }),
            }))),
        },
    }
}
