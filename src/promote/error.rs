//! Why a promotion stopped or refused. Every refusal names the replicas,
//! mirrors, GTIDs or positions concerned and says what to do.

use crate::apply::engine::ApplyFailure;
use crate::binlog::ReadError;
use crate::replica::ReplicaError;

use super::plan::PlanError;

/// A promotion's error.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// A replica could not be read or written.
    #[error("replica {name}: {error}")]
    Replica {
        /// The replica.
        name: String,
        /// What failed.
        error: Box<ReplicaError>,
    },
    /// A mirror could not be read.
    #[error("replica {name}: mirror: {error}")]
    Mirror {
        /// The replica.
        name: String,
        /// What failed.
        error: Box<ReadError>,
    },
    /// An I/O error outside a mirror's events.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        error: std::io::Error,
    },
    /// Appliers still running after the freeze timeout.
    #[error(
        "refused: the applier of {} did not stop within {seconds} s of being asked to (it still \
         holds its lock); stop it, then run promote again (the other appliers stay frozen)",
        names.join(", ")
    )]
    NotFrozen {
        /// The replicas.
        names: Vec<String>,
        /// The timeout.
        seconds: u64,
    },
    /// Two mirrors are not prefixes of one stream.
    #[error(
        "refused: the mirror of {a} and the mirror of {b} diverge at {at}: they are not prefixes \
         of one stream (the old primary lost part of its binlog and wrote another history?); \
         nothing was changed, the appliers stay frozen. Remove the diverged mirror's replica \
         from --replica (rebuild it afterwards), or repair the mirror"
    )]
    Diverged {
        /// One replica.
        a: String,
        /// The other.
        b: String,
        /// The first differing file:pos.
        at: String,
    },
    /// Transactions in a replica's binlog that no mirror holds.
    #[error(
        "refused: errant transactions (GTIDs in a replica's binary log that no mirror holds, \
         e.g. written on the replica by hand): {}; nothing was changed, the appliers stay frozen. \
         Inspect them, then undo them or pass --allow-errant",
        list.iter().map(|(n, g)| format!("{n}: {}", g.join(","))).collect::<Vec<_>>().join("; ")
    )]
    Errant {
        /// Per replica, its errant GTIDs.
        list: Vec<(String, Vec<String>)>,
    },
    /// No plan.
    #[error("refused: {0}")]
    Plan(#[from] PlanError),
    /// A catch-up failed.
    #[error("catch-up of {name} failed (run promote again once fixed: it resumes): {error}")]
    CatchUp {
        /// The replica.
        name: String,
        /// The engine's failure.
        error: Box<ApplyFailure>,
    },
    /// A replica's state, the source's scan or a catch-up (the catchup
    /// module's work) failed.
    #[error("replica {name}: {error}")]
    Catchup {
        /// The replica (or the source's).
        name: String,
        /// What failed.
        error: Box<crate::catchup::CatchupError>,
    },
    /// After catch-up a replica still lacks groups.
    #[error("{name} still lacks {groups} groups of the source after its catch-up")]
    NotConverged {
        /// The replica.
        name: String,
        /// How many.
        groups: u64,
    },
    /// The pre-hook failed: nothing was changed.
    #[error("the pre-hook `{cmd}` failed ({status}): nothing was changed")]
    PreHook {
        /// The command.
        cmd: String,
        /// Its exit status.
        status: String,
    },
    /// A server other than the persisted candidate is writable.
    #[error(
        "refused: {names:?} accept writes (read_only=OFF): a promotion needs every replica \
         read-only, so that at no moment two servers are writable"
    )]
    Writable {
        /// The servers.
        names: Vec<String>,
    },
    /// Another promotion holds the replicas.
    #[error(
        "refused: replica {name} is frozen by another promotion `{other}`: finish it (run it \
         again) or clear it with --unfreeze"
    )]
    OtherPromotion {
        /// The replica.
        name: String,
        /// Its id.
        other: String,
    },
    /// The switchover's old primary.
    #[error("switchover: {0}")]
    Switchover(String),
    /// Something promote does not do (yet).
    #[error("{0}")]
    Unsupported(String),
}
