//! Holding what a layer took for a call until the call is over.

use std::future::Future;
use std::pin::Pin;

use crate::classify::Outcome;

/// What a layer holds for one call and gives up when the call is over: a bulkhead
/// permit, a breaker's pending verdict, the router's in-flight count.
///
/// [`finish`](Self::finish) is called exactly once, with the call's outcome, or with
/// `None` when the caller gave up first (a response body dropped before its end),
/// which a layer treats as a cancelled call.
///
/// A closure `FnOnce(Option<Outcome>)` is one, which is how
/// [`EosBody`](crate::http::EosBody) reports to its callback.
pub trait EndGuard {
    /// The call is over.
    fn finish(self, outcome: Option<Outcome>);
}

impl<F: FnOnce(Option<Outcome>)> EndGuard for F {
    #[inline]
    fn finish(self, outcome: Option<Outcome>) {
        self(outcome)
    }
}

/// A layer's response future that can hand its [`EndGuard`] over to the response,
/// instead of giving it up when the future completes.
///
/// [`HoldToEos`](crate::http::HoldToEos) calls [`hold_guard`](Self::hold_guard)
/// before it first polls the future and [`take_guard`](Self::take_guard) once it
/// completed; a future hands its guard over from one of the two. The bulkhead, the
/// circuit breaker and the failover router implement it in their own `future.rs`.
pub trait GuardedFuture: Future {
    /// What the future holds for the call.
    type Guard: EndGuard;

    /// Called before the first poll: from now on the future must not give its guard
    /// up when it completes. It may hand the guard over at once.
    fn hold_guard(self: Pin<&mut Self>) -> Option<Self::Guard>;

    /// Called once the future completed: the guard it kept, if any.
    fn take_guard(self: Pin<&mut Self>) -> Option<Self::Guard>;
}
