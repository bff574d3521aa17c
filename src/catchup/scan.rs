//! Reading a mirror directory into a [`Scan`]: the files from the one
//! holding the start position to the last, read in parallel (rayon, one
//! task per file: each file starts with its own Format_description event,
//! so each reads alone), their groups put back in mirror order. And
//! placing GTIDs in the mirror (for a replica known only by its
//! `gtid_slave_pos`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::set::{Item, Scan};
use super::CatchupError;
use crate::binlog::reader::{gtid_list_of, read_index};
use crate::binlog::{BinlogReader, ReaderOptions, Source};
use crate::group::Grouper;
use crate::position::{BinlogPos, MariaGtid, StartAt};
use crate::schedule::{Placement, ShardBy, ShardMap};

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

/// What one file held.
struct FileScan {
    items: Vec<Item>,
    bytes: u64,
    /// A group still open at its end (`gtid or position`).
    open: Option<String>,
}

/// Reads the mirror `mirror` (directory or index) from `start` (`None`: its
/// first file) to its end, placing each group with `map`.
pub fn scan(
    mirror: &Path,
    start: Option<&BinlogPos>,
    map: &ShardMap,
) -> Result<Scan, CatchupError> {
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
    let started = std::time::Instant::now();
    let scans: Vec<Result<FileScan, CatchupError>> = todo
        .par_iter()
        .enumerate()
        .map(|(i, f)| {
            let at = match (i, start) {
                (0, Some(p)) => StartAt::Pos(p.clone()),
                _ => StartAt::Beginning,
            };
            scan_file(f, at, map)
        })
        .collect();
    let mut out = Scan {
        start: start.cloned(),
        files: todo.len(),
        ..Scan::default()
    };
    let last = todo.len() - 1;
    for (i, s) in scans.into_iter().enumerate() {
        let s = s?;
        if let (Some(group), true) = (s.open, i < last) {
            return Err(CatchupError::CutGroup {
                file: name_of(&todo[i]),
                group,
            });
        }
        out.bytes_read += s.bytes;
        out.items.extend(s.items);
    }
    out.end = out.items.last().map(Item::end_pos);
    tracing::debug!(
        files = out.files,
        groups = out.items.len(),
        bytes = out.bytes_read,
        ms = started.elapsed().as_millis() as u64,
        "scanned the mirror"
    );
    Ok(out)
}

/// One file's groups, from `at`.
fn scan_file(path: &Path, at: StartAt, map: &ShardMap) -> Result<FileScan, CatchupError> {
    let opts = ReaderOptions {
        start: at,
        ..ReaderOptions::default()
    };
    let groups = Grouper::new(BinlogReader::open(
        Source::Files(vec![path.to_path_buf()]),
        opts,
    )?);
    // Key shards place a group by its rows: keep its bytes.
    let mut groups = if matches!(map.by(), ShardBy::Key(_)) {
        groups
    } else {
        groups.without_bytes()
    };
    let mut items = Vec::new();
    let mut file: Option<Arc<str>> = None;
    while let Some(g) = groups.next()? {
        let Some(gtid) = g.maria_gtid() else {
            return Err(CatchupError::NoGtid { pos: g.start() });
        };
        let shards = match map.placement(&g) {
            Placement::Shards(s) => Some(s.into_iter().map(|x| x.0).collect()),
            Placement::Barrier(_) => None,
        };
        // One allocation of the file name per file.
        let f = match &file {
            Some(f) if **f == *g.file => f.clone(),
            _ => file.insert(g.file.clone()).clone(),
        };
        items.push(Item {
            gtid,
            file: f,
            start: g.start_pos,
            end: g.end_pos,
            shards,
            bytes: g.event_len(),
        });
    }
    Ok(FileScan {
        items,
        bytes: groups.stats().bytes,
        open: groups.pending().map(|(g, _)| g),
    })
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
    use crate::schedule::ShardBy;

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
