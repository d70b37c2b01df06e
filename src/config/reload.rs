//! A running stack's configuration: what it was built from, and changing it live.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, PoisonError};

use super::file::{FileError, FortifyConfig};
use super::layout::{BackendConfig, StackConfig, path_text};
use super::model::{BulkheadConfig, TimeoutsConfig};
use super::stack::{StackSettings, rel_path};
use crate::budget::Budget;
use crate::circuit_breaker::CircuitBreakerBuilder;
use crate::observe::{Event, StackEvent};
use crate::stack::Stack;

type Applied = Option<Arc<dyn Any + Send + Sync>>;

#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
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

    /// Changes the running stack to `settings` (of the same stack: same name, same
    /// backends), keeping every part's state: breaker states and windows, the
    /// budget's balance, permits held, ejections and backend health.
    ///
    /// What a running stack changes: the deadline and the attempt timeout, the
    /// bulkhead's limit (up, or down: no new call is admitted until the calls in
    /// flight are under it; none is cut short) and queue length, every breaker's
    /// thresholds and durations ([`CircuitBreakerHandle::reconfigure`](crate::circuit_breaker::CircuitBreakerHandle::reconfigure)),
    /// the retry layer's attempts and backoff
    /// ([`RetryHandle::reconfigure`](crate::retry::RetryHandle::reconfigure)), the
    /// retry budget's rates ([`Budget::reconfigure`]), and each backend's tier and
    /// weight. Anything else (the router's rules, hedging, a breaker's windows, the
    /// retry layer's server-delay cap, the set of backends) needs a new stack, and is
    /// refused.
    ///
    /// The settings are checked whole before anything is applied: an invalid value or
    /// a change a running stack cannot make is refused with an error naming the
    /// field, and nothing changes. Two reconfigurations never interleave. Each one
    /// logs (INFO when applied, WARN when refused), sends a
    /// [`StackEvent`] to the listener for `"stack"` and counts in
    /// `fortify_reconfigurations_total` (with [`StackBuilder::metrics`](crate::stack::StackBuilder::metrics)).
    /// The call path takes no lock for this: the timeouts are atomics, each part's
    /// settings its own.
    pub fn reconfigure(&self, settings: &StackSettings) -> Result<Reconfigured, ReconfigureError> {
        let mut applied = self.lock_applied();
        let current = applied
            .as_ref()
            .and_then(|a| a.downcast_ref::<StackSettings>())
            .cloned();
        let plan = match current {
            Some(current) => self.plan(&current, settings),
            None => Err(ReconfigureError::new(
                "",
                "the stack was not built from settings (StackSettings::apply)",
            )),
        };
        let name = &*self.parts.name;
        match plan {
            Err(e) => {
                tracing::warn!(
                    target: "tower_fortify::stack",
                    name,
                    reason = %e,
                    "reconfiguration refused; the settings in force are kept"
                );
                self.parts.listeners.emit(|| {
                    Event::Stack(StackEvent::ReconfigureRefused {
                        reason: e.to_string(),
                    })
                });
                Err(e)
            }
            Ok(plan) => {
                self.execute(settings, &plan);
                *applied = Some(Arc::new(settings.clone()));
                drop(applied);
                tracing::info!(
                    target: "tower_fortify::stack",
                    name,
                    changes = plan.changes.len(),
                    "stack reconfigured"
                );
                for c in &plan.changes {
                    tracing::info!(target: "tower_fortify::stack", name, change = %c, "changed");
                }
                self.parts.listeners.emit(|| {
                    Event::Stack(StackEvent::Reconfigured {
                        changes: plan.changes.iter().map(ToString::to_string).collect(),
                    })
                });
                Ok(Reconfigured {
                    changes: plan.changes,
                })
            }
        }
    }

    /// [`reconfigure`](Self::reconfigure) with this stack's settings in `config`
    /// (by the stack's name): for a file reloaded after it changed.
    pub fn reconfigure_from(
        &self,
        config: &FortifyConfig,
    ) -> Result<Reconfigured, ReconfigureError> {
        let settings = config.stack(&self.parts.name)?;
        self.reconfigure(&settings)
    }

    /// Checks `new` whole against the stack: what changes, and that all of it can.
    fn plan(&self, current: &StackSettings, new: &StackSettings) -> Result<Plan, ReconfigureError> {
        let prefix = format!("stacks.{}", current.name);
        let at = |rel: &[super::layout::Seg], message: &str| {
            let rel = path_text(rel);
            let path = if rel.is_empty() {
                prefix.clone()
            } else {
                format!("{prefix}.{rel}")
            };
            ReconfigureError::new(path, message)
        };
        if new.name != current.name {
            return Err(ReconfigureError::new(
                "name",
                format!(
                    "settings of stack `{}` given to stack `{}`",
                    new.name, current.name
                ),
            ));
        }
        new.check().map_err(|(rel, e)| at(&rel, e.reason()))?;
        // What a running stack cannot change must be as it is.
        let fixed = diff(
            &leaves(&prefix, &fixed_part(&current.config)),
            &leaves(&prefix, &fixed_part(&new.config)),
        );
        if let Some(c) = fixed.first() {
            let what = if c.path.contains(".backends") {
                "the backends (their ids, order and URLs) cannot change while the stack runs: rebuild it, or use the router's handle (add, remove)"
            } else {
                FIXED
            };
            return Err(ReconfigureError::new(c.path.clone(), what));
        }
        for b in &new.config.backends {
            if self.router().backend(&b.id).is_none() {
                return Err(ReconfigureError::new(
                    format!("{prefix}.backends"),
                    format!("backend `{}` is no longer in the router", b.id),
                ));
            }
        }
        let breaker = new
            .breaker()
            .builder()
            .map_err(|e| at(&rel_path("breaker", e.field()), e.reason()))?;
        for (_, handle) in self.breakers() {
            handle
                .check_reconfigure(&breaker)
                .map_err(|e| at(&rel_path("breaker", e.field()), e.reason()))?;
        }
        let budget = match &new.retry().budget {
            None => Some(Budget::default_ratio()),
            Some(b) => b
                .to_budget()
                .map_err(|e| at(&rel_path("retry", e.field()), e.reason()))?,
        };
        match (self.budget(), &budget) {
            (Some(cur), Some(n)) => cur
                .check_reconfigure(n)
                .map_err(|e| at(&rel_path("retry", e.field()), e.reason()))?,
            (None, None) => {}
            _ => {
                return Err(at(
                    &rel_path("retry", "budget.kind"),
                    "a budget cannot be turned on or off while the stack runs",
                ));
            }
        }
        let retry = new
            .retry()
            .builder()
            .map_err(|e| at(&rel_path("retry", e.field()), e.reason()))?;
        self.retry()
            .check_reconfigure(&retry)
            .map_err(|e| at(&rel_path("retry", e.field()), e.reason()))?;
        let before = self.live(current.clone());
        let changes = diff(
            &leaves(&prefix, &before.config),
            &leaves(&prefix, &materialized(new).config),
        );
        Ok(Plan {
            breaker,
            budget,
            retry,
            changes,
        })
    }

    /// Applies a checked plan.
    fn execute(&self, new: &StackSettings, plan: &Plan) {
        let parts = &self.parts;
        parts
            .deadline
            .store(crate::stack::nanos(new.deadline()), Ordering::Relaxed);
        parts.attempt_timeout.set(new.attempt_timeout());
        let failed = |what: &str, e: crate::config::ConfigError| {
            tracing::warn!(target: "tower_fortify::stack", name = &*parts.name, part = what, error = %e, "part not reconfigured");
        };
        // An adaptive bulkhead's algorithm owns its limit (its table cannot change
        // while the stack runs: checked above).
        if !self.bulkhead().is_adaptive()
            && let Err(e) = self.bulkhead().set_limit(new.max_concurrent())
        {
            failed("bulkhead", e);
        }
        if let Some(q) = new.bulkhead().max_queued {
            self.bulkhead().set_max_queued(q);
        }
        for (_, handle) in self.breakers() {
            if let Err(e) = handle.reconfigure(&plan.breaker) {
                failed("breaker", e);
            }
        }
        if let Err(e) = self.retry().reconfigure(&plan.retry) {
            failed("retry", e);
        }
        if let (Some(cur), Some(n)) = (self.budget(), &plan.budget)
            && let Err(e) = cur.reconfigure(n)
        {
            failed("budget", e);
        }
        for b in &new.config.backends {
            let router = self.router();
            if let Err(e) = router.set_tier(&b.id, b.tier.unwrap_or(0)) {
                failed("router", e);
            }
            if let Err(e) = router.set_weight(&b.id, b.weight.unwrap_or(1)) {
                failed("router", e);
            }
        }
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
        if b.adaptive.is_none() {
            b.max_concurrent = Some(self.bulkhead().limit());
        }
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

/// One value a reconfiguration changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The field's path in the file: `stacks.payments.timeouts.deadline`.
    pub path: String,
    /// The value before (as the file writes it), or `(default)`.
    pub from: String,
    /// The value after, or `(default)`.
    pub to: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.path, self.from, self.to)
    }
}

