use std::time::Duration;

/// What a chaos layer did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ChaosEvent {
    /// A rule selected a call and injected its fault.
    Injected {
        /// Which fault: `"error"`, `"response"`, `"hang"` or `"latency"`.
        fault: &'static str,
        /// The delay added, for a latency fault.
        delay: Option<Duration>,
    },
}

impl ChaosEvent {
    /// The kind of event, `"Chaos(Injected)"`: the layer and the variant without the
    /// fields. See [`Event::kind`](super::Event::kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Injected { .. } => "Chaos(Injected)",
        }
    }
}
