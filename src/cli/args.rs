//! The command line: one clap-derive struct per command. The `///` line of
//! each field is its `--help`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use parapply::position::StartAt;

/// parapply — a parallel replication applier for MariaDB.
#[derive(Debug, Parser)]
#[command(name = "parapply", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the events or transaction groups of binlog or relay-log files.
    Inspect(InspectArgs),
    /// Mirror the primary's binlog byte for byte into a directory, as a
    /// replica (in place of the replica's IO thread).
    Mirror(MirrorArgs),
    /// Apply a mirrored binlog or relay logs to a target server, in parallel
    /// by database (the replica's SQL thread, replaced).
    Apply(ApplyArgs),
    /// Show what a target has applied: per-shard watermarks, low-watermark,
    /// and what is left in the source.
    Status(StatusArgs),
    /// Measure apply throughput end to end on throwaway servers: parapply
    /// against MariaDB's own replication, on durable replicas.
    Bench(BenchArgs),
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
    #[arg(long, default_value = "parapply")]
    pub progress_schema: String,
}

/// How shards are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShardByArg {
    /// One shard per database (after --shard-map merges).
    Database,
    /// One shard per table.
    Table,
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
    /// Stop after the group with this GTID, or the group ending at or after
    /// this FILE:POS.
    #[arg(long)]
    pub until: Option<String>,
    /// Where to start on a target without progress (FILE:POS or GTID).
    #[arg(long, value_parser = parse_start)]
    pub from: Option<StartAt>,
    /// Worker threads, each with its own connection to the target.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub workers: u16,
    /// Up to this many consecutive groups of one shard are committed as one
    /// target transaction when they are waiting (1 turns batching off).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub batch: u16,
    /// Bytes of events per batched transaction at most (K, M, G suffixes).
    #[arg(long, default_value = "4M", value_parser = parse_bytes)]
    pub batch_bytes: u64,
    /// Bytes of groups read but not yet applied at most (K, M, G suffixes).
    #[arg(long, default_value = "64M", value_parser = parse_bytes)]
    pub max_inflight_bytes: u64,
    /// Merge databases into shards: `name=db1,db2;other=db3` (for
    /// cross-database foreign keys).
    #[arg(long)]
    pub shard_map: Option<String>,
    /// Shard by database (default) or by table.
    #[arg(long, value_enum, default_value = "database")]
    pub shard_by: ShardByArg,
    /// Seconds to keep reconnecting to a target that went away.
    #[arg(long, default_value_t = 300)]
    pub reconnect_timeout: u64,
    /// Print the final report as JSON.
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
    /// Shard map the progress was written with (as given to apply).
    #[arg(long)]
    pub shard_map: Option<String>,
    /// Shard by database (default) or by table.
    #[arg(long, value_enum, default_value = "database")]
    pub shard_by: ShardByArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses `123`, `64K`, `4M`, `1G` (powers of 1024; a trailing `iB`/`B` is allowed).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
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
        .ok_or_else(|| format!("`{s}` is not a size (e.g. 65536, 64K, 4M, 1G)"))
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
    pub from: Option<String>,
    /// Start an empty mirror with the file where the primary would start
    /// sending to a replica at this GTID state (domain-server-seq[,…]).
    #[arg(long)]
    pub from_gtid: Option<String>,
    /// fsync the mirror after every event (`every`), every N events, or
    /// `never`.
    #[arg(long, default_value = "1000")]
    pub sync: String,
    /// Heartbeat period asked of the primary, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub heartbeat: f64,
    /// Seconds between progress log lines.
    #[arg(long, default_value_t = 10.0)]
    pub progress_every: f64,
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
    #[arg(long, value_parser = parse_start)]
    pub from: Option<StartAt>,
    /// Keep waiting for new events at the end (Ctrl-C to stop).
    #[arg(long)]
    pub follow: bool,
}

fn parse_start(s: &str) -> Result<StartAt, String> {
    s.parse()
}

/// `parapply bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Small row transactions generated on the primary (each its own GTID).
    #[arg(long, default_value_t = 20000, value_parser = clap::value_parser!(u64).range(1..))]
    pub transactions: u64,
    /// Databases (one table each) the transactions are spread over.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub databases: u32,
    /// Runs of each configuration (each on a fresh replica); the median is
    /// reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Configurations, comma-separated: native-single,
    /// native-{optimistic,conservative,aggressive}-N (N threads),
    /// parapply-N (N workers, default batching), parapply-N-batch-K.
    #[arg(long, value_delimiter = ',', default_value = parapply::bench::DEFAULT_CONFIGS)]
    pub configs: Vec<parapply::bench::BenchConfig>,
    /// Client connections generating the workload on the primary.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub clients: u16,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}
