/// What a fallback layer did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FallbackEvent {
    /// A failed result was replaced by the fallback.
    Used {
        /// Whether the failure was an error (`false`: a response classified as one).
        error: bool,
    },
}

impl FallbackEvent {
    /// The kind of event, `"Fallback(Used)"`. See [`Event::kind`](super::Event::kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Used { .. } => "Fallback(Used)",
        }
    }
}
