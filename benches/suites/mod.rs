//! Bench suites; each has a `bench(&mut Criterion)` that `benches.rs` calls.

pub mod catchup;
pub mod reader;

/// Whether criterion measures (`cargo bench`) rather than tests once.
pub fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}
