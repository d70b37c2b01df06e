/// What a one-call stack reports about itself (its parts report their own events).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StackEvent {
    /// A reconfiguration was applied whole.
    Reconfigured {
        /// What changed, one line each: `stacks.payments.timeouts.deadline: "2s" -> "1s"`.
        changes: Vec<String>,
    },
    /// A reconfiguration was refused; nothing changed.
    ReconfigureRefused {
        /// Why, naming the field: `stacks.payments.router.failure_rate: cannot change ...`.
        reason: String,
    },
}

impl StackEvent {
    /// The kind of event, such as `"Stack(Reconfigured)"`. See
    /// [`Event::kind`](super::Event::kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Reconfigured { .. } => "Stack(Reconfigured)",
            Self::ReconfigureRefused { .. } => "Stack(ReconfigureRefused)",
        }
    }
}
