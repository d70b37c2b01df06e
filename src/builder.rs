//! `ServiceBuilder` methods for every layer.

use tower::ServiceBuilder;

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
/// # #[cfg(not(feature = "retry"))] fn main() {}
/// # #[cfg(feature = "retry")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_fortify::retry::RetryLayer;
/// use tower_fortify::ServiceBuilderExt;
///
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
    ) -> ServiceBuilder<tower_layer::Stack<crate::retry::RetryLayer<C, P>, L>>;

    /// The same as [`retry`](Self::retry), under a name that tower's own
    /// `ServiceBuilder::retry` does not shadow.
    #[cfg(feature = "retry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
    fn with_retry<C, P>(
        self,
        layer: crate::retry::RetryLayer<C, P>,
    ) -> ServiceBuilder<tower_layer::Stack<crate::retry::RetryLayer<C, P>, L>>;

    /// Fails calls fast while the backend is down; see [`crate::circuit_breaker`].
    #[cfg(feature = "circuit-breaker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "circuit-breaker")))]
    fn circuit_breaker<C>(
        self,
        layer: crate::circuit_breaker::CircuitBreakerLayer<C>,
    ) -> ServiceBuilder<tower_layer::Stack<crate::circuit_breaker::CircuitBreakerLayer<C>, L>>;

    /// Bounds concurrent calls; see [`crate::bulkhead`].
    #[cfg(feature = "bulkhead")]
    #[cfg_attr(docsrs, doc(cfg(feature = "bulkhead")))]
    fn bulkhead<C>(
        self,
        layer: crate::bulkhead::BulkheadLayer<C>,
    ) -> ServiceBuilder<tower_layer::Stack<crate::bulkhead::BulkheadLayer<C>, L>>;

    /// Wraps request bodies so that up to `cap` bytes can be sent again; see
    /// [`crate::http::ReplayBody`]. Put it right above the retry layer.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    fn replay_body(
        self,
        cap: usize,
    ) -> ServiceBuilder<tower_layer::Stack<crate::http::ReplayBodyLayer, L>>;

    /// Injects faults; see [`crate::chaos`].
    #[cfg(feature = "chaos")]
    #[cfg_attr(docsrs, doc(cfg(feature = "chaos")))]
    fn chaos<Req, Res, E>(
        self,
        layer: crate::chaos::ChaosLayer<Req, Res, E>,
    ) -> ServiceBuilder<tower_layer::Stack<crate::chaos::ChaosLayer<Req, Res, E>, L>>;
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
    ) -> ServiceBuilder<tower_layer::Stack<crate::retry::RetryLayer<C, P>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "retry")]
    fn with_retry<C, P>(
        self,
        layer: crate::retry::RetryLayer<C, P>,
    ) -> ServiceBuilder<tower_layer::Stack<crate::retry::RetryLayer<C, P>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "circuit-breaker")]
    fn circuit_breaker<C>(
        self,
        layer: crate::circuit_breaker::CircuitBreakerLayer<C>,
    ) -> ServiceBuilder<tower_layer::Stack<crate::circuit_breaker::CircuitBreakerLayer<C>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "bulkhead")]
    fn bulkhead<C>(
        self,
        layer: crate::bulkhead::BulkheadLayer<C>,
    ) -> ServiceBuilder<tower_layer::Stack<crate::bulkhead::BulkheadLayer<C>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "http")]
    fn replay_body(
        self,
        cap: usize,
    ) -> ServiceBuilder<tower_layer::Stack<crate::http::ReplayBodyLayer, L>> {
        self.layer(crate::http::ReplayBodyLayer::new(cap))
    }

    #[cfg(feature = "chaos")]
    fn chaos<Req, Res, E>(
        self,
        layer: crate::chaos::ChaosLayer<Req, Res, E>,
    ) -> ServiceBuilder<tower_layer::Stack<crate::chaos::ChaosLayer<Req, Res, E>, L>> {
        self.layer(layer)
    }
}
