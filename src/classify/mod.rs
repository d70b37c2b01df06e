//! One outcome model for every layer.
//!
//! Every layer that judges a response — retry, circuit breaker, adaptive bulkhead,
//! failover, hedging, the drill report — asks the same question: *was this call a
//! success, and if not, may it be tried again?* This module gives that question one
//! answer, [`Outcome`], and one trait that produces it, [`Classify`].
//!
//! An outcome is one of:
//!
//! * [`Outcome::Success`] — the call did what was asked.
//! * [`Outcome::RetryableFailure`] — it failed in a way that another attempt may fix
//!   (a refused connection, an HTTP 503, gRPC `UNAVAILABLE`).
//! * [`Outcome::NonRetryableFailure`] — it failed and trying again would fail the same
//!   way or do harm (an HTTP 500 on a non-idempotent call, gRPC `INVALID_ARGUMENT`
//!   counted as a failure).
//! * [`Outcome::Overloaded`] — the server is throttling or shedding load (HTTP 429,
//!   gRPC `RESOURCE_EXHAUSTED`), with an optional [`ServerHint`] that says when to come
//!   back (`Retry-After`, `grpc-retry-pushback-ms`) or not to come back at all.
//!
//! Some protocols only know the outcome at the end of a stream (gRPC sends
//! `grpc-status` in trailers). A classifier then answers
//! [`Classified::RequiresEos`] with a [`ClassifyEos`] that finishes the job when the
//! stream ends; layers that need a verdict before the body is read (retry) treat such
//! a response as committed, and body wrappers of the HTTP integration report the final
//! verdict to the layers that record outcomes.
//!
//! The classifiers here know no protocol: [`DefaultClassifier`] calls every `Ok` a
//! success and every `Err` a retryable failure; [`classify_fn`] turns a closure into a
//! classifier. Protocol classifiers (HTTP status codes, gRPC status) implement the same
//! trait.
//!
//! ```
//! use tower_fortify::classify::{classify_fn, Classify, Classified, Outcome};
//!
//! // Treat `Err("busy")` as throttling and every other error as fatal.
//! let classifier = classify_fn(|result: Result<&u32, &&str>| match result {
//!     Ok(_) => Outcome::Success,
//!     Err(&"busy") => Outcome::Overloaded(Default::default()),
//!     Err(_) => Outcome::NonRetryableFailure,
//! });
//! assert!(matches!(
//!     classifier.classify(Err(&"busy")),
//!     Classified::Ready(Outcome::Overloaded(_))
//! ));
//! ```

use std::time::Duration;

/// What the server said about coming back, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerHint {
    /// The server gave no hint.
    #[default]
    None,
    /// Come back after this delay (`Retry-After`, `grpc-retry-pushback-ms`). A retry
    /// waits this long instead of its backoff delay; a circuit breaker may stay open at
    /// least this long.
    RetryAfter(Duration),
    /// Do not retry this call (a negative or malformed gRPC pushback).
    DoNotRetry,
}

/// The verdict on one call. See the [module docs](self) for what each variant means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call did what was asked.
    Success,
    /// The call failed and another attempt may succeed.
    RetryableFailure,
    /// The call failed and must not be tried again.
    NonRetryableFailure,
    /// The server is throttling or shedding load, possibly with a hint.
    Overloaded(ServerHint),
}

impl Outcome {
    /// `true` for [`Outcome::Success`].
    #[inline]
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Success)
    }

    /// `true` for every outcome that is not a success. Circuit breakers and outlier
    /// detection count these.
    #[inline]
    pub fn is_failure(self) -> bool {
        !self.is_success()
    }

    /// `true` if another attempt is allowed by the outcome itself: retryable failures,
    /// and overload unless the server said not to retry.
    #[inline]
    pub fn is_retryable(self) -> bool {
        match self {
            Outcome::RetryableFailure => true,
            Outcome::Overloaded(hint) => hint != ServerHint::DoNotRetry,
            Outcome::Success | Outcome::NonRetryableFailure => false,
        }
    }

    /// The server hint carried by an overload outcome, or [`ServerHint::None`].
    #[inline]
    pub fn hint(self) -> ServerHint {
        match self {
            Outcome::Overloaded(hint) => hint,
            _ => ServerHint::None,
        }
    }
}

/// The answer of a classifier: an outcome now, or a classifier that waits for the end
/// of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified<Eos> {
    /// The outcome is known from the response head or the error.
    Ready(Outcome),
    /// The outcome depends on the end of the response stream (gRPC trailers).
    RequiresEos(Eos),
}

