//! The pure half of progress: a replica's state as values, the restart
//! rule, the decision the apply loop makes for each group, and the
//! comparison of two replicas' states. No I/O here.
//!
//! # One decision per group
//!
//! [`decide`] is the only place that says what happens to a group read from
//! the source: [`Action::Apply`] it, [`Action::Skip`] it (the replica has
//! it already), [`Action::Pass`] it over (not selected: a catch-up's goal
//! lacks it), or [`Action::Stop`] before it (past the end). The engine uses
//! it for every group; `status` counts with it what is pending. Which
//! groups are wanted is the [`Selection`]:
//!
//! * [`Selection::Restart`] — steady state: everything the replica has not
//!   applied (the restart rule of the [module doc](super)), up to `--until`.
//! * [`Selection::CatchUp`] — DESIGN.md point 6: the groups a *goal* state
//!   has applied and the replica has not, per shard the groups in
//!   `(W_replica, W_goal]`; reading stops at the first group past the goal's
//!   last watermark that the goal does not hold (only a barrier the goal
//!   committed can lie past its watermarks: its watermark rows may not have
//!   been written yet, but its GTID is in the goal's binary log).
//!
//! # Comparing two replicas
//!
//! DESIGN.md point 5: two replicas are comparable iff one's watermarks
//! dominate the other's in every shard. A state's applied set is, per
//! domain `d`, every group with `seq ≤ L[d]` plus, per shard `x`, every
//! group of `x` with `seq ≤ W[d, x]`; so the groups of a shard `x` it holds
//! are those up to `max(W[d, x], L[d])`, and of a shard without a row those
//! up to `L[d]`. [`compare`] compares these per shard (a shard without a row
//! in either state is the [`ShardKey`] with no name) and says [`StateOrder`]:
//! equal, one ahead (with the shards where it leads), or incomparable (with
//! the shards where each leads). If A is ahead of or equal to B, every
//! group B holds A holds too (property-tested below against generated
//! streams).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use crate::position::{BinlogPos, MariaGtid, StartAt};

/// The last applied group of a shard, or the end of the applied prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watermark {
    /// Sequence number of the group.
    pub seq_no: u64,
    /// Its server id.
    pub server_id: u32,
    /// End of the group in the primary's coordinates.
    pub end: BinlogPos,
}

/// What a target has applied: its watermarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaState {
    /// `(domain, shard) → W`.
    pub shards: BTreeMap<(u32, String), Watermark>,
    /// `domain → L`.
    pub low: BTreeMap<u32, Watermark>,
    /// Fingerprint of the shard map the watermarks were written under.
    pub shard_map: Option<String>,
}

/// Whether a group is applied, per the restart rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied: skip it.
    Yes,
    /// Not applied: apply it.
    No,
}

impl ReplicaState {
    /// The state of a replica whose applied set is a prefix of the stream
    /// per domain — one run by MariaDB's own SQL thread, whose
    /// `gtid_slave_pos` names the last group applied in each domain — given
    /// where each of those groups ends (found by locating it in a mirror).
    /// It has low-watermarks only, no shard rows.
    pub fn prefix(last: impl IntoIterator<Item = (MariaGtid, BinlogPos)>) -> ReplicaState {
        ReplicaState {
            low: last
                .into_iter()
                .map(|(g, end)| {
                    (
                        g.domain,
                        Watermark {
                            seq_no: g.seq,
                            server_id: g.server,
                            end,
                        },
                    )
                })
                .collect(),
            ..ReplicaState::default()
        }
    }

    /// Where reading resumes: the end of the applied prefix (the latest end
    /// among the domains' low-watermarks), or `None` to start at the
    /// beginning of the source.
    pub fn resume_position(&self) -> Option<BinlogPos> {
        self.low.values().map(|w| w.end.clone()).max()
    }

    /// The latest end among all watermarks (shards and low-watermarks):
    /// no group past it is applied, except a barrier whose rows were not
    /// written yet (see the module doc).
    pub fn max_end(&self) -> Option<&BinlogPos> {
        self.low
            .values()
            .chain(self.shards.values())
            .map(|w| &w.end)
            .max()
    }

