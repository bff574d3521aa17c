//! Cuts the event stream into transaction groups.
//!
//! A *group* is what the primary committed as one unit: the unit the
//! scheduler orders, a worker applies, and a watermark counts.
//!
//! # Where a group starts and ends
//!
//! * MariaDB: a GTID event starts it. With `STANDALONE` (DDL, or a statement
//!   on non-transactional tables) the group is the one Query that follows
//!   (after any INTVAR/RAND/USER_VAR it needs). Otherwise the GTID event
//!   itself stands for `BEGIN` (no BEGIN Query is written) and the group ends
//!   at an XID, a Query `COMMIT` or `ROLLBACK`, or an XA_PREPARE event.
//! * MySQL: a GTID or anonymous GTID event, then either `BEGIN` … XID/COMMIT
//!   or a single DDL Query.
//! * Binlogs without GTIDs (MySQL ≤ 5.5): `BEGIN` … end as above, or any
//!   other statement alone.
//!
//! Control events (Format_description, Rotate, GTID_LIST, checkpoints,
//! heartbeats…) never belong to a group; a relay log may even put them in
//! the middle of one when it rotates, and they are skipped there too.
//!
//! A group that is cut short — a new GTID arrives before its end, as in a
//! relay log after the IO thread reconnected — is dropped whole (with a
//! warning naming it); the primary sends it again. A group still open when
//! the stream ends is not emitted: it is not committed yet.
//!
//! # What a group carries
//!
//! Its GTID, its place in the primary's coordinates (file, start and end
//! position), the databases and tables it touches, its [`GroupKind`], how
//! it ends ([`GroupEnd`]: committed or rolled back), and
//! the raw bytes of its events (header and checksum included) with each
//! event's offset, ready to be replayed.

use std::sync::Arc;

use serde::Serialize;

use crate::binlog::events::{FormatDescription, GtidEvent, QueryEvent, TableMapEvent, UpdatedDbs};
use crate::binlog::{BinlogReader, Event, EventType, RawEvent, ReadError};
use crate::position::{BinlogPos, Gtid, MariaGtid};

/// What a group does, as far as scheduling is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// Row events only (plus BEGIN/COMMIT, savepoints, annotations): the
    /// databases are known exactly from the Table_map events.
    RowDml,
    /// At least one statement-format DML Query: the databases it touched are
    /// known only where the server lists them.
    StatementDml,
    /// DDL: commits on its own, cannot share a transaction.
    Ddl,
    /// Part of an XA transaction (prepare, commit or rollback).
    Xa,
    /// Touches non-transactional tables: cannot be rolled back.
    NonTransactional,
    /// Something the grouper cannot classify (unknown or legacy events).
    Unknown,
}

impl GroupKind {
    /// The name used in text and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupKind::RowDml => "row_dml",
            GroupKind::StatementDml => "statement_dml",
            GroupKind::Ddl => "ddl",
            GroupKind::Xa => "xa",
            GroupKind::NonTransactional => "non_transactional",
            GroupKind::Unknown => "unknown",
        }
    }
}

/// How a group ends: what the primary did with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupEnd {
    /// Committed: an XID event, a Query `COMMIT`, an XA_PREPARE event, or
    /// the one statement of a group without BEGIN.
    Commit,
    /// A Query `ROLLBACK`: the primary rolled the transaction back. It was
    /// logged because it changed non-transactional tables, whose changes
    /// stay; the transactional ones are undone.
    Rollback,
}

/// Where one event lies within [`Group::bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSpan {
    /// Offset in `bytes`.
    pub offset: usize,
    /// Length of the whole event.
    pub len: usize,
    /// Its type.
    pub event_type: EventType,
}

