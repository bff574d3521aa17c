//! The pure core: catch-up sets from states and a group stream, no I/O.
//!
//! Every answer here is the apply engine's own: a group belongs to the
//! catch-up set of `own` towards `goal` exactly when [`decide`] under
//! [`Selection::CatchUp`] says [`Action::Apply`] for it, offered in mirror
//! order from a point at or before `own`'s resume position; the set ends
//! where [`decide`] says [`Action::Stop`]. So what `parapply catchup`
//! prints is what `--apply` applies.

use std::sync::Arc;

use serde::Serialize;

use crate::position::{BinlogPos, MariaGtid};
use crate::progress::{
    compare, decide, Action, AppliedSet, GroupFacts, ReplicaState, Selection, StateOrder,
};

use super::CatchupError;

/// One transaction group of the mirror, as the catch-up needs it: no
/// event bytes, only where it lies and what it touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Its GTID.
    pub gtid: MariaGtid,
    /// The mirror file (the primary's file name).
    pub file: Arc<str>,
    /// Where it starts in that file.
    pub start: u64,
    /// Where it ends.
    pub end: u64,
    /// Its shards under the shard map of the scan, or `None` for a barrier.
    /// A group of several shards is one item: it is applied or lacked whole.
    pub shards: Option<Vec<Arc<str>>>,
    /// Bytes of its events.
    pub bytes: u64,
}

impl Item {
    /// Its end as a position.
    pub fn end_pos(&self) -> BinlogPos {
        BinlogPos::new(&*self.file, self.end)
    }

    /// Its start as a position.
    pub fn start_pos(&self) -> BinlogPos {
        BinlogPos::new(&*self.file, self.start)
    }

    /// What [`decide`] needs of it, `end` being [`Item::end_pos`].
    fn facts<'a>(&'a self, end: &'a BinlogPos) -> GroupFacts<'a> {
        GroupFacts {
            gtid: self.gtid,
            end,
            shards: self.shards.as_deref(),
            // Read only by `--until-time`; a catch-up has no `until`.
            timestamp: 0,
        }
    }
}

/// The groups of one direction of a catch-up, in mirror order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CatchupSet {
    /// The groups the goal holds and the replica lacks.
    pub groups: Vec<Item>,
    /// Their bytes.
    pub bytes: u64,
}

impl CatchupSet {
    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// No group is lacked.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The GTIDs, in mirror order.
    pub fn gtids(&self) -> impl Iterator<Item = MariaGtid> + '_ {
        self.groups.iter().map(|g| g.gtid)
    }

    /// Where its last group ends.
    pub fn last_end(&self) -> Option<BinlogPos> {
        self.groups.last().map(Item::end_pos)
    }

    fn push(&mut self, g: &Item) {
        self.bytes += g.bytes;
        self.groups.push(g.clone());
    }
}

/// Both directions between replicas A and B, and how their states compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Between {
    /// How A's watermarks compare with B's (DESIGN.md point 5).
    pub order: StateOrder,
    /// The groups A holds and B lacks: what B applies to catch up with A.
    pub a_to_b: CatchupSet,
    /// The groups B holds and A lacks: what A applies to catch up with B.
    pub b_to_a: CatchupSet,
}

/// Groups of a mirror read from `start` on (see [`super::scan`]), in
/// mirror order: the input of every catch-up computed over that mirror.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Where reading started; `None`: the mirror's beginning.
    pub start: Option<BinlogPos>,
    /// The complete groups from there on.
    pub items: Vec<Item>,
    /// Where the last complete group ends (the mirror's usable end).
    pub end: Option<BinlogPos>,
    /// Bytes read.
    pub bytes_read: u64,
    /// Files read.
    pub files: usize,
}

impl Scan {
    /// A scan of these groups from the beginning of the stream (for
    /// simulations and tests: no mirror behind it).
    pub fn of_items(items: Vec<Item>) -> Scan {
        Scan {
            start: None,
            end: items.last().map(Item::end_pos),
            bytes_read: items.iter().map(|i| i.bytes).sum(),
            files: 0,
            items,
        }
    }

