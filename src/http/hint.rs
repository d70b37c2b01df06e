//! Parsers for the headers a server uses to say when to come back.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{DATE, RETRY_AFTER};

use crate::classify::ServerHint;

/// The gRPC pushback header (gRFC A6): milliseconds to wait, or "do not retry" when
/// negative or malformed.
pub const GRPC_RETRY_PUSHBACK_MS: &str = "grpc-retry-pushback-ms";

/// The longest delay the parsers return. Larger values are clamped to it, so no
/// arithmetic on a hostile value can overflow. One day is far beyond any layer's
/// `max_server_delay`, so a clamped hint still ends the retries as "too long".
pub const MAX_HINT: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses a `Retry-After` value given in delta-seconds (`"120"`).
///
/// Returns `None` for anything that is not a plain non-negative decimal integer
/// (surrounding whitespace allowed). Values beyond [`MAX_HINT`] are clamped.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::http::parse_retry_after_seconds;
///
/// assert_eq!(parse_retry_after_seconds(b"2"), Some(Duration::from_secs(2)));
/// assert_eq!(parse_retry_after_seconds(b"-1"), None);
/// assert_eq!(parse_retry_after_seconds(b"soon"), None);
/// ```
pub fn parse_retry_after_seconds(value: &[u8]) -> Option<Duration> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut secs: u64 = 0;
    for &digit in value {
        secs = secs
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'));
    }
    Some(Duration::from_secs(secs).min(MAX_HINT))
}

/// Parses a `Retry-After` value given as an HTTP-date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`), measured from `now`.
///
/// A date in the past means "now" (a zero delay). Returns `None` if the value is not
/// an HTTP-date.
pub fn parse_retry_after_date(value: &[u8], now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_HINT),
    )
}

/// Reads the `Retry-After` header of a response.
///
/// Delta-seconds are read as they are. An HTTP-date needs a "now": the response's own
/// `Date` header is used when it parses (the server's clock against the server's
/// clock, so client clock skew does not matter), otherwise `now()` when a clock is
/// given. Without either the date is ignored. Malformed values, several conflicting
/// headers and non-UTF-8 bytes all give `None`.
///
/// ```
/// use std::time::Duration;
/// use http::HeaderMap;
/// use tower_fortify::http::retry_after;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT".parse().unwrap());
/// headers.insert("date", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
/// assert_eq!(retry_after(&headers, None), Some(Duration::from_secs(30)));
/// ```
pub fn retry_after(headers: &HeaderMap, now: Option<fn() -> SystemTime>) -> Option<Duration> {
    let mut values = headers.get_all(RETRY_AFTER).iter();
    let value = values.next()?;
    if values.next().is_some() {
        // Two answers to one question: trust neither.
        return None;
    }
    let bytes = value.as_bytes();
    if let Some(delay) = parse_retry_after_seconds(bytes) {
        return Some(delay);
    }
    let reference = headers
        .get(DATE)
        .and_then(|d| std::str::from_utf8(d.as_bytes()).ok())
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
        .or_else(|| now.map(|clock| clock()))?;
    parse_retry_after_date(bytes, reference)
}

/// Parses a `grpc-retry-pushback-ms` value (gRFC A6).
///
/// A non-negative integer is a delay in milliseconds; a negative or malformed value
/// means the server asks not to be retried ([`ServerHint::DoNotRetry`]).
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::classify::ServerHint;
/// use tower_fortify::http::parse_grpc_pushback;
///
/// assert_eq!(parse_grpc_pushback(b"250"), ServerHint::RetryAfter(Duration::from_millis(250)));
/// assert_eq!(parse_grpc_pushback(b"-1"), ServerHint::DoNotRetry);
/// assert_eq!(parse_grpc_pushback(b"later"), ServerHint::DoNotRetry);
/// ```
pub fn parse_grpc_pushback(value: &[u8]) -> ServerHint {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return ServerHint::DoNotRetry;
    }
    let mut ms: u64 = 0;
    for &digit in value {
        ms = ms
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'));
    }
    ServerHint::RetryAfter(Duration::from_millis(ms).min(MAX_HINT))
}

/// Reads `grpc-retry-pushback-ms` from headers or trailers: `None` when absent, a
/// hint otherwise. Several values count as malformed.
pub fn grpc_pushback(headers: &HeaderMap) -> Option<ServerHint> {
    let mut values = headers.get_all(GRPC_RETRY_PUSHBACK_MS).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return Some(ServerHint::DoNotRetry);
    }
    Some(parse_grpc_pushback(value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accept_only_digits() {
        assert_eq!(
            parse_retry_after_seconds(b" 7 "),
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse_retry_after_seconds(b"0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after_seconds(b"1.5"), None);
        assert_eq!(parse_retry_after_seconds(b"+3"), None);
        assert_eq!(parse_retry_after_seconds(b""), None);
        assert_eq!(
            parse_retry_after_seconds(b"99999999999999999999999999"),
            Some(MAX_HINT)
        );
    }

    #[test]
    fn date_in_the_past_is_zero() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after_date(b"Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after_date(b"Wed, 21 Oct 2015 07:28:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(parse_retry_after_date(b"yesterday", now), None);
    }

    #[test]
    fn date_uses_clock_without_date_header() {
        fn clock() -> SystemTime {
            httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap()
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:10 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, None), None);
        assert_eq!(
            retry_after(&headers, Some(clock)),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn conflicting_headers_are_ignored() {
        let mut headers = HeaderMap::new();
        headers.append(RETRY_AFTER, "1".parse().unwrap());
        headers.append(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers, None), None);
        headers.append(GRPC_RETRY_PUSHBACK_MS, "1".parse().unwrap());
        assert_eq!(
            grpc_pushback(&headers),
            Some(ServerHint::RetryAfter(Duration::from_millis(1)))
        );
        headers.append(GRPC_RETRY_PUSHBACK_MS, "2".parse().unwrap());
        assert_eq!(grpc_pushback(&headers), Some(ServerHint::DoNotRetry));
    }
}
