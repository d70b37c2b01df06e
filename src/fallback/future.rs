//! The fallback layer's response future, and a backup service's ([`BackupFuture`]).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::shared::Shared;
use super::strategy::Strategy;
use crate::classify::Classify;
use crate::observe::{Event, FallbackEvent};

pub use super::strategy::BackupFuture;

pin_project! {
    /// The future returned by [`Fallback`](super::Fallback): the inner result, or the
    /// fallback's answer when the result was a failure.
    pub struct ResponseFuture<F, S, C, Req, T, E>
    where
        S: Strategy<Req, T, E>,
    {
        #[pin]
        state: State<F, S::Future>,
        kept: Option<S::Kept>,
        shared: Arc<Shared<S, C>>,
        _types: PhantomData<fn(Req) -> (T, E)>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, G> {
        Inner { #[pin] fut: F },
        Fallback { #[pin] fut: G },
    }
}

impl<F, S, C, Req, T, E> fmt::Debug for ResponseFuture<F, S, C, Req, T, E>
where
    S: Strategy<Req, T, E>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, S, C, Req, T, E> ResponseFuture<F, S, C, Req, T, E>
where
    S: Strategy<Req, T, E>,
{
    pub(crate) fn new(fut: F, kept: S::Kept, shared: Arc<Shared<S, C>>) -> Self {
        Self {
            state: State::Inner { fut },
            kept: Some(kept),
            shared,
            _types: PhantomData,
        }
    }
}

impl<F, T, E, S, C, Req> Future for ResponseFuture<F, S, C, Req, T, E>
where
    F: Future<Output = Result<T, E>>,
    S: Strategy<Req, T, E>,
    C: Classify<T, E>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { fut } => {
                    let result = ready!(fut.poll(cx));
                    let outcome = this
                        .shared
                        .classifier
                        .classify(result.as_ref())
                        .now_or_success();
                    if outcome.is_success() {
                        return Poll::Ready(result);
                    }
                    let kept = this.kept.take().expect("polled after completion");
                    let listeners = &this.shared.listeners;
                    tracing::debug!(
                        target: "tower_fortify::fallback",
                        name = listeners.name(),
                        error = result.is_err(),
                        "answering with the fallback"
                    );
                    listeners.emit(|| {
                        Event::Fallback(FallbackEvent::Used {
                            error: result.is_err(),
                        })
                    });
                    let fut = this.shared.strategy.fallback(kept, result);
                    this.state.set(State::Fallback { fut });
                }
                StateProj::Fallback { fut } => return fut.poll(cx),
            }
        }
    }
}
