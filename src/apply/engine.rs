//! The engine: connects the reader, the scheduler and the workers, and
//! contains no apply logic of its own.
//!
//! ```text
//! reader thread ──groups──► engine loop ──work items──► worker k (own connection)
//!  (BinlogReader +           (skip rule, scheduler,  ◄──reports──
//!   Grouper)                  low-watermark)
//! ```
//!
//! # Start
//!
//! 1. Preflight on a control connection: the target answers, has `log_bin`
//!    on and `gtid_strict_mode` off (out-of-order commits break it), the user
//!    may replay binlog events (`BINLOG` of the source's Format_description
//!    event is tried) and create the progress tables.
//! 2. The progress tables are created if missing (through the binary log,
//!    once) and read; a different shard map than the one that wrote them is
//!    refused unless the state is drained. From here on the control
//!    connection writes with `sql_log_bin=0`: parapply's bookkeeping stays
//!    out of the target's binary log.
//! 3. Reading starts at the low-watermark (or the source's beginning, or
//!    `--from` on a target without progress). Each group is checked against
//!    the restart rule of [`crate::progress`]: applied groups are skipped.
//!
//! # Steady state
//!
//! The loop pulls a group from the reader whenever the scheduler has room
//! for its bytes, pushes it, sends what the scheduler dispatches to the
//! workers' queues, and books the workers' reports — at once when a
//! completion can unblock something (a group waiting to be dispatched, the
//! memory budget), otherwise every millisecond, so that it does not wake
//! up once per transaction. Groups are tracked in source order; the longest
//! fully applied prefix is the low-watermark, persisted every
//! `low_watermark_interval`, after each barrier, and at the end. If the
//! control connection is lost (the target restarted), it reconnects within
//! the reconnect time and takes the applier lock back.
//!
//! # Shutdown
//!
//! 1. The source ends (without `--follow`), `--until` is reached, or the
//!    `stop` flag is set (first SIGINT/SIGTERM): no more groups are pulled.
//! 2. Everything pushed is applied; the applied set is then one prefix of the
//!    source — every shard at the same position.
//! 3. The low-watermark is persisted; the worker queues are closed and every
//!    thread is joined.
//!
//! With the `abort` flag (second signal) or a worker's fatal error, workers
//! roll back their open transaction instead of finishing their queue: each
//! shard is still a prefix (consistent), but shards may differ; the next
//! start continues from there.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, never, select, unbounded, Sender};

use super::error::ApplyError;
use super::replay::{binlog_statement, Collations};
use super::worker::{self, Report, WorkItem, WorkerConfig};
use crate::binlog::{BinlogReader, ReadError, ReaderOptions, Source};
use crate::group::{Group, Grouper};
use crate::position::{BinlogPos, MariaGtid, StartAt};
use crate::progress::{
    parse_gtid_list, Applied, ProgressTables, ReplicaState, Watermark, SHARD_PROGRESS_LAYOUT,
};
use crate::schedule::{Placement, Scheduler, SchedulerConfig, ShardBy, ShardMap};
use crate::wire::{Conn, ConnectOptions, WireError};

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
    /// Start here when the target has no progress yet.
    pub from: Option<StartAt>,
    /// Stop after this group.
    pub until: Option<Until>,
    /// Databases → shards.
    pub shard_map: ShardMap,
    /// Schema of the progress tables.
    pub progress: ProgressTables,
    /// How long workers try to reconnect to a lost target.
    pub reconnect_timeout: Duration,
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
}

impl ApplyOptions {
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

    /// The defaults of `parapply apply` for this source and target (the
    /// `DEFAULT_*` constants; the command line reads them too): 16 workers,
    /// batches of up to 32 groups or 4 MiB, 64 MiB in flight, one shard per
    /// database, progress in schema `parapply`, 300 s of reconnecting, 10
    /// retries of a deadlock, the low-watermark persisted every second, no
    /// status line.
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
            until: None,
            shard_map: ShardMap::new(Self::DEFAULT_SHARD_BY),
            progress: ProgressTables::new(Self::DEFAULT_PROGRESS_SCHEMA)
                .expect("a valid schema name"),
            reconnect_timeout: Self::DEFAULT_RECONNECT_TIMEOUT,
            max_retries: 10,
            low_watermark_interval: Duration::from_secs(1),
            stop: Arc::new(AtomicBool::new(false)),
            abort: Arc::new(AtomicBool::new(false)),
            status_line: false,
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
}

