/// What a bulkhead decided.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BulkheadEvent {
    /// A call was rejected because the bulkhead is full (limit reached, queue full or
    /// queueing off).
    Rejected {
        /// The limit in force.
        limit: usize,
        /// Calls holding a permit.
        in_flight: usize,
        /// Callers in the queue.
        queued: usize,
    },
    /// A call found no free permit and joined the queue.
    Queued {
        /// Callers in the queue, this one included.
        queued: usize,
    },
    /// A queued call got its permit after waiting `waited`.
    Dequeued {
        /// How long it waited in the queue.
        waited: std::time::Duration,
    },
    /// A queued call waited the maximum time and was turned away.
    QueueTimeout {
        /// The limit in force.
        limit: usize,
    },
    /// The limit changed (adaptive algorithm or [`set_limit`]).
    ///
    /// [`set_limit`]: crate::bulkhead::BulkheadHandle::set_limit
    LimitChanged {
        /// The old limit.
        from: usize,
        /// The new limit.
        to: usize,
    },
}

impl BulkheadEvent {
    /// The kind of event, `"Bulkhead(Variant)"` (for example `"Bulkhead(Rejected)"`):
    /// the layer and the variant without the fields, a fixed string for counting
    /// events by kind. See [`Event::kind`](super::Event::kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => "Bulkhead(Rejected)",
            Self::Queued { .. } => "Bulkhead(Queued)",
            Self::Dequeued { .. } => "Bulkhead(Dequeued)",
            Self::QueueTimeout { .. } => "Bulkhead(QueueTimeout)",
            Self::LimitChanged { .. } => "Bulkhead(LimitChanged)",
        }
    }
}
