/// What a circuit breaker decided.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CircuitBreakerEvent {
    /// A call was rejected because the breaker is open.
    Rejected,
}