/// One transaction group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its GTID (`None` in binlogs without GTIDs).
    pub gtid: Option<Gtid>,
    /// Server id of its first event.
    pub server_id: u32,
    /// The primary's file that holds it.
    pub file: Arc<str>,
    /// Start position in the primary's file (of its first event).
    pub start_pos: u64,
    /// End position in the primary's file (of its last event).
    pub end_pos: u64,
    /// The file it was read from (a relay log's name for relay logs).
    pub source_file: Arc<str>,
    /// Offset of its first event in `source_file`.
    pub source_pos: u64,
    /// Databases it touches, sorted.
    pub databases: Vec<String>,
    /// Whether `databases` is known to be complete (row events, or a server
    /// that lists what a statement updated). A statement's default database
    /// alone proves nothing (`USE a; UPDATE b.t …`).
    pub databases_exact: bool,
    /// `(database, table)` of each Table_map, sorted.
    pub tables: Vec<(String, String)>,
    /// Its kind.
    pub kind: GroupKind,
    /// How it ends.
    pub end: GroupEnd,
    /// The primary started anew (a Format_description event of a server
    /// start, not a copy sent at a reconnect) since the group before: the
    /// temporary tables of its earlier sessions are gone.
    pub after_primary_start: bool,
    /// MariaDB GTID `flags2` (0 otherwise).
    pub gtid_flags: u8,
    /// MariaDB group-commit id.
    pub commit_id: Option<u64>,
    /// Timestamp of its first event.
    pub timestamp: u32,
    /// Each event's place in `bytes`.
    pub events: Vec<EventSpan>,
    /// The raw events, back to back.
    pub bytes: Vec<u8>,
    /// The format description in force for its events.
    pub format: Arc<FormatDescription>,
}

impl Group {
    /// The MariaDB GTID, if it has one.
    pub fn maria_gtid(&self) -> Option<MariaGtid> {
        self.gtid.as_ref().and_then(Gtid::maria)
    }

    /// Its start in the primary's coordinates.
    pub fn start(&self) -> BinlogPos {
        BinlogPos::new(self.file.to_string(), self.start_pos)
    }

    /// Its end in the primary's coordinates.
    pub fn end(&self) -> BinlogPos {
        BinlogPos::new(self.file.to_string(), self.end_pos)
    }

    /// The raw bytes of each event.
    pub fn event_bytes(&self) -> impl Iterator<Item = (EventType, &[u8])> {
        self.events.iter().filter_map(|s| {
            self.bytes
                .get(s.offset..s.offset + s.len)
                .map(|b| (s.event_type, b))
        })
    }

    /// Bytes of its events (also when read [without
    /// them](Grouper::without_bytes)).
    pub fn event_len(&self) -> u64 {
        self.events.iter().map(|s| s.len as u64).sum()
    }

    /// A short name for messages: `0-1-4711 (mariadb-bin.000003:1893)`.
    pub fn describe(&self) -> String {
        match &self.gtid {
            Some(g) => format!("{g} ({}:{})", self.file, self.start_pos),
            None => format!("{}:{}", self.file, self.start_pos),
        }
    }
}

/// A group being assembled.
struct Open {
    group: Group,
    /// BEGIN / XA START seen: the group ends at XID, COMMIT, ROLLBACK, XA_PREPARE.
    begun: bool,
    /// Started by a GTID event (not implicitly).
    has_gtid: bool,
    saw_rows: bool,
    saw_statement: bool,
    saw_ddl: bool,
    saw_xa: bool,
    saw_unknown: bool,
    /// Ended by a Query COMMIT rather than an XID.
    ended_by_commit: bool,
    /// Ended by a Query ROLLBACK.
    ended_by_rollback: bool,
    /// Databases and tables seen (few per group: a Vec with a linear
    /// check beats a tree; sorted in `finish`).
    dbs: Vec<String>,
    dbs_exact: bool,
    tables: Vec<(String, String)>,
    /// Copy the events' bytes into the group.
    keep_bytes: bool,
    /// Table ids the group's Table_map events declared.
    table_ids: Vec<u64>,
}

