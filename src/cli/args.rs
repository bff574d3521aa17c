//! The command line: one clap-derive struct per command. The `///` line of
//! each field is its `--help`. Every default is read from the library's
//! option structs (`ApplyOptions::DEFAULT_*`, `MirrorOptions::DEFAULT_*`,
//! …), and every value is checked here, at parse time, so that a typo is
//! reported before anything connects.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Parser, Subcommand};
use parapply::apply::engine::{ApplyOptions, Until};
use parapply::apply::filter::{RewriteDb, TablePattern};
#[cfg(feature = "bench")]
use parapply::bench::{full_matrix, BenchConfig, BenchOptions, Workload};
use parapply::mirror::serve::ServeOptions;
use parapply::mirror::{MirrorOptions, SyncPolicy};
use parapply::position::{BinlogPos, MariaGtid, StartAt};
use parapply::progress::ProgressTables;
use parapply::promote::PromoteOptions;
use parapply::schedule::{ShardBy, ShardMap};
use parapply::wire::{SslMode, TlsOptions};

/// parapply — a parallel replication applier for MariaDB.
#[derive(Debug, Parser)]
#[command(name = "parapply", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// TLS of every connection parapply opens (primary, target, replicas,
/// mirror servers); read once. Global: before or after the command.
#[derive(Debug, clap::Args)]
pub struct TlsArgs {
    /// disabled, preferred, required, verify-ca or verify-identity, with the
    /// MariaDB/MySQL client's meaning (docs/operations.md). Default:
    /// verify-ca with --ssl-ca, else preferred.
    #[arg(long, global = true, value_name = "MODE")]
    pub ssl_mode: Option<SslMode>,
    /// PEM file of the CA certificates that sign the servers' certificates
    /// (default: the system's, for the verify modes).
    #[arg(long, global = true, value_name = "FILE")]
    pub ssl_ca: Option<PathBuf>,
    /// PEM file of a client certificate (for users created REQUIRE X509).
    #[arg(long, global = true, value_name = "FILE", requires = "ssl_key")]
    pub ssl_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[arg(long, global = true, value_name = "FILE", requires = "ssl_cert")]
    pub ssl_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The options as the library takes them.
    pub fn options(&self) -> TlsOptions {
        TlsOptions {
            mode: self.ssl_mode,
            ca: self.ssl_ca.clone(),
            cert: self.ssl_cert.clone(),
            key: self.ssl_key.clone(),
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the events or transaction groups of binlog or relay-log files.
    Inspect(InspectArgs),
    /// Mirror the primary's binlog byte for byte into a directory, as a
    /// replica (in place of the replica's IO thread).
    Mirror(MirrorArgs),
    /// Serve a mirror directory over MariaDB's replication protocol (to
    /// replicas, mariadb-binlog, other mirrors), without mirroring.
    Serve(ServeArgs),
    /// Apply a mirrored binlog or relay logs to a target server, in parallel
    /// by database (the replica's SQL thread, replaced).
    Apply(ApplyArgs),
    /// Show what a target has applied: per-shard watermarks, low-watermark,
    /// and what is left in the source.
    Status(StatusArgs),
    /// Compare two replicas' states and list the groups each lacks of the
    /// other (both directions); --apply applies the A→B set to B.
    Catchup(super::catchup::CatchupArgs),
    /// Promote a replica to primary when the replicas hold incomparable
    /// states: freeze, check, catch up every replica from the longest
    /// mirror, switch, re-point (docs/promotion.md).
    Promote(PromoteArgs),
    /// Wait until a target has applied one group (the sidecar's
    /// MASTER_GTID_WAIT). Exit code 0: applied; 3: timed out; 4: the source
    /// passed the GTID without it (unknown); 1: an error.
    Wait(WaitArgs),
    /// Measure apply throughput end to end on throwaway servers: parapply
    /// against MariaDB's own replication, on durable replicas.
    #[cfg(feature = "bench")]
    Bench(BenchArgs),
    /// Show the whole story on throwaway servers, nothing to configure:
    /// parallel apply racing MariaDB's SQL thread, a primary killed
    /// mid-load, incomparable replicas, a promotion that loses nothing.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
}

/// `parapply demo`.
#[cfg(feature = "demo")]
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// A shorter run (fewer orders; the test's).
    #[arg(long)]
    pub short: bool,
    /// After the summary, leave the servers, mirrors and appliers running
    /// and print how to connect to each, until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
    /// Print the closing summary as JSON on standard output (the story
    /// goes to standard error).
    #[arg(long)]
    pub json: bool,
}

/// How to reach the target; its password is never taken from the command line.
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// The target server: mysql://USER@HOST:PORT/ (no password in the URL:
    /// set PARAPPLY_TARGET_PASSWORD or use --target-password-file).
    #[arg(long)]
    pub target: String,
    /// A file holding the target user's password (first line).
    #[arg(long)]
    pub target_password_file: Option<PathBuf>,
    /// Schema of parapply's progress tables on the target.
    #[arg(long, default_value = ApplyOptions::DEFAULT_PROGRESS_SCHEMA,
          value_parser = parse_progress_schema)]
    pub progress_schema: String,
}

