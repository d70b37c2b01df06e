//! `ServiceBuilder` methods for every layer.

use tower::ServiceBuilder;
use tower_layer::Stack;

/// Adds tower-fortify's layers to [`tower::ServiceBuilder`].
///
/// Layers run top to bottom: the first one added is the outermost.
///
/// **A name clash to know about:** when tower's own `retry` feature is enabled (tower's
/// `full` feature enables it), `ServiceBuilder` has an inherent `retry(policy)` method,
/// and Rust picks an inherent method over a trait method. Use
/// [`with_retry`](Self::with_retry) then; it is the same method under a name tower
/// does not use.
///
/// ```
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_fortify::retry::RetryLayer;
/// use tower_fortify::ServiceBuilderExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut svc = ServiceBuilder::new()
///     .with_retry(RetryLayer::default())
///     .service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) });
/// assert_eq!(svc.ready().await.unwrap().call(7).await.unwrap(), 7);
/// # }
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Retries failed calls; see [`crate::retry`].
    #[cfg(feature = "retry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
    fn retry<C, P>(
        self,
        layer: crate::retry::RetryLayer<C, P>,
    ) -> ServiceBuilder<Stack<crate::retry::RetryLayer<C, P>, L>>;

    /// The same as [`retry`](Self::retry), under a name that tower's own
    /// `ServiceBuilder::retry` does not shadow.
    #[cfg(feature = "retry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
    fn with_retry<C, P>(
        self,
        layer: crate::retry::RetryLayer<C, P>,
    ) -> ServiceBuilder<Stack<crate::retry::RetryLayer<C, P>, L>>;

    /// Wraps request bodies so that up to `cap` bytes can be sent again; see
    /// [`crate::http::ReplayBody`]. Put it right above the retry layer.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    fn replay_body(self, cap: usize) -> ServiceBuilder<Stack<crate::http::ReplayBodyLayer, L>>;
}

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "retry")]
    fn retry<C, P>(
        self,
        layer: crate::retry::RetryLayer<C, P>,
    ) -> ServiceBuilder<Stack<crate::retry::RetryLayer<C, P>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "retry")]
    fn with_retry<C, P>(
        self,
        layer: crate::retry::RetryLayer<C, P>,
    ) -> ServiceBuilder<Stack<crate::retry::RetryLayer<C, P>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "http")]
    fn replay_body(self, cap: usize) -> ServiceBuilder<Stack<crate::http::ReplayBodyLayer, L>> {
        self.layer(crate::http::ReplayBodyLayer::new(cap))
    }
}
