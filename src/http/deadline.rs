//! Deadline propagation over HTTP and gRPC: the caller's remaining time travels in a
//! header, and the server's own outgoing calls honour it.
//!
//! * **Client side:** [`PropagateDeadlineLayer`], right above the HTTP client (a
//!   backend of a [`Stack`](crate::stack::Stack), a tonic `Channel`), writes what is
//!   left of the request's deadline — the deadline in scope
//!   ([`current_deadline`](crate::timeout::current_deadline)), or a
//!   [`RequestDeadline`] in the request's extensions, whichever is earlier — as
//!   `grpc-timeout` ([`grpc`](PropagateDeadlineLayer::grpc), tonic's format: at most
//!   eight digits and a unit, `100m`) or as an HTTP header
//!   ([`http`](PropagateDeadlineLayer::http), [`DEADLINE_HEADER`] by default).
//! * **Server side:** [`InheritDeadlineLayer`] (on an axum `Router`, a tonic
//!   `Server`, any `Service<http::Request<B>>`) reads both headers, keeps the earlier,
//!   puts a [`RequestDeadline`] in the request's extensions and runs the handler with
//!   that deadline in scope, so every [`Stack`](crate::stack::Stack),
//!   [`DeadlineLayer`](crate::timeout::DeadlineLayer), retry and hedging layer the
//!   handler calls through keeps the earlier of its own deadline and the caller's,
//!   and starts no attempt past it. A caller that gave up is not served twice over.
//!
//! Malformed, duplicated or out-of-range values are ignored (the request then has no
//! inherited deadline); the parsers never panic (property-tested).
//!
//! ## Why `x-fortify-deadline-ms`
//!
//! The HTTP header carries the *remaining time in whole milliseconds*, as
//! `grpc-timeout` and Envoy's `x-envoy-expected-rq-timeout-ms` do, never an absolute
//! time: two hosts' clocks disagree by more than the deadlines involved. The name is
//! this crate's own so that no proxy on the path strips or rewrites it as one of its
//! own headers (Envoy sanitises `x-envoy-*` from untrusted callers); a server behind
//! Envoy can read Envoy's header instead with
//! [`InheritDeadlineLayer::header`].
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_fortify::BoxError;
//! use tower_fortify::http::InheritDeadlineLayer;
//! use tower_fortify::timeout::current_deadline;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let handler = service_fn(|_req: http::Request<String>| async move {
//!     // Every Stack or DeadlineLayer called from here keeps this deadline.
//!     let left = current_deadline().unwrap() - tokio::time::Instant::now();
//!     Ok::<_, BoxError>(http::Response::new(format!("{} ms left", left.as_millis())))
//! });
//! let server = ServiceBuilder::new().layer(InheritDeadlineLayer::new()).service(handler);
//! let req = http::Request::get("/").header("grpc-timeout", "250m").body(String::new())?;
//! let res = server.oneshot(req).await?;
//! assert_eq!(res.body(), "250 ms left");
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

/// The gRPC deadline header.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The HTTP deadline header this crate writes and reads by default: the caller's
/// remaining time in whole milliseconds (see the [module docs](self) for why).
pub const DEADLINE_HEADER: HeaderName = HeaderName::from_static("x-fortify-deadline-ms");

/// The longest inherited deadline honoured (about 3 years, longer than
/// `grpc-timeout` can say): longer values are ignored, not clamped.
pub const MAX_INHERITED: Duration = Duration::from_secs(100_000_000);

/// The deadline of the request being served, in its extensions, as set by
/// [`InheritDeadlineLayer`]; [`PropagateDeadlineLayer`] also reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestDeadline(pub Instant);

impl RequestDeadline {
    /// When the deadline falls.
    pub fn at(&self) -> Instant {
        self.0
    }