/// How databases are grouped into shards: `--shard-map` and `--shard-by`.
#[derive(Debug, clap::Args)]
pub struct ShardingArgs {
    /// Merge databases into shards: `name=db1,db2;other=db3` (for
    /// cross-database foreign keys).
    #[arg(long, value_parser = parse_shard_map)]
    pub shard_map: Option<String>,
    /// Shard by `database`, by `table`, or by `key[:K]` (K buckets of the
    /// primary and unique key values of the rows a transaction changes;
    /// default K 1024).
    #[arg(long, default_value_t = ApplyOptions::DEFAULT_SHARD_BY,
          value_parser = parse_shard_by)]
    pub shard_by: ShardBy,
}

impl ShardingArgs {
    /// The shard map (its spec was checked at parse time).
    pub fn map(&self) -> Result<ShardMap, String> {
        ShardMap::parse(self.shard_map.as_deref().unwrap_or(""), self.shard_by)
            .map_err(|e| format!("--shard-map: {e}"))
    }
}

/// `parapply apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The mirror or relay-log directory (holding its index file), or an
    /// index file.
    #[arg(long)]
    pub source: PathBuf,
    /// The target server.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Keep tailing the source for new events (stop with SIGINT/SIGTERM).
    #[arg(long)]
    pub follow: bool,
    /// Stop after the group with this GTID (domain-server-seq), or the group
    /// ending at or after this FILE:POS.
    #[arg(long)]
    pub until: Option<Until>,
    /// Point-in-time recovery: stop before the first group the primary
    /// logged at or after this moment, 'YYYY-MM-DD HH:MM:SS' in UTC (the
    /// binlog's timestamps are UTC seconds), at one consistent position.
    #[arg(long, value_parser = parse_utc_time, conflicts_with = "until")]
    pub until_time: Option<u32>,
    /// Where to start on a target without progress: FILE:POS (the first
    /// event applied starts there: Relay_Master_Log_File:Exec_Master_Log_Pos)
    /// or a GTID domain-server-seq (the last one already applied, as
    /// @@gtid_slave_pos says: applying starts after it).
    #[arg(long)]
    pub from: Option<StartAt>,
    /// Where to start on a target without progress, restored from this
    /// mariadb-backup directory: after the GTID position (else at the
    /// binlog position) its mariadb_backup_binlog_info recorded. Without
    /// --from or --from-backup, a target without progress starts after its
    /// @@gtid_slave_pos (set by restoring a `mariadb-dump --gtid` dump),
    /// else at the source's beginning.
    #[arg(long, value_name = "DIR", conflicts_with = "from")]
    pub from_backup: Option<PathBuf>,
    /// Worker threads, each with its own connection to the target.
    #[arg(long, default_value_t = ApplyOptions::DEFAULT_WORKERS,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=512))]
    pub workers: usize,
    /// Up to this many groups waiting in a worker's queue (of any of its
    /// shards) are committed as one target transaction (1 turns batching off).
    #[arg(long, default_value_t = ApplyOptions::DEFAULT_BATCH_GROUPS,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=10000))]
    pub batch: usize,
    /// Bytes of events per batched transaction at most (K, M, G suffixes).
    #[arg(long, default_value_t = Bytes::of(ApplyOptions::DEFAULT_BATCH_BYTES))]
    pub batch_bytes: Bytes,
    /// Bytes of groups read but not yet applied at most (K, M, G suffixes).
    #[arg(long, default_value_t = Bytes(ApplyOptions::DEFAULT_MAX_INFLIGHT_BYTES))]
    pub max_inflight_bytes: Bytes,
    /// How databases map to shards.
    #[command(flatten)]
    pub sharding: ShardingArgs,
    /// Seconds to keep reconnecting to a target that went away.
    #[arg(long, default_value_t = ApplyOptions::DEFAULT_RECONNECT_TIMEOUT.as_secs())]
    pub reconnect_timeout: u64,
    /// Do not apply the groups of these servers (their GTIDs' server id),
    /// as CHANGE MASTER's IGNORE_SERVER_IDS: writes that came back around a
    /// ring. Comma-separated; the watermarks still move past them.
    #[arg(long, value_delimiter = ',')]
    pub ignore_server_ids: Vec<u32>,
    /// Apply only these databases (replicate-do-db; comma-separated or
    /// repeated): row events by their table's database, statements by
    /// their default database.
    #[arg(long, value_delimiter = ',', value_name = "DB")]
    pub include_db: Vec<String>,
    /// Do not apply these databases (replicate-ignore-db).
    #[arg(long, value_delimiter = ',', value_name = "DB")]
    pub exclude_db: Vec<String>,
    /// Apply only tables matching one of these `db.table` patterns (LIKE
    /// wildcards % and _, as replicate-wild-do-table). Row events only:
    /// statements are not filtered by table.
    #[arg(long, value_delimiter = ',', value_name = "DB.TABLE")]
    pub include_table: Vec<TablePattern>,
    /// Do not apply tables matching these `db.table` patterns
    /// (replicate-wild-ignore-table). Row events only.
    #[arg(long, value_delimiter = ',', value_name = "DB.TABLE")]
    pub exclude_table: Vec<TablePattern>,
    /// Apply database FROM's changes to database TO (replicate-rewrite-db;
    /// repeated for several): Table_maps and default databases are
    /// renamed, statement texts are not. The other filters see TO.
    #[arg(long, value_name = "FROM->TO")]
    pub rewrite_db: Vec<RewriteDb>,
    /// Seconds an answer of the target is awaited before a second
    /// connection checks that the target is alive and still runs the
    /// statement; a stopped or vanished target is then a lost connection
    /// (reconnected within --reconnect-timeout). Also the TCP keepalive time.
    #[arg(long, default_value_t = Seconds(ApplyOptions::DEFAULT_LIVENESS))]
    pub liveness: Seconds,
    /// Serve metrics in the Prometheus text format at
    /// http://HOST:PORT/metrics while applying.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
    /// Print the final report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One `--replica NAME=URL,MIRROR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaArg {
    /// Its name.
    pub name: String,
    /// `mysql://USER@HOST:PORT/` (no password).
    pub url: String,
    /// Its mirror.
    pub mirror: MirrorArg,
}

