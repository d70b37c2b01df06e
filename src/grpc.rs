//! gRPC integration: `grpc-status` classification (headers and trailers), pushback,
//! and conversion of layer errors to [`tonic::Status`].
//!
//! # What it is for
//!
//! A gRPC call's outcome is its `grpc-status`, which arrives in the response headers
//! for a call that fails at once ("trailers-only") and in the trailers otherwise.
//! [`GrpcClassifier`] reads it from both:
//!
//! * from the headers, or from trailers read ahead by
//!   [`PeekTrailersLayer`](crate::http::PeekTrailersLayer), it answers at once, so the
//!   retry layer can retry a unary or client-streaming call that failed with
//!   `UNAVAILABLE` in its trailers;
//! * otherwise it answers [`Classified::RequiresEos`] with a [`GrpcEos`] that an
//!   [`EosBody`](crate::http::EosBody) runs when the stream ends.
//!
//! Defaults: `OK` is a success and every other code a failure; `UNAVAILABLE` is
//! retryable; `RESOURCE_EXHAUSTED` is throttling. `grpc-retry-pushback-ms` (gRFC A6)
//! becomes the retry delay, and a negative or malformed pushback means "do not retry".
//!
//! On the server side, [`status_of`] turns the errors of resilience layers into
//! statuses tonic sends properly (`UNAVAILABLE`, `RESOURCE_EXHAUSTED` with pushback,
//! `DEADLINE_EXCEEDED`) instead of `UNKNOWN`: map the errors with
//! `tower::ServiceBuilder::map_err(tower_fortify::grpc::status_of_box)` above them.
//!
//! Deadlines travel in `grpc-timeout` (tonic's format, [`http::deadline`]): a server
//! built with `Server::builder().layer(InheritDeadlineLayer::new())` runs each handler
//! with its caller's deadline in scope, so the handler's own calls through a
//! [`Stack`](crate::stack::Stack) stop when the caller gave up; a `Channel` wrapped
//! in [`PropagateDeadlineLayer::grpc`](crate::http::PropagateDeadlineLayer::grpc)
//! sends what is left of it.
//!
//! [`http::deadline`]: crate::http::deadline
//! [`InheritDeadlineLayer`]: crate::http::InheritDeadlineLayer
//!
//! # Where it goes
//!
//! Client (a tonic `Channel`), outermost first:
//!
//! ```text
//! ReplayBodyLayer -> retry (GrpcClassifier, HttpReplay) -> PeekTrailersLayer -> Channel
//! ```
//!
//! # Example: a tonic client that retries
//!
//! ```
//! # #[cfg(feature = "retry")] {
//! use tonic::transport::Channel;
//! use tower::ServiceBuilder;
//! use tower_fortify::grpc::{GrpcClassifier, GrpcReplay};
//! use tower_fortify::http::{PeekTrailersLayer, ReplayBody};
//! use tower_fortify::retry::RetryLayer;
//! use tower_fortify::ServiceBuilderExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let channel = Channel::from_static("http://127.0.0.1:50051").connect_lazy();
//! let retry = RetryLayer::builder()
//!     .classifier(GrpcClassifier::new())
//!     .replay(GrpcReplay)
//!     .build()
//!     .unwrap();
//! let stack = ServiceBuilder::new()
//!     .replay_body(64 * 1024) // client streams too
//!     .with_retry(retry)
//!     .layer(PeekTrailersLayer::new(16 * 1024)) // see statuses sent in trailers
//!     .map_request(|r: http::Request<ReplayBody<tonic::body::Body>>| r.map(tonic::body::Body::new))
//!     .service(channel);
//! // Generated clients take it as they take a Channel: `MyClient::new(stack)`.
//! let client = tonic::client::Grpc::new(stack);
//! # let _ = client;
//! # }
//! # }
//! ```
//!
//! # Example: classification
//!
//! ```
//! use tower_fortify::classify::{Classify, Outcome};
//! use tower_fortify::grpc::GrpcClassifier;
//!
//! let unavailable = http::Response::builder()
//!     .header("content-type", "application/grpc")
//!     .header("grpc-status", "14")
//!     .body(())
//!     .unwrap();
//! let verdict = Classify::<_, std::io::Error>::classify(&GrpcClassifier::new(), Ok(&unavailable));
//! assert_eq!(verdict.now_or_success(), Outcome::RetryableFailure);
//! ```

