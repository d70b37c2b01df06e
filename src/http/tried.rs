//! Attempt-aware routing for `http::Request`s.

use crate::failover::{Tried, TriedAccess};

/// Reads a [`Tried`] set from an `http::Request`'s extensions. Pair it with
/// [`HttpReplay`](super::HttpReplay), which copies extensions to every attempt.
///
/// ```
/// use tower_fortify::failover::Tried;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(Tried::new());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpTried;

impl<B> TriedAccess<http::Request<B>> for HttpTried {
    #[inline]
    fn tried<'a>(&self, req: &'a http::Request<B>) -> Option<&'a Tried> {
        req.extensions().get::<Tried>()
    }
}