    /// Rule 1 and 2 of the module doc for a shard group.
    pub fn shard_group_applied<'a>(
        &self,
        g: MariaGtid,
        shards: impl IntoIterator<Item = &'a str>,
    ) -> Applied {
        if g.seq <= self.applied_up_to(g.domain, shards) {
            Applied::Yes
        } else {
            Applied::No
        }
    }

    /// The seq_no up to which this state holds the groups of domain
    /// `domain` placed on `shards` (rules 1 and 2: the low-watermark, or
    /// the highest watermark among the shards): a shard group `g` there is
    /// applied iff `g.seq` is at most this. Constant for a shard set, so a
    /// scan deciding many groups computes it once per set.
    pub fn applied_up_to<'a>(&self, domain: u32, shards: impl IntoIterator<Item = &'a str>) -> u64 {
        let low = self.low.get(&domain).map_or(0, |l| l.seq_no);
        shards
            .into_iter()
            .filter_map(|x| self.shard_row(domain, x).map(|w| w.seq_no))
            .fold(low, u64::max)
    }

    /// The watermark row of `(domain, shard)`, looked up without
    /// allocating a key (this runs for every group the engine or a
    /// catch-up decides).
    fn shard_row(&self, domain: u32, shard: &str) -> Option<&Watermark> {
        thread_local! {
            static KEY: std::cell::RefCell<(u32, String)> =
                const { std::cell::RefCell::new((0, String::new())) };
        }
        KEY.with(|k| {
            let mut k = k.borrow_mut();
            k.0 = domain;
            k.1.clear();
            k.1.push_str(shard);
            self.shards.get(&*k)
        })
    }

    /// Rule 1 and 3 for a barrier, given the target's `gtid_binlog_state`.
    pub fn barrier_applied(&self, g: MariaGtid, binlog_state: &[MariaGtid]) -> Applied {
        if self.in_prefix(g)
            || binlog_state
                .iter()
                .any(|b| b.domain == g.domain && b.server == g.server && b.seq >= g.seq)
        {
            Applied::Yes
        } else {
            Applied::No
        }
    }

    fn in_prefix(&self, g: MariaGtid) -> bool {
        self.low.get(&g.domain).is_some_and(|l| g.seq <= l.seq_no)
    }

    /// Whether every shard is at most at the low-watermark: nothing beyond
    /// the applied prefix is applied (the state after a drain), so the shard
    /// map may change.
    pub fn is_drained(&self) -> bool {
        self.shards
            .iter()
            .all(|((d, _), w)| self.low.get(d).is_some_and(|l| w.seq_no <= l.seq_no))
    }

    /// The state as JSON: the low-watermark and the shards as lists of
    /// objects (`domain_id`, `shard`, `gtid`, `seq_no`, `server_id`, `end`).
    pub fn to_json(&self) -> serde_json::Value {
        let wm = |d: u32, shard: Option<&str>, w: &Watermark| {
            let mut v = serde_json::json!({
                "domain_id": d,
                "gtid": format!("{d}-{}-{}", w.server_id, w.seq_no),
                "seq_no": w.seq_no,
                "server_id": w.server_id,
                "end": w.end.to_string(),
            });
            if let Some(s) = shard {
                v["shard"] = s.into();
            }
            v
        };
        serde_json::json!({
            "low_watermark": self.low.iter().map(|(d, w)| wm(*d, None, w)).collect::<Vec<_>>(),
            "shards": self.shards.iter().map(|((d, s), w)| wm(*d, Some(s), w)).collect::<Vec<_>>(),
            "shard_map": self.shard_map,
            "drained": self.is_drained(),
        })
    }

    /// The GTID position of a drained state, for `SET GLOBAL gtid_slave_pos`.
    pub fn gtid_position(&self) -> String {
        gtid_position(&self.low)
    }
}

/// `domain-server-seq` per domain of `low`, comma-separated.
pub fn gtid_position(low: &BTreeMap<u32, Watermark>) -> String {
    low.iter()
        .map(|(d, w)| format!("{d}-{}-{}", w.server_id, w.seq_no))
        .collect::<Vec<_>>()
        .join(",")
}

