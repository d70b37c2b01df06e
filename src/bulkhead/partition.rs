//! Partitions: shares of one pool (here), and one bulkhead per key
//! ([`KeyedBulkheadLayer`](super::KeyedBulkheadLayer), in `keyed.rs`).
//!
//! # Shares of one pool
//!
//! [`PartitionedBulkheadLayer`] divides one limit between named partitions, for example 90 %
//! for interactive traffic and 10 % for batch jobs. A function of the request picks
//! its partition. Each partition is **guaranteed** its share (`floor(limit × share)`,
//! at least 1): a call of a partition below its share is always admitted. A partition
//! at or above its share may **borrow** idle capacity while the pool as a whole is
//! below its limit, so batch jobs use the whole pool at night.
//!
//! Borrowed capacity is not taken back from running calls: when its owner returns, the
//! owner's calls are admitted at once (they are within their guarantee) and nobody
//! borrows again until the pool is back under its limit. The pool can therefore run
//! over its limit by at most the capacity that was lent out at that moment, for the
//! duration of the borrowed calls. Turn borrowing off
//! ([`PartitionedBulkheadBuilder::no_borrowing`]) for strict isolation: each partition is then
//! a bulkhead of its share, and the pool never exceeds its limit.
//!
//! A full partition rejects at once with [`BulkheadFull`] (partitions do not queue).
//! Each call costs a few atomic operations on counters shared by all callers of the
//! pool (they are not sharded, unlike a plain bulkhead's).
//!
//! ```
//! use std::convert::Infallible;
//! use tower::{service_fn, Layer, Service, ServiceExt};
//! use tower_fortify::bulkhead::partition::PartitionedBulkheadLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Requests are (is_batch, payload).
//! let layer = PartitionedBulkheadLayer::builder(100)
//!     .share("interactive", 0.9)
//!     .share("batch", 0.1)
//!     .build(|req: &(bool, u32)| usize::from(req.0))
//!     .unwrap();
//! let handle = layer.handle();
//! let mut svc = layer.layer(service_fn(|req: (bool, u32)| async move { Ok::<_, Infallible>(req.1) }));
//! assert_eq!(svc.ready().await.unwrap().call((true, 7)).await.unwrap(), 7);
//! assert_eq!(handle.guaranteed(1), 10);
//! # }
//! ```
//!
//!
//! # One bulkhead per key
//!
//! [`BulkheadBuilder::keyed`](super::BulkheadBuilder::keyed) gives every key (tenant,
//! route, host) a bulkhead of its own, configured like that builder (fixed or
//! adaptive, with or without a queue), so one noisy tenant fills only its own. The
//! key set is bounded by [`max_keys`](super::KeyedBulkheadBuilder::max_keys) (default
//! 1024), and kept fair by eviction like the keyed breaker's: when a new key arrives
//! at the bound, bulkheads idle for
//! [`idle_timeout`](super::KeyedBulkheadBuilder::idle_timeout) (default 5 min) are
//! evicted first, then the least recently used one with no call in flight (an evicted
//! key starts again with a fresh bulkhead). A bulkhead with calls in flight is never
//! evicted, which would let its key run a second bulkhead's worth beside them: when
//! every bulkhead is busy, the new key shares one *overflow* bulkhead of the same
//! configuration (observable through
//! [`KeyedBulkheadHandle::overflow`](super::KeyedBulkheadHandle::overflow)) until one
//! frees up. So the first `max_keys` tenants do not keep their bulkheads for the life
//! of the process, and an attacker who invents keys gets one bulkhead's worth of
//! capacity, not unbounded memory. Looking a key up reads the service's snapshot of
//! the map without a lock (one atomic load checks that it is current), hashes the key
//! with a cheap seeded hash and clones its bulkhead's `Arc`; no clock read unless the
//! key is new or the map changed since. Measured with callgrind: 1.4× a plain
//! [`Bulkhead`](super::Bulkhead) call over a bare service.
//!
//! ```
//! use std::convert::Infallible;
//! use tower::{service_fn, Layer, Service, ServiceExt};
//! use tower_fortify::bulkhead::BulkheadLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Requests are (tenant, payload); 5 calls in flight per tenant, 1000 tenants.
//! let layer = BulkheadLayer::builder()
//!     .max_concurrent(5)
//!     .keyed(|req: &(&'static str, u32)| req.0)
//!     .max_keys(1000)
//!     .build()
//!     .unwrap();
//! let handle = layer.handle();
//! let mut svc = layer.layer(service_fn(|req: (&str, u32)| async move { Ok::<_, Infallible>(req.1) }));
//! assert_eq!(svc.ready().await.unwrap().call(("acme", 1)).await.unwrap(), 1);
//! assert_eq!(handle.get(&"acme").unwrap().limit(), 5);
//! # }
//! ```