/// Counters of what the grouper saw.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct GrouperStats {
    /// Events read (all of them).
    pub events: u64,
    /// Bytes of events read.
    pub bytes: u64,
    /// Groups emitted.
    pub groups: u64,
    /// Groups dropped because they were cut short.
    pub dropped: u64,
}

/// Cuts groups from events handed over one at a time: the grouping rules
/// of this module, for any reader ([`Grouper`] is one over a
/// [`BinlogReader`]; the catch-up scan walks files itself and hands over
/// only what its fast path does not recognise).
#[derive(Default)]
pub struct Cutter {
    open: Option<Open>,
    stats: GrouperStats,
    /// A server start was seen since the last group began.
    primary_started: bool,
    /// Do not copy each group's event bytes ([`Grouper::without_bytes`]).
    no_bytes: bool,
}

impl Cutter {
    /// A cutter that keeps each group's event bytes (`keep_bytes`) or not.
    pub fn new(keep_bytes: bool) -> Self {
        Cutter {
            no_bytes: !keep_bytes,
            ..Cutter::default()
        }
    }

    /// What was handed over so far.
    pub fn stats(&self) -> GrouperStats {
        self.stats
    }

    /// A group still open, if any: `(gtid or position, events so far)`.
    pub fn pending(&self) -> Option<(String, usize)> {
        self.open
            .as_ref()
            .map(|o| (o.group.describe(), o.group.events.len()))
    }

    /// No group is open.
    pub fn is_idle(&self) -> bool {
        self.open.is_none()
    }

    /// A server start (a Format_description event with a creation time)
    /// was seen and the group it marks has not begun yet.
    pub fn primary_started(&self) -> bool {
        self.primary_started
    }

    /// Hands over the next event; returns the group it completes, if any.
    pub fn push(&mut self, ev: &RawEvent<'_>) -> Result<Option<Group>, ReadError> {
        self.stats.events += 1;
        self.stats.bytes += ev.bytes.len() as u64;
        // As the SQL thread reads it: a Format_description event with a
        // creation time, not one the primary sent again at a reconnect
        // (those have no creation time, or an artificial position).
        if ev.event_type() == EventType::FORMAT_DESCRIPTION
            && ev.header.log_pos != 0
            && ev.header.flags & crate::binlog::constants::LOG_EVENT_ARTIFICIAL_F == 0
            && matches!(ev.decode(), Ok(Event::FormatDescription(f)) if f.create_timestamp != 0)
        {
            self.primary_started = true;
        }
        let starts = self.open.is_none();
        if let Some(mut g) = step(&mut self.open, &mut self.stats, ev, !self.no_bytes)? {
            self.stats.groups += 1;
            g.after_primary_start |= std::mem::take(&mut self.primary_started);
            return Ok(Some(g));
        }
        // A group began with this event and is still open: it is the
        // one that follows the start.
        if starts && self.open.is_some() && self.primary_started {
            if let Some(o) = self.open.as_mut() {
                o.group.after_primary_start = true;
            }
            self.primary_started = false;
        }
        Ok(None)
    }
}

/// Reads groups from a [`BinlogReader`].
pub struct Grouper {
    reader: BinlogReader,
    cutter: Cutter,
}

impl Grouper {
    /// Groups the events `reader` yields.
    pub fn new(reader: BinlogReader) -> Self {
        Grouper {
            reader,
            cutter: Cutter::new(true),
        }
    }

    /// Groups without their event bytes: `bytes` stays empty (and
    /// [`Group::event_bytes`] yields nothing), everything else is as usual,
    /// [`Group::event_len`] included. For scans that only place groups
    /// (catch-up sets): no copy of the stream.
    pub fn without_bytes(mut self) -> Self {
        self.cutter.no_bytes = true;
        self
    }

    /// What was read so far.
    pub fn stats(&self) -> GrouperStats {
        self.cutter.stats()
    }

    /// The underlying reader.
    pub fn reader(&self) -> &BinlogReader {
        &self.reader
    }

    /// A group still open at the end of the stream, if any: `(gtid or
    /// position, events so far)`.
    pub fn pending(&self) -> Option<(String, usize)> {
        self.cutter.pending()
    }

