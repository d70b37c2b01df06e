use std::time::Duration;

/// What the retry layer decided. `attempt` counts from 1 (the first try).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RetryEvent {
    /// An attempt was sent to the inner service.
    AttemptSent {
        /// Which attempt (1 is the first try).
        attempt: u32,
    },
    /// The last attempt failed and another will be sent after `delay`.
    RetryScheduled {
        /// The attempt that failed.
        attempt: u32,
        /// How long the layer waits before the next attempt.
        delay: Duration,
        /// Whether the delay came from the backoff or from the server.
        cause: DelayCause,
    },
    /// The last attempt failed and will not be retried.
    RetrySkipped {
        /// The attempt that failed.
        attempt: u32,
        /// Why no retry follows.
        reason: SkipReason,
    },
    /// The request is finished: its final result is being returned.
    Finished {
        /// How many attempts were sent in all.
        attempts: u32,
        /// Whether the final result was classified as a success.
        success: bool,
    },
}

impl RetryEvent {
    /// The kind of event, `"Retry(Variant)"` (for example `"Retry(AttemptSent)"`):
    /// the layer and the variant without the fields, a fixed string for counting
    /// events by kind. See [`Event::kind`](super::Event::kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AttemptSent { .. } => "Retry(AttemptSent)",
            Self::RetryScheduled { .. } => "Retry(RetryScheduled)",
            Self::RetrySkipped { .. } => "Retry(RetrySkipped)",
            Self::Finished { .. } => "Retry(Finished)",
        }
    }
}

/// Where a retry delay came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DelayCause {
    /// The configured backoff.
    Backoff,
    /// A server hint (`Retry-After`, `grpc-retry-pushback-ms`).
    ServerHint,
}

/// Why a failed attempt was not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The classifier called the failure not retryable.
    NotRetryable,
    /// The server said not to retry.
    ServerSaidNo,
    /// The maximum number of attempts was reached.
    MaxAttempts,
    /// The retry budget is spent.
    Budget,
    /// The next attempt could not start before the deadline: its backoff would end
    /// past it, or the inner service was not ready by then.
    Deadline,
    /// The server asked for a longer delay than the layer accepts.
    HintTooLong,
    /// The request cannot be replayed.
    NotReplayable,
    /// Retries were disabled for this request.
    Disabled,
}

impl SkipReason {
    /// A short, stable name, used as the `reason` field of tracing events.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotRetryable => "not_retryable",
            SkipReason::ServerSaidNo => "server_said_no",
            SkipReason::MaxAttempts => "max_attempts",
            SkipReason::Budget => "budget",
            SkipReason::Deadline => "deadline",
            SkipReason::HintTooLong => "hint_too_long",
            SkipReason::NotReplayable => "not_replayable",
            SkipReason::Disabled => "disabled",
        }
    }
}