    /// The time left until it, zero once it passed.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// Parses a `grpc-timeout` value: one to eight ASCII digits and a unit (`H`, `M`,
/// `S`, `m`, `u`, `n`). Anything else is `None`.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::http::parse_grpc_timeout;
///
/// assert_eq!(parse_grpc_timeout(b"100m"), Some(Duration::from_millis(100)));
/// assert_eq!(parse_grpc_timeout(b"2S"), Some(Duration::from_secs(2)));
/// assert_eq!(parse_grpc_timeout(b"123456789m"), None); // nine digits
/// assert_eq!(parse_grpc_timeout(b"-1m"), None);
/// ```
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    let d = match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    };
    Some(d)
}

/// Formats a duration as a `grpc-timeout` value in the finest unit that fits eight
/// digits, rounding down (a deadline sent a little short is safe; one sent long is
/// not).
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::http::format_grpc_timeout;
///
/// assert_eq!(format_grpc_timeout(Duration::from_millis(250)), "250000u");
/// assert_eq!(format_grpc_timeout(Duration::from_secs(3600 * 24 * 365)), "31536000S");
/// ```
pub fn format_grpc_timeout(d: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = d.as_nanos();
    let (n, unit) = [
        (1u128, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ]
    .into_iter()
    .map(|(per, unit)| (nanos / per, unit))
    .find(|&(n, _)| n <= MAX)
    .unwrap_or((MAX, 'H'));
    let mut buf = itoa_buf(n as u64);
    buf.push(unit);
    HeaderValue::from_str(&buf).expect("digits and a unit are a valid header value")
}

fn itoa_buf(n: u64) -> String {
    let mut s = String::with_capacity(10);
    use fmt::Write;
    let _ = write!(s, "{n}");
    s
}

/// Parses the HTTP deadline header's value: whole milliseconds, ASCII digits only
/// (at most 12). Anything else is `None`.
pub fn parse_deadline_ms(value: &[u8]) -> Option<Duration> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 12 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ms = value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(Duration::from_millis(ms))
}

/// The one value of a header, `None` if absent or repeated.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let v = values.next()?;
    values.next().is_none().then_some(v)
}

/// The remaining time a request's headers give: the earlier of `grpc-timeout` and
/// `header`, each ignored when malformed, repeated or past [`MAX_INHERITED`].
pub fn inherited_timeout(headers: &HeaderMap, header: &HeaderName) -> Option<Duration> {
    let grpc = single(headers, &GRPC_TIMEOUT).and_then(|v| parse_grpc_timeout(v.as_bytes()));
    let http = single(headers, header).and_then(|v| parse_deadline_ms(v.as_bytes()));
    [grpc, http]
        .into_iter()
        .flatten()
        .filter(|d| *d <= MAX_INHERITED)
        .min()
}

/// Reads the caller's deadline from `grpc-timeout` and the HTTP deadline header, and
/// serves the request with it in scope and in its extensions. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct InheritDeadlineLayer {
    header: HeaderName,
}

impl Default for InheritDeadlineLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl InheritDeadlineLayer {
    /// Reads `grpc-timeout` and [`DEADLINE_HEADER`].
    pub fn new() -> Self {
        Self {
            header: DEADLINE_HEADER,
        }
    }

    /// Reads `grpc-timeout` and `header` (milliseconds) instead of
    /// [`DEADLINE_HEADER`]; for instance Envoy's `x-envoy-expected-rq-timeout-ms`.
    pub fn header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }
}

impl<S> Layer<S> for InheritDeadlineLayer {
    type Service = InheritDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InheritDeadline {
            inner,
            header: self.header.clone(),
        }
    }
}

/// The service of [`InheritDeadlineLayer`].
#[derive(Debug, Clone)]
pub struct InheritDeadline<S> {
    inner: S,
    header: HeaderName,
}

