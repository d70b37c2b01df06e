//! The protocol presets: the same stack with HTTP's or gRPC's classifier and replay.

#[cfg(feature = "http")]
use super::builder::StackBuilder;
#[cfg(feature = "http")]
use super::service::Stack;

#[cfg(feature = "http")]
impl<S> Stack<S> {
    /// The recommended stack for HTTP backends of your own (any
    /// `Service<http::Request<B>>`): [`HttpClassifier`](crate::http::HttpClassifier)
    /// in every layer (a `5xx` is a failure, `502`/`503`/`504` retryable, `429`
    /// load shedding, `Retry-After` honoured) and
    /// [`HttpReplay`](crate::http::HttpReplay) (only idempotent requests, or those
    /// marked [`RetrySafe`](crate::http::RetrySafe), are retried). For a streamed
    /// request body, make `B` a [`ReplayBody`](crate::http::ReplayBody). For a list
    /// of URLs, see [`Stack::http`].
    pub fn http_builder() -> StackBuilder<S, crate::http::HttpClassifier, crate::http::HttpReplay> {
        Stack::builder()
            .classifier(crate::http::HttpClassifier::new())
            .replay(crate::http::HttpReplay)
    }
}

/// The hyper-util client [`Stack::http`] sends with.
#[cfg(feature = "http-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-client")))]
pub type HttpClient<B> =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, B>;

#[cfg(feature = "http-client")]
impl<B> Stack<crate::http::Upstream<HttpClient<B>>>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    /// The recommended stack over HTTP backends given by URL, each reached through one
    /// shared hyper-util client (HTTP/1.1, connections pooled per backend), with the
    /// HTTP preset of [`Stack::http_builder`]. Each backend's id is its URL. Change
    /// any setting on the builder, add tiers with
    /// [`backend_with`](StackBuilder::backend_with), then `build()`.
    ///
    /// A URL that is not an absolute `http://` or `https://` URL is rejected, naming
    /// the field (`http.upstream.url`). `https://` needs a client with a TLS
    /// connector: build one and use [`Stack::http_builder`] with
    /// [`Upstream`](crate::http::Upstream) backends.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_fortify::BoxError> {
    /// use tower::{Service, ServiceExt};
    /// use tower_fortify::stack::Stack;
    ///
    /// let mut stack = Stack::http(["http://10.0.0.1:8080", "http://10.0.0.2:8080"])?.build()?;
    /// let req = http::Request::get("/health").body(String::new())?;
    /// let response = stack.ready().await?.call(req).await?;
    /// println!("{}", response.status());
    /// # Ok(()) }
    /// ```
    pub fn http<I>(
        urls: I,
    ) -> Result<
        StackBuilder<
            crate::http::Upstream<HttpClient<B>>,
            crate::http::HttpClassifier,
            crate::http::HttpReplay,
        >,
        crate::config::ConfigError,
    >
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let client: HttpClient<B> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let mut builder = Stack::http_builder();
        for url in urls {
            let url = url.as_ref();
            let upstream = crate::http::Upstream::new(client.clone(), url)?;
            builder = builder.backend(url, upstream);
        }
        Ok(builder)
    }
}

#[cfg(feature = "grpc")]
impl<S> Stack<S> {
    /// The recommended stack for gRPC backends (tonic `Channel`s, or any
    /// `Service<http::Request<ReplayBody<B>>>`): [`GrpcClassifier`](crate::grpc::GrpcClassifier)
    /// in every layer (`UNAVAILABLE` retryable, `RESOURCE_EXHAUSTED` load shedding
    /// with `grpc-retry-pushback-ms`, statuses in headers; statuses sent in trailers
    /// are judged at the end of the stream where a layer holds its verdict that long)
    /// and [`GrpcReplay`](crate::grpc::GrpcReplay) (streamed request bodies replayed
    /// within [`ReplayBody`](crate::http::ReplayBody)'s cap). Add the channels with
    /// [`backend`](StackBuilder::backend).
    pub fn grpc() -> StackBuilder<S, crate::grpc::GrpcClassifier, crate::grpc::GrpcReplay> {
        Stack::builder()
            .classifier(crate::grpc::GrpcClassifier::new())
            .replay(crate::grpc::GrpcReplay)
    }
}
