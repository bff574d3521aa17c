//! Applying a catch-up: the apply engine's own loop with
//! [`Selection::CatchUp`] (it stops at the goal's end), after the target's
//! progress tables are brought up to a prefix the server's own SQL thread
//! applied, and checked after: the target must then hold everything the
//! goal holds.

use std::time::Duration;

use serde::Serialize;

use super::state::Loaded;
use super::CatchupError;
use crate::apply::engine::{self, ApplyOptions, ApplyReport};
use crate::progress::{compare, AppliedSet, Selection, StateOrder};
use crate::replica::{Replica, ReplicaOptions, LOCK_WAIT};

/// What [`apply`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// The engine's report.
    pub report: ApplyReport,
    /// The target's progress tables were first brought up to its
    /// `gtid_slave_pos` (a prefix the SQL thread applied).
    pub seeded: bool,
}

fn replica_of(opts: &ApplyOptions) -> Result<Replica, CatchupError> {
    Ok(Replica::connect(ReplicaOptions {
        target: opts.target.clone(),
        progress: opts.progress.clone(),
        reconnect_timeout: Duration::ZERO,
    })?)
}

/// Applies to the target of `opts` — whose state `own` was loaded
/// ([`super::load`]) — the groups `goal` holds and it lacks, from the
/// mirror `opts.source`. `opts` keeps its workers, batching, shard map and
/// progress schema; selection, `follow`, `from` and `until` are set here.
/// Refused while the server's own SQL thread runs on the target.
pub fn apply(
    own: &Loaded,
    goal: &AppliedSet,
    mut opts: ApplyOptions,
) -> Result<Applied, CatchupError> {
    let mut r = replica_of(&opts)?;
    if r.sql_thread_running()? {
        return Err(CatchupError::SqlThreadRunning { addr: r.addr() });
    }
    let seeded = own.needs_seeding();
    if seeded {
        // The SQL thread's prefix becomes parapply's low-watermark, so
        // that the engine resumes after it instead of applying it again.
        r.ensure_progress_tables()?;
        r.ensure_sql_log_bin_off()?;
        r.take_applier_lock(LOCK_WAIT, &|| false)?;
        let now = r.read_state()?;
        if compare(&now, &own.applied.state) != StateOrder::Equal {
            let mut low = now.low.clone();
            for (d, w) in &own.applied.state.low {
                if low.get(d).is_none_or(|l| l.seq_no < w.seq_no) {
                    low.insert(*d, w.clone());
                }
            }
            r.persist_low(&low, &opts.abort)?;
        }
    }
    // The engine takes the lock on its own connection.
    drop(r);
    opts.selection = Selection::catch_up(goal.clone());
    opts.follow = false;
    opts.from = None;
    opts.until = None;
    let report = engine::run(opts.clone()).map_err(Box::new)?;
    // The check: the target now dominates the goal.
    let mut r = replica_of(&opts)?;
    let after = r.read_state()?;
    match compare(&after, &goal.state) {
        StateOrder::Equal | StateOrder::AAhead(_) => Ok(Applied { report, seeded }),
        StateOrder::BAhead(leads) | StateOrder::Incomparable { b_leads: leads, .. } => {
            Err(CatchupError::NotReached {
                addr: r.addr(),
                shards: leads
                    .iter()
                    .map(|l| format!("{} ({} < {})", l.key, l.a, l.b))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }
}
