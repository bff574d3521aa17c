//! Progress on the target: per-shard applied-GTID watermarks and the
//! low-watermark, and the restart rule built on them.
//!
//! # The record
//!
//! Two tables in a schema of the target (default `parapply`):
//!
//! * `shard_progress (domain_id, shard) → seq_no, server_id, file, end_pos`:
//!   the last applied group of each shard, written by the worker **in the
//!   same transaction** as the group (or as the last group of a batch).
//!   Because one shard is applied in source order, everything of that shard
//!   up to `seq_no` is applied and nothing after it.
//! * `low_watermark (domain_id) → seq_no, server_id, file, end_pos`: a
//!   prefix of the source, in source order, that is entirely applied;
//!   written periodically by the engine, and after every barrier.
//!
//! A third table, `config`, keeps the shard-map fingerprint: watermarks are
//! only meaningful under the shard map that wrote them. A fourth,
//! `sessions`, lists the connection ids of the running applier's workers.
//!
//! # A dead applier's statements
//!
//! When an applier dies (SIGKILL, a crash of its host), a statement it sent
//! may still be running on the target — a long DDL, say — and commit after a
//! new applier has read the state. So before reading the state, a new
//! applier takes the lock [`ProgressTables::applier_lock`] (only one applier
//! per target and schema) and waits until every connection listed in
//! `sessions` has left the server's process list; then the state is final.
//!
//! # The restart rule (exactly once)
//!
//! Reading restarts at the low-watermark's end position. A group
//! `d-s-n` found there is already applied iff
//!
//! 1. `n ≤ L[d]` (it is inside the applied prefix); or
//! 2. it is a shard group and `W[d, x] ≥ n` for one of its shards `x` — a
//!    later group of `x` (or the group itself) is applied, and groups of one
//!    shard are applied in order; a multi-shard group updates all its rows in
//!    its own transaction, so one row is as good as all; or
//! 3. it is a barrier (DDL, a non-transactional statement, an XA commit:
//!    work that cannot share a transaction with a progress row) and the
//!    target's binary log holds a GTID of domain `d` and server `s` with
//!    sequence number `≥ n`. A barrier runs alone after everything before it
//!    and before everything after it, and the primary's sequence numbers grow
//!    within a domain, so the target's last logged GTID of `(d, s)` reaches
//!    `n` exactly when the barrier committed. This is why parapply needs
//!    `log_bin` on the target (replicas that may be promoted have it anyway).
//!
//! Nothing is lost (every group not covered by these rules is applied again
//! from the start position) and nothing is applied twice (every group they
//! cover is skipped).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::position::{BinlogPos, MariaGtid};

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
    /// Where reading resumes: the end of the applied prefix (the latest end
    /// among the domains' low-watermarks), or `None` to start at the
    /// beginning of the source.
    pub fn resume_position(&self) -> Option<BinlogPos> {
        self.low.values().map(|w| w.end.clone()).max()
    }

    /// Rule 1 and 2 of the module doc for a shard group.
    pub fn shard_group_applied<'a>(
        &self,
        g: MariaGtid,
        shards: impl IntoIterator<Item = &'a str>,
    ) -> Applied {
        if self.in_prefix(g) {
            return Applied::Yes;
        }
        let covered = shards.into_iter().any(|x| {
            self.shards
                .get(&(g.domain, x.to_string()))
                .is_some_and(|w| w.seq_no >= g.seq)
        });
        if covered {
            Applied::Yes
        } else {
            Applied::No
        }
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
        self.low
            .iter()
            .map(|(d, w)| format!("{d}-{}-{}", w.server_id, w.seq_no))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The progress tables of one target schema, and the SQL that reads and
/// writes them.
#[derive(Debug, Clone)]
pub struct ProgressTables {
    schema: String,
}

impl ProgressTables {
    /// The tables in `schema` (a plain identifier).
    pub fn new(schema: &str) -> Result<Self, String> {
        if schema.is_empty()
            || schema.len() > 64
            || !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!(
                "progress schema `{schema}`: use 1 to 64 letters, digits or underscores"
            ));
        }
        Ok(ProgressTables {
            schema: schema.to_string(),
        })
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Statements that create the schema and tables when missing.
    pub fn create_sql(&self) -> Vec<String> {
        let s = &self.schema;
        let cols = "domain_id INT UNSIGNED NOT NULL, \
                    seq_no BIGINT UNSIGNED NOT NULL, \
                    server_id INT UNSIGNED NOT NULL, \
                    file VARCHAR(255) CHARACTER SET utf8mb4 NOT NULL, \
                    end_pos BIGINT UNSIGNED NOT NULL, \
                    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) \
                      ON UPDATE CURRENT_TIMESTAMP(6)";
        vec![
            format!("CREATE DATABASE IF NOT EXISTS `{s}`"),
            format!(
                "CREATE TABLE IF NOT EXISTS `{s}`.`shard_progress` ({cols}, \
                 shard VARCHAR(400) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
                 PRIMARY KEY (domain_id, shard)) ENGINE=InnoDB"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS `{s}`.`low_watermark` ({cols}, \
                 PRIMARY KEY (domain_id)) ENGINE=InnoDB"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS `{s}`.`config` (\
                 name VARCHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY, \
                 value TEXT CHARACTER SET utf8mb4 NOT NULL) ENGINE=InnoDB"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS `{s}`.`sessions` (\
                 conn_id BIGINT UNSIGNED NOT NULL PRIMARY KEY, \
                 started_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
            ),
        ]
    }

    /// The name of the lock one running applier holds on the target.
    pub fn applier_lock(&self) -> String {
        format!("parapply:{}", self.schema)
    }

    /// Records the connection running it as one of this applier's sessions.
    pub fn register_session_sql(&self) -> String {
        format!(
            "REPLACE INTO `{}`.`sessions` (conn_id) VALUES (CONNECTION_ID())",
            self.schema
        )
    }

    /// The connection ids a previous applier recorded.
    pub fn select_sessions_sql(&self) -> String {
        format!("SELECT conn_id FROM `{}`.`sessions`", self.schema)
    }

    /// Forgets the recorded sessions.
    pub fn clear_sessions_sql(&self) -> String {
        format!("DELETE FROM `{}`.`sessions`", self.schema)
    }

    /// The query that reads the shard rows: domain, shard, seq, server, file, end.
    pub fn select_shards_sql(&self) -> String {
        format!(
            "SELECT domain_id, shard, seq_no, server_id, file, end_pos FROM `{}`.`shard_progress`",
            self.schema
        )
    }

    /// The query that reads the low-watermark rows: domain, seq, server, file, end.
    pub fn select_low_sql(&self) -> String {
        format!(
            "SELECT domain_id, seq_no, server_id, file, end_pos FROM `{}`.`low_watermark`",
            self.schema
        )
    }

    /// The query that reads the shard-map fingerprint.
    pub fn select_shard_map_sql(&self) -> String {
        format!(
            "SELECT value FROM `{}`.`config` WHERE name = 'shard_map'",
            self.schema
        )
    }

    /// Stores the shard-map fingerprint.
    pub fn save_shard_map_sql(&self, fingerprint: &str) -> String {
        format!(
            "INSERT INTO `{}`.`config` (name, value) VALUES ('shard_map', '{}') \
             ON DUPLICATE KEY UPDATE value = VALUES(value)",
            self.schema,
            escape(fingerprint)
        )
    }

    /// One statement that moves the watermarks of `rows` — each
    /// `(domain, shard, watermark)` — to the given groups; run inside the
    /// transaction that applies them.
    pub fn upsert_shards_sql(&self, rows: &[(u32, &str, &Watermark)]) -> String {
        let values: Vec<String> = rows
            .iter()
            .map(|(d, shard, w)| format!("({d},'{}',{})", escape(shard), watermark_values(w)))
            .collect();
        self.upsert("shard_progress", "domain_id, shard", &values)
    }

    /// One statement that stores the low-watermark of each domain.
    pub fn upsert_low_sql(&self, rows: &BTreeMap<u32, Watermark>) -> Option<String> {
        let values: Vec<String> = rows
            .iter()
            .map(|(d, w)| format!("({d},{})", watermark_values(w)))
            .collect();
        (!values.is_empty()).then(|| self.upsert("low_watermark", "domain_id", &values))
    }

    fn upsert(&self, table: &str, key: &str, values: &[String]) -> String {
        format!(
            "INSERT INTO `{}`.`{table}` ({key}, seq_no, server_id, file, end_pos) VALUES {} \
             ON DUPLICATE KEY UPDATE seq_no = VALUES(seq_no), server_id = VALUES(server_id), \
             file = VALUES(file), end_pos = VALUES(end_pos)",
            self.schema,
            values.join(",")
        )
    }

    /// Builds the state from the rows the three queries returned (text
    /// protocol values).
    pub fn parse_state(
        shards: &[Vec<Option<Vec<u8>>>],
        low: &[Vec<Option<Vec<u8>>>],
        shard_map: Option<String>,
    ) -> Result<ReplicaState, String> {
        let text = |row: &[Option<Vec<u8>>], i: usize| -> Result<String, String> {
            row.get(i)
                .and_then(|v| v.as_ref())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .ok_or_else(|| format!("progress row has no column {i}"))
        };
        let num = |row: &[Option<Vec<u8>>], i: usize| -> Result<u64, String> {
            let t = text(row, i)?;
            t.parse()
                .map_err(|_| format!("progress column {i} is `{t}`, not a number"))
        };
        let mut st = ReplicaState {
            shard_map,
            ..ReplicaState::default()
        };
        for r in shards {
            let domain = u32::try_from(num(r, 0)?).map_err(|e| e.to_string())?;
            let w = Watermark {
                seq_no: num(r, 2)?,
                server_id: u32::try_from(num(r, 3)?).map_err(|e| e.to_string())?,
                end: BinlogPos::new(text(r, 4)?, num(r, 5)?),
            };
            st.shards.insert((domain, text(r, 1)?), w);
        }
        for r in low {
            let domain = u32::try_from(num(r, 0)?).map_err(|e| e.to_string())?;
            let w = Watermark {
                seq_no: num(r, 1)?,
                server_id: u32::try_from(num(r, 2)?).map_err(|e| e.to_string())?,
                end: BinlogPos::new(text(r, 3)?, num(r, 4)?),
            };
            st.low.insert(domain, w);
        }
        Ok(st)
    }
}

