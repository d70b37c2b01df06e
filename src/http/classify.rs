//! Classification of HTTP responses by status code and server hints.

use std::fmt;
use std::time::SystemTime;

use http::{Method, Request, StatusCode};

use super::hint::retry_after;
use crate::classify::{Classified, Classify, NeverEos, Outcome, ServerHint};

/// A set of HTTP status codes (100..=999), a fixed-size bitmap: copying it allocates
/// nothing and a lookup is one shift.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusSet {
    bits: [u64; 16],
}

impl StatusSet {
    /// The empty set.
    pub const fn empty() -> Self {
        Self { bits: [0; 16] }
    }

    /// Every status in `from..=to` (both as numbers, clamped to 0..=1023).
    pub const fn range(from: u16, to: u16) -> Self {
        let mut set = Self::empty();
        let mut code = from;
        while code <= to && code < 1024 {
            set.bits[(code / 64) as usize] |= 1 << (code % 64);
            code += 1;
        }
        set
    }

    /// This set with `status` added.
    pub const fn with(mut self, status: StatusCode) -> Self {
        let code = status.as_u16();
        self.bits[(code / 64) as usize] |= 1 << (code % 64);
        self
    }

    /// This set with `status` removed.
    pub const fn without(mut self, status: StatusCode) -> Self {
        let code = status.as_u16();
        self.bits[(code / 64) as usize] &= !(1 << (code % 64));
        self
    }

    /// Whether `status` is in the set.
    #[inline]
    pub const fn contains(&self, status: StatusCode) -> bool {
        let code = status.as_u16();
        self.bits[(code / 64) as usize] & (1 << (code % 64)) != 0
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes = (100u16..1000).filter(|&c| self.bits[(c / 64) as usize] & (1 << (c % 64)) != 0);
        f.debug_set().entries(codes).finish()
    }
}

/// Classifies `http::Response`s by status code, reading `Retry-After`.
///
/// Defaults, each configurable:
///
/// * every status in [`failures`](Self::failures) (5xx) is a failure, every other
///   status a success;
/// * a failure in [`retryable`](Self::retryable) (502, 503, 504) is a
///   [`RetryableFailure`](Outcome::RetryableFailure) — or, when it carries a
///   `Retry-After`, [`Overloaded`](Outcome::Overloaded) with that delay as its hint, so
///   the retry waits as long as the server asked;
/// * a status in [`throttled`](Self::throttled) (429) is
///   [`Overloaded`](Outcome::Overloaded) with the `Retry-After` hint if there is one;
/// * an `Err` (the connection failed, was reset, timed out) is a retryable failure.
///
/// Method idempotency is not the classifier's business (it never sees the request):
/// [`HttpReplay`](super::HttpReplay) refuses to retry non-idempotent requests.
///
/// A `Retry-After` given as an HTTP-date is measured from the response's `Date`
/// header, or from [`wall_clock`](Self::wall_clock) when the response has none.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::classify::{Classify, Outcome, ServerHint};
/// use tower_fortify::http::HttpClassifier;
///
/// let classifier = HttpClassifier::new();
/// let busy = http::Response::builder()
///     .status(503)
///     .header("retry-after", "2")
///     .body(())
///     .unwrap();
/// let outcome = Classify::<_, std::io::Error>::classify(&classifier, Ok(&busy)).now_or_success();
/// assert_eq!(outcome, Outcome::Overloaded(ServerHint::RetryAfter(Duration::from_secs(2))));
/// ```
#[derive(Clone, Copy)]
pub struct HttpClassifier {
    failures: StatusSet,
    retryable: StatusSet,
    throttled: StatusSet,
    clock: Option<fn() -> SystemTime>,
}

impl fmt::Debug for HttpClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClassifier")
            .field("failures", &self.failures)
            .field("retryable", &self.retryable)
            .field("throttled", &self.throttled)
            .field("wall_clock", &self.clock.is_some())
            .finish()
    }
}

impl Default for HttpClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClassifier {
    /// The defaults described on the type.
    pub const fn new() -> Self {
        Self {
            failures: StatusSet::range(500, 599),
            retryable: StatusSet::empty()
                .with(StatusCode::BAD_GATEWAY)
                .with(StatusCode::SERVICE_UNAVAILABLE)
                .with(StatusCode::GATEWAY_TIMEOUT),
            throttled: StatusSet::empty().with(StatusCode::TOO_MANY_REQUESTS),
            clock: None,
        }
    }

    /// The statuses that count as failures (default: 500–599). Statuses in
    /// [`retryable`](Self::retryable) and [`throttled`](Self::throttled) are failures
    /// whether or not they are listed here.
    pub const fn failures(mut self, set: StatusSet) -> Self {
        self.failures = set;
        self
    }

    /// The failures another attempt may fix (default: 502, 503, 504).
    pub const fn retryable(mut self, set: StatusSet) -> Self {
        self.retryable = set;
        self
    }

    /// The statuses that mean "slow down" (default: 429).
    pub const fn throttled(mut self, set: StatusSet) -> Self {
        self.throttled = set;
        self
    }

