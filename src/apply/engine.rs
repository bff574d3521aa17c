//! The engine: connects the reader, the scheduler and the workers, and
//! contains no apply logic of its own.
//!
//! ```text
//! reader thread ──groups──► Engine ──work items──► worker k (own connection)
//!  (BinlogReader +          (decide, scheduler,  ◄──reports──
//!   Grouper)                 low-watermark)
//! ```
//!
//! [`run`] is [`Engine::start`] then [`Engine::run`]. Promotion's catch-up
//! is the same run with [`ApplyOptions::selection`] set to
//! [`Selection::CatchUp`]: the loop, the workers and the shutdown are the
//! same, only [`decide`]'s answers differ.
//!
//! # Start ([`Engine::start`])
//!
//! 1. For a catch-up, the goal must have been written under this run's
//!    shard map. Preflight on the target's control connection
//!    ([`Replica`]): it answers, does not replicate by itself (no SQL
//!    thread running; checked again every few seconds while applying), has
//!    `log_bin` on and `gtid_strict_mode` off (out-of-order
//!    commits break it), the user may replay binlog events (`BINLOG` of the
//!    source's Format_description event is tried) and set `gtid_seq_no`; the
//!    progress tables are created if missing (through the binary log, once).
//!    From here on the control connection writes with `sql_log_bin=0`:
//!    parapply's bookkeeping stays out of the target's binary log.
//! 2. The applier lock is taken (a dead applier's statements waited for),
//!    the state read; a different shard map than the one that wrote it is
//!    refused unless the state is drained.
//! 3. The workers and the reader start. Reading starts at the
//!    low-watermark, or on a target without progress at `--from`,
//!    `--from-backup`, after the target's `gtid_slave_pos`, or at the
//!    source's beginning ([`super::start`]).
//!
//! # Steady state ([`Engine::run`])
//!
//! Each turn of the loop:
//!
//! * **dispatch** — what the scheduler lets run goes to the workers' queues;
//! * **admit** — groups read are offered to [`decide`] while the scheduler
//!   has room for their bytes: applied ones are skipped, the others pushed
//!   (a catch-up also passes over groups its goal lacks, and stops at its
//!   end; `--until` ends reading after its group);
//! * **take reports** — the workers' completions are booked in the
//!   scheduler, at once when one can unblock something (a group waiting
//!   to be dispatched, the memory budget), otherwise every millisecond, so
//!   that the loop does not wake up once per transaction;
//! * **advance the low-watermark** — groups are tracked in source order;
//!   the prefix up to [`Scheduler::low_watermark`] (with the skipped groups
//!   around it) is applied; it is persisted every `low_watermark_interval`,
//!   after each barrier, and at the end. A lost control connection is
//!   opened again within the reconnect time, the applier lock taken back.
//!
//! A read error ends reading; the groups read before it are applied, then
//! it is the run's error (the applied prefix ends just before the bad
//! place).
//!
//! Any error (a worker's report, the reader's, the control connection's), a
//! signal, the source's end, `--until` or a catch-up's end leaves the loop
//! for the one shutdown below; nothing returns from the middle.
//!
//! # Shutdown ([`Engine::shutdown`], the one exit)
//!
//! 1. The reader is told to stop, and its channel closed: no more groups
//!    are pulled. (A drained stop — the source's end, `--until`, the
//!    `stop` flag of a first SIGINT/SIGTERM — only gets here when
//!    everything pushed is applied: the applied set is then one prefix of
//!    the source, every shard at the same position.)
//! 2. On an error, workers roll back their open transaction instead of
//!    finishing their queue (the `abort` flag: set by a worker's failure or
//!    a second signal); after a reader error they finish what they hold.
//!    Each shard is still a prefix (consistent), though shards may differ;
//!    the next start continues from there.
//! 3. The worker queues are closed; every worker thread and the reader
//!    thread are joined. A worker that panicked becomes
//!    [`DefiniteError::WorkerPanicked`] naming it and the group it held.
//! 4. The reports still queued are taken: groups committed before the
//!    workers stopped count as applied, and a worker's own error is the
//!    error reported (never a generic "worker gone": a send to a failed
//!    worker only ends the loop; its report says why).
//! 5. The low-watermark advances over what completed and is persisted.
//! 6. The result: [`ApplyReport`], or [`ApplyFailure`] with the error and
//!    the report of what was applied up to there.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, never, select, unbounded, Receiver, Sender};

use super::error::{ApplyError, DefiniteError, GroupRef};
use super::filter::Filtered;
use super::metrics::ApplyMetrics;
use super::replay::{binlog_statement, Collations, CTAS_STAGING_TABLE};
use super::worker::{self, Report, WorkItem, WorkerConfig};
use crate::binlog::{BinlogReader, ReadError, ReaderOptions, Source};
use crate::group::{Group, GroupKind, Grouper};
use crate::position::{BinlogPos, MariaGtid, StartAt};
use crate::progress::state::gtid_position;
use crate::progress::{
    decide, Action, AppliedSet, GroupFacts, ProgressTables, Selection, Watermark,
};
use crate::replica::{PreflightError, Replica, ReplicaOptions, LOCK_WAIT};
use crate::schedule::{GroupId, Placement, Scheduler, SchedulerConfig, ShardBy, ShardMap};
use crate::wire::ConnectOptions;

pub use crate::progress::Until;

