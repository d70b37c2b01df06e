//! What a fallback answers with.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;

/// Makes the answer that replaces a failed result.
///
/// [`Kept`](Self::Kept) is what the strategy keeps of each request before it is sent:
/// `()` for strategies that need only the failure ([`Value`], [`FromFailure`]), a
/// clone of the request for those that need it ([`FromRequest`], [`Backup`]).
pub trait Strategy<Req, Res, E> {
    /// What is kept of each request until its result is known.
    type Kept;
    /// The fallback's own future.
    type Future: Future<Output = Result<Res, E>>;

    /// Called for every request before it is sent.
    fn keep(&self, req: &Req) -> Self::Kept;

    /// The answer for a request whose result was a failure.
    fn fallback(&self, kept: Self::Kept, failed: Result<Res, E>) -> Self::Future;
}

/// Answers every failure with a clone of one value. See
/// [`FallbackLayer::value`](super::FallbackLayer::value).
#[derive(Debug, Clone)]
pub struct Value<T>(pub(crate) T);

impl<Req, Res: Clone, E> Strategy<Req, Res, E> for Value<Res> {
    type Kept = ();
    type Future = Ready<Result<Res, E>>;

    #[inline]
    fn keep(&self, _: &Req) {}

    fn fallback(&self, _: (), _: Result<Res, E>) -> Self::Future {
        ready(Ok(self.0.clone()))
    }
}

/// Answers with a function of the failed result. See
/// [`FallbackLayer::from_failure`](super::FallbackLayer::from_failure).
#[derive(Clone)]
pub struct FromFailure<F>(pub(crate) F);

impl<F> fmt::Debug for FromFailure<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFailure").finish_non_exhaustive()
    }
}

impl<F, Req, Res, E> Strategy<Req, Res, E> for FromFailure<F>
where
    F: Fn(Result<Res, E>) -> Result<Res, E>,
{
    type Kept = ();
    type Future = Ready<Result<Res, E>>;

    #[inline]
    fn keep(&self, _: &Req) {}

    fn fallback(&self, _: (), failed: Result<Res, E>) -> Self::Future {
        ready((self.0)(failed))
    }
}

/// Answers with a function of the request and the failed result; keeps a clone of
/// every request. See [`FallbackLayer::from_request`](super::FallbackLayer::from_request).
#[derive(Clone)]
pub struct FromRequest<F>(pub(crate) F);

impl<F> fmt::Debug for FromRequest<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromRequest").finish_non_exhaustive()
    }
}

impl<F, Req, Res, E> Strategy<Req, Res, E> for FromRequest<F>
where
    F: Fn(Req, Result<Res, E>) -> Result<Res, E>,
    Req: Clone,
{
    type Kept = Req;
    type Future = Ready<Result<Res, E>>;

    #[inline]
    fn keep(&self, req: &Req) -> Req {
        req.clone()
    }

    fn fallback(&self, req: Req, failed: Result<Res, E>) -> Self::Future {
        ready((self.0)(req, failed))
    }
}

/// Sends the request to another service (a stale cache, a degraded path); keeps a
/// clone of every request. See [`FallbackLayer::service`](super::FallbackLayer::service).
#[derive(Debug, Clone)]
pub struct Backup<S>(pub(crate) S);

impl<S, Req, Res, E> Strategy<Req, Res, E> for Backup<S>
where
    S: Service<Req, Response = Res> + Clone,
    S::Error: Into<E>,
    Req: Clone,
{
    type Kept = Req;
    type Future = BackupFuture<S, Req, E>;

    #[inline]
    fn keep(&self, req: &Req) -> Req {
        req.clone()
    }

    fn fallback(&self, req: Req, _: Result<Res, E>) -> Self::Future {
        BackupFuture {
            state: BackupState::Readying {
                service: self.0.clone(),
                request: Some(req),
            },
            _error: std::marker::PhantomData,
        }
    }
}

pin_project! {
    /// The future of a [`Backup`] fallback: readies a clone of the backup service,
    /// then calls it (readiness is taken when the fallback is sent).
    pub struct BackupFuture<S, Req, E>
    where
        S: Service<Req>,
    {
        #[pin]
        state: BackupState<S, Req, S::Future>,
        _error: std::marker::PhantomData<fn() -> E>,
    }
}

pin_project! {
    #[project = BackupProj]
    enum BackupState<S, Req, F> {
        Readying { service: S, request: Option<Req> },
        Called { #[pin] fut: F },
    }
}

impl<S, Req, E> fmt::Debug for BackupFuture<S, Req, E>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupFuture").finish_non_exhaustive()
    }
}

impl<S, Req, E> Future for BackupFuture<S, Req, E>
where
    S: Service<Req>,
    S::Error: Into<E>,
{
    type Output = Result<S::Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                BackupProj::Readying { service, request } => {
                    if let Err(e) = std::task::ready!(service.poll_ready(cx)) {
                        return Poll::Ready(Err(e.into()));
                    }
                    let req = request.take().expect("polled after completion");
                    let fut = service.call(req);
                    this.state.set(BackupState::Called { fut });
                }
                BackupProj::Called { fut } => {
                    return fut.poll(cx).map_err(Into::into);
                }
            }
        }
    }
}
