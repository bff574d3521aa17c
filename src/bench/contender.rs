//! One timed run of one contender on a fresh replica, and what it used.
//!
//! * `native-…`: the IO thread first copies the whole binlog into the relay
//!   log while the SQL thread is stopped; the clock runs from `START SLAVE
//!   SQL_THREAD` until `MASTER_GTID_WAIT(<primary's gtid_binlog_pos>)`
//!   returns.
//! * `mariadb-binlog`: `mariadb-binlog <the primary's binlog files> |
//!   mariadb --socket=<replica's>`, timed from starting both to both having
//!   exited successfully.
//! * `parapply-…`: [`engine::run`] from the call until it returns, on the
//!   primary's binlog directory, through the replica's Unix socket.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, Row};

use super::{sql_error, BenchConfig, BenchError, Result};
use crate::apply::engine::{self, ApplyOptions};
use crate::apply::ApplyError;
use crate::binlog::Source;
use crate::sandbox::{column, describe_slave_status, Server};
use crate::schedule::{ShardBy, ShardMap, DEFAULT_KEY_BUCKETS};
use crate::wire::ConnectOptions;

/// How long one replica may take to fetch or to apply the workload.
const RUN_TIMEOUT: Duration = Duration::from_secs(1800);
/// The pause between two status polls.
const POLL: Duration = Duration::from_millis(10);

/// What the timed part of one run used: CPU of the replica server and of the
/// applier, the applier's peak memory and the replica's status counters
/// (deltas).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunStats {
    /// Wall seconds.
    pub seconds: f64,
    /// CPU seconds (user + system) of the replica's `mariadbd`.
    pub replica_cpu_seconds: f64,
    /// CPU seconds of the applier: this process's threads (parapply's in a
    /// `parapply-…` run) plus the child processes it waited for
    /// (`mariadb-binlog` and `mariadb`); next to nothing in a native run.
    pub applier_cpu_seconds: f64,
    /// Peak resident set of this process during the run (`VmHWM`, reset
    /// before the run): parapply's memory in a `parapply-…` run; `None`
    /// where the kernel does not allow the reset.
    pub peak_rss_bytes: Option<u64>,
    /// Increase of the replica's [`COUNTERS`] during the run.
    pub counters: BTreeMap<String, u64>,
}

/// The replica's `SHOW GLOBAL STATUS` counters recorded per run: client
/// statements, commits and how the binlog group commit merged them, InnoDB
/// fsyncs (on 10.11 `Innodb_os_log_fsyncs` stays 0: the redo log's count here),
/// row lock waits, and the conflicts optimistic replication retried.
pub const COUNTERS: [&str; 7] = [
    "Questions",
    "Binlog_commits",
    "Binlog_group_commits",
    "Innodb_data_fsyncs",
    "Handler_rollback",
    "Innodb_row_lock_waits",
    "Slave_retried_transactions",
];

/// The primary's binlog end after generation.
pub(super) struct PrimaryAt {
    pub file: String,
    pub position: u64,
    pub gtid: String,
}

/// Runs `config` once on the fresh `replica`.
pub(super) fn run_one(
    primary: &Server,
    at: &PrimaryAt,
    replica: &Server,
    config: BenchConfig,
    run: u32,
) -> Result<RunStats> {
    match config {
        BenchConfig::Native { .. } => run_native(primary, at, replica, config, run),
        BenchConfig::BinlogPipe => run_binlog_pipe(primary, replica, config, run),
        BenchConfig::Parapply { workers, batch, .. } => {
            run_parapply(primary, replica, workers, batch, config, run)
        }
    }
}

