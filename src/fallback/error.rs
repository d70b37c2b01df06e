//! The fallback layer's errors: it adds none of its own.
//!
//! Every layer has an `error` module, so that a caller looks for a layer's errors in
//! one place. The fallback layer's is empty on purpose: the layer is typed, its error
//! is the inner service's, and what a strategy returns instead of an answer (an `Err`
//! from [`FallbackLayer::from_failure`](super::FallbackLayer::from_failure), a backup
//! service's error converted with `Into`) is that same type. The layers around it
//! therefore convert errors exactly as they would without it.
