//! The hedge layer's errors: it adds none of its own.
//!
//! Every layer has an `error` module, so that a caller looks for a layer's errors in
//! one place. The hedge layer's is empty on purpose: a hedged request returns the
//! first answer that is not a failure, or, when every copy failed, the last failure,
//! which is the inner service's own response or error. A hedge that was not sent (no
//! budget, a request the replay will not copy) changes nothing the caller sees; it is
//! reported as a [`HedgeEvent`](crate::observe::HedgeEvent).
