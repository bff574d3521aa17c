//! A worker: one connection to the target, applying the groups the
//! scheduler sends it, in the order it sends them.
//!
//! # One batch, one transaction
//!
//! The worker takes the next group from its queue and, when more groups of
//! the same single shard are already waiting behind it (a backlog), up to
//! `batch_groups` of them (and `batch_bytes`): they are applied as **one**
//! target transaction, and the shard's watermark row moves to the batch's
//! last group inside that transaction. Round trips per batch of k row
//! groups: k + 1 — `SET gtid…; START TRANSACTION; BINLOG '<group 1>'`, one
//! `BINLOG` per further group (a `BINLOG` must end its round trip), then
//! `INSERT … progress …; COMMIT`. The target's binary log holds one GTID per
//! batch: the primary's GTID of its last group.
//!
//! Barriers (DDL, XA, non-transactional groups) come alone and are applied
//! alone; DDL and XA without a wrapping transaction.
//!
//! # Failures
//!
//! * Deadlock or lock-wait timeout: roll back, wait (10 ms doubling, at most
//!   1 s), apply the batch again; up to `max_retries` times.
//! * Connection lost: reconnect with backoff for up to `reconnect_timeout`.
//!   If the loss happened while the commit was in flight, whether it
//!   committed is read back from the target (the restart rule of
//!   [`crate::progress`]) before anything is applied again.
//! * Anything else: roll back and report [`ApplyError::Group`]; the engine
//!   stops. Nothing of the batch is committed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::error::ApplyError;
use super::replay::{plan_group, Collations, Session, Step};
use crate::binlog::constants::gtid_flags;
use crate::group::{Group, GroupKind};
use crate::position::MariaGtid;
use crate::progress::{parse_gtid_list, Applied, ProgressTables, ReplicaState, Watermark};
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
}

