//! `parapply bench`: end-to-end apply throughput, parapply against MariaDB's
//! own replication, on one machine, in one command anyone can rerun.
//!
//! # Workload
//!
//! A throwaway primary (binary log on, `ROW` format, fast non-durable
//! settings: generating is not what is measured) gets `databases` databases
//! with one table each (`dbN.t`), then `transactions` small row transactions
//! from several client connections at once, so that the binary log
//! interleaves the databases as a busy primary's does. Transaction *j* goes to
//! database `j mod databases`; in each database they alternate between
//! inserting two new rows and updating those two rows. Each is one autocommit
//! statement: one transaction, one GTID.
//!
//! # Replicas
//!
//! Every run of every configuration gets a **fresh** replica with the
//! settings of a production replica: [`ServerOptions::durable`]
//! (`sync_binlog=1`, `innodb_flush_log_at_trx_commit=1`, doublewrite), its
//! own binary log and `log_slave_updates`. Only `slave_parallel_threads` and
//! `slave_parallel_mode` differ between configurations, and they matter to
//! the native ones only.
//!
//! # What is timed
//!
//! * `native-…`: the replica's SQL thread(s) alone. The IO thread first
//!   copies the whole binlog into the relay log while the SQL thread is
//!   stopped (until `Read_Master_Log_Pos` reaches the primary's position);
//!   the clock then runs from `START SLAVE SQL_THREAD` until
//!   `MASTER_GTID_WAIT(<primary's gtid_binlog_pos>)` returns.
//! * `parapply-…`: [`engine::run`] from the call until it returns, reading
//!   the primary's binlog directory (local files, like the relay log of the
//!   native runs) and applying it to the replica through its Unix socket
//!   (the sidecar runs on the replica's host; TCP on loopback costs the
//!   replica measurably more CPU per transaction). Options are the defaults
//!   of `parapply apply` except the worker count and, where named, `--batch`.
//!
//! After every run the replica's table checksums must equal the primary's; a
//! run that differs is an error, not a number. Runs are interleaved (run 1
//! of every configuration, then run 2, …) so that a change of machine load
//! spreads over all configurations; each configuration's median is reported
//! with transactions per second and the ratio to the best native
//! configuration (its median time divided by this one's: above 1 is faster).
//!
//! # Configurations
//!
//! `native-single` (one SQL thread), `native-optimistic-N`,
//! `native-conservative-N`, `native-aggressive-N` (N parallel replication
//! threads in that mode), `parapply-N` (N workers, default batching) and
//! `parapply-N-batch-K` (`--batch K`). See [`BenchConfig`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, Row};

use crate::apply::engine::{self, ApplyOptions};
use crate::apply::ApplyError;
use crate::binlog::Source;
use crate::sandbox::{
    column, describe_slave_status, SandboxError, Server, ServerOptions, SlaveParallelMode,
};
use crate::schedule::{ShardBy, ShardMap, DEFAULT_KEY_BUCKETS};
use crate::wire::ConnectOptions;

/// How long one replica may take to fetch or to apply the workload.
const RUN_TIMEOUT: Duration = Duration::from_secs(1800);
/// The pause between two status polls.
const POLL: Duration = Duration::from_millis(10);

/// Which applier replays the primary's binlog, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchConfig {
    /// The replica's own replication; `threads == 0` is the single SQL thread.
    Native {
        /// `slave_parallel_threads`.
        threads: u32,
        /// `slave_parallel_mode` (ignored with 0 threads).
        mode: SlaveParallelMode,
    },
    /// `parapply apply` into the replica.
    Parapply {
        /// `--workers`.
        workers: u16,
        /// `--batch`; `None` is the command's default.
        batch: Option<u16>,
        /// `--shard-by key` (the default bucket count).
        keys: bool,
    },
}

impl BenchConfig {
    /// Whether this is MariaDB's own replication.
    pub fn is_native(&self) -> bool {
        matches!(self, BenchConfig::Native { .. })
    }
}

