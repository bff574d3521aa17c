//! `CREATE TABLE … SELECT` in ROW format, replayed as one transaction under
//! the group's GTID.
//!
//! The primary logs such a statement as one GTID group that is not
//! standalone: the `CREATE TABLE` (the server writes the table's full
//! definition, without the `SELECT`), then a Table_map and the Rows events
//! of the copied rows, then `COMMIT` (or an XID). The SQL thread keeps the
//! `CREATE TABLE` inside that group: applying the GTID event sets the
//! `OPTION_GTID_BEGIN` bit of its session, and the server skips the
//! implicit commit of `CREATE TABLE` while that bit is set — so the
//! replica's binary log holds the group once, as the primary's does. A
//! client session cannot set that bit (a `BINLOG` statement accepts only
//! Format_description and row events, never a GTID event), and its
//! `CREATE TABLE` always commits: the table and the rows would be two
//! transactions, the GTID twice in the target's binary log (refused under
//! `gtid_strict_mode`), and a crash between them would leave the table
//! empty while the restart rule takes the group as applied.
//!
//! The one statement a client session can send that the server logs as
//! `CREATE TABLE` and rows in one GTID group is a `CREATE TABLE … SELECT`
//! of its own. So the rows are staged first, outside the binary log, in a
//! table of the same database with the same definition (the staging table,
//! [`STAGING_TABLE`]), and the group is then replayed as the primary's
//! `CREATE TABLE` text followed by `SELECT * FROM` the staging table,
//! logged in ROW format under the group's GTID:
//!
//! 1. `sql_log_bin=0`; `CREATE OR REPLACE TABLE db.staging` with the
//!    primary's definition, under the event's session context;
//! 2. the group's row events, their Table_map renamed to the staging table
//!    (`BINLOG`, not logged);
//! 3. `sql_log_bin=1`, `binlog_format=ROW` (the session's value is kept in
//!    `@parapply_binlog_format`), `NO_AUTO_VALUE_ON_ZERO` added to the
//!    event's `sql_mode` (a copied 0 stays 0); the `CREATE TABLE … SELECT *
//!    FROM db.staging`: the target logs the group's GTID once, with its own
//!    `CREATE TABLE` (the same definition) and the same rows;
//! 4. `sql_log_bin=0`, the staging table dropped, the session's
//!    `binlog_format` back.
//!
//! Crash safety: nothing before step 3 is in the target's binary log, and
//! step 3 commits the table, its rows and the GTID together; so a crash
//! before it leaves the group unapplied by the restart rule (the next run
//! replaces the staging table and starts again), and a crash after it
//! leaves the group applied. A crash between 3 and 4 leaves the staging
//! table behind; the next replay into that database replaces it, and the
//! engine drops such tables when it starts.
//!
//! Only the shapes this copy reproduces exactly take this path: one
//! `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] `db`.`t` (…)` logged without
//! an error, then row events of that table only. Foreign keys are left out
//! of the staging table's definition (their names must be unique in a
//! database; the statement's own table has them and checks them as the
//! primary did). A definition with invisible, generated or
//! system-versioning columns (`SELECT *` does not copy them as they are),
//! or a foreign key the server did not write on a line of its own, and row
//! events of other tables (a function the `SELECT` called) take the older
//! path: the `CREATE TABLE` commits under the group's GTID and the rows
//! follow in a second transaction under the same GTID (see
//! `docs/operations.md`, known differences).

use super::{
    binlog_statement, decode, plan_query, send_fde, Collations, ReplayError, Session, Step,
    BINLOG_CHUNK,
};
use crate::binlog::constants::{gtid_flags, HEADER_LEN};
use crate::binlog::{Event, EventHeader, EventType, FormatDescription};
use crate::group::{Group, GroupEnd, GroupKind};

/// The name of the table a `CREATE TABLE … SELECT` stages its rows in, in
/// the database of the table it creates. Not a name an application
/// chooses by chance; the engine drops any it finds when it starts.
pub const STAGING_TABLE: &str = "#parapply-ctas";

/// The failpoint (see [`crate::apply::failpoint`]) right after the rows
/// are staged, before the `CREATE TABLE … SELECT` runs.
pub const FAILPOINT_STAGED: &str = "ctas-staged";

/// `sql_mode`'s `NO_AUTO_VALUE_ON_ZERO`.
const MODE_NO_AUTO_VALUE_ON_ZERO: u64 = 1 << 19;

/// Words whose presence in a definition sends the group to the older path
/// (see the module doc).
const NOT_COPIED_AS_IS: &[&[u8]] = &[
    b"INVISIBLE",
    b"GENERATED ALWAYS",
    b"WITH SYSTEM VERSIONING",
    b"PERIOD FOR",
];

