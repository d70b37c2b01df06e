//! The response future of [`Chaos`](super::Chaos).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

pin_project! {
    /// The response future of [`Chaos`](super::Chaos): the inner call, an injected
    /// result, a delay before the inner call, or a call that never ends.
    pub struct ResponseFuture<S: Service<Req>, Req> {
        #[pin]
        state: State<S::Future, S, Req, S::Response, S::Error>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req, Res, E> {
        Inner { #[pin] fut: F },
        // Boxed so the common states stay small: only a delayed call pays for it.
        Delay { sleep: Pin<Box<Sleep>>, service: Option<S>, req: Option<Req> },
        Ready { result: Option<Result<Res, E>> },
        Hang,
    }
}

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    #[inline]
    pub(super) fn inner(fut: S::Future) -> Self {
        Self {
            state: State::Inner { fut },
        }
    }

    pub(super) fn ready(result: Result<S::Response, S::Error>) -> Self {
        Self {
            state: State::Ready {
                result: Some(result),
            },
        }
    }

    pub(super) fn hang() -> Self {
        Self { state: State::Hang }
    }

    pub(super) fn delayed(delay: Duration, service: S, req: Req) -> Self {
        Self {
            state: State::Delay {
                sleep: Box::pin(tokio::time::sleep(delay)),
                service: Some(service),
                req: Some(req),
            },
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "Inner",
            State::Delay { .. } => "Delay",
            State::Ready { .. } => "Ready",
            State::Hang => "Hang",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S: Service<Req>, Req> Future for ResponseFuture<S, Req> {
    type Output = Result<S::Response, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        // The call that got no fault: straight to the inner future.
        if let StateProj::Inner { fut } = state.as_mut().project() {
            return fut.poll(cx);
        }
        poll_faulted(state, cx)
    }
}

/// The state of the future of `S` called with `Req`.
type StateOf<S, Req> = State<
    <S as Service<Req>>::Future,
    S,
    Req,
    <S as Service<Req>>::Response,
    <S as Service<Req>>::Error,
>;

/// Every state but the plain inner call, out of line.
#[inline(never)]
fn poll_faulted<S: Service<Req>, Req>(
    mut state: Pin<&mut StateOf<S, Req>>,
    cx: &mut Context<'_>,
) -> Poll<Result<S::Response, S::Error>> {
    loop {
        match state.as_mut().project() {
            StateProj::Inner { fut } => return fut.poll(cx),
            StateProj::Ready { result } => {
                return Poll::Ready(result.take().expect("polled after completion"));
            }
            StateProj::Hang => return Poll::Pending,
            StateProj::Delay {
                sleep,
                service,
                req,
            } => {
                ready!(sleep.as_mut().poll(cx));
                let svc = service.as_mut().expect("polled after completion");
                if let Err(e) = ready!(svc.poll_ready(cx)) {
                    state.set(State::Ready { result: None });
                    return Poll::Ready(Err(e));
                }
                let req = req.take().expect("polled after completion");
                let fut = svc.call(req);
                state.set(State::Inner { fut });
            }
        }
    }
}
