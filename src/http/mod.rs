//! HTTP and gRPC integration (in progress).
