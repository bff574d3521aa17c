//! Connection options with their password: from a file or an environment
//! variable, never from the command line (it would show in `ps`).

use std::path::Path;

use anyhow::Context;
use parapply::wire::{ConnectOptions, Secret};

/// Environment variable holding the target's password.
pub const TARGET_PASSWORD_ENV: &str = "PARAPPLY_TARGET_PASSWORD";
/// Environment variable holding the primary's replication user's password.
pub const PRIMARY_PASSWORD_ENV: &str = "PARAPPLY_PRIMARY_PASSWORD";

/// The options of `url` (given as `--{flag}`), with the password read from
/// `file` if given, else from the environment variable `env` if set.
pub fn connect_options(
    flag: &str,
    url: &str,
    file: Option<&Path>,
    env: &str,
) -> anyhow::Result<ConnectOptions> {
    let mut o = ConnectOptions::from_url(url).with_context(|| format!("--{flag}"))?;
    o.password = match file {
        Some(f) => Some(
            Secret::from_file(f)
                .with_context(|| format!("reading the password file {}", f.display()))?,
        ),
        None => std::env::var(env).ok().map(Secret::new),
    };
    Ok(o)
}
