//! What a source holds that a replica has not applied (`parapply status`),
//! or that a catch-up would apply (a promotion's plan), by the same
//! per-group decision as the apply engine.

use std::sync::Arc;

use serde::Serialize;

use crate::binlog::{BinlogReader, ReadError, ReaderOptions, Source};
use crate::group::Grouper;
use crate::position::{BinlogPos, StartAt};
use crate::progress::{decide, Action, AppliedSet, GroupFacts, Selection};
use crate::schedule::{Placement, ShardMap};

/// Groups of a source that a replica has not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    /// Groups not applied.
    pub groups: u64,
    /// Their bytes.
    pub bytes: u64,
    /// End of the last group read: the source's end, unless a catch-up
    /// stopped before it.
    pub source_end: Option<BinlogPos>,
    /// The primary's commit time of the first group not applied.
    pub first_pending_timestamp: Option<u32>,
    /// The primary's commit time of the last group read.
    pub source_end_timestamp: Option<u32>,
}

impl Pending {
    /// How far the replica is behind the source's end, in the primary's
    /// own time: from the commit of the first group it lacks to the commit
    /// of the source's last group (0 when it lacks none). Both times come
    /// from the events, so a clock step on this host changes nothing.
    pub fn lag_seconds(&self) -> u64 {
        match (self.first_pending_timestamp, self.source_end_timestamp) {
            (Some(first), Some(end)) => u64::from(end.saturating_sub(first)),
            _ => 0,
        }
    }
}

/// Reads `source` from the end of `own`'s applied prefix and counts the
/// groups [`decide`] would apply under `selection` with the shard map
/// `map` — [`Selection::Restart`]: what is not applied yet;
/// [`Selection::CatchUp`]: the catch-up set, up to where the engine would
/// stop. Groups without a MariaDB GTID are not counted (the engine refuses
/// them).
pub fn pending(
    own: &AppliedSet,
    selection: &Selection,
    source: Source,
    map: &ShardMap,
) -> Result<Pending, ReadError> {
    let start = own
        .state
        .resume_position()
        .map(StartAt::Pos)
        .unwrap_or(StartAt::Beginning);
    let opts = ReaderOptions {
        start,
        ..ReaderOptions::default()
    };
    let mut groups = Grouper::new(BinlogReader::open(source, opts)?);
    let mut p = Pending {
        groups: 0,
        bytes: 0,
        source_end: None,
        first_pending_timestamp: None,
        source_end_timestamp: None,
    };
    while let Some(group) = groups.next()? {
        let end = group.end();
        let Some(gtid) = group.maria_gtid() else {
            p.source_end = Some(end);
            p.source_end_timestamp = Some(group.timestamp);
            continue;
        };
        let shards: Option<Vec<Arc<str>>> = match map.placement(&group) {
            Placement::Shards(s) => Some(s.into_iter().map(|x| x.0).collect()),
            Placement::Barrier(_) => None,
        };
        let facts = GroupFacts {
            gtid,
            end: &end,
            shards: shards.as_deref(),
            timestamp: group.timestamp,
        };
        match decide(selection, None, own, &facts).action {
            Action::Apply => {
                p.groups += 1;
                p.bytes += group.bytes.len() as u64;
                p.first_pending_timestamp.get_or_insert(group.timestamp);
            }
            Action::Stop => break,
            Action::Skip | Action::Pass => {}
        }
        p.source_end = Some(end);
        p.source_end_timestamp = Some(group.timestamp);
    }
    Ok(p)
}
