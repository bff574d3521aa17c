//! Errant transactions: what a replica holds that no mirror received.
//!
//! * Its binary log: `@@gtid_binlog_state` names the last GTID of every
//!   `(domain, server)` pair the binlog holds. A pair the source (the
//!   longest mirror, of which every mirror is a prefix) holds up to a
//!   lower seq_no, or not at all, has GTIDs beyond it: each of them is
//!   errant unless parapply's own progress-table DDL wrote it (`own`). The
//!   last GTID alone does not say which: a GTID written by hand followed by
//!   parapply's DDL on the same server leaves the DDL's GTID as the pair's
//!   last. So for such a pair the binlog itself is read — only the files in
//!   which the pair advanced past what the source holds (found from each
//!   file's Gtid_list event, the binlog state at its start, and
//!   `gtid_binlog_state` for the last file), with `SHOW BINLOG EVENTS`.
//! * Its applied state: a watermark (low or shard) naming a GTID the source
//!   does not hold was applied from a stream no mirror has.
//!
//! "The source holds `d-s-n`" is read as: its binlog state reaches seq_no
//! `n` for the pair `(d, s)` (a primary's seq_nos in a domain only grow).

use std::collections::{BTreeMap, BTreeSet};

use crate::position::MariaGtid;
use crate::progress::parse_gtid_list;
use crate::replica::{Replica, ReplicaError};

/// `(domain, server) → the highest seq_no the source holds`.
pub type Held = BTreeMap<(u32, u32), u64>;

fn beyond(held: &Held, g: &MariaGtid) -> bool {
    g.seq > held.get(&(g.domain, g.server)).copied().unwrap_or(0)
}

/// The GTIDs of `binlog_state` (a replica's `gtid_binlog_state`) and of
/// `applied` (its watermarks' GTIDs) that the source does not hold,
/// excepting `own`; `read_binlog` lists the GTIDs of the replica's binlog
/// for the pairs given (with the seq_no past which to list them).
pub fn errant(
    held: &Held,
    binlog_state: &[MariaGtid],
    applied: impl IntoIterator<Item = MariaGtid>,
    own: &[MariaGtid],
    read_binlog: impl FnOnce(&Held) -> Result<Vec<MariaGtid>, ReplicaError>,
) -> Result<Vec<MariaGtid>, ReplicaError> {
    let mut out: BTreeSet<MariaGtid> = applied.into_iter().filter(|g| beyond(held, g)).collect();
    let pairs: Held = binlog_state
        .iter()
        .filter(|g| beyond(held, g))
        .map(|g| {
            let from = held.get(&(g.domain, g.server)).copied().unwrap_or(0);
            ((g.domain, g.server), from)
        })
        .collect();
    if !pairs.is_empty() {
        for g in read_binlog(&pairs)? {
            if pairs.get(&(g.domain, g.server)).is_some_and(|&f| g.seq > f) {
                out.insert(g);
            }
        }
        // The pairs' last GTIDs, whatever the reading found.
        out.extend(binlog_state.iter().filter(|g| beyond(held, g)));
    }
    Ok(out.into_iter().filter(|g| !own.contains(g)).collect())
}

/// The GTIDs of `r`'s binary log of the pairs `pairs` beyond the seq_no
/// given for each: the files in which one of them advanced past it are
/// read with `SHOW BINLOG EVENTS`.
pub fn binlog_gtids(r: &mut Replica, pairs: &Held) -> Result<Vec<MariaGtid>, ReplicaError> {
    let files: Vec<String> = r
        .query_text("SHOW BINARY LOGS", "listing the binary logs")?
        .into_iter()
        .filter_map(|row| row.into_iter().next())
        .collect();
    // The binlog state at each file's start, and now (after the last).
    let mut states = Vec::new();
    for f in &files {
        let rows = r.query_text(
            &format!(
                "SHOW BINLOG EVENTS IN '{}' LIMIT 4",
                crate::progress::escape(f)
            ),
            "reading a binary log's Gtid_list",
        )?;
        let list = rows
            .iter()
            .find(|row| row.get(2).map(String::as_str) == Some("Gtid_list"))
            .and_then(|row| row.get(5))
            .map(|info| info.trim_matches(|c| c == '[' || c == ']').to_string())
            .unwrap_or_default();
        states.push(parse_gtid_list(&list).unwrap_or_default());
    }
    states.push(r.gtid_binlog_state()?);
    let top = |st: &[MariaGtid], d: u32, s: u32| {
        st.iter()
            .filter(|g| g.domain == d && g.server == s)
            .map(|g| g.seq)
            .max()
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let read = pairs.iter().any(|(&(d, s), &from)| {
            let at_start = top(&states[i], d, s);
            let at_end = top(&states[i + 1], d, s);
            at_end > at_start && at_end > from
        });
        if !read {
            continue;
        }
        let rows = r.query_text(
            &format!("SHOW BINLOG EVENTS IN '{}'", crate::progress::escape(f)),
            "reading a binary log's GTIDs",
        )?;
        for row in rows {
            if row.get(2).map(String::as_str) != Some("Gtid") {
                continue;
            }
            // Info: `BEGIN GTID d-s-n`, or `GTID d-s-n` (DDL), maybe more.
            let info = row.get(5).map(String::as_str).unwrap_or_default();
            let g = info
                .split_whitespace()
                .find_map(|w| w.parse::<MariaGtid>().ok());
            if let Some(g) = g {
                if pairs
                    .get(&(g.domain, g.server))
                    .is_some_and(|&from| g.seq > from)
                {
                    out.push(g);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(d: u32, s: u32, n: u64) -> MariaGtid {
        MariaGtid {
            domain: d,
            server: s,
            seq: n,
        }
    }

    #[test]
    fn every_pair_and_what_hides_behind_own_ddl() {
        let held: Held = [((0, 1), 100), ((1, 1), 7)].into();
        // 0-11-17 written by hand, then parapply's DDL 0-11-18: the
        // binlog state shows only the DDL's GTID.
        let state = [g(0, 1, 100), g(0, 11, 18), g(1, 1, 7)];
        let own = [g(0, 11, 18)];
        let mut asked = None;
        let found = errant(&held, &state, [], &own, |pairs| {
            asked = Some(pairs.clone());
            Ok(vec![g(0, 11, 17), g(0, 11, 18)])
        })
        .unwrap();
        assert_eq!(found, [g(0, 11, 17)]);
        assert_eq!(asked.unwrap(), Held::from([((0, 11), 0)]));
        // Nothing beyond the source: the binlog is not read.
        let clean = [g(0, 1, 90), g(1, 1, 7)];
        let found = errant(&held, &clean, [], &[], |_| panic!("not read")).unwrap();
        assert!(found.is_empty());
        // A watermark the source lacks (applied from elsewhere), and a
        // pair of the old primary past the source's end.
        let found = errant(&held, &[g(1, 1, 9)], [g(0, 1, 120)], &[], |_| Ok(vec![])).unwrap();
        assert_eq!(found, [g(0, 1, 120), g(1, 1, 9)]);
    }
}
