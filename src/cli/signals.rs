//! SIGINT/SIGTERM: the first asks for a clean stop, the second for an abort.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

/// Installs SIGINT/SIGTERM handling: the first signal sets `stop`, the
/// second `abort`. Returns the two flags.
pub fn install() -> anyhow::Result<(Arc<AtomicBool>, Arc<AtomicBool>)> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    let abort = Arc::new(AtomicBool::new(false));
    let mut sigs = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing signal handlers")?;
    let (s, a) = (stop.clone(), abort.clone());
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for _ in sigs.forever() {
                if s.swap(true, Ordering::SeqCst) {
                    a.store(true, Ordering::SeqCst);
                    eprintln!("parapply: second signal: aborting (open transactions roll back)");
                } else {
                    eprintln!("parapply: stopping cleanly (signal again to abort)");
                }
            }
        })
        .context("starting the signal thread")?;
    Ok((stop, abort))
}