/// A replica's mirror on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorArg {
    /// A directory.
    Dir(PathBuf),
    /// A mirror server's URL.
    Server(String),
    /// `native`.
    Native,
}

impl FromStr for ReplicaArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected NAME=URL,MIRROR"))?;
        let (url, mirror) = rest.rsplit_once(',').ok_or_else(|| {
            format!("`{s}`: expected NAME=URL,MIRROR (MIRROR a directory or `native`)")
        })?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "`{name}`: a replica name is letters, digits, `_` and `-`"
            ));
        }
        // URL,MIRROR where MIRROR may itself be a URL: split at the
        // second scheme.
        let (url, mirror) = match rest.find(",mysql://").or_else(|| rest.find(",mariadb://")) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (url, mirror),
        };
        let mirror = if mirror == "native" {
            MirrorArg::Native
        } else if mirror.contains("://") {
            MirrorArg::Server(mirror.to_string())
        } else {
            MirrorArg::Dir(PathBuf::from(mirror))
        };
        Ok(ReplicaArg {
            name: name.to_string(),
            url: url.to_string(),
            mirror,
        })
    }
}

/// `parapply promote`.
#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// A replica: NAME=mysql://USER@HOST:PORT/,MIRROR where MIRROR is its
    /// mirror directory, its mirror server's mysql://USER@HOST:PORT/
    /// (password: PARAPPLY_SERVE_PASSWORD), or `native` for a replica run
    /// by MariaDB's own replication. Every replica's password:
    /// PARAPPLY_TARGET_PASSWORD.
    #[arg(long = "replica", required_unless_present = "simulate")]
    pub replicas: Vec<ReplicaArg>,
    /// Plan a simulated fleet instead (no servers): REPLICAS,SHARDS or
    /// REPLICAS,SHARDS,GROUPS_PER_SHARD (default 20); prints the times.
    #[arg(long, value_parser = parse_simulate)]
    pub simulate: Option<(usize, usize, u64)>,
    /// Promote this replica (default: the first of the ranking).
    #[arg(long)]
    pub candidate: Option<String>,
    /// Planned switchover: the old primary (alive) is set read-only, its
    /// last writes waited for, and it becomes a replica of the new one.
    #[arg(long, requires = "old_primary")]
    pub switchover: bool,
    /// The old primary of a switchover (password: PARAPPLY_PRIMARY_PASSWORD).
    #[arg(long)]
    pub old_primary: Option<String>,
    /// Show the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Go on although replicas hold errant transactions.
    #[arg(long)]
    pub allow_errant: bool,
    /// Clear the freeze a refused promotion left on the replicas, and exit.
    #[arg(long)]
    pub unfreeze: bool,
    /// Run before acting (sh -c); a non-zero exit aborts with nothing changed.
    #[arg(long)]
    pub pre_hook: Option<String>,
    /// Run after the promotion (sh -c).
    #[arg(long)]
    pub post_hook: Option<String>,
    /// Seconds for the appliers to stop (and, in a switchover, the mirrors
    /// to receive the old primary's last writes).
    #[arg(long, default_value_t = PromoteOptions::DEFAULT_FREEZE_TIMEOUT.as_secs())]
    pub freeze_timeout: u64,
    /// Catch-up workers per replica.
    #[arg(long, default_value_t = PromoteOptions::DEFAULT_WORKERS,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=512))]
    pub workers: usize,
    /// The user re-pointed native replicas replicate with (password:
    /// PARAPPLY_REPL_PASSWORD).
    #[arg(long, default_value = "root")]
    pub repl_user: String,
    /// Schema of parapply's progress tables on the replicas.
    #[arg(long, default_value = ApplyOptions::DEFAULT_PROGRESS_SCHEMA,
          value_parser = parse_progress_schema)]
    pub progress_schema: String,
    /// How databases map to shards (as given to the appliers).
    #[command(flatten)]
    pub sharding: ShardingArgs,
    /// Append the steps as TLA+ trace records to this file (tla/README.md).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// For --trace: the name of the server with this server_id in GTIDs
    /// (ID=NAME, repeatable).
    #[arg(long = "trace-server")]
    pub trace_servers: Vec<String>,
    /// Print the plan and the report as JSON (one object per line).
    #[arg(long)]
    pub json: bool,
}

