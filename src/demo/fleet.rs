//! The demo's servers and the parapply parts beside them: a primary, three
//! replicas each with a mirror (`parapply mirror`, a thread here) and an
//! applier (`parapply apply --follow`, a thread here), and one replica run
//! by MariaDB's own single SQL thread. Everything lives in this process:
//! dropping the [`Fleet`] stops and joins every thread, then removes every
//! server (the sandbox's watchdogs remove them even if this process is
//! killed).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mysql::prelude::Queryable;

use super::DemoError;
use crate::apply::engine::{self, ApplyFailure, ApplyOptions, ApplyReport};
use crate::apply::{ApplyError, ApplyMetrics};
use crate::binlog::Source;
use crate::mirror::{self, MirrorError, MirrorMetrics, MirrorOptions, MirrorStart};
use crate::position::BinlogPos;
use crate::progress::{ProgressTables, ReplicaState};
use crate::replica::{Replica, ReplicaOptions};
use crate::sandbox::{Server, ServerOptions};
use crate::wire::ConnectOptions;

/// The old primary's server id.
pub(super) const PRIMARY_ID: u32 = 1;
/// The SQL-thread replica's server id.
const SQL_ID: u32 = 20;
/// Apply workers per replica.
const WORKERS: usize = 8;

/// A running `parapply mirror`.
struct MirrorTask {
    stop: Arc<AtomicBool>,
    metrics: Arc<MirrorMetrics>,
    thread: Option<JoinHandle<Result<(), MirrorError>>>,
}

/// A running `parapply apply --follow`.
struct ApplierTask {
    stop: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    metrics: Arc<ApplyMetrics>,
    thread: Option<JoinHandle<Result<ApplyReport, ApplyFailure>>>,
}

/// One parapply replica: its server, mirror and applier.
pub(super) struct Node {
    /// `r1`, `r2`, `r3`.
    pub name: String,
    /// Its server (read-only, durable, with its own binlog).
    pub server: Server,
    /// Its current mirror directory.
    pub mirror_dir: PathBuf,
    mirror: Option<MirrorTask>,
    applier: Option<ApplierTask>,
}

/// What a stopped applier did (`None`: it was not running).
pub(super) type Stopped = Option<ApplyReport>;

impl Node {
    /// Its address for the library's clients.
    pub fn target(&self) -> ConnectOptions {
        ConnectOptions::new("127.0.0.1", self.server.port(), "root")
    }

    /// Starts mirroring the primary on `port` into `dir` (from `start`;
    /// `None`: the primary's first file) as replica `server_id`.
    pub fn start_mirror(
        &mut self,
        port: u16,
        dir: PathBuf,
        start: Option<BinlogPos>,
        server_id: u32,
    ) -> Result<(), DemoError> {
        let mut o = MirrorOptions::new(
            ConnectOptions::new("127.0.0.1", port, "root"),
            dir.clone(),
            server_id,
        );
        o.start = start.map(MirrorStart::Pos);
        o.max_backoff = Duration::from_millis(500);
        let stop = Arc::new(AtomicBool::new(false));
        o.stop = Some(stop.clone());
        let metrics = o.metrics.clone();
        let thread = std::thread::Builder::new()
            .name(format!("mirror-{}", self.name))
            .spawn(move || mirror::run(&o))
            .map_err(|e| DemoError::io("starting a mirror thread", e))?;
        self.mirror_dir = dir;
        self.mirror = Some(MirrorTask {
            stop,
            metrics,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Bytes the running mirror wrote (0: none runs).
    pub fn mirrored_bytes(&self) -> u64 {
        self.mirror.as_ref().map_or(0, |m| m.metrics.bytes_total())
    }

    /// Stops the mirror (the event being written is finished).
    pub fn stop_mirror(&mut self) -> Result<(), DemoError> {
        let Some(mut m) = self.mirror.take() else {
            return Ok(());
        };
        m.stop.store(true, Ordering::SeqCst);
        match m.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(()))) | None => Ok(()),
            Some(Ok(Err(error))) => Err(DemoError::Mirror {
                replica: self.name.clone(),
                error: Box::new(error),
            }),
            Some(Err(_)) => Err(DemoError::Panicked(format!("{}'s mirror", self.name))),
        }
    }

    /// Starts `parapply apply --follow` on the mirror directory (once the
    /// mirror wrote its first file), with `stop` as the demo's own stop.
    pub fn start_applier(&mut self, stop: &AtomicBool) -> Result<(), DemoError> {
        let Some(source) =
            Source::wait_for_dir(&self.mirror_dir, stop).map_err(|e| DemoError::Read {
                replica: self.name.clone(),
                error: Box::new(e),
            })?
        else {
            return Err(DemoError::Interrupted);
        };
        let mut o = ApplyOptions::new(source, self.target());
        o.workers = WORKERS;
        o.follow = true;
        o.reconnect_timeout = Duration::from_secs(5);
        let task = ApplierTask {
            stop: o.stop.clone(),
            abort: o.abort.clone(),
            metrics: o.metrics.clone(),
            thread: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("apply-{}", self.name))
            .spawn(move || engine::run(o))
            .map_err(|e| DemoError::io("starting an applier thread", e))?;
        self.applier = Some(ApplierTask {
            thread: Some(thread),
            ..task
        });
        Ok(())
    }

    /// Asks the applier to stop at once, without waiting for it (a worker
    /// waiting on a lock rolls back once the lock is released).
    pub fn abort_applier(&self) {
        if let Some(a) = &self.applier {
            a.stop.store(true, Ordering::SeqCst);
            a.abort.store(true, Ordering::SeqCst);
        }
    }