/// What [`CreateSelect::of`] found of the `CREATE TABLE`: its index in
/// the group, database, table and the staging table's definition.
type Found = (usize, Vec<u8>, Vec<u8>, Vec<u8>);

/// A `CREATE TABLE … SELECT` group in the shape this module replays.
#[derive(Debug)]
pub(super) struct CreateSelect {
    /// Index of the `CREATE TABLE` Query event in the group.
    query_at: usize,
    /// The database of the created table (the staging table's too).
    db: Vec<u8>,
    /// The staging table's definition: the statement's after the table's
    /// name, without foreign keys.
    staging_definition: Vec<u8>,
    /// `BINLOG` payloads: the group's row events, Table_maps renamed to
    /// the staging table, in whole events of about [`BINLOG_CHUNK`] bytes.
    chunks: Vec<Vec<u8>>,
}

impl CreateSelect {
    /// The group as a `CREATE TABLE … SELECT` this module replays, or
    /// `None` (any other group, or a shape it leaves to the older path).
    pub(super) fn of(group: &Group) -> Option<CreateSelect> {
        if group.kind != GroupKind::Ddl
            || group.end != GroupEnd::Commit
            || group.gtid_flags & (gtid_flags::STANDALONE | gtid_flags::PREPARED_XA) != 0
            || group.maria_gtid().is_none()
        {
            return None;
        }
        let fde = &group.format;
        let mut found: Option<Found> = None;
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut rows: Vec<u8> = Vec::new();
        let mut maps: Vec<u8> = Vec::new();
        for (index, (t, bytes)) in group.event_bytes().enumerate() {
            match t {
                EventType::GTID | EventType::XID | EventType::ANNOTATE_ROWS => {}
                t if t.is_query() => {
                    let Ok(Event::Query(q)) = decode(bytes, t, fde) else {
                        return None;
                    };
                    if q.is_begin() || q.is_commit() {
                        continue;
                    }
                    if found.is_some() || q.error_code != 0 || !maps.is_empty() {
                        return None;
                    }
                    let (db, table, at) = created_table(&q.query)?;
                    let db = db.unwrap_or_else(|| q.db.to_vec());
                    let staging = without_foreign_keys(&q.query[at..])?;
                    found = Some((index, db, table, staging));
                }
                EventType::TABLE_MAP => {
                    let (_, db, table, _) = found.as_ref()?;
                    let map = renamed_table_map(bytes, fde, db, table)?;
                    maps.extend_from_slice(&map);
                    rows.extend_from_slice(&map);
                }
                t if t.is_rows() => {
                    found.as_ref()?;
                    if rows.len() > maps.len() && rows.len() + bytes.len() > BINLOG_CHUNK {
                        chunks.push(std::mem::replace(&mut rows, maps.clone()));
                    }
                    rows.extend_from_slice(bytes);
                }
                _ => return None,
            }
        }
        let (query_at, db, _, staging_definition) = found?;
        if rows.len() == maps.len() {
            // No rows: the `CREATE TABLE` alone is the whole group.
            return None;
        }
        chunks.push(rows);
        Some(CreateSelect {
            query_at,
            db,
            staging_definition,
            chunks,
        })
    }

    /// Appends the steps of the module doc to `out`.
    pub(super) fn plan(
        &self,
        group: &Group,
        session: &mut Session,
        collations: &Collations,
        out: &mut Vec<Step>,
    ) -> Result<(), ReplayError> {
        let (t, bytes) = group
            .event_bytes()
            .nth(self.query_at)
            .expect("the index of an event of the group");
        let err = |cause| ReplayError::Decode {
            index: self.query_at,
            type_name: t.name(),
            cause,
        };
        let header = EventHeader::decode(bytes).map_err(err)?;
        let Event::Query(q) = decode(bytes, t, &group.format).map_err(err)? else {
            unreachable!("a Query type decodes to a Query")
        };
        let staging = staging_name(&self.db);
        // 1. The staging table, under the event's context, not logged.
        out.push(Step::sql("SET @@session.sql_log_bin=0"));
        let mut create = b"CREATE OR REPLACE TABLE ".to_vec();
        create.extend_from_slice(&staging);
        create.extend_from_slice(&self.staging_definition);
        let mut staged = q.clone();
        staged.query = std::borrow::Cow::Owned(create);
        plan_query(&header, &staged, session, collations, Vec::new(), out)?;
        // 2. The rows, into it.
        send_fde(&group.format, session, out);
        for chunk in &self.chunks {
            out.push(Step::last(binlog_statement(chunk)));
        }
        if let Some(last) = out.last_mut() {
            last.failpoint = Some(FAILPOINT_STAGED);
        }
        // 3. The statement the target logs as the group.
        let mut set = String::from(
            "SET @@session.sql_log_bin=1, @parapply_binlog_format=\
             IFNULL(@parapply_binlog_format, @@session.binlog_format), \
             @@session.binlog_format='ROW'",
        );
        if let Some(m) = q.status.sql_mode {
            let m = (m & !super::MODE_NO_DIR_IN_CREATE) | MODE_NO_AUTO_VALUE_ON_ZERO;
            set.push_str(&format!(", @@session.sql_mode={m}"));
            // The next Query event sets its own.
            session.context.clear();
        }
        out.push(Step::sql(set));
        let mut sql = q.query.to_vec();
        sql.extend_from_slice(b" SELECT * FROM ");
        sql.extend_from_slice(&staging);
        out.push(Step::last(sql));
        // 4. Clean up, not logged.
        let mut drop = b"SET @@session.sql_log_bin=0;\nDROP TABLE IF EXISTS ".to_vec();
        drop.extend_from_slice(&staging);
        drop.extend_from_slice(
            b";\nSET @@session.sql_log_bin=1, \
              @@session.binlog_format=@parapply_binlog_format, @parapply_binlog_format=NULL",
        );
        out.push(Step::last(drop));
        Ok(())
    }
}

