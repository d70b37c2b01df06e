//! The rate limiter's events.

use std::time::Duration;

/// What a rate limiter decided, for calls over its limit (a call within the limit
/// sends no event), and what its Redis store did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RateLimitEvent {
    /// A call over the limit was rejected with
    /// [`RateLimited`](crate::rate_limit::RateLimited).
    Rejected {
        /// When the caller may come back.
        retry_after: Duration,
    },
    /// A call over the limit waits for its slot (within the builder's `max_wait`).
    Waiting {
        /// How long it waits.
        wait: Duration,
    },
    /// The Redis store stopped answering: calls are decided without it (`mode`:
    /// `local`, `open` or `closed`) until it answers again.
    RedisDown {
        /// How calls are decided meanwhile.
        mode: &'static str,
    },
    /// The Redis store answers again: the quota is shared again.
    RedisUp,
}

impl RateLimitEvent {
    /// The kind of event, such as `"RateLimit(Rejected)"`. See
    /// [`Event::kind`](super::Event::kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => "RateLimit(Rejected)",
            Self::Waiting { .. } => "RateLimit(Waiting)",
            Self::RedisDown { .. } => "RateLimit(RedisDown)",
            Self::RedisUp => "RateLimit(RedisUp)",
        }
    }
}
