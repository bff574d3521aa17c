//! Errors of the apply engine, split by what the caller does about them:
//!
//! * [`TransientError`]: nothing is wrong with the data or the setup; the
//!   same run started again later may succeed (the target was unreachable
//!   for the whole reconnect time; deadlocks outlasted the retries).
//! * [`DefiniteError`]: stop; an operator must act (a setting, a privilege,
//!   a diverged replica, a corrupt source, a bug).
//! * [`ApplyError::Aborted`]: the caller asked for it (a second signal).
//!
//! Every error about a group names it the way an operator looks it up, with
//! a [`GroupRef`]: `apply failed at 0-1-4711 (mariadb-bin.000003:1893) in
//! db7: server error 1062 (23000): Duplicate entry …`.

use std::fmt;

use crate::binlog::ReadError;
use crate::group::Group;
use crate::position::{BinlogPos, Gtid};
use crate::replica::{PreflightError, ReplicaError};
use crate::schedule::ScheduleError;
use crate::wire::WireError;

use super::replay::{Expect, ReplayError};

/// The server's error as an operator reads it: without the index of the
/// statement inside parapply's multi-statement round trip, an internal
/// detail (the group is named instead).
struct Plain<'a>(&'a WireError);

impl fmt::Display for Plain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            WireError::Server {
                code,
                state,
                message,
                ..
            } => write!(f, "server error {code} ({state}): {message}"),
            e => write!(f, "{e}"),
        }
    }
}

/// Which group: its GTID, where it starts in the primary's binlog, and the
/// databases it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    /// Its GTID (`None` in binlogs without GTIDs).
    pub gtid: Option<Gtid>,
    /// Its start in the primary's coordinates.
    pub start: BinlogPos,
    /// The databases it touches (empty: unknown).
    pub databases: Vec<String>,
}

impl GroupRef {
    /// The reference of `g` (boxed: errors stay small).
    pub fn of(g: &Group) -> Box<GroupRef> {
        Box::new(GroupRef {
            gtid: g.gtid.clone(),
            start: g.start(),
            databases: g.databases.clone(),
        })
    }
}

impl fmt::Display for GroupRef {
    /// `0-1-4711 (mariadb-bin.000003:1893) in db7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.gtid {
            Some(g) => write!(f, "{g} ({})", self.start)?,
            None => write!(f, "{}", self.start)?,
        }
        match self.databases.as_slice() {
            [] => f.write_str(" in unknown databases"),
            [one] => write!(f, " in {one}"),
            many => write!(f, " in databases {}", many.join(", ")),
        }
    }
}