fn mode_name(mode: SlaveParallelMode) -> &'static str {
    match mode {
        SlaveParallelMode::None => "none",
        SlaveParallelMode::Minimal => "minimal",
        SlaveParallelMode::Conservative => "conservative",
        SlaveParallelMode::Optimistic => "optimistic",
        SlaveParallelMode::Aggressive => "aggressive",
    }
}

impl fmt::Display for BenchConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BenchConfig::Native { threads: 0, .. } => write!(f, "native-single"),
            BenchConfig::Native { threads, mode } => {
                write!(f, "native-{}-{threads}", mode_name(mode))
            }
            BenchConfig::Parapply {
                workers,
                batch,
                keys,
            } => {
                write!(f, "parapply-{workers}")?;
                if let Some(b) = batch {
                    write!(f, "-batch-{b}")?;
                }
                if keys {
                    write!(f, "-key")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for BenchConfig {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not a configuration: use native-single, native-optimistic-N, \
                 native-conservative-N, native-aggressive-N, parapply-N or parapply-N-batch-K \
                 (either with -key: --shard-by key)"
            )
        };
        if let Some(base) = s.trim().strip_suffix("-key") {
            return match base.parse()? {
                BenchConfig::Parapply {
                    workers,
                    batch,
                    keys: false,
                } => Ok(BenchConfig::Parapply {
                    workers,
                    batch,
                    keys: true,
                }),
                _ => Err(bad()),
            };
        }
        let positive = |n: &str| n.parse::<u16>().ok().filter(|&n| n > 0);
        let parts: Vec<&str> = s.trim().split('-').collect();
        match parts.as_slice() {
            ["native", "single"] => Ok(BenchConfig::Native {
                threads: 0,
                mode: SlaveParallelMode::Optimistic,
            }),
            ["native", mode, n] => {
                let mode = match *mode {
                    "optimistic" => SlaveParallelMode::Optimistic,
                    "conservative" => SlaveParallelMode::Conservative,
                    "aggressive" => SlaveParallelMode::Aggressive,
                    _ => return Err(bad()),
                };
                let threads = positive(n).ok_or_else(bad)?;
                Ok(BenchConfig::Native {
                    threads: u32::from(threads),
                    mode,
                })
            }
            ["parapply", n] => Ok(BenchConfig::Parapply {
                workers: positive(n).ok_or_else(bad)?,
                batch: None,
                keys: false,
            }),
            ["parapply", n, "batch", k] => Ok(BenchConfig::Parapply {
                workers: positive(n).ok_or_else(bad)?,
                batch: Some(positive(k).ok_or_else(bad)?),
                keys: false,
            }),
            _ => Err(bad()),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Row transactions generated on the primary.
    pub transactions: u64,
    /// Databases they are spread over (one table each).
    pub databases: u32,
    /// Runs per configuration.
    pub runs: u32,
    /// Client connections generating the workload.
    pub clients: u16,
    /// The configurations, in the order they run within each round.
    pub configs: Vec<BenchConfig>,
    /// Generate with sysbench `oltp_write_only` on one database (`sbtest`)
    /// instead: `transactions` events from `clients` threads, after its
    /// `prepare` (see [`generate_sysbench`]).
    pub sysbench: bool,
}

impl BenchOptions {
    /// Default row transactions.
    pub const DEFAULT_TRANSACTIONS: u64 = 20_000;
    /// Default databases.
    pub const DEFAULT_DATABASES: u32 = 16;
    /// Default runs per configuration.
    pub const DEFAULT_RUNS: u32 = 3;
    /// Default client connections generating the workload.
    pub const DEFAULT_CLIENTS: u16 = 8;
    /// Default configurations: the native ones worth comparing with, and
    /// parapply with 16 workers with and without batching.
    pub const DEFAULT_CONFIGS: [BenchConfig; 6] = [
        BenchConfig::Native {
            threads: 0,
            mode: SlaveParallelMode::Optimistic,
        },
        BenchConfig::Native {
            threads: 16,
            mode: SlaveParallelMode::Conservative,
        },
        BenchConfig::Native {
            threads: 16,
            mode: SlaveParallelMode::Optimistic,
        },
        BenchConfig::Native {
            threads: 32,
            mode: SlaveParallelMode::Optimistic,
        },
        BenchConfig::Parapply {
            workers: 16,
            batch: None,
            keys: false,
        },
        BenchConfig::Parapply {
            workers: 16,
            batch: Some(1),
            keys: false,
        },
    ];

    /// The defaults (the `DEFAULT_*` constants; the command line reads
    /// them too).
    pub fn new() -> Self {
        BenchOptions {
            transactions: Self::DEFAULT_TRANSACTIONS,
            databases: Self::DEFAULT_DATABASES,
            runs: Self::DEFAULT_RUNS,
            clients: Self::DEFAULT_CLIENTS,
            configs: Self::DEFAULT_CONFIGS.to_vec(),
            sysbench: false,
        }
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything that stops a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A throwaway server failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A statement failed.
    #[error("server on port {port}: {what}: {error}")]
    Sql {
        /// The server.
        port: u16,
        /// The statement or step.
        what: String,
        /// The client's error.
        error: mysql::Error,
    },
    /// Generating the workload went wrong.
    #[error("generating the workload: {0}")]
    Generate(String),
    /// Native replication stopped or stalled.
    #[error("{config}, run {run}: {detail}")]
    Replication {
        /// The configuration.
        config: BenchConfig,
        /// The run (from 1).
        run: u32,
        /// What happened (with the replica's status).
        detail: String,
    },
    /// parapply failed.
    #[error("{config}, run {run}: {error}")]
    Apply {
        /// The configuration.
        config: BenchConfig,
        /// The run (from 1).
        run: u32,
        /// The engine's error.
        error: Box<ApplyError>,
    },
    /// The replica does not hold the primary's rows after the run.
    #[error("{config}, run {run}: the replica's data differs from the primary's: {detail}")]
    Mismatch {
        /// The configuration.
        config: BenchConfig,
        /// The run (from 1).
        run: u32,
        /// The tables that differ.
        detail: String,
    },
}

type Result<T, E = BenchError> = std::result::Result<T, E>;

fn sql_error(port: u16, what: impl Into<String>) -> impl FnOnce(mysql::Error) -> BenchError {
    let what = what.into();
    move |error| BenchError::Sql { port, what, error }
}

/// One configuration's measurements.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigResult {
    /// Its name (`native-optimistic-16`, `parapply-16-batch-1`, …).
    pub config: String,
    /// Whether it is MariaDB's own replication.
    pub native: bool,
    /// Seconds of each run, in run order.
    pub seconds: Vec<f64>,
    /// The median of `seconds`.
    pub median_seconds: f64,
    /// Workload transactions per second at the median.
    pub transactions_per_second: f64,
    /// Best native median divided by this median (above 1: faster than the
    /// best native configuration); `None` without a native configuration.
    pub vs_best_native: Option<f64>,
    /// Resource use of each run's timed part, in run order.
    pub runs: Vec<RunStats>,
}

/// What the timed part of one run used: CPU of the replica server and of the
/// applier, and the replica's status counters (deltas).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunStats {
    /// Wall seconds.
    pub seconds: f64,
    /// CPU seconds (user + system) of the replica's `mariadbd`.
    pub replica_cpu_seconds: f64,
    /// CPU seconds of this process: parapply's threads in a `parapply-…`
    /// run, next to nothing in a native one.
    pub applier_cpu_seconds: f64,
    /// Increase of the replica's [`COUNTERS`] during the run.
    pub counters: BTreeMap<String, u64>,
}

