//! Bench suites; each has a `bench(&mut Criterion)` that `benches.rs` calls.

pub mod catchup;
pub mod reader;
