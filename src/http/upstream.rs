//! Pointing one HTTP client at one backend.

use std::task::{Context, Poll};

use http::uri::{Authority, Parts, PathAndQuery, Scheme, Uri};
use tower_service::Service;

use crate::config::ConfigError;

/// Sends every request to one backend: replaces the request URI's scheme and
/// authority with the backend's, keeping its path and query.
///
/// One client (a hyper-util `Client`, which pools connections by authority) can
/// serve every backend of a router this way: wrap a clone of it per backend.
/// [`Stack::http`](crate::stack::Stack::http) does this for a list of URLs.
///
/// ```
/// use tower::{service_fn, ServiceExt};
/// use tower_fortify::http::Upstream;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_fortify::BoxError> {
/// let client = service_fn(|req: http::Request<()>| async move {
///     Ok::<_, tower_fortify::BoxError>(req.uri().to_string())
/// });
/// let eu = Upstream::new(client, "http://10.0.0.1:8080")?;
/// let sent_to = eu.oneshot(http::Request::get("/orders?id=7").body(())?).await?;
/// assert_eq!(sent_to, "http://10.0.0.1:8080/orders?id=7");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Upstream<S> {
    inner: S,
    scheme: Scheme,
    authority: Authority,
}

impl<S> Upstream<S> {
    /// Points `client` at `url`, an absolute `http://` or `https://` URL with a host
    /// (a path in it is ignored). A URL that is not one is rejected, naming the
    /// field `http.upstream.url`.
    pub fn new(client: S, url: &str) -> Result<Self, ConfigError> {
        let (scheme, authority) = parse(url)?;
        Ok(Self {
            inner: client,
            scheme,
            authority,
        })
    }

    /// The backend's scheme and authority, as `scheme://host:port`.
    pub fn target(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// The client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

pub(crate) fn parse(url: &str) -> Result<(Scheme, Authority), ConfigError> {
    let bad = |why: &str| ConfigError::new("http.upstream.url", format!("`{url}` {why}"));
    let uri: Uri = url
        .parse()
        .map_err(|_| bad("is not a URL (expected http://host:port)"))?;
    let parts = uri.into_parts();
    let scheme = parts
        .scheme
        .ok_or_else(|| bad("has no scheme (expected http:// or https://)"))?;
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return Err(bad("is not an http:// or https:// URL"));
    }
    let authority = parts.authority.ok_or_else(|| bad("has no host"))?;
    Ok((scheme, authority))
}

impl<S, B> Service<http::Request<B>> for Upstream<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> S::Future {
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        self.inner.call(req)
    }
}