/// `parapply status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The target server.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The source directory, to show what is left to apply.
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// How databases map to shards (as given to apply).
    #[command(flatten)]
    pub sharding: ShardingArgs,
    /// The metrics address of a running applier (its --metrics HOST:PORT),
    /// to show its live figures: throughput, lag, groups in flight, latency.
    #[arg(long, value_name = "HOST:PORT")]
    pub live: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `parapply wait`.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// The target server.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The group to wait for: DOMAIN-SERVER-SEQ.
    #[arg(long)]
    pub gtid: MariaGtid,
    /// The source the target applies (mirror or relay-log directory): where
    /// the group's shards are found. Without it only the low-watermark
    /// counts, which may answer later than the group is applied.
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// How databases map to shards (as given to apply).
    #[command(flatten)]
    pub sharding: ShardingArgs,
    /// Give up after this many seconds (0: look once; default: wait for
    /// ever).
    #[arg(long, value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `parapply mirror`.
#[derive(Debug, clap::Args)]
pub struct MirrorArgs {
    /// The primary: mysql://USER@HOST:PORT/ (no password in the URL: set
    /// PARAPPLY_PRIMARY_PASSWORD or use --primary-password-file).
    #[arg(long)]
    pub primary: String,
    /// A file holding the replication user's password (first line).
    #[arg(long)]
    pub primary_password_file: Option<PathBuf>,
    /// The mirror directory (created if missing; resumed if it holds a mirror).
    #[arg(long)]
    pub dir: PathBuf,
    /// Server id to register with; unique among the primary's replicas.
    #[arg(long)]
    pub server_id: u32,
    /// Start an empty mirror with the file of this position (FILE:POS; the
    /// file is copied from its start).
    #[arg(long, conflicts_with = "from_gtid")]
    pub from: Option<BinlogPos>,
    /// Start an empty mirror with the file where the primary would start
    /// sending to a replica at this GTID state (domain-server-seq[,…]).
    #[arg(long, value_parser = parse_gtid_state)]
    pub from_gtid: Option<String>,
    /// fsync the mirror after every event (`every`), every N events, or
    /// `never`.
    #[arg(long, default_value_t = MirrorOptions::DEFAULT_SYNC)]
    pub sync: SyncPolicy,
    /// Heartbeat period asked of the primary, in seconds.
    #[arg(long, default_value_t = Seconds(MirrorOptions::DEFAULT_HEARTBEAT))]
    pub heartbeat: Seconds,
    /// Seconds between progress log lines.
    #[arg(long, default_value_t = Seconds(MirrorOptions::DEFAULT_PROGRESS_EVERY))]
    pub progress_every: Seconds,
    /// Also serve the mirror over MariaDB's replication protocol on
    /// HOST:PORT (replicas, mariadb-binlog, other mirrors); only fsynced
    /// bytes are served (see --sync).
    #[arg(long, value_name = "HOST:PORT")]
    pub serve: Option<String>,
    #[command(flatten)]
    pub serve_login: ServeLoginArgs,
    /// Serve metrics in the Prometheus text format at
    /// http://HOST:PORT/metrics while mirroring.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
}

