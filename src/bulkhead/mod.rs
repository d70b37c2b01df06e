//! Bulkheads (in progress).
