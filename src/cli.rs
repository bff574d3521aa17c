//! The command line: one clap-derive struct per command. The `///` line of
//! each field is its `--help`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::position::StartAt;

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