use std::time::Duration;

use http::HeaderMap;
use tonic::Code;

use crate::BoxError;
use crate::classify::{Classified, Classify, ClassifyEos, Outcome, ServerHint};
use crate::guard::{Rejection, RejectionKind};
use crate::http::{HttpEos, PeekedTrailers, grpc_pushback};

/// A set of gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CodeSet {
    bits: u32,
}

impl CodeSet {
    /// The empty set.
    pub const fn empty() -> Self {
        Self { bits: 0 }
    }

    /// This set with `code` added.
    pub const fn with(mut self, code: Code) -> Self {
        self.bits |= 1 << (code as u32);
        self
    }

    /// This set with `code` removed.
    pub const fn without(mut self, code: Code) -> Self {
        self.bits &= !(1 << (code as u32));
        self
    }

    /// Whether `code` is in the set.
    #[inline]
    pub const fn contains(&self, code: Code) -> bool {
        self.bits & (1 << (code as u32)) != 0
    }
}

/// Classifies gRPC responses by `grpc-status`; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcClassifier {
    codes: Codes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Codes {
    successes: CodeSet,
    retryable: CodeSet,
    throttled: CodeSet,
}

impl Default for GrpcClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl GrpcClassifier {
    /// `OK` succeeds, `UNAVAILABLE` is retryable, `RESOURCE_EXHAUSTED` is throttling,
    /// every other code is a failure that is not retried.
    pub const fn new() -> Self {
        Self {
            codes: Codes {
                successes: CodeSet::empty().with(Code::Ok),
                retryable: CodeSet::empty().with(Code::Unavailable),
                throttled: CodeSet::empty().with(Code::ResourceExhausted),
            },
        }
    }

    /// The codes that count as successes (default: `OK`). Add `NOT_FOUND` or
    /// `INVALID_ARGUMENT` to keep client mistakes from opening a breaker.
    pub const fn successes(mut self, set: CodeSet) -> Self {
        self.codes.successes = set;
        self
    }

    /// The failures another attempt may fix (default: `UNAVAILABLE`).
    pub const fn retryable(mut self, set: CodeSet) -> Self {
        self.codes.retryable = set;
        self
    }

    /// The codes that mean "slow down" (default: `RESOURCE_EXHAUSTED`).
    pub const fn throttled(mut self, set: CodeSet) -> Self {
        self.codes.throttled = set;
        self
    }
}

impl Codes {
    /// The outcome of the status in `headers`, if there is one.
    fn outcome_in(&self, headers: &HeaderMap) -> Option<Outcome> {
        let value = headers.get("grpc-status")?;
        let code = std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .map_or(Code::Unknown, Code::from_i32);
        Some(self.outcome(code, headers))
    }

    fn outcome(&self, code: Code, headers: &HeaderMap) -> Outcome {
        if self.successes.contains(code) {
            return Outcome::Success;
        }
        let pushback = grpc_pushback(headers);
        if self.throttled.contains(code) {
            return Outcome::Overloaded(pushback.unwrap_or(ServerHint::None));
        }
        if self.retryable.contains(code) {
            return match pushback {
                None => Outcome::RetryableFailure,
                Some(hint) => Outcome::Overloaded(hint),
            };
        }
        Outcome::NonRetryableFailure
    }
}

impl<B, E> Classify<http::Response<B>, E> for GrpcClassifier {
    type Eos = GrpcEos;

    fn classify(&self, result: Result<&http::Response<B>, &E>) -> Classified<GrpcEos> {
        let response = match result {
            Ok(response) => response,
            Err(_) => return Classified::Ready(Outcome::RetryableFailure),
        };
        if let Some(outcome) = self.codes.outcome_in(response.headers()) {
            return Classified::Ready(outcome);
        }
        if let Some(PeekedTrailers(trailers)) = response.extensions().get::<PeekedTrailers>()
            && let Some(outcome) = self.codes.outcome_in(trailers)
        {
            return Classified::Ready(outcome);
        }
        let status = response.status();
        if !status.is_success() {
            // No gRPC status and no 2xx: the HTTP status decides (gRPC's mapping:
            // 429, 502, 503, 504 are UNAVAILABLE, the rest are failures).
            let code = match status.as_u16() {
                429 | 502 | 503 | 504 => Code::Unavailable,
                _ => Code::Unknown,
            };
            return Classified::Ready(self.codes.outcome(code, response.headers()));
        }
        Classified::RequiresEos(GrpcEos { codes: self.codes })
    }
}

