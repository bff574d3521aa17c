//! `parapply bench`: end-to-end apply throughput, parapply against MariaDB's
//! own replication and `mariadb-binlog | mariadb`, on one machine, in one
//! command anyone can rerun; and the replica lag under steady load.
//!
//! # Workloads
//!
//! Six shapes of load ([`Workload`], letters a–f of issue 14: uniform over
//! 16 databases, skewed, one database, large transactions, 5 % cross-database,
//! sysbench `oltp_write_only`), each generated once on a throwaway primary
//! (binary log on, `ROW` format, fast non-durable settings: generating is
//! not what is measured) and applied from that same binlog by every
//! contender. `--scale` multiplies their sizes.
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
//! See [`contender`]: the native SQL thread(s) from `START SLAVE SQL_THREAD`
//! (relay log fetched beforehand) to `MASTER_GTID_WAIT` returning;
//! `mariadb-binlog | mariadb` from start to exit; parapply's `engine::run`
//! from call to return.
//!
//! After every run the replica's table checksums must equal the primary's; a
//! run that differs is an error, not a number. Runs are interleaved (run 1
//! of every configuration, then run 2, …) so that a change of machine load
//! spreads over all configurations; each configuration's median is reported
//! with transactions (GTIDs of the binlog) per second, the ratio to the best
//! native configuration and to the single SQL thread (their median time
//! divided by this one's: above 1 is faster), the applier's peak memory and
//! CPU and the replica's counters. With a chart directory, one PNG per
//! workload ([`chart`]).
//!
//! # Lag
//!
//! With [`BenchOptions::lag`], [`lag`] measures commit-to-visible latency
//! under a steady offered rate, native IO + SQL threads against `parapply
//! mirror` + `apply --follow`.
//!
//! # Configurations
//!
//! `native-single` (one SQL thread), `native-optimistic-N`,
//! `native-conservative-N`, `native-aggressive-N` (N parallel replication
//! threads in that mode), `mariadb-binlog`, `parapply-N` (N workers, default
//! batching) and `parapply-N-batch-K` (`--batch K`). See [`BenchConfig`];
//! the default is [`full_matrix`].

mod chart;
mod config;
pub mod contender;
pub mod lag;
mod report;
mod workload;

use std::path::PathBuf;
use std::time::Instant;

use mysql::prelude::Queryable;
use mysql::Row;

use crate::apply::ApplyError;
use crate::sandbox::{column, SandboxError, Server, ServerOptions};

pub use config::{full_matrix, BenchConfig};
pub use contender::{RunStats, COUNTERS};
pub use lag::{LagOptions, LagReport};
pub use report::{best_native, median, render_results, summarize, ConfigResult};
pub use workload::Workload;

use contender::PrimaryAt;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The workloads, in the order they run.
    pub workloads: Vec<Workload>,
    /// Multiplies every workload's size (1: the sizes of [`Workload`]).
    pub scale: f64,
    /// Runs per configuration.
    pub runs: u32,
    /// Client connections generating the two-row and large workloads.
    pub clients: u16,
    /// The configurations, in the order they run within each round.
    pub configs: Vec<BenchConfig>,
    /// Where to write one PNG chart per workload (`workload-a.png`, …).
    pub charts: Option<PathBuf>,
    /// The lag measurement, after the throughput runs.
    pub lag: Option<LagOptions>,
}

impl BenchOptions {
    /// Default runs per configuration.
    pub const DEFAULT_RUNS: u32 = 3;
    /// Default client connections generating the workload.
    pub const DEFAULT_CLIENTS: u16 = 8;
    /// Default scale.
    pub const DEFAULT_SCALE: f64 = 1.0;

    /// The defaults: workload (a), the full matrix, 3 runs, no charts, no
    /// lag.
    pub fn new() -> Self {
        BenchOptions {
            workloads: vec![Workload::Uniform],
            scale: Self::DEFAULT_SCALE,
            runs: Self::DEFAULT_RUNS,
            clients: Self::DEFAULT_CLIENTS,
            configs: full_matrix(),
            charts: None,
            lag: None,
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
    /// Generating the workload (or the lag load) went wrong.
    #[error("generating the workload: {0}")]
    Generate(String),
    /// Native replication or `mariadb-binlog | mariadb` stopped or stalled.
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
    #[error(
        "workload {workload}, {config}, run {run}: the replica's data differs from the \
         primary's: {detail}"
    )]
    Mismatch {
        /// The workload.
        workload: Workload,
        /// The configuration.
        config: BenchConfig,
        /// The run (from 1).
        run: u32,
        /// The tables that differ.
        detail: String,
    },
    /// A chart could not be drawn.
    #[error("chart: {0}")]
    Chart(String),
}