    /// The next complete group, or `None` at the end of the stream.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Group>, ReadError> {
        loop {
            let Some(ev) = self.reader.next()? else {
                return Ok(None);
            };
            if let Some(g) = self.cutter.push(&ev)? {
                return Ok(Some(g));
            }
        }
    }
}

/// Feeds one event; returns a group when it completes one.
fn step(
    open: &mut Option<Open>,
    stats: &mut GrouperStats,
    ev: &RawEvent<'_>,
    keep_bytes: bool,
) -> Result<Option<Group>, ReadError> {
    let t = ev.event_type();
    if t.is_control() {
        return Ok(None);
    }
    match t {
        EventType::GTID
        | EventType::MYSQL_GTID
        | EventType::ANONYMOUS_GTID
        | EventType::MYSQL_GTID_TAGGED => {
            if let Some(cut) = open.take() {
                stats.dropped += 1;
                tracing::warn!(
                    group = %cut.group.describe(),
                    next = %ev.place(),
                    "dropping a transaction group cut short by the next GTID event"
                );
            }
            let mut o = start(ev, true, keep_bytes);
            let decoded = if t == EventType::GTID {
                Event::Gtid(GtidEvent::decode(ev.body()).map_err(|cause| decode_error(ev, cause))?)
            } else {
                ev.decode()?
            };
            match decoded {
                Event::Gtid(g) => {
                    o.group.gtid = Some(Gtid::Maria(MariaGtid {
                        domain: g.domain_id,
                        server: ev.header.server_id,
                        seq: g.seq_no,
                    }));
                    o.group.gtid_flags = g.flags;
                    o.group.commit_id = g.commit_id;
                    o.saw_ddl = g.ddl();
                    o.saw_xa = g.xa();
                    // MariaDB's GTID event stands for BEGIN unless standalone.
                    o.begun = !g.standalone();
                }
                Event::MySqlGtid(g) if t == EventType::MYSQL_GTID => {
                    o.group.gtid = Some(Gtid::MySql {
                        sid: g.sid,
                        gno: g.gno,
                    })
                }
                Event::MySqlGtid(_) => o.group.gtid = Some(Gtid::Anonymous),
                _ => {}
            }
            push(&mut o, ev);
            *open = Some(o);
            return Ok(None);
        }
        _ => {}
    }
    let o = open.get_or_insert_with(|| start(ev, false, keep_bytes));
    push(o, ev);
    let end = match t {
        EventType::XID | EventType::XA_PREPARE => {
            o.saw_xa |= t == EventType::XA_PREPARE;
            true
        }
        t if t.is_query() => {
            let Event::Query(q) = ev.decode()? else {
                unreachable!("a Query type decodes to a Query")
            };
            on_query(o, &q)
        }
        EventType::TABLE_MAP => {
            let phl = ev.fde.post_header_len(t).unwrap_or(8);
            let tm =
                TableMapEvent::decode(ev.body(), phl).map_err(|cause| decode_error(ev, cause))?;
            if !o.table_ids.contains(&tm.table_id) {
                o.table_ids.push(tm.table_id);
            }
            if !o
                .tables
                .iter()
                .any(|(d, x)| d.as_bytes() == tm.db && x.as_bytes() == tm.table)
            {
                let db = String::from_utf8_lossy(tm.db).into_owned();
                let table = String::from_utf8_lossy(tm.table).into_owned();
                add_db(&mut o.dbs, &db);
                o.tables.push((db, table));
            }
            false
        }
        t if t.is_rows() => {
            o.saw_rows = true;
            o.saw_unknown |= matches!(t.0, 20..=22 | 39);
            let Event::Rows(r) = ev.decode()? else {
                unreachable!("a Rows type decodes to Rows")
            };
            // The server skips rows whose table id it has no map for (as
            // if a filter had dropped the table): refuse them instead.
            if !o.table_ids.contains(&r.table_id) {
                return Err(ReadError::CorruptGroup {
                    file: ev.file.to_string(),
                    pos: ev.pos,
                    group: o.group.describe(),
                    what: format!(
                        "{} event for table id {} without a Table_map event for it in the \
                         group (the rows would be skipped silently)",
                        t.name(),
                        r.table_id
                    ),
                });
            }
            // Implicit groups (no BEGIN) of old binlogs end with their statement.
            !o.has_gtid && !o.begun && r.stmt_end()
        }
        EventType::ANNOTATE_ROWS
        | EventType::INTVAR
        | EventType::RAND
        | EventType::USER_VAR
        | EventType::IGNORABLE
        | EventType::ROWS_QUERY => false,
        // A MySQL compressed transaction: the whole transaction in one event.
        EventType::TRANSACTION_PAYLOAD => {
            o.saw_unknown = true;
            true
        }
        // LOAD DATA of old servers: the executing event is the statement.
        EventType::EXECUTE_LOAD_QUERY
        | EventType::EXEC_LOAD
        | EventType::LOAD
        | EventType::NEW_LOAD => {
            o.saw_unknown = true;
            !o.begun
        }
        _ => {
            o.saw_unknown = true;
            false
        }
    };
    if end {
        let o = open.take().expect("open");
        Ok(Some(finish(o)))
    } else {
        Ok(None)
    }
}