use super::error::BulkheadFull;
use crate::BoxError;
use crate::classify::DefaultClassifier;
use crate::config::{ConfigError, check_range};
use crate::observe::{BulkheadEvent, Event, Listener, Listeners};
use crate::shard::Padded;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::task::{Context, Poll, ready};
use tower_layer::Layer;
use tower_service::Service;

/// The keyed bulkhead's old name.
#[deprecated(
    since = "0.1.0",
    note = "renamed `bulkhead::KeyedBulkheadLayer`, made by `BulkheadBuilder::keyed`"
)]
pub type KeyedLayer<K, F, C = DefaultClassifier> = super::KeyedBulkheadLayer<K, F, C>;
/// The keyed bulkhead handle's old name.
#[deprecated(since = "0.1.0", note = "renamed `bulkhead::KeyedBulkheadHandle`")]
pub type KeyedHandle<K, C = DefaultClassifier> = super::KeyedBulkheadHandle<K, C>;
/// The keyed bulkhead service's old name.
#[deprecated(since = "0.1.0", note = "renamed `bulkhead::KeyedBulkhead`")]
pub type Keyed<S, K, F, C = DefaultClassifier> = super::KeyedBulkhead<S, K, F, C>;
/// The partitioned pool's builder's old name.
#[deprecated(since = "0.1.0", note = "renamed `PartitionedBulkheadBuilder`")]
pub type PartitionedBuilder = PartitionedBulkheadBuilder;
/// The partitioned pool's layer's old name.
#[deprecated(since = "0.1.0", note = "renamed `PartitionedBulkheadLayer`")]
pub type PartitionedLayer<F> = PartitionedBulkheadLayer<F>;
/// The partitioned pool's handle's old name.
#[deprecated(since = "0.1.0", note = "renamed `PartitionedBulkheadHandle`")]
pub type PartitionedHandle = PartitionedBulkheadHandle;
/// The partitioned pool's service's old name.
#[deprecated(since = "0.1.0", note = "renamed `PartitionedBulkhead`")]
pub type Partitioned<S, F> = PartitionedBulkhead<S, F>;

// ----- shares of one pool -------------------------------------------------------

#[derive(Debug)]
struct Part {
    name: &'static str,
    guaranteed: usize,
    in_flight: Padded<AtomicUsize>,
}

#[derive(Debug)]
struct Pool {
    limit: usize,
    borrowing: bool,
    total: Padded<AtomicUsize>,
    parts: Box<[Part]>,
    rejected: AtomicU64,
    listeners: Listeners,
}

impl Pool {
    fn acquire(&self, i: usize) -> bool {
        let part = &self.parts[i];
        let mut n = part.in_flight.load(Acquire);
        while n < part.guaranteed {
            match part
                .in_flight
                .compare_exchange_weak(n, n + 1, AcqRel, Acquire)
            {
                Ok(_) => {
                    self.total.fetch_add(1, AcqRel);
                    return true;
                }
                Err(actual) => n = actual,
            }
        }
        if !self.borrowing {
            return false;
        }
        let mut t = self.total.load(Acquire);
        while t < self.limit {
            match self.total.compare_exchange_weak(t, t + 1, AcqRel, Acquire) {
                Ok(_) => {
                    part.in_flight.fetch_add(1, AcqRel);
                    return true;
                }
                Err(actual) => t = actual,
            }
        }
        false
    }

    fn release(&self, i: usize) {
        self.parts[i].in_flight.fetch_sub(1, AcqRel);
        self.total.fetch_sub(1, AcqRel);
    }
}

/// A permit of one partition; returned on drop.
struct PartitionPermit {
    pool: Arc<Pool>,
    part: usize,
}

impl Drop for PartitionPermit {
    fn drop(&mut self) {
        self.pool.release(self.part);
    }
}

/// Builds a [`PartitionedBulkheadLayer`]; see the [module docs](self).
pub struct PartitionedBulkheadBuilder {
    settings: Settings,
}

