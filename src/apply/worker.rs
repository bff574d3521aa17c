//! A worker: one connection to the target, applying the groups the
//! scheduler sends it, in the order it sends them.
//!
//! # One batch, one transaction
//!
//! The worker takes the next group from its queue and, when more groups
//! are already waiting behind it (a backlog), up to `batch_groups` of them
//! (and `batch_bytes`), of any of the shards the worker owns, while their
//! GTIDs grow within one domain: they are applied as **one** target
//! transaction, and each shard's watermark row moves to that shard's last
//! group of the batch inside that transaction. The target's binary log
//! holds one GTID per batch: the primary's GTID of its last group, the
//! highest of the batch.
//!
//! # Round trips
//!
//! The server answers each statement of a multi-statement query with its
//! own packet, and every round trip costs a wake-up on both sides, so a
//! transaction costs as few statements and round trips as the protocol
//! allows. The GTID is one `SET @@session.gtid_seq_no=…` (its domain and
//! server added only when they change; `autocommit` too, the session's
//! mode being tracked). The watermark update rides inside the `BINLOG`
//! statement as row events of `shard_progress` (see [`crate::progress`]; a
//! shard's first row is inserted with SQL).
//!
//! * **A single-statement row group** (the common OLTP transaction): its
//!   watermark row events are *merged* into its statement, so one `BINLOG`
//!   under `autocommit=1` applies and commits both — two statements, no
//!   `COMMIT`. With `--batch 1`, consecutive row groups already waiting in
//!   the queue are **chained**: `SET …; BINLOG …; SET …; BINLOG …` in one
//!   multi-statement query (up to 64 groups; a group of several row
//!   statements as `SET …, autocommit=0; BINLOG …; BINLOG …; COMMIT`,
//!   its watermark in its last `BINLOG`), each group still its
//!   own transaction with its own GTID. The server runs them in order,
//!   commits each before the next, and stops at the first error, so the
//!   groups before a failing one are committed and none after it ran.
//!   (The OK packet of a `BINLOG` statement that applied rows does not
//!   announce the results that follow — DESIGN.md's "facts" — but the
//!   server does run and answer the statements after it; the worker reads
//!   one result per statement it sent, [`Conn::execute_counted`].)
//! * **Everything else in a transaction** (batches, several statements,
//!   statement-format DML): under `autocommit=0`, `SET …` then the groups'
//!   statements, packed into one round trip up to 1 MiB (after a `BINLOG`
//!   the results are read by count; a statement that may fail as on the
//!   primary, `LOAD DATA` and a change of the client character set still
//!   end their round trip), and a `COMMIT` that is *deferred*: when the
//!   next batch is already waiting it is sent at the head of that batch's
//!   first round trip (`COMMIT; SET …; BINLOG …`), when nothing waits at
//!   once, alone. A batch is reported applied only when its `COMMIT` has
//!   succeeded.
//! * **Barriers** (DDL, XA, non-transactional groups) come alone and are
//!   applied alone, committed at once; DDL and XA under `autocommit=1`, as
//!   the primary ran them. A group the primary ended with `ROLLBACK` (it
//!   changed a non-transactional table) is such a barrier and ends with
//!   `ROLLBACK` on the target too.
//!
//! Sessions also turn `binlog_annotate_row_events` off: the target's binary
//! log would otherwise annotate each replayed row event with its `BINLOG`
//! statement — the base64 of the events, written and synced a second time.
//!
//! # Failures
//!
//! * Deadlock or lock-wait timeout: roll back, wait (10 ms doubling, at most
//!   1 s), apply the batch (or the rest of the chain) again; up to
//!   `max_retries` times.
//! * Connection lost: reconnect with backoff for up to `reconnect_timeout`.
//!   If the loss happened while a commit was in flight, whether it committed
//!   is read back from the target (the restart rule of [`crate::progress`])
//!   before anything is applied again; of a chain, the committed prefix. A
//!   deferred commit whose round trip failed is settled the same way before
//!   the next batch is retried.
//! * A statement the primary logged with an error (see
//!   [`super::replay::Expect`]) must fail alike: that error is no failure;
//!   success or another error is [`DefiniteError::Diverged`], naming the
//!   group whose statement it was, handled as below.
//! * Anything else: roll back and report [`DefiniteError::Group`] naming
//!   the failing group (of a batch, the group whose statement failed; a
//!   failed `COMMIT`, [`DefiniteError::Commit`], names the batch's last
//!   group, whose GTID the transaction carries); the engine stops. Nothing
//!   of the failing batch is committed (of a chain, the groups before it
//!   are, and are reported). Retries that run out are
//!   [`TransientError::RetriesExhausted`], naming the group whose statement
//!   hit the deadlock or lock-wait timeout.

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::error::{ApplyError, DefiniteError, GroupRef, TransientError};
use super::replay::{
    plan_group, track_temp_tables, Collations, Expect, Session, Step, TempTable, Trailer,
    TrailerUse,
};
use crate::binlog::constants::gtid_flags;
use crate::group::{Group, GroupEnd, GroupKind};
use crate::position::MariaGtid;
use crate::progress::{parse_gtid_list, Applied, ProgressTables, ReplicaState, Watermark};
use crate::replica::{end_lost_session, reconnect_within, ReplicaError};
use crate::wire::{Conn, ConnectOptions, WireError};

/// One group to apply.
#[derive(Debug, Clone)]
pub struct WorkItem {
    /// The engine's id for it (source order).
    pub id: u64,
    /// The group.
    pub group: Arc<Group>,
    /// Its shards (empty for a barrier).
    pub shards: Vec<Arc<str>>,
    /// It must be applied alone.
    pub barrier: bool,
}