/// `` `db`.`#parapply-ctas` ``.
fn staging_name(db: &[u8]) -> Vec<u8> {
    let mut s = quote(db);
    s.push(b'.');
    s.extend(quote(STAGING_TABLE.as_bytes()));
    s
}

/// `name` as a quoted identifier.
fn quote(name: &[u8]) -> Vec<u8> {
    let mut s = vec![b'`'];
    for &b in name {
        s.push(b);
        if b == b'`' {
            s.push(b'`');
        }
    }
    s.push(b'`');
    s
}

/// The table a `CREATE TABLE` the server wrote creates: `(database if
/// named, table, offset of the definition after the name)`, when the
/// statement is `CREATE [OR REPLACE] TABLE [IF NOT EXISTS]` with quoted
/// names followed by ` (` and its definition holds nothing of
/// [`NOT_COPIED_AS_IS`].
fn created_table(sql: &[u8]) -> Option<(Option<Vec<u8>>, Vec<u8>, usize)> {
    let mut at = 0;
    for (word, optional) in [
        (&b"CREATE "[..], false),
        (b"OR REPLACE ", true),
        (b"TABLE ", false),
        (b"IF NOT EXISTS ", true),
    ] {
        if sql.get(at..at + word.len()) == Some(word) {
            at += word.len();
        } else if !optional {
            return None;
        }
    }
    let (first, len) = quoted(&sql[at..])?;
    at += len;
    let (db, table) = if sql.get(at) == Some(&b'.') {
        let (second, len) = quoted(&sql[at + 1..])?;
        at += 1 + len;
        (Some(first), second)
    } else {
        (None, first)
    };
    let definition = &sql[at..];
    let upper = definition.to_ascii_uppercase();
    if !definition.starts_with(b" (") || NOT_COPIED_AS_IS.iter().any(|w| contains(&upper, w)) {
        return None;
    }
    Some((db, table, at))
}

