//! Failover routing (in progress).