/// The replica's `SHOW GLOBAL STATUS` counters recorded per run: client
/// statements, commits and how the binlog group commit merged them, InnoDB
/// fsyncs (on 10.11 `Innodb_os_log_fsyncs` stays 0: the redo log's count here),
/// and the conflicts optimistic replication retried.
pub const COUNTERS: [&str; 7] = [
    "Questions",
    "Binlog_commits",
    "Binlog_group_commits",
    "Innodb_data_fsyncs",
    "Handler_rollback",
    "Innodb_row_lock_waits",
    "Slave_retried_transactions",
];

/// A whole benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// Row transactions in the workload.
    pub transactions: u64,
    /// Databases.
    pub databases: u32,
    /// Runs per configuration.
    pub runs: u32,
    /// GTIDs in the primary's binlog (workload plus the DDL creating it).
    pub binlog_groups: u64,
    /// Bytes of the primary's binlog.
    pub binlog_bytes: u64,
    /// Seconds the generation took (not part of any measurement).
    pub generate_seconds: f64,
    /// CPUs the machine offers.
    pub cpus: usize,
    /// `/proc/loadavg` before the first run.
    pub load_before: String,
    /// `/proc/loadavg` after the last run.
    pub load_after: String,
    /// The best native configuration, if any ran.
    pub best_native: Option<String>,
    /// Per configuration, in the order given.
    pub results: Vec<ConfigResult>,
}

