//! Replaying HTTP requests for the retry layer.

use super::ReplayBody;
use crate::retry::{Replay, RetryOverride};

/// Replays `http::Request`s whose body is `Clone` (`String`, `Bytes`,
/// `http_body_util::Full`, …) or a [`ReplayBody`](super::ReplayBody), and
/// reads a [`RetryOverride`] from their extensions.
///
/// Only requests that may be sent twice are retried: an idempotent method (GET, HEAD,
/// OPTIONS, TRACE, PUT, DELETE), or a request marked
/// [`RetrySafe`](super::RetrySafe). Others are sent once, reported as
/// [`SkipReason::Disabled`](crate::observe::SkipReason::Disabled) — except that with
/// a [`ReplayBody`](super::ReplayBody) a failed attempt that never reached the
/// wire (the connection was never established) is retried whatever the method; a
/// non-idempotent request that did reach it is reported as
/// [`SkipReason::NotReplayable`](crate::observe::SkipReason::NotReplayable).
///
/// Streamed bodies need buffering to be replayed: wrap them in a
/// [`ReplayBody`](super::ReplayBody) (see
/// [`ReplayBodyLayer`](super::ReplayBodyLayer)).
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpReplay;

impl<B: Clone> Replay<http::Request<B>> for HttpReplay {
    fn replay(&self, req: &http::Request<B>) -> Option<http::Request<B>> {
        Some(copy_request(req, req.body().clone()))
    }

    fn overrides(&self, req: &http::Request<B>) -> RetryOverride {
        HttpReplay::request_overrides(req)
    }
}

impl HttpReplay {
    /// The overrides of one request: its [`RetryOverride`] extension, with retries
    /// disabled when the request may not be sent twice
    /// ([`may_retry`](super::may_retry)).
    pub fn request_overrides<B>(req: &http::Request<B>) -> RetryOverride {
        let over = override_of(req);
        if super::may_retry(req) {
            over
        } else {
            over.disable()
        }
    }
}

impl<B> Replay<http::Request<ReplayBody<B>>> for HttpReplay {
    fn replay(&self, req: &http::Request<ReplayBody<B>>) -> Option<http::Request<ReplayBody<B>>> {
        Some(copy_request(req, req.body().try_clone()?))
    }

    /// A copy can still be made, and the request may be sent twice: its method is
    /// idempotent, it is marked [`RetrySafe`](super::RetrySafe), or no attempt ever
    /// reached the wire ([`ReplayBody::was_read`] is false: the connection failed).
    fn is_replayable(&self, req: &http::Request<ReplayBody<B>>) -> bool {
        let body = req.body();
        body.is_replayable() && (super::may_retry(req) || !body.was_read())
    }

    /// The request's [`RetryOverride`], if any. Idempotency is checked per failure by
    /// [`is_replayable`](Replay::is_replayable).
    fn overrides(&self, req: &http::Request<ReplayBody<B>>) -> RetryOverride {
        override_of(req)
    }
}

/// A copy of `req` around `body`: the one request copy of the HTTP and gRPC replays.
pub(crate) fn copy_request<B, C>(req: &http::Request<B>, body: C) -> http::Request<C> {
    let mut copy = http::Request::new(body);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    *copy.extensions_mut() = req.extensions().clone();
    copy
}

/// The [`RetryOverride`] in `req`'s extensions, or the default.
pub(crate) fn override_of<B>(req: &http::Request<B>) -> RetryOverride {
    req.extensions()
        .get::<RetryOverride>()
        .copied()
        .unwrap_or_default()
}
