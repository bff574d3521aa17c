//! Lag under steady load (issue 14, item 5): with the primary taking a
//! steady rate of workload (a)'s two-row transactions, the time from a
//! transaction's commit on the primary (its statement returned to the
//! client) to its row being visible on the replica.
//!
//! Each phase has a fresh primary and a fresh durable replica (the settings
//! of the throughput runs) and one applier, started before the load and
//! caught up with the schema:
//!
//! * `native-optimistic-16`: MariaDB's IO thread and 16 optimistic SQL
//!   threads (`START SLAVE`);
//! * `parapply`: `parapply mirror` writing the primary's binlog to a
//!   directory and `parapply apply --follow` (default workers and batching)
//!   tailing it into the replica through its Unix socket, both as child
//!   processes of the bench (the binary given in [`LagOptions::parapply`]).
//!
//! Eight client connections drive the load: transaction `j` is due at
//! `j / rate` seconds after the start (a client that falls behind sends
//! without pausing, so the offered rate is kept where the primary can). Every
//! probe-th insert of each client is a probe: the client hands its commit
//! instant and row to a poller, which queries the replica every millisecond
//! until the row is there and records the lag in an HDR histogram (µs).
//! After the load, every probe must arrive and the replica's checksums must
//! equal the primary's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};
use hdrhistogram::Histogram;
use mysql::prelude::Queryable;

use super::workload::two_row_statement;
use super::{sql_error, BenchConfig, BenchError, Result};
use crate::sandbox::{Server, SlaveParallelMode};

/// How long a probe or the final catch-up may take before the phase fails.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(300);
/// Client connections driving the load.
const CLIENTS: u64 = 8;
/// Databases of the load (workload (a)).
const DATABASES: u64 = 16;
/// Probes per second aimed at (over all clients).
const PROBES_PER_SECOND: f64 = 100.0;

/// What to measure.
#[derive(Debug, Clone)]
pub struct LagOptions {
    /// Fractions of the base rate to offer (e.g. 0.5 and 0.9).
    pub fractions: Vec<f64>,
    /// The base rate in transactions/s when workload (a) did not run in the
    /// same bench (otherwise its best native configuration's rate is used).
    pub base_rate: Option<f64>,
    /// Seconds of steady load per phase.
    pub seconds: f64,
    /// The `parapply` binary to run `mirror` and `apply --follow` with.
    pub parapply: PathBuf,
}

/// One applier at one rate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LagPhase {
    /// `native-optimistic-16` or `parapply`.
    pub applier: String,
    /// The rate offered, transactions/s.
    pub offered_rate: f64,
    /// The rate the primary took (transactions over the load's duration).
    pub achieved_rate: f64,
    /// Transactions committed on the primary.
    pub transactions: u64,
    /// Probes timed.
    pub probes: u64,
    /// Commit-to-visible lag, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Largest, milliseconds.
    pub max_ms: f64,
    /// CPU seconds of the replica's `mariadbd` during the phase.
    pub replica_cpu_seconds: f64,
}

/// The lag measurement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LagReport {
    /// The rate the fractions are of, transactions/s.
    pub base_rate: f64,
    /// Where it came from.
    pub base_from: String,
    /// Seconds of load per phase.
    pub seconds: f64,
    /// Phases in the order they ran (per rate: native, then parapply).
    pub phases: Vec<LagPhase>,
}

/// The appliers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applier {
    Native,
    Parapply,
}

impl Applier {
    fn name(self) -> &'static str {
        match self {
            Applier::Native => "native-optimistic-16",
            Applier::Parapply => "parapply mirror + apply --follow",
        }
    }
}