/// Finishes a gRPC classification from the trailers; made by [`GrpcClassifier`].
///
/// A stream that ends without a `grpc-status`, or fails before its end, is a
/// retryable failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcEos {
    codes: Codes,
}

impl Default for GrpcEos {
    fn default() -> Self {
        Self {
            codes: GrpcClassifier::new().codes,
        }
    }
}

impl ClassifyEos for GrpcEos {
    type Trailers = HeaderMap;

    fn classify_eos(self, trailers: Option<&HeaderMap>) -> Outcome {
        trailers
            .and_then(|t| self.codes.outcome_in(t))
            .unwrap_or(Outcome::RetryableFailure)
    }

    fn classify_early_end(self) -> Outcome {
        Outcome::RetryableFailure
    }
}

/// Lets [`HoldToEos`](crate::http::HoldToEos) judge a held gRPC call from its
/// trailers.
impl HttpEos for GrpcEos {
    fn classify_trailers(self, trailers: Option<&HeaderMap>) -> Outcome {
        self.classify_eos(trailers)
    }
}

/// Replays gRPC requests for the retry layer: bodies wrapped in a
/// [`ReplayBody`](crate::http::ReplayBody) (tonic's client streams included) and
/// `Clone` bodies.
///
/// Unlike [`HttpReplay`](crate::http::HttpReplay) it does not look at the method:
/// every gRPC call is a POST, and whether a failed call may be sent again is decided
/// by its status ([`GrpcClassifier`]'s retryable set, `UNAVAILABLE` by default: the
/// server did not process it), as gRFC A6 does. A
/// [`RetryOverride`](crate::retry::RetryOverride) in the request's extensions still
/// applies (tonic passes a `tonic::Request`'s extensions on).
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcReplay;

#[cfg(feature = "retry")]
impl<B> crate::retry::Replay<http::Request<crate::http::ReplayBody<B>>> for GrpcReplay {
    fn replay(
        &self,
        req: &http::Request<crate::http::ReplayBody<B>>,
    ) -> Option<http::Request<crate::http::ReplayBody<B>>> {
        Some(crate::http::replay::copy_request(
            req,
            req.body().try_clone()?,
        ))
    }

    fn is_replayable(&self, req: &http::Request<crate::http::ReplayBody<B>>) -> bool {
        req.body().is_replayable()
    }

    fn overrides(
        &self,
        req: &http::Request<crate::http::ReplayBody<B>>,
    ) -> crate::retry::RetryOverride {
        crate::http::replay::override_of(req)
    }
}

/// The status a server should send for `err`.
///
/// An error [`Rejection::of`] recognises (a deadline, shed load, a [`Rejection`])
/// becomes `DEADLINE_EXCEEDED`, `UNAVAILABLE` or `RESOURCE_EXHAUSTED`, with a
/// `grpc-retry-pushback-ms` when the delay is known; a `tonic::Status` anywhere in
/// the source chain is passed on; anything else is `INTERNAL`.
///
/// ```
/// use tower_fortify::grpc::status_of;
///
/// let err = tower::load_shed::error::Overloaded::new();
/// assert_eq!(status_of(&err).code(), tonic::Code::Unavailable);
/// ```
pub fn status_of(err: &(dyn std::error::Error + 'static)) -> tonic::Status {
    if let Some(rejection) = Rejection::of(err) {
        return rejection_status(rejection);
    }
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(status) = e.downcast_ref::<tonic::Status>() {
            return status.clone();
        }
        current = e.source();
    }
    tonic::Status::internal(err.to_string())
}

/// [`status_of`] for a boxed error, for `map_err`.
pub fn status_of_box(err: BoxError) -> tonic::Status {
    match err.downcast::<tonic::Status>() {
        Ok(status) => *status,
        Err(err) => status_of(err.as_ref()),
    }
}