fn add_db(dbs: &mut Vec<String>, db: &str) {
    if !dbs.iter().any(|d| d == db) {
        dbs.push(db.to_string());
    }
}

fn decode_error(ev: &RawEvent<'_>, cause: crate::binlog::DecodeError) -> ReadError {
    ReadError::Decode {
        file: ev.file.to_string(),
        pos: ev.pos,
        type_name: ev.event_type().name(),
        cause,
    }
}

fn start(ev: &RawEvent<'_>, has_gtid: bool, keep_bytes: bool) -> Open {
    Open {
        group: Group {
            gtid: None,
            server_id: ev.header.server_id,
            file: ev.origin_file.clone(),
            start_pos: ev.origin_start(),
            end_pos: ev.origin_end,
            source_file: ev.file.clone(),
            source_pos: ev.pos,
            databases: Vec::new(),
            databases_exact: true,
            tables: Vec::new(),
            kind: GroupKind::Unknown,
            end: GroupEnd::Commit,
            after_primary_start: false,
            gtid_flags: 0,
            commit_id: None,
            timestamp: ev.header.timestamp,
            // Typical small transactions: GTID, annotation, table map, rows,
            // XID in about a kilobyte; bigger ones grow from there.
            events: Vec::with_capacity(8),
            bytes: if keep_bytes {
                Vec::with_capacity(1024)
            } else {
                Vec::new()
            },
            format: ev.fde.clone(),
        },
        begun: false,
        has_gtid,
        saw_rows: false,
        saw_statement: false,
        saw_ddl: false,
        saw_xa: false,
        saw_unknown: false,
        ended_by_commit: false,
        ended_by_rollback: false,
        dbs: Vec::new(),
        dbs_exact: true,
        tables: Vec::new(),
        keep_bytes,
        table_ids: Vec::new(),
    }
}

fn push(o: &mut Open, ev: &RawEvent<'_>) {
    let g = &mut o.group;
    let offset = g.events.last().map_or(0, |e: &EventSpan| e.offset + e.len);
    g.events.push(EventSpan {
        offset,
        len: ev.bytes.len(),
        event_type: ev.event_type(),
    });
    if o.keep_bytes {
        g.bytes.extend_from_slice(ev.bytes);
    }
    g.end_pos = ev.origin_end;
    if !Arc::ptr_eq(&g.format, ev.fde) && g.events.len() == 1 {
        g.format = ev.fde.clone();
    }
}

