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
use parapply::wire::ClientTls;

/// Runs the command; prints an error with its whole cause chain (exit code
/// 1; `wait` has codes of its own for a timeout and an unknown GTID). A command that stops because its standard output was closed (`| head`)
/// ends quietly with exit code 0; any other error is still reported.
pub fn run(cli: Cli) -> ExitCode {
    let mut out = Output::stdout();
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    // The TLS files are read once, for every connection of the run.
    let tls = match ClientTls::new(&cli.tls.options()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("parapply: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Inspect(a) => done(commands::inspect(a, &mut out)),
        Command::Mirror(a) => done(commands::mirror(a, &tls)),
        Command::Serve(a) => done(commands::serve(a)),
        Command::Apply(a) => done(commands::apply(a, &tls, &mut out)),
        Command::Status(a) => done(commands::status(a, &tls, &mut out)),
        Command::Catchup(a) => done(catchup::run(a, &tls, &mut out)),
        Command::Promote(a) => done(commands::promote(a, &tls, &mut out)),
        Command::Wait(a) => commands::wait(a, &tls, &mut out),
        #[cfg(feature = "bench")]
        Command::Bench(a) => done(commands::bench(a, &mut out)),
        #[cfg(feature = "demo")]
        Command::Demo(a) => done(commands::demo(a, &mut out)),
    };
    // What the command wrote goes out before its error, if any.
    let flushed = out.flush();
    let result = result.and_then(|code| {
        flushed?;
        Ok(code)
    });
    match result {
        Ok(code) => code,
        Err(e) if output::is_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parapply: error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-separated, each cause once: many
/// errors print their cause in their own message already (`primary
/// connecting: <the login error>`), and a cause already said is not
/// repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("primary connecting: {source}")]
    struct Outer {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let e = anyhow::Error::new(Outer {
            source: std::io::Error::other("cannot log in as `repl` (error 1045)"),
        });
        assert_eq!(
            error_text(&e),
            "primary connecting: cannot log in as `repl` (error 1045)"
        );
        let e =
            anyhow::Error::new(std::io::Error::other("disk full")).context("writing bin.000001");
        assert_eq!(error_text(&e), "writing bin.000001: disk full");
    }
}
