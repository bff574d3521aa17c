//! Connection options with their password: from a file or an environment
//! variable, never from the command line (it would show in `ps`).

use std::path::Path;

use anyhow::Context;
use parapply::wire::{ClientTls, ConnectOptions, Secret};

/// Environment variable holding the target's password.
pub const TARGET_PASSWORD_ENV: &str = "PARAPPLY_TARGET_PASSWORD";
/// Environment variable holding the binlog server's password.
pub const SERVE_PASSWORD_ENV: &str = "PARAPPLY_SERVE_PASSWORD";
/// Environment variable holding the password native replicas replicate
/// from a promoted primary with.
pub const REPL_PASSWORD_ENV: &str = "PARAPPLY_REPL_PASSWORD";
/// Environment variable holding the primary's replication user's password.
pub const PRIMARY_PASSWORD_ENV: &str = "PARAPPLY_PRIMARY_PASSWORD";

/// The options of `url` (given as `--{flag}`), with the password read from
/// `file` if given, else from the environment variable `env` if set, and
/// the run's TLS settings.
pub fn connect_options(
    flag: &str,
    url: &str,
    file: Option<&Path>,
    env: &str,
    tls: &ClientTls,
) -> anyhow::Result<ConnectOptions> {
    let mut o = ConnectOptions::from_url(url).with_context(|| {
        format!("--{flag} (its password goes in {env} or --{flag}-password-file)")
    })?;
    o.password = match file {
        Some(f) => Some(
            Secret::from_file(f)
                .with_context(|| format!("reading the password file {}", f.display()))?,
        ),
        None => std::env::var(env).ok().map(Secret::new),
    };
    o.tls = tls.clone();
    Ok(o)
}

/// The binlog server's password: from `file` if given, else from
/// [`SERVE_PASSWORD_ENV`]; required (no anonymous access).
pub fn serve_password(file: Option<&Path>) -> anyhow::Result<Secret> {
    let s = match file {
        Some(f) => Secret::from_file(f)
            .with_context(|| format!("reading the password file {}", f.display()))?,
        None => match std::env::var(SERVE_PASSWORD_ENV) {
            Ok(v) => Secret::new(v),
            Err(_) => anyhow::bail!(
                "the binlog server needs a password for its clients: set \
                 {SERVE_PASSWORD_ENV} or use --serve-password-file (there is no anonymous access)"
            ),
        },
    };
    if s.expose().is_empty() {
        anyhow::bail!("the binlog server's password is empty (there is no anonymous access)");
    }
    Ok(s)
}