/// What [`Stack::reconfigure`] applied: every change, in path order (empty when the
/// settings were those in force).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// The values changed.
    pub changes: Vec<Change>,
}

/// A reconfiguration refused whole: nothing was changed, the old settings still
/// run. Names the field and says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconfigureError {
    path: String,
    message: String,
    file: Option<Box<FileError>>,
}

impl ReconfigureError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            file: None,
        }
    }

    /// The path of the field refused: `stacks.payments.router.failure_rate`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Why.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ReconfigureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            return write!(f, "{file}");
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ReconfigureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.file.as_deref().map(|e| e as _)
    }
}

impl From<FileError> for ReconfigureError {
    /// A file that could not be read or checked: nothing was changed.
    fn from(e: FileError) -> Self {
        Self {
            path: e.path().to_string(),
            message: e.message().to_string(),
            file: Some(Box::new(e)),
        }
    }
}

/// What to apply, every part checked.
struct Plan {
    breaker: CircuitBreakerBuilder,
    retry: crate::retry::RetryBuilder,
    budget: Option<Budget>,
    changes: Vec<Change>,
}

const FIXED: &str = "cannot change while the stack runs: rebuild the stack for this";

/// Every leaf of a serialized value, by path.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn leaves(prefix: &str, c: &StackConfig) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(v) = serde_json::to_value(c) {
        flatten(prefix, &v, &mut out);
    }
    out
}

