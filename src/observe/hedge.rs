use std::time::Duration;

/// What the hedging layer decided. `hedge` counts from 1 (the first extra copy; the
/// original request is attempt 0).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum HedgeEvent {
    /// A hedge (an extra copy of a request still in flight) was sent.
    HedgeSent {
        /// Which hedge (1 is the first).
        hedge: u32,
        /// How long after the original the hedge was sent.
        after: Duration,
    },
    /// The delay passed but no hedge was sent.
    HedgeSkipped {
        /// Which hedge it would have been.
        hedge: u32,
        /// Why not.
        reason: HedgeSkipReason,
    },
    /// The request is finished: the winner's result is being returned and every
    /// other copy cancelled.
    Finished {
        /// How many hedges were sent.
        hedges: u32,
        /// Which copy answered: 0 the original, 1 the first hedge, ...
        winner: u32,
        /// Whether the answer was classified as a success.
        success: bool,
    },
}

impl HedgeEvent {
    /// The kind of event, `"Hedge(Variant)"`, a fixed string for counting events by
    /// kind. See [`Event::kind`](super::Event::kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::HedgeSent { .. } => "Hedge(HedgeSent)",
            Self::HedgeSkipped { .. } => "Hedge(HedgeSkipped)",
            Self::Finished { .. } => "Hedge(Finished)",
        }
    }
}

/// Why a hedge was not sent when its delay passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HedgeSkipReason {
    /// The budget is spent.
    Budget,
    /// The request's deadline has passed or falls before the hedge could start.
    Deadline,
    /// The request can no longer be copied.
    NotReplayable,
    /// The inner service failed while being readied for the hedge.
    NotReady,
}

impl HedgeSkipReason {
    /// A short, stable name, used as the `reason` field of tracing events.
    pub fn as_str(self) -> &'static str {
        match self {
            HedgeSkipReason::Budget => "budget",
            HedgeSkipReason::Deadline => "deadline",
            HedgeSkipReason::NotReplayable => "not_replayable",
            HedgeSkipReason::NotReady => "not_ready",
        }
    }
}
