//! `parapply promote`: make one replica the new primary when the replicas
//! hold incomparable states (DESIGN.md point 7; `tla/Promotion.tla` is the
//! same algorithm, model-checked; docs/promotion.md is the runbook).
//!
//! # Steps ([`run`])
//!
//! 1. **Connect** to every replica (all must answer). A persisted promotion
//!    (the `config` row `promotion` on any replica, the most advanced one)
//!    is resumed: a rerun after kill -9 converges.
//! 2. **Refuse writable servers**: every replica must be read-only, except
//!    the candidate of a persisted promotion that already made it writable.
//! 3. **Pre-hook** (non-zero exit: abort, nothing changed).
//! 4. **Switchover** only: the old primary is set read-only, and promote
//!    waits until its binlog's end is in every mirror.
//! 5. **Freeze**: the `config` row `freeze` on each target names the
//!    promotion; the running applier polls it, drains and stops (releasing
//!    its lock), and no applier starts on a frozen target except the
//!    promotion's own catch-up runs. Promote waits until no applier holds
//!    the lock (`--freeze-timeout`; a replica that does not stop is named
//!    and the run refused). A native replica: `STOP SLAVE`.
//! 6. **Checks**: every mirror is a prefix of the longest (byte comparison
//!    over the common length; a divergence names the first differing
//!    file:pos and its event); no replica holds a GTID that the longest
//!    mirror lacks ([`errant`]: every `(domain, server)` pair of its
//!    `gtid_binlog_state`, its binlog read where a pair passes the source,
//!    and its watermarks; parapply's own progress-table DDL excepted),
//!    unless `--allow-errant`. States, the source and what each replica
//!    lacks are read with the catchup module (`catchup::load`,
//!    `catchup::scan` once from the earliest resume position).
//! 7. **Plan** ([`plan::plan`], pure): source = the longest mirror,
//!    candidate (given or ranked), per replica what it lacks; shown before
//!    anything else changes, then persisted (`phase: catchup`).
//! 8. **Catch-up**: the candidate, then every other replica (in parallel),
//!    applies every group of the source it lacks: `catchup::apply` towards
//!    the state holding the whole source (the apply engine, then the check
//!    that the replica holds it). All then hold exactly the source; checked.
//! 9. **Switch**: the re-point position — where the candidate's binlog
//!    stands now — and the source's last GTID per domain are persisted
//!    (`phase: writable`) *before* the candidate's `read_only=OFF`; every
//!    other server is set `read_only=ON` first. The candidate's next
//!    seq_no per domain is above every seq_no any replica applied: MariaDB
//!    continues above the highest seq_no in its binlog (not the last one
//!    logged; measured, docs/promotion.md), and the candidate's binlog
//!    holds the source's highest GTID of each domain.
//! 10. **Re-point**: each other parapply replica's low-watermark moves to
//!     the re-point position (with the source's last GTID per domain) and
//!     its freeze is cleared, in one transaction: its applier resumes there,
//!     on a mirror of the new primary started at that position (`parapply
//!     mirror --from FILE:POS`). A native replica (and, after a switchover,
//!     the old primary) gets `CHANGE MASTER TO` the candidate at that
//!     position.
//! 11. **Done** (`phase: done`), post-hook, report.
//!
//! Promote keeps nothing in memory that a rerun needs: what it persists is
//! the plan (candidate, source) before catch-up and the re-point position
//! before `read_only=OFF` — what the spec's `PromoteRerun` says must be.

pub mod errant;
mod error;
pub mod mirrors;
pub mod plan;
pub mod sim;
mod steps;

pub use error::PromoteError;
pub use steps::run;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::progress::ProgressTables;
use crate::schedule::ShardMap;
use crate::trace::TraceSink;
use crate::wire::{ConnectOptions, Secret};

pub use plan::Plan;

/// Where a replica's copy of the primary's binlog is.
#[derive(Debug, Clone)]
pub enum MirrorLoc {
    /// A mirror directory (`parapply mirror`), readable from here.
    Dir(PathBuf),
    /// None: the replica is run by MariaDB's own replication (its state is
    /// its `gtid_slave_pos`, a prefix of the stream).
    Native,
    /// A mirror server (`parapply mirror --serve`, `parapply serve`):
    /// copied whole into a temporary directory once the appliers are
    /// frozen (`catchup::remote::fetch`), then read as a directory.
    Server(ConnectOptions),
}

/// One replica of the promotion.
#[derive(Debug, Clone)]
pub struct ReplicaSpec {
    /// The operator's name for it.
    pub name: String,
    /// Its server.
    pub target: ConnectOptions,
    /// Its mirror.
    pub mirror: MirrorLoc,
}

