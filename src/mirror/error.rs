//! What can go wrong mirroring, split by what the mirror loop does: a
//! [`MirrorError::is_transient`] error is retried with a new connection (with
//! backoff); any other stops the mirror for an operator. Each error names the
//! mirror file and position it concerns where there is one.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::binlog::checksum::ChecksumError;
use crate::binlog::{EventType, ReadError};
use crate::position::BinlogPos;
use crate::wire::WireError;

/// MariaDB's `ER_SLAVE_SAME_ID`: another replica connected with our server id.
pub const ER_SLAVE_SAME_ID: u16 = 4052;

/// An error of `parapply mirror`.
#[derive(Debug, Error)]
pub enum MirrorError {
    /// Talking to the primary failed; `during` says what was being done.
    #[error("primary {during}: {source}")]
    Wire {
        /// `connecting`, `setting up the dump`, `reading the binlog stream at FILE:POS`, ….
        during: String,
        /// The cause.
        #[source]
        source: WireError,
    },
    /// The primary refused to send the binlog (error 1236: purged file,
    /// impossible position, GTID not in its binlog, …).
    #[error("the primary cannot send its binlog from {from}: error {code}: {message}")]
    PrimaryRefused {
        /// Where the dump was asked to start.
        from: String,
        /// The server error number.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The replication user lacks `REPLICATION SLAVE`.
    #[error("the primary refused the replication user: {message} (error {code}); grant it REPLICATION SLAVE")]
    Privilege {
        /// The server error number.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// Another replica uses the same `--server-id`; the primary dropped us.
    #[error(
        "another replica connected to the primary with server id {server_id}, and the primary \
         dropped this mirror's connection (error 4052: {message}); give every replica and \
         mirror its own --server-id"
    )]
    ServerIdClash {
        /// Our server id.
        server_id: u32,
        /// The server's message.
        message: String,
    },
    /// The stream does not continue the mirror: a gap, an overlap, a reorder
    /// or a malformed event. Nothing after `at` was written.
    #[error("{at}: {what}")]
    Stream {
        /// Mirror file and offset where the event would go.
        at: BinlogPos,
        /// What is wrong.
        what: String,
    },
    /// An event's CRC32 does not match its bytes (or the event is too
    /// short to hold one). Nothing of it was written.
    #[error("{at}: {event_type} event from the primary: {cause}")]
    Checksum {
        /// Mirror file and offset where the event would go.
        at: BinlogPos,
        /// The event's type.
        event_type: EventType,
        /// What does not match.
        #[source]
        cause: ChecksumError,
    },
    /// Reading or writing the mirror directory failed.
    #[error("{}: cannot {op}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The cause.
        error: io::Error,
    },
    /// The existing mirror cannot be read back.
    #[error("cannot recover the mirror: {0}")]
    Recover(#[from] ReadError),
    /// The options contradict the mirror directory or each other.
    #[error("{0}")]
    Usage(String),
}

impl MirrorError {
    /// Worth a new connection after a pause: the connection dropped, timed
    /// out, or the primary is restarting.
    pub fn is_transient(&self) -> bool {
        match self {
            MirrorError::Wire { source, .. } => source.is_connection_lost(),
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, error: io::Error) -> Self {
        MirrorError::Io {
            path: path.into(),
            op,
            error,
        }
    }
}