    /// The running applier's live figures.
    pub fn applier_metrics(&self) -> Option<&ApplyMetrics> {
        self.applier.as_ref().map(|a| a.metrics.as_ref())
    }

    /// Whether the applier ended by itself (an error, reported by
    /// [`Node::stop_applier`]).
    pub fn applier_ended(&self) -> bool {
        self.applier
            .as_ref()
            .and_then(|a| a.thread.as_ref())
            .is_some_and(|t| t.is_finished())
    }

    /// Stops the applier: drained (`hard == false`: everything read is
    /// applied) or at once (`hard`: open transactions roll back, as when
    /// the sidecar is killed). An abort is not an error.
    pub fn stop_applier(&mut self, hard: bool) -> Result<Stopped, DemoError> {
        let Some(mut a) = self.applier.take() else {
            return Ok(None);
        };
        a.stop.store(true, Ordering::SeqCst);
        if hard {
            a.abort.store(true, Ordering::SeqCst);
        }
        match a.thread.take().map(JoinHandle::join) {
            None => Ok(None),
            Some(Ok(Ok(report))) => Ok(Some(report)),
            Some(Ok(Err(f))) if matches!(f.error, ApplyError::Aborted) => Ok(Some(*f.report)),
            Some(Ok(Err(f))) => Err(DemoError::Apply {
                replica: self.name.clone(),
                error: Box::new(f.error),
            }),
            Some(Err(_)) => Err(DemoError::Panicked(format!("{}'s applier", self.name))),
        }
    }

    /// Its parapply state (per-shard watermarks and low-watermark).
    pub fn state(&self) -> Result<ReplicaState, DemoError> {
        let err = |error| DemoError::Replica {
            replica: self.name.clone(),
            error: Box::new(error),
        };
        let mut r = Replica::connect(ReplicaOptions {
            target: self.target(),
            progress: ProgressTables::new(ApplyOptions::DEFAULT_PROGRESS_SCHEMA)
                .expect("a valid schema name"),
            reconnect_timeout: Duration::ZERO,
        })
        .map_err(err)?;
        r.read_state().map_err(err)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.stop_applier(true);
        let _ = self.stop_mirror();
    }
}

/// Every server of the demo.
pub(super) struct Fleet {
    /// The primary (killed mid-load).
    pub primary: Server,
    /// The parapply replicas.
    pub nodes: Vec<Node>,
    /// The replica run by MariaDB's single SQL thread.
    pub sql: Server,
    /// Sessions holding table locks on replicas (long reports).
    locks: Vec<mysql::Conn>,
}

/// A replica's server: durable, read-only, its own binlog.
fn replica_server(id: u32, basename: &str) -> Result<Server, DemoError> {
    let s = Server::start(
        ServerOptions::new()
            .server_id(id)
            .log_bin(basename)
            .log_slave_updates(true)
            .durable(),
    )?;
    s.exec("SET GLOBAL read_only = 1")?;
    Ok(s)
}

impl Fleet {
    /// Starts the primary, the three parapply replicas (mirrors not yet
    /// running) and the SQL-thread replica.
    pub fn start(mut on_server: impl FnMut(&str, &Server)) -> Result<Fleet, DemoError> {
        let primary = Server::start(
            ServerOptions::new()
                .server_id(PRIMARY_ID)
                .log_bin("mariadb-bin"),
        )?;
        on_server("primary", &primary);
        let mut nodes = Vec::new();
        for i in 1..=3u32 {
            let name = format!("r{i}");
            let server = replica_server(10 + i, "replica-bin")?;
            on_server(&name, &server);
            let mirror_dir = server.root().join("mirror");
            nodes.push(Node {
                name,
                server,
                mirror_dir,
                mirror: None,
                applier: None,
            });
        }
        let sql = replica_server(SQL_ID, "replica-bin")?;
        on_server("sql", &sql);
        Ok(Fleet {
            primary,
            nodes,
            sql,
            locks: Vec::new(),
        })
    }

    /// Points the SQL-thread replica at the primary with only its IO
    /// thread running: the relay log fills, nothing is applied yet.
    pub fn start_sql_io(&self) -> Result<(), DemoError> {
        self.sql.exec(&format!(
            "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
             MASTER_USER = 'root', MASTER_PASSWORD = '', MASTER_CONNECT_RETRY = 1, \
             MASTER_USE_GTID = slave_pos; START SLAVE IO_THREAD",
            self.primary.port()
        ))?;
        Ok(())
    }

    /// Holds `LOCK TABLES … READ` on every table of `db` on node `i` (a
    /// long report): its applier's writes to `db` wait, the other
    /// databases go on.
    pub fn hold_lock(&mut self, i: usize, db: &str) -> Result<(), DemoError> {
        let mut c = self.nodes[i].server.conn()?;
        let sql = format!("LOCK TABLES {db}.ledger READ, {db}.totals READ");
        c.query_drop(&sql).map_err(|e| DemoError::Sql {
            server: self.nodes[i].name.clone(),
            sql,
            error: e.to_string(),
        })?;
        self.locks.push(c);
        Ok(())
    }

    /// Ends the sessions holding locks.
    pub fn release_locks(&mut self) {
        self.locks.clear();
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Abort the appliers before the locks go: a worker waiting on a
        // lock then rolls back instead of going on.
        for n in &self.nodes {
            n.abort_applier();
        }
        self.release_locks();
        for n in &mut self.nodes {
            let _ = n.stop_applier(true);
            let _ = n.stop_mirror();
        }
    }
}

/// The length of `file` in `dir` (0: absent).
pub(super) fn file_len(dir: &Path, file: &str) -> u64 {
    std::fs::metadata(dir.join(file)).map_or(0, |m| m.len())
}