/// A replica's applied set as the restart rule sees it: its watermarks and
/// its `gtid_binlog_state` (which decides barriers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedSet {
    /// The watermarks.
    pub state: ReplicaState,
    /// `@@GLOBAL.gtid_binlog_state`.
    pub binlog_state: Vec<MariaGtid>,
}

impl AppliedSet {
    /// Whether the replica holds the group (the restart rule).
    pub fn contains(&self, g: &GroupFacts<'_>) -> bool {
        let applied = match g.shards {
            None => self.state.barrier_applied(g.gtid, &self.binlog_state),
            Some(shards) => self
                .state
                .shard_group_applied(g.gtid, shards.iter().map(|s| &**s)),
        };
        applied == Applied::Yes
    }
}

/// What [`decide`] needs to know of a group.
#[derive(Debug, Clone, Copy)]
pub struct GroupFacts<'a> {
    /// Its GTID.
    pub gtid: MariaGtid,
    /// Its end in the primary's coordinates.
    pub end: &'a BinlogPos,
    /// Its shards, or `None` for a barrier.
    pub shards: Option<&'a [Arc<str>]>,
    /// Its timestamp on the primary (Unix seconds, of its first event).
    pub timestamp: u32,
}

/// Where `--until` stops (inclusive), or `--until-time` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// After the group with this GTID.
    Gtid(MariaGtid),
    /// After the group that ends at or past this position.
    Pos(BinlogPos),
    /// Before the first group the primary logged at or after this moment
    /// (Unix seconds; event timestamps have whole seconds): point-in-time
    /// recovery to the last group committed before it.
    Time(u32),
}

impl std::str::FromStr for Until {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<StartAt>()? {
            StartAt::Gtid(g) => Ok(Until::Gtid(g)),
            StartAt::Pos(p) => Ok(Until::Pos(p)),
            StartAt::Beginning => Err("empty --until".into()),
        }
    }
}

/// Which groups of the source a run applies (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Selection {
    /// Everything the replica has not applied.
    #[default]
    Restart,
    /// The groups `goal` holds and the replica does not; then stop.
    CatchUp(Box<Goal>),
}

impl Selection {
    /// [`Selection::CatchUp`] to `goal`.
    pub fn catch_up(goal: AppliedSet) -> Selection {
        Selection::CatchUp(Box::new(Goal::new(goal)))
    }
}

/// A catch-up's goal: the applied set to reach, with the latest end among
/// its watermarks ([`ReplicaState::max_end`]) computed once — [`decide`]
/// asks for it for every group the goal lacks, and a state may have a row
/// per database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Goal {
    set: AppliedSet,
    end: Option<BinlogPos>,
}

impl Goal {
    /// The goal `set`.
    pub fn new(set: AppliedSet) -> Goal {
        let end = set.state.max_end().cloned();
        Goal { set, end }
    }

    /// The latest end among the goal's watermarks: no group past it is in
    /// the goal, but a barrier in its binary log.
    pub fn end(&self) -> Option<&BinlogPos> {
        self.end.as_ref()
    }
}

impl std::ops::Deref for Goal {
    type Target = AppliedSet;
    fn deref(&self) -> &AppliedSet {
        &self.set
    }
}

/// What happens to one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Apply it.
    Apply,
    /// The replica has it already: skip it (it counts as applied).
    Skip,
    /// Not selected: leave it unapplied and go on (the replica's
    /// low-watermark cannot pass it).
    Pass,
    /// Past the end: stop reading before it.
    Stop,
}

/// [`decide`]'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to do with the group.
    pub action: Action,
    /// It is the last group (`--until`): read nothing after it.
    pub last: bool,
}

/// The decision for group `g` of a replica holding `own`, under `selection`
/// and `until`. Groups must be offered in source order.
pub fn decide(
    selection: &Selection,
    until: Option<&Until>,
    own: &AppliedSet,
    g: &GroupFacts<'_>,
) -> Decision {
    let last = match until {
        Some(Until::Gtid(u)) => *u == g.gtid,
        Some(Until::Pos(p)) => g.end >= p,
        Some(Until::Time(t)) if g.timestamp >= *t => {
            return Decision {
                action: Action::Stop,
                last: true,
            }
        }
        Some(Until::Time(_)) | None => false,
    };
    let action = match selection {
        Selection::Restart if own.contains(g) => Action::Skip,
        Selection::Restart => Action::Apply,
        Selection::CatchUp(goal) => catch_up_action(
            goal.contains(g),
            goal.end().is_none_or(|e| g.end > e),
            || own.contains(g),
        ),
    };
    Decision { action, last }
}

