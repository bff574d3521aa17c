//! The `parapply` binary: parses the command line and hands over to the
//! library. Errors are printed with their whole cause chain; exit code 1.

use std::io::{self, BufWriter};
use std::process::ExitCode;

use clap::Parser;
use parapply::binlog::Source;
use parapply::cli::{Cli, Command};
use parapply::inspect::{self, InspectOptions};
use parapply::position::StartAt;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parapply: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Apply(a) => parapply::commands::apply(a),
        Command::Status(a) => parapply::commands::status(a),
        Command::Bench(a) => Ok(parapply::bench::run_cli(a)?),
        Command::Mirror(a) => Ok(parapply::mirror::run_cli(a)?),
        Command::Inspect(a) => {
            let source = Source::from_paths(&a.paths)?;
            let opts = InspectOptions {
                groups: a.groups,
                json: a.json,
                start: a.from.unwrap_or(StartAt::Beginning),
                follow: a.follow,
            };
            let stdout = io::stdout();
            let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
            match inspect::run(source, &opts, &mut out) {
                Err(inspect::InspectError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                    Ok(())
                }
                r => Ok(r?),
            }
        }
    }
}
