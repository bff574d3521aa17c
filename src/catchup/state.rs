//! A replica's state, whoever applied to it: parapply (its progress
//! tables), the server's own SQL thread (its `gtid_slave_pos`, a prefix of
//! the stream per domain), or first one then the other (an applier drained
//! and handed over to the SQL thread, as `parapply apply` offers).

use std::path::Path;

use serde::Serialize;

use super::scan::locate;
use super::CatchupError;
use crate::position::{BinlogPos, MariaGtid};
use crate::progress::{AppliedSet, ReplicaState, Watermark};
use crate::replica::Replica;
use crate::schedule::ShardMap;

/// Who applied what a state holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applier {
    /// parapply alone: the progress tables.
    Parapply,
    /// The server's own SQL thread alone: `gtid_slave_pos`.
    Native,
    /// parapply, then the SQL thread past parapply's prefix: the tables,
    /// with the low-watermark moved up to `gtid_slave_pos`.
    ParapplyThenNative,
    /// Nothing applied at all.
    Empty,
}

/// A replica's state as loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// `host:port`.
    pub addr: String,
    /// What it holds (the restart rule's view).
    pub applied: AppliedSet,
    /// Who applied it.
    pub applier: Applier,
    /// Its `gtid_slave_pos`.
    pub gtid_slave_pos: Vec<MariaGtid>,
}

impl Loaded {
    /// Its watermarks were written under `map`, or are drained, or it has
    /// none (then any map reads it).
    pub fn check_shard_map(&self, map: &ShardMap) -> Result<(), CatchupError> {
        let ours = map.fingerprint();
        let st = &self.applied.state;
        match &st.shard_map {
            Some(theirs) if *theirs != ours && !st.is_drained() => Err(CatchupError::ShardMap {
                addr: self.addr.clone(),
                theirs: theirs.clone(),
                ours,
            }),
            _ => Ok(()),
        }
    }

    /// Whether the progress tables on the replica lack part of its state
    /// (a prefix the SQL thread applied): then they are brought up to it
    /// before parapply applies there.
    pub fn needs_seeding(&self) -> bool {
        matches!(self.applier, Applier::Native | Applier::ParapplyThenNative)
    }
}

/// The GTIDs of `slave_pos` that reach past `state`'s low-watermark in
/// their domain: what the SQL thread applied beyond parapply's prefix.
pub fn ahead_of(state: &ReplicaState, slave_pos: &[MariaGtid]) -> Vec<MariaGtid> {
    slave_pos
        .iter()
        .filter(|g| state.low.get(&g.domain).is_none_or(|l| g.seq > l.seq_no))
        .copied()
        .collect()
}

/// Moves `state`'s low-watermark up to each located GTID (its group and
/// everything before it in its domain are applied).
pub fn raise_low(state: &mut ReplicaState, located: &[(MariaGtid, BinlogPos)]) {
    for (g, end) in located {
        let w = Watermark {
            seq_no: g.seq,
            server_id: g.server,
            end: end.clone(),
        };
        match state.low.get(&g.domain) {
            Some(l) if l.seq_no >= g.seq => {}
            _ => {
                state.low.insert(g.domain, w);
            }
        }
    }
}

/// Reads `replica`'s state: its progress tables if it has them, raised to
/// its `gtid_slave_pos` where the server's own SQL thread applied further
/// (those GTIDs placed in `mirror`, which is then needed), and its
/// `gtid_binlog_state`.
pub fn load(replica: &mut Replica, mirror: Option<&Path>) -> Result<Loaded, CatchupError> {
    let addr = replica.addr();
    let mut state = if replica.has_progress_tables()? {
        replica.read_state()?
    } else {
        ReplicaState::default()
    };
    let from_tables = !state.low.is_empty() || !state.shards.is_empty();
    let gtid_slave_pos = replica.gtid_slave_pos()?;
    let ahead = ahead_of(&state, &gtid_slave_pos);
    if !ahead.is_empty() {
        let Some(mirror) = mirror else {
            return Err(CatchupError::NeedsMirror {
                addr,
                gtids: ahead
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            });
        };
        raise_low(&mut state, &locate(mirror, &ahead, &addr)?);
    }
    let applier = match (from_tables, ahead.is_empty()) {
        (true, true) => Applier::Parapply,
        (true, false) => Applier::ParapplyThenNative,
        (false, false) => Applier::Native,
        (false, true) => Applier::Empty,
    };
    Ok(Loaded {
        addr,
        applied: AppliedSet {
            state,
            binlog_state: replica.gtid_binlog_state()?,
        },
        applier,
        gtid_slave_pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(d: u32, seq: u64) -> MariaGtid {
        MariaGtid {
            domain: d,
            server: 1,
            seq,
        }
    }

    #[test]
    fn the_sql_threads_prefix_raises_the_low_watermark_only_where_it_is_ahead() {
        let mut st = ReplicaState::prefix([(g(0, 10), BinlogPos::new("bin.000001", 1000))]);
        let pos = [g(0, 8), g(1, 3)];
        assert_eq!(ahead_of(&st, &pos), [g(1, 3)]);
        raise_low(&mut st, &[(g(1, 3), BinlogPos::new("bin.000001", 300))]);
        assert_eq!(st.low[&0].seq_no, 10);
        assert_eq!(st.low[&1].seq_no, 3);
        assert!(ahead_of(&st, &[g(0, 11)]) == [g(0, 11)]);
    }
}