/// A catch-up's decision for a group (the [`Selection::CatchUp`] arm of
/// [`decide`], for scans that compute its inputs once per shard set):
/// `in_goal`, the goal holds it; `past_goal`, it ends past the goal's
/// last watermark; `own_has`, the replica holds it.
pub fn catch_up_action(in_goal: bool, past_goal: bool, own_has: impl FnOnce() -> bool) -> Action {
    if !in_goal && past_goal {
        Action::Stop
    } else if own_has() {
        Action::Skip
    } else if in_goal {
        Action::Apply
    } else {
        Action::Pass
    }
}

/// A shard in [`compare`]: `(domain, Some(shard))` for a shard with a row in
/// either state, `(domain, None)` for the domain's other groups (covered by
/// the low-watermark only).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ShardKey {
    /// The domain.
    pub domain: u32,
    /// The shard, or `None` for the shards without a row.
    pub shard: Option<String>,
}

impl std::fmt::Display for ShardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shard {
            Some(s) => write!(f, "{}/{s}", self.domain),
            None => write!(f, "{}/(other shards)", self.domain),
        }
    }
}

/// Where one state is ahead of the other: the sequence numbers up to which
/// each holds the shard's groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lead {
    /// The shard.
    pub key: ShardKey,
    /// A's applied prefix of the shard (a seq_no; 0: none).
    pub a: u64,
    /// B's.
    pub b: u64,
}

/// How two states are ordered (DESIGN.md point 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum StateOrder {
    /// The same groups in every shard.
    Equal,
    /// A holds everything B holds, and more in these shards.
    AAhead(Vec<Lead>),
    /// B holds everything A holds, and more in these shards.
    BAhead(Vec<Lead>),
    /// Each holds groups the other lacks: A in `a_leads`, B in `b_leads`.
    Incomparable {
        /// Shards where A is ahead.
        a_leads: Vec<Lead>,
        /// Shards where B is ahead.
        b_leads: Vec<Lead>,
    },
}

impl StateOrder {
    /// The same order seen from the other side.
    pub fn flip(self) -> StateOrder {
        let swap = |v: Vec<Lead>| {
            v.into_iter()
                .map(|l| Lead {
                    key: l.key,
                    a: l.b,
                    b: l.a,
                })
                .collect()
        };
        match self {
            StateOrder::Equal => StateOrder::Equal,
            StateOrder::AAhead(v) => StateOrder::BAhead(swap(v)),
            StateOrder::BAhead(v) => StateOrder::AAhead(swap(v)),
            StateOrder::Incomparable { a_leads, b_leads } => StateOrder::Incomparable {
                a_leads: swap(b_leads),
                b_leads: swap(a_leads),
            },
        }
    }
}

/// Compares two replicas' states shard by shard (see the module doc).
/// Both must be written under the same shard map.
pub fn compare(a: &ReplicaState, b: &ReplicaState) -> StateOrder {
    let mut keys: BTreeSet<ShardKey> = BTreeSet::new();
    for st in [a, b] {
        for (d, s) in st.shards.keys() {
            keys.insert(ShardKey {
                domain: *d,
                shard: Some(s.clone()),
            });
            keys.insert(ShardKey {
                domain: *d,
                shard: None,
            });
        }
        for d in st.low.keys() {
            keys.insert(ShardKey {
                domain: *d,
                shard: None,
            });
        }
    }
    let held = |st: &ReplicaState, k: &ShardKey| {
        let low = st.low.get(&k.domain).map_or(0, |w| w.seq_no);
        let row = k
            .shard
            .as_ref()
            .and_then(|s| st.shards.get(&(k.domain, s.clone())))
            .map_or(0, |w| w.seq_no);
        low.max(row)
    };
    let (mut a_leads, mut b_leads) = (Vec::new(), Vec::new());
    for key in keys {
        let (x, y) = (held(a, &key), held(b, &key));
        let lead = |key| Lead { key, a: x, b: y };
        match x.cmp(&y) {
            std::cmp::Ordering::Greater => a_leads.push(lead(key)),
            std::cmp::Ordering::Less => b_leads.push(lead(key)),
            std::cmp::Ordering::Equal => {}
        }
    }
    match (a_leads.is_empty(), b_leads.is_empty()) {
        (true, true) => StateOrder::Equal,
        (false, true) => StateOrder::AAhead(a_leads),
        (true, false) => StateOrder::BAhead(b_leads),
        (false, false) => StateOrder::Incomparable { a_leads, b_leads },
    }
}