/// Books a Query; returns whether it ends the group.
fn on_query(o: &mut Open, q: &QueryEvent<'_>) -> bool {
    let sql = q.sql();
    if q.is_begin() || q.is_xa_start() {
        o.begun = true;
        o.saw_xa |= q.is_xa_start();
        return false;
    }
    if q.is_commit() || q.is_rollback() {
        o.ended_by_commit = q.is_commit();
        o.ended_by_rollback = q.is_rollback();
        return true;
    }
    match classify_statement(sql) {
        Statement::Savepoint => return false,
        Statement::Xa => o.saw_xa = true,
        Statement::Ddl => o.saw_ddl = true,
        Statement::Dml | Statement::Other => o.saw_statement = true,
    }
    // The databases a statement touched: listed by the server, or (not
    // exactly) its default database.
    match &q.status.updated_db_names {
        Some(UpdatedDbs::Listed(dbs)) => {
            for db in dbs.iter().filter(|d| !d.is_empty()) {
                add_db(&mut o.dbs, &String::from_utf8_lossy(db));
            }
        }
        Some(UpdatedDbs::TooMany) => o.dbs_exact = false,
        None => {
            o.dbs_exact = false;
            if !q.db.is_empty() {
                add_db(&mut o.dbs, &String::from_utf8_lossy(q.db));
            }
        }
    }
    // Without BEGIN, a statement is a group of its own.
    !o.begun
}

enum Statement {
    Savepoint,
    Xa,
    Ddl,
    Dml,
    Other,
}

/// What a statement is, from its leading words (comments skipped).
fn classify_statement(sql: &[u8]) -> Statement {
    let sql = skip_comments(sql);
    let word: Vec<u8> = sql
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .map(u8::to_ascii_uppercase)
        .collect();
    match word.as_slice() {
        b"SAVEPOINT" | b"RELEASE" => Statement::Savepoint,
        b"ROLLBACK" => Statement::Savepoint, // ROLLBACK TO [SAVEPOINT] x
        b"XA" => Statement::Xa,
        b"CREATE" | b"ALTER" | b"DROP" | b"RENAME" | b"TRUNCATE" | b"GRANT" | b"REVOKE"
        | b"ANALYZE" | b"OPTIMIZE" | b"REPAIR" | b"INSTALL" | b"UNINSTALL" | b"FLUSH" => {
            Statement::Ddl
        }
        b"INSERT" | b"UPDATE" | b"DELETE" | b"REPLACE" | b"LOAD" | b"SET" | b"DO" | b"CALL"
        | b"SELECT" | b"WITH" => Statement::Dml,
        _ => Statement::Other,
    }
}