type Result<T, E = BenchError> = std::result::Result<T, E>;

fn sql_error(port: u16, what: impl Into<String>) -> impl FnOnce(mysql::Error) -> BenchError {
    let what = what.into();
    move |error| BenchError::Sql { port, what, error }
}

/// One workload's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkloadReport {
    /// Its letter.
    pub workload: String,
    /// Its name.
    pub name: String,
    /// What the primary was made to write.
    pub description: String,
    /// GTIDs in the primary's binlog (the workload plus its DDL): the
    /// transactions of "transactions/s".
    pub binlog_groups: u64,
    /// Bytes of the primary's binlog.
    pub binlog_bytes: u64,
    /// Seconds the generation took (not part of any measurement).
    pub generate_seconds: f64,
    /// UTC time the first run started.
    pub started: String,
    /// `/proc/loadavg` before the first run.
    pub load_before: String,
    /// `/proc/loadavg` after the last run.
    pub load_after: String,
    /// The best native configuration, if any ran.
    pub best_native: Option<String>,
    /// The PNG chart, if drawn.
    pub chart: Option<PathBuf>,
    /// Per configuration, in the order given.
    pub results: Vec<ConfigResult>,
}

/// A whole benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// The machine: CPU model, CPUs, memory, MariaDB version.
    pub machine: String,
    /// CPUs the machine offers.
    pub cpus: usize,
    /// The scale of the workloads.
    pub scale: f64,
    /// Runs per configuration.
    pub runs: u32,
    /// Per workload, in the order run.
    pub workloads: Vec<WorkloadReport>,
    /// The lag measurement, if asked for.
    pub lag: Option<LagReport>,
}

