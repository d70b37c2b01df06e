use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub(super) struct Control {
    enabled: AtomicBool,
    base: Instant,
    /// Nanoseconds from `base` to the schedule's epoch.
    epoch_offset: AtomicU64,
    injected: AtomicU64,
}

impl Control {
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            enabled: AtomicBool::new(enabled),
            base: Instant::now(),
            epoch_offset: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(super) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    #[inline]
    pub(super) fn elapsed(&self) -> Duration {
        let since_base = Instant::now().saturating_duration_since(self.base);
        since_base.saturating_sub(Duration::from_nanos(
            self.epoch_offset.load(Ordering::Relaxed),
        ))
    }

    #[inline]
    pub(super) fn count_injection(&self) {
        self.injected.fetch_add(1, Ordering::Relaxed);
    }
}

/// Switches a [`ChaosLayer`](super::ChaosLayer) on and off at runtime and reads what
/// it injected. Cheap to clone; every clone controls the same layer.
#[derive(Clone)]
pub struct ChaosHandle {
    pub(super) control: Arc<Control>,
}

impl fmt::Debug for ChaosHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosHandle")
            .field("enabled", &self.is_enabled())
            .field("injected", &self.injected())
            .finish()
    }
}

impl ChaosHandle {
    /// Starts injecting faults.
    pub fn enable(&self) {
        self.control.enabled.store(true, Ordering::Relaxed);
    }

    /// Stops injecting faults: calls pass straight through at the cost of one relaxed
    /// atomic load.
    pub fn disable(&self) {
        self.control.enabled.store(false, Ordering::Relaxed);
    }

    /// Whether faults are being injected.
    pub fn is_enabled(&self) -> bool {
        self.control.is_enabled()
    }

    /// How many calls have had a fault injected (every kind, every rule).
    pub fn injected(&self) -> u64 {
        self.control.injected.load(Ordering::Relaxed)
    }

    /// Measures rule windows from now on (the layer's epoch is when it was built).
    pub fn restart_schedule(&self) {
        let offset = Instant::now().saturating_duration_since(self.control.base);
        self.control
            .epoch_offset
            .store(crate::clock::nanos(offset), Ordering::Relaxed);
    }

    /// Time since the schedule's epoch.
    pub fn elapsed(&self) -> Duration {
        self.control.elapsed()
    }
}