/// Skips leading whitespace and `/* … */` comments (but keeps executable
/// `/*! … */` and `/*M! … */` bodies, whose content is SQL).
fn skip_comments(mut sql: &[u8]) -> &[u8] {
    loop {
        sql = sql.trim_ascii_start();
        if let Some(rest) = sql.strip_prefix(b"/*") {
            if rest.first() == Some(&b'!') || rest.starts_with(b"M!") {
                let skip = if rest[0] == b'!' { 1 } else { 2 };
                let digits = rest[skip..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                sql = &rest[skip + digits..];
                continue;
            }
            match rest.windows(2).position(|w| w == b"*/") {
                Some(i) => sql = &rest[i + 2..],
                None => return &[],
            }
        } else {
            return sql;
        }
    }
}

fn finish(o: Open) -> Group {
    let mut g = o.group;
    // An XID proves a two-phase-capable (transactional) commit; a Query
    // COMMIT, or a lone statement, means a non-transactional engine took
    // part. (MariaDB's TRANSACTIONAL GTID flag is not used: the server
    // leaves it off some InnoDB-only groups, e.g. large ones.)
    g.kind = if o.saw_unknown {
        GroupKind::Unknown
    } else if o.saw_xa {
        GroupKind::Xa
    } else if o.saw_ddl {
        GroupKind::Ddl
    } else if o.ended_by_commit || o.ended_by_rollback || !o.begun {
        // (The primary logs a rolled-back transaction only when it changed
        // a non-transactional table.)
        GroupKind::NonTransactional
    } else if o.saw_statement {
        GroupKind::StatementDml
    } else {
        GroupKind::RowDml
    };
    if o.ended_by_rollback {
        g.end = GroupEnd::Rollback;
    }
    g.databases_exact = o.dbs_exact && !matches!(g.kind, GroupKind::Ddl | GroupKind::Unknown);
    g.databases = o.dbs;
    g.databases.sort();
    g.tables = o.tables;
    g.tables.sort();
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_classified_by_their_first_word() {
        assert!(matches!(
            classify_statement(b"  /* x */ CREATE TABLE t (a int)"),
            Statement::Ddl
        ));
        assert!(matches!(
            classify_statement(b"insert into t values (1)"),
            Statement::Dml
        ));
        assert!(matches!(
            classify_statement(b"/*!40000 ALTER TABLE t */"),
            Statement::Ddl
        ));
        assert!(matches!(
            classify_statement(b"SAVEPOINT `s1`"),
            Statement::Savepoint
        ));
        assert!(matches!(
            classify_statement(b"ROLLBACK TO s1"),
            Statement::Savepoint
        ));
        assert!(matches!(classify_statement(b"XA END 'x'"), Statement::Xa));
        assert!(matches!(
            classify_statement(b"/* unterminated"),
            Statement::Other
        ));
    }

    /// A binlog file of `groups`: each a list of (table map ids, rows
    /// table id), written as GTID, Table_maps, one WRITE_ROWS, XID.
    fn file_of(dir: &std::path::Path, groups: &[(&[u64], u64)]) -> std::path::PathBuf {
        use crate::binlog::constants::MAGIC;
        use crate::binlog::synth::{self, EventMeta};
        let m = EventMeta {
            timestamp: 1,
            server_id: 1,
            flags: 0,
        };
        let mut f = MAGIC.to_vec();
        let mut pos = synth::push_event(
            &mut f,
            4,
            m,
            EventType::FORMAT_DESCRIPTION,
            &synth::format_description_body(0),
        );
        for (i, (maps, rows_id)) in groups.iter().enumerate() {
            let mut b = Vec::new();
            synth::gtid_body(&mut b, i as u64 + 1, 0, 0);
            pos = synth::push_event(&mut f, pos, m, EventType::GTID, &b);
            for id in maps.iter() {
                let mut b = Vec::new();
                synth::table_map_body(&mut b, *id, "db1", "t");
                pos = synth::push_event(&mut f, pos, m, EventType::TABLE_MAP, &b);
            }
            let mut b = Vec::new();
            synth::write_rows_body(&mut b, *rows_id, &[(1, b"x")]);
            pos = synth::push_event(&mut f, pos, m, EventType::WRITE_ROWS_V1, &b);
            pos = synth::push_event(&mut f, pos, m, EventType::XID, &7u64.to_le_bytes());
        }
        let path = dir.join("bin.000001");
        std::fs::write(&path, f).unwrap();
        path
    }

    /// A Rows event whose table id no Table_map of its group declared is
    /// a corrupt group, named with its place; the groups before it come
    /// out whole.
    #[test]
    fn rows_without_their_table_map_are_a_corrupt_group() {
        use crate::binlog::{ReaderOptions, Source};
        let dir = tempfile::tempdir().unwrap();
        let path = file_of(dir.path(), &[(&[5], 5), (&[6, 7], 7), (&[8], 9)]);
        let reader =
            BinlogReader::open(Source::Files(vec![path]), ReaderOptions::default()).unwrap();
        let mut g = Grouper::new(reader);
        assert!(g.next().unwrap().is_some());
        assert!(g.next().unwrap().is_some());
        let e = g.next().unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ReadError::CorruptGroup { .. }), "{text}");
        assert!(
            text.contains("corrupt transaction group 0-1-3 (bin.000001:")
                && text.contains("table id 9"),
            "{text}"
        );
    }
}