/// A [`PartitionedBulkheadBuilder`]'s settings, as one value (as every builder
/// keeps them).
struct Settings {
    max_concurrent: usize,
    shares: Vec<(&'static str, f64)>,
    borrowing: bool,
    listeners: Listeners,
}

impl fmt::Debug for PartitionedBulkheadBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("PartitionedBulkheadBuilder")
            .field("max_concurrent", &s.max_concurrent)
            .field("shares", &s.shares)
            .field("borrowing", &s.borrowing)
            .finish_non_exhaustive()
    }
}

impl PartitionedBulkheadBuilder {
    /// Adds a partition with a share of the pool in `0 < share <= 1`. Partitions are
    /// numbered in the order they are added, from 0; the shares may add up to at most 1
    /// (what is left is capacity nobody is guaranteed).
    pub fn share(mut self, name: &'static str, share: f64) -> Self {
        self.settings.shares.push((name, share));
        self
    }

    /// Whether a partition may use idle capacity beyond its share (default `true`).
    pub fn borrowing(mut self, borrowing: bool) -> Self {
        self.settings.borrowing = borrowing;
        self
    }

    /// Strict isolation: no partition uses capacity beyond its share (the same as
    /// `borrowing(false)`; "off" is spelled `no_*` in every builder).
    pub fn no_borrowing(self) -> Self {
        self.borrowing(false)
    }

    /// Sends [`BulkheadEvent::Rejected`] events to `listener`.
    /// Listeners add up: each one registered gets every event.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.settings.listeners = std::mem::take(&mut self.settings.listeners).with(listener);
        self
    }

    /// Checks the configuration and builds the layer; `pick` maps a request to its
    /// partition's number (a number past the last partition means the last one).
    pub fn build<F>(self, pick: F) -> Result<PartitionedBulkheadLayer<F>, ConfigError> {
        let s = self.settings;
        if s.max_concurrent == 0 {
            return Err(ConfigError::new(
                "bulkhead.max_concurrent",
                "must be at least 1",
            ));
        }
        if s.shares.is_empty() {
            return Err(ConfigError::new(
                "bulkhead.partition.share",
                "add at least one partition",
            ));
        }
        let mut sum = 0.0;
        for (_, share) in &s.shares {
            check_range("bulkhead.partition.share", *share, 0.0, 1.0)?;
            if *share == 0.0 {
                return Err(ConfigError::new(
                    "bulkhead.partition.share",
                    "must be greater than zero",
                ));
            }
            sum += share;
        }
        if sum > 1.0 + 1e-9 {
            return Err(ConfigError::new(
                "bulkhead.partition.share",
                format!("the shares add up to {sum}, more than 1"),
            ));
        }
        let parts = s
            .shares
            .iter()
            .map(|(name, share)| Part {
                name,
                guaranteed: ((s.max_concurrent as f64 * share).floor() as usize).max(1),
                in_flight: Padded(AtomicUsize::new(0)),
            })
            .collect();
        Ok(PartitionedBulkheadLayer {
            pool: Arc::new(Pool {
                limit: s.max_concurrent,
                borrowing: s.borrowing,
                total: Padded(AtomicUsize::new(0)),
                parts,
                rejected: AtomicU64::new(0),
                listeners: s.listeners,
            }),
            pick,
        })
    }
}

/// Wraps services in [`PartitionedBulkhead`]; see the [module docs](self).
pub struct PartitionedBulkheadLayer<F> {
    pool: Arc<Pool>,
    pick: F,
}

impl<F: Clone> Clone for PartitionedBulkheadLayer<F> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            pick: self.pick.clone(),
        }
    }
}

impl<F> fmt::Debug for PartitionedBulkheadLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedBulkheadLayer")
            .field("limit", &self.pool.limit)
            .finish_non_exhaustive()
    }
}

impl PartitionedBulkheadLayer<()> {
    /// A builder for a pool of `max_concurrent` calls; add partitions with
    /// [`share`](PartitionedBulkheadBuilder::share).
    pub fn builder(max_concurrent: usize) -> PartitionedBulkheadBuilder {
        PartitionedBulkheadBuilder {
            settings: Settings {
                max_concurrent,
                shares: Vec::new(),
                borrowing: true,
                listeners: Listeners::default(),
            },
        }
    }
}

impl<F> PartitionedBulkheadLayer<F> {
    /// A handle on the pool.
    pub fn handle(&self) -> PartitionedBulkheadHandle {
        PartitionedBulkheadHandle {
            pool: self.pool.clone(),
        }
    }
}

