//! Waiting until a target has applied one group (`parapply wait`, the
//! sidecar's `MASTER_GTID_WAIT`): read-your-writes on a replica.
//!
//! A group `d-s-n` is applied when the restart rule says so
//! ([`AppliedSet::contains`]): the low-watermark of `d` reaches `n` (as
//! `MASTER_GTID_WAIT` compares sequence numbers per domain), or one of the
//! group's shards has a watermark at or past `n`, or — a barrier — the
//! target's binary log holds it. The group's shards come from the source
//! the target applies (a mirror or relay logs), where the group is looked
//! for from the end of the applied prefix on; without a source only the
//! low-watermark counts (never a false "applied", possibly a later one).
//!
//! The group is *unknown* when the source passed it: a group of domain `d`
//! with a sequence number above `n` is in the source after the applied
//! prefix and `d-s-n` is not (sequence numbers grow within a domain, so it
//! will not come). A group not in the source yet may still come: that is a
//! wait, until the timeout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::binlog::{BinlogReader, ReadError, ReaderOptions, Source};
use crate::group::Grouper;
use crate::position::{BinlogPos, MariaGtid, StartAt};
use crate::progress::{AppliedSet, GroupFacts};
use crate::schedule::{Placement, ShardMap};

use super::{Replica, ReplicaError};

/// How [`wait_applied`] ends, short of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The group is applied.
    Reached,
    /// The timeout passed first.
    TimedOut,
    /// The source passed the group's place without it (see the module
    /// doc): `passed` is the first later GTID of its domain, at `at`.
    Unknown {
        /// The later GTID.
        passed: MariaGtid,
        /// Where it ends in the source.
        at: BinlogPos,
    },
}

/// What [`wait_applied`] waits for.
pub struct WaitOptions {
    /// The group.
    pub gtid: MariaGtid,
    /// The source the target applies from, to find the group's shards.
    pub source: Option<PathBuf>,
    /// The shard map the target's watermarks were written under.
    pub map: ShardMap,
    /// Give up after this long (`None`: wait for ever).
    pub timeout: Option<Duration>,
    /// Time between two looks at the target.
    pub poll: Duration,
}

impl WaitOptions {
    /// Default for [`WaitOptions::poll`].
    pub const DEFAULT_POLL: Duration = Duration::from_millis(100);
}

/// Errors of [`wait_applied`].
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// Reading the target failed.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// Reading the source failed.
    #[error("reading the source while looking for {gtid}: {error}")]
    Source {
        /// The group looked for.
        gtid: MariaGtid,
        /// The cause.
        error: ReadError,
    },
    /// The target's watermarks were written under another shard map.
    #[error(
        "the target's watermarks were written under the shard map `{theirs}`, not `{ours}`: \
         give `wait` the --shard-map/--shard-by the applier runs with"
    )]
    ShardMap {
        /// The target's.
        theirs: String,
        /// The one given.
        ours: String,
    },
}

/// What is known of the group from the source: end, shards (`None`: a
/// barrier), timestamp.
type Facts = (BinlogPos, Option<Vec<Arc<str>>>, u32);

/// Where the group stands in the source.
enum Found {
    /// Its facts.
    Group(Facts),
    /// Not up to the source's end; the next look starts here.
    NotYet(Option<BinlogPos>),
    /// Passed (see [`WaitOutcome::Unknown`]).
    Passed(MariaGtid, BinlogPos),
}

/// Reads the source from `from` for the group `g`.
fn look(
    source: &std::path::Path,
    from: Option<BinlogPos>,
    g: MariaGtid,
    map: &ShardMap,
) -> Result<Found, ReadError> {
    let opts = ReaderOptions {
        start: from.clone().map(StartAt::Pos).unwrap_or(StartAt::Beginning),
        ..ReaderOptions::default()
    };
    let src = Source::from_paths(&[source.to_path_buf()])?;
    let mut groups = Grouper::new(BinlogReader::open(src, opts)?);
    let mut last = from;
    while let Some(group) = groups.next()? {
        let end = group.end();
        if let Some(x) = group.maria_gtid() {
            if x == g {
                let shards = match map.placement(&group) {
                    Placement::Shards(s) => Some(s.into_iter().map(|s| s.0).collect()),
                    Placement::Barrier(_) => None,
                };
                return Ok(Found::Group((end, shards, group.timestamp)));
            }
            if x.domain == g.domain && x.seq > g.seq {
                return Ok(Found::Passed(x, end));
            }
        }
        last = Some(end);
    }
    Ok(Found::NotYet(last))
}

/// Waits until `replica` has applied the group `o.gtid`; see the module
/// doc.
pub fn wait_applied(replica: &mut Replica, o: &WaitOptions) -> Result<WaitOutcome, WaitError> {
    let deadline = o.timeout.map(|t| Instant::now() + t);
    let g = o.gtid;
    let mut facts: Option<Facts> = None;
    let mut scanned: Option<BinlogPos> = None;
    let mut checked_map = false;
    loop {
        let own: AppliedSet = replica.applied_set()?;
        if !checked_map {
            let ours = o.map.fingerprint();
            match &own.state.shard_map {
                Some(theirs) if *theirs != ours && !own.state.is_drained() => {
                    return Err(WaitError::ShardMap {
                        theirs: theirs.clone(),
                        ours,
                    })
                }
                _ => checked_map = true,
            }
        }
        if own.state.shard_group_applied(g, []) == crate::progress::Applied::Yes {
            return Ok(WaitOutcome::Reached);
        }
        if let (None, Some(src)) = (&facts, &o.source) {
            // Nothing before the applied prefix can be the group (it would
            // be covered by the low-watermark).
            let from = match (scanned.take(), own.state.resume_position()) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            match look(src, from, g, &o.map)
                .map_err(|error| WaitError::Source { gtid: g, error })?
            {
                Found::Group(f) => facts = Some(f),
                Found::NotYet(pos) => scanned = pos,
                Found::Passed(passed, at) => {
                    // Applied meanwhile? Look once more before saying so.
                    let own = replica.applied_set()?;
                    if own.state.shard_group_applied(g, []) == crate::progress::Applied::Yes {
                        return Ok(WaitOutcome::Reached);
                    }
                    return Ok(WaitOutcome::Unknown { passed, at });
                }
            }
        }
        if let Some((end, shards, timestamp)) = &facts {
            let f = GroupFacts {
                gtid: g,
                end,
                shards: shards.as_deref(),
                timestamp: *timestamp,
            };
            if own.contains(&f) {
                return Ok(WaitOutcome::Reached);
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(WaitOutcome::TimedOut);
        }
        let nap = match deadline {
            Some(d) => o.poll.min(d.saturating_duration_since(Instant::now())),
            None => o.poll,
        };
        std::thread::sleep(nap);
    }
}