/// The status for a [`Rejection`].
pub fn rejection_status(rejection: Rejection) -> tonic::Status {
    let code = match rejection.kind() {
        RejectionKind::Unavailable => Code::Unavailable,
        RejectionKind::Throttled => Code::ResourceExhausted,
        RejectionKind::DeadlineExceeded => Code::DeadlineExceeded,
    };
    let mut status = tonic::Status::new(code, rejection.message().trim_end().to_string());
    status.metadata_mut().insert(
        crate::http::REJECTED_HEADER,
        tonic::metadata::MetadataValue::from_static(rejection.reason()),
    );
    if let Some(delay) = rejection.retry_after_hint() {
        let ms = delay
            .min(Duration::from_millis(u64::from(u32::MAX)))
            .as_millis();
        if let Ok(value) = ms.to_string().parse() {
            status
                .metadata_mut()
                .insert(crate::http::GRPC_RETRY_PUSHBACK_MS, value);
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(headers: &[(&str, &str)]) -> Classified<GrpcEos> {
        let mut b = http::Response::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        Classify::<_, ()>::classify(&GrpcClassifier::new(), Ok(&b.body(()).unwrap()))
    }

    #[test]
    fn status_in_headers() {
        assert_eq!(
            classify(&[("grpc-status", "0")]),
            Classified::Ready(Outcome::Success)
        );
        assert_eq!(
            classify(&[("grpc-status", "14")]),
            Classified::Ready(Outcome::RetryableFailure)
        );
        assert_eq!(
            classify(&[("grpc-status", "8"), ("grpc-retry-pushback-ms", "300")]),
            Classified::Ready(Outcome::Overloaded(ServerHint::RetryAfter(
                Duration::from_millis(300)
            )))
        );
        assert_eq!(
            classify(&[("grpc-status", "14"), ("grpc-retry-pushback-ms", "-1")]),
            Classified::Ready(Outcome::Overloaded(ServerHint::DoNotRetry))
        );
        assert_eq!(
            classify(&[("grpc-status", "3")]),
            Classified::Ready(Outcome::NonRetryableFailure)
        );
        assert_eq!(
            classify(&[("grpc-status", "garbage")]),
            Classified::Ready(Outcome::NonRetryableFailure)
        );
    }

    #[test]
    fn status_in_trailers() {
        let Classified::RequiresEos(eos) = classify(&[]) else {
            panic!("no status in the headers must wait for the trailers");
        };
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "14".parse().unwrap());
        assert_eq!(eos.classify_eos(Some(&trailers)), Outcome::RetryableFailure);
        trailers.insert("grpc-status", "0".parse().unwrap());
        assert_eq!(eos.classify_eos(Some(&trailers)), Outcome::Success);
        assert_eq!(eos.classify_eos(None), Outcome::RetryableFailure);
        assert_eq!(eos.classify_early_end(), Outcome::RetryableFailure);
    }

    #[test]
    fn peeked_trailers_answer_at_once() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "14".parse().unwrap());
        let mut response = http::Response::new(());
        response.extensions_mut().insert(PeekedTrailers(trailers));
        assert_eq!(
            Classify::<_, ()>::classify(&GrpcClassifier::new(), Ok(&response)),
            Classified::Ready(Outcome::RetryableFailure)
        );
    }

    #[test]
    fn configurable_sets() {
        let c = GrpcClassifier::new()
            .successes(CodeSet::empty().with(Code::Ok).with(Code::NotFound))
            .retryable(CodeSet::empty().with(Code::Unavailable).with(Code::Aborted))
            .throttled(CodeSet::empty());
        let resp = |code: &str| {
            http::Response::builder()
                .header("grpc-status", code)
                .body(())
                .unwrap()
        };
        let outcome = |code| Classify::<_, ()>::classify(&c, Ok(&resp(code))).now_or_success();
        assert_eq!(outcome("5"), Outcome::Success);
        assert_eq!(outcome("10"), Outcome::RetryableFailure);
        assert_eq!(outcome("8"), Outcome::NonRetryableFailure);
        assert!(CodeSet::empty().with(Code::Aborted).without(Code::Aborted) == CodeSet::empty());
    }

    #[test]
    fn rejections_become_statuses() {
        let s = status_of(&tower::timeout::error::Elapsed::new());
        assert_eq!(s.code(), Code::DeadlineExceeded);
        let s = rejection_status(
            Rejection::new(RejectionKind::Throttled).retry_after(Duration::from_millis(1500)),
        );
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.metadata().get("grpc-retry-pushback-ms").unwrap(), "1500");
        let s = status_of_box(Box::new(tonic::Status::not_found("x")));
        assert_eq!(s.code(), Code::NotFound);
        let s = status_of_box("boom".into());
        assert_eq!(s.code(), Code::Internal);
    }
}