/// `definition` (as the server writes it: one column, key or constraint
/// per line) without its foreign keys: each `CONSTRAINT … FOREIGN KEY` line
/// goes, and the comma that ended the line before it when it was the last.
/// `None` when `FOREIGN KEY` appears anywhere else.
fn without_foreign_keys(definition: &[u8]) -> Option<Vec<u8>> {
    let is_fk =
        |line: &[u8]| line.starts_with(b"  CONSTRAINT `") && contains(line, b" FOREIGN KEY (");
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut dropped = false;
    for line in definition.split(|&b| b == b'\n') {
        if is_fk(line) {
            dropped = true;
            continue;
        }
        if contains(&line.to_ascii_uppercase(), b"FOREIGN KEY") {
            return None;
        }
        kept.push(line);
    }
    if !dropped {
        return Some(definition.to_vec());
    }
    // The line before the closing `)` of the column list ends without a
    // comma.
    let close = kept.iter().position(|l| l.starts_with(b")"))?;
    let mut out = Vec::with_capacity(definition.len());
    for (i, line) in kept.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        match line.strip_suffix(b",") {
            Some(l) if i + 1 == close => out.extend_from_slice(l),
            _ => out.extend_from_slice(line),
        }
    }
    Some(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A `` `quoted` `` identifier at the start of `s`: its name and length.
fn quoted(s: &[u8]) -> Option<(Vec<u8>, usize)> {
    if s.first() != Some(&b'`') {
        return None;
    }
    let mut name = Vec::new();
    let mut i = 1;
    loop {
        match (s.get(i)?, s.get(i + 1)) {
            (b'`', Some(b'`')) => {
                name.push(b'`');
                i += 2;
            }
            (b'`', _) => return Some((name, i + 1)),
            (&b, _) => {
                name.push(b);
                i += 1;
            }
        }
    }
}

/// A Table_map event of `db`.`table` renamed to the staging table of
/// `db` (size and checksum renewed); `None` for a Table_map of another
/// table, or one it cannot read.
fn renamed_table_map(
    bytes: &[u8],
    fde: &FormatDescription,
    db: &[u8],
    table: &[u8],
) -> Option<Vec<u8>> {
    let crc = fde.checksum_len();
    let phl = fde.post_header_len(EventType::TABLE_MAP)?;
    let body = bytes.get(HEADER_LEN..bytes.len().checked_sub(crc)?)?;
    let db_len = usize::from(*body.get(phl)?);
    let table_at = phl + 1 + db_len + 1;
    let table_len = usize::from(*body.get(table_at)?);
    let rest_at = table_at + 1 + table_len + 1;
    if body.get(phl + 1..phl + 1 + db_len)? != db
        || body.get(table_at + 1..table_at + 1 + table_len)? != table
        || rest_at > body.len()
    {
        return None;
    }
    let name = STAGING_TABLE.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + name.len());
    out.extend_from_slice(&bytes[..HEADER_LEN]);
    out.extend_from_slice(&body[..table_at]);
    out.push(u8::try_from(name.len()).expect("a short name"));
    out.extend_from_slice(name);
    out.push(0);
    out.extend_from_slice(&body[rest_at..]);
    let size = u32::try_from(out.len() + crc).ok()?;
    out[9..13].copy_from_slice(&size.to_le_bytes());
    if crc > 0 {
        let sum = crc32fast::hash(&out);
        out.extend_from_slice(&sum.to_le_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_created_table_is_read_from_the_servers_text() {
        let t = |s: &str| created_table(s.as_bytes());
        let sql = "CREATE TABLE `d`.`c``x` (\n  `a` int(11) NOT NULL\n) ENGINE=InnoDB";
        assert_eq!(t(sql), Some((Some(b"d".to_vec()), b"c`x".to_vec(), 23)));
        assert!(sql[23..].starts_with(" (\n"));
        assert_eq!(
            t("CREATE OR REPLACE TABLE `t` (\n  `a` int(1) NOT NULL\n)"),
            Some((None, b"t".to_vec(), 27))
        );
        assert!(t("CREATE TABLE IF NOT EXISTS `d`.`t` (\n  `a` int(1)\n)").is_some());
        // Not the server's text, or not copied as is by `SELECT *`.
        assert_eq!(t("CREATE TABLE d.t (a int)"), None);
        assert_eq!(t("CREATE TEMPORARY TABLE `t` (a int)"), None);
        assert_eq!(t("CREATE TABLE `t` LIKE `u`"), None);
        assert_eq!(t("CREATE TABLE `t` (\n  `a` int(11) INVISIBLE\n)"), None);
        assert_eq!(
            t("CREATE TABLE `t` (\n  `a` int, `b` int GENERATED ALWAYS AS (`a`) VIRTUAL\n)"),
            None
        );
        assert_eq!(t("CREATE TABLE `unterminated"), None);
    }

    #[test]
    fn foreign_keys_are_left_out_of_the_staging_definition() {
        let sql = " (\n  `id` int(11) NOT NULL,\n  `p` int(11) DEFAULT NULL,\n  KEY `f` (`p`),\n  \
                   CONSTRAINT `f` FOREIGN KEY (`p`) REFERENCES `par` (`id`),\n  \
                   CONSTRAINT `g` FOREIGN KEY (`id`) REFERENCES `x`.`y` (`id`) ON DELETE CASCADE\n\
                   ) ENGINE=InnoDB";
        let want = " (\n  `id` int(11) NOT NULL,\n  `p` int(11) DEFAULT NULL,\n  KEY `f` (`p`)\n\
                    ) ENGINE=InnoDB";
        let got = without_foreign_keys(sql.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), want);
        let plain = " (\n  `a` int(11) NOT NULL\n) ENGINE=MyISAM";
        assert_eq!(
            without_foreign_keys(plain.as_bytes()).unwrap(),
            plain.as_bytes()
        );
        // Elsewhere than on a constraint's line: not understood.
        let odd = " (\n  `a` int(11) COMMENT 'foreign key'\n)";
        assert_eq!(without_foreign_keys(odd.as_bytes()), None);
    }
}