/// `seq_no,server_id,'file',end_pos` of a watermark, for a VALUES list.
fn watermark_values(w: &Watermark) -> String {
    format!(
        "{},{},'{}',{}",
        w.seq_no,
        w.server_id,
        escape(&w.end.file),
        w.end.pos
    )
}

/// Escapes text for a single-quoted SQL literal (backslash and quote).
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\'' => o.push_str("\\'"),
            '\0' => o.push_str("\\0"),
            c => o.push(c),
        }
    }
    o
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

    #[test]
    fn sql_round_trips_through_rows() {
        let t = ProgressTables::new("parapply").unwrap();
        assert!(ProgressTables::new("bad name").is_err());
        let w = wm(7, 700);
        let sql = t.upsert_shards_sql(&[(0, "it's", &w)]);
        assert!(sql.contains("(0,'it\\'s',7,1,'bin.000001',700)"), "{sql}");
        let row = |v: &[&str]| {
            v.iter()
                .map(|s| Some(s.as_bytes().to_vec()))
                .collect::<Vec<_>>()
        };
        let st = ProgressTables::parse_state(
            &[row(&["0", "a", "7", "1", "bin.000001", "700"])],
            &[row(&["0", "5", "1", "bin.000001", "500"])],
            Some("database".into()),
        )
        .unwrap();
        assert_eq!(st.shards[&(0, "a".to_string())], w);
        assert_eq!(st.low[&0].seq_no, 5);
        assert!(ProgressTables::parse_state(&[row(&["x"])], &[], None).is_err());
        assert_eq!(parse_gtid_list("0-1-5, 7-2-9").unwrap().len(), 2);
    }
}
