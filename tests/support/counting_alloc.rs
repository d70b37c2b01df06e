//! The counting global allocator shared by the allocation tests (each test binary that
//! includes this module gets it as its global allocator).
//!
//! It counts the allocations and reallocations made by the *current thread* only: the
//! test harness and runtimes allocate on other threads at any time, and a count of
//! every thread would fail at random.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

/// Forwards to the system allocator and counts.
pub struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; the only extra
// work is a thread-local counter, which never allocates (const-initialised `Cell`).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        let _ = BYTES.try_with(|n| n.set(n.get() + layout.size() as u64));
        // SAFETY: the caller upholds `alloc`'s contract, which is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        let _ = BYTES.try_with(|n| n.set(n.get() + new_size as u64));
        // SAFETY: the caller upholds `realloc`'s contract, which is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (and reallocations) made by this thread so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Bytes requested by this thread's allocations and reallocations so far (a
/// reallocation counts its new size).
#[allow(dead_code)] // not every test binary that includes this module asks
pub fn allocated_bytes() -> u64 {
    BYTES.with(Cell::get)
}

#[test]
fn the_allocator_counts() {
    let before = allocations();
    drop(std::hint::black_box(Box::new(7u8)));
    assert_eq!(allocations() - before, 1, "one box is one allocation");
}
