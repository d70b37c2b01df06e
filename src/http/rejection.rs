//! What a layer's refusal looks like on an HTTP response.

/// The `x-fortify-rejected` header: which layer refused a call and why
/// ([`Rejection::reason`](crate::guard::Rejection::reason)), so a client (or an
/// on-call engineer reading an access log) can tell a full bulkhead from an open
/// breaker.
pub const REJECTED_HEADER: &str = "x-fortify-rejected";
