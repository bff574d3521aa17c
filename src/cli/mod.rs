//! The binary's half of parapply: the command line and everything that
//! belongs to a process rather than to the library: parsing ([`args`]),
//! one function per command ([`commands`]), standard output ([`output`]),
//! signals ([`signals`]) and passwords ([`secrets`]). The library never
//! imports any of it; it takes option structs whose constructors hold every
//! default, and the clap defaults here read them.

pub mod args;
pub mod catchup;
mod commands;
mod output;
mod secrets;
mod signals;

use std::io::Write;
use std::process::ExitCode;

use args::{Cli, Command};
use output::Output;

/// Runs the command; prints an error with its whole cause chain (exit code
/// 1). A command that stops because its standard output was closed (`| head`)
/// ends quietly with exit code 0; any other error is still reported.
pub fn run(cli: Cli) -> ExitCode {
    let mut out = Output::stdout();
    let result = match cli.command {
        Command::Inspect(a) => commands::inspect(a, &mut out),
        Command::Mirror(a) => commands::mirror(a),
        Command::Serve(a) => commands::serve(a),
        Command::Apply(a) => commands::apply(a, &mut out),
        Command::Status(a) => commands::status(a, &mut out),
        Command::Catchup(a) => catchup::run(a, &mut out),
        Command::Promote(a) => commands::promote(a, &mut out),
        #[cfg(feature = "bench")]
        Command::Bench(a) => commands::bench(a, &mut out),
    };
    // What the command wrote goes out before its error, if any.
    let flushed = out.flush();
    let result = result.and_then(|()| Ok(flushed?));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parapply: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
