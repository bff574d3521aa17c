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
//!
//! # How a worker writes a shard row
//!
//! The first time a shard is applied its row is inserted with SQL (`INSERT …
//! ON DUPLICATE KEY UPDATE`). From then on the worker updates it as a row
//! event — a Table_map and an Update_rows event of `shard_progress`
//! ([`ProgressTables::shard_update_events`]) sent inside the group's own
//! `BINLOG` statement — as a statement of its own after the group's, or,
//! for a group of one row statement, merged into that statement (see
//! [`crate::apply::replay::TrailerUse`]) — which spares the server parsing
//! a statement per transaction. The events describe the table exactly as [`create_sql`]
//! makes it; [`ProgressTables::layout_sql`] lets the engine check that the
//! table on the target still has that layout before it uses them.
//!
//! [`create_sql`]: ProgressTables::create_sql

use std::collections::BTreeMap;

use serde::Serialize;

use crate::binlog::constants::{
    column_type, rows_flags, EventType, HEADER_LEN, TM_BIT_LEN_EXACT_F,
};
use crate::binlog::events::FormatDescription;
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

    /// How many of the four tables exist.
    pub fn count_tables_sql(&self) -> String {
        format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND \
             TABLE_NAME IN ('shard_progress', 'low_watermark', 'config', 'sessions')",
            self.schema
        )
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

    /// A query returning the layout of `shard_progress` on the target, to
    /// compare with [`SHARD_PROGRESS_LAYOUT`]: per column, in order,
    /// `name:type:unsigned:octets:precision`.
    pub fn layout_sql(&self) -> String {
        format!(
            "SELECT GROUP_CONCAT(CONCAT_WS(':', COLUMN_NAME, DATA_TYPE, \
             COLUMN_TYPE LIKE '%unsigned', IFNULL(CHARACTER_OCTET_LENGTH, ''), \
             IFNULL(DATETIME_PRECISION, '')) ORDER BY ORDINAL_POSITION SEPARATOR ',') \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = 'shard_progress'",
            self.schema
        )
    }

    /// Appends a Table_map and an Update_rows_v1 event of `shard_progress`
    /// to `out`: the rows `(domain, shard)` — which must exist — move to
    /// their watermarks, and `updated_at` to `now_micros` (since the epoch).
    ///
    /// The events follow the layout of `fde` (the Format_description event
    /// of the `BINLOG` statement they join: post-header lengths, checksum),
    /// and carry `timestamp` and `server_id` in their headers. Returns
    /// `false`, appending nothing, when they cannot be written: a
    /// Format_description event with other post-header lengths than
    /// MariaDB's, or a value longer than its column.
    pub fn shard_update_events(
        &self,
        fde: &FormatDescription,
        rows: &[(u32, &str, &Watermark)],
        timestamp: u32,
        server_id: u32,
        now_micros: u64,
        out: &mut Vec<u8>,
    ) -> bool {
        let table_id_and_flags = 8;
        if fde.post_header_len(EventType::TABLE_MAP) != Some(table_id_and_flags)
            || fde.post_header_len(EventType::UPDATE_ROWS_V1) != Some(table_id_and_flags)
            || rows.is_empty()
            || rows.iter().any(|(_, shard, w)| {
                shard.len() > SHARD_MAX_BYTES || w.end.file.len() > FILE_MAX_BYTES
            })
        {
            return false;
        }
        let checksum = fde.checksum_len();
        let secs = u32::try_from(now_micros / 1_000_000).unwrap_or(u32::MAX);
        let micros = (now_micros % 1_000_000) as u32;

        // Table_map: id and flags, names, 7 column types, their metadata,
        // NULL-ability (none).
        let mut map = Vec::with_capacity(64);
        map.extend_from_slice(&PROGRESS_TABLE_ID.to_le_bytes()[..6]);
        map.extend_from_slice(&TM_BIT_LEN_EXACT_F.to_le_bytes());
        for name in [self.schema.as_str(), "shard_progress"] {
            map.push(name.len() as u8); // schema names are at most 64 bytes
            map.extend_from_slice(name.as_bytes());
            map.push(0);
        }
        map.push(7);
        map.extend_from_slice(&[
            column_type::LONG,       // domain_id
            column_type::LONGLONG,   // seq_no
            column_type::LONG,       // server_id
            column_type::VARCHAR,    // file
            column_type::LONGLONG,   // end_pos
            column_type::TIMESTAMP2, // updated_at
            column_type::VARCHAR,    // shard
        ]);
        map.push(5); // metadata bytes
        map.extend_from_slice(&(FILE_MAX_BYTES as u16).to_le_bytes());
        map.push(6); // TIMESTAMP(6)
        map.extend_from_slice(&(SHARD_MAX_BYTES as u16).to_le_bytes());
        map.push(0);

        // Update_rows: before image = the key (domain_id, shard), after
        // image = the other columns.
        let mut upd = Vec::with_capacity(16 + rows.len() * 64);
        upd.extend_from_slice(&PROGRESS_TABLE_ID.to_le_bytes()[..6]);
        upd.extend_from_slice(&rows_flags::STMT_END.to_le_bytes());
        upd.push(7);
        upd.push(0b0100_0001);
        upd.push(0b0011_1110);
        for (domain, shard, w) in rows {
            upd.push(0); // no NULLs
            upd.extend_from_slice(&domain.to_le_bytes());
            upd.extend_from_slice(&(shard.len() as u16).to_le_bytes());
            upd.extend_from_slice(shard.as_bytes());
            upd.push(0);
            upd.extend_from_slice(&w.seq_no.to_le_bytes());
            upd.extend_from_slice(&w.server_id.to_le_bytes());
            upd.extend_from_slice(&(w.end.file.len() as u16).to_le_bytes());
            upd.extend_from_slice(w.end.file.as_bytes());
            upd.extend_from_slice(&w.end.pos.to_le_bytes());
            upd.extend_from_slice(&secs.to_be_bytes());
            upd.extend_from_slice(&micros.to_be_bytes()[1..]);
        }
        for (t, body) in [
            (EventType::TABLE_MAP, &map),
            (EventType::UPDATE_ROWS_V1, &upd),
        ] {
            let start = out.len();
            let size = (HEADER_LEN + body.len() + checksum) as u32;
            out.extend_from_slice(&timestamp.to_le_bytes());
            out.push(t.0);
            out.extend_from_slice(&server_id.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes()); // log_pos: not in any file
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(body);
            if checksum > 0 {
                let crc = crc32fast::hash(&out[start..]);
                out.extend_from_slice(&crc.to_le_bytes());
            }
        }
        true
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

/// The layout of `shard_progress` that [`ProgressTables::create_sql`]
/// makes, as [`ProgressTables::layout_sql`] reports it. The row events of
/// [`ProgressTables::shard_update_events`] describe exactly this table.
pub const SHARD_PROGRESS_LAYOUT: &str = "domain_id:int:1::,seq_no:bigint:1::,\
    server_id:int:1::,file:varchar:0:1020:,end_pos:bigint:1::,updated_at:timestamp:0::6,\
    shard:varchar:0:1600:";

/// Bytes of `shard_progress.file` (VARCHAR(255) in utf8mb4).
const FILE_MAX_BYTES: usize = 255 * 4;
/// Bytes of `shard_progress.shard` (VARCHAR(400) in utf8mb4).
const SHARD_MAX_BYTES: usize = 400 * 4;

/// The table id the Table_map of `shard_progress` declares inside a
/// `BINLOG` statement. Table ids only link a statement's Rows events to its
/// Table_map; the server clears them at the end of each statement, and it
/// numbers its own tables from 1 upwards, far below this value.
const PROGRESS_TABLE_ID: u64 = 0xffff_ffff_ff00;

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
