//! The timeout module: per-attempt timeouts and overall deadlines, in paused time.

#![cfg(feature = "timeout")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::timeout::{DeadlineExceeded, DeadlineLayer, Elapsed, TimeoutLayer};

fn after(
    d: Duration,
) -> impl tower::Service<(), Response = &'static str, Error = BoxError, Future: Send> + Clone {
    service_fn(move |()| async move {
        tokio::time::sleep(d).await;
        Ok::<_, BoxError>("done")
    })
}

#[tokio::test(start_paused = true)]
async fn an_attempt_past_its_timeout_fails_with_elapsed_at_exactly_the_timeout() {
    let svc = TimeoutLayer::new(Duration::from_millis(300)).layer(after(Duration::from_secs(10)));
    let start = Instant::now();
    let err = svc.oneshot(()).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    let e = err.downcast_ref::<Elapsed>().expect("Elapsed");
    assert_eq!(e.after(), Duration::from_millis(300));
    assert_eq!(err.to_string(), "attempt timed out after 300 ms");
}

#[tokio::test(start_paused = true)]
async fn a_response_in_time_passes_through() {
    let svc =
        TimeoutLayer::new(Duration::from_millis(300)).layer(after(Duration::from_millis(299)));
    assert_eq!(svc.oneshot(()).await.unwrap(), "done");
    let svc = DeadlineLayer::new(Duration::from_secs(1)).layer(after(Duration::from_millis(999)));
    assert_eq!(svc.oneshot(()).await.unwrap(), "done");
}

#[tokio::test(start_paused = true)]
async fn a_request_past_its_deadline_fails_with_deadline_exceeded() {
    let svc = DeadlineLayer::new(Duration::from_secs(12)).layer(after(Duration::from_secs(60)));
    let start = Instant::now();
    let err = svc.oneshot(()).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(12));
    assert!(
        err.downcast_ref::<Elapsed>().is_none(),
        "not an attempt's timeout"
    );
    let e = err
        .downcast_ref::<DeadlineExceeded>()
        .expect("DeadlineExceeded");
    assert_eq!(e.after(), Duration::from_secs(12));
    assert_eq!(err.to_string(), "request deadline of 12.0 s exceeded");
}

/// A named timeout or deadline puts its name in its error and at the start of the
/// message, so that a log line says which one fired; unnamed, the message is bare.
#[tokio::test(start_paused = true)]
async fn named_timeouts_name_themselves_in_their_errors() {
    let svc = TimeoutLayer::new(Duration::from_millis(300))
        .name("payments/eu-1")
        .layer(after(Duration::from_secs(10)));
    let err = svc.oneshot(()).await.unwrap_err();
    let e = err.downcast_ref::<Elapsed>().expect("Elapsed");
    assert_eq!(e.name(), Some("payments/eu-1"));
    assert_eq!(
        err.to_string(),
        "payments/eu-1: attempt timed out after 300 ms"
    );

    let svc = DeadlineLayer::new(Duration::from_secs(2))
        .name("payments")
        .layer(after(Duration::from_secs(10)));
    let err = svc.oneshot(()).await.unwrap_err();
    let e = err
        .downcast_ref::<DeadlineExceeded>()
        .expect("DeadlineExceeded");
    assert_eq!(e.name(), Some("payments"));
    assert_eq!(
        err.to_string(),
        "payments: request deadline of 2000 ms exceeded"
    );

    let svc = TimeoutLayer::new(Duration::from_millis(300)).layer(after(Duration::from_secs(10)));
    let err = svc.oneshot(()).await.unwrap_err();
    assert_eq!(err.downcast_ref::<Elapsed>().unwrap().name(), None);
}

/// The inner future is dropped when the timer fires: whatever it held is released.
#[tokio::test(start_paused = true)]
async fn the_timed_out_call_is_cancelled() {
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let seen = dropped.clone();
    let inner = service_fn(move |()| {
        let flag = Flag(seen.clone());
        async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(flag);
            Ok::<_, BoxError>(())
        }
    });
    let svc = TimeoutLayer::new(Duration::from_millis(5)).layer(inner);
    let _ = svc.oneshot(()).await.unwrap_err();
    assert!(
        dropped.load(Ordering::SeqCst),
        "the inner future was dropped"
    );
}

#[test]
fn zero_durations_are_rejected_naming_the_field() {
    assert_eq!(
        TimeoutLayer::try_new(Duration::ZERO).unwrap_err().field(),
        "timeout.attempt"
    );
    assert_eq!(
        DeadlineLayer::try_new(Duration::ZERO).unwrap_err().field(),
        "timeout.deadline"
    );
    assert!(TimeoutLayer::try_new(Duration::from_millis(1)).is_ok());
}

/// At a server's edge both timeouts mean "deadline exceeded": 504, DEADLINE_EXCEEDED.
#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn both_timeouts_are_deadline_rejections_on_the_wire() {
    use tower_fortify::http::{Rejection, RejectionKind};
    let attempt = TimeoutLayer::new(Duration::from_millis(1)).layer(after(Duration::from_secs(1)));
    let request = DeadlineLayer::new(Duration::from_millis(1)).layer(after(Duration::from_secs(1)));
    for err in [
        attempt.oneshot(()).await.unwrap_err(),
        request.oneshot(()).await.unwrap_err(),
    ] {
        let r = Rejection::of(err.as_ref()).expect("a rejection");
        assert_eq!(r.kind(), RejectionKind::DeadlineExceeded, "{err}");
        #[cfg(feature = "grpc")]
        assert_eq!(
            tower_fortify::grpc::status_of(err.as_ref()).code(),
            tonic::Code::DeadlineExceeded
        );
    }
}