    /// Whether the scan starts early enough for `state`: at or before the
    /// end of its applied prefix, so that every group it lacks was read.
    pub fn covers(&self, state: &ReplicaState) -> bool {
        match (&self.start, state.resume_position()) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(s), Some(r)) => *s <= r,
        }
    }

    /// The groups `goal` holds and `own` lacks (what `own` applies to
    /// reach `goal ∪ own`), in mirror order, decided as the engine decides
    /// them (module doc). Refused when the scan starts past `own`'s
    /// applied prefix (groups `own` lacks might lie before it).
    pub fn missing(&self, own: &AppliedSet, goal: &AppliedSet) -> Result<CatchupSet, CatchupError> {
        if !self.covers(&own.state) {
            return Err(CatchupError::ScanTooLate {
                scan_start: self.start.clone(),
                applied_to: own.state.resume_position(),
            });
        }
        Ok(missing(own, goal, &self.items))
    }

    /// Every group of the scan `own` lacks (the restart rule: what the
    /// engine applies to `own` reading this mirror to its end), in mirror
    /// order. Refused when the scan starts past `own`'s applied prefix.
    pub fn lacking(&self, own: &AppliedSet) -> Result<CatchupSet, CatchupError> {
        if !self.covers(&own.state) {
            return Err(CatchupError::ScanTooLate {
                scan_start: self.start.clone(),
                applied_to: own.state.resume_position(),
            });
        }
        let mut set = CatchupSet::default();
        for g in &self.items {
            let end = g.end_pos();
            if decide(&Selection::Restart, None, own, &g.facts(&end)).action == Action::Apply {
                set.push(g);
            }
        }
        Ok(set)
    }

    /// The state of a replica holding every group of the scan (and what
    /// lies before it): per domain its highest seq_no among the scan's
    /// groups and `before` (GTIDs known to lie before the scan: the
    /// binlog state where it starts), at the scan's end. A catch-up
    /// towards it ([`super::apply`]) applies everything the replica lacks.
    pub fn whole(&self, before: &[MariaGtid]) -> AppliedSet {
        let mut last: std::collections::BTreeMap<u32, MariaGtid> = Default::default();
        for g in before.iter().chain(self.items.iter().map(|i| &i.gtid)) {
            let e = last.entry(g.domain).or_insert(*g);
            if g.seq > e.seq {
                *e = *g;
            }
        }
        let end = self
            .end
            .clone()
            .or_else(|| self.start.clone())
            .unwrap_or_else(|| BinlogPos::new("", 0));
        AppliedSet {
            state: ReplicaState::prefix(last.into_values().map(|g| (g, end.clone()))),
            binlog_state: Vec::new(),
        }
    }

    /// Both directions between `a` and `b` ([`between_items`]).
    pub fn between(&self, a: &AppliedSet, b: &AppliedSet) -> Result<Between, CatchupError> {
        Ok(Between {
            order: compare(&a.state, &b.state),
            a_to_b: self.missing(b, a)?,
            b_to_a: self.missing(a, b)?,
        })
    }
}

/// The groups of `items` (mirror order, starting at or before `own`'s
/// resume position) that `goal` holds and `own` lacks: the ones
/// [`decide`] applies in a catch-up of `own` towards `goal`, up to where
/// it stops.
pub fn missing<'a>(
    own: &AppliedSet,
    goal: &AppliedSet,
    items: impl IntoIterator<Item = &'a Item>,
) -> CatchupSet {
    let selection = Selection::catch_up(goal.clone());
    let mut set = CatchupSet::default();
    for g in items {
        let end = g.end_pos();
        match decide(&selection, None, own, &g.facts(&end)).action {
            Action::Apply => set.push(g),
            Action::Stop => break,
            Action::Skip | Action::Pass => {}
        }
    }
    set
}

/// Both directions between `a` and `b` over `items` (mirror order, from
/// at or before both states' resume positions): A→B is what B lacks of A,
/// B→A what A lacks of B.
pub fn between_items(a: &AppliedSet, b: &AppliedSet, items: &[Item]) -> Between {
    Between {
        order: compare(&a.state, &b.state),
        a_to_b: missing(b, a, items),
        b_to_a: missing(a, b, items),
    }
}

