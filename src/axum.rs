//! axum integration (in progress).