/// Parses `@@gtid_binlog_state` (`d-s-n,d-s-n,…`).
pub fn parse_gtid_list(s: &str) -> Result<Vec<MariaGtid>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wm(seq: u64, pos: u64) -> Watermark {
        Watermark {
            seq_no: seq,
            server_id: 1,
            end: BinlogPos::new("bin.000001", pos),
        }
    }

    fn g(seq: u64) -> MariaGtid {
        MariaGtid {
            domain: 0,
            server: 1,
            seq,
        }
    }

    #[test]
    fn restart_rule() {
        let mut st = ReplicaState::default();
        st.low.insert(0, wm(10, 1000));
        st.shards.insert((0, "a".into()), wm(14, 1400));
        st.shards.insert((0, "b".into()), wm(12, 1200));
        assert_eq!(
            st.resume_position(),
            Some(BinlogPos::new("bin.000001", 1000))
        );
        // In the prefix.
        assert_eq!(st.shard_group_applied(g(9), ["c"]), Applied::Yes);
        // Covered by its shard.
        assert_eq!(st.shard_group_applied(g(13), ["a"]), Applied::Yes);
        assert_eq!(st.shard_group_applied(g(13), ["b"]), Applied::No);
        // A multi-shard group: one covering row is enough.
        assert_eq!(st.shard_group_applied(g(12), ["a", "b"]), Applied::Yes);
        assert_eq!(st.shard_group_applied(g(15), ["a", "b"]), Applied::No);
        // Barriers: by the target's binlog state.
        assert_eq!(st.barrier_applied(g(11), &[g(11)]), Applied::Yes);
        assert_eq!(st.barrier_applied(g(11), &[g(9)]), Applied::No);
        let other_server = MariaGtid {
            domain: 0,
            server: 2,
            seq: 50,
        };
        assert_eq!(st.barrier_applied(g(11), &[other_server]), Applied::No);
        assert!(!st.is_drained());
        st.low.insert(0, wm(14, 1400));
        assert!(st.is_drained());
        assert_eq!(st.gtid_position(), "0-1-14");
    }

    fn facts<'a>(seq: u64, end: &'a BinlogPos, shards: Option<&'a [Arc<str>]>) -> GroupFacts<'a> {
        GroupFacts {
            gtid: g(seq),
            end,
            shards,
            timestamp: 1000 + seq as u32,
        }
    }

    #[test]
    fn restart_selection_and_until() {
        let mut own = AppliedSet::default();
        own.state.shards.insert((0, "a".into()), wm(5, 500));
        let a: Vec<Arc<str>> = vec!["a".into()];
        let b: Vec<Arc<str>> = vec!["b".into()];
        let end4 = BinlogPos::new("bin.000001", 400);
        let end6 = BinlogPos::new("bin.000001", 600);
        let sel = Selection::Restart;
        let d = |seq, end, shards, until| decide(&sel, until, &own, &facts(seq, end, shards));
        assert_eq!(d(4, &end4, Some(&a[..]), None).action, Action::Skip);
        assert_eq!(d(4, &end4, Some(&b[..]), None).action, Action::Apply);
        // A barrier: by the binlog state (empty here).
        assert_eq!(d(4, &end4, None, None).action, Action::Apply);
        // --until is inclusive, by GTID or by position.
        let by_gtid = Until::Gtid(g(4));
        assert!(d(4, &end4, Some(&b[..]), Some(&by_gtid)).last);
        assert!(!d(3, &end4, Some(&b[..]), Some(&by_gtid)).last);
        let by_pos = Until::Pos(BinlogPos::new("bin.000001", 450));
        assert!(!d(4, &end4, Some(&b[..]), Some(&by_pos)).last);
        let at = d(6, &end6, Some(&a[..]), Some(&by_pos));
        assert_eq!((at.action, at.last), (Action::Apply, true));
        // --until-time is exclusive: a group logged at the moment stops
        // the run before it, even one that is applied already.
        let by_time = Until::Time(1006);
        let before = d(4, &end4, Some(&b[..]), Some(&by_time));
        assert_eq!((before.action, before.last), (Action::Apply, false));
        let at = d(6, &end6, Some(&b[..]), Some(&by_time));
        assert_eq!(at.action, Action::Stop);
        assert_eq!(
            d(7, &end6, Some(&a[..]), Some(&by_time)).action,
            Action::Stop
        );
    }

    /// Replica B has everything up to 2; goal A has a up to 5, b up to 6,
    /// c up to 3, and the barrier 7 in its binary log past its last
    /// watermark (it ran after everything before it; A's rows of later
    /// groups were not written yet).
    #[test]
    fn catch_up_selection() {
        let mut own = AppliedSet::default();
        own.state.low.insert(0, wm(2, 200));
        let mut goal = AppliedSet::default();
        goal.state.shards.insert((0, "a".into()), wm(5, 500));
        goal.state.shards.insert((0, "b".into()), wm(6, 600));
        goal.state.shards.insert((0, "c".into()), wm(3, 300));
        goal.binlog_state = vec![g(7)];
        let sel = Selection::catch_up(goal);
        let [a, b, c]: [Vec<Arc<str>>; 3] = [vec!["a".into()], vec!["b".into()], vec!["c".into()]];
        let stream: Vec<(u64, Option<&[Arc<str>]>)> = vec![
            (1, Some(&a[..])),
            (2, Some(&b[..])),
            (3, Some(&c[..])),
            (4, Some(&a[..])),
            (5, Some(&a[..])),
            (6, Some(&b[..])),
            (7, None),
            (8, Some(&a[..])),
            (9, Some(&b[..])),
        ];
        let actions = |sel: &Selection, own: &AppliedSet| -> Vec<Action> {
            stream
                .iter()
                .map(|&(seq, shards)| {
                    let end = BinlogPos::new("bin.000001", seq * 100);
                    decide(sel, None, own, &facts(seq, &end, shards)).action
                })
                .collect()
        };
        use Action::*;
        // 1, 2: B has them; 3–6: A's, not B's; 7: A's barrier past its
        // watermarks; 8: past A's end and not A's: stop.
        assert_eq!(
            actions(&sel, &own),
            [Skip, Skip, Apply, Apply, Apply, Apply, Apply, Stop, Stop]
        );
        // A goal without c and with b up to 2 (its barrier gone too): 3 is
        // passed over (B keeps lacking it), 6 ends the catch-up.
        let mut goal = AppliedSet::default();
        goal.state.shards.insert((0, "a".into()), wm(5, 500));
        goal.state.shards.insert((0, "b".into()), wm(2, 200));
        let sel = Selection::catch_up(goal);
        assert_eq!(
            actions(&sel, &AppliedSet::default()),
            [Apply, Apply, Pass, Apply, Apply, Stop, Stop, Stop, Stop]
        );
    }

    /// A catch-up goal's end is the latest end among its low-watermarks
    /// and shard rows, taken once when the goal is made ([`decide`] reads
    /// it for every group the goal lacks, and a goal may have a row per
    /// database): a group the goal lacks that ends there is passed over,
    /// one that ends past it stops the catch-up.
    #[test]
    fn a_goal_ends_at_its_latest_watermark_computed_once() {
        let mut set = AppliedSet::default();
        set.state.low.insert(0, wm(2, 200));
        set.state.low.insert(1, wm(9, 250));
        for i in 0..1000 {
            set.state
                .shards
                .insert((0, format!("db{i}")), wm(3 + i, 1299 - i));
        }
        let goal = Goal::new(set.clone());
        assert_eq!(goal.end(), set.state.max_end());
        assert_eq!(goal.end(), Some(&BinlogPos::new("bin.000001", 1299)));
        let sel = Selection::catch_up(set);
        let other: Vec<Arc<str>> = vec!["other".into()];
        let nothing = AppliedSet::default();
        for (pos, want) in [(1299, Action::Pass), (1300, Action::Stop)] {
            let end = BinlogPos::new("bin.000001", pos);
            let d = decide(&sel, None, &nothing, &facts(5000, &end, Some(&other)));
            assert_eq!(d.action, want, "a group ending at {pos}");
        }
        let empty = Selection::catch_up(AppliedSet::default());
        let end = BinlogPos::new("bin.000001", 4);
        let d = decide(&empty, None, &nothing, &facts(1, &end, Some(&other)));
        assert_eq!(d.action, Action::Stop);
    }

    #[test]
    fn a_prefix_state_holds_everything_up_to_its_gtids() {
        let p = ReplicaState::prefix([(g(7), BinlogPos::new("bin.000001", 700))]);
        assert_eq!(p.shard_group_applied(g(7), ["any"]), Applied::Yes);
        assert_eq!(p.shard_group_applied(g(8), ["any"]), Applied::No);
        assert!(p.is_drained());
        assert_eq!(p.gtid_position(), "0-1-7");
        // A parapply replica with a shard past 7 is ahead of it.
        let mut q = p.clone();
        q.shards.insert((0, "x".into()), wm(9, 900));
        assert!(matches!(compare(&q, &p), StateOrder::AAhead(_)));
    }

    #[test]
    fn gtid_list() {
        assert_eq!(parse_gtid_list("0-1-5, 7-2-9").unwrap().len(), 2);
        assert!(parse_gtid_list("0-1").is_err());
    }

    #[test]
    fn compare_states() {
        let mut a = ReplicaState::default();
        a.low.insert(0, wm(10, 1000));
        a.shards.insert((0, "x".into()), wm(14, 1400));
        let mut b = a.clone();
        assert_eq!(compare(&a, &b), StateOrder::Equal);
        b.shards.insert((0, "y".into()), wm(12, 1200));
        let key = |s: Option<&str>| ShardKey {
            domain: 0,
            shard: s.map(str::to_string),
        };
        assert_eq!(
            compare(&a, &b),
            StateOrder::BAhead(vec![Lead {
                key: key(Some("y")),
                a: 10,
                b: 12
            }])
        );
        a.low.insert(0, wm(11, 1100));
        match compare(&a, &b) {
            StateOrder::Incomparable { a_leads, b_leads } => {
                assert_eq!(
                    a_leads.iter().map(|l| &l.key).collect::<Vec<_>>(),
                    [&key(None)]
                );
                assert_eq!(b_leads[0].key, key(Some("y")));
            }
            o => panic!("{o:?}"),
        }
        // A row at or below the low-watermark adds nothing.
        let mut c = a.clone();
        c.shards.insert((0, "z".into()), wm(9, 900));
        assert_eq!(compare(&a, &c), StateOrder::Equal);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeSet;

        const SHARDS: [&str; 3] = ["a", "b", "c"];

        /// A stream of single-shard groups (seq 1..=n, end 100·seq) and a
        /// state an applier could have reached on it: everything up to
        /// `low`, then per shard a prefix of its later groups.
        #[derive(Debug, Clone)]
        struct World {
            shard_of: Vec<usize>,
        }

        fn world() -> impl Strategy<Value = World> {
            proptest::collection::vec(0..SHARDS.len(), 0..24)
                .prop_map(|shard_of| World { shard_of })
        }

        fn state_in(w: &World) -> impl Strategy<Value = ReplicaState> {
            let n = w.shard_of.len();
            let shard_of = w.shard_of.clone();
            (
                0..=n,
                proptest::collection::vec(0..=n, SHARDS.len()),
                any::<bool>(),
            )
                .prop_map(move |(low, extra, stale_rows)| {
                    let mut st = ReplicaState::default();
                    if low > 0 {
                        st.low.insert(0, wm(low as u64, low as u64 * 100));
                    }
                    for (x, name) in SHARDS.iter().enumerate() {
                        // The shard's groups after `low`, `extra[x]` of them applied.
                        let last = (low..n)
                            .filter(|&i| shard_of[i] == x)
                            .take(extra[x])
                            .last()
                            .map(|i| i + 1)
                            // Or a row left behind at or below the prefix.
                            .or_else(|| {
                                (0..low)
                                    .rev()
                                    .find(|&i| stale_rows && shard_of[i] == x)
                                    .map(|i| i + 1)
                            });
                        if let Some(seq) = last {
                            st.shards
                                .insert((0, name.to_string()), wm(seq as u64, seq as u64 * 100));
                        }
                    }
                    st
                })
        }

        fn applied(w: &World, st: &ReplicaState) -> BTreeSet<u64> {
            let own = AppliedSet {
                state: st.clone(),
                binlog_state: Vec::new(),
            };
            (1..=w.shard_of.len() as u64)
                .filter(|&seq| {
                    let end = BinlogPos::new("bin.000001", seq * 100);
                    let shards: Vec<Arc<str>> = vec![SHARDS[w.shard_of[seq as usize - 1]].into()];
                    own.contains(&facts(seq, &end, Some(&shards)))
                })
                .collect()
        }

        fn world_and_two() -> impl Strategy<Value = (World, ReplicaState, ReplicaState)> {
            world().prop_flat_map(|w| {
                let (a, b) = (state_in(&w), state_in(&w));
                (Just(w), a, b)
            })
        }

        fn dominates(a: &ReplicaState, b: &ReplicaState) -> bool {
            matches!(compare(a, b), StateOrder::Equal | StateOrder::AAhead(_))
        }

        proptest! {
            #[test]
            fn antisymmetric((_, a, b) in world_and_two()) {
                prop_assert_eq!(compare(&b, &a), compare(&a, &b).flip());
                prop_assert_eq!(compare(&a, &a), StateOrder::Equal);
            }

            #[test]
            fn equal_iff_both_dominate((_, a, b) in world_and_two()) {
                let equal = compare(&a, &b) == StateOrder::Equal;
                prop_assert_eq!(equal, dominates(&a, &b) && dominates(&b, &a));
            }

            #[test]
            fn leads_are_where_the_numbers_differ((_, a, b) in world_and_two()) {
                let (al, bl) = match compare(&a, &b) {
                    StateOrder::Equal => (vec![], vec![]),
                    StateOrder::AAhead(v) => (v, vec![]),
                    StateOrder::BAhead(v) => (vec![], v),
                    StateOrder::Incomparable { a_leads, b_leads } => {
                        prop_assert!(!a_leads.is_empty() && !b_leads.is_empty());
                        (a_leads, b_leads)
                    }
                };
                prop_assert!(al.iter().all(|l| l.a > l.b));
                prop_assert!(bl.iter().all(|l| l.b > l.a));
            }

            /// Dominance is sound: a state ahead of (or equal to) another
            /// holds every group the other holds.
            #[test]
            fn dominance_means_superset((w, a, b) in world_and_two()) {
                if dominates(&a, &b) {
                    let (sa, sb) = (applied(&w, &a), applied(&w, &b));
                    prop_assert!(sa.is_superset(&sb), "{:?} ⊉ {:?}", sa, sb);
                }
            }

            /// A catch-up of B from goal A, run through `decide` over the
            /// stream, leaves B holding exactly A ∪ B, applies nothing twice,
            /// and stops only past everything A holds.
            #[test]
            fn catch_up_reaches_the_union((w, a, b) in world_and_two()) {
                let own = AppliedSet { state: b.clone(), binlog_state: Vec::new() };
                let sel = Selection::catch_up(AppliedSet { state: a.clone(), binlog_state: Vec::new() });
                let mut got = applied(&w, &b);
                let before = got.clone();
                for seq in 1..=w.shard_of.len() as u64 {
                    let end = BinlogPos::new("bin.000001", seq * 100);
                    let shards: Vec<Arc<str>> = vec![SHARDS[w.shard_of[seq as usize - 1]].into()];
                    match decide(&sel, None, &own, &facts(seq, &end, Some(&shards))).action {
                        Action::Apply => prop_assert!(got.insert(seq), "{} applied twice", seq),
                        Action::Skip => prop_assert!(before.contains(&seq)),
                        Action::Pass => {}
                        Action::Stop => break,
                    }
                }
                let want: BTreeSet<u64> = applied(&w, &a).union(&before).copied().collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
