//! Per-thread sharding for counters that every call touches.
//!
//! A counter that all worker threads increment bounces its cache line between cores,
//! and a second worker then makes every call slower instead of doubling throughput.
//! Counters on the success path are therefore split into cache-line-padded shards; a
//! thread always writes the same shard and readers (slow paths) add them up.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Number of shards. A power of two; more than the cores of most hosts that run one
/// service instance, few enough that summing them on a slow path is cheap.
#[cfg(not(tower_fortify_loom))]
pub(crate) const SHARDS: usize = 16;
/// Under loom, two shards: enough for a token to move between shards, few enough for
/// the models to finish.
#[cfg(tower_fortify_loom)]
pub(crate) const SHARDS: usize = 2;

/// Pads its content to a cache line of the target, as crossbeam measured them: 128
/// bytes on x86-64 (adjacent-line prefetchers pull pairs of 64-byte lines), aarch64
/// and powerpc64; 64 on most others. The type is crossbeam's.
pub(crate) type Padded<T> = crossbeam_utils::CachePadded<T>;

/// `Padded(value)`: the constructor keeps the spelling of the tuple struct this
/// module had before it used crossbeam's type, so the layers' code reads as before.
#[allow(non_snake_case)]
#[cfg_attr(
    not(any(
        feature = "retry",
        feature = "circuit-breaker",
        feature = "bulkhead",
        feature = "failover",
        feature = "http"
    )),
    allow(dead_code)
)]
#[inline]
pub(crate) const fn Padded<T>(value: T) -> Padded<T> {
    crossbeam_utils::CachePadded::new(value)
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The shard of the current thread, in `0..SHARDS`. Threads are assigned round robin
/// on first use, so the first `SHARDS` threads never share a shard.
#[inline]
pub(crate) fn index() -> usize {
    INDEX.with(|i| {
        let v = i.get();
        if v != usize::MAX {
            v
        } else {
            let v = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            i.set(v);
            v
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn index_is_stable_per_thread_and_in_range() {
        let a = super::index();
        assert_eq!(a, super::index());
        assert!(a < super::SHARDS);
        let b = std::thread::spawn(super::index).join().unwrap();
        assert!(b < super::SHARDS);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(std::mem::align_of::<super::Padded<u8>>(), 128);
        let p = super::Padded(7u8);
        assert_eq!(*p, 7);
    }
}