/// Why the engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Worth running again later.
    #[error(transparent)]
    Transient(#[from] TransientError),
    /// An operator must act.
    #[error(transparent)]
    Definite(#[from] DefiniteError),
    /// Stopped by a second signal before the work could drain.
    #[error("aborted")]
    Aborted,
}

/// Nothing is wrong with the setup or the data; running again later may
/// succeed.
#[derive(Debug, thiserror::Error)]
pub enum TransientError {
    /// The target could not be reached for the whole reconnect time.
    #[error("target {}{error}", if error.names_addr() { String::new() } else { format!("{addr}: ") })]
    Unreachable {
        /// `host:port`.
        addr: String,
        /// The last error.
        error: Box<WireError>,
    },
    /// Deadlocks or lock-wait timeouts went on after every retry.
    #[error("apply failed at {group} after {retries} retries: {}", Plain(error))]
    RetriesExhausted {
        /// The group that kept failing.
        group: Box<GroupRef>,
        /// Retries made.
        retries: u32,
        /// The last error.
        error: Box<WireError>,
    },
}

/// Stop: an operator must act.
#[derive(Debug, thiserror::Error)]
pub enum DefiniteError {
    /// The source cannot be read (corrupt, truncated, missing).
    #[error("reading the source: {0}")]
    Read(Box<ReadError>),
    /// A check before starting failed: the target or the source is not
    /// usable as configured.
    #[error(transparent)]
    Preflight(PreflightError),
    /// The target refused something else (a login, the applier lock, a
    /// statement of parapply's bookkeeping).
    #[error(transparent)]
    Replica(Box<ReplicaError>),
    /// A worker cannot log in or talk to the target.
    #[error("target {}{error}", if error.names_addr() { String::new() } else { format!("{addr}: ") })]
    Target {
        /// `host:port`.
        addr: String,
        /// The error.
        error: Box<WireError>,
    },
    /// A group failed on the target with an error that retrying does not
    /// cure; the engine stopped at a consistent point.
    #[error("apply failed at {group}: {}", Plain(error))]
    Group {
        /// The group that failed.
        group: Box<GroupRef>,
        /// The server's error.
        error: Box<WireError>,
    },
    /// The `COMMIT` of a transaction failed with an error that retrying
    /// does not cure. It names the transaction's last group (whose GTID it
    /// carries); `batched` groups of its shard, ending there, were in it.
    #[error(
        "commit failed at {group} (a transaction of {batched} groups ending there): {}",
        Plain(error)
    )]
    Commit {
        /// The last group of the transaction.
        group: Box<GroupRef>,
        /// Groups in the transaction.
        batched: usize,
        /// The server's error.
        error: Box<WireError>,
    },
    /// A statement ended differently on the target than on the primary: an
    /// error where the primary logged success, success where it logged an
    /// error, or another error than the one it logged. The engine stopped
    /// at a consistent point.
    #[error(
        "apply failed at {group}: the primary logged {expected} for a statement, the target \
         answered {}",
        actual.as_deref().map(|e| Plain(e).to_string()).unwrap_or_else(|| "success".to_string())
    )]
    Diverged {
        /// The group whose statement diverged.
        group: Box<GroupRef>,
        /// How the primary logged the statement's end (its error code).
        expected: Expect,
        /// The target's error (its code: [`WireError::code`]); `None`:
        /// the statement succeeded.
        actual: Option<Box<WireError>>,
    },
    /// A group cannot be turned into statements.
    #[error("cannot replay {group}: {error}")]
    Replay {
        /// The group.
        group: Box<GroupRef>,
        /// Why.
        error: Box<ReplayError>,
    },
    /// The filters could not read a group's event.
    #[error("cannot filter {group}: {message}")]
    Filter {
        /// The group.
        group: Box<GroupRef>,
        /// The event and why.
        message: String,
    },
    /// A group has no MariaDB GTID (MySQL or pre-GTID binlogs).
    #[error("{group}: parapply applies MariaDB binlogs with GTIDs only")]
    NoGtid {
        /// The group.
        group: Box<GroupRef>,
    },
    /// The connection holding a prepared XA transaction did not go away,
    /// so its XA COMMIT could not be sent elsewhere.
    #[error(
        "{group}: connection {connection} holding the prepared XA transaction did not go away"
    )]
    XaNotDetached {
        /// The XA PREPARE group.
        group: Box<GroupRef>,
        /// The connection id.
        connection: u32,
    },
    /// A worker thread panicked (a bug): the group it held is named.
    #[error("worker {worker} panicked{}: {message}", group.as_ref().map(|g| format!(" applying {g}")).unwrap_or_default())]
    WorkerPanicked {
        /// The worker's index.
        worker: usize,
        /// The group it was given last and had not finished, if any.
        group: Option<Box<GroupRef>>,
        /// The panic's message.
        message: String,
    },
    /// A worker stopped without saying why (a bug).
    #[error("worker {worker} stopped without a report")]
    WorkerVanished {
        /// The worker's index.
        worker: usize,
    },
    /// The reader thread panicked (a bug).
    #[error("the reader panicked: {message}")]
    ReaderPanicked {
        /// The panic's message.
        message: String,
    },
    /// The scheduler refused a call (a bug in the engine).
    #[error("scheduler: {0}")]
    Scheduler(#[from] ScheduleError),
    /// A thread could not be started.
    #[error("starting the {what} thread: {error}")]
    Spawn {
        /// Which thread.
        what: &'static str,
        /// Why.
        error: std::io::Error,
    },
}

impl ApplyError {
    /// Whether running again later may succeed (see the module doc).
    pub fn is_transient(&self) -> bool {
        matches!(self, ApplyError::Transient(_))
    }

    /// The group the error is about, if it is about one.
    pub fn group(&self) -> Option<&GroupRef> {
        match self {
            ApplyError::Transient(TransientError::RetriesExhausted { group, .. })
            | ApplyError::Definite(
                DefiniteError::Group { group, .. }
                | DefiniteError::Diverged { group, .. }
                | DefiniteError::Commit { group, .. }
                | DefiniteError::Replay { group, .. }
                | DefiniteError::NoGtid { group }
                | DefiniteError::XaNotDetached { group, .. },
            ) => Some(group),
            ApplyError::Definite(DefiniteError::WorkerPanicked { group, .. }) => group.as_deref(),
            _ => None,
        }
    }

    /// A group's failure with `error` from the target.
    pub(crate) fn in_group(group: &Group, error: WireError) -> ApplyError {
        DefiniteError::Group {
            group: GroupRef::of(group),
            error: Box::new(error),
        }
        .into()
    }

    /// The target `addr` failed with `error`: unreachable (transient) when
    /// the connection was lost, otherwise definite.
    pub(crate) fn target(addr: String, error: WireError) -> ApplyError {
        let error = Box::new(error);
        if error.is_connection_lost() {
            TransientError::Unreachable { addr, error }.into()
        } else {
            DefiniteError::Target { addr, error }.into()
        }
    }
}

impl From<ReadError> for ApplyError {
    fn from(e: ReadError) -> Self {
        DefiniteError::Read(Box::new(e)).into()
    }
}

impl From<ScheduleError> for ApplyError {
    fn from(e: ScheduleError) -> Self {
        DefiniteError::Scheduler(e).into()
    }
}

impl From<PreflightError> for ApplyError {
    fn from(e: PreflightError) -> Self {
        DefiniteError::Preflight(e).into()
    }
}

impl From<ReplicaError> for ApplyError {
    fn from(e: ReplicaError) -> Self {
        match e {
            ReplicaError::Stopped => ApplyError::Aborted,
            ReplicaError::Preflight(p) => p.into(),
            ReplicaError::Connect { addr, error } if error.is_connection_lost() => {
                TransientError::Unreachable { addr, error }.into()
            }
            ReplicaError::Query { addr, error, .. } if error.is_connection_lost() => {
                TransientError::Unreachable { addr, error }.into()
            }
            e => DefiniteError::Replica(Box::new(e)).into(),
        }
    }
}