impl<Eos> Classified<Eos> {
    /// The outcome if it is known now; a response that needs its end of stream counts
    /// as [`Outcome::Success`] here, since the call has been committed.
    #[inline]
    pub fn now_or_success(&self) -> Outcome {
        match self {
            Classified::Ready(outcome) => *outcome,
            Classified::RequiresEos(_) => Outcome::Success,
        }
    }
}

/// Decides the [`Outcome`] of a call from its result.
///
/// A classifier is configuration: cheap to clone and shared by every clone of the
/// layer that holds it. It sees the response by reference, so it never consumes or
/// copies it.
pub trait Classify<Res, E> {
    /// The classifier that finishes the job at the end of a stream. Use
    /// [`NeverEos`] when every outcome is known from the head.
    type Eos: ClassifyEos;

    /// Classifies the result of one call.
    fn classify(&self, result: Result<&Res, &E>) -> Classified<Self::Eos>;
}

/// Finishes a classification at the end of a response stream.
pub trait ClassifyEos {
    /// What the end of the stream carries (HTTP trailers, for instance).
    type Trailers;

    /// The stream ended normally, with or without trailers.
    fn classify_eos(self, trailers: Option<&Self::Trailers>) -> Outcome;

    /// The stream failed or was dropped before its end.
    fn classify_early_end(self) -> Outcome;
}

/// A [`ClassifyEos`] for classifiers that always answer from the head. It has no
/// values, so [`Classified::RequiresEos`] can never be built with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeverEos {}

impl ClassifyEos for NeverEos {
    type Trailers = ();

    fn classify_eos(self, _: Option<&()>) -> Outcome {
        match self {}
    }

    fn classify_early_end(self) -> Outcome {
        match self {}
    }
}

/// `Ok` is a success, `Err` is a retryable failure.
///
/// The right default for clients whose errors are transport errors (a refused or reset
/// connection, a timeout). Use a protocol classifier or [`classify_fn`] when responses
/// carry failures too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl<Res, E> Classify<Res, E> for DefaultClassifier {
    type Eos = NeverEos;

    #[inline]
    fn classify(&self, result: Result<&Res, &E>) -> Classified<NeverEos> {
        Classified::Ready(match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::RetryableFailure,
        })
    }
}

/// A classifier made from a closure; see [`classify_fn`].
#[derive(Clone, Copy)]
pub struct ClassifyFn<F> {
    f: F,
}

impl<F> std::fmt::Debug for ClassifyFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassifyFn").finish_non_exhaustive()
    }
}

/// Makes a classifier from a closure `Fn(Result<&Res, &E>) -> Outcome`.
///
/// ```
/// use tower_fortify::classify::{classify_fn, Classify, Outcome};
///
/// // A response of `Err(404)` is final; other errors may be retried.
/// let c = classify_fn(|r: Result<&(), &u16>| match r {
///     Ok(()) => Outcome::Success,
///     Err(404) => Outcome::NonRetryableFailure,
///     Err(_) => Outcome::RetryableFailure,
/// });
/// assert_eq!(c.classify(Err(&404)).now_or_success(), Outcome::NonRetryableFailure);
/// ```
pub fn classify_fn<F>(f: F) -> ClassifyFn<F> {
    ClassifyFn { f }
}

impl<F, Res, E> Classify<Res, E> for ClassifyFn<F>
where
    F: Fn(Result<&Res, &E>) -> Outcome,
{
    type Eos = NeverEos;

    #[inline]
    fn classify(&self, result: Result<&Res, &E>) -> Classified<NeverEos> {
        Classified::Ready((self.f)(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_classifier_maps_ok_and_err() {
        let c = DefaultClassifier;
        assert_eq!(
            Classify::<(), ()>::classify(&c, Ok(&())),
            Classified::Ready(Outcome::Success)
        );
        assert_eq!(
            Classify::<(), ()>::classify(&c, Err(&())),
            Classified::Ready(Outcome::RetryableFailure)
        );
    }

    #[test]
    fn retryability_follows_hints() {
        assert!(Outcome::RetryableFailure.is_retryable());
        assert!(!Outcome::NonRetryableFailure.is_retryable());
        assert!(!Outcome::Success.is_retryable());
        assert!(Outcome::Overloaded(ServerHint::None).is_retryable());
        assert!(Outcome::Overloaded(ServerHint::RetryAfter(Duration::from_secs(1))).is_retryable());
        assert!(!Outcome::Overloaded(ServerHint::DoNotRetry).is_retryable());
        assert_eq!(
            Outcome::Overloaded(ServerHint::DoNotRetry).hint(),
            ServerHint::DoNotRetry
        );
        assert_eq!(Outcome::RetryableFailure.hint(), ServerHint::None);
        assert!(Outcome::NonRetryableFailure.is_failure());
    }
}