/// The `(domain, shard)` rows `shard_progress` holds, shared by the
/// workers and the engine.
pub type ShardRows = Arc<Mutex<HashSet<(u32, Arc<str>)>>>;

/// What a worker tells the engine.
#[derive(Debug)]
pub enum Report {
    /// These groups are committed on the target.
    Applied {
        /// Worker index.
        worker: usize,
        /// Their ids.
        ids: Vec<u64>,
    },
    /// The worker stopped.
    Failed {
        /// Worker index.
        worker: usize,
        /// Why.
        error: ApplyError,
    },
}

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Index of the worker (for logs and reports).
    pub index: usize,
    /// The target.
    pub target: ConnectOptions,
    /// The progress tables.
    pub progress: ProgressTables,
    /// Collation names of the target.
    pub collations: Arc<Collations>,
    /// At most this many groups per target transaction (1: no batching).
    pub batch_groups: usize,
    /// At most this many bytes of events per target transaction.
    pub batch_bytes: usize,
    /// Retries of a deadlocked batch.
    pub max_retries: u32,
    /// How long to keep trying to reconnect.
    pub reconnect_timeout: Duration,
    /// Set to stop at once (the current transaction is rolled back).
    pub abort: Arc<AtomicBool>,
    /// Counts the attempts repeated after a deadlock or lock-wait timeout
    /// (shared by the workers; the engine reports it).
    pub retries: Arc<AtomicU64>,
    /// Counts the reconnections after a lost connection (shared).
    pub reconnects: Arc<AtomicU64>,
    /// The `(domain, shard)` rows `shard_progress` holds, shared by the
    /// workers: those move by row events; a missing one is inserted with SQL.
    pub shard_rows: ShardRows,
    /// The target's `shard_progress` has the layout the row events describe
    /// (otherwise every watermark is written with SQL).
    pub row_events: bool,
    /// Where committed transactions are logged as trace records.
    pub trace: Option<crate::trace::TraceSink>,
}

/// Runs a worker until its queue closes or it fails.
pub fn run(cfg: WorkerConfig, rx: Receiver<WorkItem>, tx: Sender<Report>) {
    let index = cfg.index;
    let fail = |error| {
        let _ = tx.send(Report::Failed {
            worker: index,
            error,
        });
    };
    let mut w = match Worker::connect(cfg, tx.clone()) {
        Ok(w) => w,
        Err(error) => return fail(error),
    };
    let mut carry: Option<WorkItem> = None;
    loop {
        let first = match carry.take() {
            Some(x) => x,
            None => {
                // With a commit outstanding, only take what already waits.
                let next = if w.open.is_some() {
                    rx.try_recv()
                } else {
                    rx.recv().map_err(|_| TryRecvError::Disconnected)
                };
                match next {
                    Ok(x) => x,
                    Err(e) => {
                        if let Err(error) = w.commit_open() {
                            return fail(error);
                        }
                        match e {
                            TryRecvError::Empty if !w.engine_gone => continue,
                            _ => return w.lose_temp_tables("the run stops"),
                        }
                    }
                }
            }
        };
        let mut batch = vec![first];
        if batchable(&batch[0]) {
            let mut bytes = batch[0].group.bytes.len();
            while batch.len() < w.cfg.batch_groups && bytes < w.cfg.batch_bytes {
                match rx.try_recv() {
                    Ok(next) if batchable(&next) && follows(&batch[batch.len() - 1], &next) => {
                        bytes += next.group.bytes.len();
                        batch.push(next);
                    }
                    Ok(next) => {
                        carry = Some(next);
                        break;
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
        }
        // Nothing to batch with: chain what waits instead (see the module
        // doc), each group still its own transaction.
        let mut chained = false;
        if batch.len() == 1 && w.cfg.batch_groups == 1 && w.chainable(&batch[0]) {
            let mut bytes = batch[0].group.bytes.len();
            while batch.len() < CHAIN_GROUPS && bytes < w.cfg.batch_bytes {
                let next = match carry.take() {
                    Some(x) => x,
                    None => match rx.try_recv() {
                        Ok(x) => x,
                        Err(_) => break,
                    },
                };
                if !w.chainable(&next) {
                    carry = Some(next);
                    break;
                }
                bytes += next.group.bytes.len();
                batch.push(next);
            }
            chained = batch.len() > 1;
        }
        if batch[0].group.after_primary_start {
            if let Err(error) = w.primary_started(&batch[0]) {
                return fail(error);
            }
        }
        let result = if chained {
            w.apply_chain(batch)
        } else {
            w.apply_with_retries(batch, true)
        };
        if let Err(error) = result {
            return fail(error);
        }
        if w.engine_gone {
            return w.lose_temp_tables("the run stops");
        }
    }
}

/// At most this many groups are chained in one round trip (the module doc
/// says the number).
const CHAIN_GROUPS: usize = 64;

/// A round trip takes no further statement once it holds this many bytes
/// (well under the server's `max_allowed_packet`, 16 MiB by default; each
/// worker's buffer keeps its largest round trip, so this bounds memory
/// too: large groups still go one `BINLOG` per round trip).
const PACK_BYTES: usize = 1 << 20;

/// A non-barrier row or statement group can share a transaction (a
/// rolled-back group never does: it is a barrier, and its ROLLBACK must not
/// undo its neighbours), whatever its shards: the scheduler queued each
/// group behind every earlier group it shares a shard with, so committing
/// a worker's consecutive groups together changes no order, and every
/// shard row of the batch moves to its own last group of the batch in the
/// same transaction (a worker owning several databases, or key buckets,
/// batches across them).
fn batchable(i: &WorkItem) -> bool {
    !i.barrier
        && i.group.end == GroupEnd::Commit
        && matches!(i.group.kind, GroupKind::RowDml | GroupKind::StatementDml)
}

/// `next` may follow `prev` in a batch: same GTID domain, higher sequence
/// number. The batch is logged with its last group's GTID, which so is the
/// highest of the batch (promotion relies on the highest GTID of a domain
/// reaching the target's binary log).
fn follows(prev: &WorkItem, next: &WorkItem) -> bool {
    match (prev.group.maria_gtid(), next.group.maria_gtid()) {
        (Some(p), Some(n)) => p.domain == n.domain && n.seq > p.seq,
        _ => false,
    }
}

struct Worker {
    cfg: WorkerConfig,
    conn: Conn,
    session: Session,
    /// Reused buffer for one round trip.
    buf: Vec<u8>,
    /// Where applied batches are reported.
    reports: Sender<Report>,
    /// The engine stopped listening.
    engine_gone: bool,
    /// A batch whose statements all ran; its `COMMIT` is outstanding.
    open: Option<Open>,
    /// The session's `(gtid_domain_id, server_id)`, when known.
    origin: Option<(u32, u32)>,
    /// The session's `autocommit`, when known.
    autocommit: Option<bool>,
    /// Temporary tables of primary sessions this connection holds.
    temp_tables: std::collections::BTreeSet<TempTable>,
}

/// A batch applied but not committed yet (its `COMMIT` is deferred).
struct Open {
    batch: Vec<WorkItem>,
    /// Shard rows its transaction inserts, known once it commits.
    new_rows: Vec<(u32, Arc<str>)>,
}

/// Where a failed attempt left things.
enum Failure {
    /// Rolled back (or never started): the batch can be applied again. The
    /// index of the group whose statement failed.
    Retry(WireError, usize),
    /// The connection died; the commit may or may not have happened.
    Lost(WireError),
    /// The deferred `COMMIT` of the open batch, sent at the head of this
    /// attempt, failed or its outcome is unknown; nothing of this attempt's
    /// batch is committed.
    Open(WireError),
    /// Give up.
    Fatal(ApplyError),
}

/// Retries of a batch or chain after deadlocks and lock-wait timeouts.
struct Retries {
    done: u32,
    wait: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            done: 0,
            wait: Duration::from_millis(10),
        }
    }
}

impl Retries {
    /// Waits before the next attempt (10 ms doubling, at most 1 s), or
    /// gives up with `e` as the error of `failing` after `max_retries`
    /// ([`TransientError::RetriesExhausted`]).
    fn wait(
        &mut self,
        cfg: &WorkerConfig,
        failing: &WorkItem,
        e: WireError,
    ) -> Result<(), ApplyError> {
        self.done += 1;
        if self.done > cfg.max_retries {
            return Err(TransientError::RetriesExhausted {
                group: GroupRef::of(&failing.group),
                retries: cfg.max_retries,
                error: Box::new(e),
            }
            .into());
        }
        cfg.retries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            worker = cfg.index,
            group = %failing.group.describe(),
            retry = self.done,
            error = %e,
            "retrying after a transient error"
        );
        std::thread::sleep(self.wait);
        self.wait = (self.wait * 2).min(Duration::from_secs(1));
        Ok(())
    }
}

