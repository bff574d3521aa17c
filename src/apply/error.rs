//! Errors of the apply engine, split by what the operator does about them.
//!
//! Every error about a group names it the way an operator looks it up:
//! `apply failed at 0-1-4711 (mariadb-bin.000003:1893) in db7: server error
//! 1062 (23000) …: Duplicate entry …`.

use crate::binlog::ReadError;
use crate::wire::WireError;

use super::replay::ReplayError;

/// Why the engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The source cannot be read (corrupt, truncated, missing).
    #[error("reading the source: {0}")]
    Read(Box<ReadError>),
    /// A check before starting failed: the target or the source is not
    /// usable as configured.
    #[error("preflight: {0}")]
    Preflight(String),
    /// The target cannot be reached (after retrying for the reconnect time).
    #[error("target {}{error}", if error.names_addr() { String::new() } else { format!("{addr}: ") })]
    Target {
        /// `host:port`.
        addr: String,
        /// The last error.
        error: Box<WireError>,
    },
    /// A group failed on the target with an error that retrying does not
    /// cure; the engine stopped at a consistent point.
    #[error("apply failed at {group} in {databases}: {error}")]
    Group {
        /// `GTID (file:pos)`.
        group: String,
        /// The databases it touches (or "unknown databases").
        databases: String,
        /// The server's error.
        error: Box<WireError>,
    },
    /// A group cannot be turned into statements.
    #[error("cannot replay {group}: {error}")]
    Replay {
        /// `GTID (file:pos)`.
        group: String,
        /// Why.
        error: Box<ReplayError>,
    },
    /// A group has no MariaDB GTID (MySQL or pre-GTID binlogs).
    #[error("{group}: parapply applies MariaDB binlogs with GTIDs only")]
    NoGtid {
        /// `file:pos`.
        group: String,
    },
    /// Stopped by a second signal before the work could drain.
    #[error("aborted")]
    Aborted,
    /// A worker or the reader thread died unexpectedly.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<ReadError> for ApplyError {
    fn from(e: ReadError) -> Self {
        ApplyError::Read(Box::new(e))
    }
}