impl<S> InheritDeadline<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B> Service<Request<B>> for InheritDeadline<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InheritFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let at = inherited_timeout(req.headers(), &self.header)
            .and_then(|d| Instant::now().checked_add(d));
        if let Some(at) = at {
            tracing::trace!(
                target: "tower_fortify::deadline",
                remaining_ms = at.saturating_duration_since(Instant::now()).as_millis() as u64,
                "inherited deadline"
            );
            req.extensions_mut().insert(RequestDeadline(at));
        }
        let fut = crate::scope::enter(at, || self.inner.call(req));
        InheritFuture { fut, at }
    }
}

pin_project! {
    /// The future of [`InheritDeadline`]: the handler's, polled with the inherited
    /// deadline in scope.
    #[derive(Debug)]
    pub struct InheritFuture<F> {
        #[pin]
        fut: F,
        at: Option<Instant>,
    }
}

impl<F: Future> Future for InheritFuture<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        crate::scope::enter(*this.at, || this.fut.poll(cx))
    }
}

/// Which header [`PropagateDeadlineLayer`] writes.
#[derive(Debug, Clone)]
enum Format {
    Grpc,
    Millis(HeaderName),
}

/// Writes what is left of the request's deadline on each outgoing request. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct PropagateDeadlineLayer {
    format: Format,
}

impl PropagateDeadlineLayer {
    /// Writes `grpc-timeout` (for a tonic `Channel` or any gRPC client).
    pub fn grpc() -> Self {
        Self {
            format: Format::Grpc,
        }
    }

    /// Writes [`DEADLINE_HEADER`] in whole milliseconds, rounded down.
    pub fn http() -> Self {
        Self::header(DEADLINE_HEADER)
    }

    /// Writes `header` in whole milliseconds, rounded down.
    pub fn header(header: HeaderName) -> Self {
        Self {
            format: Format::Millis(header),
        }
    }
}

impl<S> Layer<S> for PropagateDeadlineLayer {
    type Service = PropagateDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PropagateDeadline {
            inner,
            format: self.format.clone(),
        }
    }
}

/// The service of [`PropagateDeadlineLayer`].
#[derive(Debug, Clone)]
pub struct PropagateDeadline<S> {
    inner: S,
    format: Format,
}

impl<S> PropagateDeadline<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B> Service<Request<B>> for PropagateDeadline<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        let ext = req.extensions().get::<RequestDeadline>().map(|d| d.0);
        if let Some(at) = crate::scope::earliest(crate::scope::current(), ext) {
            let left = at.saturating_duration_since(Instant::now());
            let (name, value) = match &self.format {
                Format::Grpc => (GRPC_TIMEOUT, format_grpc_timeout(left)),
                Format::Millis(name) => (name.clone(), HeaderValue::from(left.as_millis() as u64)),
            };
            req.headers_mut().insert(name, value);
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units_and_limits() {
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout(b"3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout(b"7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            parse_grpc_timeout(b"99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in [
            &b""[..],
            b"m",
            b"10",
            b"10x",
            b" 10m",
            b"1.5S",
            b"+1S",
            b"10mm",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
        assert_eq!(format_grpc_timeout(Duration::from_nanos(5)), "5n");
        assert_eq!(format_grpc_timeout(Duration::from_secs(5)), "5000000u");
        assert_eq!(format_grpc_timeout(Duration::MAX), "99999999H");
    }

    #[test]
    fn deadline_ms_and_duplicates() {
        assert_eq!(parse_deadline_ms(b"250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_deadline_ms(b"-5"), None);
        assert_eq!(parse_deadline_ms(b"9999999999999"), None);
        let mut h = HeaderMap::new();
        h.append(DEADLINE_HEADER, HeaderValue::from_static("100"));
        h.insert(GRPC_TIMEOUT, HeaderValue::from_static("50m"));
        assert_eq!(
            inherited_timeout(&h, &DEADLINE_HEADER),
            Some(Duration::from_millis(50))
        );
        h.append(GRPC_TIMEOUT, HeaderValue::from_static("10m"));
        assert_eq!(
            inherited_timeout(&h, &DEADLINE_HEADER),
            Some(Duration::from_millis(100)),
            "a repeated grpc-timeout is ignored"
        );
    }
}
