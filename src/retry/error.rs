//! The retry layer's errors: it adds none of its own.
//!
//! Every layer has an `error` module, so that a caller looks for a layer's errors in
//! one place. The retry layer's is empty on purpose: a request that runs out of
//! attempts, budget or deadline, or meets a "do not retry" hint, returns its last
//! attempt's result, which is the inner service's own response or error. A caller
//! therefore handles a failure the same way with or without retries, and the error
//! it downcasts is the one the layer below returned (an open breaker's
//! `CircuitOpen`, a timeout's `Elapsed`, a transport error). Why retries stopped is
//! reported as a [`RetryEvent`](crate::observe::RetryEvent), not as an error.