impl<S, F: Clone> Layer<S> for PartitionedBulkheadLayer<F> {
    type Service = PartitionedBulkhead<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        PartitionedBulkhead {
            inner,
            pool: self.pool.clone(),
            pick: self.pick.clone(),
        }
    }
}

/// Reads a partitioned pool: calls in flight per partition and in all.
#[derive(Clone)]
pub struct PartitionedBulkheadHandle {
    pool: Arc<Pool>,
}

impl fmt::Debug for PartitionedBulkheadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedBulkheadHandle")
            .field("limit", &self.pool.limit)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl PartitionedBulkheadHandle {
    /// The pool's limit.
    pub fn limit(&self) -> usize {
        self.pool.limit
    }

    /// Calls in flight in all partitions.
    pub fn in_flight(&self) -> usize {
        self.pool.total.load(Acquire)
    }

    /// Calls in flight in partition `i` (0 past the last partition).
    pub fn partition_in_flight(&self, i: usize) -> usize {
        self.pool
            .parts
            .get(i)
            .map_or(0, |p| p.in_flight.load(Acquire))
    }

    /// The capacity partition `i` is guaranteed (0 past the last partition).
    pub fn guaranteed(&self, i: usize) -> usize {
        self.pool.parts.get(i).map_or(0, |p| p.guaranteed)
    }

    /// The name of partition `i`.
    pub fn name(&self, i: usize) -> Option<&'static str> {
        self.pool.parts.get(i).map(|p| p.name)
    }

    /// Calls rejected so far, in all partitions.
    pub fn rejected(&self) -> u64 {
        self.pool.rejected.load(Relaxed)
    }
}

/// Bounds calls per partition of one pool. Made by a [`PartitionedBulkheadLayer`].
///
/// `poll_ready` passes on the inner service's readiness; `call` admits the call in its
/// partition or returns a ready future with [`BulkheadFull`].
pub struct PartitionedBulkhead<S, F> {
    inner: S,
    pool: Arc<Pool>,
    pick: F,
}

impl<S: Clone, F: Clone> Clone for PartitionedBulkhead<S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            pool: self.pool.clone(),
            pick: self.pick.clone(),
        }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for PartitionedBulkhead<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedBulkhead")
            .field("inner", &self.inner)
            .field("limit", &self.pool.limit)
            .finish_non_exhaustive()
    }
}

impl<S, F, Req> Service<Req> for PartitionedBulkhead<S, F>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    F: Fn(&Req) -> usize,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = PartitionedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let part = (self.pick)(&req).min(self.pool.parts.len() - 1);
        if self.pool.acquire(part) {
            let permit = PartitionPermit {
                pool: self.pool.clone(),
                part,
            };
            return PartitionedFuture {
                fut: Some(self.inner.call(req)),
                permit: Some(permit),
                error: None,
            };
        }
        let pool = &self.pool;
        pool.rejected.fetch_add(1, Relaxed);
        let error = BulkheadFull {
            limit: pool.parts[part].guaranteed,
            in_flight: pool.parts[part].in_flight.load(Acquire),
            queued: 0,
            waited: false,
            name: pool.listeners.name_arc(),
        };
        tracing::debug!(
            target: "tower_fortify::bulkhead",
            partition = pool.parts[part].name,
            in_flight = error.in_flight,
            "call rejected"
        );
        pool.listeners.emit(|| {
            Event::Bulkhead(BulkheadEvent::Rejected {
                limit: error.limit,
                in_flight: error.in_flight,
                queued: 0,
            })
        });
        PartitionedFuture {
            fut: None,
            permit: None,
            error: Some(error),
        }
    }
}

pin_project! {
    /// The future returned by [`PartitionedBulkhead`]: the inner response, or
    /// [`BulkheadFull`]. Holds the partition's permit until the inner future completes;
    /// dropping it returns the permit.
    pub struct PartitionedFuture<F> {
        #[pin]
        fut: Option<F>,
        permit: Option<PartitionPermit>,
        error: Option<BulkheadFull>,
    }
}

impl<F> fmt::Debug for PartitionedFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedFuture")
            .field("holds_permit", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for PartitionedFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.fut.as_pin_mut() {
            Some(fut) => {
                let result = ready!(fut.poll(cx));
                *this.permit = None;
                Poll::Ready(result.map_err(Into::into))
            }
            None => {
                let error = this.error.take().expect("polled after completion");
                Poll::Ready(Err(Box::new(error)))
            }
        }
    }
}
