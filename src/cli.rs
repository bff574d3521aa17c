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