    /// The clock that measures a `Retry-After` HTTP-date when the response carries no
    /// `Date` header, typically `std::time::SystemTime::now`. Without one such dates
    /// are ignored: the library itself never reads the wall clock, so that tests in
    /// paused time stay deterministic.
    pub const fn wall_clock(mut self, now: fn() -> SystemTime) -> Self {
        self.clock = Some(now);
        self
    }

    /// The outcome of a response head.
    pub fn classify_response<B>(&self, response: &http::Response<B>) -> Outcome {
        let status = response.status();
        if self.throttled.contains(status) {
            return Outcome::Overloaded(self.hint(response.headers()));
        }
        if self.retryable.contains(status) {
            return match retry_after(response.headers(), self.clock) {
                Some(delay) => Outcome::Overloaded(ServerHint::RetryAfter(delay)),
                None => Outcome::RetryableFailure,
            };
        }
        if self.failures.contains(status) {
            return Outcome::NonRetryableFailure;
        }
        Outcome::Success
    }

    fn hint(&self, headers: &http::HeaderMap) -> ServerHint {
        retry_after(headers, self.clock).map_or(ServerHint::None, ServerHint::RetryAfter)
    }
}

impl<B, E> Classify<http::Response<B>, E> for HttpClassifier {
    type Eos = NeverEos;

    #[inline]
    fn classify(&self, result: Result<&http::Response<B>, &E>) -> Classified<NeverEos> {
        Classified::Ready(match result {
            Ok(response) => self.classify_response(response),
            Err(_) => Outcome::RetryableFailure,
        })
    }
}

/// Marks a request whose method is not idempotent (POST, PATCH, …) as safe to send
/// more than once, for instance because it carries an idempotency key. Put it in the
/// request's extensions.
///
/// ```
/// let mut req = http::Request::post("http://backend/orders").body(()).unwrap();
/// req.extensions_mut().insert(tower_fortify::http::RetrySafe);
/// assert!(tower_fortify::http::may_retry(&req));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetrySafe;

/// Whether `method` is idempotent by RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT
/// and DELETE.
#[inline]
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether a request may be sent more than once: its method is idempotent, or it is
/// marked [`RetrySafe`].
#[inline]
pub fn may_retry<B>(req: &Request<B>) -> bool {
    is_idempotent(req.method()) || req.extensions().get::<RetrySafe>().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: u16, headers: &[(&str, &str)]) -> Outcome {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        HttpClassifier::new().classify_response(&b.body(()).unwrap())
    }

    #[test]
    fn default_statuses() {
        assert_eq!(outcome(200, &[]), Outcome::Success);
        assert_eq!(outcome(404, &[]), Outcome::Success);
        assert_eq!(outcome(500, &[]), Outcome::NonRetryableFailure);
        assert_eq!(outcome(502, &[]), Outcome::RetryableFailure);
        assert_eq!(outcome(503, &[]), Outcome::RetryableFailure);
        assert_eq!(outcome(504, &[]), Outcome::RetryableFailure);
        assert_eq!(outcome(429, &[]), Outcome::Overloaded(ServerHint::None));
        assert_eq!(
            outcome(429, &[("retry-after", "3")]),
            Outcome::Overloaded(ServerHint::RetryAfter(std::time::Duration::from_secs(3)))
        );
        // A malformed hint on a retryable status leaves it a plain retryable failure.
        assert_eq!(
            outcome(503, &[("retry-after", "later")]),
            Outcome::RetryableFailure
        );
    }

    #[test]
    fn sets_are_configurable() {
        let c = HttpClassifier::new()
            .retryable(StatusSet::empty().with(StatusCode::INTERNAL_SERVER_ERROR))
            .failures(StatusSet::range(500, 599).with(StatusCode::NOT_FOUND))
            .throttled(StatusSet::empty());
        let resp = |s: u16| http::Response::builder().status(s).body(()).unwrap();
        assert_eq!(c.classify_response(&resp(500)), Outcome::RetryableFailure);
        assert_eq!(
            c.classify_response(&resp(503)),
            Outcome::NonRetryableFailure
        );
        assert_eq!(
            c.classify_response(&resp(404)),
            Outcome::NonRetryableFailure
        );
        assert_eq!(c.classify_response(&resp(429)), Outcome::Success);
        let set = StatusSet::range(500, 502).without(StatusCode::BAD_GATEWAY);
        assert!(set.contains(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!set.contains(StatusCode::BAD_GATEWAY));
        assert_eq!(format!("{set:?}"), "{500, 501}");
    }

    #[test]
    fn idempotency() {
        let get = Request::get("/").body(()).unwrap();
        let mut post = Request::post("/").body(()).unwrap();
        assert!(may_retry(&get));
        assert!(!may_retry(&post));
        post.extensions_mut().insert(RetrySafe);
        assert!(may_retry(&post));
        assert!(!is_idempotent(&Method::PATCH));
        assert!(is_idempotent(&Method::PUT));
    }
}