/// Native replication: fetch everything with the IO thread, then time the
/// SQL thread(s) alone.
fn run_native(
    primary: &Server,
    at: &PrimaryAt,
    replica: &Server,
    config: BenchConfig,
    run: u32,
) -> Result<RunStats> {
    let port = replica.port();
    let fail = |detail: String| BenchError::Replication {
        config,
        run,
        detail,
    };
    let mut conn = replica.conn()?;
    let setup = format!(
        "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root', \
         MASTER_PASSWORD = '', MASTER_CONNECT_RETRY = 1, MASTER_USE_GTID = slave_pos",
        primary.port()
    );
    conn.query_drop(&setup).map_err(sql_error(port, setup))?;
    conn.query_drop("START SLAVE IO_THREAD")
        .map_err(sql_error(port, "START SLAVE IO_THREAD"))?;
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        let status = slave_status(&mut conn, port)?
            .ok_or_else(|| fail("CHANGE MASTER did not make it a replica".into()))?;
        if column(&status, "Master_Log_File") == at.file
            && column(&status, "Read_Master_Log_Pos").parse::<u64>().ok() == Some(at.position)
        {
            break;
        }
        if column(&status, "Slave_IO_Running") == "No" || Instant::now() >= deadline {
            return Err(fail(format!(
                "the IO thread did not fetch up to {}:{}: {}",
                at.file,
                at.position,
                describe_slave_status(&status)
            )));
        }
        std::thread::sleep(POLL);
    }
    let wait_sql = format!("SELECT MASTER_GTID_WAIT('{}', 1)", at.gtid);
    let before = Probe::take(replica)?;
    let started = Instant::now();
    conn.query_drop("START SLAVE SQL_THREAD")
        .map_err(sql_error(port, "START SLAVE SQL_THREAD"))?;
    loop {
        let reached: Option<i64> = conn
            .query_first(&wait_sql)
            .map_err(sql_error(port, wait_sql.clone()))?;
        if reached == Some(0) {
            break;
        }
        let status = slave_status(&mut conn, port)?
            .ok_or_else(|| fail("it is no longer a replica".into()))?;
        if column(&status, "Slave_SQL_Running") == "No" || started.elapsed() >= RUN_TIMEOUT {
            return Err(fail(format!(
                "the SQL thread did not reach {}: {}",
                at.gtid,
                describe_slave_status(&status)
            )));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    before.finish(replica, seconds)
}

/// `SHOW SLAVE STATUS`; `None` if the server is not a replica.
fn slave_status(conn: &mut Conn, port: u16) -> Result<Option<Row>> {
    let sql = "SHOW SLAVE STATUS";
    conn.query_first(sql).map_err(sql_error(port, sql))
}

/// `mariadb-binlog FILES | mariadb`, timed from start to both exits.
fn run_binlog_pipe(
    primary: &Server,
    replica: &Server,
    config: BenchConfig,
    run: u32,
) -> Result<RunStats> {
    let fail = |detail: String| BenchError::Replication {
        config,
        run,
        detail,
    };
    let files = primary.binlog_files()?;
    let before = Probe::take(replica)?;
    let started = Instant::now();
    let mut dump = Command::new("mariadb-binlog")
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "starting mariadb-binlog (apt-get install mariadb-client): {e}"
            ))
        })?;
    let pipe = dump
        .stdout
        .take()
        .ok_or_else(|| fail("mariadb-binlog has no standard output".into()))?;
    let client = Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", replica.socket().display()))
        .arg("--user=root")
        .stdin(pipe)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "starting mariadb (apt-get install mariadb-client): {e}"
            ))
        })?;
    let client_out = client
        .wait_with_output()
        .map_err(|e| fail(format!("waiting for mariadb: {e}")))?;
    let dump_out = dump
        .wait_with_output()
        .map_err(|e| fail(format!("waiting for mariadb-binlog: {e}")))?;
    let seconds = started.elapsed().as_secs_f64();
    for (name, out) in [("mariadb-binlog", &dump_out), ("mariadb", &client_out)] {
        if !out.status.success() {
            return Err(fail(format!(
                "{name} exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    before.finish(replica, seconds)
}

/// parapply: `engine::run` from the primary's binlog directory into the
/// replica, timed from the call to its return.
fn run_parapply(
    primary: &Server,
    replica: &Server,
    workers: u16,
    batch: Option<u16>,
    config: BenchConfig,
    run: u32,
) -> Result<RunStats> {
    let fail = |error: ApplyError| BenchError::Apply {
        config,
        run,
        error: Box::new(error),
    };
    let source = Source::dir(primary.binlog_dir()).map_err(|e| fail(ApplyError::from(e)))?;
    let mut target = ConnectOptions::new("127.0.0.1", replica.port(), "root");
    target.socket = Some(replica.socket().to_path_buf());
    // `parapply apply`'s defaults but for the worker count and, where the
    // configuration names it, the batch size.
    let mut opts = ApplyOptions::new(source, target);
    opts.workers = usize::from(workers);
    if let Some(b) = batch {
        opts.batch_groups = usize::from(b);
    }
    if let BenchConfig::Parapply { keys: true, .. } = config {
        opts.shard_map = ShardMap::new(ShardBy::Key(DEFAULT_KEY_BUCKETS));
    }
    let before = Probe::take(replica)?;
    let started = Instant::now();
    engine::run(opts).map_err(|f| fail(f.error))?;
    let seconds = started.elapsed().as_secs_f64();
    before.finish(replica, seconds)
}

/// CPU times and counters at the start of a timed part.
struct Probe {
    replica_cpu: f64,
    own_cpu: f64,
    rss_reset: bool,
    counters: BTreeMap<String, u64>,
}

impl Probe {
    fn take(replica: &Server) -> Result<Probe> {
        Ok(Probe {
            counters: status_counters(replica)?,
            replica_cpu: replica
                .pid()
                .map_or(0.0, |p| cpu_seconds(&p.to_string(), false)),
            own_cpu: cpu_seconds("self", true),
            // "5" resets the peak resident set (VmHWM) to the current one.
            rss_reset: std::fs::write("/proc/self/clear_refs", "5").is_ok(),
        })
    }

    fn finish(self, replica: &Server, seconds: f64) -> Result<RunStats> {
        let own_cpu = cpu_seconds("self", true) - self.own_cpu;
        let replica_cpu = replica
            .pid()
            .map_or(0.0, |p| cpu_seconds(&p.to_string(), false))
            - self.replica_cpu;
        let after = status_counters(replica)?;
        Ok(RunStats {
            seconds,
            replica_cpu_seconds: replica_cpu,
            applier_cpu_seconds: own_cpu,
            peak_rss_bytes: if self.rss_reset { peak_rss() } else { None },
            counters: after
                .into_iter()
                .map(|(k, v)| {
                    let d = v.saturating_sub(self.counters.get(&k).copied().unwrap_or(0));
                    (k, d)
                })
                .collect(),
        })
    }
}

/// The replica's [`COUNTERS`].
fn status_counters(replica: &Server) -> Result<BTreeMap<String, u64>> {
    let sql = format!(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ({})",
        COUNTERS.map(|c| format!("'{c}'")).join(", ")
    );
    let rows: Vec<(String, String)> = replica
        .conn()?
        .query(&sql)
        .map_err(sql_error(replica.port(), sql))?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect())
}

/// User + system CPU seconds of `/proc/<pid>` (`self` for this process,
/// all threads; with `children`, plus the children it waited for); 0 where
/// unreadable.
pub(super) fn cpu_seconds(pid: &str, children: bool) -> f64 {
    /// Linux reports these times in USER_HZ, 100 per second.
    const TICKS_PER_SECOND: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces) in
    // parentheses: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let own = ticks(11) + ticks(12);
    let waited = if children { ticks(13) + ticks(14) } else { 0.0 };
    (own + waited) / TICKS_PER_SECOND
}

/// `VmHWM` of this process in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
