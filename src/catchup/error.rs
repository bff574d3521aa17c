//! What can go wrong computing or applying a catch-up set. Each error
//! names the file:pos, GTID or server it concerns.

use crate::apply::engine::ApplyFailure;
use crate::binlog::ReadError;
use crate::position::{BinlogPos, MariaGtid};
use crate::replica::ReplicaError;
use crate::wire::WireError;

/// `start` as text (`None`: the mirror's beginning).
fn or_beginning(p: &Option<BinlogPos>) -> String {
    p.as_ref()
        .map_or_else(|| "the mirror's beginning".into(), ToString::to_string)
}

/// An error of [`super`].
#[derive(Debug, thiserror::Error)]
pub enum CatchupError {
    /// Reading the mirror failed.
    #[error("reading the mirror: {0}")]
    Read(#[from] ReadError),
    /// The mirror directory has no file, or cannot be listed.
    #[error("{path}: {what}")]
    Mirror {
        /// The mirror's directory or index.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// The scan must start in a file the mirror does not hold (purged, or
    /// a mirror that started later).
    #[error(
        "the mirror has no file {file} (needed from {start}); it holds {first} to {last}: use a \
         mirror that reaches back to {file}"
    )]
    FileMissing {
        /// The file needed.
        file: String,
        /// Where the scan had to start.
        start: BinlogPos,
        /// The mirror's first file.
        first: String,
        /// Its last file.
        last: String,
    },
    /// A group without a MariaDB GTID (the engine refuses them too).
    #[error("{pos}: a transaction group without a MariaDB GTID; catch-up needs MariaDB GTIDs")]
    NoGtid {
        /// Where it starts.
        pos: BinlogPos,
    },
    /// A file that is not the mirror's last ends inside a group.
    #[error("{file}: ends inside the group {group} although a later file follows it")]
    CutGroup {
        /// The file.
        file: String,
        /// The open group.
        group: String,
    },
    /// A scan starts past a state's applied prefix.
    #[error(
        "the scan starts at {} but a replica's applied prefix ends at {}: groups it lacks may lie \
         before; scan from there",
        or_beginning(scan_start),
        or_beginning(applied_to)
    )]
    ScanTooLate {
        /// Where the scan starts.
        scan_start: Option<BinlogPos>,
        /// Where the replica's applied prefix ends.
        applied_to: Option<BinlogPos>,
    },
    /// A GTID of a replica's `gtid_slave_pos` is not in the mirror.
    #[error(
        "{addr}: gtid_slave_pos names {gtid}, which the mirror does not hold ({why}); the \
         replica's state cannot be placed in the mirror"
    )]
    NotInMirror {
        /// The replica.
        addr: String,
        /// The GTID.
        gtid: MariaGtid,
        /// Before its first file, or past its end.
        why: &'static str,
    },
    /// A replica's `gtid_slave_pos` lies past its progress tables and no
    /// mirror was given to place it.
    #[error(
        "{addr}: its gtid_slave_pos {gtids} lies past parapply's progress (the server's own SQL \
         thread applied it): a mirror is needed to place it (--mirror)"
    )]
    NeedsMirror {
        /// The replica.
        addr: String,
        /// The GTIDs to place.
        gtids: String,
    },
    /// The two states were written under different shard maps, or under
    /// another one than given.
    #[error(
        "{addr}: its watermarks were written under the shard map `{theirs}`, not `{ours}`: give \
         the same --shard-map/--shard-by as its applier"
    )]
    ShardMap {
        /// The replica.
        addr: String,
        /// Its map.
        theirs: String,
        /// The map given.
        ours: String,
    },
    /// The server's own SQL thread is running on the replica to apply to.
    #[error(
        "{addr}: the server's own replication SQL thread is running; stop it (STOP SLAVE) \
         before applying a catch-up to it"
    )]
    SqlThreadRunning {
        /// The replica.
        addr: String,
    },
    /// A replica could not be read or prepared.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// The catch-up run failed (what it applied is in the failure's report).
    #[error("applying the catch-up set: {0}")]
    Apply(#[from] Box<ApplyFailure>),
    /// After the run, the target does not hold what the goal holds.
    #[error(
        "{addr}: after the catch-up the target still lacks groups of the goal in {shards}; \
         nothing was lost, run it again"
    )]
    NotReached {
        /// The target.
        addr: String,
        /// The shards where the goal is still ahead.
        shards: String,
    },
    /// A mirror server could not be read.
    #[error("mirror server {addr}: {what}")]
    MirrorServer {
        /// `host:port`.
        addr: String,
        /// What failed.
        what: String,
    },
    /// A mirror server's answer or connection failed.
    #[error("mirror server {addr}: {error}")]
    MirrorWire {
        /// `host:port`.
        addr: String,
        /// The client's error.
        error: Box<WireError>,
    },
    /// Copying from a mirror server failed.
    #[error("copying from mirror server {addr}: {error}")]
    MirrorCopy {
        /// `host:port`.
        addr: String,
        /// The mirror's error.
        error: Box<crate::mirror::MirrorError>,
    },
    /// A local I/O error (a temporary directory).
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        error: std::io::Error,
    },
}
