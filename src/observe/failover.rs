/// What a failover router decided.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FailoverEvent {
    /// No backend could take the call.
    NoHealthyBackend,
}
