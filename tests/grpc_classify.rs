//! `GrpcClassifier` over arbitrary header values: never panics, and the pushback
//! rules of gRFC A6 hold whatever the bytes.

#![cfg(feature = "grpc")]

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use tower_fortify::classify::{Classified, Classify, ClassifyEos, Outcome, ServerHint};
use tower_fortify::grpc::GrpcClassifier;

fn classify(headers: HeaderMap) -> Classified<tower_fortify::grpc::GrpcEos> {
    let mut response = http::Response::new(());
    *response.headers_mut() = headers;
    Classify::<_, ()>::classify(&GrpcClassifier::new(), Ok(&response))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_status_and_pushback_never_panic(
        status in proptest::collection::vec(any::<u8>(), 0..12),
        pushback in proptest::collection::vec(any::<u8>(), 0..24),
    ) {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&status) {
            headers.insert("grpc-status", v);
        }
        if let Ok(v) = HeaderValue::from_bytes(&pushback) {
            headers.insert("grpc-retry-pushback-ms", v);
        }
        match classify(headers.clone()) {
            Classified::Ready(outcome) => {
                prop_assert!(headers.contains_key("grpc-status"));
                // Only a status that reads as 0 (OK) is a success.
                let code = std::str::from_utf8(headers["grpc-status"].as_bytes())
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok());
                prop_assert_eq!(outcome == Outcome::Success, code == Some(0));
            }
            Classified::RequiresEos(eos) => {
                prop_assert!(!headers.contains_key("grpc-status"));
                let _ = eos.classify_eos(Some(&headers));
            }
        }
    }

    #[test]
    fn unavailable_with_a_malformed_pushback_is_not_retried(
        pushback in "[^0-9]{1,8}|-[0-9]{1,6}",
    ) {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("14"));
        if let Ok(v) = HeaderValue::from_str(&pushback) {
            headers.insert("grpc-retry-pushback-ms", v);
            let outcome = classify(headers).now_or_success();
            prop_assert_eq!(outcome, Outcome::Overloaded(ServerHint::DoNotRetry));
            prop_assert!(!outcome.is_retryable());
        }
    }

    #[test]
    fn pushback_in_trailers_sets_the_delay(ms in 0u64..1_000_000) {
        let Classified::RequiresEos(eos) = classify(HeaderMap::new()) else {
            panic!("no status in the headers must wait for the trailers");
        };
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("8"));
        trailers.insert("grpc-retry-pushback-ms", HeaderValue::from(ms));
        prop_assert_eq!(
            eos.classify_eos(Some(&trailers)),
            Outcome::Overloaded(ServerHint::RetryAfter(std::time::Duration::from_millis(ms)))
        );
    }
}
