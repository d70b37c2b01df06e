/// What a bulkhead decided.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BulkheadEvent {
    /// A call was rejected because the bulkhead is full.
    Rejected,
}