/// Marks the deferred `COMMIT` among a round trip's statements.
const OPEN_COMMIT: usize = usize::MAX;

impl Worker {
    fn connect(cfg: WorkerConfig, reports: Sender<Report>) -> Result<Worker, ApplyError> {
        let conn = open(&cfg).map_err(|error| ApplyError::target(cfg.target.addr(), error))?;
        Ok(Worker {
            cfg,
            conn,
            session: Session::default(),
            buf: Vec::with_capacity(1 << 16),
            reports,
            engine_gone: false,
            open: None,
            origin: None,
            autocommit: None,
            temp_tables: Default::default(),
        })
    }

    /// Applies `batch`; with `defer`, a transactional batch is left open
    /// with its `COMMIT` outstanding (see the module doc).
    fn apply_with_retries(&mut self, batch: Vec<WorkItem>, defer: bool) -> Result<(), ApplyError> {
        let mut retries = Retries::default();
        loop {
            self.check_abort()?;
            match self.try_apply(&batch, defer) {
                Ok((deferred, new_rows)) => {
                    let done = Open { batch, new_rows };
                    if deferred {
                        self.open = Some(done);
                    } else {
                        self.committed(done);
                    }
                    return Ok(());
                }
                // After a lost connection the batch may have committed: a
                // COMMIT in flight, or a single-statement group that commits
                // by itself after a deferred COMMIT.
                Err(failure) => {
                    if self.recover(failure, &batch, &mut retries)?
                        && self.batch_committed(&batch)?
                    {
                        self.committed(Open {
                            batch,
                            new_rows: Vec::new(),
                        });
                        return Ok(());
                    }
                }
            }
        }
    }

    /// With the `abort` flag set: rolls back (the open batch too: it was
    /// never reported) and stops.
    fn check_abort(&mut self) -> Result<(), ApplyError> {
        if !self.cfg.abort.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.open = None;
        let _ = self.conn.execute(b"ROLLBACK");
        Err(ApplyError::Aborted)
    }