/// Everything `apply` needs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The mirror or relay-log directory (or files).
    pub source: Source,
    /// The target server.
    pub target: ConnectOptions,
    /// Worker threads (target connections).
    pub workers: usize,
    /// Groups per target transaction at most (1: no batching).
    pub batch_groups: usize,
    /// Bytes of events per target transaction at most.
    pub batch_bytes: usize,
    /// Bytes of groups read but not yet applied, at most.
    pub max_inflight_bytes: u64,
    /// Keep tailing the source.
    pub follow: bool,
    /// Start here when the target has no progress yet: at a position (the
    /// first event applied starts there, as `Exec_Master_Log_Pos` names
    /// it), or after a GTID (the last one already applied, as
    /// `gtid_slave_pos` names it: that group itself is not applied).
    pub from: Option<StartAt>,
    /// Start after the position a backup recorded (`--from-backup`), on a
    /// target without progress (see [`super::start`]).
    pub from_backup: Option<super::start::BackupInfo>,
    /// Stop after this group.
    pub until: Option<Until>,
    /// Which groups to apply: everything not applied yet (the restart
    /// rule), or a catch-up towards another replica's state.
    pub selection: Selection,
    /// Databases → shards.
    pub shard_map: ShardMap,
    /// Schema of the progress tables.
    pub progress: ProgressTables,
    /// How long workers try to reconnect to a lost target.
    pub reconnect_timeout: Duration,
    /// Liveness of the target connections (workers and control): an answer
    /// awaited this long starts a probe through a second connection (see
    /// [`ConnectOptions::probe_after`]); TCP keepalive starts after this
    /// idle time; a write blocked six times this long fails. A stopped or
    /// vanished target is so treated as a lost connection within about
    /// twice this time plus the connect timeout, then reconnected within
    /// `reconnect_timeout`.
    pub liveness: Duration,
    /// Retries of a deadlocked batch.
    pub max_retries: u32,
    /// How often the low-watermark is persisted.
    pub low_watermark_interval: Duration,
    /// Drain and stop (first signal).
    pub stop: Arc<AtomicBool>,
    /// Stop at once (second signal).
    pub abort: Arc<AtomicBool>,
    /// Show a live status line on stderr when it is a terminal.
    pub status_line: bool,
    /// This run belongs to the promotion with this id: the target's freeze
    /// by that promotion neither refuses nor stops it. Any other run
    /// refuses a frozen target, and a running one drains and stops when a
    /// promotion freezes its target (polled every `freeze_poll`).
    pub promotion: Option<String>,
    /// How often a running engine asks its target whether a promotion
    /// froze it.
    pub freeze_poll: Duration,
    /// Log each transaction's check and commit as TLA+ trace records
    /// (tla/README.md, "Trace validation").
    pub trace: Option<crate::trace::TraceSink>,
    /// Groups whose GTID names one of these servers are not applied
    /// (`--ignore-server-ids`: writes that came back around a ring). They
    /// count as done: the watermarks move past them, and a restart does
    /// not read them again.
    pub ignore_server_ids: std::collections::BTreeSet<u32>,
    /// Replication filters (`--include-db` …): what they leave out of a
    /// group is not applied; a group left empty counts as done, as an
    /// ignored one does.
    pub filter: super::filter::Filter,
    /// The live figures, for a metrics endpoint ([`ApplyMetrics::render`]).
    pub metrics: Arc<ApplyMetrics>,
}

impl ApplyOptions {
    /// Groups one worker's queue holds at most under `--shard-by key`
    /// (more than a batch, so that the next batch waits while one commits;
    /// see the scheduler's rule 6). Other shard keys: no limit.
    pub fn queue_limit(&self) -> usize {
        if self.key_shards() {
            (2 * self.batch_groups).clamp(KEY_QUEUE_MIN, KEY_QUEUE_MAX)
        } else {
            usize::MAX
        }
    }

    /// Whether groups are placed by their rows' keys.
    pub fn key_shards(&self) -> bool {
        matches!(self.shard_map.by(), ShardBy::Key(_))
    }

    /// Default worker threads.
    pub const DEFAULT_WORKERS: usize = 16;
    /// Default groups per target transaction (measured best:
    /// docs/benchmarks.md).
    pub const DEFAULT_BATCH_GROUPS: usize = 32;
    /// Default bytes of events per target transaction.
    pub const DEFAULT_BATCH_BYTES: usize = 4 << 20;
    /// Default bytes of groups in flight.
    pub const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 64 << 20;
    /// Default sharding: one shard per database.
    pub const DEFAULT_SHARD_BY: ShardBy = ShardBy::Database;
    /// Default schema of the progress tables.
    pub const DEFAULT_PROGRESS_SCHEMA: &'static str = "parapply";
    /// Default time to keep reconnecting to a lost target.
    pub const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(300);
    /// Default liveness period of the target connections.
    pub const DEFAULT_LIVENESS: Duration = Duration::from_secs(10);

