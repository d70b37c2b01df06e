//! What a drill measures while it runs: the requests of each second and their
//! latencies, and the events the stack reports.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::observe::{Event, Listener};

/// The most events (and, separately, state transitions) an [`EventLog`] keeps in
/// order; past it only the counts grow.
pub const MAX_EVENTS: usize = 10_000;

/// Reads a state out of an event: given the source of the listener that received it
/// and the event, `Some((source, state))`. See [`Drill::states`](super::Drill::states).
pub type StateFn = Arc<dyn Fn(&str, &Event) -> Option<(String, String)> + Send + Sync>;

/// A [`Listener`] that records events with their time since the drill's start: the
/// first [`MAX_EVENTS`] in order, and a count of every kind.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Mutex<EventsInner>>,
    epoch: Instant,
    states: Option<StateFn>,
    source: Arc<str>,
}

#[derive(Default)]
pub(crate) struct EventsInner {
    pub(crate) log: Vec<(Duration, String)>,
    pub(crate) counts: std::collections::BTreeMap<String, u64>,
    /// (time, source, state), only when the state changes.
    pub(crate) transitions: Vec<(Duration, String, String)>,
    current: std::collections::BTreeMap<String, String>,
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

impl EventLog {
    pub(crate) fn new(epoch: Instant, states: Option<StateFn>) -> Self {
        Self {
            inner: Arc::default(),
            epoch,
            states,
            source: Arc::from("stack"),
        }
    }

    /// This log, for events from `source`.
    #[allow(dead_code)] // Used by the process drill only.
    pub(crate) fn with_source(&self, source: &str) -> EventLog {
        EventLog {
            source: Arc::from(source),
            ..self.clone()
        }
    }

    pub(crate) fn take(&self) -> EventsInner {
        std::mem::take(&mut *self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Listener for EventLog {
    fn on_event(&self, event: &Event) {
        let at = Instant::now().saturating_duration_since(self.epoch);
        let debug = format!("{event:?}");
        let kind = event.kind();
        let text = if &*self.source == "stack" {
            debug
        } else {
            format!("{}: {debug}", self.source)
        };
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.counts.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                inner.counts.insert(kind.to_string(), 1);
            }
        }
        if inner.log.len() < MAX_EVENTS {
            inner.log.push((at, text));
        }
        if let Some((source, state)) = self.states.as_ref().and_then(|f| f(&self.source, event)) {
            let changed = inner.current.get(&source) != Some(&state);
            if changed && inner.transitions.len() < MAX_EVENTS {
                inner.current.insert(source.clone(), state.clone());
                inner.transitions.push((at, source, state));
            }
        }
    }
}

pub(crate) struct Second {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) latency: Option<Histogram<u32>>,
}

pub(crate) struct RecorderInner {
    pub(crate) latency: Histogram<u64>,
    pub(crate) seconds: Vec<Second>,
}

pub(crate) struct Recorder {
    inner: Mutex<RecorderInner>,
    in_flight: AtomicU64,
    idle: Notify,
}

/// Latencies are recorded in microseconds, up to one hour.
pub(crate) const MAX_MICROS: u64 = 3_600_000_000;

impl Recorder {
    pub(crate) fn new(seconds: usize) -> Self {
        Self {
            inner: Mutex::new(RecorderInner {
                latency: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid bounds"),
                seconds: (0..seconds.max(1))
                    .map(|_| Second {
                        sent: 0,
                        ok: 0,
                        failed: 0,
                        latency: None,
                    })
                    .collect(),
            }),
            in_flight: AtomicU64::new(0),
            idle: Notify::new(),
        }
    }

    pub(crate) fn sent(&self, second: usize) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.seconds[second].sent += 1;
    }

    pub(crate) fn finish(&self, second: usize, ok: bool, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_MICROS);
        {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.latency.saturating_record(micros);
            let s = &mut inner.seconds[second];
            if ok {
                s.ok += 1;
            } else {
                s.failed += 1;
            }
            s.latency
                .get_or_insert_with(|| {
                    Histogram::new_with_bounds(1, MAX_MICROS, 2).expect("valid bounds")
                })
                .saturating_record(micros);
        }
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.idle.notify_one();
        }
    }

    pub(crate) async fn drained(&self) {
        while self.in_flight.load(Ordering::Relaxed) > 0 {
            self.idle.notified().await;
        }
    }

    pub(crate) fn take(&self) -> RecorderInner {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        RecorderInner {
            latency: inner.latency.clone(),
            seconds: std::mem::take(&mut inner.seconds),
        }
    }
}
