//! The `parapply` binary: the command line ([`cli`]) over the library.
//! Errors are printed with their whole cause chain; exit code 1.

mod cli;

use std::io;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::args::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log(&cli))),
        )
        .init();
    cli::run(cli)
}

/// The log level without `RUST_LOG`: `info`; the demo tells its own story,
/// so its parts (mirrors losing the killed primary, …) log errors only.
fn default_log(cli: &cli::args::Cli) -> &'static str {
    #[cfg(feature = "demo")]
    if matches!(cli.command, cli::args::Command::Demo(_)) {
        return "error";
    }
    let _ = cli;
    "info"
}
