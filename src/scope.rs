//! The deadline of the request being served, for the calls it makes.
//!
//! A server layer that learned the caller's deadline (from `grpc-timeout` or an HTTP
//! header) runs the handler's future inside a *scope*: while the future is polled,
//! the deadline is this thread's current one. Every deadline-aware layer the handler
//! calls through — a [`Stack`](crate::stack::Stack), a
//! [`DeadlineLayer`](crate::timeout::DeadlineLayer), the retry and hedging layers —
//! reads it when a request enters and keeps the earlier of its own deadline and the
//! inherited one, and runs its own inner calls in a scope of that, so the deadline
//! travels down to the client that writes it on the wire. This is what a Go
//! `context.Context` or Finagle's broadcast `Deadline` do, without a parameter on
//! every call.
//!
//! The scope is a thread-local cell set and restored around each poll (as tokio's
//! task-locals are): reading it is a few nanoseconds and allocates nothing.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Instant;

thread_local! {
    static CURRENT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The deadline of the request being served on this thread, if one is in scope.
#[inline]
pub(crate) fn current() -> Option<Instant> {
    // A const-initialised `Cell` of a `Copy` type has no destructor, so the slot is
    // never torn down and `with` cannot fail.
    CURRENT.with(Cell::get)
}

/// The earlier of two optional deadlines.
#[inline]
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Restores the previous deadline on drop, so a panicking poll leaves no scope set.
struct Restore<'a> {
    cell: &'a Cell<Option<Instant>>,
    prev: Option<Instant>,
}

impl Drop for Restore<'_> {
    #[inline]
    fn drop(&mut self) {
        self.cell.set(self.prev);
    }
}

/// Runs `f` with `at` (or the current deadline, if earlier) in scope.
///
/// When the deadline in scope is already `at` or earlier, the scope does not change:
/// the thread-local is not written, only put back as it was.
#[inline]
pub(crate) fn enter<R>(at: Option<Instant>, f: impl FnOnce() -> R) -> R {
    let Some(at) = at else { return f() };
    CURRENT.with(|cell| {
        let prev = cell.get();
        let _restore = Restore { cell, prev };
        if !matches!(prev, Some(p) if p <= at) {
            cell.set(Some(at));
        }
        f()
    })
}

pin_project! {
    /// A future polled with a deadline in scope (see the [module docs](self)).
    #[derive(Debug)]
    pub(crate) struct Scoped<F> {
        #[pin]
        fut: F,
        at: Option<Instant>,
    }
}

impl<F> Scoped<F> {
    pub(crate) fn new(fut: F, at: Option<Instant>) -> Self {
        Self { fut, at }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        enter(*this.at, || this.fut.poll(cx))
    }
}
