//! What can go wrong with one replica, split by what the caller does:
//! [`ReplicaError::is_transient`] errors are worth a retry later (the
//! server is unreachable); every other one needs an operator (a setting, a
//! privilege, another applier, unreadable progress).

use crate::position::{BinlogPos, MariaGtid};
use crate::progress::StateParseError;
use crate::wire::WireError;

/// `addr: ` unless the wire error already names the address.
fn at(addr: &str, error: &WireError) -> String {
    if error.names_addr() {
        String::new()
    } else {
        format!("{addr}: ")
    }
}

/// A hint for the privilege errors of replaying binlog events.
fn replay_hint(error: &WireError) -> &'static str {
    match error.code() {
        Some(1227 | 1142 | 1044) => {
            " (grant it: GRANT BINLOG REPLAY, SUPER ON *.* TO the applier's user; and the table \
             rights of the replicated databases)"
        }
        _ => "",
    }
}

/// `the default connection, connection 'b'`.
fn connection_names(names: &[String]) -> String {
    names
        .iter()
        .map(|n| {
            if n.is_empty() {
                "the default connection".to_string()
            } else {
                format!("connection '{n}'")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statement that stops the SQL threads of `names`.
fn stop_statement(names: &[String]) -> String {
    match names {
        [one] if one.is_empty() => "STOP SLAVE SQL_THREAD".to_string(),
        [one] => format!("STOP SLAVE '{}' SQL_THREAD", one.replace('\'', "''")),
        _ => "STOP ALL SLAVES".to_string(),
    }
}

/// A check before applying failed: the target is not usable as
/// configured. An operator must act; the message says how.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// `log_bin` is off.
    #[error(
        "{addr}: the target has log_bin off; parapply needs the target's binary log (for \
         exactly-once DDL after a crash, and for promoting this replica): start it with \
         --log-bin and --log-slave-updates"
    )]
    LogBinOff {
        /// The target.
        addr: String,
    },
    /// The server's own replication applies events (an SQL thread runs):
    /// it and parapply would apply the same transactions.
    #[error(
        "{addr}: the server replicates by itself (SQL thread running for {}): it would apply \
         the same transactions as parapply; stop it first ({}) and keep it stopped (e.g. \
         skip_slave_start=ON)",
        connection_names(names),
        stop_statement(names)
    )]
    ServerReplicates {
        /// The target.
        addr: String,
        /// The replication connections whose SQL thread runs (`''` is the
        /// default one).
        names: Vec<String>,
    },
    /// `SHOW ALL SLAVES STATUS` is refused: whether the server's own SQL
    /// thread runs cannot be checked.
    #[error(
        "{addr}: cannot read the server's replication status (SHOW ALL SLAVES STATUS), which \
         parapply checks so that the server's own SQL thread does not apply the same \
         transactions: {error} (grant it: GRANT SLAVE MONITOR ON *.* TO the applier's user)"
    )]
    ReplicationStatusRefused {
        /// The target.
        addr: String,
        /// The server's answer.
        error: Box<WireError>,
    },
    /// `gtid_strict_mode` is on while several workers commit out of order.
    #[error(
        "{addr}: gtid_strict_mode is on; parallel workers commit GTIDs of different databases \
         out of order, which strict mode refuses: SET GLOBAL gtid_strict_mode=0"
    )]
    GtidStrictMode {
        /// The target.
        addr: String,
    },
    /// The user may not replay binlog events (`BINLOG '…'`).
    #[error(
        "{addr}: replaying binlog events is refused: {error}{}",
        replay_hint(error)
    )]
    BinlogReplayRefused {
        /// The target.
        addr: String,
        /// The server's answer.
        error: Box<WireError>,
    },
    /// The user may not set `gtid_seq_no` (keeping the primary's GTIDs).
    #[error(
        "{addr}: setting gtid_seq_no is refused (needs SUPER or REPLICATION MASTER ADMIN): \
         {error}"
    )]
    GtidSeqNoRefused {
        /// The target.
        addr: String,
        /// The server's answer.
        error: Box<WireError>,
    },
    /// The progress tables cannot be created.
    #[error("{addr}: creating the progress tables in `{schema}`: {error}")]
    ProgressTables {
        /// The target.
        addr: String,
        /// The progress schema.
        schema: String,
        /// The server's answer.
        error: Box<WireError>,
    },
    /// Binary logging cannot be turned off for parapply's bookkeeping.
    #[error(
        "{addr}: turning off binary logging for parapply's bookkeeping is refused (needs SUPER \
         or BINLOG ADMIN): {error}"
    )]
    SqlLogBinRefused {
        /// The target.
        addr: String,
        /// The server's answer.
        error: Box<WireError>,
    },
    /// The progress was written under another shard map and is not drained.
    #[error(
        "the progress on {addr} was written with shard map `{old}`, not `{new}`, and the shards \
         are at different positions: run with the old map until drained (SIGINT), then change it"
    )]
    ShardMapChanged {
        /// The target.
        addr: String,
        /// The fingerprint the progress was written under.
        old: String,
        /// The fingerprint asked for.
        new: String,
    },
    /// A catch-up's goal state was written under another shard map than
    /// this run's: its watermarks name other shards.
    #[error(
        "{addr}: the catch-up goal was written with shard map `{goal}`, this run uses `{ours}`; \
         watermarks of different shard maps cannot be compared"
    )]
    GoalShardMap {
        /// The target.
        addr: String,
        /// The goal's fingerprint.
        goal: String,
        /// This run's.
        ours: String,
    },
    /// A start position was given for a target that has progress.
    #[error(
        "{addr}: the target already has progress (applied up to {applied_to}); drop --from, or \
         reset the progress schema `{schema}` to start elsewhere"
    )]
    FromWithProgress {
        /// The target.
        addr: String,
        /// Where its applied prefix ends.
        applied_to: BinlogPos,
        /// The progress schema.
        schema: String,
    },
    /// A promotion froze this target: no applier runs on it until the
    /// promotion re-points it (or, refused, is cleared by the operator).
    #[error(
        "{addr}: frozen by promotion `{by}`: no applier may run here until it is re-pointed; \
         run `parapply promote` again to finish the promotion, or, after a refused one, \
         `parapply promote --unfreeze` with the same replicas"
    )]
    Frozen {
        /// The target.
        addr: String,
        /// The promotion's id.
        by: String,
    },
    /// The source has neither the file the applied prefix ends in nor a
    /// low-watermark row to resume from by GTID.
    #[error(
        "{addr}: the progress tables say the applied prefix ends at {end}, but the source has no \
         file {} and no low-watermark row ends there to resume by GTID: progress tables from \
         another topology, or a source that lost that file", end.file
    )]
    NoResumePoint {
        /// The target.
        addr: String,
        /// Where the applied prefix ends.
        end: BinlogPos,
    },
    /// A GTID position to start after (a backup's, `gtid_slave_pos`) lies
    /// before the source's oldest file: the groups between are missing.
    #[error(
        "{addr}: {what} says {applied} is the last group applied, but the source's oldest file \
         {file} begins after {begins_after} (its Gtid_list): the groups of domain {} after \
         seq {} up to {} are missing; mirror from an older binlog of the primary (parapply \
         mirror --from-gtid {applied}), or restore a newer backup",
        applied.domain, applied.seq, begins_after.seq
    )]
    SourceTooNew {
        /// The target.
        addr: String,
        /// What named the position.
        what: String,
        /// The last GTID the target holds in the domain.
        applied: MariaGtid,
        /// The source's oldest file.
        file: String,
        /// The domain's GTID in that file's Gtid_list.
        begins_after: MariaGtid,
    },
    /// The progress tables name a group ending in a source file whose
    /// Gtid_list already holds it: they were written against another
    /// stream.
    #[error(
        "{addr}: the progress tables `{schema}` say {applied} ends at {end}, but the source's \
         file {} begins after {begins_after} (its Gtid_list): the progress tables come from \
         another topology (a backup of a replica of another primary?); apply from that \
         replica's source, or drop the schema `{schema}` to start from the backup's own \
         position", end.file
    )]
    ForeignProgress {
        /// The target.
        addr: String,
        /// The progress schema.
        schema: String,
        /// The low-watermark's GTID.
        applied: MariaGtid,
        /// Where the progress tables say it ends.
        end: BinlogPos,
        /// The domain's GTID in that file's Gtid_list.
        begins_after: MariaGtid,
    },
}

