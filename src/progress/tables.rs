//! The progress tables on a target: the SQL that creates, reads and writes
//! them, and the row events that move a shard's watermark inside a group's
//! own `BINLOG` statement (see the [module doc](super) for the record they
//! hold and how a worker writes it).

use std::collections::BTreeMap;

use crate::binlog::constants::{
    column_type, rows_flags, EventType, HEADER_LEN, TM_BIT_LEN_EXACT_F,
};
use crate::binlog::events::FormatDescription;
use crate::position::BinlogPos;

use super::state::{ReplicaState, Watermark};

/// The server lock (`GET_LOCK`) the one running applier of a target
/// holds, whatever its progress schema.
pub const APPLIER_LOCK: &str = "parapply:applier";

/// A progress row the target returned that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateParseError {
    /// A column is missing or NULL.
    #[error("`{table}` row has no column {column}")]
    Missing {
        /// The table.
        table: &'static str,
        /// The column's index.
        column: usize,
    },
    /// A column is not a number in range.
    #[error("`{table}` column {column} is `{value}`, not a number in range")]
    NotANumber {
        /// The table.
        table: &'static str,
        /// The column's index.
        column: usize,
        /// What it holds.
        value: String,
    },
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

    /// The name of the lock one running applier holds on the target: the
    /// same for every progress schema, so that a second applier is locked
    /// out whatever `--progress-schema` it was given (two appliers on one
    /// target replay onto each other's data).
    pub fn applier_lock(&self) -> String {
        APPLIER_LOCK.to_string()
    }

    /// Records the connection running it as one of this applier's sessions.
    pub fn register_session_sql(&self) -> String {
        format!(
            "REPLACE INTO `{}`.`sessions` (conn_id) VALUES (CONNECTION_ID())",
            self.schema
        )
    }

    /// The connection ids a previous applier recorded.
    ///
    /// Only sessions recorded since the server started: older ones cannot
    /// run any more, and in a restored backup they name another server's
    /// connections (whose ids this server may be reusing).
    pub fn select_sessions_sql(&self) -> String {
        format!(
            "SELECT conn_id FROM `{}`.`sessions` WHERE started_at >= NOW(6) - INTERVAL \
             (SELECT VARIABLE_VALUE + 1 FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'UPTIME') SECOND",
            self.schema
        )
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

    /// The query that reads the value of the `config` row `name`.
    pub fn select_config_sql(&self, name: &str) -> String {
        format!(
            "SELECT value FROM `{}`.`config` WHERE name = '{}'",
            self.schema,
            escape(name)
        )
    }

    /// Sets the `config` row `name` to `value`.
    pub fn save_config_sql(&self, name: &str, value: &str) -> String {
        format!(
            "INSERT INTO `{}`.`config` (name, value) VALUES ('{}', '{}') \
             ON DUPLICATE KEY UPDATE value = VALUES(value)",
            self.schema,
            escape(name),
            escape(value)
        )
    }

    /// Deletes the `config` row `name`.
    pub fn delete_config_sql(&self, name: &str) -> String {
        format!(
            "DELETE FROM `{}`.`config` WHERE name = '{}'",
            self.schema,
            escape(name)
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
    ) -> Result<ReplicaState, StateParseError> {
        fn text(
            table: &'static str,
            row: &[Option<Vec<u8>>],
            column: usize,
        ) -> Result<String, StateParseError> {
            row.get(column)
                .and_then(|v| v.as_ref())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .ok_or(StateParseError::Missing { table, column })
        }
        fn num<T: std::str::FromStr>(
            table: &'static str,
            row: &[Option<Vec<u8>>],
            column: usize,
        ) -> Result<T, StateParseError> {
            let value = text(table, row, column)?;
            value.parse().map_err(|_| StateParseError::NotANumber {
                table,
                column,
                value,
            })
        }
        let mut st = ReplicaState {
            shard_map,
            ..ReplicaState::default()
        };
        const SHARDS: &str = "shard_progress";
        const LOW: &str = "low_watermark";
        for r in shards {
            let w = Watermark {
                seq_no: num(SHARDS, r, 2)?,
                server_id: num(SHARDS, r, 3)?,
                end: BinlogPos::new(text(SHARDS, r, 4)?, num(SHARDS, r, 5)?),
            };
            st.shards
                .insert((num(SHARDS, r, 0)?, text(SHARDS, r, 1)?), w);
        }
        for r in low {
            let w = Watermark {
                seq_no: num(LOW, r, 1)?,
                server_id: num(LOW, r, 2)?,
                end: BinlogPos::new(text(LOW, r, 3)?, num(LOW, r, 4)?),
            };
            st.low.insert(num(LOW, r, 0)?, w);
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
        assert!(
            ProgressTables::parse_state(&[], &[row(&["0", "5", "1", "f", "-3"])], None).is_err()
        );
    }
}
