//! A running stack's configuration: what it was built from, and changing it live.

use std::any::Any;
use std::sync::{Arc, MutexGuard, PoisonError};

use super::file::BackendConfig;
use super::model::{BulkheadConfig, TimeoutsConfig};
use super::stack::StackSettings;
use crate::stack::Stack;

type Applied = Option<Arc<dyn Any + Send + Sync>>;

impl<S, C, P> Stack<S, C, P> {
    fn lock_applied(&self) -> MutexGuard<'_, Applied> {
        self.parts
            .applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The configuration in force: the settings the stack was built from
    /// ([`StackSettings::apply`]) or last [reconfigured](Self::reconfigure) to, with
    /// the values its handles hold now (the timeouts, the bulkhead's limit, each
    /// backend's tier and weight) written in. `None` for a stack built without
    /// settings. Print it with [`StackSettings::to_toml`].
    pub fn effective_config(&self) -> Option<StackSettings> {
        let applied = self.lock_applied();
        let settings = applied.as_ref()?.downcast_ref::<StackSettings>()?.clone();
        drop(applied);
        Some(self.live(settings))
    }

    /// `settings` with the handles' current values written in.
    fn live(&self, mut s: StackSettings) -> StackSettings {
        let t = s
            .config
            .timeouts
            .get_or_insert_with(TimeoutsConfig::default);
        t.deadline = Some(self.deadline());
        t.attempt = Some(self.attempt_timeout());
        let b = s
            .config
            .bulkhead
            .get_or_insert_with(BulkheadConfig::default);
        b.max_concurrent = Some(self.bulkhead().limit());
        let live = self.router().backends();
        for backend in &mut s.config.backends {
            if let Some(now) = live.iter().find(|l| *l.id == *backend.id) {
                backend.tier = Some(now.tier);
                backend.weight = Some(now.weight);
            }
        }
        s.config
            .backends
            .retain(|b: &BackendConfig| live.iter().any(|l| *l.id == *b.id));
        s
    }
}
