//! The drill harness (in progress).
