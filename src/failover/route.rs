//! The routing table a router builds from health and membership, and the choice its
//! `poll_ready` made.

#[derive(Clone, Copy, Debug)]
pub(super) enum Choice {
    Backend(usize),
    Reject,
}

/// The routing table, rebuilt when health or membership changes. Clones share it
/// until one of them rebuilds it (their backend lists are in the same order).
#[derive(Default, Clone)]
pub(super) struct Route {
    pub(super) valid: bool,
    pub(super) version: u64,
    pub(super) next_expiry: u64,
    pub(super) reject: bool,
    /// How many tiers take traffic.
    pub(super) loaded: usize,
    pub(super) tiers: Vec<TierRoute>,
}

#[derive(Default, Clone)]
pub(super) struct TierRoute {
    /// Locals `start..end` belong to this tier.
    pub(super) start: usize,
    pub(super) end: usize,
    /// Cumulative share of traffic up to and including this tier, per million.
    pub(super) cum: u32,
    /// Indices of the members that may take traffic.
    pub(super) eligible: Vec<u32>,
}

pub(super) const MILLION: u32 = 1_000_000;

/// What polling one backend's readiness gave.
pub(super) enum Polled {
    Ready,
    Pending,
    Failed,
}