/// Runs the benchmark described by `opts`; see the [module doc](self).
pub fn run(opts: &BenchOptions) -> Result<BenchReport> {
    let load_before = loadavg();
    eprintln!(
        "bench: {} transactions over {} databases; {} run(s) of {}; load {load_before}",
        opts.transactions,
        opts.databases,
        opts.runs,
        opts.configs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let primary = Server::start(
        ServerOptions::new()
            .server_id(1)
            .log_bin("primary-bin")
            .innodb_buffer_pool_size(128 << 20),
    )?;
    let started = Instant::now();
    let dbs = if opts.sysbench {
        generate_sysbench(&primary, opts)?;
        vec![SYSBENCH_DB.to_owned()]
    } else {
        generate(&primary, opts)?;
        database_names(opts.databases)
    };
    let generate_seconds = started.elapsed().as_secs_f64();
    let db_refs: Vec<&str> = dbs.iter().map(String::as_str).collect();
    let expected = primary.checksums(&db_refs)?;
    let (file, position) = master_position(&primary)?;
    let gtid = primary.gtid_binlog_pos()?;
    let binlog_groups = gtid
        .rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let binlog_bytes = primary
        .binlog_files()?
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "bench: generated in {generate_seconds:.1} s: {binlog_groups} GTIDs, {binlog_bytes} \
         bytes of binlog, ends at {file}:{position} ({gtid})"
    );
    let primary_at = PrimaryAt {
        file,
        position,
        gtid,
    };

    let mut stats: Vec<Vec<RunStats>> = vec![Vec::new(); opts.configs.len()];
    let mut server_id = 100;
    for run in 1..=opts.runs {
        for (i, &config) in opts.configs.iter().enumerate() {
            server_id += 1;
            eprintln!("bench: run {run}/{} {config} …", opts.runs);
            let replica = Server::start(replica_options(config, server_id))?;
            let st = match config {
                BenchConfig::Native { .. } => {
                    run_native(&primary, &primary_at, &replica, config, run)?
                }
                BenchConfig::Parapply { workers, batch, .. } => {
                    run_parapply(&primary, &replica, workers, batch, config, run)?
                }
            };
            let got = replica.checksums(&db_refs)?;
            if got != expected {
                return Err(BenchError::Mismatch {
                    config,
                    run,
                    detail: checksum_diff(&expected, &got),
                });
            }
            eprintln!(
                "bench: run {run}/{} {config}: {:.2} s, {:.0} transactions/s, checksums equal; \
                 CPU s: replica {:.2}, applier {:.2}; {}",
                opts.runs,
                st.seconds,
                opts.transactions as f64 / st.seconds,
                st.replica_cpu_seconds,
                st.applier_cpu_seconds,
                st.counters
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            stats[i].push(st);
        }
    }
    let results = summarize(
        opts.transactions,
        opts.configs.iter().copied().zip(stats).collect(),
    );
    let best_native = best_native(&results).map(|r| r.config.clone());
    Ok(BenchReport {
        transactions: opts.transactions,
        databases: opts.databases,
        runs: opts.runs,
        binlog_groups,
        binlog_bytes,
        generate_seconds,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_before,
        load_after: loadavg(),
        best_native,
        results,
    })
}

/// The primary's binlog end after generation.
struct PrimaryAt {
    file: String,
    position: u64,
    gtid: String,
}

fn database_names(n: u32) -> Vec<String> {
    (0..n).map(|d| format!("db{d}")).collect()
}

fn replica_options(config: BenchConfig, server_id: u32) -> ServerOptions {
    let base = ServerOptions::new()
        .server_id(server_id)
        .durable()
        .log_bin("replica-bin")
        .log_slave_updates(true)
        .skip_slave_start(true)
        .innodb_buffer_pool_size(128 << 20);
    match config {
        BenchConfig::Native { threads, mode } => base
            .slave_parallel_threads(threads)
            .slave_parallel_mode(mode),
        BenchConfig::Parapply { .. } => base,
    }
}

/// Creates the databases and runs the transactions on `clients` connections.
fn generate(primary: &Server, opts: &BenchOptions) -> Result<()> {
    let port = primary.port();
    let mut ddl = String::new();
    for db in database_names(opts.databases) {
        ddl.push_str(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, k INT NOT NULL, \
             v VARCHAR(64) NOT NULL) ENGINE=InnoDB;"
        ));
    }
    primary.exec(&ddl)?;
    let databases = u64::from(opts.databases);
    let clients = u64::from(opts.clients).clamp(1, databases);
    let conns = (0..clients)
        .map(|_| primary.conn())
        .collect::<Result<Vec<Conn>, _>>()?;
    std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(client, mut conn)| {
                let client = client as u64;
                scope.spawn(move || -> Result<()> {
                    // Transaction j goes to database j mod databases; this
                    // client serves the databases d with d mod clients == client.
                    let mut done_in_db = vec![0u64; opts.databases as usize];
                    for j in 0..opts.transactions {
                        let d = j % databases;
                        if d % clients != client {
                            continue;
                        }
                        let n = &mut done_in_db[d as usize];
                        let sql = workload_statement(d, *n);
                        *n += 1;
                        conn.query_drop(&sql).map_err(sql_error(port, sql))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| BenchError::Generate("a client thread panicked".into()))??;
        }
        Ok(())
    })
}

