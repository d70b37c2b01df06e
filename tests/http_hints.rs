//! Property tests for the header parsers: arbitrary input never panics, and what
//! parses means what it says.
#![cfg(feature = "http")]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use tower_fortify::classify::{Classify, Outcome, ServerHint};
use tower_fortify::http::{
    HttpClassifier, MAX_HINT, parse_grpc_pushback, parse_retry_after_date,
    parse_retry_after_seconds, retry_after,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
        let _ = parse_retry_after_seconds(&bytes);
        let _ = parse_retry_after_date(&bytes, SystemTime::UNIX_EPOCH);
        let hint = parse_grpc_pushback(&bytes);
        prop_assert!(hint != ServerHint::None);
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", value.clone());
            headers.insert("date", value.clone());
            headers.insert("grpc-retry-pushback-ms", value);
            if let Some(d) = retry_after(&headers, Some(|| SystemTime::UNIX_EPOCH)) {
                prop_assert!(d <= MAX_HINT);
            }
            let mut response = http::Response::new(());
            *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            *response.headers_mut() = headers;
            let outcome = Classify::<_, ()>::classify(&HttpClassifier::new(), Ok(&response)).now_or_success();
            prop_assert!(outcome.is_retryable());
        }
    }

    #[test]
    fn digits_are_seconds(secs in 0u64..1_000_000) {
        let text = secs.to_string();
        let expected = Duration::from_secs(secs).min(MAX_HINT);
        prop_assert_eq!(parse_retry_after_seconds(text.as_bytes()), Some(expected));
    }

    #[test]
    fn anything_but_digits_is_not_seconds(text in "[^0-9 \t]{1,12}") {
        prop_assert_eq!(parse_retry_after_seconds(text.as_bytes()), None);
    }

    #[test]
    fn pushback_digits_are_milliseconds(ms in 0u64..100_000_000) {
        prop_assert_eq!(
            parse_grpc_pushback(ms.to_string().as_bytes()),
            ServerHint::RetryAfter(Duration::from_millis(ms).min(MAX_HINT))
        );
    }

    #[test]
    fn negative_pushback_means_do_not_retry(ms in 1i64..i64::MAX) {
        prop_assert_eq!(parse_grpc_pushback((-ms).to_string().as_bytes()), ServerHint::DoNotRetry);
    }

    #[test]
    fn dates_round_trip(now_secs in 0u64..4_000_000_000, ahead in 0u64..100_000) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now_secs);
        let at = httpdate::fmt_http_date(now + Duration::from_secs(ahead));
        prop_assert_eq!(
            parse_retry_after_date(at.as_bytes(), now),
            Some(Duration::from_secs(ahead).min(MAX_HINT))
        );
    }
}

#[test]
fn throttled_without_hint_is_plain_overload() {
    let response = http::Response::builder().status(429).body(()).unwrap();
    assert_eq!(
        Classify::<_, ()>::classify(&HttpClassifier::new(), Ok(&response)).now_or_success(),
        Outcome::Overloaded(ServerHint::None)
    );
}
