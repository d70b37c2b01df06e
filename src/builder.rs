//! `ServiceBuilder` methods for every layer.

use tower::ServiceBuilder;
use tower_layer::Stack;

/// Adds tower-fortify's layers to [`tower::ServiceBuilder`].
///
/// Layers run top to bottom: the first one added is the outermost.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_fortify::retry::RetryLayer;
/// use tower_fortify::ServiceBuilderExt;
///
/// let svc = ServiceBuilder::new()
///     .retry(RetryLayer::default())
///     .service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) });
/// # let _ = svc;
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Retries failed calls; see [`crate::retry`].
    #[cfg(feature = "retry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
    fn retry<C, P>(
        self,
        layer: crate::retry::RetryLayer<C, P>,
    ) -> ServiceBuilder<Stack<crate::retry::RetryLayer<C, P>, L>>;

    /// Bounds concurrent calls; see [`crate::bulkhead`].
    #[cfg(feature = "bulkhead")]
    #[cfg_attr(docsrs, doc(cfg(feature = "bulkhead")))]
    fn bulkhead<C>(
        self,
        layer: crate::bulkhead::BulkheadLayer<C>,
    ) -> ServiceBuilder<Stack<crate::bulkhead::BulkheadLayer<C>, L>>;
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

    #[cfg(feature = "bulkhead")]
    fn bulkhead<C>(
        self,
        layer: crate::bulkhead::BulkheadLayer<C>,
    ) -> ServiceBuilder<Stack<crate::bulkhead::BulkheadLayer<C>, L>> {
        self.layer(layer)
    }
}