/// The database sysbench writes.
const SYSBENCH_DB: &str = "sbtest";
/// Rows of sysbench's table (`--table-size`).
const SYSBENCH_ROWS: u64 = 10_000;

/// sysbench `oltp_write_only` on one database of the primary: `prepare`
/// (one table of [`SYSBENCH_ROWS`] rows, loaded in bulk), then
/// `opts.transactions` events from `opts.clients` threads. Each event is
/// one transaction: an update of an indexed column, one of a non-indexed
/// column, a delete and a re-insert of one row, all by primary key (with
/// `--databases 1` this is the one-database workload of docs/benchmarks.md).
/// sysbench is installed with apt-get when missing (as root, or with
/// `sudo -n`).
fn generate_sysbench(primary: &Server, opts: &BenchOptions) -> Result<()> {
    ensure_sysbench()?;
    primary.exec(&format!("CREATE DATABASE {SYSBENCH_DB}"))?;
    let port = primary.port().to_string();
    let run = |command: &str, extra: &[String]| -> Result<()> {
        let out = std::process::Command::new("sysbench")
            .arg("oltp_write_only")
            .args([
                "--db-driver=mysql",
                "--mysql-host=127.0.0.1",
                &format!("--mysql-port={port}"),
                "--mysql-user=root",
                &format!("--mysql-db={SYSBENCH_DB}"),
                "--tables=1",
                &format!("--table-size={SYSBENCH_ROWS}"),
            ])
            .args(extra)
            .arg(command)
            .output()
            .map_err(|e| BenchError::Generate(format!("sysbench {command}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(BenchError::Generate(format!(
                "sysbench {command} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    };
    run("prepare", &[])?;
    run(
        "run",
        &[
            format!("--threads={}", opts.clients.max(1)),
            format!("--events={}", opts.transactions),
            "--time=0".into(),
            "--rand-type=uniform".into(),
        ],
    )
}

/// sysbench on the PATH, installed with apt-get if missing.
fn ensure_sysbench() -> Result<()> {
    let present = || {
        std::process::Command::new("sysbench")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if present() {
        return Ok(());
    }
    eprintln!("bench: sysbench missing: installing Debian's sysbench with apt-get");
    let root = std::env::var("USER").is_ok_and(|u| u == "root")
        || std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut cmd = if root {
        std::process::Command::new("apt-get")
    } else {
        let mut c = std::process::Command::new("sudo");
        c.args(["-n", "apt-get"]);
        c
    };
    let installed = cmd
        .args(["install", "-y", "-q", "sysbench"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if installed && present() {
        Ok(())
    } else {
        Err(BenchError::Generate(
            "sysbench is missing and could not be installed: apt-get install sysbench".into(),
        ))
    }
}

/// The `n`-th transaction of database `d`: even ones insert two rows, odd
/// ones update the two rows the previous one inserted.
fn workload_statement(d: u64, n: u64) -> String {
    let pair = n / 2;
    let (a, b) = (2 * pair + 1, 2 * pair + 2);
    if n.is_multiple_of(2) {
        format!("INSERT INTO db{d}.t (id, k, v) VALUES ({a}, {n}, 'row {a} of db{d}'), ({b}, {n}, 'row {b} of db{d}')")
    } else {
        format!("UPDATE db{d}.t SET k = k + 1, v = CONCAT(v, ' updated') WHERE id IN ({a}, {b})")
    }
}

/// `SHOW MASTER STATUS`: file and position of the binlog's end.
fn master_position(primary: &Server) -> Result<(String, u64)> {
    let sql = "SHOW MASTER STATUS";
    let row: Option<Row> = primary
        .conn()?
        .query_first(sql)
        .map_err(sql_error(primary.port(), sql))?;
    let row = row.ok_or_else(|| BenchError::Generate("the primary has no binary log".into()))?;
    let file = column(&row, "File");
    let position = column(&row, "Position").parse().unwrap_or(0);
    Ok((file, position))
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
    counters: BTreeMap<String, u64>,
}

impl Probe {
    fn take(replica: &Server) -> Result<Probe> {
        Ok(Probe {
            counters: status_counters(replica)?,
            replica_cpu: replica.pid().map_or(0.0, |p| cpu_seconds(&p.to_string())),
            own_cpu: cpu_seconds("self"),
        })
    }

    fn finish(self, replica: &Server, seconds: f64) -> Result<RunStats> {
        let own_cpu = cpu_seconds("self") - self.own_cpu;
        let replica_cpu =
            replica.pid().map_or(0.0, |p| cpu_seconds(&p.to_string())) - self.replica_cpu;
        let after = status_counters(replica)?;
        Ok(RunStats {
            seconds,
            replica_cpu_seconds: replica_cpu,
            applier_cpu_seconds: own_cpu,
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
/// all threads); 0 where unreadable.
fn cpu_seconds(pid: &str) -> f64 {
    /// Linux reports these times in USER_HZ, 100 per second.
    const TICKS_PER_SECOND: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces) in
    // parentheses: state is field 3, utime 14, stime 15.
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
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}

fn checksum_diff(expected: &BTreeMap<String, u64>, got: &BTreeMap<String, u64>) -> String {
    let mut diffs: Vec<String> = expected
        .keys()
        .chain(got.keys())
        .filter(|t| expected.get(*t) != got.get(*t))
        .map(|t| {
            let show = |m: &BTreeMap<String, u64>| {
                m.get(t)
                    .map_or_else(|| "missing".to_owned(), |c| c.to_string())
            };
            format!("{t}: primary {}, replica {}", show(expected), show(got))
        })
        .collect();
    diffs.dedup();
    diffs.join("; ")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The median (mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if !n.is_multiple_of(2) => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians, rates and ratios to the best (fastest) native configuration.
pub fn summarize(transactions: u64, runs: Vec<(BenchConfig, Vec<RunStats>)>) -> Vec<ConfigResult> {
    let mut results: Vec<ConfigResult> = runs
        .into_iter()
        .map(|(config, runs)| {
            let seconds: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
            let m = median(&seconds);
            ConfigResult {
                config: config.to_string(),
                native: config.is_native(),
                median_seconds: m,
                transactions_per_second: if m > 0.0 {
                    transactions as f64 / m
                } else {
                    0.0
                },
                seconds,
                vs_best_native: None,
                runs,
            }
        })
        .collect();
    if let Some(best) = best_native(&results).map(|r| r.median_seconds) {
        for r in &mut results {
            if r.median_seconds > 0.0 {
                r.vs_best_native = Some(best / r.median_seconds);
            }
        }
    }
    results
}

fn best_native(results: &[ConfigResult]) -> Option<&ConfigResult> {
    results
        .iter()
        .filter(|r| r.native && r.median_seconds > 0.0)
        .min_by(|a, b| a.median_seconds.total_cmp(&b.median_seconds))
}

/// The report as a text table (Markdown, so that it can go into the docs
/// as it is), with a header naming the workload and the load.
pub fn render_table(report: &BenchReport) -> String {
    let mut out = format!(
        "{} transactions over {} databases ({} GTIDs, {} bytes of binlog); median of {} run(s); \
         {} CPUs; load before {}, after {}\n\n",
        report.transactions,
        report.databases,
        report.binlog_groups,
        report.binlog_bytes,
        report.runs,
        report.cpus,
        report.load_before,
        report.load_after,
    );
    let best = report.best_native.as_deref().unwrap_or("-");
    out.push_str(&format!(
        "| configuration | median s | transactions/s | vs best native ({best}) | runs (s) |\n"
    ));
    out.push_str("|---|---:|---:|---:|---|\n");
    for r in &report.results {
        let ratio = r
            .vs_best_native
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}×"));
        let runs = r
            .seconds
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| {} | {:.2} | {:.0} | {ratio} | {runs} |\n",
            r.config, r.median_seconds, r.transactions_per_second
        ));
    }
    out.push_str(
        "\nWhere the time goes (timed part of each run, median over runs; counters of the \
         replica's SHOW GLOBAL STATUS):\n\n\
         | configuration | replica CPU s | applier CPU s | statements/transaction | binlog commits \
         | group commits | commits per group commit | InnoDB fsyncs | retries + rollbacks |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &report.results {
        let m = |f: &dyn Fn(&RunStats) -> f64| median(&r.runs.iter().map(f).collect::<Vec<_>>());
        let c = |name: &'static str| move |s: &RunStats| counter(s, name);
        let commits = m(&c("Binlog_commits"));
        let groups = m(&c("Binlog_group_commits"));
        out.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {commits:.0} | {groups:.0} | {:.1} | {:.0} | {:.0} |\n",
            r.config,
            m(&|s| s.replica_cpu_seconds),
            m(&|s| s.applier_cpu_seconds),
            m(&c("Questions")) / report.transactions.max(1) as f64,
            if groups > 0.0 { commits / groups } else { 0.0 },
            m(&c("Innodb_data_fsyncs")),
            m(&|s| counter(s, "Slave_retried_transactions") + counter(s, "Handler_rollback")),
        ));
    }
    out
}

fn counter(s: &RunStats, name: &str) -> f64 {
    s.counters.get(name).copied().unwrap_or(0) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_parse_and_print_back() {
        let defaults = BenchOptions::DEFAULT_CONFIGS.map(|c| c.to_string());
        assert_eq!(
            defaults.join(","),
            "native-single,native-conservative-16,native-optimistic-16,native-optimistic-32,\
             parapply-16,parapply-16-batch-1"
        );
        for name in defaults.iter().map(String::as_str).chain([
            "native-aggressive-8",
            "parapply-16-key",
            "parapply-8-batch-1-key",
        ]) {
            let c: BenchConfig = name.parse().unwrap();
            assert_eq!(c.to_string(), name);
        }
        assert_eq!(
            "parapply-16-batch-1".parse::<BenchConfig>(),
            Ok(BenchConfig::Parapply {
                workers: 16,
                batch: Some(1),
                keys: false,
            })
        );
        for bad in [
            "native",
            "native-optimistic",
            "native-optimistic-0",
            "native-fast-4",
            "parapply",
            "parapply-x",
            "parapply-4-batch",
            "parapply-4-batch-0",
            "native-single-key",
            "parapply-4-key-key",
        ] {
            assert!(bad.parse::<BenchConfig>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn ratios_are_against_the_fastest_native_configuration() {
        let c = |s: &str| s.parse::<BenchConfig>().unwrap();
        let runs = |secs: [f64; 3]| -> Vec<RunStats> {
            secs.iter()
                .map(|&seconds| RunStats {
                    seconds,
                    replica_cpu_seconds: seconds / 2.0,
                    applier_cpu_seconds: 0.5,
                    counters: [
                        ("Questions".to_owned(), 40_000),
                        ("Binlog_commits".to_owned(), 20_000),
                        ("Binlog_group_commits".to_owned(), 5_000),
                    ]
                    .into(),
                })
                .collect()
        };
        let results = summarize(
            20_000,
            vec![
                (c("native-single"), runs([8.0, 7.0, 7.5])),
                (c("native-optimistic-32"), runs([2.5, 2.6, 2.4])),
                (c("parapply-16"), runs([1.0, 1.25, 1.5])),
            ],
        );
        assert_eq!(results[1].median_seconds, 2.5);
        assert_eq!(results[1].vs_best_native, Some(1.0));
        assert_eq!(results[2].median_seconds, 1.25);
        assert_eq!(results[2].vs_best_native, Some(2.0));
        assert_eq!(results[2].transactions_per_second, 16_000.0);
        assert_eq!(results[0].vs_best_native, Some(2.5 / 7.5));

        let report = BenchReport {
            transactions: 20_000,
            databases: 16,
            runs: 3,
            binlog_groups: 20_032,
            binlog_bytes: 1,
            generate_seconds: 1.0,
            cpus: 2,
            load_before: "0.1 0.2 0.3".into(),
            load_after: "0.4 0.5 0.6".into(),
            best_native: best_native(&results).map(|r| r.config.clone()),
            results,
        };
        let table = render_table(&report);
        assert!(table.contains("| vs best native (native-optimistic-32) |"));
        assert!(table.contains("| parapply-16 | 1.25 | 16000 | 2.00× | 1.00, 1.25, 1.50 |"));
        assert!(table.contains("| native-single | 7.50 | 2667 | 0.33× | 8.00, 7.00, 7.50 |"));
        assert!(table.contains("| parapply-16 | 0.62 | 0.50 | 2.00 | 20000 | 5000 | 4.0 | 0 | 0 |"));
    }

    #[test]
    fn the_workload_alternates_inserts_and_updates_of_two_rows() {
        assert!(workload_statement(3, 0).starts_with("INSERT INTO db3.t"));
        assert!(
            workload_statement(3, 0).contains("(1, 0,")
                && workload_statement(3, 0).contains("(2, 0,")
        );
        assert!(workload_statement(3, 1).ends_with("WHERE id IN (1, 2)"));
        assert!(workload_statement(3, 2).contains("(3, 2,"));
    }
}