    /// Makes the connection ready for the next attempt after `failure` of
    /// an attempt at `batch`: rolls back; settles a deferred COMMIT
    /// that was in the attempt; waits before retrying a deadlock or
    /// lock-wait timeout; reconnects a lost connection. Returns whether the
    /// connection was lost — then what the attempt committed must be read
    /// back — or the error to stop with.
    fn recover(
        &mut self,
        failure: Failure,
        batch: &[WorkItem],
        retries: &mut Retries,
    ) -> Result<bool, ApplyError> {
        match failure {
            Failure::Open(e) => {
                let lost = e.is_connection_lost();
                self.rollback();
                let open = self.open.take().expect("an open batch was being committed");
                self.settle(open, e)?;
                Ok(lost)
            }
            Failure::Fatal(e) => {
                self.rollback();
                Err(e)
            }
            Failure::Retry(e, failing) => {
                self.rollback();
                let failing = &batch[failing.min(batch.len() - 1)];
                retries.wait(&self.cfg, failing, e)?;
                Ok(false)
            }
            Failure::Lost(e) => {
                self.reconnect(&batch[0], e)?;
                Ok(true)
            }
        }
    }

    /// Sends the outstanding `COMMIT`, if any.
    fn commit_open(&mut self) -> Result<(), ApplyError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        match self.conn.execute(b"COMMIT") {
            Ok(_) => {
                self.committed(open);
                Ok(())
            }
            Err(e) => {
                self.rollback();
                self.settle(open, e)
            }
        }
    }

    /// The deferred `COMMIT` of `open` failed with `e`, or its outcome is
    /// unknown: find out, and apply the batch again if it did not commit.
    fn settle(&mut self, open: Open, e: WireError) -> Result<(), ApplyError> {
        if e.is_connection_lost() {
            self.reconnect(&open.batch[0], e)?;
            if self.batch_committed(&open.batch)? {
                self.committed(open);
                return Ok(());
            }
        } else if !(e.is_deadlock() || e.is_lock_wait_timeout()) {
            let last = open.batch.last().expect("a batch is not empty");
            return Err(DefiniteError::Commit {
                group: GroupRef::of(&last.group),
                batched: open.batch.len(),
                error: Box::new(e),
            }
            .into());
        }
        self.apply_with_retries(open.batch, false)
    }

    /// `done` is committed: its shard rows exist; tell the engine.
    fn committed(&mut self, done: Open) {
        for item in &done.batch {
            if item.group.kind != GroupKind::RowDml {
                track_temp_tables(&item.group, &mut self.temp_tables);
            }
        }
        if !done.new_rows.is_empty() {
            let mut known = self
                .cfg
                .shard_rows
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            known.extend(done.new_rows);
        }
        if let Some(t) = &self.cfg.trace {
            let gtids: Vec<_> = done
                .batch
                .iter()
                .filter_map(|i| i.group.maria_gtid())
                .collect();
            // At --batch 1 several groups reported together were chained:
            // each its own transaction.
            t.committed(&gtids, self.cfg.batch_groups <= 1);
        }
        let ids = done.batch.iter().map(|i| i.id).collect();
        if self
            .reports
            .send(Report::Applied {
                worker: self.cfg.index,
                ids,
            })
            .is_err()
        {
            self.engine_gone = true;
        }
    }

    /// The connection's session state is no longer known (after a failure
    /// or on a new connection): everything is sent again.
    fn forget_session(&mut self) {
        self.session.reset();
        self.origin = None;
        self.autocommit = None;
    }

    fn rollback(&mut self) {
        self.forget_session();
        if let Err(e) = self.conn.execute(b"ROLLBACK") {
            tracing::debug!(error = %e, "rollback after a failure failed");
        }
    }

    /// Reconnects after the connection died while applying `item` (or a
    /// batch or chain it heads).
    fn reconnect(&mut self, item: &WorkItem, first: WireError) -> Result<(), ApplyError> {
        tracing::warn!(
            worker = self.cfg.index,
            group = %item.group.describe(),
            error = %first,
            "lost the target connection; reconnecting"
        );
        let cfg = &self.cfg;
        let lost = (self.conn.connection_id(), self.conn.age());
        let deadline = Instant::now() + cfg.reconnect_timeout;
        self.conn = reconnect_within(
            &cfg.target,
            cfg.reconnect_timeout,
            &cfg.abort,
            first,
            || open(cfg),
        )
        .map_err(ApplyError::from)?;
        cfg.reconnects.fetch_add(1, Ordering::Relaxed);
        end_lost_session(&mut self.conn, lost, deadline, &cfg.abort)
            .map_err(|error| ApplyError::target(cfg.target.addr(), error))?;
        self.forget_session();
        self.lose_temp_tables("the target connection was lost");
        tracing::info!(worker = self.cfg.index, "reconnected to the target");
        Ok(())
    }

    /// `first` is the first group after the primary started anew: the
    /// temporary tables of its earlier sessions are gone there, and are
    /// dropped here too (as the SQL thread drops them), by replacing the
    /// connection that holds them — a new session of the primary may reuse
    /// a session id and a table name.
    fn primary_started(&mut self, first: &WorkItem) -> Result<(), ApplyError> {
        if self.temp_tables.is_empty() {
            return Ok(());
        }
        self.commit_open()?;
        tracing::info!(
            worker = self.cfg.index,
            group = %first.group.describe(),
            tables = self.temp_tables.len(),
            "the primary started anew: dropping the temporary tables of its earlier sessions"
        );
        self.conn =
            open(&self.cfg).map_err(|error| ApplyError::target(self.cfg.target.addr(), error))?;
        self.forget_session();
        self.temp_tables.clear();
        Ok(())
    }

    /// The connection's temporary tables are gone (`why`): warn, naming
    /// them — later statements of their primary sessions will fail with
    /// "Table … doesn't exist", as on a replica whose SQL thread lost them.
    fn lose_temp_tables(&mut self, why: &str) {
        if self.temp_tables.is_empty() {
            return;
        }
        let tables: Vec<String> = self.temp_tables.iter().map(|t| t.to_string()).collect();
        tracing::warn!(
            worker = self.cfg.index,
            tables = %tables.join(", "),
            "{why} with {} temporary table(s) of primary sessions open; they are lost, and \
             statements of those sessions that use them will fail",
            tables.len()
        );
        self.temp_tables.clear();
    }

    /// After a lost connection: did the batch commit? (The restart rule.)
    fn batch_committed(&mut self, batch: &[WorkItem]) -> Result<bool, ApplyError> {
        let last = batch.last().expect("a batch is not empty");
        let Some(g) = last.group.maria_gtid() else {
            return Ok(false);
        };
        let addr = self.cfg.target.addr();
        let target_err = |error| ApplyError::target(addr.clone(), error);
        if last.barrier {
            let state = self
                .conn
                .query_value("SELECT @@GLOBAL.gtid_binlog_state")
                .map_err(target_err)?
                .unwrap_or_default();
            let state = parse_gtid_list(&state).map_err(|error| ReplicaError::BadGtidList {
                addr: addr.clone(),
                variable: "gtid_binlog_state",
                value: state.clone(),
                error,
            })?;
            return Ok(ReplicaState::default().barrier_applied(g, &state) == Applied::Yes);
        }
        let rows = self
            .conn
            .query_rows(&self.cfg.progress.select_shards_sql())
            .map_err(target_err)?;
        // The read opened a transaction (autocommit is off); end it.
        self.conn.execute(b"ROLLBACK").map_err(target_err)?;
        let st = ProgressTables::parse_state(&rows, &[], None)
            .map_err(|error| ReplicaError::BadProgress { addr, error })?;
        Ok(st.shard_group_applied(g, last.shards.iter().map(|s| &**s)) == Applied::Yes)
    }

    /// One attempt at the batch. Returns whether its `COMMIT` was deferred,
    /// and the shard rows it inserts.
    #[allow(clippy::type_complexity)]
    fn try_apply(
        &mut self,
        batch: &[WorkItem],
        defer: bool,
    ) -> Result<(bool, Vec<(u32, Arc<str>)>), Failure> {
        let last = batch.last().expect("a batch is not empty");
        let gtid = last.group.maria_gtid().ok_or_else(|| {
            Failure::Fatal(
                DefiniteError::NoGtid {
                    group: GroupRef::of(&last.group),
                }
                .into(),
            )
        })?;
        let in_transaction = !matches!(last.group.kind, GroupKind::Ddl | GroupKind::Xa);
        let prepared_xa = last.group.gtid_flags & gtid_flags::PREPARED_XA != 0;
        // The watermarks: as row events in the last group's BINLOG when
        // every row exists, else one SQL upsert.
        let marks = if last.barrier {
            Vec::new()
        } else {
            watermarks(batch)
        };
        let events = self.watermark_events(&last.group, gtid, &marks);
        let trailer = events.as_deref().map(|events| Trailer {
            events,
            merge: batch.len() == 1 && !last.barrier && last.group.kind == GroupKind::RowDml,
        });
        // Each group is planned just before it is sent (one group's
        // statements in memory at a time), in order: planning follows the
        // session's state.
        let mut planned: Vec<Step> = Vec::new();
        let mut owners: Vec<usize> = Vec::new();
        let mut used = TrailerUse::NotSent;
        let mut ends = (false, false); // (explicit, defer), set with the head
                                       // Statements packed after a `BINLOG` in this round trip: its
                                       // results are then read by count.
        let mut counted = false;
        self.buf.clear();
        for (i, item) in batch.iter().enumerate() {
            planned.clear();
            let t = if i + 1 == batch.len() { trailer } else { None };
            used = plan_group(
                &item.group,
                &mut self.session,
                &self.cfg.collations,
                t,
                &mut planned,
            )
            .map_err(|error| {
                Failure::Fatal(
                    DefiniteError::Replay {
                        group: GroupRef::of(&item.group),
                        error: Box::new(error),
                    }
                    .into(),
                )
            })?;
            if i == 0 {
                // How the transaction ends: a group merged with its
                // watermark into one row statement (a batch of one) commits
                // with it under autocommit; DDL and XA run with autocommit as
                // on the primary; anything else runs in the session's
                // implicit transaction (autocommit off) up to a COMMIT,
                // deferred when it may be (not when the watermark still
                // needs its SQL upsert, which goes last).
                let fast = used == TrailerUse::Merged;
                let explicit = in_transaction && !fast;
                let defer = defer && explicit && !last.barrier && !prepared_xa;
                ends = (explicit, defer);
                if self.open.is_some() {
                    self.buf.extend_from_slice(b"COMMIT;\n");
                    owners.push(OPEN_COMMIT);
                }
                self.set_gtid(gtid, !explicit);
                owners.push(0);
            }
            // Pack into round trips; a BINLOG (or a charset change) ends one.
            for step in planned.drain(..) {
                if !self.buf.is_empty() {
                    self.buf.extend_from_slice(b";\n");
                }
                self.buf.extend_from_slice(&step.sql);
                owners.push(i);
                if step.ends_round_trip {
                    // A BINLOG does not end the round trip (read by count)
                    // until the round trip is large.
                    if step.binlog && self.buf.len() < PACK_BYTES && step.failpoint.is_none() {
                        counted = true;
                        continue;
                    }
                    if let Some(data) = step.local_infile {
                        self.conn.set_local_infile(data);
                    }
                    self.round_trip(batch, &owners, step.expect, counted)?;
                    counted = false;
                    if let Some(name) = step.failpoint {
                        super::failpoint::check(name);
                    }
                    owners.clear();
                    self.buf.clear();
                }
            }
        }
        let (explicit, mut defer) = ends;
        // The watermark, when no row events carried it: one SQL upsert, and
        // then the COMMIT is not deferred (the upsert must precede it).
        let mut new_rows = Vec::new();
        if !marks.is_empty() && used == TrailerUse::NotSent {
            let rows: Vec<(u32, &str, &Watermark)> =
                marks.iter().map(|(d, s, w)| (*d, &**s, w)).collect();
            if !self.buf.is_empty() {
                self.buf.extend_from_slice(b";\n");
            }
            self.buf
                .extend_from_slice(self.cfg.progress.upsert_shards_sql(&rows).as_bytes());
            owners.push(batch.len() - 1);
            new_rows = marks.iter().map(|(d, s, _)| (*d, s.clone())).collect();
            defer = false;
        }
        if explicit && !defer {
            if !self.buf.is_empty() {
                self.buf.extend_from_slice(b";\n");
            }
            // A group the primary rolled back (a barrier: alone, without a
            // watermark row) is rolled back too: its non-transactional
            // changes stay, as on the primary.
            self.buf
                .extend_from_slice(if last.group.end == GroupEnd::Rollback {
                    b"ROLLBACK"
                } else {
                    b"COMMIT"
                });
            owners.push(batch.len() - 1);
        }
        if !self.buf.is_empty() {
            self.round_trip(batch, &owners, Expect::Success, counted)?;
        }
        if prepared_xa {
            self.detach_xa(&last.group)?;
        }
        Ok((defer, new_rows))
    }

    /// Whether `item` may join a chain: a transactional row group, with
    /// watermarks written as row events. (Whether it merges — one
    /// statement, its shard rows known — is found when it is planned; one
    /// that does not is applied on its own.)
    fn chainable(&self, item: &WorkItem) -> bool {
        !item.barrier
            && item.group.end == GroupEnd::Commit
            && item.group.kind == GroupKind::RowDml
            && self.cfg.row_events
    }

    /// Applies `items` — consecutive groups of this worker's queue, each a
    /// transaction of its own — chained in as few round trips as possible:
    /// `SET @@session.gtid_seq_no=…; BINLOG '<group and watermark>'` per
    /// group under autocommit, or, for a group of several statements,
    /// `SET …, autocommit=0; BINLOG …; …; BINLOG '<last and watermark>';
    /// COMMIT`, back to back in one multi-statement query. The server
    /// commits each group before it runs the next statement and stops at
    /// the first error, so after a failure the groups before the failing
    /// one are committed and the ones after it never ran. A group whose
    /// plan cannot run inside a chain (a statement that must fail as on
    /// the primary, a change of the client character set, no row events
    /// last) is applied on its own.
    fn apply_chain(&mut self, items: Vec<WorkItem>) -> Result<(), ApplyError> {
        let mut pending: std::collections::VecDeque<WorkItem> = items.into();
        let mut retries = Retries::default();
        while !pending.is_empty() {
            self.check_abort()?;
            let (planned, owners) = self.plan_chain(pending.make_contiguous())?;
            if planned == 0 {
                let item = pending.pop_front().expect("not empty");
                self.apply_with_retries(vec![item], true)?;
                continue;
            }
            let chain = &pending.make_contiguous()[..planned];
            let (done, result) = self.chain_round_trip(chain, &owners);
            if done > 0 {
                let batch: Vec<WorkItem> = pending.drain(..done).collect();
                self.committed(Open {
                    batch,
                    new_rows: Vec::new(),
                });
            }
            match result {
                Ok(()) => retries = Retries::default(),
                Err(failure) => {
                    // The chain stopped at its first uncommitted group,
                    // now at the head of `pending`.
                    if self.recover(failure, pending.make_contiguous(), &mut retries)? {
                        self.take_committed_prefix(&mut pending)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// After a chain's connection was lost: the server ran the chain in
    /// order, so what committed is a prefix of it; reports and drops it.
    fn take_committed_prefix(
        &mut self,
        pending: &mut std::collections::VecDeque<WorkItem>,
    ) -> Result<(), ApplyError> {
        while let Some(item) = pending.front() {
            if !self.batch_committed(std::slice::from_ref(item))? {
                break;
            }
            let item = pending.pop_front().expect("front exists");
            self.committed(Open {
                batch: vec![item],
                new_rows: Vec::new(),
            });
        }
        Ok(())
    }

    /// Plans the longest prefix of `items` whose groups each carry their
    /// watermark in their last `BINLOG` and run without a round trip of
    /// their own, into `self.buf` (up to [`PACK_BYTES`]); returns its
    /// length and the owner of each statement.
    fn plan_chain(&mut self, items: &[WorkItem]) -> Result<(usize, Vec<usize>), ApplyError> {
        let mut owners: Vec<usize> = Vec::new();
        self.buf.clear();
        if self.open.is_some() {
            self.buf.extend_from_slice(b"COMMIT");
            owners.push(OPEN_COMMIT);
        }
        let mut steps = Vec::new();
        let mut planned = 0;
        for (i, item) in items.iter().enumerate() {
            let Some(gtid) = item.group.maria_gtid() else {
                break;
            };
            let marks = watermarks(std::slice::from_ref(item));
            let Some(events) = self.watermark_events(&item.group, gtid, &marks) else {
                break;
            };
            let before = self.session.clone();
            steps.clear();
            let used = plan_group(
                &item.group,
                &mut self.session,
                &self.cfg.collations,
                Some(Trailer {
                    events: &events,
                    merge: true,
                }),
                &mut steps,
            )
            .map_err(|error| DefiniteError::Replay {
                group: GroupRef::of(&item.group),
                error: Box::new(error),
            })?;
            // Every statement must be one the server runs on after:
            // nothing that may fail as on the primary, no LOAD DATA, no
            // change of the client character set.
            let packs = steps.iter().all(|s| {
                (!s.ends_round_trip || s.binlog)
                    && s.expect == Expect::Success
                    && s.local_infile.is_none()
            });
            if used == TrailerUse::NotSent || !packs {
                self.session = before;
                break;
            }
            // Merged: one BINLOG under autocommit applies and commits the
            // group and its watermark; else a transaction and its COMMIT.
            let merged = used == TrailerUse::Merged;
            if !self.buf.is_empty() {
                self.buf.extend_from_slice(b";\n");
            }
            self.set_gtid(gtid, merged);
            owners.push(i);
            for step in &steps {
                self.buf.extend_from_slice(b";\n");
                self.buf.extend_from_slice(&step.sql);
                owners.push(i);
            }
            if !merged {
                self.buf.extend_from_slice(b";\nCOMMIT");
                owners.push(i);
            }
            planned = i + 1;
            if self.buf.len() >= PACK_BYTES {
                break;
            }
        }
        Ok((planned, owners))
    }

    /// Runs the chain planned in `self.buf`. Returns how many of its groups
    /// committed (0 when unknown: a lost connection), and how it ended.
    fn chain_round_trip(
        &mut self,
        chain: &[WorkItem],
        owners: &[usize],
    ) -> (usize, Result<(), Failure>) {
        let with_open = owners.first() == Some(&OPEN_COMMIT);
        let result = self.conn.execute_counted(&self.buf, owners.len());
        // Statements that succeeded: all, or those before the failing one.
        let succeeded = match &result {
            Ok(_) => owners.len(),
            Err(WireError::Server { statement, .. }) => *statement,
            Err(_) => 0,
        };
        if with_open {
            if succeeded == 0 {
                let Err(e) = result else {
                    unreachable!("a query that succeeded ran its first statement")
                };
                return (0, Err(Failure::Open(e)));
            }
            let open = self.open.take().expect("an open batch was being committed");
            self.committed(open);
        }
        // A group is committed once its last statement (its BINLOG) is.
        let done = (0..chain.len())
            .take_while(|&i| {
                owners
                    .iter()
                    .rposition(|&o| o == i)
                    .is_some_and(|last| last < succeeded)
            })
            .count();
        let e = match result {
            Ok(_) => return (done, Ok(())),
            Err(e) => e,
        };
        let failure = if e.is_deadlock() || e.is_lock_wait_timeout() {
            // The failing group is the first not committed: once the
            // committed ones are dropped, the head of what is left.
            Failure::Retry(e, 0)
        } else if e.is_connection_lost() {
            Failure::Lost(e)
        } else {
            let owner = owners
                .get(succeeded)
                .copied()
                .filter(|&o| o != OPEN_COMMIT)
                .unwrap_or(done)
                .min(chain.len() - 1);
            Failure::Fatal(ApplyError::in_group(&chain[owner].group, e))
        };
        (done, Err(failure))
    }

    /// Appends to `self.buf` the `SET` of the GTID and, where they change,
    /// of its domain and server and of `autocommit`.
    fn set_gtid(&mut self, gtid: MariaGtid, autocommit: bool) {
        let _ = write!(self.buf, "SET @@session.gtid_seq_no={}", gtid.seq);
        if self.origin != Some((gtid.domain, gtid.server)) {
            let _ = write!(
                self.buf,
                ", @@session.gtid_domain_id={}, @@session.server_id={}",
                gtid.domain, gtid.server
            );
            self.origin = Some((gtid.domain, gtid.server));
        }
        if self.autocommit != Some(autocommit) {
            let _ = write!(self.buf, ", @@session.autocommit={}", u8::from(autocommit));
            self.autocommit = Some(autocommit);
        }
    }

    /// The row events that move `marks`, if every row exists and the
    /// progress table has the layout they describe.
    fn watermark_events(
        &self,
        group: &Group,
        gtid: MariaGtid,
        marks: &[(u32, Arc<str>, Watermark)],
    ) -> Option<Vec<u8>> {
        if !self.cfg.row_events || marks.is_empty() {
            return None;
        }
        {
            let known = self
                .cfg
                .shard_rows
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !marks
                .iter()
                .all(|(d, s, _)| known.contains(&(*d, s.clone())))
            {
                return None;
            }
        }
        let rows: Vec<(u32, &str, &Watermark)> =
            marks.iter().map(|(d, s, w)| (*d, &**s, w)).collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let mut out = Vec::with_capacity(128);
        self.cfg
            .progress
            .shard_update_events(
                &group.format,
                &rows,
                group.timestamp,
                gtid.server,
                now,
                &mut out,
            )
            .then_some(out)
    }

    /// A prepared XA transaction stays attached to its connection, which
    /// can run nothing else until it ends. Like the server's own replica,
    /// detach it: it survives the disconnect, and its XA COMMIT may come on
    /// any connection.
    fn detach_xa(&mut self, group: &Group) -> Result<(), Failure> {
        let old = self.conn.connection_id();
        match open(&self.cfg) {
            Ok(c) => {
                self.conn = c;
                self.forget_session();
            }
            Err(e) => return Err(Failure::Lost(e)),
        }
        // The server detaches the transaction when it has processed the
        // disconnect, which is asynchronous: wait for that, so that the
        // XA COMMIT that follows finds the transaction.
        let gone = format!("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {old}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.conn.query_value(&gone) {
                Ok(Some(n)) if n == "0" => return Ok(()),
                Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Ok(_) => {
                    return Err(Failure::Fatal(
                        DefiniteError::XaNotDetached {
                            group: GroupRef::of(group),
                            connection: old,
                        }
                        .into(),
                    ))
                }
                Err(e) => return Err(Failure::Lost(e)),
            }
        }
    }

    /// Sends the buffered statements (one per entry of `owners`); maps a
    /// failure to its group. With `counted`, one result per statement is
    /// read whatever the server's more-results flag says (a `BINLOG` is
    /// not last). A deferred `COMMIT` at their head is settled here when
    /// it succeeded. The last statement must end as `last` says (an error
    /// the primary logged is then no failure; another outcome is a
    /// divergence).
    fn round_trip(
        &mut self,
        batch: &[WorkItem],
        owners: &[usize],
        last: Expect,
        counted: bool,
    ) -> Result<(), Failure> {
        let with_open = owners.first() == Some(&OPEN_COMMIT);
        let mut result = if counted {
            self.conn.execute_counted(&self.buf, owners.len())
        } else {
            self.conn.execute(&self.buf)
        }
        .map(|_| ());
        if last != Expect::Success {
            result = self.expected_outcome(batch, owners, last, result)?;
        }
        if with_open {
            let past_commit = match &result {
                Ok(_) => true,
                Err(WireError::Server { statement, .. }) => *statement > 0,
                Err(_) => false,
            };
            if !past_commit {
                let Err(e) = result else { unreachable!() };
                return Err(Failure::Open(e));
            }
            let open = self.open.take().expect("an open batch was being committed");
            self.committed(open);
        }
        let e = match result {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        // Whether a COMMIT in flight took effect is read back after reconnecting.
        if e.is_connection_lost() {
            return Err(Failure::Lost(e));
        }
        // The group whose statement failed.
        let owner = match &e {
            WireError::Server { statement, .. } => owners.get(*statement).copied().unwrap_or(0),
            _ => 0,
        }
        .min(batch.len() - 1);
        if e.is_deadlock() || e.is_lock_wait_timeout() {
            Err(Failure::Retry(e, owner))
        } else {
            Err(Failure::Fatal(ApplyError::in_group(&batch[owner].group, e)))
        }
    }
}

impl Worker {
    /// Checks the outcome of a round trip whose last statement must end as
    /// `last` ([`Expect`]): an accepted error becomes success; success
    /// where an error was logged, or another error of that statement, is a
    /// divergence ([`DefiniteError::Diverged`], naming that statement's
    /// group). Failures of the statements before it pass through.
    fn expected_outcome(
        &mut self,
        batch: &[WorkItem],
        owners: &[usize],
        last: Expect,
        result: Result<(), WireError>,
    ) -> Result<Result<(), WireError>, Failure> {
        let at = owners.len() - 1;
        let got = match &result {
            Ok(()) => None,
            Err(WireError::Server {
                statement, code, ..
            }) if *statement == at => Some(*code),
            Err(_) => return Ok(result),
        };
        let item = &batch[owners[at].min(batch.len() - 1)];
        if last.accepts(got) {
            if got.is_some() {
                tracing::debug!(
                    group = %item.group.describe(),
                    code = got,
                    "a statement failed on the target as it did on the primary"
                );
            }
            return Ok(Ok(()));
        }
        // A transient error of the target is retried as any other.
        if let Err(e) = &result {
            if e.is_deadlock() || e.is_lock_wait_timeout() {
                return Ok(result);
            }
        }
        // Whatever the round trip did is rolled back by the caller, and
        // the deferred COMMIT at its head, if any, ran (it came first).
        if owners.first() == Some(&OPEN_COMMIT) {
            if let Some(open) = self.open.take() {
                self.committed(open);
            }
        }
        Err(Failure::Fatal(
            DefiniteError::Diverged {
                group: GroupRef::of(&item.group),
                expected: last,
                actual: result.err().map(Box::new),
            }
            .into(),
        ))
    }
}

/// Connects and records the connection in the sessions table, so that a
/// later applier can wait for its statements if this process dies.
fn open(cfg: &WorkerConfig) -> Result<Conn, WireError> {
    let mut c = Conn::connect(&cfg.target)?;
    // The registration is bookkeeping: not in the target's binary log.
    // Annotations off: the target's binary log would otherwise annotate
    // every replayed row event with the text of its `BINLOG` statement, the
    // base64 of the events again, written and synced a second time.
    let sql = format!(
        "SET @@session.sql_log_bin=0;\n{};\nSET @@session.sql_log_bin=1, \
         @@session.binlog_annotate_row_events=0",
        cfg.progress.register_session_sql()
    );
    c.execute(sql.as_bytes())?;
    Ok(c)
}

/// The last group of each (domain, shard) in the batch.
fn watermarks(batch: &[WorkItem]) -> Vec<(u32, Arc<str>, Watermark)> {
    let mut out: Vec<(u32, Arc<str>, Watermark)> = Vec::new();
    for item in batch {
        let Some(g) = item.group.maria_gtid() else {
            continue;
        };
        for s in &item.shards {
            let w = watermark_of(g, &item.group);
            match out.iter_mut().find(|(d, x, _)| *d == g.domain && x == s) {
                Some(slot) => slot.2 = w,
                None => out.push((g.domain, s.clone(), w)),
            }
        }
    }
    out
}

fn watermark_of(g: MariaGtid, group: &Group) -> Watermark {
    Watermark {
        seq_no: g.seq,
        server_id: g.server,
        end: group.end(),
    }
}