/// A group in source order, for the low-watermark.
struct Tracked {
    /// `None` for a group skipped as already applied.
    id: Option<u64>,
    bytes: u64,
    barrier: bool,
    domain: u32,
    mark: Watermark,
    timestamp: u32,
}

/// How often reports are taken while none is urgent (see the main loop).
const REPORT_TICK: Duration = Duration::from_millis(1);

/// Runs the engine until the source ends, `--until`, a signal, or an error.
pub fn run(opts: ApplyOptions) -> Result<ApplyReport, ApplyError> {
    let started = Instant::now();
    let mut control = connect(&opts.target)?;
    let setup = preflight(&mut control, &opts)?;
    let state = setup.state;
    let binlog_state = setup.binlog_state;
    let collations = Arc::new(setup.collations);
    let shard_rows: HashSet<(u32, Arc<str>)> = state
        .shards
        .keys()
        .map(|(d, s)| (*d, Arc::from(s.as_str())))
        .collect();
    let shard_rows = Arc::new(Mutex::new(shard_rows));

    let start = match (state.resume_position(), &opts.from) {
        (Some(p), None) => resume_start(&opts.source, &state, p)?,
        (Some(p), Some(_)) => {
            return Err(ApplyError::Preflight(format!(
                "the target already has progress (applied up to {p}); drop --from, or reset the \
                 progress schema `{}` to start elsewhere",
                opts.progress.schema()
            )))
        }
        (None, Some(f)) => f.clone(),
        (None, None) => StartAt::Beginning,
    };
    tracing::info!(start = ?start, workers = opts.workers, "starting apply");

    // Workers.
    let (report_tx, report_rx) = unbounded::<Report>();
    let mut queues: Vec<Sender<WorkItem>> = Vec::new();
    let mut handles: Vec<JoinHandle<()>> = Vec::new();
    for index in 0..opts.workers {
        let (tx, rx) = unbounded::<WorkItem>();
        let cfg = WorkerConfig {
            index,
            target: opts.target.clone(),
            progress: opts.progress.clone(),
            collations: collations.clone(),
            batch_groups: opts.batch_groups.max(1),
            batch_bytes: opts.batch_bytes,
            max_retries: opts.max_retries,
            reconnect_timeout: opts.reconnect_timeout,
            abort: opts.abort.clone(),
            shard_rows: shard_rows.clone(),
            row_events: setup.row_events,
        };
        let rtx = report_tx.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || worker::run(cfg, rx, rtx))
                .map_err(|e| ApplyError::Internal(format!("spawning a worker: {e}")))?,
        );
        queues.push(tx);
    }
    drop(report_tx);

    // Reader.
    let reader_stop = Arc::new(AtomicBool::new(false));
    // Groups travel in chunks (fewer thread wake-ups; see `read_groups`).
    let (group_tx, group_rx) = bounded::<Result<Vec<Group>, ReadError>>(2);
    let reader = {
        let ropts = ReaderOptions {
            start,
            follow: opts.follow,
            stop: Some(reader_stop.clone()),
            ..ReaderOptions::default()
        };
        let source = opts.source.clone();
        let chunk = if opts.follow { 1 } else { READ_CHUNK_GROUPS };
        std::thread::Builder::new()
            .name("reader".into())
            .spawn(move || read_groups(source, ropts, chunk, group_tx))
            .map_err(|e| ApplyError::Internal(format!("spawning the reader: {e}")))?
    };

    let mut sched = Scheduler::new(SchedulerConfig {
        workers: opts.workers,
        max_inflight_bytes: opts.max_inflight_bytes,
    });
    let mut items: HashMap<u64, WorkItem> = HashMap::new();
    let mut track: VecDeque<Tracked> = VecDeque::new();
    let mut completed: HashSet<u64> = HashSet::new();
    let mut low: BTreeMap<u32, Watermark> = state.low.clone();
    let mut low_position: Option<BinlogPos> = state.resume_position();
    let mut low_dirty = false;
    let mut last_persist = Instant::now();
    let mut waiting: VecDeque<Group> = VecDeque::new();
    let mut reading = true;
    let mut next_id: u64 = 0;
    let (mut applied, mut skipped, mut bytes) = (0u64, 0u64, 0u64);
    let mut failure: Option<ApplyError> = None;
    let mut status = StatusLine::new(opts.status_line && std::io::stderr().is_terminal());
    let mut last_ts: u32 = 0;

    loop {
        // Dispatch what may run.
        while let Some(d) = sched.poll_dispatch() {
            let item = items.remove(&d.id).expect("a pushed group has an item");
            if queues[d.worker].send(item).is_err() {
                failure.get_or_insert(ApplyError::Internal(format!("worker {} is gone", d.worker)));
            }
        }
        if opts.abort.load(Ordering::Relaxed) && failure.is_none() {
            failure = Some(ApplyError::Aborted);
        }
        if failure.is_some() || opts.stop.load(Ordering::Relaxed) {
            reading = false;
            waiting.clear();
        }
        if failure.is_some() || (!reading && waiting.is_empty() && sched.is_idle()) {
            break;
        }
        // Take waiting groups while there is room for them.
        let mut admitted = false;
        while waiting
            .front()
            .is_some_and(|g| sched.has_room(g.bytes.len() as u64))
        {
            let g = waiting.pop_front().expect("front exists");
            let (is_last, err) = admit(
                g,
                &opts,
                &state,
                &binlog_state,
                &mut sched,
                &mut items,
                &mut track,
                &mut next_id,
                &mut skipped,
            );
            if let Some(e) = err {
                failure = Some(e);
                break;
            }
            if is_last {
                reading = false;
                waiting.clear();
            }
            admitted = true;
        }
        if admitted || failure.is_some() {
            continue;
        }
        let group_rx_now = if reading && waiting.is_empty() {
            group_rx.clone()
        } else {
            never()
        };
        // While every pushed group is dispatched and the workers hold
        // plenty, a completion can wait: take the reports every
        // REPORT_TICK instead of waking up for each one (a wake-up per
        // transaction is a large share of parapply's CPU at --batch 1).
        let lazy = failure.is_none()
            && sched.in_flight() > 0
            && sched.pending() == 0
            && (waiting.is_empty() || sched.inflight_bytes() > opts.max_inflight_bytes / 2);
        let report_rx_now = if lazy { never() } else { report_rx.clone() };
        let tick = if lazy {
            REPORT_TICK
        } else {
            Duration::from_millis(200)
        };
        let mut on_report = |r: Report, failure: &mut Option<ApplyError>| match r {
            Report::Applied { ids, .. } => {
                for id in ids {
                    if let Err(e) = sched.complete(id) {
                        *failure = Some(ApplyError::Internal(format!("scheduler: {e}")));
                    }
                    completed.insert(id);
                }
            }
            Report::Failed { error, .. } => {
                opts.abort.store(true, Ordering::Relaxed);
                *failure = Some(error);
            }
        };
        select! {
            recv(report_rx_now) -> r => match r {
                Ok(r) => {
                    on_report(r, &mut failure);
                    // Everything else already reported, in one wake-up.
                    for r in report_rx.try_iter() {
                        on_report(r, &mut failure);
                    }
                }
                Err(_) => failure = Some(ApplyError::Internal("every worker is gone".into())),
            },
            recv(group_rx_now) -> g => match g {
                Ok(Ok(chunk)) => waiting.extend(chunk),
                Ok(Err(e)) => failure = Some(ApplyError::from(e)),
                Err(_) => reading = false,
            },
            default(tick) => {}
        }
        if lazy {
            for r in report_rx.try_iter() {
                on_report(r, &mut failure);
            }
        }
        // The applied prefix, in source order.
        while let Some(t) = pop_done(&mut track, &mut completed) {
            if t.id.is_some() {
                applied += 1;
                bytes += t.bytes;
            }
            low_dirty |= low.get(&t.domain) != Some(&t.mark);
            low_position = Some(t.mark.end.clone());
            low.insert(t.domain, t.mark);
            last_ts = t.timestamp;
            if t.barrier {
                last_persist = Instant::now() - opts.low_watermark_interval;
            }
        }
        if low_dirty && last_persist.elapsed() >= opts.low_watermark_interval {
            persist_low_reconnecting(&mut control, &opts, &low)?;
            low_dirty = false;
            last_persist = Instant::now();
        }
        status.show(applied, sched.in_flight(), last_ts);
    }
    status.clear();

    // Shutdown: stop the reader, close the queues, join everything.
    reader_stop.store(true, Ordering::Relaxed);
    drop(group_rx);
    drop(queues);
    for h in handles {
        let _ = h.join();
    }
    let _ = reader.join();
    // Late reports of groups that committed before the workers stopped.
    while let Ok(r) = report_rx.try_recv() {
        if let Report::Applied { ids, .. } = r {
            completed.extend(ids);
        }
    }
    while let Some(t) = pop_done(&mut track, &mut completed) {
        if t.id.is_some() {
            applied += 1;
            bytes += t.bytes;
        }
        low_position = Some(t.mark.end.clone());
        low.insert(t.domain, t.mark);
        low_dirty = true;
    }
    if low_dirty {
        // A reconnect may be needed if the failure was the connection.
        if let Err(e) = persist_low(&mut control, &opts.progress, &low) {
            tracing::warn!(error = %e, "could not persist the low-watermark; the shard rows still hold the progress");
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let drained = track.is_empty();
    Ok(ApplyReport {
        applied,
        skipped,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        gtid_position: low
            .iter()
            .map(|(d, w)| format!("{d}-{}-{}", w.server_id, w.seq_no))
            .collect::<Vec<_>>()
            .join(","),
        position: low_position,
        drained,
    })
}

/// Where reading resumes. In a mirror the prefix's end position names a
/// file of the source; relay logs have other file names (the position is in
/// the primary's coordinates), so there the GTID of the prefix's last group
/// is looked up instead (it is applied, and skipped again).
fn resume_start(
    source: &Source,
    state: &ReplicaState,
    end: BinlogPos,
) -> Result<StartAt, ApplyError> {
    let listed = match source {
        Source::Files(v) => v.clone(),
        Source::Index(index) => crate::binlog::reader::read_index(index)?,
    };
    if listed.iter().any(|f| {
        f.file_name()
            .is_some_and(|n| n.to_string_lossy() == end.file)
    }) {
        return Ok(StartAt::Pos(end));
    }
    let last = state
        .low
        .iter()
        .find(|(_, w)| w.end == end)
        .map(|(d, w)| MariaGtid {
            domain: *d,
            server: w.server_id,
            seq: w.seq_no,
        })
        .ok_or_else(|| ApplyError::Preflight(format!("no low-watermark row ends at {end}")))?;
    tracing::info!(%end, gtid = %last, "the source has no file {}: resuming by GTID", end.file);
    Ok(StartAt::Gtid(last))
}

/// Classifies one group: skipped (already applied) or pushed to the
/// scheduler. Returns whether it is the `--until` group, and an error.
#[allow(clippy::too_many_arguments)]
fn admit(
    g: Group,
    opts: &ApplyOptions,
    state: &ReplicaState,
    binlog_state: &[MariaGtid],
    sched: &mut Scheduler,
    items: &mut HashMap<u64, WorkItem>,
    track: &mut VecDeque<Tracked>,
    next_id: &mut u64,
    skipped: &mut u64,
) -> (bool, Option<ApplyError>) {
    let Some(gtid) = g.maria_gtid() else {
        return (
            false,
            Some(ApplyError::NoGtid {
                group: g.describe(),
            }),
        );
    };
    let is_last = match &opts.until {
        Some(Until::Gtid(u)) => *u == gtid,
        Some(Until::Pos(p)) => g.end() >= *p,
        None => false,
    };
    let placement = opts.shard_map.placement(&g);
    let (shards, barrier): (Vec<Arc<str>>, bool) = match &placement {
        Placement::Shards(s) => (s.iter().map(|x| x.0.clone()).collect(), false),
        Placement::Barrier(_) => (Vec::new(), true),
    };
    let done = if barrier {
        state.barrier_applied(gtid, binlog_state)
    } else {
        state.shard_group_applied(gtid, shards.iter().map(|s| &**s))
    } == Applied::Yes;
    let mark = Watermark {
        seq_no: gtid.seq,
        server_id: gtid.server,
        end: g.end(),
    };
    if done {
        *skipped += 1;
        track.push_back(Tracked {
            id: None,
            bytes: 0,
            barrier,
            domain: gtid.domain,
            mark,
            timestamp: g.timestamp,
        });
        return (is_last, None);
    }
    let id = *next_id;
    *next_id += 1;
    let bytes = g.bytes.len() as u64;
    let timestamp = g.timestamp;
    if let Err(e) = sched.push(id, placement, bytes) {
        return (
            is_last,
            Some(ApplyError::Internal(format!("scheduler: {e}"))),
        );
    }
    items.insert(
        id,
        WorkItem {
            id,
            group: Arc::new(g),
            shards,
            barrier,
        },
    );
    track.push_back(Tracked {
        id: Some(id),
        bytes,
        barrier,
        domain: gtid.domain,
        mark,
        timestamp,
    });
    (is_last, None)
}

/// The front of `track` if it is done (skipped, or its id completed).
fn pop_done(track: &mut VecDeque<Tracked>, completed: &mut HashSet<u64>) -> Option<Tracked> {
    let done = match track.front()?.id {
        None => true,
        Some(id) => completed.remove(&id),
    };
    if done {
        track.pop_front()
    } else {
        None
    }
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

fn connect(target: &ConnectOptions) -> Result<Conn, ApplyError> {
    Conn::connect(target).map_err(|error| ApplyError::Target {
        addr: target.addr(),
        error: Box::new(error),
    })
}

struct Setup {
    state: ReplicaState,
    binlog_state: Vec<MariaGtid>,
    collations: Collations,
    /// `shard_progress` has the layout the workers' row events describe.
    row_events: bool,
}

/// The checks of "Start" in the module doc.
fn preflight(c: &mut Conn, opts: &ApplyOptions) -> Result<Setup, ApplyError> {
    let addr = opts.target.addr();
    let sql_err = |what: &str, e: WireError| ApplyError::Preflight(format!("{addr}: {what}: {e}"));
    let value = |c: &mut Conn, sql: &str| -> Result<String, ApplyError> {
        c.query_value(sql)
            .map_err(|e| sql_err(sql, e))
            .map(Option::unwrap_or_default)
    };
    if value(c, "SELECT @@GLOBAL.log_bin")? != "1" {
        return Err(ApplyError::Preflight(format!(
            "{addr}: the target has log_bin off; parapply needs the target's binary log (for \
             exactly-once DDL after a crash, and for promoting this replica): start it with \
             --log-bin and --log-slave-updates"
        )));
    }
    if opts.workers > 1 && value(c, "SELECT @@GLOBAL.gtid_strict_mode")? == "1" {
        return Err(ApplyError::Preflight(format!(
            "{addr}: gtid_strict_mode is on; parallel workers commit GTIDs of different \
             databases out of order, which strict mode refuses: SET GLOBAL gtid_strict_mode=0"
        )));
    }
    // Privileges: replaying binlog events (the source's own FDE is harmless).
    let fde = {
        let mut r = BinlogReader::open(opts.source.clone(), ReaderOptions::default())?;
        let _ = r.next()?;
        r.format().map(|f| f.raw_event.clone())
    };
    if let Some(fde) = fde {
        c.execute(&binlog_statement(&fde)).map_err(|e| {
            let hint = if e.code() == Some(1227) || e.code() == Some(1142) || e.code() == Some(1044)
            {
                " (grant it: GRANT BINLOG REPLAY, SUPER ON *.* TO the applier's user; and the \
                  table rights of the replicated databases)"
            } else {
                ""
            };
            ApplyError::Preflight(format!(
                "{addr}: replaying binlog events is refused: {e}{hint}"
            ))
        })?;
    }
    c.execute(b"SET @@session.gtid_seq_no=0").map_err(|e| {
        sql_err(
            "setting gtid_seq_no (needs SUPER or REPLICATION MASTER ADMIN)",
            e,
        )
    })?;
    // The progress tables are created through the binary log (a replica
    // of this replica receives the watermark rows inside each transaction
    // and needs the tables), once; the engine's own bookkeeping after that
    // is not logged: the target's binary log holds the primary's GTIDs,
    // not parapply's.
    if value(c, &opts.progress.count_tables_sql())? != "4" {
        for sql in opts.progress.create_sql() {
            c.execute(sql.as_bytes())
                .map_err(|e| sql_err("creating the progress tables", e))?;
        }
    }
    c.execute(b"SET @@session.sql_log_bin=0").map_err(|e| {
        sql_err(
            "turning off binary logging for parapply's bookkeeping (needs SUPER or BINLOG \
             ADMIN)",
            e,
        )
    })?;
    let layout = value(c, &opts.progress.layout_sql())?;
    let row_events = layout == SHARD_PROGRESS_LAYOUT;
    if !row_events {
        tracing::warn!(
            layout = %layout,
            expected = SHARD_PROGRESS_LAYOUT,
            "`{}`.`shard_progress` does not have the layout parapply creates; watermarks are \
             written with SQL (slower)",
            opts.progress.schema()
        );
    }
    take_over(c, opts)?;
    let shards = c
        .query_rows(&opts.progress.select_shards_sql())
        .map_err(|e| sql_err("reading progress", e))?;
    let low = c
        .query_rows(&opts.progress.select_low_sql())
        .map_err(|e| sql_err("reading progress", e))?;
    let map = c
        .query_value(&opts.progress.select_shard_map_sql())
        .map_err(|e| sql_err("reading progress", e))?;
    let state = ProgressTables::parse_state(&shards, &low, map)
        .map_err(|e| ApplyError::Preflight(format!("{addr}: {e}")))?;
    let fingerprint = opts.shard_map.fingerprint();
    match &state.shard_map {
        Some(old) if *old != fingerprint && !state.is_drained() => {
            return Err(ApplyError::Preflight(format!(
                "the progress on {addr} was written with shard map `{old}`, not `{fingerprint}`, \
                 and the shards are at different positions: run with the old map until drained \
                 (SIGINT), then change it"
            )))
        }
        Some(old) if *old == fingerprint => {}
        _ => {
            c.execute(opts.progress.save_shard_map_sql(&fingerprint).as_bytes())
                .map_err(|e| sql_err("saving the shard map", e))?;
        }
    }
    let binlog_state = parse_gtid_list(&value(c, "SELECT @@GLOBAL.gtid_binlog_state")?)
        .map_err(ApplyError::Preflight)?;
    let rows = c
        .query_rows(
            "SELECT ID, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLLATIONS",
        )
        .map_err(|e| sql_err("reading collations", e))?;
    let mut collations = Collations::default();
    for r in rows {
        let text = |i: usize| {
            r.get(i)
                .and_then(|v| v.as_ref())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        if let Ok(id) = text(0).parse::<u32>() {
            collations.0.insert(id, (text(1), text(2)));
        }
    }
    Ok(Setup {
        state,
        binlog_state,
        collations,
        row_events,
    })
}

/// Becomes the one applier of this target and schema, and waits until the
/// sessions of a previous (dead) applier have left the server, so that what
/// they were running is committed or rolled back before the state is read.
fn take_over(c: &mut Conn, opts: &ApplyOptions) -> Result<(), ApplyError> {
    let addr = opts.target.addr();
    let lock = opts.progress.applier_lock();
    let got = c
        .query_value(&format!(
            "SELECT GET_LOCK('{}', 30)",
            crate::progress::escape(&lock)
        ))
        .map_err(|e| ApplyError::Preflight(format!("{addr}: taking the applier lock: {e}")))?;
    if got.as_deref() != Some("1") {
        let holder = c
            .query_value(&format!(
                "SELECT IS_USED_LOCK('{}')",
                crate::progress::escape(&lock)
            ))
            .ok()
            .flatten()
            .unwrap_or_else(|| "?".into());
        return Err(ApplyError::Preflight(format!(
            "{addr}: another parapply apply is running against this target (connection \
             {holder} holds the lock `{lock}`); stop it first"
        )));
    }
    let rows = c
        .query_rows(&opts.progress.select_sessions_sql())
        .map_err(|e| ApplyError::Preflight(format!("{addr}: reading sessions: {e}")))?;
    let ids: Vec<String> = rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .filter(|id| id.chars().all(|c| c.is_ascii_digit()) && !id.is_empty())
        .collect();
    if !ids.is_empty() {
        let list = ids.join(",");
        let started = Instant::now();
        let mut told = Instant::now() - Duration::from_secs(60);
        loop {
            let running = c
                .query_rows(&format!(
                    "SELECT ID, COALESCE(LEFT(INFO, 80), '') FROM information_schema.PROCESSLIST \
                     WHERE ID IN ({list}) AND ID <> CONNECTION_ID()"
                ))
                .map_err(|e| {
                    ApplyError::Preflight(format!("{addr}: reading the process list: {e}"))
                })?;
            if running.is_empty() {
                break;
            }
            if told.elapsed() >= Duration::from_secs(5) {
                let what: Vec<String> = running
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|v| {
                                String::from_utf8_lossy(v.as_deref().unwrap_or(b"")).into_owned()
                            })
                            .collect::<Vec<_>>()
                            .join(": ")
                    })
                    .collect();
                tracing::warn!(
                    waited_s = started.elapsed().as_secs(),
                    sessions = %what.join("; "),
                    "waiting for a previous applier's statements to finish on the target"
                );
                told = Instant::now();
            }
            if opts.abort.load(Ordering::Relaxed) || opts.stop.load(Ordering::Relaxed) {
                return Err(ApplyError::Aborted);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    c.execute(opts.progress.clear_sessions_sql().as_bytes())
        .map_err(|e| ApplyError::Preflight(format!("{addr}: clearing sessions: {e}")))?;
    Ok(())
}

fn persist_low(
    c: &mut Conn,
    tables: &ProgressTables,
    low: &BTreeMap<u32, Watermark>,
) -> Result<(), ApplyError> {
    if let Some(sql) = tables.upsert_low_sql(low) {
        c.execute(sql.as_bytes())
            .map_err(|error| ApplyError::Target {
                addr: c.addr().to_string(),
                error: Box::new(error),
            })?;
    }
    Ok(())
}

/// [`persist_low`]; when the control connection was lost (the target
/// restarted, say), connects again within the reconnect time — as the
/// workers do — takes the applier lock back and retries.
fn persist_low_reconnecting(
    control: &mut Conn,
    opts: &ApplyOptions,
    low: &BTreeMap<u32, Watermark>,
) -> Result<(), ApplyError> {
    match persist_low(control, &opts.progress, low) {
        Err(ApplyError::Target { error, .. }) if error.is_connection_lost() => {
            tracing::warn!(error = %error, "lost the control connection to the target; reconnecting");
            let lock = opts.progress.applier_lock();
            let relock = format!("SELECT GET_LOCK('{}', 0)", crate::progress::escape(&lock));
            let mut c = worker::reconnect_within(
                &opts.target,
                opts.reconnect_timeout,
                &opts.abort,
                *error,
                || Conn::connect(&opts.target),
            )?;
            // The lock went with the old connection: take it back, unless
            // another applier took over meanwhile.
            let got = c.query_value(&relock).map_err(|error| ApplyError::Target {
                addr: opts.target.addr(),
                error: Box::new(error),
            })?;
            if got.as_deref() != Some("1") {
                return Err(ApplyError::Preflight(format!(
                    "{}: after reconnecting, the applier lock `{lock}` is held by another \
                     connection: another parapply apply took over this target; stopping",
                    opts.target.addr()
                )));
            }
            c.execute(b"SET @@session.sql_log_bin=0")
                .map_err(|error| ApplyError::Target {
                    addr: opts.target.addr(),
                    error: Box::new(error),
                })?;
            *control = c;
            persist_low(control, &opts.progress, low)
        }
        r => r,
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