/// Who may log in to a binlog server, and how many.
#[derive(Debug, clap::Args)]
pub struct ServeLoginArgs {
    /// The user clients of the binlog server log in as.
    #[arg(long, default_value = ServeOptions::DEFAULT_USER)]
    pub serve_user: String,
    /// A file holding that user's password (first line); otherwise
    /// PARAPPLY_SERVE_PASSWORD. Required: there is no anonymous access.
    #[arg(long)]
    pub serve_password_file: Option<PathBuf>,
    /// Most clients served at once.
    #[arg(long, default_value_t = ServeOptions::DEFAULT_MAX_CLIENTS,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub serve_max_clients: usize,
    /// Server id reported to clients (default: the primary's, from the
    /// newest binlog file).
    #[arg(long)]
    pub serve_server_id: Option<u32>,
    /// PEM file of the binlog server's certificate chain: TLS is offered to
    /// its clients.
    #[arg(long, value_name = "FILE", requires = "serve_ssl_key")]
    pub serve_ssl_cert: Option<PathBuf>,
    /// PEM file of that certificate's private key.
    #[arg(long, value_name = "FILE", requires = "serve_ssl_cert")]
    pub serve_ssl_key: Option<PathBuf>,
    /// Refuse clients that log in without TLS (as require_secure_transport).
    #[arg(long, requires = "serve_ssl_cert")]
    pub serve_require_ssl: bool,
}

/// `parapply serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The mirror directory (holding its index file), as `parapply mirror`
    /// writes it; growth is followed.
    #[arg(long)]
    pub dir: PathBuf,
    /// HOST:PORT to listen on.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: String,
    #[command(flatten)]
    pub login: ServeLoginArgs,
}

/// `parapply inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Binlog files (read in the order given), or one directory holding an
    /// index file, or one `*.index` file.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// List transaction groups instead of events.
    #[arg(long)]
    pub groups: bool,
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Start at this position (FILE:POS) or at the group of this GTID
    /// (domain-server-seq).
    #[arg(long)]
    pub from: Option<StartAt>,
    /// Keep waiting for new events at the end (Ctrl-C to stop).
    #[arg(long)]
    pub follow: bool,
}

/// `parapply bench`.
#[cfg(feature = "bench")]
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Workloads, comma-separated letters or names: a (uniform, 16
    /// databases), b (skewed), c (one-database), d (large transactions), e
    /// (cross-database), f (sysbench oltp_write_only, 8 databases), g
    /// (sysbench oltp_write_only, one database, --clients threads).
    #[arg(long, value_delimiter = ',', default_values_t = vec![Workload::Uniform])]
    pub workload: Vec<Workload>,
    /// Multiplies every workload's size (0.01 for a quick look; 1 is
    /// sized for about 10 minutes per workload with the full matrix on 2 cores).
    #[arg(long, default_value_t = BenchOptions::DEFAULT_SCALE, value_parser = parse_scale)]
    pub scale: f64,
    /// Runs of each configuration (each on a fresh replica); the median is
    /// reported.
    #[arg(long, default_value_t = BenchOptions::DEFAULT_RUNS,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Configurations, comma-separated: native-single,
    /// native-{optimistic,conservative,aggressive}-N (N threads),
    /// mariadb-binlog (mariadb-binlog | mariadb), parapply-N (N workers,
    /// default batching), parapply-N-batch-K. Default: all of them with
    /// N = 4, 8, 16, 32 and K = 1.
    #[arg(long, value_delimiter = ',', default_values_t = full_matrix())]
    pub configs: Vec<BenchConfig>,
    /// Client connections generating the workload on the primary.
    #[arg(long, default_value_t = BenchOptions::DEFAULT_CLIENTS,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub clients: u16,
    /// Write one PNG chart per workload into this directory
    /// (workload-a.png, …).
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
    /// Also measure replica lag under steady load at these fractions of the
    /// best native rate on workload a (e.g. 0.5,0.9): native optimistic-16
    /// against parapply mirror + apply --follow.
    #[arg(long, value_delimiter = ',', value_parser = parse_scale)]
    pub lag: Vec<f64>,
    /// Seconds of steady load per lag phase.
    #[arg(long, default_value_t = 20.0, value_parser = parse_scale)]
    pub lag_seconds: f64,
    /// The rate (transactions/s) the --lag fractions are of when workload a
    /// does not run with a native configuration in the same bench.
    #[arg(long, value_parser = parse_scale)]
    pub lag_base_rate: Option<f64>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A positive number (`--scale`, `--lag`).
#[cfg(feature = "bench")]
fn parse_scale(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| format!("`{s}`: expected a number > 0 (e.g. 0.5, 2)"))
}