/// Runs a worker until its queue closes or it fails.
pub fn run(cfg: WorkerConfig, rx: Receiver<WorkItem>, tx: Sender<Report>) {
    let index = cfg.index;
    let mut w = match Worker::connect(cfg) {
        Ok(w) => w,
        Err(error) => {
            let _ = tx.send(Report::Failed {
                worker: index,
                error,
            });
            return;
        }
    };
    let mut carry: Option<WorkItem> = None;
    loop {
        let first = match carry.take() {
            Some(x) => x,
            None => match rx.recv() {
                Ok(x) => x,
                Err(_) => return,
            },
        };
        let mut batch = vec![first];
        if batchable(&batch[0]) {
            let mut bytes = batch[0].group.bytes.len();
            while batch.len() < w.cfg.batch_groups && bytes < w.cfg.batch_bytes {
                match rx.try_recv() {
                    Ok(next) if batchable(&next) && next.shards == batch[0].shards => {
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
        match w.apply_with_retries(&batch) {
            Ok(()) => {
                let ids = batch.iter().map(|i| i.id).collect();
                if tx.send(Report::Applied { worker: index, ids }).is_err() {
                    return;
                }
            }
            Err(error) => {
                let _ = tx.send(Report::Failed {
                    worker: index,
                    error,
                });
                return;
            }
        }
    }
}

/// A single-shard, non-barrier row or statement group can share a transaction.
fn batchable(i: &WorkItem) -> bool {
    !i.barrier
        && i.shards.len() == 1
        && matches!(i.group.kind, GroupKind::RowDml | GroupKind::StatementDml)
}

struct Worker {
    cfg: WorkerConfig,
    conn: Conn,
    session: Session,
    /// Reused buffer for one round trip.
    buf: Vec<u8>,
}

/// Where a failed attempt left things.
enum Failure {
    /// Rolled back (or never started): the batch can be applied again.
    Retry(WireError),
    /// The connection died; the commit may or may not have happened.
    Lost(WireError),
    /// Give up.
    Fatal(ApplyError),
}

impl Worker {
    fn connect(cfg: WorkerConfig) -> Result<Worker, ApplyError> {
        let conn = open(&cfg).map_err(|error| ApplyError::Target {
            addr: cfg.target.addr(),
            error: Box::new(error),
        })?;
        Ok(Worker {
            cfg,
            conn,
            session: Session::default(),
            buf: Vec::with_capacity(1 << 16),
        })
    }

    fn apply_with_retries(&mut self, batch: &[WorkItem]) -> Result<(), ApplyError> {
        let mut retries = 0;
        let mut backoff = Duration::from_millis(10);
        loop {
            if self.cfg.abort.load(Ordering::Relaxed) {
                let _ = self.conn.execute(b"ROLLBACK");
                return Err(ApplyError::Aborted);
            }
            match self.try_apply(batch) {
                Ok(()) => return Ok(()),
                Err(Failure::Fatal(e)) => {
                    self.rollback();
                    return Err(e);
                }
                Err(Failure::Retry(e)) => {
                    self.rollback();
                    retries += 1;
                    if retries > self.cfg.max_retries {
                        return Err(group_error(batch, e));
                    }
                    tracing::warn!(
                        worker = self.cfg.index,
                        group = %batch[0].group.describe(),
                        retry = retries,
                        error = %e,
                        "retrying after a transient error"
                    );
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(Failure::Lost(e)) => {
                    tracing::warn!(
                        worker = self.cfg.index,
                        group = %batch[0].group.describe(),
                        error = %e,
                        "lost the target connection; reconnecting"
                    );
                    self.reconnect(e)?;
                    if self.batch_committed(batch)? {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn rollback(&mut self) {
        self.session.reset();
        if let Err(e) = self.conn.execute(b"ROLLBACK") {
            tracing::debug!(error = %e, "rollback after a failure failed");
        }
    }

    fn reconnect(&mut self, first: WireError) -> Result<(), ApplyError> {
        let deadline = Instant::now() + self.cfg.reconnect_timeout;
        let mut wait = Duration::from_millis(100);
        let mut last = first;
        loop {
            if self.cfg.abort.load(Ordering::Relaxed) {
                return Err(ApplyError::Aborted);
            }
            match open(&self.cfg) {
                Ok(c) => {
                    self.conn = c;
                    self.session.reset();
                    tracing::info!(worker = self.cfg.index, "reconnected to the target");
                    return Ok(());
                }
                Err(e) if e.is_connection_lost() && Instant::now() < deadline => {
                    last = e;
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    let error = if e.is_connection_lost() { last } else { e };
                    return Err(ApplyError::Target {
                        addr: self.cfg.target.addr(),
                        error: Box::new(error),
                    });
                }
            }
        }
    }

    /// After a lost connection: did the batch commit? (The restart rule.)
    fn batch_committed(&mut self, batch: &[WorkItem]) -> Result<bool, ApplyError> {
        let last = batch.last().expect("a batch is not empty");
        let Some(g) = last.group.maria_gtid() else {
            return Ok(false);
        };
        let addr = self.cfg.target.addr();
        let target_err = |error| ApplyError::Target {
            addr: addr.clone(),
            error: Box::new(error),
        };
        if last.barrier {
            let state = self
                .conn
                .query_value("SELECT @@GLOBAL.gtid_binlog_state")
                .map_err(target_err)?
                .unwrap_or_default();
            let state = parse_gtid_list(&state).map_err(ApplyError::Preflight)?;
            return Ok(ReplicaState::default().barrier_applied(g, &state) == Applied::Yes);
        }
        let rows = self
            .conn
            .query_rows(&self.cfg.progress.select_shards_sql())
            .map_err(target_err)?;
        let st = ProgressTables::parse_state(&rows, &[], None).map_err(ApplyError::Preflight)?;
        Ok(st.shard_group_applied(g, last.shards.iter().map(|s| &**s)) == Applied::Yes)
    }

    /// One attempt at the batch.
    fn try_apply(&mut self, batch: &[WorkItem]) -> Result<(), Failure> {
        let last = batch.last().expect("a batch is not empty");
        let gtid = last.group.maria_gtid().ok_or_else(|| {
            Failure::Fatal(ApplyError::NoGtid {
                group: last.group.describe(),
            })
        })?;
        let in_transaction = !matches!(last.group.kind, GroupKind::Ddl | GroupKind::Xa);
        // Plan every group's statements; remember which group each is for.
        let mut steps: Vec<(usize, Step)> = Vec::new();
        let mut planned = Vec::new();
        for (i, item) in batch.iter().enumerate() {
            planned.clear();
            plan_group(
                &item.group,
                &mut self.session,
                &self.cfg.collations,
                &mut planned,
            )
            .map_err(|error| {
                Failure::Fatal(ApplyError::Replay {
                    group: item.group.describe(),
                    error: Box::new(error),
                })
            })?;
            steps.extend(planned.drain(..).map(|s| (i, s)));
        }
        let mut head = format!(
            "SET @@session.gtid_domain_id={}, @@session.server_id={}, @@session.gtid_seq_no={}",
            gtid.domain, gtid.server, gtid.seq
        )
        .into_bytes();
        if in_transaction {
            head.extend_from_slice(b";\nSTART TRANSACTION");
        }
        let mut tail: Vec<u8> = Vec::new();
        if !last.barrier {
            let rows = watermarks(batch);
            let rows: Vec<(u32, &str, &Watermark)> =
                rows.iter().map(|(d, s, w)| (*d, &**s, w)).collect();
            tail.extend_from_slice(self.cfg.progress.upsert_shards_sql(&rows).as_bytes());
        }
        if in_transaction {
            if !tail.is_empty() {
                tail.extend_from_slice(b";\n");
            }
            tail.extend_from_slice(b"COMMIT");
        }
        // Pack into round trips; a BINLOG (or a charset change) ends one.
        let mut owners: Vec<usize> = Vec::new();
        self.buf.clear();
        self.buf.extend_from_slice(&head);
        owners.push(0);
        if in_transaction {
            owners.push(0);
        }
        for (i, step) in &steps {
            if !self.buf.is_empty() {
                self.buf.extend_from_slice(b";\n");
            }
            self.buf.extend_from_slice(&step.sql);
            owners.push(*i);
            if step.ends_round_trip {
                self.round_trip(batch, &owners)?;
                owners.clear();
                self.buf.clear();
            }
        }
        if !tail.is_empty() {
            if !self.buf.is_empty() {
                self.buf.extend_from_slice(b";\n");
            }
            self.buf.extend_from_slice(&tail);
            owners.push(batch.len() - 1);
            if in_transaction {
                owners.push(batch.len() - 1);
            }
        }
        if !self.buf.is_empty() {
            self.round_trip(batch, &owners)?;
        }
        if last.group.gtid_flags & gtid_flags::PREPARED_XA != 0 {
            // A prepared XA transaction stays attached to its connection,
            // which can run nothing else until it ends. Like the server's own
            // replica, detach it: it survives the disconnect, and its XA
            // COMMIT may come on any connection.
            let old = self.conn.connection_id();
            match open(&self.cfg) {
                Ok(c) => {
                    self.conn = c;
                    self.session.reset();
                }
                Err(e) => return Err(Failure::Lost(e)),
            }
            // The server detaches the transaction when it has processed the
            // disconnect, which is asynchronous: wait for that, so that the
            // XA COMMIT that follows finds the transaction.
            let gone =
                format!("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {old}");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match self.conn.query_value(&gone) {
                    Ok(Some(n)) if n == "0" => break,
                    Ok(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Ok(_) => {
                        return Err(Failure::Fatal(ApplyError::Internal(format!(
                            "connection {old} holding the prepared XA transaction of {} did not \
                             go away",
                            last.group.describe()
                        ))))
                    }
                    Err(e) => return Err(Failure::Lost(e)),
                }
            }
        }
        Ok(())
    }

    /// Sends the buffered statements; maps a failure to its group.
    fn round_trip(&mut self, batch: &[WorkItem], owners: &[usize]) -> Result<(), Failure> {
        match self.conn.execute(&self.buf) {
            Ok(_) => Ok(()),
            Err(e) if e.is_deadlock() || e.is_lock_wait_timeout() => Err(Failure::Retry(e)),
            // Whether a COMMIT in flight took effect is read back after reconnecting.
            Err(e) if e.is_connection_lost() => Err(Failure::Lost(e)),
            Err(e) => {
                let owner = match &e {
                    WireError::Server { statement, .. } => {
                        owners.get(*statement).copied().unwrap_or(0)
                    }
                    _ => 0,
                };
                Err(Failure::Fatal(group_error(&batch[owner..=owner], e)))
            }
        }
    }
}

/// Connects and records the connection in the sessions table, so that a
/// later applier can wait for its statements if this process dies.
fn open(cfg: &WorkerConfig) -> Result<Conn, WireError> {
    let mut c = Conn::connect(&cfg.target)?;
    c.execute(cfg.progress.register_session_sql().as_bytes())?;
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

fn group_error(batch: &[WorkItem], error: WireError) -> ApplyError {
    let g = &batch[0].group;
    let databases = if g.databases.is_empty() {
        "unknown databases".to_string()
    } else if g.databases.len() == 1 {
        g.databases[0].clone()
    } else {
        format!("databases {}", g.databases.join(", "))
    };
    ApplyError::Group {
        group: g.describe(),
        databases,
        error: Box::new(error),
    }
}