/// Every path whose value differs, with both values.
fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<Change> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(default)".to_string());
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| Change {
            path: k.clone(),
            from: show(a.get(k)),
            to: show(b.get(k)),
        })
        .collect()
}

/// The settings without what a running stack can change, to compare the rest.
fn fixed_part(c: &StackConfig) -> StackConfig {
    let mut c = c.clone();
    c.timeouts = None;
    if let Some(b) = &mut c.bulkhead {
        b.max_concurrent = None;
        b.max_queued = None;
    }
    c.breaker = None;
    if let Some(r) = &mut c.retry {
        r.budget = None;
        r.max_attempts = None;
        r.backoff = None;
    }
    for b in &mut c.backends {
        b.tier = None;
        b.weight = None;
    }
    c
}

/// The settings with the values a running stack reports written in (the defaults
/// of the timeouts, the bulkhead's limit, tiers and weights).
fn materialized(s: &StackSettings) -> StackSettings {
    let mut m = s.clone();
    let t = m
        .config
        .timeouts
        .get_or_insert_with(TimeoutsConfig::default);
    t.deadline = Some(s.deadline());
    t.attempt = Some(s.attempt_timeout());
    let b = m
        .config
        .bulkhead
        .get_or_insert_with(BulkheadConfig::default);
    if b.adaptive.is_none() {
        b.max_concurrent = Some(s.max_concurrent());
    }
    for b in &mut m.config.backends {
        b.tier = Some(b.tier.unwrap_or(0));
        b.weight = Some(b.weight.unwrap_or(1));
    }
    m
}