/// Runs the benchmark described by `opts`; see the [module doc](self).
pub fn run(opts: &BenchOptions) -> Result<BenchReport> {
    let mut workloads = Vec::new();
    for &w in &opts.workloads {
        workloads.push(run_workload(opts, w)?);
    }
    let lag = match &opts.lag {
        None => None,
        Some(lag_opts) => {
            let from_a = workloads
                .iter()
                .find(|w| w.workload == "a")
                .and_then(|w| best_native(&w.results).map(|r| (r, w)));
            let (base, from) = match (from_a, lag_opts.base_rate) {
                (Some((best, _)), _) => (
                    best.transactions_per_second,
                    format!("{} on workload (a), this run", best.config),
                ),
                (None, Some(rate)) => (rate, "given (--lag-base-rate)".to_owned()),
                (None, None) => {
                    return Err(BenchError::Generate(
                        "the lag measurement needs workload a with a native configuration in \
                         the same run, or a base rate"
                            .into(),
                    ))
                }
            };
            Some(lag::run(lag_opts, base, from)?)
        }
    };
    Ok(BenchReport {
        machine: machine(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        scale: opts.scale,
        runs: opts.runs,
        workloads,
        lag,
    })
}

/// Generates `w` once and runs every configuration on it.
fn run_workload(opts: &BenchOptions, w: Workload) -> Result<WorkloadReport> {
    let load_before = loadavg();
    eprintln!(
        "bench: workload {w} ({}): {}; {} run(s) of {} configuration(s); load {load_before}",
        w.name(),
        w.describe(opts.scale),
        opts.runs,
        opts.configs.len()
    );
    let primary = Server::start(primary_options())?;
    let started = Instant::now();
    w.generate(&primary, opts.scale, opts.clients)?;
    let generate_seconds = started.elapsed().as_secs_f64();
    let dbs = primary.databases()?;
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
    let at = PrimaryAt {
        file,
        position,
        gtid,
    };
    let started_at = utc_now();
    let mut stats: Vec<Vec<RunStats>> = vec![Vec::new(); opts.configs.len()];
    let mut server_id = 100;
    for run in 1..=opts.runs {
        for (i, &config) in opts.configs.iter().enumerate() {
            server_id += 1;
            eprintln!("bench: {w} run {run}/{} {config} …", opts.runs);
            let replica = Server::start(replica_options(config, server_id))?;
            let st = contender::run_one(&primary, &at, &replica, config, run)?;
            let got = replica.checksums(&db_refs)?;
            if got != expected {
                return Err(BenchError::Mismatch {
                    workload: w,
                    config,
                    run,
                    detail: checksum_diff(&expected, &got),
                });
            }
            eprintln!(
                "bench: {w} run {run}/{} {config}: {:.2} s, {:.0} transactions/s, checksums \
                 equal; CPU s: replica {:.2}, applier {:.2}; {}",
                opts.runs,
                st.seconds,
                binlog_groups as f64 / st.seconds,
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
        binlog_groups,
        opts.configs.iter().copied().zip(stats).collect(),
    );
    let best_native = best_native(&results).map(|r| r.config.clone());
    let chart = match &opts.charts {
        None => None,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| BenchError::Chart(format!("creating {}: {e}", dir.display())))?;
            let path = dir.join(format!("workload-{w}.png"));
            let title = format!(
                "({w}) {}: {binlog_groups} transactions, median of {}",
                w.name(),
                opts.runs
            );
            chart::draw(&path, &title, &results).map_err(BenchError::Chart)?;
            eprintln!("bench: chart {}", path.display());
            Some(path)
        }
    };
    Ok(WorkloadReport {
        workload: w.to_string(),
        name: w.name().to_owned(),
        description: w.describe(opts.scale),
        binlog_groups,
        binlog_bytes,
        generate_seconds,
        started: started_at,
        load_before,
        load_after: loadavg(),
        best_native,
        chart,
        results,
    })
}

/// The throwaway primary: binary log on, fast non-durable settings.
fn primary_options() -> ServerOptions {
    ServerOptions::new()
        .server_id(1)
        .log_bin("primary-bin")
        .innodb_buffer_pool_size(128 << 20)
}

/// A fresh durable replica for `config`.
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
        BenchConfig::BinlogPipe | BenchConfig::Parapply { .. } => base,
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

fn checksum_diff(
    expected: &std::collections::BTreeMap<String, u64>,
    got: &std::collections::BTreeMap<String, u64>,
) -> String {
    let mut diffs: Vec<String> = expected
        .keys()
        .chain(got.keys())
        .filter(|t| expected.get(*t) != got.get(*t))
        .map(|t| {
            let show = |m: &std::collections::BTreeMap<String, u64>| {
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

/// The current UTC time, `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// CPU model, CPUs, memory and the MariaDB server's version.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |kib| kib as f64 / (1u64 << 20) as f64);
    let version = std::process::Command::new(
        ["/usr/sbin/mariadbd", "/usr/bin/mariadbd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("mariadbd"),
    )
    .arg("--version")
    .output()
    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    .unwrap_or_else(|_| "mariadbd version unknown".to_owned());
    format!(
        "{model}, {} CPUs, {mem_gib:.1} GiB; {version}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}

/// The report as Markdown (so that it can go into the docs as it is): per
/// workload a header, the two tables and the chart; then the lag table.
pub fn render_report(report: &BenchReport) -> String {
    let mut out = format!(
        "Machine: {}. Scale {}, median of {} run(s).\n",
        report.machine, report.scale, report.runs
    );
    for w in &report.workloads {
        out.push_str(&format!(
            "\n### ({}) {}\n\n{}; {} GTIDs, {} bytes of binlog (generated in {:.1} s). Started \
             {}; load before {}, after {}.\n\n",
            w.workload,
            w.name,
            w.description,
            w.binlog_groups,
            w.binlog_bytes,
            w.generate_seconds,
            w.started,
            w.load_before,
            w.load_after
        ));
        out.push_str(&render_results(&w.results, w.binlog_groups));
        if let Some(chart) = &w.chart {
            out.push_str(&format!(
                "\n![({}) {}: transactions/s against threads]({})\n",
                w.workload,
                w.name,
                chart.display()
            ));
        }
    }
    if let Some(lag) = &report.lag {
        out.push_str(&render_lag(lag));
    }
    out
}

/// The lag table.
pub fn render_lag(lag: &LagReport) -> String {
    let mut out = format!(
        "\n### Lag under steady load\n\nBase rate {:.0} transactions/s ({}); {:.0} s of load \
         per phase.\n\n| applier | offered tx/s | primary took tx/s | probes | p50 ms | p99 ms | \
         max ms | replica CPU s |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        lag.base_rate, lag.base_from, lag.seconds
    );
    for p in &lag.phases {
        out.push_str(&format!(
            "| {} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.2} |\n",
            p.applier,
            p.offered_rate,
            p.achieved_rate,
            p.probes,
            p.p50_ms,
            p.p99_ms,
            p.max_ms,
            p.replica_cpu_seconds
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_are_civil_dates() {
        let now = utc_now();
        assert!(now.ends_with(" UTC") && now.len() == 23, "{now}");
        assert!(now.starts_with("20"), "{now}");
    }
}
