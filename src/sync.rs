//! The synchronisation primitives of the lock-free state: std's, or loom's when the
//! crate is built with `RUSTFLAGS="--cfg tower_fortify_loom"` for the concurrency
//! models.
//!
//! Only the state a model explores goes through here (the bulkhead limiter's counters
//! and queue, the breaker's state word and slow-path lock); `Ordering` is std's in
//! both cases. Run the models with
//! `RUSTFLAGS="--cfg tower_fortify_loom" cargo test --release --lib loom`.
//!
//! Why not the usual `--cfg loom`: tokio reads that flag too, even as a dependency,
//! and drops `tokio::net` under it, which breaks the dev-dependencies (hyper-util)
//! that every `cargo test` builds. A flag of our own (crossbeam's `crossbeam_loom`
//! pattern) changes only this crate.

// Each layer feature uses some of these.
#![allow(unused_imports)]

#[cfg(tower_fortify_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};
#[cfg(tower_fortify_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(tower_fortify_loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(tower_fortify_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Where the code relies on sequentially consistent accesses for a store-then-load
/// handshake (each side writes its own word, then reads the other's): C11 already
/// orders them, but loom models `SeqCst` accesses as `AcqRel` only and would report
/// false alarms. Under loom, a `SeqCst` fence (which loom models) stands in for that
/// guarantee, so the model checks the handshake's logic; otherwise this is nothing.
#[cfg_attr(not(feature = "bulkhead"), allow(dead_code))]
#[inline(always)]
pub(crate) fn seqcst_handshake() {
    #[cfg(tower_fortify_loom)]
    loom::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}