/// A size in bytes: `123`, `64K`, `4M`, `1G` (powers of 1024; a trailing
/// `iB`/`B` is allowed). Printed in the largest unit that divides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl Bytes {
    /// A size held in a `usize`.
    pub fn of(n: usize) -> Self {
        Bytes(u64::try_from(n).unwrap_or(u64::MAX))
    }

    /// The size as a `usize` (saturating).
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for Bytes {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_end_matches("iB").trim_end_matches('B');
        let (num, mult) = match t.char_indices().last() {
            Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
            Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
            Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
            _ => (t, 1),
        };
        num.trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .filter(|&n| n > 0)
            .map(Bytes)
            .ok_or_else(|| format!("`{s}` is not a size (e.g. 65536, 64K, 4M, 1G)"))
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, suffix) in [(1u64 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")] {
            if n > 0 && n.is_multiple_of(unit) {
                return write!(f, "{}{suffix}", n / unit);
            }
        }
        write!(f, "{n}")
    }
}

/// A period in seconds (`1`, `0.5`): finite and above 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<f64>()
            .ok()
            .and_then(|v| Duration::try_from_secs_f64(v).ok())
            .filter(|d| !d.is_zero())
            .map(Seconds)
            .ok_or_else(|| format!("`{s}`: expected seconds > 0 (e.g. 1, 0.5)"))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) as Unix seconds.
fn parse_utc_time(s: &str) -> Result<u32, String> {
    let bad = || format!("`{s}`: expected 'YYYY-MM-DD HH:MM:SS' (UTC, 1970 to 2105)");
    let (date, time) = s.trim().split_once(' ').ok_or_else(bad)?;
    let num = |x: &str| x.parse::<i64>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.trim().split(':').collect();
    if d.len() != 3 || t.len() != 3 {
        return Err(bad());
    }
    let (y, m, day) = (num(d[0])?, num(d[1])?, num(d[2])?);
    let (hh, mm, ss) = (num(t[0])?, num(t[1])?, num(t[2])?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_len = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if !(1..=month_len).contains(&day) || !(0..24).contains(&hh) || !(0..60).contains(&mm) {
        return Err(bad());
    }
    if !(0..60).contains(&ss) {
        return Err(bad());
    }
    // Days since 1970-01-01 (the civil-calendar count of H. Hinnant).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u32::try_from(secs).map_err(|_| bad())
}

/// A timeout in seconds (`0`, `1.5`): finite, not negative.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("`{s}`: expected seconds ≥ 0 (e.g. 0, 1.5)"))
}

/// Parses `--shard-by`.
fn parse_shard_by(s: &str) -> Result<ShardBy, String> {
    s.parse()
}

