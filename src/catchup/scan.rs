//! Reading a mirror directory into a [`Scan`]: the files from the one
//! holding the start position to the last, read in parallel (rayon, one
//! task per file: each file starts with its own Format_description event,
//! so each reads alone), their groups put back in mirror order. And
//! placing GTIDs in the mirror (for a replica known only by its
//! `gtid_slave_pos`).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::set::{scan_start, CatchupSet, Item, Scan};
use super::walk::{walk_file, View, Walked};
use super::CatchupError;
use crate::binlog::reader::{gtid_list_of, read_index};
use crate::binlog::{BinlogReader, ReaderOptions, Source};
use crate::group::Grouper;
use crate::position::{BinlogPos, MariaGtid};
use crate::progress::{catch_up_action, decide, Action, AppliedSet, GroupFacts, Selection};
use crate::schedule::ShardMap;

/// The mirror's files in index order (`mirror`: its directory or index).
pub fn mirror_files(mirror: &Path) -> Result<Vec<PathBuf>, CatchupError> {
    let files = match Source::from_paths(&[mirror.to_path_buf()])? {
        Source::Index(index) => read_index(&index)?,
        Source::Files(f) => f,
    };
    if files.is_empty() {
        return Err(CatchupError::Mirror {
            path: mirror.display().to_string(),
            what: "the mirror holds no binlog file".into(),
        });
    }
    Ok(files)
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads the files of `mirror` from `start` (`None`: the first) in
/// parallel, one task per file ([`walk_file`]), calling `visit` on a
/// fresh `T` for each group until it says [`ControlFlow::Break`]; returns
/// the `T`s in mirror order with the bytes read. A group cut at the end of
/// a file that is not the last is an error.
fn read_files<T: Send>(
    mirror: &Path,
    start: Option<&BinlogPos>,
    map: &ShardMap,
    fresh: impl Fn() -> T + Sync,
    visit: impl Fn(&mut T, &View<'_>) -> ControlFlow<()> + Sync,
) -> Result<(Vec<T>, u64), CatchupError> {
    let files = mirror_files(mirror)?;
    let first = match start {
        None => 0,
        Some(p) => files
            .iter()
            .position(|f| name_of(f) == p.file)
            .ok_or_else(|| CatchupError::FileMissing {
                file: p.file.clone(),
                start: p.clone(),
                first: name_of(&files[0]),
                last: name_of(&files[files.len() - 1]),
            })?,
    };
    let todo = &files[first..];
    let read: Vec<Result<(T, Walked), CatchupError>> = todo
        .par_iter()
        .enumerate()
        .map(|(i, f)| {
            let at = match (i, start) {
                (0, Some(p)) => Some(p.pos),
                _ => None,
            };
            let mut t = fresh();
            let end = walk_file(f, at, map, |v| visit(&mut t, v))?;
            Ok((t, end))
        })
        .collect();
    let last = todo.len() - 1;
    let mut out = Vec::with_capacity(todo.len());
    let mut bytes = 0;
    for (i, r) in read.into_iter().enumerate() {
        let (t, end) = r?;
        if let (Some(group), true) = (end.open, i < last) {
            return Err(CatchupError::CutGroup {
                file: name_of(&todo[i]),
                group,
            });
        }
        bytes += end.bytes;
        out.push(t);
    }
    Ok((out, bytes))
}

/// The item of a walked group.
fn item(v: &View<'_>) -> Item {
    Item {
        gtid: v.gtid,
        file: v.file.clone(),
        start: v.start,
        end: v.end,
        shards: v.shards.map(<[Arc<str>]>::to_vec),
        bytes: v.bytes,
    }
}

/// Reads the mirror `mirror` (directory or index) from `start` (`None`: its
/// first file) to its end, placing each group with `map`: every group, for
/// planning many catch-ups over one read ([`Scan::missing`]).
pub fn scan(
    mirror: &Path,
    start: Option<&BinlogPos>,
    map: &ShardMap,
) -> Result<Scan, CatchupError> {
    let started = std::time::Instant::now();
    let (parts, bytes_read) = read_files(mirror, start, map, Vec::new, |v, g| {
        v.push(item(g));
        ControlFlow::Continue(())
    })?;
    let files = parts.len();
    let items: Vec<Item> = parts.into_iter().flatten().collect();
    tracing::debug!(
        files,
        groups = items.len(),
        bytes = bytes_read,
        ms = started.elapsed().as_millis() as u64,
        "scanned the mirror"
    );
    Ok(Scan {
        start: start.cloned(),
        end: items.last().map(Item::end_pos),
        items,
        bytes_read,
        files,
    })
}

/// One catch-up being collected from one file.
#[derive(Default)]
struct Part {
    set: CatchupSet,
    /// The engine would stop in this file.
    stopped: bool,
    /// Per shard set of the walk: its domain, and the seq_nos up to which
    /// the replica and the goal hold its groups
    /// ([`crate::progress::ReplicaState::applied_up_to`]).
    up_to: Vec<Option<(u32, u64, u64)>>,
    /// This file against the file of the goal's last watermark.
    file_vs_goal_end: Option<std::cmp::Ordering>,
}

impl Part {
    /// The engine's decision for `g` in the catch-up of `own` towards
    /// `goal` ([`decide`]), from per-set figures computed once.
    fn decide(
        &mut self,
        sel: &Selection,
        own: &AppliedSet,
        goal_end: Option<&BinlogPos>,
        g: &View<'_>,
    ) -> Action {
        let Some(set) = g.set else {
            // A barrier: the full rule (binlog states).
            let end = BinlogPos::new(&**g.file, g.end);
            let facts = GroupFacts {
                gtid: g.gtid,
                end: &end,
                shards: None,
                timestamp: 0,
            };
            return decide(sel, None, own, &facts).action;
        };
        let Selection::CatchUp(goal) = sel else {
            unreachable!("a catch-up's selection")
        };
        let i = set as usize;
        if self.up_to.len() <= i {
            self.up_to.resize(i + 1, None);
        }
        let d = g.gtid.domain;
        let (own_to, goal_to) = match self.up_to[i] {
            Some((dom, o, t)) if dom == d => (o, t),
            _ => {
                let shards = || g.shards.unwrap_or_default().iter().map(|s| &**s);
                let o = own.state.applied_up_to(d, shards());
                let t = goal.state.applied_up_to(d, shards());
                self.up_to[i] = Some((d, o, t));
                (o, t)
            }
        };
        let past_goal = match goal_end {
            None => true,
            Some(e) => {
                let vs = *self
                    .file_vs_goal_end
                    .get_or_insert_with(|| (**g.file).cmp(e.file.as_str()));
                vs == std::cmp::Ordering::Greater
                    || (vs == std::cmp::Ordering::Equal && g.end > e.pos)
            }
        };
        catch_up_action(g.gtid.seq <= goal_to, past_goal, || g.gtid.seq <= own_to)
    }
}

/// The catch-up sets of several `(own, goal)` pairs over `mirror`, in one
/// parallel read that keeps only their groups (no list of every group:
/// fit for a mirror of any size). Each set is what [`super::missing`]
/// gives over the same groups: the engine's own decision per group, up to
/// where it stops, computed once per shard set and file rather than per
/// group. Reading starts at the earliest resume position of the `own`s,
/// and a file's reading ends once every pair has stopped in it.
pub fn catchup_sets(
    mirror: &Path,
    map: &ShardMap,
    pairs: &[(&AppliedSet, &AppliedSet)],
) -> Result<Vec<CatchupSet>, CatchupError> {
    let start = scan_start(pairs.iter().map(|(own, _)| &own.state));
    let selections: Vec<Selection> = pairs
        .iter()
        .map(|(_, goal)| Selection::catch_up((*goal).clone()))
        .collect();
    let goal_ends: Vec<Option<&BinlogPos>> =
        pairs.iter().map(|(_, goal)| goal.state.max_end()).collect();
    let fresh = || -> Vec<Part> { (0..pairs.len()).map(|_| Part::default()).collect() };
    let (files, _) = read_files(mirror, start.as_ref(), map, fresh, |parts, g| {
        let mut open = false;
        for (k, part) in parts.iter_mut().enumerate() {
            if part.stopped {
                continue;
            }
            match part.decide(&selections[k], pairs[k].0, goal_ends[k], g) {
                Action::Apply => {
                    part.set.bytes += g.bytes;
                    part.set.groups.push(item(g));
                }
                Action::Stop => part.stopped = true,
                Action::Skip | Action::Pass => {}
            }
            open |= !part.stopped;
        }
        if open {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    })?;
    let mut out: Vec<Part> = fresh();
    for file in files {
        for (acc, part) in out.iter_mut().zip(file) {
            if acc.stopped {
                continue;
            }
            acc.set.bytes += part.set.bytes;
            acc.set.groups.extend(part.set.groups);
            acc.stopped = part.stopped;
        }
    }
    Ok(out.into_iter().map(|p| p.set).collect())
}

/// Where each of `gtids` (one per domain, as in `gtid_slave_pos`) ends in
/// the mirror: the file holding it is the last whose Gtid_list (the binlog
/// state at its start) does not hold it yet; that file is read for it.
/// `addr` names the replica in errors.
pub fn locate(
    mirror: &Path,
    gtids: &[MariaGtid],
    addr: &str,
) -> Result<Vec<(MariaGtid, BinlogPos)>, CatchupError> {
    if gtids.is_empty() {
        return Ok(Vec::new());
    }
    let files = mirror_files(mirror)?;
    let lists: Vec<Option<Vec<MariaGtid>>> = files
        .par_iter()
        .map(|f| gtid_list_of(f))
        .collect::<Result<_, _>>()?;
    let holds = |list: &Option<Vec<MariaGtid>>, g: &MariaGtid| {
        list.as_ref().is_some_and(|l| {
            l.iter()
                .any(|x| x.domain == g.domain && x.server == g.server && x.seq >= g.seq)
        })
    };
    gtids
        .par_iter()
        .map(|g| {
            let not_in = |why| CatchupError::NotInMirror {
                addr: addr.to_string(),
                gtid: *g,
                why,
            };
            // Files whose start state holds g come after it.
            let after = lists.iter().position(|l| holds(l, g));
            let file = match after {
                Some(0) => return Err(not_in("it lies before the mirror's first file")),
                Some(i) => &files[i - 1],
                None => &files[files.len() - 1],
            };
            let opts = ReaderOptions::default();
            let mut groups =
                Grouper::new(BinlogReader::open(Source::Files(vec![file.clone()]), opts)?)
                    .without_bytes();
            while let Some(x) = groups.next()? {
                if x.maria_gtid() == Some(*g) {
                    return Ok((*g, x.end()));
                }
            }
            Err(not_in("not found where the binlog states place it"))
        })
        .collect()
}

#[cfg(all(test, feature = "testkit"))]
mod tests {
    use super::*;
    use crate::binlog::synth::{generate, SynthOptions, Until};
    use crate::schedule::{Placement, ShardBy};

    /// The parallel scan equals one sequential read of the whole mirror,
    /// from the beginning and from a position; GTIDs are placed.
    #[test]
    fn parallel_scan_equals_a_sequential_read() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SynthOptions {
            until: Until::Transactions(3000),
            max_file_size: 64 << 10,
            databases: 5,
            ..SynthOptions::default()
        };
        let out = generate(dir.path(), &opts).unwrap();
        assert!(out.files.len() > 4, "{} files", out.files.len());
        let map = ShardMap::new(ShardBy::Database);
        let mut seq = Grouper::new(
            BinlogReader::open(Source::dir(dir.path()).unwrap(), ReaderOptions::default()).unwrap(),
        );
        let mut want = Vec::new();
        while let Some(g) = seq.next().unwrap() {
            want.push(g);
        }
        let all = scan(dir.path(), None, &map).unwrap();
        assert_eq!(all.items.len(), want.len());
        assert_eq!(all.files, out.files.len());
        for (i, g) in all.items.iter().zip(&want) {
            assert_eq!(Some(i.gtid), g.maria_gtid());
            assert_eq!((i.end_pos(), i.start_pos()), (g.end(), g.start()));
            assert_eq!(i.bytes, g.bytes.len() as u64);
            let shards = match map.placement(g) {
                Placement::Shards(s) => Some(s.into_iter().map(|x| x.0).collect()),
                Placement::Barrier(_) => None,
            };
            assert_eq!(i.shards, shards);
        }
        // Under table shards too.
        let by_table = ShardMap::new(ShardBy::Table);
        let tables = scan(dir.path(), None, &by_table).unwrap();
        for (i, g) in tables.items.iter().zip(&want) {
            let shards = match by_table.placement(g) {
                Placement::Shards(s) => Some(s.into_iter().map(|x| x.0).collect()),
                Placement::Barrier(_) => None,
            };
            assert_eq!(i.shards, shards);
        }
        // From the end of group 1234: the groups after it.
        let from = all.items[1233].end_pos();
        let tail = scan(dir.path(), Some(&from), &map).unwrap();
        assert_eq!(tail.items, all.items[1234..]);
        assert_eq!(tail.end, all.end);
        // Placing GTIDs by the files' Gtid_list events.
        let some = [all.items[0].gtid, all.items[2999].gtid];
        let placed = locate(dir.path(), &some[1..], "r").unwrap();
        assert_eq!(placed, [(some[1], all.items[2999].end_pos())]);
        let placed = locate(dir.path(), &[all.items[1500].gtid], "r").unwrap();
        assert_eq!(placed[0].1, all.items[1500].end_pos());
        // The fused read equals the sets over the full list, for states
        // that stop in a middle file and resume in different ones.
        let wm = |i: usize| crate::progress::Watermark {
            seq_no: all.items[i].gtid.seq,
            server_id: 1,
            end: all.items[i].end_pos(),
        };
        let state = |low: usize, rows: &[(usize, usize)]| {
            let mut st = AppliedSet::default();
            st.state.low.insert(0, wm(low));
            for &(db, at) in rows {
                // The last group of db_{db} at or before `at`.
                let i = (0..=at)
                    .rev()
                    .find(|&i| {
                        all.items[i]
                            .shards
                            .as_ref()
                            .is_some_and(|s| *s[0] == *format!("db_{db:02}"))
                    })
                    .unwrap();
                st.state.shards.insert((0, format!("db_{db:02}")), wm(i));
            }
            st
        };
        let a = state(200, &[(1, 1500), (2, 1800), (3, 700)]);
        let b = state(900, &[(2, 2990), (4, 1200)]);
        let sets = catchup_sets(dir.path(), &map, &[(&b, &a), (&a, &b), (&a, &a)]).unwrap();
        let full = all.between(&a, &b).unwrap();
        assert!(!full.a_to_b.is_empty() && !full.b_to_a.is_empty());
        assert_eq!(sets[0], full.a_to_b);
        assert_eq!(sets[1], full.b_to_a);
        assert!(sets[2].is_empty());
        // A start in a file the mirror lacks.
        let gone = BinlogPos::new("synth-bin.000999", 4);
        assert!(matches!(
            scan(dir.path(), Some(&gone), &map),
            Err(CatchupError::FileMissing { .. })
        ));
        // A GTID past the mirror's end is not placed.
        let mut past = some[1];
        past.seq += 10;
        assert!(matches!(
            locate(dir.path(), &[past], "r"),
            Err(CatchupError::NotInMirror { .. })
        ));
    }
}
