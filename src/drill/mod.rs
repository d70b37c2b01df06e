//! The drill harness (in progress).

mod backend;
mod chart;
mod report;
mod runner;
mod scenario;

pub use backend::{
    BackendSpec, Phase, SimBackend, SimError, SimErrorKind, SimFuture, SimRequest, SimResponse,
};
pub use chart::svg_chart;
pub use report::{
    AssertionFailed, BackendReport, EventRecord, FaultReport, Quantiles, Report, SecondReport,
    comparison_table,
};
pub use runner::{Drill, DrillEnv, EventLog, MAX_EVENTS};
pub use scenario::{Load, Scenario, ScenarioError};