/// Everything `promote` needs.
#[derive(Debug, Clone)]
pub struct PromoteOptions {
    /// The replicas.
    pub replicas: Vec<ReplicaSpec>,
    /// The candidate, when the operator names it.
    pub candidate: Option<String>,
    /// Switchover: the old primary (alive; it becomes a replica).
    pub switchover: Option<ConnectOptions>,
    /// Plan only: change nothing.
    pub dry_run: bool,
    /// Go on despite errant transactions.
    pub allow_errant: bool,
    /// Clear the freeze of a refused promotion, and nothing else.
    pub unfreeze: bool,
    /// Run before acting (`sh -c`); non-zero aborts.
    pub pre_hook: Option<String>,
    /// Run after the promotion.
    pub post_hook: Option<String>,
    /// How long appliers may take to stop, and mirrors to receive the old
    /// primary's last writes in a switchover.
    pub freeze_timeout: Duration,
    /// The progress schema.
    pub progress: ProgressTables,
    /// The shard map the appliers use.
    pub shard_map: ShardMap,
    /// Catch-up workers per replica.
    pub workers: usize,
    /// Groups per catch-up transaction.
    pub batch_groups: usize,
    /// The replication user re-pointed native replicas (and the old
    /// primary) connect to the new primary with.
    pub repl_user: String,
    /// Its password.
    pub repl_password: Option<Secret>,
    /// Log the steps as TLA+ trace records.
    pub trace: Option<TraceSink>,
}

impl PromoteOptions {
    /// Default time for appliers to stop.
    pub const DEFAULT_FREEZE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default catch-up workers per replica.
    pub const DEFAULT_WORKERS: usize = 4;

    /// The defaults for `replicas`: no candidate named (ranking), failover,
    /// acting (not a dry run), errant transactions refused, no hooks, 30 s
    /// freeze timeout, progress schema `parapply`, one shard per database,
    /// 4 catch-up workers, batches of 32 groups, replication user `root`
    /// without password, no trace.
    pub fn new(replicas: Vec<ReplicaSpec>) -> Self {
        PromoteOptions {
            replicas,
            candidate: None,
            switchover: None,
            dry_run: false,
            allow_errant: false,
            unfreeze: false,
            pre_hook: None,
            post_hook: None,
            freeze_timeout: Self::DEFAULT_FREEZE_TIMEOUT,
            progress: ProgressTables::new(
                crate::apply::engine::ApplyOptions::DEFAULT_PROGRESS_SCHEMA,
            )
            .expect("a valid schema name"),
            shard_map: ShardMap::new(crate::apply::engine::ApplyOptions::DEFAULT_SHARD_BY),
            workers: Self::DEFAULT_WORKERS,
            batch_groups: crate::apply::engine::ApplyOptions::DEFAULT_BATCH_GROUPS,
            repl_user: "root".into(),
            repl_password: None,
            trace: None,
        }
    }
}

/// The phases a promotion persists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Plan persisted; catching up.
    Catchup,
    /// Re-point position persisted; the candidate is (being made) writable.
    Writable,
    /// Finished.
    Done,
}

/// What a promotion persists on every replica (the `config` row
/// `promotion`, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The promotion's id.
    pub id: String,
    /// Its phase.
    pub phase: Phase,
    /// The candidate.
    pub candidate: String,
    /// The replica whose mirror is the source.
    pub source: String,
    /// The re-point position (from `writable` on).
    pub repoint: Option<String>,
    /// The source's last GTID per domain (from `writable` on).
    pub last: Vec<String>,
}

/// One step of the report.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step.
    pub step: String,
    /// The replica it acted on, if one.
    pub replica: Option<String>,
    /// Groups applied.
    pub groups: u64,
    /// Bytes applied.
    pub bytes: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// What it did.
    pub detail: String,
}

/// What a promotion did.
#[derive(Debug, Clone, Serialize)]
pub struct PromoteReport {
    /// The promotion's id.
    pub promotion: String,
    /// The new primary.
    pub primary: String,
    /// Its address.
    pub primary_addr: String,
    /// Where the others' mirrors start in its binlog (`FILE:POS`).
    pub repoint: String,
    /// The source's last GTID per domain: the new primary continues above.
    pub last: Vec<String>,
    /// This run resumed a persisted promotion.
    pub resumed: bool,
    /// Per step.
    pub steps: Vec<StepReport>,
    /// Seconds from start to the candidate writable.
    pub writable_after: f64,
    /// Of which catch-up apply: the candidate's, then the longest of the
    /// others' (they run in parallel).
    pub catch_up_seconds: f64,
    /// Seconds in all.
    pub seconds: f64,
    /// The post-hook's failure, if any (the promotion is done).
    pub post_hook_error: Option<String>,
}

/// What `run` ended with.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `--dry-run`: the plan.
    DryRun(Plan),
    /// `--unfreeze`: the replicas whose freeze was cleared.
    Unfrozen(Vec<String>),
    /// The promotion.
    Done(PromoteReport),
}

/// `server_id → name` for trace records: the old primary's server id is
/// named `old_primary`, each replica's by its name.
pub fn trace_names(old_primary: (u32, &str), replicas: &[(u32, &str)]) -> BTreeMap<u32, String> {
    let mut m: BTreeMap<u32, String> = replicas
        .iter()
        .map(|(id, n)| (*id, n.to_string()))
        .collect();
    m.insert(old_primary.0, old_primary.1.to_string());
    m
}
