//! axum integration: resilience layers on a `Router` without writing error handlers.
//!
//! # What it is for
//!
//! axum only accepts infallible services: a layer that returns an error (a timeout,
//! shed load, an open breaker, a full bulkhead) must be turned into a response first,
//! or the application does not compile. This module does that in one line, with the
//! responses a client and a load balancer understand:
//!
//! | error | response |
//! |---|---|
//! | unavailable: open breaker, full bulkhead, shed load | `503 Service Unavailable` + `Retry-After` |
//! | throttled | `429 Too Many Requests` + `Retry-After` |
//! | deadline: [`timeout`](crate::timeout) errors, `tower::timeout` | `504 Gateway Timeout` |
//! | anything else | `500 Internal Server Error` |
//!
//! Every refusal also says which layer refused and why, so a client can tell a full
//! bulkhead from an open breaker: the header `x-fortify-rejected` (`circuit-open`,
//! `bulkhead-full`, `queue-timeout`, `no-healthy-backend`, `deadline-exceeded`,
//! `attempt-timeout`, `load-shed`, ...) and a one-line body such as
//! `circuit-open: circuit breaker open; retry after 800 ms`.
//!
//! `Retry-After` carries the delay the layer knows (a breaker's remaining open time),
//! rounded up to whole seconds, or [`DEFAULT_RETRY_AFTER`] when it knows none.
//!
//! Two ways to use it:
//!
//! * [`handle_error`] with axum's `HandleErrorLayer`, the idiomatic place;
//! * [`InfallibleLayer`], which does the same without `HandleErrorLayer` and keeps
//!   the inner service's response type.
//!
//! # Where it goes
//!
//! Outermost, above every layer that can fail: the timeout, load shedding, the
//! bulkhead.
//!
//! # Example
//!
//! ```
//! # #[cfg(all(feature = "bulkhead", feature = "timeout"))] {
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use axum::error_handling::HandleErrorLayer;
//! use tower::ServiceBuilder;
//! use tower_fortify::bulkhead::BulkheadLayer;
//! use tower_fortify::timeout::DeadlineLayer;
//!
//! let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
//!     ServiceBuilder::new()
//!         .layer(HandleErrorLayer::new(tower_fortify::axum::handle_error))
//!         .layer(BulkheadLayer::new(64).unwrap())            // full: 503
//!         .layer(DeadlineLayer::new(Duration::from_secs(10))), // late: 504
//! );
//! // Or, without HandleErrorLayer:
//! let app2: Router = Router::new().route("/", get(|| async { "hello" })).layer(
//!     ServiceBuilder::new()
//!         .layer(tower_fortify::axum::InfallibleLayer)
//!         .layer(BulkheadLayer::new(64).unwrap())
//!         .layer(DeadlineLayer::new(Duration::from_secs(10))),
//! );
//! # let _ = (app, app2); }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use pin_project_lite::pin_project;

use crate::BoxError;
use crate::guard::{Rejection, RejectionKind};

/// The `Retry-After` sent with a 503 or 429 when the layer that refused the call
/// does not know when it will accept again: one second.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The response for a layer error: see the [module docs](self) for the mapping.
///
/// ```
/// let err = tower::load_shed::error::Overloaded::new();
/// let response = tower_fortify::axum::error_response(&err);
/// assert_eq!(response.status(), 503);
/// assert_eq!(response.headers()["retry-after"], "1");
/// ```
pub fn error_response(err: &(dyn std::error::Error + 'static)) -> Response {
    match Rejection::of(err) {
        Some(rejection) => rejection.into_response(),
        None => {
            tracing::debug!(target: "tower_fortify::axum", error = %err, "unhandled service error");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response()
        }
    }
}

/// An error handler for axum's `HandleErrorLayer`: the response for `err` (see
/// [`error_response`]).
pub async fn handle_error(err: BoxError) -> Response {
    error_response(err.as_ref())
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = match self.kind() {
            RejectionKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            RejectionKind::Throttled => StatusCode::TOO_MANY_REQUESTS,
            RejectionKind::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        };
        let mut response = (status, self.message()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            crate::http::REJECTED_HEADER,
            HeaderValue::from_static(self.reason()),
        );
        if status != StatusCode::GATEWAY_TIMEOUT {
            let delay = self.retry_after_hint().unwrap_or(DEFAULT_RETRY_AFTER);
            let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Makes services infallible by turning their errors into responses
/// ([`error_response`]), so they can be used with axum's `Router::layer` and
/// `route_layer` without `HandleErrorLayer`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InfallibleLayer;

impl<S> tower_layer::Layer<S> for InfallibleLayer {
    type Service = InfallibleService<S>;

    fn layer(&self, inner: S) -> InfallibleService<S> {
        InfallibleService {
            inner,
            not_ready: None,
        }
    }
}

/// The service made by [`InfallibleLayer`].
pub struct InfallibleService<S> {
    inner: S,
    /// The inner service's readiness error, answered by the next call.
    not_ready: Option<BoxError>,
}

impl<S: Clone> Clone for InfallibleService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            not_ready: None,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for InfallibleService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfallibleService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, Req> tower_service::Service<Req> for InfallibleService<S>
where
    S: tower_service::Service<Req>,
    S::Response: IntoResponse,
    S::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = InfallibleFuture<S::Future>;

    /// An inner service that fails to become ready is reported as ready: the next
    /// call is answered with the response for that error instead of closing the
    /// connection.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.not_ready.is_some() {
            return Poll::Ready(Ok(()));
        }
        if let Err(e) = ready!(self.inner.poll_ready(cx)) {
            self.not_ready = Some(e.into());
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.not_ready.take() {
            Some(err) => InfallibleFuture {
                state: State::Failed {
                    response: Some(error_response(err.as_ref())),
                },
            },
            None => InfallibleFuture {
                state: State::Called {
                    fut: self.inner.call(req),
                },
            },
        }
    }
}

pin_project! {
    /// The response future of [`InfallibleService`].
    pub struct InfallibleFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] fut: F },
        Failed { response: Option<Response> },
    }
}

impl<F> fmt::Debug for InfallibleFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfallibleFuture").finish_non_exhaustive()
    }
}

impl<F, T, E> Future for InfallibleFuture<F>
where
    F: Future<Output = Result<T, E>>,
    T: IntoResponse,
    E: Into<BoxError>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { fut } => Poll::Ready(Ok(match ready!(fut.poll(cx)) {
                Ok(response) => response.into_response(),
                Err(e) => {
                    let err: BoxError = e.into();
                    error_response(err.as_ref())
                }
            })),
            StateProj::Failed { response } => Poll::Ready(Ok(response
                .take()
                .expect("InfallibleFuture polled after completion"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        let r = error_response(&tower::timeout::error::Elapsed::new());
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
        let r = Rejection::new(RejectionKind::Throttled)
            .retry_after(Duration::from_millis(2500))
            .into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
        let r = error_response(&std::io::Error::other("boom"));
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
