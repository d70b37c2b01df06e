//! Replaying HTTP requests for the retry layer.

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
        let mut copy = http::Request::new(req.body().clone());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
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
        let over = req
            .extensions()
            .get::<RetryOverride>()
            .copied()
            .unwrap_or_default();
        if super::may_retry(req) {
            over
        } else {
            over.disable()
        }
    }
}