/// Runs every phase: for each fraction, native then parapply.
pub fn run(opts: &LagOptions, base_rate: f64, base_from: String) -> Result<LagReport> {
    let mut phases = Vec::new();
    for &fraction in &opts.fractions {
        for applier in [Applier::Native, Applier::Parapply] {
            let rate = (base_rate * fraction).max(1.0);
            eprintln!(
                "bench: lag, {} at {rate:.0} transactions/s ({:.0} % of {base_rate:.0}) for \
                 {:.0} s …",
                applier.name(),
                fraction * 100.0,
                opts.seconds
            );
            let phase = run_phase(opts, applier, rate)?;
            eprintln!(
                "bench: lag, {}: {} probes, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; primary took \
                 {:.0} transactions/s",
                phase.applier, phase.probes, phase.p50_ms, phase.p99_ms, phase.max_ms,
                phase.achieved_rate
            );
            phases.push(phase);
        }
    }
    Ok(LagReport {
        base_rate,
        base_from,
        seconds: opts.seconds,
        phases,
    })
}

/// A child process killed (SIGINT, then SIGKILL) when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_phase(opts: &LagOptions, applier: Applier, rate: f64) -> Result<LagPhase> {
    let primary = Server::start(super::primary_options())?;
    let config = match applier {
        Applier::Native => BenchConfig::Native {
            threads: 16,
            mode: SlaveParallelMode::Optimistic,
        },
        Applier::Parapply => BenchConfig::Parapply {
            workers: 16,
            batch: None,
            keys: false,
        },
    };
    let replica_opts = super::replica_options(config, 2);
    let replica = Server::start(replica_opts)?;
    let mut ddl = String::new();
    for d in 0..DATABASES {
        ddl.push_str(&format!(
            "CREATE DATABASE db{d}; CREATE TABLE db{d}.t (id INT PRIMARY KEY, k INT NOT NULL, \
             v VARCHAR(64) NOT NULL) ENGINE=InnoDB;"
        ));
    }
    primary.exec(&ddl)?;
    let mirror_dir = tempfile::tempdir()
        .map_err(|e| BenchError::Generate(format!("a directory for the mirror: {e}")))?;
    let _children = match applier {
        Applier::Native => {
            replica.replicate_from(&primary)?;
            Vec::new()
        }
        Applier::Parapply => start_parapply(opts, &primary, &replica, mirror_dir.path())?,
    };
    wait_for(&replica, &format!("db{}.t", DATABASES - 1))?;

    let replica_cpu = || {
        replica.pid().map_or(0.0, |p| {
            super::contender::cpu_seconds(&p.to_string(), false)
        })
    };
    let cpu_before = replica_cpu();
    let transactions = (rate * opts.seconds).round().max(1.0) as u64;
    let probe_every = ((rate / PROBES_PER_SECOND) as u64).max(1);
    let (probe_tx, probe_rx) = unbounded::<(Instant, u64, u64)>();
    let poller = {
        let mut conn = replica.conn()?;
        let port = replica.port();
        std::thread::spawn(move || poll_probes(&mut conn, port, probe_rx))
    };
    let started = Instant::now();
    let load = drive_load(&primary, rate, transactions, probe_every, probe_tx);
    let load_seconds = started.elapsed().as_secs_f64();
    let histogram = poller
        .join()
        .map_err(|_| BenchError::Generate("the lag poller panicked".into()))??;
    load?;
    wait_equal(&primary, &replica)?;
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(LagPhase {
        applier: applier.name().into(),
        offered_rate: rate,
        achieved_rate: transactions as f64 / load_seconds,
        transactions,
        probes: histogram.len(),
        p50_ms: ms(histogram.value_at_quantile(0.5)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        max_ms: ms(histogram.max()),
        replica_cpu_seconds: replica_cpu() - cpu_before,
    })
}