/// An error of a [`super::Replica`].
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The server cannot be reached (after retrying for the reconnect time),
    /// or refuses the login.
    #[error("target {}{error}", at(addr, error))]
    Connect {
        /// `host:port`.
        addr: String,
        /// The last error.
        error: Box<WireError>,
    },
    /// A statement failed.
    #[error("{addr}: {what}: {error}")]
    Query {
        /// `host:port`.
        addr: String,
        /// What was being done.
        what: &'static str,
        /// The server's answer.
        error: Box<WireError>,
    },
    /// A check before applying failed.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// Another applier holds the applier lock.
    #[error(
        "{addr}: another parapply apply is running against this target (connection {} holds \
         the lock `{lock}`); stop it first",
        holder.map_or_else(|| "?".to_string(), |h| h.to_string())
    )]
    Locked {
        /// `host:port`.
        addr: String,
        /// The lock's name.
        lock: String,
        /// The connection holding it, when the server says.
        holder: Option<u64>,
    },
    /// After a reconnect, another applier holds the lock.
    #[error(
        "{addr}: after reconnecting, the applier lock `{lock}` is held by another connection: \
         another parapply apply took over this target; stopping"
    )]
    LockLost {
        /// `host:port`.
        addr: String,
        /// The lock's name.
        lock: String,
    },
    /// The progress rows do not parse.
    #[error("{addr}: reading progress: {error}")]
    BadProgress {
        /// `host:port`.
        addr: String,
        /// Which row and column.
        error: StateParseError,
    },
    /// A GTID list variable does not parse.
    #[error("{addr}: @@{variable} `{value}`: {error}")]
    BadGtidList {
        /// `host:port`.
        addr: String,
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// Why.
        error: String,
    },
    /// Stopped by the caller (a signal) while waiting.
    #[error("stopped while waiting for the target")]
    Stopped,
}

impl ReplicaError {
    /// Worth retrying later: the server could not be reached or the
    /// connection was lost; nothing about the replica is wrong.
    pub fn is_transient(&self) -> bool {
        match self {
            ReplicaError::Connect { error, .. } | ReplicaError::Query { error, .. } => {
                error.is_connection_lost()
            }
            _ => false,
        }
    }
}
