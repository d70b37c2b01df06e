//! Runtime inspection and control of a router's backends.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;
use tower::discover::{Change, Discover};

use super::backend::Backend;
use super::core::Core;
use super::pool::{Node, Pool};
use crate::config::ConfigError;
use crate::observe::{EjectReason, Event, FailoverEvent};

/// Inspects and controls a router's backends at runtime: their state, load and
/// counts; manual ejection and restoration; adding and removing backends.
///
/// Made by [`Failover::handle`](super::Failover::handle). Every clone of the router
/// sees the changes (each picks up membership changes on its next `poll_ready`).
pub struct FailoverHandle<S> {
    core: Arc<Core<S>>,
}

impl<S> Clone for FailoverHandle<S> {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
        }
    }
}

impl<S> fmt::Debug for FailoverHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverHandle")
            .field("backends", &self.core.pool.lock_nodes().len())
            .finish()
    }
}

/// Whether a backend takes traffic, and if not, why.
///
/// Its `Debug` shows how long an ejection or hold-off has left (`Ejected { for: 1200
/// ms }`), not a raw instant.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendHealth {
    /// In rotation.
    Healthy,
    /// Ejected by outlier detection until the given time.
    Ejected {
        /// When the ejection ends.
        until: Instant,
    },
    /// Held out at its own request until the given time: a server hint
    /// (`Retry-After`) or, under [`BreakerAware`](super::BreakerAware), its circuit
    /// breaker is open. Not an outlier ejection: no failure was counted, and panic
    /// routing does not send to it either.
    HeldOff {
        /// When the hold-off ends.
        until: Instant,
    },
    /// Out of rotation because its active health checks fail (whether or not an
    /// outlier ejection is also in force).
    Unhealthy,
    /// Ejected by hand until restored.
    Disabled,
}

impl fmt::Debug for BackendHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let left = |until: &Instant| {
            crate::observe::Ms(until.saturating_duration_since(Instant::now())).to_string()
        };
        match self {
            BackendHealth::Healthy => f.write_str("Healthy"),
            BackendHealth::Ejected { until } => f
                .debug_struct("Ejected")
                .field("for", &format_args!("{}", left(until)))
                .finish(),
            BackendHealth::HeldOff { until } => f
                .debug_struct("HeldOff")
                .field("for", &format_args!("{}", left(until)))
                .finish(),
            BackendHealth::Unhealthy => f.write_str("Unhealthy"),
            BackendHealth::Disabled => f.write_str("Disabled"),
        }
    }
}

/// A snapshot of one backend.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackendStatus {
    /// Its id.
    pub id: Arc<str>,
    /// Its priority tier (0 is served first).
    pub tier: u32,
    /// Its weight in its tier.
    pub weight: u32,
    /// Whether it takes traffic.
    pub health: BackendHealth,
    /// On probation: its last ejection ended and it has not succeeded since; one
    /// failure ejects it again.
    pub probing: bool,
    /// Calls in flight.
    pub in_flight: u32,
    /// Calls that succeeded, in all.
    pub successes: u64,
    /// Calls that failed, in all (a failed `poll_ready` counts).
    pub failures: u64,
    /// Failures in a row now.
    pub consecutive_failures: u32,
    /// How many times it has been ejected, in all.
    pub ejections: u64,
    /// The ejection count that sets the next ejection's length (it shrinks while the
    /// backend stays healthy).
    pub ejection_level: u32,
}

impl<S> FailoverHandle<S> {
    pub(crate) fn new(core: Arc<Core<S>>) -> Self {
        Self { core }
    }

    fn pool(&self) -> &Pool {
        &self.core.pool
    }

    fn find(&self, id: &str) -> Option<Arc<Node>> {
        self.pool()
            .lock_nodes()
            .iter()
            .find(|n| &*n.id == id)
            .cloned()
    }

    /// Every backend's state, in the order they were added.
    pub fn backends(&self) -> Vec<BackendStatus> {
        let now = self.pool().now();
        let nodes: Vec<Arc<Node>> = self.pool().lock_nodes().clone();
        nodes.iter().map(|n| self.status(n, now)).collect()
    }

    /// One backend's state.
    pub fn backend(&self, id: &str) -> Option<BackendStatus> {
        let now = self.pool().now();
        self.find(id).map(|n| self.status(&n, now))
    }

