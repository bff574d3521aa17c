//! Catch-up sets between two replicas (DESIGN.md point 6) and applying
//! them: `parapply catchup`, and the step promotion repeats per replica.
//!
//! # Replica states ([`load`])
//!
//! A replica's state is what its progress tables say (per `(domain,
//! shard)` the watermark W, per domain the low-watermark L: see
//! [`crate::progress`]), plus its `gtid_binlog_state` (which decides
//! barriers). A replica run by the server's own SQL thread has no tables:
//! its `gtid_slave_pos` names the last group applied per domain, a prefix
//! of the stream ([`ReplicaState::prefix`]), placed in the mirror by
//! [`locate`] (the file is found from the Gtid_list events at the files'
//! starts, then read). A replica parapply drained and handed to the SQL
//! thread has both: L is raised to `gtid_slave_pos` where it is ahead
//! ([`Applier`] says which case it was). Two states compare with
//! [`crate::progress::compare`]: equal, one ahead, or incomparable, with the
//! shards where each leads.
//!
//! # The catch-up set (pure: [`set`])
//!
//! The catch-up set of B towards A is the groups A holds and B lacks: per
//! shard those in `(W_B, W_A]`, a group of several shards as one unit, a
//! barrier by the binlog states. It is computed from the states and the
//! mirror's groups ([`Item`]: GTID, file, start, end, shards, bytes; no
//! event bytes) by the engine's own per-group decision
//! ([`crate::progress::decide`] under [`Selection::CatchUp`]), so the set
//! printed is the set `--apply` applies, and it ends where the engine
//! stops. [`between_items`] gives both directions and the comparison;
//! [`Scan::missing`] one direction; nothing there does I/O, so promotion
//! can plan fleets (many replicas, many shards) from generated states and
//! [`Scan::of_items`].
//!
//! # Reading the mirror ([`scan`])
//!
//! Only from the earliest resume position of the states ([`scan_start`]:
//! the end of the applied prefix, L): everything before it is held by both,
//! so a shard idle for long, whose W lies far back, costs nothing. The
//! files from there on are read in parallel (rayon, one task per file:
//! each starts with its own Format_description event), walking event
//! headers and decoding only what places a group (`walk`: no CRC
//! recomputation, no per-group allocation for the usual transaction
//! shape), and their groups put back in mirror order: [`scan`] keeps
//! every group (a [`Scan`], for planning many catch-ups over one read);
//! [`catchup_sets`] (behind [`between`]) decides each group as it is read
//! and keeps only the sets' groups, for several `(own, goal)` pairs at
//! once, so memory follows the sets, not the mirror. A mirror
//! server's address is copied into a temporary directory first
//! ([`remote::fetch`], the mirror's own client, from the file the scan
//! needs to the end the server serves when asked), then read the same way.
//!
//! # Applying ([`apply`])
//!
//! The apply engine run with [`Selection::CatchUp`]: the same loop and
//! workers as `parapply apply`, with an end. A target whose SQL thread
//! applied past its progress tables first gets its low-watermark raised to
//! that prefix (so nothing is applied twice); a running SQL thread on the
//! target is refused. After the run the target's state is read again and
//! must dominate the goal's ([`CatchupError::NotReached`] otherwise).
//!
//! # API
//!
//! ```text
//! load(&mut Replica, Option<&Path>)         -> Loaded { applied: AppliedSet, applier, .. }
//! between(&a, &b, mirror, &ShardMap)        -> Between { order, a_to_b, b_to_a }   (I/O)
//! catchup_sets(mirror, &ShardMap, &[(own, goal)]) -> Vec<CatchupSet>           (I/O, one read)
//! between_items(&a, &b, &[Item])            -> Between                             (pure)
//! scan(mirror, start, &ShardMap)            -> Scan { items, .. }; Scan::missing(own, goal)
//! apply(&Loaded, goal: &AppliedSet, ApplyOptions) -> Applied { report, seeded }
//! ```

mod error;
pub mod remote;
mod run;
mod scan;
pub mod set;
mod state;
mod walk;

pub use error::CatchupError;
pub use run::{apply, Applied};
pub use scan::{catchup_sets, locate, mirror_files, scan};
pub use set::{between_items, missing, scan_start, Between, CatchupSet, Item, Scan};
pub use state::{ahead_of, load, raise_low, Applier, Loaded};

use std::path::Path;

use crate::progress::AppliedSet;
#[cfg(doc)]
use crate::progress::{ReplicaState, Selection};
use crate::schedule::ShardMap;

/// Both directions between `a` and `b` (A→B: what B lacks of A; B→A: what
/// A lacks of B) over the mirror directory `mirror`, read from the
/// earlier of their applied prefixes' ends, groups placed with `map`.
pub fn between(
    a: &AppliedSet,
    b: &AppliedSet,
    mirror: &Path,
    map: &ShardMap,
) -> Result<Between, CatchupError> {
    let mut sets = catchup_sets(mirror, map, &[(b, a), (a, b)])?.into_iter();
    let (a_to_b, b_to_a) = (
        sets.next().unwrap_or_default(),
        sets.next().unwrap_or_default(),
    );
    Ok(Between {
        order: crate::progress::compare(&a.state, &b.state),
        a_to_b,
        b_to_a,
    })
}
