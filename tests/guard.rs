//! `guard::Rejection::of` recognises every layer's refusal through the ground floor's
//! registry, whoever built the error and wherever it sits in the source chain, and
//! nothing else.

use std::fmt;
use std::time::Duration;

use tower::{Service, ServiceExt};
use tower_fortify::BoxError;
use tower_fortify::guard::{Registration, Reject, Rejection, RejectionKind};

/// An application error that wraps another one, as a client library would.
#[derive(Debug)]
struct Wrapped(BoxError);

impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the call failed")
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

#[cfg(feature = "bulkhead")]
#[tokio::test]
async fn a_full_bulkhead_is_found_behind_a_wrapping_error() {
    use tower_fortify::bulkhead::BulkheadLayer;

    let layer = BulkheadLayer::builder().max_concurrent(1).build().unwrap();
    let mut svc = tower::Layer::layer(
        &layer,
        tower::service_fn(|()| std::future::pending::<Result<(), BoxError>>()),
    );
    let _held = svc.ready().await.unwrap().call(());
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    let wrapped: BoxError = Box::new(Wrapped(Box::new(Wrapped(err))));
    let r = Rejection::of(wrapped.as_ref()).expect("found two errors down the chain");
    assert_eq!(r.kind(), RejectionKind::Unavailable);
    assert_eq!(r.reason(), "bulkhead-full");
    assert_eq!(r.message(), "bulkhead-full: too many requests in flight\n");
}

#[cfg(feature = "failover")]
#[tokio::test]
async fn a_router_with_no_backend_left_is_unavailable() {
    use tower_fortify::failover::{Backend, Failover, NoHealthyBackend};

    let backend = tower::service_fn(|()| async { Ok::<_, BoxError>(()) });
    let mut router = Failover::builder()
        .backend(Backend::new("only", backend))
        .build()
        .unwrap();
    let handle = router.handle();
    assert!(handle.remove("only"));
    let err = router.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(err.is::<NoHealthyBackend>(), "{err}");
    let r = Rejection::of(err.as_ref()).expect("a rejection");
    assert_eq!(
        (r.kind(), r.reason()),
        (RejectionKind::Unavailable, "no-healthy-backend")
    );
    assert_eq!(r.retry_after_hint(), None);
}

#[test]
fn an_application_error_is_not_a_rejection() {
    let err: BoxError = Box::new(Wrapped(Box::new(std::io::Error::other("refused"))));
    assert_eq!(Rejection::of(err.as_ref()), None);
}

/// A refusal of a layer outside this crate.
#[derive(Debug)]
struct QuotaSpent;

static QUOTA_SPENT: Registration = Registration::of::<QuotaSpent>();

impl fmt::Display for QuotaSpent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("quota spent")
    }
}

impl std::error::Error for QuotaSpent {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        QUOTA_SPENT.register();
        None
    }
}

impl Reject for QuotaSpent {
    fn rejection(&self) -> Rejection {
        Rejection::new(RejectionKind::Throttled)
            .with_reason("quota-spent")
            .retry_after(Duration::from_secs(60))
    }
}

#[test]
fn a_new_layer_needs_no_edit_elsewhere_and_no_start_up_call() {
    // Nothing registered the type before: the first question, on another thread,
    // already gets the answer.
    assert!(!format!("{QUOTA_SPENT:?}").contains("registered: true"));
    let answer = std::thread::spawn(|| {
        let err: BoxError = Box::new(Wrapped(Box::new(QuotaSpent)));
        Rejection::of(err.as_ref())
    })
    .join()
    .unwrap()
    .expect("recognised the first time");
    assert_eq!(answer.kind(), RejectionKind::Throttled);
    assert_eq!(answer.reason(), "quota-spent");
    assert_eq!(answer.retry_after_hint(), Some(Duration::from_secs(60)));
    assert!(format!("{QUOTA_SPENT:?}").contains("registered: true"));
}