    fn status(&self, n: &Node, now: u64) -> BackendStatus {
        let pool = self.pool();
        let (hot, cold) = (&n.hot, &n.cold);
        let health = if cold.manual.load(Ordering::Acquire) {
            BackendHealth::Disabled
        } else if !cold.probe_ok.load(Ordering::Acquire) {
            BackendHealth::Unhealthy
        } else if n.is_ejected(now) {
            BackendHealth::Ejected {
                until: pool.instant(cold.ejected_until.load(Ordering::Acquire)),
            }
        } else if n.is_held(now) {
            BackendHealth::HeldOff {
                until: pool.instant(cold.held_until.load(Ordering::Acquire)),
            }
        } else {
            BackendHealth::Healthy
        };
        BackendStatus {
            id: n.id.clone(),
            tier: n.tier(),
            weight: n.weight(),
            health,
            probing: health == BackendHealth::Healthy && cold.probation.load(Ordering::Relaxed),
            in_flight: hot.in_flight.load(Ordering::Relaxed),
            successes: hot.successes.load(Ordering::Relaxed),
            failures: hot.failures.load(Ordering::Relaxed),
            consecutive_failures: hot.consecutive.load(Ordering::Relaxed),
            ejections: cold.ejections.load(Ordering::Relaxed),
            ejection_level: n.effective_times(now, pool.cfg.base_ejection),
        }
    }

    /// Takes a backend out of rotation until [`restore`](Self::restore)d. Manual
    /// ejections are not limited by the maximum ejected percentage. Returns whether
    /// the backend exists.
    pub fn eject(&self, id: &str) -> bool {
        let Some(node) = self.find(id) else {
            return false;
        };
        if !node.cold.manual.swap(true, Ordering::AcqRel) {
            self.pool().bump();
            tracing::info!(
                target: "tower_fortify::failover",
                name = self.pool().listeners.name(),
                backend = id,
                "backend disabled by hand"
            );
            self.pool().listeners.emit(|| {
                Event::Failover(FailoverEvent::Ejected {
                    backend: node.id.clone(),
                    reason: EjectReason::Manual,
                    duration: std::time::Duration::MAX,
                })
            });
        }
        true
    }

    /// Puts a backend back into rotation now: ends a manual or outlier ejection and
    /// its probation (active health checks still decide on their own). Returns whether
    /// the backend exists.
    pub fn restore(&self, id: &str) -> bool {
        let Some(node) = self.find(id) else {
            return false;
        };
        let now = self.pool().now();
        let cold = &node.cold;
        cold.manual.store(false, Ordering::Release);
        if node.is_ejected(now) {
            cold.ejected_until.store(now, Ordering::Release);
        }
        if node.is_held(now) {
            cold.held_until.store(now, Ordering::Release);
        }
        cold.probation.store(false, Ordering::Relaxed);
        node.hot.consecutive.store(0, Ordering::Relaxed);
        self.pool().bump();
        tracing::info!(
            target: "tower_fortify::failover",
            name = self.pool().listeners.name(),
            backend = id,
            "backend restored by hand"
        );
        self.pool().listeners.emit(|| {
            Event::Failover(FailoverEvent::Restored {
                backend: node.id.clone(),
            })
        });
        true
    }

    /// Changes a backend's weight while it serves (at least 1): its share within its
    /// tier from the next selection on, its health and counters kept. Fails on a
    /// zero weight (`failover.backends.weight`) and on an unknown id
    /// (`failover.backends.id`).
    pub fn set_weight(&self, id: &str, weight: u32) -> Result<(), ConfigError> {
        if weight == 0 {
            return Err(ConfigError::new(
                "failover.backends.weight",
                format!("backend `{id}`: weights must be at least 1"),
            ));
        }
        let node = self.find(id).ok_or_else(|| unknown(id))?;
        let from = node.weight.swap(weight, Ordering::AcqRel);
        if from != weight {
            self.pool().bump();
            tracing::info!(
                target: "tower_fortify::failover",
                name = self.pool().listeners.name(),
                backend = id,
                from,
                to = weight,
                "backend weight changed"
            );
        }
        Ok(())
    }

