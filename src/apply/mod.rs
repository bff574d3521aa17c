//! The apply engine: scheduler-driven workers replay transaction groups on
//! the target.

pub mod engine;
pub mod error;
pub mod failpoint;
pub mod filter;
pub mod metrics;
pub mod replay;
pub mod start;
pub mod worker;

pub use error::{ApplyError, DefiniteError, GroupRef, TransientError};
pub use metrics::ApplyMetrics;
