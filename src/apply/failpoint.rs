//! Failpoints: named places where a crash test makes the applier die at
//! once, as `kill -9` would, to check what a restart does there.
//!
//! A failpoint fires only when the environment variable
//! [`FAILPOINT_ENV`] (`PARAPPLY_FAILPOINT`) names it; nothing else reaches
//! it. The points:
//!
//! * `ctas-staged` — a `CREATE TABLE … SELECT` group's rows are staged, its
//!   statement not yet run ([`crate::apply::replay::FAILPOINT_CTAS_STAGED`]).

/// The variable that names the failpoint to fire.
pub const FAILPOINT_ENV: &str = "PARAPPLY_FAILPOINT";

/// Kills this process with SIGKILL when [`FAILPOINT_ENV`] names `name`.
pub fn check(name: &str) {
    if std::env::var(FAILPOINT_ENV).is_ok_and(|v| v == name) {
        eprintln!("parapply: failpoint {name} ({FAILPOINT_ENV}): killing this process");
        // SIGKILL: no destructor runs, no connection is closed cleanly.
        let _ = signal_hook::low_level::raise(signal_hook::consts::SIGKILL);
        std::process::abort();
    }
}