/// Where a scan for catch-ups between these states must start: the
/// earliest of their resume positions (`None`: the mirror's beginning).
/// Groups before it are held by every one of them; a shard idle since long
/// before costs nothing, whatever its watermark.
pub fn scan_start<'a>(states: impl IntoIterator<Item = &'a ReplicaState>) -> Option<BinlogPos> {
    let mut start: Option<BinlogPos> = None;
    for st in states {
        let p = st.resume_position()?;
        start = Some(match start {
            Some(s) if s <= p => s,
            _ => p,
        });
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Watermark;

    fn item(seq: u64, shards: Option<&[&str]>) -> Item {
        Item {
            gtid: MariaGtid {
                domain: 0,
                server: 1,
                seq,
            },
            file: "bin.000001".into(),
            start: seq * 100 - 100 + 4,
            end: seq * 100 + 4,
            shards: shards.map(|s| s.iter().map(|x| Arc::from(*x)).collect()),
            bytes: 100,
        }
    }

    fn wm(seq: u64) -> Watermark {
        Watermark {
            seq_no: seq,
            server_id: 1,
            end: BinlogPos::new("bin.000001", seq * 100 + 4),
        }
    }

    fn seqs(s: &CatchupSet) -> Vec<u64> {
        s.groups.iter().map(|g| g.gtid.seq).collect()
    }

    /// 1..=12 over shards a, b, c; 7 touches a and b; 10 is a barrier.
    fn stream() -> Vec<Item> {
        let shard = |s: &'static str| Some(vec![s]);
        (1..=12)
            .map(|seq| {
                let shards: Option<Vec<&str>> = match seq {
                    7 => Some(vec!["a", "b"]),
                    10 => None,
                    s if s % 3 == 1 => shard("a"),
                    s if s % 3 == 2 => shard("b"),
                    _ => shard("c"),
                };
                item(seq, shards.as_deref())
            })
            .collect()
    }

    #[test]
    fn incomparable_states_lack_each_others_groups() {
        // A: everything up to 3, then shard a up to 7 (4, 7), c up to 6.
        let mut a = AppliedSet::default();
        a.state.low.insert(0, wm(3));
        a.state.shards.insert((0, "a".into()), wm(7));
        a.state.shards.insert((0, "c".into()), wm(6));
        // B: everything up to 2, then b up to 8 (5, 7, 8), c up to 3.
        let mut b = AppliedSet::default();
        b.state.low.insert(0, wm(2));
        b.state.shards.insert((0, "b".into()), wm(8));
        b.state.shards.insert((0, "c".into()), wm(3));
        let items = stream();
        let r = between_items(&a, &b, &items);
        assert!(matches!(r.order, StateOrder::Incomparable { .. }));
        // B lacks A's 4 and 6 (7 it has: a multi-shard group is one unit).
        assert_eq!(seqs(&r.a_to_b), [4, 6]);
        // A lacks B's 5 and 8.
        assert_eq!(seqs(&r.b_to_a), [5, 8]);
        assert_eq!(r.a_to_b.bytes, 200);
        // Through a scan from the earlier resume position: the same.
        let scan = Scan {
            start: Some(BinlogPos::new("bin.000001", 204)),
            ..Scan::of_items(items[2..].to_vec())
        };
        let s = scan.between(&a, &b).unwrap();
        assert_eq!((s.a_to_b, s.b_to_a), (r.a_to_b, r.b_to_a));
        // A scan that starts past B's prefix is refused.
        let late = Scan {
            start: Some(BinlogPos::new("bin.000001", 304)),
            ..Scan::of_items(items[3..].to_vec())
        };
        assert!(matches!(
            late.between(&a, &b),
            Err(CatchupError::ScanTooLate { .. })
        ));
    }

    #[test]
    fn barriers_by_binlog_state_and_the_end() {
        // A has everything up to 9, the barrier 10 (in its binary log), and
        // 11; B everything up to 9.
        let mut a = AppliedSet::default();
        a.state.low.insert(0, wm(9));
        a.state.shards.insert((0, "b".into()), wm(11));
        a.binlog_state = vec![item(11, None).gtid];
        let mut b = AppliedSet::default();
        b.state.low.insert(0, wm(9));
        let r = between_items(&a, &b, &stream());
        assert!(matches!(r.order, StateOrder::AAhead(_)));
        assert_eq!(seqs(&r.a_to_b), [10, 11]);
        assert!(r.b_to_a.is_empty());
    }

    #[test]
    fn scan_start_is_the_earliest_prefix_end() {
        let mut a = ReplicaState::default();
        a.low.insert(0, wm(5));
        let mut b = ReplicaState::default();
        b.low.insert(0, wm(3));
        assert_eq!(scan_start([&a, &b]), Some(wm(3).end));
        assert_eq!(scan_start([&a, &ReplicaState::default()]), None);
    }
}