/// Checks a `--shard-map` spec (it does not depend on `--shard-by`).
fn parse_shard_map(s: &str) -> Result<String, String> {
    ShardMap::parse(s, ShardBy::Database)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

/// Checks a `--progress-schema` name.
fn parse_simulate(s: &str) -> Result<(usize, usize, u64), String> {
    let v: Vec<u64> = s
        .split(',')
        .map(|x| x.trim().parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("`{s}`: expected REPLICAS,SHARDS[,GROUPS_PER_SHARD]"))?;
    match v[..] {
        [r, sh] if r > 0 && sh > 0 => Ok((r as usize, sh as usize, 20)),
        [r, sh, g] if r > 0 && sh > 0 && g > 0 => Ok((r as usize, sh as usize, g)),
        _ => Err(format!(
            "`{s}`: expected REPLICAS,SHARDS[,GROUPS_PER_SHARD], each ≥ 1"
        )),
    }
}

pub fn parse_progress_schema(s: &str) -> Result<String, String> {
    ProgressTables::new(s).map(|_| s.to_owned())
}

/// Checks a GTID state: `domain-server-seq[,domain-server-seq…]`.
fn parse_gtid_state(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("empty GTID state: expected domain-server-seq[,…]".into());
    }
    for g in s.split(',') {
        g.parse::<MariaGtid>()?;
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        Cli::try_parse_from(std::iter::once("parapply").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    fn apply(extra: &[&str]) -> Result<ApplyArgs, String> {
        let mut args = vec!["apply", "--source", "dir", "--target", "mysql://u@h/"];
        args.extend_from_slice(extra);
        match parse(&args)?.command {
            Command::Apply(a) => Ok(a),
            c => panic!("parsed as {c:?}"),
        }
    }

    fn mirror(extra: &[&str]) -> Result<MirrorArgs, String> {
        let mut args = vec!["mirror", "--primary", "mysql://u@h/", "--dir", "d"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--server-id", "7"]);
        match parse(&args)?.command {
            Command::Mirror(a) => Ok(a),
            c => panic!("parsed as {c:?}"),
        }
    }

    /// Asserts that parsing fails and the message names the flag and says
    /// what is wrong.
    fn rejected(r: Result<impl fmt::Debug, String>, flag: &str, says: &str) {
        let e = r.expect_err("a bad value must be rejected at parse time");
        assert!(e.contains(flag) && e.contains(says), "{e}");
    }

    #[test]
    fn apply_defaults_are_the_library_defaults() {
        let a = apply(&[]).unwrap();
        assert_eq!(a.workers, ApplyOptions::DEFAULT_WORKERS);
        assert_eq!(a.batch, ApplyOptions::DEFAULT_BATCH_GROUPS);
        assert_eq!(a.batch_bytes.as_usize(), ApplyOptions::DEFAULT_BATCH_BYTES);
        assert_eq!(
            a.max_inflight_bytes.0,
            ApplyOptions::DEFAULT_MAX_INFLIGHT_BYTES
        );
        assert_eq!(
            Duration::from_secs(a.reconnect_timeout),
            ApplyOptions::DEFAULT_RECONNECT_TIMEOUT
        );
        assert_eq!(a.sharding.shard_by, ApplyOptions::DEFAULT_SHARD_BY);
        assert_eq!(a.liveness.0, ApplyOptions::DEFAULT_LIVENESS);
        assert_eq!(
            a.target.progress_schema,
            ApplyOptions::DEFAULT_PROGRESS_SCHEMA
        );
        assert_eq!((a.until, a.from, a.sharding.shard_map), (None, None, None));
    }

    #[test]
    fn mirror_defaults_are_the_library_defaults() {
        let m = mirror(&[]).unwrap();
        assert_eq!(m.sync, MirrorOptions::DEFAULT_SYNC);
        assert_eq!(m.heartbeat.0, MirrorOptions::DEFAULT_HEARTBEAT);
        assert_eq!(m.progress_every.0, MirrorOptions::DEFAULT_PROGRESS_EVERY);
    }

    #[cfg(feature = "bench")]
    #[test]
    fn bench_defaults_are_the_library_defaults() {
        let Command::Bench(b) = parse(&["bench"]).unwrap().command else {
            panic!("not bench");
        };
        let d = BenchOptions::new();
        assert_eq!(
            (b.workload, b.scale, b.runs, b.clients, b.configs, b.charts),
            (d.workloads, d.scale, d.runs, d.clients, d.configs, d.charts)
        );
        assert!(b.lag.is_empty() && d.lag.is_none());
    }

    #[test]
    fn until_time_is_utc_seconds() {
        assert_eq!(parse_utc_time("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(parse_utc_time("2026-11-29 09:30:00"), Ok(1_795_944_600));
        assert_eq!(parse_utc_time("2024-02-29 23:59:59"), Ok(1_709_251_199));
        for bad in [
            "2023-02-29 00:00:00",
            "2026-11-29",
            "2026-13-01 00:00:00",
            "1969-12-31 23:59:59",
            "2026-11-29 24:00:00",
            "x",
        ] {
            assert!(parse_utc_time(bad).is_err(), "{bad}");
        }
        let a = apply(&["--until-time", "2026-11-29 09:30:00"]).unwrap();
        assert_eq!(a.until_time, Some(1_795_944_600));
        assert!(apply(&["--until-time", "2026-11-29 09:30:00", "--until", "0-1-2"]).is_err());
    }

    #[test]
    fn until_is_checked_at_parse_time() {
        assert_eq!(
            apply(&["--until", "0-1-42"]).unwrap().until,
            Some(Until::Gtid("0-1-42".parse().unwrap()))
        );
        assert_eq!(
            apply(&["--until", "mariadb-bin.000002:1893"])
                .unwrap()
                .until,
            Some(Until::Pos(BinlogPos::new("mariadb-bin.000002", 1893)))
        );
        rejected(apply(&["--until", "0-1-x"]), "--until", "0-1-x");
        rejected(
            apply(&["--until", "bin.000001:"]),
            "--until",
            "not a number",
        );
        rejected(apply(&["--until", ""]), "--until", "not a GTID");
    }

    #[test]
    fn shard_map_is_checked_at_parse_time() {
        let a = apply(&["--shard-map", "app=db1,db2;b=db3", "--shard-by", "table"]).unwrap();
        let map = a.sharding.map().unwrap();
        assert_eq!(map.by(), ShardBy::Table);
        assert_eq!(map.merged("db2").map(|s| &*s.0), Some("app"));
        rejected(apply(&["--shard-map", "app"]), "--shard-map", "app");
        rejected(apply(&["--shard-map", "a=db1;b=db1"]), "--shard-map", "db1");
        rejected(
            parse(&["status", "--target", "mysql://u@h/", "--shard-map", "x="]),
            "--shard-map",
            "database name is empty",
        );
    }

    #[test]
    fn from_is_checked_at_parse_time() {
        assert_eq!(
            apply(&["--from", "mariadb-bin.000001:4"]).unwrap().from,
            Some(StartAt::Pos(BinlogPos::new("mariadb-bin.000001", 4)))
        );
        rejected(apply(&["--from", "0-1"]), "--from", "0-1");
        assert_eq!(
            mirror(&["--from", "mariadb-bin.000001:4"]).unwrap().from,
            Some(BinlogPos::new("mariadb-bin.000001", 4))
        );
        rejected(
            mirror(&["--from", "mariadb-bin.000001"]),
            "--from",
            "FILE:POS",
        );
        rejected(mirror(&["--from", ":4"]), "--from", "empty file name");
        assert!(mirror(&["--from-gtid", "0-1-5,1-2-7"]).is_ok());
        rejected(mirror(&["--from-gtid", "0-1-5,x"]), "--from-gtid", "`x`");
        rejected(
            mirror(&["--from", "b.000001:4", "--from-gtid", "0-1-5"]),
            "--from",
            "cannot be used with",
        );
        let Command::Inspect(i) = parse(&["inspect", "--from", "0-1-9", "f"]).unwrap().command
        else {
            panic!("not inspect");
        };
        assert_eq!(i.from, Some(StartAt::Gtid("0-1-9".parse().unwrap())));
        rejected(parse(&["inspect", "--from", "nope", "f"]), "--from", "nope");
    }

    #[test]
    fn sync_and_periods_are_checked_at_parse_time() {
        assert_eq!(
            mirror(&["--sync", "every"]).unwrap().sync,
            SyncPolicy::Every
        );
        assert_eq!(
            mirror(&["--sync", "never"]).unwrap().sync,
            SyncPolicy::Never
        );
        assert_eq!(
            mirror(&["--sync", "250"]).unwrap().sync,
            SyncPolicy::EveryN(250)
        );
        rejected(mirror(&["--sync", "0"]), "--sync", "every");
        rejected(mirror(&["--sync", "always"]), "--sync", "always");
        assert_eq!(
            mirror(&["--heartbeat", "0.5"]).unwrap().heartbeat.0,
            Duration::from_millis(500)
        );
        rejected(mirror(&["--heartbeat", "0"]), "--heartbeat", "seconds > 0");
        rejected(
            mirror(&["--heartbeat", "nan"]),
            "--heartbeat",
            "seconds > 0",
        );
        rejected(
            mirror(&["--progress-every=-1"]),
            "--progress-every",
            "seconds > 0",
        );
    }

    #[test]
    fn sizes_parse_and_print_in_their_unit() {
        for (s, n, shown) in [
            ("65536", 65536, "64K"),
            ("4M", 4 << 20, "4M"),
            ("4MiB", 4 << 20, "4M"),
            ("1g", 1 << 30, "1G"),
            ("1000", 1000, "1000"),
        ] {
            let b: Bytes = s.parse().unwrap();
            assert_eq!((b.0, b.to_string().as_str()), (n, shown), "{s}");
        }
        for bad in ["0", "", "M", "-1K", "99999999999999G"] {
            assert!(bad.parse::<Bytes>().is_err(), "{bad}");
        }
        rejected(
            apply(&["--batch-bytes", "4X"]),
            "--batch-bytes",
            "not a size",
        );
        rejected(apply(&["--workers", "0"]), "--workers", "0");
        rejected(
            apply(&["--progress-schema", "a;b"]),
            "--progress-schema",
            "letters, digits or underscores",
        );
    }

    #[test]
    fn serve_options_and_their_defaults() {
        let m = mirror(&["--serve", "0.0.0.0:3307"]).unwrap();
        assert_eq!(m.serve.as_deref(), Some("0.0.0.0:3307"));
        assert_eq!(m.serve_login.serve_user, ServeOptions::DEFAULT_USER);
        assert_eq!(
            m.serve_login.serve_max_clients,
            ServeOptions::DEFAULT_MAX_CLIENTS
        );
        assert!(mirror(&[]).unwrap().serve.is_none());
        match parse(&[
            "serve",
            "--dir",
            "d",
            "--listen",
            "h:1",
            "--serve-max-clients",
            "3",
        ])
        .unwrap()
        .command
        {
            Command::Serve(a) => {
                assert_eq!((a.listen.as_str(), a.login.serve_max_clients), ("h:1", 3));
            }
            c => panic!("parsed as {c:?}"),
        }
        assert!(parse(&[
            "serve",
            "--dir",
            "d",
            "--listen",
            "h:1",
            "--serve-max-clients",
            "0"
        ])
        .is_err());
        assert!(parse(&["serve", "--dir", "d"]).is_err());
    }
}