fn start_parapply(
    opts: &LagOptions,
    primary: &Server,
    replica: &Server,
    dir: &Path,
) -> Result<Vec<ChildGuard>> {
    let spawn = |args: Vec<String>| -> Result<ChildGuard> {
        Command::new(&opts.parapply)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(ChildGuard)
            .map_err(|e| {
                BenchError::Generate(format!(
                    "starting {} {}: {e}",
                    opts.parapply.display(),
                    args[0]
                ))
            })
    };
    let mirror = spawn(vec![
        "mirror".into(),
        "--server-id".into(),
        "77".into(),
        "--primary".into(),
        format!("mysql://root@127.0.0.1:{}/", primary.port()),
        "--dir".into(),
        dir.display().to_string(),
    ])?;
    // `apply` needs the mirror's index.
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    while !std::fs::read_dir(dir).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "index")))
    }) {
        if Instant::now() >= deadline {
            return Err(BenchError::Generate(
                "parapply mirror wrote no index".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let apply = spawn(vec![
        "apply".into(),
        "--follow".into(),
        "--source".into(),
        dir.display().to_string(),
        "--target".into(),
        format!(
            "mysql://root@127.0.0.1:{}/?socket={}",
            replica.port(),
            replica.socket().display()
        ),
    ])?;
    Ok(vec![apply, mirror])
}

/// Waits until `table` exists on the replica (the applier has the schema).
fn wait_for(replica: &Server, table: &str) -> Result<()> {
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    let sql = format!("SELECT COUNT(*) FROM {table}");
    while replica.query_first::<u64>(&sql).is_err() {
        if Instant::now() >= deadline {
            return Err(BenchError::Generate(format!(
                "the replica never got {table}: the applier did not start"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The steady load; every `probe_every`-th insert of each client is sent to
/// the poller.
fn drive_load(
    primary: &Server,
    rate: f64,
    transactions: u64,
    probe_every: u64,
    probes: crossbeam_channel::Sender<(Instant, u64, u64)>,
) -> Result<()> {
    let port = primary.port();
    let conns = (0..CLIENTS)
        .map(|_| primary.conn())
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(client, mut conn)| {
                let probes = probes.clone();
                scope.spawn(move || -> Result<()> {
                    let client = client as u64;
                    let mut done_in_db = [0u64; DATABASES as usize];
                    let mut inserts = 0u64;
                    for j in 0..transactions {
                        let d = j % DATABASES;
                        if d % CLIENTS != client {
                            continue;
                        }
                        let due = start + Duration::from_secs_f64(j as f64 / rate);
                        if let Some(w) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(w);
                        }
                        let n = done_in_db[d as usize];
                        done_in_db[d as usize] += 1;
                        let sql = two_row_statement(d, n);
                        conn.query_drop(&sql).map_err(sql_error(port, sql))?;
                        if n.is_multiple_of(2) {
                            if inserts.is_multiple_of(probe_every) {
                                // The insert's first row: id 2 * (n / 2) + 1.
                                let _ = probes.send((Instant::now(), d, n + 1));
                            }
                            inserts += 1;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        drop(probes);
        for h in handles {
            h.join()
                .map_err(|_| BenchError::Generate("a load client panicked".into()))??;
        }
        Ok(())
    })
}

/// Times each probe until its row is visible on the replica.
fn poll_probes(
    conn: &mut mysql::Conn,
    port: u16,
    probes: Receiver<(Instant, u64, u64)>,
) -> Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .map_err(|e| BenchError::Generate(format!("a histogram: {e}")))?;
    for (committed, d, id) in probes {
        let sql = format!("SELECT 1 FROM db{d}.t WHERE id = {id}");
        loop {
            let seen: Option<u8> = conn
                .query_first(&sql)
                .map_err(sql_error(port, sql.clone()))?;
            if seen.is_some() {
                h.saturating_record(committed.elapsed().as_micros().max(1) as u64);
                break;
            }
            if committed.elapsed() > ARRIVAL_TIMEOUT {
                return Err(BenchError::Generate(format!(
                    "row {id} of db{d} not on the replica {} s after its commit",
                    ARRIVAL_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(h)
}

/// Waits until the replica's checksums equal the primary's.
fn wait_equal(primary: &Server, replica: &Server) -> Result<()> {
    let dbs: Vec<String> = (0..DATABASES).map(|d| format!("db{d}")).collect();
    let dbs: Vec<&str> = dbs.iter().map(String::as_str).collect();
    let expected = primary.checksums(&dbs)?;
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        if replica.checksums(&dbs)? == expected {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Generate(
                "lag: the replica's tables never equalled the primary's after the load".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