    /// The defaults of `parapply apply` for this source and target (the
    /// `DEFAULT_*` constants; the command line reads them too): 16 workers,
    /// batches of up to 32 groups or 4 MiB, 64 MiB in flight, one shard per
    /// database, progress in schema `parapply`, 300 s of reconnecting, 10
    /// retries of a deadlock, the low-watermark persisted every second, no
    /// status line, a liveness probe after 10 s without an answer;
    /// everything not applied yet is selected
    /// ([`Selection::Restart`]).
    pub fn new(source: Source, target: ConnectOptions) -> Self {
        ApplyOptions {
            source,
            target,
            workers: Self::DEFAULT_WORKERS,
            batch_groups: Self::DEFAULT_BATCH_GROUPS,
            batch_bytes: Self::DEFAULT_BATCH_BYTES,
            max_inflight_bytes: Self::DEFAULT_MAX_INFLIGHT_BYTES,
            follow: false,
            from: None,
            from_backup: None,
            until: None,
            selection: Selection::Restart,
            shard_map: ShardMap::new(Self::DEFAULT_SHARD_BY),
            progress: ProgressTables::new(Self::DEFAULT_PROGRESS_SCHEMA)
                .expect("a valid schema name"),
            reconnect_timeout: Self::DEFAULT_RECONNECT_TIMEOUT,
            liveness: Self::DEFAULT_LIVENESS,
            max_retries: 10,
            low_watermark_interval: Duration::from_secs(1),
            stop: Arc::new(AtomicBool::new(false)),
            abort: Arc::new(AtomicBool::new(false)),
            status_line: false,
            promotion: None,
            freeze_poll: Duration::from_millis(200),
            trace: None,
            ignore_server_ids: std::collections::BTreeSet::new(),
            filter: super::filter::Filter::default(),
            metrics: Arc::new(ApplyMetrics::new()),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplyReport {
    /// Groups applied by this run.
    pub applied: u64,
    /// Groups found already applied and skipped.
    pub skipped: u64,
    /// Groups not applied because of `ignore_server_ids`.
    pub ignored: u64,
    /// Groups the filters left empty (not applied, done).
    pub filtered: u64,
    /// Bytes of events applied.
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// The low-watermark at the end: `domain-server-seq` per domain.
    pub gtid_position: String,
    /// Where the applied prefix ends in the source.
    pub position: Option<BinlogPos>,
    /// Every shard at the same position (a drained stop).
    pub drained: bool,
    /// Attempts repeated after a deadlock or lock-wait timeout.
    pub retries: u64,
    /// Worker connections opened again after they were lost (the target
    /// restarted, stopped answering, or the network failed).
    pub reconnects: u64,
}

/// A run that stopped with an error, and what it applied up to there: the
/// groups it committed are committed, and `report.position` is where the
/// applied prefix ends (the next run resumes there).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ApplyFailure {
    /// Why it stopped.
    pub error: ApplyError,
    /// What it applied before.
    pub report: Box<ApplyReport>,
}

/// Bounds of a worker's queue under key shards ([`ApplyOptions::queue_limit`]).
const KEY_QUEUE_MIN: usize = 4;
const KEY_QUEUE_MAX: usize = 64;
/// A group dispatched to a worker and not reported applied yet.
struct Held {
    id: GroupId,
    group: Arc<Group>,
    shards: Vec<Arc<str>>,
    since: Instant,
}

/// How often the loop checks that the target's own SQL thread is stopped.
const REPLICATION_CHECK: Duration = Duration::from_secs(2);

/// How often reports are taken while none is urgent (see the main loop).
const REPORT_TICK: Duration = Duration::from_millis(1);

/// Runs the engine until the source ends, `--until`, a catch-up's end, a
/// signal, or an error: [`Engine::start`], then [`Engine::run`].
pub fn run(opts: ApplyOptions) -> Result<ApplyReport, ApplyFailure> {
    Engine::start(opts)?.run()
}

/// A group in source order, for the low-watermark.
struct Tracked {
    state: TrackState,
    /// A barrier: the low-watermark is persisted once it passes.
    barrier: bool,
    /// Its end: the low-watermark's value once everything up to it is applied.
    mark: Watermark,
    domain: u32,
    timestamp: u32,
}

enum TrackState {
    /// Found applied already.
    Skipped,
    /// Pushed to the scheduler under this id, with its bytes.
    Pushed(GroupId, u64),
    /// Not selected (a catch-up's goal lacks it): the low-watermark cannot
    /// pass it.
    Passed,
}

/// The groups admitted, in source order, until they are part of the
/// applied prefix.
///
/// A pushed group is applied iff its id is at most
/// [`Scheduler::low_watermark`] — the largest pushed id up to which every
/// pushed id is complete — once the entries before it are gone (by
/// induction they are applied or skipped, so the scheduler's prefix
/// reaches it exactly when it completes). Skipped groups are applied by
/// definition, passed ones never.
#[derive(Default)]
struct Prefix {
    track: VecDeque<Tracked>,
}

impl Prefix {
    /// The next entry that joined the applied prefix, given the scheduler's
    /// low-watermark.
    fn pop(&mut self, low: Option<GroupId>) -> Option<Tracked> {
        let done = match &self.track.front()?.state {
            TrackState::Skipped => true,
            TrackState::Pushed(id, _) => low.is_some_and(|l| *id <= l),
            TrackState::Passed => false,
        };
        if done {
            self.track.pop_front()
        } else {
            None
        }
    }
}

/// What the engine counts.
#[derive(Default)]
struct Counts {
    applied: u64,
    skipped: u64,
    ignored: u64,
    filtered: u64,
    bytes: u64,
}

/// The low-watermark being advanced and persisted.
struct Low {
    /// `domain → L`.
    marks: BTreeMap<u32, Watermark>,
    /// Where the applied prefix ends.
    position: Option<BinlogPos>,
    /// Moved since last persisted.
    dirty: bool,
    last_persist: Instant,
    /// Timestamp of the last group in the prefix (for the lag).
    last_ts: u32,
}

/// The running engine: the target's control connection, the threads, and
/// the loop's state. See the module doc for its steps.
pub struct Engine {
    opts: ApplyOptions,
    replica: Replica,
    own: AppliedSet,
    started: Instant,

    queues: Vec<Sender<WorkItem>>,
    workers: Vec<JoinHandle<()>>,
    reports: Receiver<Report>,
    reader: Option<JoinHandle<()>>,
    reader_stop: Arc<AtomicBool>,
    groups: Receiver<Result<Vec<Group>, ReadError>>,

    sched: Scheduler,
    /// Pushed, not yet dispatched.
    items: HashMap<GroupId, WorkItem>,
    prefix: Prefix,
    waiting: VecDeque<Group>,
    reading: bool,
    next_id: GroupId,
    low: Low,
    counts: Counts,
    /// The first error; the loop ends.
    failure: Option<ApplyError>,
    /// Key shards: a DDL was pushed; the groups after it are placed once
    /// it is applied and the target's keys are read again.
    refresh_keys: bool,
    /// Workers whose queue was found closed: their report says why.
    lost: HashSet<usize>,
    /// Per worker, the groups dispatched to it and not reported applied, in
    /// queue order: the front is the one it works on (named if it panics).
    held: Vec<VecDeque<Held>>,
    /// Attempts the workers repeated after a deadlock or lock-wait timeout.
    retries: Arc<AtomicU64>,
    /// Worker connections opened again.
    reconnects: Arc<AtomicU64>,
    status: StatusLine,
    /// When the target was last asked whether a promotion froze it.
    freeze_checked: Instant,
    /// The reader's error, once the groups read before it are applied
    /// (then it becomes the failure).
    read_error: Option<ReadError>,
    /// When the target's own replication was last checked for.
    replication_checked: Instant,
    /// `--from GTID`: the group of this GTID, read first, counts as
    /// applied already (a start GTID means "after this one").
    after: Option<MariaGtid>,
}

impl Engine {
    /// Connects to the target, runs the preflight checks, takes the
    /// applier lock, reads the state and starts the workers and the
    /// reader ("Start" in the module doc). An error before any thread
    /// started returns at once, with an empty report.
    pub fn start(mut opts: ApplyOptions) -> Result<Engine, ApplyFailure> {
        let started = Instant::now();
        opts.target = with_liveness(opts.target, opts.liveness);
        let fail = |error: ApplyError| ApplyFailure {
            error,
            report: Box::new(ApplyReport {
                applied: 0,
                skipped: 0,
                ignored: 0,
                filtered: 0,
                bytes: 0,
                seconds: started.elapsed().as_secs_f64(),
                gtid_position: String::new(),
                position: None,
                drained: false,
                retries: 0,
                reconnects: 0,
            }),
        };
        let (mut replica, setup) = preflight(&opts).map_err(fail)?;
        let mut opts = opts;
        if opts.key_shards() {
            let catalog = replica
                .key_catalog()
                .map_err(|e| fail(ApplyError::from(e)))?;
            tracing::info!(tables = catalog.len(), "read the target's keys");
            opts.shard_map.set_catalog(Arc::new(catalog));
        }
        let mut setup = setup;
        let super::start::Start { at: start, seeds } =
            super::start::start(&opts, &mut replica, &setup.own.state).map_err(fail)?;
        let seeded = !seeds.is_empty();
        setup.own.state.low.extend(seeds);
        let after = match (&start, &opts.from) {
            (StartAt::Gtid(g), Some(StartAt::Gtid(from))) if g == from => Some(*g),
            _ => None,
        };
        tracing::info!(start = ?start, workers = opts.workers, "starting apply");

        let (report_tx, reports) = unbounded::<Report>();
        // A closed channel until the reader starts (see `spawn`).
        let (_, groups) = bounded(0);
        let state = &setup.own.state;
        let mut engine = Engine {
            sched: Scheduler::new(SchedulerConfig {
                workers: opts.workers,
                max_inflight_bytes: opts.max_inflight_bytes,
                max_queue: opts.queue_limit(),
            }),
            low: Low {
                marks: state.low.clone(),
                position: state.resume_position(),
                // A GTID position's low-watermarks are written at once.
                dirty: seeded,
                last_persist: Instant::now(),
                last_ts: 0,
            },
            status: StatusLine::new(opts.status_line && std::io::stderr().is_terminal()),
            own: setup.own,
            replica,
            started,
            queues: Vec::new(),
            workers: Vec::new(),
            reports,
            reader: None,
            reader_stop: Arc::new(AtomicBool::new(false)),
            groups,
            items: HashMap::new(),
            prefix: Prefix::default(),
            waiting: VecDeque::new(),
            reading: true,
            next_id: 0,
            counts: Counts::default(),
            failure: None,
            refresh_keys: false,
            lost: HashSet::new(),
            held: Vec::new(),
            freeze_checked: Instant::now(),
            retries: opts.metrics.retries.clone(),
            reconnects: opts.metrics.reconnects.clone(),
            read_error: None,
            replication_checked: Instant::now(),
            after,
            opts,
        };
        if let Err(error) = engine.spawn(start, setup.collations, setup.row_events, report_tx) {
            // Joins what did start.
            let (report, _) = engine.finish();
            return Err(ApplyFailure {
                error,
                report: Box::new(report),
            });
        }
        Ok(engine)
    }

    /// Starts the workers and the reader.
    fn spawn(
        &mut self,
        start: StartAt,
        collations: Collations,
        row_events: bool,
        report_tx: Sender<Report>,
    ) -> Result<(), ApplyError> {
        let collations = Arc::new(collations);
        let shard_rows: HashSet<(u32, Arc<str>)> = self
            .own
            .state
            .shards
            .keys()
            .map(|(d, s)| (*d, Arc::from(s.as_str())))
            .collect();
        let shard_rows = Arc::new(Mutex::new(shard_rows));
        for index in 0..self.opts.workers {
            let (tx, rx) = unbounded::<WorkItem>();
            let cfg = WorkerConfig {
                index,
                target: self.opts.target.clone(),
                progress: self.opts.progress.clone(),
                collations: collations.clone(),
                batch_groups: self.opts.batch_groups.max(1),
                batch_bytes: self.opts.batch_bytes,
                max_retries: self.opts.max_retries,
                reconnect_timeout: self.opts.reconnect_timeout,
                abort: self.opts.abort.clone(),
                retries: self.retries.clone(),
                reconnects: self.reconnects.clone(),
                shard_rows: shard_rows.clone(),
                row_events,
                trace: self.opts.trace.clone(),
            };
            let rtx = report_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || worker::run(cfg, rx, rtx))
                .map_err(|error| DefiniteError::Spawn {
                    what: "worker",
                    error,
                })?;
            self.workers.push(handle);
            self.queues.push(tx);
            self.held.push(VecDeque::new());
        }
        drop(report_tx);

        // Groups travel in chunks (fewer thread wake-ups; see `read_groups`).
        let (group_tx, group_rx) = bounded::<Result<Vec<Group>, ReadError>>(2);
        let ropts = ReaderOptions {
            start,
            follow: self.opts.follow,
            stop: Some(self.reader_stop.clone()),
            ..ReaderOptions::default()
        };
        let source = self.opts.source.clone();
        let chunk = if self.opts.follow {
            1
        } else {
            READ_CHUNK_GROUPS
        };
        let handle = std::thread::Builder::new()
            .name("reader".into())
            .spawn(move || read_groups(source, ropts, chunk, group_tx))
            .map_err(|error| DefiniteError::Spawn {
                what: "reader",
                error,
            })?;
        self.reader = Some(handle);
        self.groups = group_rx;
        Ok(())
    }

    /// The loop of "Steady state" in the module doc, then [`Engine::shutdown`].
    pub fn run(mut self) -> Result<ApplyReport, ApplyFailure> {
        while self.turn() {}
        self.status.clear();
        self.shutdown()
    }

    /// One turn of the loop; `false` when it ends.
    fn turn(&mut self) -> bool {
        self.dispatch();
        if self.opts.abort.load(Ordering::Relaxed) && self.failure.is_none() {
            self.failure = Some(ApplyError::Aborted);
        }
        let stopping = self.failure.is_some() || !self.lost.is_empty();
        if stopping || self.opts.stop.load(Ordering::Relaxed) {
            self.end_reading();
        }
        if stopping || (!self.reading && self.waiting.is_empty() && self.sched.is_idle()) {
            // The groups read before a read error are applied: now it is
            // the run's error.
            if let Some(e) = self.read_error.take() {
                self.failure.get_or_insert(e.into());
            }
            return false;
        }
        if self.admit_waiting() {
            return true;
        }
        self.wait_for_reports_or_groups();
        self.advance_low();
        if self.low.dirty && self.low.last_persist.elapsed() >= self.opts.low_watermark_interval {
            self.persist_low();
        }
        if self.freeze_checked.elapsed() >= self.opts.freeze_poll {
            self.check_freeze();
        }
        self.check_replication();
        self.opts.metrics.backlog(
            self.sched.in_flight(),
            self.prefix
                .track
                .front()
                .map(|t| t.timestamp)
                .or_else(|| self.waiting.front().map(|g| g.timestamp)),
        );
        self.status.show(
            self.counts.applied,
            self.sched.in_flight(),
            self.low.last_ts,
        );
        true
    }

    /// Sends what the scheduler lets run to the workers' queues.
    fn dispatch(&mut self) {
        while let Some(d) = self.sched.poll_dispatch() {
            let Some(item) = self.items.remove(&d.id) else {
                continue;
            };
            if item.barrier && item.group.kind == GroupKind::Ddl && self.opts.key_shards() {
                // Everything before the DDL is applied: persist the
                // low-watermark up to it first. A restart then never places
                // a group from before the DDL by the keys after it.
                self.advance_low();
                self.persist_low();
            }
            self.held[d.worker].push_back(Held {
                id: d.id,
                group: item.group.clone(),
                shards: item.shards.clone(),
                since: Instant::now(),
            });
            if self.queues[d.worker].send(item).is_err() {
                // The worker stopped; its report (taken at shutdown) says why.
                self.lost.insert(d.worker);
            }
        }
    }

    /// No more groups are read.
    fn end_reading(&mut self) {
        self.reading = false;
        self.waiting.clear();
    }

    /// Admits waiting groups while the scheduler has room for them;
    /// returns whether any was.
    fn admit_waiting(&mut self) -> bool {
        let mut admitted = false;
        while self.failure.is_none()
            && self.keys_current()
            && self
                .waiting
                .front()
                .is_some_and(|g| self.sched.has_room(g.bytes.len() as u64))
        {
            let Some(g) = self.waiting.pop_front() else {
                break;
            };
            if let Err(e) = self.admit(g) {
                self.failure = Some(e);
            }
            admitted = true;
        }
        admitted
    }

    /// Key shards: whether the target's keys are current, so that the next
    /// group may be placed. After a DDL they are read again once the DDL
    /// (a barrier: nothing runs beside it) is applied.
    fn keys_current(&mut self) -> bool {
        if !self.refresh_keys {
            return true;
        }
        if !self.sched.is_idle() {
            return false;
        }
        match self.replica.key_catalog() {
            Ok(catalog) => {
                self.opts.shard_map.set_catalog(Arc::new(catalog));
                self.refresh_keys = false;
                true
            }
            Err(e) => {
                self.failure.get_or_insert(e.into());
                false
            }
        }
    }

    /// Decides one group ([`decide`]): skipped, pushed to the scheduler,
    /// passed over, or the end of reading.
    fn admit(&mut self, g: Group) -> Result<(), ApplyError> {
        let Some(gtid) = g.maria_gtid() else {
            return Err(DefiniteError::NoGtid {
                group: GroupRef::of(&g),
            }
            .into());
        };
        let (g, empty) = match self.opts.filter.apply(g) {
            Ok(Filtered::Keep(g)) => (g, false),
            Ok(Filtered::Empty(g)) => (g, true),
            Err(e) => return Err(e.into()),
        };
        let placement = self.opts.shard_map.placement(&g);
        let (shards, barrier): (Vec<Arc<str>>, bool) = match &placement {
            Placement::Shards(s) => (s.iter().map(|x| x.0.clone()).collect(), false),
            Placement::Barrier(_) => (Vec::new(), true),
        };
        let end = g.end();
        if self.after.take_if(|a| *a == gtid).is_some() {
            // `--from GTID`: this one is applied already.
            self.counts.skipped += 1;
            self.opts.metrics.skipped();
            self.prefix.track.push_back(Tracked {
                state: TrackState::Skipped,
                barrier,
                mark: Watermark {
                    seq_no: gtid.seq,
                    server_id: gtid.server,
                    end,
                },
                domain: gtid.domain,
                timestamp: g.timestamp,
            });
            return Ok(());
        }
        let decision = decide(
            &self.opts.selection,
            self.opts.until.as_ref(),
            &self.own,
            &GroupFacts {
                gtid,
                end: &end,
                shards: (!barrier).then_some(&shards[..]),
                timestamp: g.timestamp,
            },
        );
        if decision.last {
            self.end_reading();
        }
        let mark = Watermark {
            seq_no: gtid.seq,
            server_id: gtid.server,
            end,
        };
        let state = match decision.action {
            Action::Apply if self.opts.ignore_server_ids.contains(&gtid.server) => {
                // Not applied, and done: the watermarks move past it.
                self.counts.ignored += 1;
                TrackState::Skipped
            }
            Action::Apply if empty => {
                // Filtered out whole: done as well.
                self.counts.filtered += 1;
                TrackState::Skipped
            }
            Action::Stop => {
                self.end_reading();
                return Ok(());
            }
            Action::Skip => {
                self.counts.skipped += 1;
                self.opts.metrics.skipped();
                TrackState::Skipped
            }
            Action::Pass => TrackState::Passed,
            Action::Apply => {
                let id = self.next_id;
                self.next_id += 1;
                self.sched.push(id, placement, g.bytes.len() as u64)?;
                self.refresh_keys |= self.opts.key_shards() && g.kind == GroupKind::Ddl;
                let group = Arc::new(g);
                self.items.insert(
                    id,
                    WorkItem {
                        id,
                        group: group.clone(),
                        shards,
                        barrier,
                    },
                );
                let timestamp = group.timestamp;
                self.prefix.track.push_back(Tracked {
                    state: TrackState::Pushed(id, group.bytes.len() as u64),
                    barrier,
                    mark,
                    domain: gtid.domain,
                    timestamp,
                });
                return Ok(());
            }
        };
        self.prefix.track.push_back(Tracked {
            state,
            barrier,
            mark,
            domain: gtid.domain,
            timestamp: g.timestamp,
        });
        Ok(())
    }

    /// Waits for reports or for groups from the reader, and takes them.
    fn wait_for_reports_or_groups(&mut self) {
        let group_rx = if self.reading && self.waiting.is_empty() {
            self.groups.clone()
        } else {
            never()
        };
        // While every pushed group is dispatched and the workers hold
        // plenty, a completion can wait: take the reports every
        // REPORT_TICK instead of waking up for each one (a wake-up per
        // transaction is a large share of parapply's CPU at --batch 1).
        let lazy = self.sched.in_flight() > 0
            && self.sched.pending() == 0
            && (self.waiting.is_empty()
                || self.sched.inflight_bytes() > self.opts.max_inflight_bytes / 2);
        let report_rx = if lazy { never() } else { self.reports.clone() };
        let tick = if lazy {
            REPORT_TICK
        } else {
            Duration::from_millis(200)
        };
        select! {
            recv(report_rx) -> r => match r {
                Ok(r) => self.take_report(r),
                // Every worker stopped; their reports said why.
                Err(_) => self.lost.extend(0..self.opts.workers),
            },
            recv(group_rx) -> g => match g {
                Ok(Ok(chunk)) => self.waiting.extend(chunk),
                Ok(Err(e)) => {
                    // Reading ends here; what was read before it is
                    // applied first (up to the bad place).
                    tracing::error!(error = %e, "reading the source failed; applying the groups read before it, then stopping");
                    self.reading = false;
                    self.read_error = Some(e);
                }
                Err(_) => self.reading = false,
            },
            default(tick) => self.check_workers(),
        }
        self.take_reports();
    }

    /// A worker that ended while its queue is open has failed (its report
    /// says why) or panicked: either way the loop ends. Asked when nothing
    /// else happened, so that a panicked worker's groups are not waited
    /// for forever.
    fn check_workers(&mut self) {
        for (index, h) in self.workers.iter().enumerate() {
            if h.is_finished() {
                self.lost.insert(index);
            }
        }
    }

    /// Takes every report already queued.
    fn take_reports(&mut self) {
        while let Ok(r) = self.reports.try_recv() {
            self.take_report(r);
        }
    }

    /// Books one worker's report.
    fn take_report(&mut self, r: Report) {
        match r {
            Report::Applied { worker, ids } => {
                // A worker reports its queue's groups in order.
                if let Some(held) = self.held.get_mut(worker) {
                    for id in &ids {
                        let done = match held.front() {
                            Some(front) if front.id == *id => held.pop_front(),
                            _ => held
                                .iter()
                                .position(|h| h.id == *id)
                                .and_then(|i| held.remove(i)),
                        };
                        if let Some(h) = done {
                            self.opts
                                .metrics
                                .applied(&h.group, &h.shards, h.since.elapsed());
                        }
                    }
                }
                if let Err(e) = self.sched.complete_all(ids) {
                    self.failure.get_or_insert(e.into());
                }
            }
            Report::Failed { error, .. } => {
                // The other workers roll back and stop.
                self.opts.abort.store(true, Ordering::Relaxed);
                // A worker's own error wins over the `Aborted` its failure
                // caused elsewhere.
                if matches!(self.failure, None | Some(ApplyError::Aborted)) {
                    self.failure = Some(error);
                }
            }
        }
    }

    /// Moves the low-watermark over the groups that joined the applied
    /// prefix; after a barrier it is persisted at once.
    fn advance_low(&mut self) {
        while let Some(t) = self.prefix.pop(self.sched.low_watermark()) {
            if let TrackState::Pushed(_, bytes) = t.state {
                self.counts.applied += 1;
                self.counts.bytes += bytes;
            }
            if t.barrier {
                self.low.last_persist = Instant::now() - self.opts.low_watermark_interval;
            }
            self.low.dirty |= self.low.marks.get(&t.domain) != Some(&t.mark);
            self.low.position = Some(t.mark.end.clone());
            self.opts
                .metrics
                .low_watermark(t.domain, &t.mark, t.timestamp);
            self.low.marks.insert(t.domain, t.mark);
            self.low.last_ts = t.timestamp;
        }
    }

    /// A promotion froze the target (and this run is not part of it):
    /// drain and stop, as on a first signal; the lock is released when the
    /// engine ends. A lost control connection is opened again (within the
    /// reconnect time, as for the low-watermark's write) and the flag read
    /// at the next poll; any other error reading it ends the loop.
    fn check_freeze(&mut self) {
        self.freeze_checked = Instant::now();
        match self.replica.frozen_by() {
            Ok(Some(by)) if self.opts.promotion.as_deref() != Some(by.as_str()) => {
                if !self.opts.stop.swap(true, Ordering::Relaxed) {
                    tracing::warn!(promotion = %by, "a promotion froze this target: draining and stopping");
                }
            }
            Ok(_) => {}
            Err(crate::replica::ReplicaError::Query { error, .. })
                if error.is_connection_lost() =>
            {
                tracing::warn!(error = %error, "lost the control connection to the target; reconnecting");
                if let Err(e) = self.replica.reconnect(&self.opts.abort, *error) {
                    self.failure.get_or_insert(e.into());
                }
            }
            Err(e) => {
                self.failure.get_or_insert(e.into());
            }
        }
    }

    /// Writes the low-watermark (reconnecting if needed); an error ends the
    /// loop.
    fn persist_low(&mut self) {
        match self.replica.persist_low(&self.low.marks, &self.opts.abort) {
            Ok(()) => {
                self.low.dirty = false;
                self.low.last_persist = Instant::now();
            }
            Err(e) => {
                self.failure.get_or_insert(e.into());
            }
        }
    }

    /// Every [`REPLICATION_CHECK`]: the target's own SQL thread must stay
    /// stopped (a `START SLAVE` while parapply applies would apply the same
    /// transactions twice). Other errors of the check are left to the next
    /// write of the control connection, which reconnects.
    fn check_replication(&mut self) {
        if self.replication_checked.elapsed() < REPLICATION_CHECK {
            return;
        }
        self.replication_checked = Instant::now();
        match self.replica.ensure_not_replicating() {
            Ok(()) => {}
            Err(e @ crate::replica::ReplicaError::Preflight(_)) => {
                self.failure.get_or_insert(e.into());
            }
            Err(e) => tracing::debug!(error = %e, "could not check the target's replication"),
        }
    }

    /// "Shutdown" in the module doc: the one exit of every run.
    pub fn shutdown(self) -> Result<ApplyReport, ApplyFailure> {
        match self.finish() {
            (report, None) => Ok(report),
            (report, Some(error)) => Err(ApplyFailure {
                error,
                report: Box::new(report),
            }),
        }
    }

    /// Steps 1–6 of "Shutdown": what was applied, and the error if any.
    fn finish(mut self) -> (ApplyReport, Option<ApplyError>) {
        // 1. The reader.
        self.reader_stop.store(true, Ordering::Relaxed);
        let (_, closed) = bounded(0);
        drop(std::mem::replace(&mut self.groups, closed));
        // 2. On an error the workers roll back and stop; after a reader
        //    error they finish what they hold.
        let drain = matches!(
            self.failure,
            None | Some(ApplyError::Definite(DefiniteError::Read(_)))
        ) && self.lost.is_empty();
        if !drain {
            self.opts.abort.store(true, Ordering::Relaxed);
        }
        // 3. Close the queues, join every thread.
        self.queues.clear();
        let mut panics = Vec::new();
        for (index, h) in std::mem::take(&mut self.workers).into_iter().enumerate() {
            if let Err(p) = h.join() {
                panics.push((index, panic_message(&*p)));
            }
        }
        if let Some(h) = self.reader.take() {
            if let Err(p) = h.join() {
                self.failure.get_or_insert(
                    DefiniteError::ReaderPanicked {
                        message: panic_message(&*p),
                    }
                    .into(),
                );
            }
        }
        for (worker, message) in panics {
            // The group it held: its oldest incomplete one.
            let group = self.held[worker].front().map(|h| GroupRef::of(&h.group));
            tracing::error!(worker, group = ?group, %message, "a worker panicked");
            let e = DefiniteError::WorkerPanicked {
                worker,
                group,
                message,
            };
            if matches!(self.failure, None | Some(ApplyError::Aborted)) {
                self.failure = Some(e.into());
            }
        }
        // 4. Late reports: groups committed before the workers stopped,
        //    and the errors of workers found gone.
        self.take_reports();
        if self.failure.is_none() {
            if let Some(&worker) = self.lost.iter().min() {
                self.failure = Some(DefiniteError::WorkerVanished { worker }.into());
            }
        }
        // 5. The low-watermark.
        self.advance_low();
        if self.low.dirty {
            // (After a second signal, without reconnecting.)
            if let Err(e) = self.replica.persist_low(&self.low.marks, &self.opts.abort) {
                tracing::warn!(error = %e, "could not persist the low-watermark; the shard rows still hold the progress");
            }
        }
        // 6. The result.
        let report = ApplyReport {
            applied: self.counts.applied,
            skipped: self.counts.skipped,
            ignored: self.counts.ignored,
            filtered: self.counts.filtered,
            bytes: self.counts.bytes,
            seconds: self.started.elapsed().as_secs_f64(),
            gtid_position: gtid_position(&self.low.marks),
            position: self.low.position.clone(),
            drained: self.prefix.track.is_empty(),
            retries: self.retries.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
        };
        (report, self.failure.take())
    }
}

/// The text of a thread's panic.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// `target` with the liveness settings of [`ApplyOptions::liveness`]
/// (those the caller set itself are kept).
fn with_liveness(mut target: ConnectOptions, liveness: Duration) -> ConnectOptions {
    target.probe_after.get_or_insert(liveness);
    target.keepalive.get_or_insert(liveness);
    target.write_timeout.get_or_insert(liveness * 6);
    target
}

/// What preflight learned.
struct Setup {
    own: AppliedSet,
    collations: Collations,
    /// `shard_progress` has the layout the workers' row events describe.
    row_events: bool,
}

/// Steps 1 and 2 of "Start" in the module doc.
fn preflight(opts: &ApplyOptions) -> Result<(Replica, Setup), ApplyError> {
    // A catch-up's goal must speak of the same shards (checked before
    // anything on the target changes).
    if let Selection::CatchUp(goal) = &opts.selection {
        let ours = opts.shard_map.fingerprint();
        if let Some(theirs) = goal.state.shard_map.as_ref().filter(|m| **m != ours) {
            return Err(PreflightError::GoalShardMap {
                addr: opts.target.addr(),
                goal: theirs.clone(),
                ours,
            }
            .into());
        }
    }
    let mut r = Replica::connect(ReplicaOptions {
        target: opts.target.clone(),
        progress: opts.progress.clone(),
        reconnect_timeout: opts.reconnect_timeout,
    })?;
    r.ensure_log_bin()?;
    if opts.workers > 1 {
        r.ensure_gtid_strict_mode_off()?;
    }
    // Replaying binlog events: the source's own FDE is harmless.
    let fde = {
        let mut reader = BinlogReader::open(opts.source.clone(), ReaderOptions::default())?;
        let _ = reader.next()?;
        reader.format().map(|f| f.raw_event.clone())
    };
    if let Some(fde) = fde {
        r.ensure_binlog_replay(&binlog_statement(&fde))?;
    }
    r.ensure_gtid_seq_no()?;
    r.ensure_not_replicating()?;
    let row_events = r.ensure_progress_tables()?;
    r.ensure_sql_log_bin_off()?;
    let stop = || opts.abort.load(Ordering::Relaxed) || opts.stop.load(Ordering::Relaxed);
    r.take_applier_lock(LOCK_WAIT, &stop)?;
    r.ensure_not_frozen(opts.promotion.as_deref())?;
    for db in r.drop_staging_tables(CTAS_STAGING_TABLE)? {
        tracing::warn!(
            "dropped the staging table of a CREATE TABLE … SELECT that an earlier run \
             left in {db} (it died right after the statement)"
        );
    }
    let state = r.read_state()?;
    r.ensure_shard_map(&state, &opts.shard_map.fingerprint())?;
    let binlog_state = r.gtid_binlog_state()?;
    let collations = Collations(r.collations()?);
    Ok((
        r,
        Setup {
            own: AppliedSet {
                state,
                binlog_state,
            },
            collations,
            row_events,
        },
    ))
}

/// Groups per chunk handed from the reader to the engine (when not tailing).
const READ_CHUNK_GROUPS: usize = 64;
/// Bytes per chunk at most.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// The reader thread: groups in chunks of up to `chunk` groups (and
/// [`READ_CHUNK_BYTES`]), so that the engine wakes once per chunk. Tailing
/// uses chunks of one: a group must not wait for others that may not come.
fn read_groups(
    source: Source,
    opts: ReaderOptions,
    chunk: usize,
    tx: Sender<Result<Vec<Group>, ReadError>>,
) {
    let reader = match BinlogReader::open(source, opts) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    let mut grouper = Grouper::new(reader);
    let mut out: Vec<Group> = Vec::new();
    let mut bytes = 0;
    loop {
        match grouper.next() {
            Ok(Some(g)) => {
                bytes += g.bytes.len();
                out.push(g);
                if out.len() >= chunk || bytes >= READ_CHUNK_BYTES {
                    bytes = 0;
                    if tx.send(Ok(std::mem::take(&mut out))).is_err() {
                        return;
                    }
                }
            }
            Ok(None) => {
                if !out.is_empty() {
                    let _ = tx.send(Ok(out));
                }
                return;
            }
            Err(e) => {
                if !out.is_empty() && tx.send(Ok(std::mem::take(&mut out))).is_err() {
                    return;
                }
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

/// The live line on a terminal: throughput, lag, groups in flight.
struct StatusLine {
    on: bool,
    last: Instant,
    last_applied: u64,
}

impl StatusLine {
    fn new(on: bool) -> Self {
        StatusLine {
            on,
            last: Instant::now(),
            last_applied: 0,
        }
    }

    fn show(&mut self, applied: u64, in_flight: usize, last_ts: u32) {
        if !self.on || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        let rate = (applied - self.last_applied) as f64 / self.last.elapsed().as_secs_f64();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let lag = if last_ts == 0 {
            "-".to_string()
        } else {
            format!("{}s", now.saturating_sub(u64::from(last_ts)))
        };
        eprint!("\r\x1b[2Kapplied {applied} groups, {rate:.0}/s, lag {lag}, in flight {in_flight}");
        self.last = Instant::now();
        self.last_applied = applied;
    }

    fn clear(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked(state: TrackState, seq: u64) -> Tracked {
        Tracked {
            state,
            barrier: false,
            mark: Watermark {
                seq_no: seq,
                server_id: 1,
                end: BinlogPos::new("bin.000001", seq * 100),
            },
            domain: 0,
            timestamp: 0,
        }
    }

    /// The applied prefix follows the scheduler's low-watermark: pushed
    /// groups complete out of order, skipped ones are applied by definition,
    /// a passed one holds everything after it.
    #[test]
    fn the_prefix_follows_the_schedulers_low_watermark() {
        let mut sched = Scheduler::new(SchedulerConfig::new(2, 1 << 20));
        let mut prefix = Prefix::default();
        // seq 1: skipped; 2: id 0 (a); 3: id 1 (b); 4: skipped; 5: id 2 (a);
        // 6: passed; 7: id 3 (b).
        let mut push = |prefix: &mut Prefix, id: GroupId, shard: &str, seq: u64| {
            sched.push(id, Placement::shards([shard]), 1).unwrap();
            prefix
                .track
                .push_back(tracked(TrackState::Pushed(id, 10), seq));
        };
        prefix.track.push_back(tracked(TrackState::Skipped, 1));
        push(&mut prefix, 0, "a", 2);
        push(&mut prefix, 1, "b", 3);
        prefix.track.push_back(tracked(TrackState::Skipped, 4));
        push(&mut prefix, 2, "a", 5);
        prefix.track.push_back(tracked(TrackState::Passed, 6));
        push(&mut prefix, 3, "b", 7);
        let _ = sched.ready();
        let popped = |prefix: &mut Prefix, sched: &Scheduler| {
            std::iter::from_fn(|| prefix.pop(sched.low_watermark()))
                .map(|t| t.mark.seq_no)
                .collect::<Vec<_>>()
        };
        assert_eq!(popped(&mut prefix, &sched), [1]);
        // b's group completes first: the prefix waits for a's.
        sched.complete(1).unwrap();
        assert_eq!(popped(&mut prefix, &sched), Vec::<u64>::new());
        sched.complete(0).unwrap();
        assert_eq!(popped(&mut prefix, &sched), [2, 3, 4]);
        sched.complete(3).unwrap();
        sched.complete(2).unwrap();
        // 6 was passed over: 7, complete, stays behind it.
        assert_eq!(popped(&mut prefix, &sched), [5]);
        assert_eq!(prefix.track.len(), 2);
    }
}
