//! The apply engine: scheduler-driven workers replay transaction groups on
//! the target (in progress).

pub mod replay;
