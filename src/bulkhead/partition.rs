//! Partitions (todo).
