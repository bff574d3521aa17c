//! The sandbox's error type.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Result of sandbox operations.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// Everything that can go wrong while running a throwaway server.
///
/// Each variant says what failed and where: the port and data directory of
/// the server and, when the server itself failed, the last lines of its error
/// log. `Debug` prints the same text as `Display`, so a test that unwraps a
/// sandbox result shows a readable message rather than a struct dump.
#[derive(thiserror::Error)]
pub enum SandboxError {
    /// A MariaDB program is not installed on this machine.
    #[error(
        "`{program}` not found (searched $PATH, {searched}); install the MariaDB server: \
         `apt-get install mariadb-server` (Debian/Ubuntu), then run again"
    )]
    MissingProgram {
        /// The program looked for (`mariadbd`, `mariadb-install-db`).
        program: &'static str,
        /// The directories searched besides `$PATH`.
        searched: String,
    },

    /// A file-system or process operation failed.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// What was being done (`create directory`, `spawn`, …).
        action: &'static str,
        /// The file, directory or program concerned.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },

    /// `mariadb-install-db` failed while creating the system tables.
    #[error("mariadb-install-db failed ({status}) for datadir {}; its output:\n{output}", datadir.display())]
    InstallDb {
        /// The data directory being initialised.
        datadir: PathBuf,
        /// How the program exited.
        status: String,
        /// Its stdout and stderr.
        output: String,
    },

    /// `mariadbd` exited before it accepted connections.
    #[error(
        "mariadbd on port {port} (datadir {}) exited during startup ({status}); \
         tail of {}:\n{log_tail}",
        datadir.display(), error_log.display()
    )]
    Exited {
        /// The port the server was told to listen on.
        port: u16,
        /// Its data directory.
        datadir: PathBuf,
        /// How the process exited.
        status: String,
        /// Its error log.
        error_log: PathBuf,
        /// The last lines the server wrote to it during this start.
        log_tail: String,
    },

    /// `mariadbd` kept running but did not accept connections in time.
    #[error(
        "mariadbd on port {port} (datadir {}) did not accept connections within {timeout:?} \
         (last attempt: {last_error}); it was killed; tail of {}:\n{log_tail}",
        datadir.display(), error_log.display()
    )]
    StartTimeout {
        /// The port the server was told to listen on.
        port: u16,
        /// Its data directory.
        datadir: PathBuf,
        /// How long we waited.
        timeout: Duration,
        /// The last connection error.
        last_error: String,
        /// Its error log.
        error_log: PathBuf,
        /// The last lines of the error log.
        log_tail: String,
    },

    /// A graceful shutdown did not work; the server is gone all the same.
    #[error(
        "mariadbd on port {port} (datadir {}) did not shut down cleanly: {reason}; \
         tail of {}:\n{log_tail}",
        datadir.display(), error_log.display()
    )]
    StopFailed {
        /// The server's port.
        port: u16,
        /// Its data directory.
        datadir: PathBuf,
        /// What happened instead.
        reason: String,
        /// Its error log.
        error_log: PathBuf,
        /// The last lines of the error log.
        log_tail: String,
    },

    /// The operation needs a running server, but it was stopped or killed.
    #[error("mariadbd on port {port} (datadir {}) is not running; call restart() first", datadir.display())]
    NotRunning {
        /// The server's port.
        port: u16,
        /// Its data directory.
        datadir: PathBuf,
    },

    /// Connecting to a running server failed.
    #[error("cannot connect to mariadbd on port {port}: {error}")]
    Connect {
        /// The server's port.
        port: u16,
        /// The client library's error.
        error: mysql::Error,
    },

    /// A statement failed.
    #[error("SQL failed on mariadbd port {port}: {error}\n  statement: {sql}")]
    Sql {
        /// The server's port.
        port: u16,
        /// The statement, shortened if long.
        sql: String,
        /// The client library's error.
        error: mysql::Error,
    },

    /// Setting up or waiting for MariaDB's own replication failed.
    #[error("replication from port {primary_port} to port {replica_port}: {detail}")]
    Replication {
        /// The primary's port.
        primary_port: u16,
        /// The replica's port.
        replica_port: u16,
        /// What went wrong, with the replica's `SHOW SLAVE STATUS` where useful.
        detail: String,
    },

    /// The server's binary log is off, or did not reach the state waited for.
    #[error("binary log of mariadbd on port {port}: {detail}")]
    Binlog {
        /// The server's port.
        port: u16,
        /// What was expected and not found.
        detail: String,
    },
}

impl fmt::Debug for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl SandboxError {
    pub(super) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        error: std::io::Error,
    ) -> Self {
        SandboxError::Io {
            action,
            path: path.into(),
            error,
        }
    }

    /// The SQL error of a failed statement, with the statement shortened so
    /// that a multi-kilobyte load does not flood the message.
    pub(super) fn sql(port: u16, sql: &str, error: mysql::Error) -> Self {
        const MAX: usize = 300;
        let sql = match sql.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}… ({} bytes)", &sql[..cut], sql.len()),
            None => sql.to_owned(),
        };
        SandboxError::Sql { port, sql, error }
    }
}
