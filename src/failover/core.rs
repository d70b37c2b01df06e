//! Membership: the backends' prototype services and the health-check tasks.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::backend::{Backend, HealthCheck, ProbeFn, check_backend};
use super::config::Selection;
use super::member::MemberCache;
use super::pool::{Node, Pool};
use crate::config::ConfigError;
use crate::observe::{Event, FailoverEvent};

/// What every router clone and handle shares: the pool and the service each backend
/// was added with (router clones clone it when they first see the backend).
pub(crate) struct Core<S> {
    pub(crate) pool: Arc<Pool>,
    pub(crate) services: Mutex<Vec<(Arc<Node>, S)>>,
    /// The backend list router clones share, per membership epoch.
    pub(crate) members: MemberCache<S>,
    health_check: HealthCheck,
    runtime: Option<tokio::runtime::Handle>,
}

impl<S> Core<S> {
    pub(crate) fn new(
        pool: Arc<Pool>,
        health_check: HealthCheck,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Self {
        Self {
            pool,
            services: Mutex::new(Vec::new()),
            members: MemberCache::default(),
            health_check,
            runtime,
        }
    }

    pub(crate) fn lock_services(&self) -> std::sync::MutexGuard<'_, Vec<(Arc<Node>, S)>> {
        self.services.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn add(&self, backend: Backend<S>) -> Result<(), ConfigError> {
        check_backend(&backend)?;
        let runtime = match (&backend.probe, &self.runtime) {
            (None, _) => None,
            (Some(_), Some(rt)) => Some(rt.clone()),
            (Some(_), None) => Some(tokio::runtime::Handle::try_current().map_err(|_| {
                ConfigError::new(
                    "failover.health_check",
                    "active health checks need a tokio runtime",
                )
            })?),
        };
        let mut services = self.lock_services();
        if services.iter().any(|(n, _)| *n.id == *backend.id) {
            return Err(ConfigError::new(
                "failover.backends.id",
                format!("duplicate backend id `{}`", backend.id),
            ));
        }
        let serial = self.pool.serials.fetch_add(1, Ordering::Relaxed);
        let mut node = Node::new(Arc::from(backend.id), serial, backend.tier, backend.weight);
        #[cfg(feature = "circuit-breaker")]
        {
            node.breaker = backend.breaker;
        }
        if let Selection::PeakEwma { default_rtt, .. } = self.pool.cfg.selection {
            node = node.with_rtt(default_rtt.as_nanos() as f64, self.pool.now());
        }
        let node = Arc::new(node);
        services.push((node.clone(), backend.service));
        self.pool.lock_nodes().push(node.clone());
        self.pool.epoch.fetch_add(1, Ordering::AcqRel);
        self.pool.bump();
        drop(services);
        self.pool.listeners.emit(|| {
            Event::Failover(FailoverEvent::Added {
                backend: node.id.clone(),
            })
        });
        if let (Some(probe), Some(rt)) = (backend.probe, runtime) {
            rt.spawn(run_probe(
                Arc::downgrade(&self.pool),
                node,
                probe,
                self.health_check,
            ));
        }
        Ok(())
    }

    pub(crate) fn remove(&self, id: &str) -> bool {
        let mut services = self.lock_services();
        let Some(at) = services.iter().position(|(n, _)| &*n.id == id) else {
            return false;
        };
        let (node, _service) = services.remove(at);
        node.cold.removed.store(true, Ordering::Release);
        self.pool.lock_nodes().retain(|n| n.serial != node.serial);
        self.pool.epoch.fetch_add(1, Ordering::AcqRel);
        self.pool.bump();
        drop(services);
        self.pool.listeners.emit(|| {
            Event::Failover(FailoverEvent::Removed {
                backend: node.id.clone(),
            })
        });
        true
    }
}

async fn run_probe(pool: Weak<Pool>, node: Arc<Node>, probe: ProbeFn, hc: HealthCheck) {
    let mut tick = tokio::time::interval(hc.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.strong_count() == 0 || node.cold.removed.load(Ordering::Acquire) {
            return;
        }
        let ok = tokio::time::timeout(hc.timeout, probe())
            .await
            .unwrap_or(false);
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.record_probe(&node, ok, &hc);
    }
}

impl Pool {
    fn record_probe(&self, node: &Node, ok: bool, hc: &HealthCheck) {
        let cold = &node.cold;
        let healthy = cold.probe_ok.load(Ordering::Acquire);
        if ok == healthy {
            cold.probe_streak.store(0, Ordering::Relaxed);
            return;
        }
        let streak = cold.probe_streak.fetch_add(1, Ordering::Relaxed) + 1;
        let needed = if healthy {
            hc.unhealthy_threshold
        } else {
            hc.healthy_threshold
        };
        if streak < needed {
            return;
        }
        cold.probe_streak.store(0, Ordering::Relaxed);
        cold.probe_ok.store(ok, Ordering::Release);
        self.bump();
        tracing::info!(
            target: "tower_fortify::failover",
            name = self.listeners.name(),
            backend = &*node.id,
            healthy = ok,
            "health check verdict changed"
        );
        self.listeners.emit(|| {
            Event::Failover(FailoverEvent::HealthCheck {
                backend: node.id.clone(),
                healthy: ok,
            })
        });
    }
}