    /// Moves a backend to another priority tier while it serves, its health, its
    /// ejections and its counters kept; each router clone sees the new tiers at its
    /// next call. Fails on an unknown id (`failover.backends.id`).
    pub fn set_tier(&self, id: &str, tier: u32) -> Result<(), ConfigError> {
        let node = self.find(id).ok_or_else(|| unknown(id))?;
        let from = node.tier.swap(tier, Ordering::AcqRel);
        if from != tier {
            // A new membership epoch: each clone re-sorts its backends by tier.
            self.pool().epoch.fetch_add(1, Ordering::AcqRel);
            self.pool().bump();
            tracing::info!(
                target: "tower_fortify::failover",
                name = self.pool().listeners.name(),
                backend = id,
                from,
                to = tier,
                "backend tier changed"
            );
        }
        Ok(())
    }

    /// Adds a backend at runtime. Fails on a duplicate id or a zero weight.
    pub fn add(&self, backend: Backend<S>) -> Result<(), ConfigError> {
        self.core.add(backend)
    }

    /// Removes a backend: calls in flight finish; each router clone stops sending to
    /// it at its next `poll_ready` (a clone that had already readied it may still send
    /// the one call it readied it for). Returns whether it existed.
    pub fn remove(&self, id: &str) -> bool {
        self.core.remove(id)
    }

    /// Follows a [`Discover`] stream: each `Insert(key, service)` adds the backend
    /// `make(&key, service)` returns (choose its id, tier, weight and probe there; an
    /// insert under a key already present replaces that backend), each `Remove(key)`
    /// removes the backend added for `key`. Backends added by hand or by the builder
    /// are left alone.
    ///
    /// The returned future runs until the stream ends (`Ok`) or fails (its error);
    /// spawn it. A backend `make` describes badly (zero weight, an id already taken)
    /// is skipped with a warning.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use tower::discover::Change;
    /// use tower::service_fn;
    /// use tower_fortify::failover::{Backend, Failover};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # fn echo() -> impl tower::Service<u32, Response = u32, Error = Infallible> + Clone {
    /// #     service_fn(|x: u32| async move { Ok::<_, Infallible>(x) })
    /// # }
    /// let router = Failover::builder()
    ///     .backend(Backend::new("seed", echo()))
    ///     .build()
    ///     .unwrap();
    /// let handle = router.handle();
    /// let changes = futures::stream::iter([
    ///     Ok::<_, Infallible>(Change::Insert(1u32, echo())),
    ///     Ok(Change::Insert(2, echo())),
    ///     Ok(Change::Remove(1)),
    /// ]);
    /// handle
    ///     .discover(changes, |key, svc| Backend::new(format!("node-{key}"), svc).tier(1))
    ///     .await
    ///     .unwrap();
    /// let ids: Vec<_> = handle.backends().into_iter().map(|b| b.id.to_string()).collect();
    /// assert_eq!(ids, ["seed", "node-2"]);
    /// # }
    /// ```
    pub async fn discover<D, F>(&self, discover: D, mut make: F) -> Result<(), D::Error>
    where
        D: Discover<Service = S>,
        F: FnMut(&D::Key, S) -> Backend<S>,
    {
        let mut discover = std::pin::pin!(discover);
        let mut keys: Vec<(D::Key, String)> = Vec::new();
        while let Some(change) =
            std::future::poll_fn(|cx| discover.as_mut().poll_discover(cx)).await
        {
            match change? {
                Change::Insert(key, service) => {
                    if let Some(at) = keys.iter().position(|(k, _)| *k == key) {
                        let (_, id) = keys.swap_remove(at);
                        self.core.remove(&id);
                    }
                    let backend = make(&key, service);
                    let id = backend.id.clone();
                    match self.core.add(backend) {
                        Ok(()) => keys.push((key, id)),
                        Err(e) => tracing::warn!(
                            target: "tower_fortify::failover",
                            backend = %id,
                            error = %e,
                            "discovered backend skipped"
                        ),
                    }
                }
                Change::Remove(key) => {
                    if let Some(at) = keys.iter().position(|(k, _)| *k == key) {
                        let (_, id) = keys.swap_remove(at);
                        self.core.remove(&id);
                    }
                }
            }
        }
        Ok(())
    }
}

fn unknown(id: &str) -> ConfigError {
    ConfigError::new("failover.backends.id", format!("no backend `{id}`"))
}
