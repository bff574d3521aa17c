//! How a transaction group is replayed on the target: the statements a
//! worker sends, built from the group's raw events.
//!
//! * Row events (Table_map + Rows) are sent back verbatim as
//!   `BINLOG '<base64>'` — the way `mariadb-binlog | mariadb` replays them —
//!   after the Format_description event of their binlog has been sent once
//!   on the session. All row events of one statement-sized run go into one
//!   `BINLOG` (whole events only).
//! * Query events run as SQL with the session context they carry, set as
//!   the server's SQL thread sets it (see `plan_query`): default database,
//!   timestamp, `sql_mode`, the session flags (`flags2`), the character
//!   set numbers as collations, time zone, `lc_time_names`,
//!   `collation_database`, auto-increment settings, and the INTVAR / RAND /
//!   USER_VAR events before them. The error a Query event was logged with
//!   becomes the step's [`Expect`]: the target must fail the same way.
//! * LOAD DATA (Begin_load_query, Append_block…, Execute_load_query) runs
//!   as `LOAD DATA LOCAL INFILE` whose bytes are the file the events carry.
//! * BEGIN, COMMIT, XID, GTID and ANNOTATE_ROWS are not replayed: the worker
//!   opens and commits its own transaction (and records progress inside it;
//!   a group the primary ended with ROLLBACK is rolled back).
//! * [`track_temp_tables`] follows the temporary tables primary sessions
//!   create and drop, for the worker that holds them.
//!   The GTID event of an XA prepare stands for `XA START <xid>`, and the
//!   XA_PREPARE event for `XA PREPARE <xid>` (or `XA COMMIT … ONE PHASE`).
//!
//! A `BINLOG` statement must be the **last** statement of a multi-statement
//! query (DESIGN.md, "Facts measured"), so every [`Step`] says whether it may
//! share a round trip with what follows.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use base64::Engine as _;

use crate::binlog::constants::{gtid_flags, rows_flags, LOG_EVENT_SUPPRESS_USE_F};
use crate::binlog::events::{FormatDescription, QueryEvent, UserVarEvent};
use crate::binlog::{DecodeError, Event, EventHeader, EventType};
use crate::group::{Group, GroupEnd, GroupKind};

mod ctas;
pub use ctas::{FAILPOINT_STAGED as FAILPOINT_CTAS_STAGED, STAGING_TABLE as CTAS_STAGING_TABLE};

/// Row events per `BINLOG` statement, at most (bytes, before base64): the
/// cost of one statement grows faster than its size (DESIGN.md), and a
/// large transaction must not exceed the target's `max_allowed_packet`.
pub const BINLOG_CHUNK: usize = 1 << 20;

/// One statement to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The SQL, without a trailing `;`.
    pub sql: Vec<u8>,
    /// Nothing may follow it in the same round trip (`BINLOG`, or a change
    /// of the client character set, which the server applies to the text
    /// that follows only from the next packet on, or a statement that may
    /// fail as it failed on the primary).
    pub ends_round_trip: bool,
    /// How it must end on the target.
    pub expect: Expect,
    /// A `BINLOG` statement: it ends a round trip only because its OK
    /// packet does not announce the results that follow (DESIGN.md's
    /// "facts"); a caller that reads one result per statement it sent
    /// ([`crate::wire::Conn::execute_counted`]) may send more after it.
    pub binlog: bool,
    /// The content a `LOAD DATA LOCAL INFILE` statement sends (the file the
    /// primary logged in its Begin_load_query and Append_block events).
    pub local_infile: Option<Vec<u8>>,
    /// A failpoint ([`crate::apply::failpoint`]) checked right after the
    /// round trip this step ends.
    pub failpoint: Option<&'static str>,
}

/// How a statement must end on the target for the replay to go on: a Query
/// event carries the error its statement ended with on the primary (a
/// statement that failed after changing a non-transactional table is
/// logged with its error), and the SQL thread requires the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Success (the primary logged no error).
    Success,
    /// This error, or one the server counts as the same
    /// ([`same_replication_error`]).
    Error(u16),
    /// The primary ended with a deadlock or lock-wait timeout: the same
    /// error or success both go on, as on the SQL thread.
    SuccessOrError(u16),
    /// `DROP TEMPORARY TABLE` of a table the target does not have: the SQL
    /// thread lets "Unknown table" (1051) pass, since the table may have
    /// been created before the replica started.
    SuccessOrUnknownTable,
}

impl Expect {
    /// Whether the target's result `code` (None: success) is the one
    /// expected.
    pub fn accepts(self, code: Option<u16>) -> bool {
        match (self, code) {
            (Expect::Success, None) => true,
            (Expect::Success, Some(_)) => false,
            (Expect::Error(want), Some(got)) => same_replication_error(want, got),
            (Expect::Error(_), None) => false,
            (Expect::SuccessOrError(_), None) => true,
            (Expect::SuccessOrError(want), Some(got)) => want == got,
            (Expect::SuccessOrUnknownTable, None) => true,
            (Expect::SuccessOrUnknownTable, Some(got)) => got == ER_BAD_TABLE_ERROR,
        }
    }
}

impl fmt::Display for Expect {
    /// What the primary logged: `success`, `error 1442`, `success or error
    /// 1213`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Success => f.write_str("success"),
            Expect::Error(c) => write!(f, "error {c}"),
            Expect::SuccessOrError(c) => write!(f, "success or error {c}"),
            Expect::SuccessOrUnknownTable => write!(f, "success or error {ER_BAD_TABLE_ERROR}"),
        }
    }
}

const ER_BAD_TABLE_ERROR: u16 = 1051;

/// Whether the target's error `got` counts as the primary's `want`: the
/// same number, or — as the server's SQL thread counts them — any two of
/// the duplicate-key family (1062 duplicate entry, 1586 duplicate entry
/// with key name, 1022 duplicate key, 1467 auto-increment read failed, 167
/// auto-increment out of range), or "unknown table" (1109) answered with
/// "is a view" (1347).
pub fn same_replication_error(want: u16, got: u16) -> bool {
    const DUPLICATES: [u16; 5] = [1062, 1586, 1022, 1467, 167];
    want == got
        || (DUPLICATES[..4].contains(&want) && DUPLICATES.contains(&got))
        || (want == 1109 && got == 1347)
}

/// Errors after which the primary's statement may have stopped anywhere
/// (killed, interrupted, network, shutdown): the SQL thread refuses to
/// guess and stops; so does parapply.
const PARTIAL_ON_PRIMARY: [u16; 7] = [1158, 1160, 1317, 1969, 1927, 1053, 1184];

/// Deadlock, lock-wait timeout, XA deadlock rollback.
const CONCURRENCY_ERRORS: [u16; 3] = [1213, 1205, 1614];

impl Step {
    fn sql(sql: impl Into<Vec<u8>>) -> Self {
        Step {
            sql: sql.into(),
            ends_round_trip: false,
            expect: Expect::Success,
            binlog: false,
            local_infile: None,
            failpoint: None,
        }
    }
    fn last(sql: impl Into<Vec<u8>>) -> Self {
        Step {
            sql: sql.into(),
            ends_round_trip: true,
            expect: Expect::Success,
            binlog: false,
            local_infile: None,
            failpoint: None,
        }
    }
    fn binlog(sql: Vec<u8>) -> Self {
        Step {
            binlog: true,
            ..Step::last(sql)
        }
    }
}

/// A replay failure: the event cannot be turned into statements.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// An event of the group does not decode.
    #[error("event {index} ({type_name}) of the group: {cause}")]
    Decode {
        /// Index of the event in the group.
        index: usize,
        /// Its type.
        type_name: &'static str,
        /// What is wrong.
        cause: DecodeError,
    },
    /// An event type parapply does not know how to replay.
    #[error("event {index} ({type_name}) of the group cannot be replayed by parapply")]
    Unsupported {
        /// Index of the event in the group.
        index: usize,
        /// Its type.
        type_name: &'static str,
    },
    /// `LOAD DATA` in the events of servers before 5.0 (Load, New_load,
    /// Create_file, Exec_load), which parapply does not replay.
    #[error(
        "LOAD DATA in the event format of servers before MySQL 5.0 is not replayed by \
         parapply; apply this group with `mariadb-binlog --start-position={start} \
         --stop-position={end} {file} | mariadb --local-infile=1` (which keeps its GTID, so the \
         next run skips it), then run apply again"
    )]
    LoadData {
        /// The primary's file that holds the group (a mirror has it under
        /// the same name).
        file: String,
        /// The group's start position in it.
        start: u64,
        /// Its end position.
        end: u64,
    },
    /// A collation number the target does not know.
    #[error("collation {0} is unknown on the target")]
    UnknownCollation(u32),
    /// The primary's statement ended with an error that leaves its effect
    /// unknown (it was killed or interrupted part way).
    #[error(
        "the primary logged this statement with error {code}: it may have been applied in \
         part there, and cannot be replayed to the same effect (the server's SQL thread stops \
         too); check the primary and apply or skip it by hand: {query}"
    )]
    PartialOnPrimary {
        /// The error number.
        code: u16,
        /// The statement (its first 200 bytes).
        query: String,
    },
}

/// Collation number → (character set, collation) names, read from the
/// target's `information_schema.COLLATIONS`.
#[derive(Debug, Clone, Default)]
pub struct Collations(pub HashMap<u32, (String, String)>);

/// What a session on the target already has, so that only changes are sent.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// CRC of the Format_description event last sent with `BINLOG`.
    fde: Option<u32>,
    /// The context statement last sent, to skip repeating it.
    context: Vec<u8>,
    /// The default database last set.
    db: Option<Vec<u8>>,
    /// `collation_database` was set to something else than what `USE` of
    /// `db` gives.
    db_collation_forced: bool,
}

impl Session {
    /// Forgets everything (new connection, or after an error).
    pub fn reset(&mut self) {
        *self = Session::default();
    }
}

/// Session flags carried in a Query event's `flags2`, with their variables.
/// (`autocommit` is not replayed: the worker's own transaction decides.)
const FLAGS2_VARS: &[(u32, &str, bool)] = &[
    // (bit, variable, value of the variable when the bit is set)
    (1 << 14, "sql_auto_is_null", true),
    (1 << 15, "check_constraint_checks", false),
    (1 << 24, "explicit_defaults_for_timestamp", true),
    (1 << 26, "foreign_key_checks", false),
    (1 << 27, "unique_checks", false),
    (1 << 28, "sql_if_exists", true),
    (1 << 30, "system_versioning_insert_history", true),
];

/// Row events a worker sends with a group: its watermark update, a
/// Table_map and the Rows events of one statement, built for the group's
/// Format_description event.
#[derive(Debug, Clone, Copy)]
pub struct Trailer<'a> {
    /// The whole events: the Table_map first.
    pub events: &'a [u8],
    /// Make them part of the group's own statement when the group is a
    /// single row statement sent in one `BINLOG` (see [`TrailerUse::Merged`]).
    pub merge: bool,
}

/// What [`plan_group`] did with a [`Trailer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailerUse {
    /// Not sent: the group's last step is not a `BINLOG` of rows.
    NotSent,
    /// Sent as a statement of its own at the end of the group's last
    /// `BINLOG`.
    Appended,
    /// Sent inside the group's only statement: its Table_map joins the
    /// statement's, its Rows events follow the statement's, and the
    /// end-of-statement flag moves to its last one. Under `autocommit=1`
    /// that one `BINLOG` applies and commits the group and the watermark
    /// together.
    Merged,
}

/// Appends the statements that replay `group` to `out`.
///
/// `trailer`, when given, is sent at the end of the group's last `BINLOG`
/// statement if that statement is the group's last step; the result says
/// how.
///
/// `session` is updated as if the statements had run; on any error the
/// caller must [`Session::reset`] it.
pub fn plan_group(
    group: &Group,
    session: &mut Session,
    collations: &Collations,
    trailer: Option<Trailer<'_>>,
    out: &mut Vec<Step>,
) -> Result<TrailerUse, ReplayError> {
    if let Some(c) = ctas::CreateSelect::of(group) {
        c.plan(group, session, collations, out)?;
        return Ok(TrailerUse::NotSent);
    }
    let steps_before = out.len();
    // Where the first and the last Rows event start in `rows`, and how many
    // statements ended: what a merge needs to know.
    let mut first_rows_at: Option<usize> = None;
    let mut last_rows_at = 0;
    let mut statements = 0;
    let fde = &group.format;
    let mut rows: Vec<u8> = Vec::new();
    // Table_map events of the statement whose Rows events are being sent.
    let mut maps: Vec<u8> = Vec::new();
    // INTVAR/RAND/USER_VAR settings waiting for their Query.
    let mut pending: Vec<u8> = Vec::new();
    // LOAD DATA files being assembled, by file id.
    let mut load_files: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut split = SplitDdl::of(group);
    let flush_rows = |rows: &mut Vec<u8>, session: &mut Session, out: &mut Vec<Step>| {
        if rows.is_empty() {
            return;
        }
        send_fde(fde, session, out);
        out.push(Step::binlog(binlog_statement(rows)));
        rows.clear();
    };
    for (index, (t, bytes)) in group.event_bytes().enumerate() {
        let err = |cause| ReplayError::Decode {
            index,
            type_name: t.name(),
            cause,
        };
        match t {
            // MariaDB's GTID event of an XA prepare stands for `XA START`.
            EventType::GTID => out.extend(xa_start(bytes, fde).map_err(err)?),
            EventType::MYSQL_GTID
            | EventType::ANONYMOUS_GTID
            | EventType::XID
            | EventType::ANNOTATE_ROWS
            | EventType::ROWS_QUERY
            | EventType::IGNORABLE => {}
            EventType::TABLE_MAP => {
                split.reopen(out);
                maps.extend_from_slice(bytes);
                rows.extend_from_slice(bytes)
            }
            t if t.is_rows() => {
                // Keep each BINLOG statement small: whole events, at most
                // about BINLOG_CHUNK bytes. A BINLOG statement forgets the
                // table maps of the one before, so a chunk that continues a
                // statement starts with that statement's Table_map events.
                if rows.len() > maps.len() && rows.len() + bytes.len() > BINLOG_CHUNK {
                    flush_rows(&mut rows, session, out);
                    rows.extend_from_slice(&maps);
                }
                first_rows_at.get_or_insert(rows.len());
                last_rows_at = rows.len();
                rows.extend_from_slice(bytes);
                if let Event::Rows(r) = decode(bytes, t, fde).map_err(err)? {
                    if r.stmt_end() {
                        maps.clear();
                        statements += 1;
                    }
                }
            }
            EventType::INTVAR | EventType::RAND | EventType::USER_VAR => {
                flush_rows(&mut rows, session, out);
                let ev = decode(bytes, t, fde).map_err(err)?;
                append_session_var(&ev, collations, &mut pending)?;
            }
            t if t.is_query() => {
                flush_rows(&mut rows, session, out);
                let header = EventHeader::decode(bytes).map_err(err)?;
                let Event::Query(q) = decode(bytes, t, fde).map_err(err)? else {
                    unreachable!("a Query type decodes to a Query")
                };
                if q.is_begin() || q.is_commit() || q.is_rollback() {
                    continue;
                }
                split.reopen(out);
                plan_query(
                    &header,
                    &q,
                    session,
                    collations,
                    std::mem::take(&mut pending),
                    out,
                )?;
                split.committed();
            }
            EventType::XA_PREPARE => {
                flush_rows(&mut rows, session, out);
                out.push(xa_prepare(bytes, fde).map_err(err)?);
            }
            // LOAD DATA: the file's blocks, then the statement.
            EventType::BEGIN_LOAD_QUERY | EventType::APPEND_BLOCK | EventType::DELETE_FILE => {
                flush_rows(&mut rows, session, out);
                load_file_block(t, bytes, fde, &mut load_files).map_err(err)?;
            }
            EventType::EXECUTE_LOAD_QUERY => {
                flush_rows(&mut rows, session, out);
                let pending = std::mem::take(&mut pending);
                let load = LoadData {
                    bytes,
                    fde,
                    files: &mut load_files,
                };
                load.plan(&err, session, collations, pending, out)?;
            }
            EventType::CREATE_FILE
            | EventType::EXEC_LOAD
            | EventType::LOAD
            | EventType::NEW_LOAD => {
                return Err(ReplayError::LoadData {
                    file: group.file.to_string(),
                    start: group.start_pos,
                    end: group.end_pos,
                })
            }
            _ => {
                return Err(ReplayError::Unsupported {
                    index,
                    type_name: t.name(),
                })
            }
        }
    }
    let one_statement = out.len() == steps_before && statements == 1;
    let used = attach_trailer(
        trailer,
        &mut rows,
        first_rows_at,
        last_rows_at,
        one_statement,
        fde,
    );
    flush_rows(&mut rows, session, out);
    split.close(out);
    Ok(used)
}

/// An `Execute_load_query` event and the files its group's
/// `Begin_load_query`/`Append_block` events assembled.
struct LoadData<'a, 'f> {
    bytes: &'a [u8],
    fde: &'a FormatDescription,
    files: &'f mut HashMap<u32, Vec<u8>>,
}

impl LoadData<'_, '_> {
    /// The `LOAD DATA LOCAL INFILE` statement, under the event's session
    /// context, with the file's content to send when the server asks.
    fn plan(
        self,
        err: &dyn Fn(DecodeError) -> ReplayError,
        session: &mut Session,
        collations: &Collations,
        pending: Vec<u8>,
        out: &mut Vec<Step>,
    ) -> Result<(), ReplayError> {
        let header = EventHeader::decode(self.bytes).map_err(err)?;
        let (rewritten, data) =
            execute_load_query(self.bytes, self.fde, self.files).map_err(err)?;
        plan_query(&header, &rewritten, session, collations, pending, out)?;
        let step = out.last_mut().expect("plan_query ends with the statement");
        step.local_infile = Some(data);
        step.ends_round_trip = true;
        Ok(())
    }
}

/// A statement that commits implicitly, inside a transactional GTID group
/// of the DDL kind: `CREATE TABLE … SELECT` in ROW format is logged as one
/// group of `BEGIN`, the `CREATE TABLE`, its rows and `COMMIT` (the shapes
/// the `ctas` module replays as one statement do not come here; the others
/// do). The SQL
/// thread keeps the `CREATE TABLE` inside that group (a GTID group's
/// `BEGIN` suspends the implicit commit of `CREATE TABLE` and `DROP TABLE`
/// there); a client session cannot, so the statement commits under the
/// group's GTID on the target, and what follows it runs in a transaction
/// of its own, opened with the same GTID, committed (or rolled back) at
/// the group's end — else the server would log the rows under the next
/// sequence number, a GTID the primary gave another group (which a
/// restart would then take as applied).
struct SplitDdl {
    /// The group's sequence number, when it is such a group.
    seq: Option<u64>,
    /// How the group ends.
    end: GroupEnd,
    /// A statement of the group ran (and committed).
    committed: bool,
    /// The second transaction is open.
    reopened: bool,
}

impl SplitDdl {
    fn of(group: &Group) -> Self {
        let transactional = group.kind == GroupKind::Ddl
            && group.gtid_flags & gtid_flags::STANDALONE == 0
            && group.gtid_flags & gtid_flags::PREPARED_XA == 0;
        SplitDdl {
            seq: group.maria_gtid().filter(|_| transactional).map(|g| g.seq),
            end: group.end,
            committed: false,
            reopened: false,
        }
    }

    /// A statement ran.
    fn committed(&mut self) {
        self.committed = self.seq.is_some();
    }

    /// Before the next statement or row events: opens the second
    /// transaction if a statement committed the first.
    fn reopen(&mut self, out: &mut Vec<Step>) {
        if let (Some(seq), true, false) = (self.seq, self.committed, self.reopened) {
            out.push(Step::sql(format!("SET @@session.gtid_seq_no={seq}")));
            out.push(Step::sql("START TRANSACTION"));
            self.reopened = true;
        }
    }

    /// At the group's end: ends the second transaction as the group ends.
    fn close(&self, out: &mut Vec<Step>) {
        if self.reopened {
            out.push(Step::last(if self.end == GroupEnd::Rollback {
                "ROLLBACK"
            } else {
                "COMMIT"
            }));
        }
    }
}

/// The `XA START` a GTID event of an XA prepare stands for (MariaDB's GTID
/// event carries the XID); nothing for any other GTID event.
fn xa_start(bytes: &[u8], fde: &FormatDescription) -> Result<Option<Step>, DecodeError> {
    let Event::Gtid(g) = decode(bytes, EventType::GTID, fde)? else {
        return Ok(None);
    };
    Ok(match (g.flags & gtid_flags::PREPARED_XA != 0, &g.xa_xid) {
        (true, Some(x)) => Some(Step::sql(format!(
            "XA START X'{}',X'{}',{}",
            hex(&x.gtrid),
            hex(&x.bqual),
            x.format_id
        ))),
        _ => None,
    })
}

/// An XA_PREPARE event as `XA PREPARE`, or `XA COMMIT … ONE PHASE`.
fn xa_prepare(bytes: &[u8], fde: &FormatDescription) -> Result<Step, DecodeError> {
    let Event::XaPrepare(x) = decode(bytes, EventType::XA_PREPARE, fde)? else {
        unreachable!("an XA_PREPARE type decodes to XaPrepare")
    };
    let xid = format!("X'{}',X'{}',{}", hex(x.gtrid), hex(x.bqual), x.format_id);
    Ok(Step::sql(if x.one_phase {
        format!("XA COMMIT {xid} ONE PHASE")
    } else {
        format!("XA PREPARE {xid}")
    }))
}

/// Sends the watermark's row events (`trailer`) with the group's last
/// `BINLOG` statement: merged into it when the group is one row statement
/// and merging is allowed, else appended; not sent when the group ends
/// without row events.
fn attach_trailer(
    trailer: Option<Trailer<'_>>,
    rows: &mut Vec<u8>,
    first_rows_at: Option<usize>,
    last_rows_at: usize,
    one_statement: bool,
    fde: &FormatDescription,
) -> TrailerUse {
    let Some(t) = trailer.filter(|_| !rows.is_empty()) else {
        return TrailerUse::NotSent;
    };
    match first_rows_at {
        Some(first)
            if t.merge
                && one_statement
                && merge_trailer(rows, first, last_rows_at, t.events, fde) =>
        {
            TrailerUse::Merged
        }
        _ => {
            rows.extend_from_slice(t.events);
            TrailerUse::Appended
        }
    }
}

/// A LOAD DATA file's block (Begin_load_query, Append_block) is added to
/// the file of its id; Delete_file forgets the file.
fn load_file_block(
    t: EventType,
    bytes: &[u8],
    fde: &FormatDescription,
    load_files: &mut HashMap<u32, Vec<u8>>,
) -> Result<(), DecodeError> {
    let body = event_body(bytes, fde);
    let phl = fde.post_header_len(t).map_or(4, usize::from);
    let (Some(id), Some(data)) = (body.get(..4), body.get(phl..)) else {
        return Err(DecodeError::Invalid {
            field: "file_id",
            offset: 0,
            what: "event too short".into(),
        });
    };
    let id = u32::from_le_bytes(id.try_into().expect("4 bytes"));
    match t {
        EventType::BEGIN_LOAD_QUERY => {
            load_files.insert(id, data.to_vec());
        }
        EventType::APPEND_BLOCK => load_files.entry(id).or_default().extend_from_slice(data),
        _ => {
            load_files.remove(&id);
        }
    }
    Ok(())
}

/// An Execute_load_query event as the statement to run and the file's
/// content: rewritten as the SQL thread rewrites it, with LOCAL (the file
/// name and the duplicate handling up to INTO are replaced).
fn execute_load_query<'a>(
    bytes: &'a [u8],
    fde: &FormatDescription,
    load_files: &mut HashMap<u32, Vec<u8>>,
) -> Result<(QueryEvent<'a>, Vec<u8>), DecodeError> {
    let body = event_body(bytes, fde);
    let phl = fde
        .post_header_len(EventType::EXECUTE_LOAD_QUERY)
        .map_or(26, usize::from);
    let q = QueryEvent::decode(body, phl, false)?;
    let load = body.get(13..26).ok_or_else(|| DecodeError::Invalid {
        field: "Execute_load_query post-header",
        offset: 13,
        what: "shorter than 26 bytes".into(),
    })?;
    let word = |at: usize| u32::from_le_bytes(load[at..at + 4].try_into().expect("4"));
    let (id, start, end, dup) = (word(0), word(4) as usize, word(8) as usize, load[12]);
    let data = load_files.remove(&id).unwrap_or_default();
    let text = &q.query;
    if start > end || end > text.len() || dup > 2 {
        return Err(DecodeError::Invalid {
            field: "fn_pos_start/fn_pos_end",
            offset: 13,
            what: format!("{start}..{end} of a {}-byte statement", text.len()),
        });
    }
    let mut sql = text[..start].to_vec();
    sql.extend_from_slice(format!(" LOCAL INFILE 'parapply-load-{id}'").as_bytes());
    sql.extend_from_slice(match dup {
        1 => &b" IGNORE"[..],
        2 => &b" REPLACE"[..],
        _ => &b""[..],
    });
    sql.extend_from_slice(b" INTO");
    sql.extend_from_slice(&text[end..]);
    let rewritten = QueryEvent {
        query: std::borrow::Cow::Owned(sql),
        ..q
    };
    Ok((rewritten, data))
}

/// Makes `trailer` (a Table_map, then Rows events ending a statement) part
/// of the one statement in `rows`, whose first Rows event starts at
/// `first` and last (ending the statement) at `last`: the Table_map goes
/// before the first Rows event, the Rows events after the last one, whose
/// end-of-statement flag is cleared (and its checksum renewed). Returns
/// `false`, changing nothing, when the events' layout is not the one it
/// knows.
fn merge_trailer(
    rows: &mut Vec<u8>,
    first: usize,
    last: usize,
    trailer: &[u8],
    fde: &FormatDescription,
) -> bool {
    let size_at = |b: &[u8], at: usize| -> Option<usize> {
        let s = b.get(at + 9..at + 13)?;
        Some(u32::from_le_bytes(s.try_into().ok()?) as usize)
    };
    let (Some(map_len), Some(last_len)) = (size_at(trailer, 0), size_at(rows, last)) else {
        return false;
    };
    let last_type = EventType(rows[last + 4]);
    // Table id (6 bytes), then the flags, in v1 (8) and v2 (10) post-headers.
    let flags_at = last + crate::binlog::constants::HEADER_LEN + 6;
    if map_len > trailer.len()
        || last + last_len != rows.len()
        || !matches!(fde.post_header_len(last_type), Some(8 | 10))
        || flags_at + 2 > rows.len()
    {
        return false;
    }
    let flags = u16::from_le_bytes([rows[flags_at], rows[flags_at + 1]]) & !rows_flags::STMT_END;
    rows[flags_at..flags_at + 2].copy_from_slice(&flags.to_le_bytes());
    let crc_len = fde.checksum_len();
    if crc_len > 0 {
        let end = rows.len() - crc_len;
        let crc = crc32fast::hash(&rows[last..end]);
        rows[end..].copy_from_slice(&crc.to_le_bytes());
    }
    rows.splice(first..first, trailer[..map_len].iter().copied());
    rows.extend_from_slice(&trailer[map_len..]);
    true
}

fn decode<'a>(
    bytes: &'a [u8],
    t: EventType,
    fde: &FormatDescription,
) -> Result<Event<'a>, DecodeError> {
    let body = &bytes[crate::binlog::constants::HEADER_LEN..bytes.len() - fde.checksum_len()];
    Event::decode(t, body, fde)
}

/// An event's body: after the header, before the checksum.
fn event_body<'a>(bytes: &'a [u8], fde: &FormatDescription) -> &'a [u8] {
    let end = bytes.len().saturating_sub(fde.checksum_len());
    bytes
        .get(crate::binlog::constants::HEADER_LEN..end)
        .unwrap_or(&[])
}

fn send_fde(fde: &FormatDescription, session: &mut Session, out: &mut Vec<Step>) {
    let crc = crc32fast::hash(&fde.raw_event);
    if session.fde != Some(crc) {
        out.push(Step::binlog(binlog_statement(&fde.raw_event)));
        session.fde = Some(crc);
    }
}

/// `BINLOG '<base64 of the events>'`.
pub fn binlog_statement(events: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut s = Vec::with_capacity(10 + events.len().div_ceil(3) * 4);
    s.extend_from_slice(b"BINLOG '");
    let start = s.len();
    s.resize(start + events.len().div_ceil(3) * 4, 0);
    let n = b64
        .encode_slice(events, &mut s[start..])
        .expect("4 bytes per started 3 is base64's padded length");
    s.truncate(start + n);
    s.push(b'\'');
    s
}

/// `sql_mode`'s `NO_DIR_IN_CREATE`: the replica's own value stays (the SQL
/// thread does not take it from the primary, so that one host's disk
/// trouble does not spread to its replicas).
const MODE_NO_DIR_IN_CREATE: u64 = 1 << 7;

/// The context statement of a Query event and the query itself, as the
/// server's SQL thread sets the context before it runs a Query event:
///
/// * `pseudo_thread_id` (temporary tables, `CONNECTION_ID()`), the session
///   flags of `flags2`, `sql_mode` (but `NO_DIR_IN_CREATE`), the
///   auto-increment pair (1 and 1 when the event has none);
/// * the three character-set numbers are **collation** numbers: the client
///   character set is the one of its collation (set by name: the server
///   takes a number for `character_set_client` only for a character set's
///   default collation), the connection and server collations by number —
///   as `mariadb-binlog` prints them;
/// * `time_zone` when the event has one (else the session keeps its own,
///   as the SQL thread does), `lc_time_names` (`en_US` when absent);
/// * `collation_database`: the event's number when it has one, else the
///   default database's character set — what `USE` sets, so `USE` is sent
///   again after a forced value; with no default database, the server
///   collation (what the SQL thread loads for a database without options).
fn plan_query(
    header: &EventHeader,
    q: &QueryEvent<'_>,
    session: &mut Session,
    collations: &Collations,
    pending: Vec<u8>,
    out: &mut Vec<Step>,
) -> Result<(), ReplayError> {
    let s = &q.status;
    let ctx = session_context(q, collations)?;
    let forces_db_collation = s.charset_database.is_some() || q.db.is_empty();
    let micros = s.hrnow.or(s.microseconds);
    // The timestamp changes with every event; it is sent apart so that the
    // rest of the context repeats exactly and can be skipped.
    let ts = match micros {
        Some(us) => format!("SET @@session.timestamp={}.{us:06}", header.timestamp),
        None => format!("SET @@session.timestamp={}", header.timestamp),
    };
    // CREATE/DROP DATABASE and the like carry LOG_EVENT_SUPPRESS_USE_F:
    // their default database may not exist (yet, or any more).
    let suppress_use = header.flags & LOG_EVENT_SUPPRESS_USE_F != 0;
    let use_db = !suppress_use && !q.db.is_empty();
    // `USE` first: it sets `collation_database`, which the context may then
    // set to something else.
    let need_use = use_db
        && (session.db.as_deref() != Some(q.db)
            || (session.db_collation_forced && s.charset_database.is_none()));
    if need_use {
        plan_use(q.db, session, out);
        if forces_db_collation {
            session.context.clear();
        }
    }
    session.db_collation_forced = forces_db_collation || (session.db_collation_forced && !need_use);
    if session.context != ctx.as_bytes() {
        // The character set of the text that follows may change: the query
        // must come in the next round trip.
        out.push(Step::last(ctx.clone().into_bytes()));
        session.context = ctx.into_bytes();
    }
    if !pending.is_empty() {
        out.push(Step::sql(pending));
    }
    out.push(Step::sql(ts));
    let expect = query_expectation(q)?;
    if is_drop_database(&q.query) {
        // The target session loses its default database if it was the one
        // dropped: `USE` it again next time.
        session.db = None;
    }
    out.push(Step {
        sql: q.query.to_vec(),
        // A statement that may fail ends its round trip: the server runs
        // nothing after a failing statement of a multi-statement query.
        ends_round_trip: expect != Expect::Success,
        expect,
        binlog: false,
        local_infile: None,
        failpoint: None,
    });
    Ok(())
}

/// The `SET @@session…` statement of a Query event's context (all of
/// [`plan_query`]'s list but the timestamp, which is sent apart).
fn session_context(q: &QueryEvent<'_>, collations: &Collations) -> Result<String, ReplayError> {
    let s = &q.status;
    let mut ctx = String::with_capacity(512);
    let _ = write!(ctx, "SET @@session.pseudo_thread_id={}", q.thread_id);
    if let Some(f) = s.flags2 {
        for &(bit, var, when_set) in FLAGS2_VARS {
            let on = (f & bit != 0) == when_set;
            let _ = write!(ctx, ", @@session.{var}={}", u8::from(on));
        }
    }
    // MySQL writes it as a status variable of its own.
    if let Some(v) = s.explicit_defaults_for_timestamp {
        let _ = write!(
            ctx,
            ", @@session.explicit_defaults_for_timestamp={}",
            u8::from(v != 0)
        );
    }
    if let Some(m) = s.sql_mode {
        // The target session's NO_DIR_IN_CREATE: off (parapply's sessions
        // never set it, so the server's global value is not forced on).
        let _ = write!(ctx, ", @@session.sql_mode={}", m & !MODE_NO_DIR_IN_CREATE);
    }
    let (inc, off) = s.auto_increment.unwrap_or((1, 1));
    let _ = write!(
        ctx,
        ", @@session.auto_increment_increment={inc}, @@session.auto_increment_offset={off}"
    );
    if let Some((client, conn, server)) = s.charset {
        let (client_cs, _) = collations
            .0
            .get(&u32::from(client))
            .ok_or(ReplayError::UnknownCollation(u32::from(client)))?;
        for c in [conn, server] {
            if !collations.0.contains_key(&u32::from(c)) {
                return Err(ReplayError::UnknownCollation(u32::from(c)));
            }
        }
        let _ = write!(
            ctx,
            ", @@session.character_set_client={client_cs}, @@session.collation_connection={conn}, @@session.collation_server={server}"
        );
    }
    if let Some(tz) = s.time_zone {
        let _ = write!(ctx, ", @@session.time_zone='{}'", escape_str(tz));
    }
    // 0 is en_US.
    let _ = write!(
        ctx,
        ", @@session.lc_time_names={}",
        s.lc_time_names.unwrap_or(0)
    );
    match (s.charset_database, s.charset) {
        (Some(c), _) => {
            let _ = write!(ctx, ", @@session.collation_database={c}");
        }
        (None, Some((_, _, server))) if q.db.is_empty() => {
            let _ = write!(ctx, ", @@session.collation_database={server}");
        }
        (None, None) if q.db.is_empty() => {
            ctx.push_str(", @@session.collation_database=@@session.collation_server")
        }
        // Set by `USE`.
        (None, _) => {}
    }
    Ok(ctx)
}

/// `USE db` (after switching the client character set for a name that is
/// not ASCII), recorded as the session's default database.
fn plan_use(db: &[u8], session: &mut Session, out: &mut Vec<Step>) {
    // Database names are utf8; a name that is not ASCII is parsed as such
    // (the context that follows sets the event's client character set
    // again).
    if !db.is_ascii() {
        out.push(Step::last(
            b"SET @@session.character_set_client=utf8mb4".to_vec(),
        ));
        session.context.clear();
    }
    let mut u = b"USE `".to_vec();
    u.extend(
        db.iter()
            .flat_map(|&b| if b == b'`' { vec![b'`', b'`'] } else { vec![b] }),
    );
    u.push(b'`');
    out.push(Step::sql(u));
    session.db = Some(db.to_vec());
}

/// What the target must answer to a Query event, from the error code the
/// primary logged with it.
fn query_expectation(q: &QueryEvent<'_>) -> Result<Expect, ReplayError> {
    let code = q.error_code;
    Ok(if code == 0 {
        if is_drop_temporary(&q.query) {
            Expect::SuccessOrUnknownTable
        } else {
            Expect::Success
        }
    } else if PARTIAL_ON_PRIMARY.contains(&code) {
        let text = String::from_utf8_lossy(&q.query);
        return Err(ReplayError::PartialOnPrimary {
            code,
            query: text.chars().take(200).collect(),
        });
    } else if CONCURRENCY_ERRORS.contains(&code) {
        Expect::SuccessOrError(code)
    } else {
        Expect::Error(code)
    })
}

/// A temporary table of a primary session: the server keeps one per
/// (server id, `pseudo_thread_id`), so one target session holds those of
/// every primary session apart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TempTable {
    /// The primary's server id.
    pub server_id: u32,
    /// The primary session (`pseudo_thread_id`).
    pub thread_id: u32,
    /// Its database.
    pub db: String,
    /// Its name.
    pub table: String,
}

impl std::fmt::Display for TempTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{} (server {}, session {})",
            self.db, self.table, self.server_id, self.thread_id
        )
    }
}

/// Folds the temporary tables `group`'s statements create and drop into
/// `open`: `CREATE [OR REPLACE] TEMPORARY TABLE` adds one, `DROP TEMPORARY
/// TABLE` (which the primary also logs when a session with temporary
/// tables ends) removes those it names.
pub fn track_temp_tables(group: &Group, open: &mut std::collections::BTreeSet<TempTable>) {
    for (t, bytes) in group.event_bytes() {
        if !t.is_query() {
            continue;
        }
        let (Ok(header), Ok(Event::Query(q))) =
            (EventHeader::decode(bytes), decode(bytes, t, &group.format))
        else {
            continue;
        };
        let Some((create, names)) = temp_table_statement(&q.query) else {
            continue;
        };
        for (db, table) in names {
            let key = TempTable {
                server_id: header.server_id,
                thread_id: q.thread_id,
                db: db.unwrap_or_else(|| String::from_utf8_lossy(q.db).into_owned()),
                table,
            };
            if create {
                open.insert(key);
            } else {
                open.remove(&key);
            }
        }
    }
}

/// `Some((true, [name]))` for `CREATE … TEMPORARY TABLE name`, `Some((false,
/// names))` for `DROP TEMPORARY TABLE names`; names as `(database, table)`.
#[allow(clippy::type_complexity)]
fn temp_table_statement(sql: &[u8]) -> Option<(bool, Vec<(Option<String>, String)>)> {
    let tokens = sql_tokens(sql, 64);
    let word = |i: usize, w: &str| {
        tokens
            .get(i)
            .is_some_and(|t| !t.quoted && t.text.eq_ignore_ascii_case(w))
    };
    let create = word(0, "CREATE");
    if !create && !word(0, "DROP") {
        return None;
    }
    let mut i = 1;
    if create && word(1, "OR") && word(2, "REPLACE") {
        i = 3;
    }
    if !word(i, "TEMPORARY") || !word(i + 1, "TABLE") {
        return None;
    }
    i += 2;
    if word(i, "IF") {
        i += if create { 3 } else { 2 };
    }
    let mut names = Vec::new();
    loop {
        let first = tokens.get(i)?;
        let name = if tokens.get(i + 1).is_some_and(|t| t.text == ".") {
            let second = tokens.get(i + 2)?;
            i += 3;
            (Some(first.text.clone()), second.text.clone())
        } else {
            i += 1;
            (None, first.text.clone())
        };
        names.push(name);
        if create || tokens.get(i).is_none_or(|t| t.text != ",") {
            break;
        }
        i += 1;
    }
    Some((create, names))
}

struct Token {
    text: String,
    quoted: bool,
}

/// The first `max` tokens of `sql`: words, `quoted` identifiers, `.` and
/// `,`; comments skipped (the content of executable `/*!…*/` comments
/// kept). Stops at anything else.
fn sql_tokens(sql: &[u8], max: usize) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < sql.len() && out.len() < max {
        let b = sql[i];
        if b.is_ascii_whitespace() {
            i += 1;
        } else if sql[i..].starts_with(b"/*!") || sql[i..].starts_with(b"/*M!") {
            i += if sql[i + 2] == b'!' { 3 } else { 4 };
            while i < sql.len() && sql[i].is_ascii_digit() {
                i += 1;
            }
        } else if sql[i..].starts_with(b"*/") {
            i += 2;
        } else if sql[i..].starts_with(b"/*") {
            match sql[i + 2..].windows(2).position(|w| w == b"*/") {
                Some(p) => i += p + 4,
                None => break,
            }
        } else if b == b'`' {
            let mut text = Vec::new();
            i += 1;
            while i < sql.len() {
                if sql[i] == b'`' {
                    if sql.get(i + 1) == Some(&b'`') {
                        text.push(b'`');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                text.push(sql[i]);
                i += 1;
            }
            out.push(Token {
                text: String::from_utf8_lossy(&text).into_owned(),
                quoted: true,
            });
        } else if b == b'.' || b == b',' {
            out.push(Token {
                text: (b as char).to_string(),
                quoted: false,
            });
            i += 1;
        } else if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80 {
            let start = i;
            while i < sql.len()
                && (sql[i].is_ascii_alphanumeric()
                    || sql[i] == b'_'
                    || sql[i] == b'$'
                    || sql[i] >= 0x80)
            {
                i += 1;
            }
            out.push(Token {
                text: String::from_utf8_lossy(&sql[start..i]).into_owned(),
                quoted: false,
            });
        } else {
            break;
        }
    }
    out
}

/// `DROP TEMPORARY TABLE …` (also in the `/*!40005 TEMPORARY */` form
/// the server writes).
fn is_drop_temporary(sql: &[u8]) -> bool {
    let words = first_words(sql);
    words.first().map(Vec::as_slice) == Some(b"DROP") && words.iter().any(|w| w == b"TEMPORARY")
}

/// Whether `sql` is `DROP DATABASE` or `DROP SCHEMA`: a session whose
/// default database it drops has none afterwards.
fn is_drop_database(sql: &[u8]) -> bool {
    let words = first_words(sql);
    words.first().map(Vec::as_slice) == Some(b"DROP")
        && matches!(
            words.get(1).map(Vec::as_slice),
            Some(b"DATABASE" | b"SCHEMA")
        )
}

/// The first three words of `sql`, upper-cased letters only.
fn first_words(sql: &[u8]) -> Vec<Vec<u8>> {
    let head: Vec<u8> = sql
        .iter()
        .take(64)
        .filter(|b| b.is_ascii_alphabetic() || b.is_ascii_whitespace())
        .map(|b| {
            if b.is_ascii_whitespace() {
                b' '
            } else {
                b.to_ascii_uppercase()
            }
        })
        .collect();
    head.split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .take(3)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Appends `SET INSERT_ID=…` / `SET @@RAND_SEED1=…` / `SET @`v`:=…`.
fn append_session_var(
    ev: &Event<'_>,
    collations: &Collations,
    out: &mut Vec<u8>,
) -> Result<(), ReplayError> {
    if !out.is_empty() {
        out.extend_from_slice(b", ");
    } else {
        out.extend_from_slice(b"SET ");
    }
    match ev {
        Event::Intvar(i) => {
            let var = if i.kind == 1 {
                "LAST_INSERT_ID"
            } else {
                "INSERT_ID"
            };
            out.extend_from_slice(format!("{var}={}", i.value).as_bytes());
        }
        Event::Rand(r) => out.extend_from_slice(
            format!(
                "@@session.rand_seed1={}, @@session.rand_seed2={}",
                r.seed1, r.seed2
            )
            .as_bytes(),
        ),
        Event::UserVar(u) => append_user_var(u, collations, out)?,
        _ => unreachable!("only INTVAR, RAND and USER_VAR are session variables"),
    }
    Ok(())
}

fn append_user_var(
    u: &UserVarEvent<'_>,
    collations: &Collations,
    out: &mut Vec<u8>,
) -> Result<(), ReplayError> {
    out.extend_from_slice(b"@`");
    for &b in u.name {
        if b == b'`' {
            out.push(b'`');
        }
        out.push(b);
    }
    out.extend_from_slice(b"`:=");
    let Some(v) = &u.value else {
        out.extend_from_slice(b"NULL");
        return Ok(());
    };
    let unsigned = v.flags.is_some_and(|f| f & 1 != 0);
    match v.value_type {
        // STRING_RESULT: _charset X'…' COLLATE `collation`
        0 => {
            let (cs, coll) = collations
                .0
                .get(&v.charset)
                .ok_or(ReplayError::UnknownCollation(v.charset))?;
            out.extend_from_slice(format!("_{cs} X'").as_bytes());
            for b in v.value {
                out.extend_from_slice(format!("{b:02X}").as_bytes());
            }
            out.extend_from_slice(format!("' COLLATE `{coll}`").as_bytes());
        }
        // REAL_RESULT: 8-byte double
        1 if v.value.len() == 8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(v.value);
            let d = f64::from_le_bytes(a);
            out.extend_from_slice(format!("{d:e}").as_bytes());
        }
        // INT_RESULT: 8-byte integer
        2 if v.value.len() == 8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(v.value);
            if unsigned {
                out.extend_from_slice(u64::from_le_bytes(a).to_string().as_bytes());
            } else {
                out.extend_from_slice(i64::from_le_bytes(a).to_string().as_bytes());
            }
        }
        // DECIMAL_RESULT: precision, scale, binary decimal
        4 if v.value.len() >= 2 => {
            let text = decimal_to_string(v.value[0], v.value[1], &v.value[2..]).ok_or(
                ReplayError::Decode {
                    index: 0,
                    type_name: "User_var",
                    cause: DecodeError::Invalid {
                        field: "decimal value",
                        offset: 0,
                        what: "malformed binary decimal".into(),
                    },
                },
            )?;
            out.extend_from_slice(text.as_bytes());
        }
        _ => {
            return Err(ReplayError::Decode {
                index: 0,
                type_name: "User_var",
                cause: DecodeError::Invalid {
                    field: "value_type",
                    offset: 0,
                    what: format!("type {} with {} bytes", v.value_type, v.value.len()),
                },
            })
        }
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// Escapes a string literal's content for single quotes.
fn escape_str(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .replace('\\', "\\\\")
        .replace('\'', "\\'")
}

/// Decodes the server's binary DECIMAL(precision, scale) format to text.
///
/// The number is split into integer and fraction digits; each full group of
/// nine digits takes 4 bytes, a partial group 1–4 bytes by its digit count;
/// all big-endian; the first bit is flipped (set for positive numbers) and a
/// negative number has every byte inverted.
pub fn decimal_to_string(precision: u8, scale: u8, bin: &[u8]) -> Option<String> {
    const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
    let (precision, scale) = (usize::from(precision), usize::from(scale));
    if scale > precision {
        return None;
    }
    let intg = precision - scale;
    let (intg_full, intg_part) = (intg / 9, intg % 9);
    let (frac_full, frac_part) = (scale / 9, scale % 9);
    let size = intg_full * 4 + DIG2BYTES[intg_part] + frac_full * 4 + DIG2BYTES[frac_part];
    if bin.len() < size || size == 0 {
        return None;
    }
    let mut b = bin[..size].to_vec();
    let negative = b[0] & 0x80 == 0;
    b[0] ^= 0x80;
    if negative {
        for x in &mut b {
            *x = !*x;
        }
    }
    let mut at = 0;
    let mut take = |n: usize| -> u32 {
        let v = b[at..at + n]
            .iter()
            .fold(0u32, |a, &x| (a << 8) | u32::from(x));
        at += n;
        v
    };
    let mut int_digits = String::new();
    if intg_part > 0 {
        int_digits.push_str(&take(DIG2BYTES[intg_part]).to_string());
    }
    for _ in 0..intg_full {
        int_digits.push_str(&format!("{:09}", take(4)));
    }
    let int_digits = int_digits.trim_start_matches('0');
    let mut s = String::new();
    if negative {
        s.push('-');
    }
    s.push_str(if int_digits.is_empty() {
        "0"
    } else {
        int_digits
    });
    if scale > 0 {
        s.push('.');
        for _ in 0..frac_full {
            s.push_str(&format!("{:09}", take(4)));
        }
        if frac_part > 0 {
            s.push_str(&format!(
                "{:0w$}",
                take(DIG2BYTES[frac_part]),
                w = frac_part
            ));
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::constants::HEADER_LEN;

    #[test]
    fn decimals_decode_like_the_server_writes_them() {
        // DECIMAL(10,2) 1234.56: intg 8 → 4 bytes, frac 2 → 1 byte.
        let mut b = vec![0x80, 0x00, 0x04, 0xd2, 0x38];
        assert_eq!(decimal_to_string(10, 2, &b).unwrap(), "1234.56");
        for x in &mut b {
            *x = !*x;
        }
        assert_eq!(decimal_to_string(10, 2, &b).unwrap(), "-1234.56");
        assert_eq!(decimal_to_string(4, 0, &[0x80, 0x00]).unwrap(), "0");
        assert!(decimal_to_string(10, 2, &[0x80]).is_none());
    }

    /// Events of a `BINLOG '…'` statement: (type, flags of a Rows event),
    /// each checked against its CRC32.
    fn events_of(stmt: &[u8]) -> Vec<(EventType, Option<u16>)> {
        let b64 = &stmt[b"BINLOG '".len()..stmt.len() - 1];
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let size = u32::from_le_bytes(bytes[at + 9..at + 13].try_into().unwrap()) as usize;
            let ev = &bytes[at..at + size];
            let crc = u32::from_le_bytes(ev[size - 4..].try_into().unwrap());
            assert_eq!(
                crc32fast::hash(&ev[..size - 4]),
                crc,
                "CRC of the event at {at}"
            );
            let t = EventType(ev[4]);
            let flags = t
                .is_rows()
                .then(|| u16::from_le_bytes([ev[HEADER_LEN + 6], ev[HEADER_LEN + 7]]));
            out.push((t, flags));
            at += size;
        }
        out
    }

    #[test]
    fn a_merged_trailer_joins_the_single_statement_and_ends_it() {
        use crate::binlog::synth::{self, SynthOptions, Until};
        use crate::binlog::{BinlogReader, ReaderOptions, Source};
        use crate::group::Grouper;
        use crate::position::BinlogPos;
        use crate::progress::{ProgressTables, Watermark};

        let dir = tempfile::tempdir().unwrap();
        let opts = SynthOptions {
            until: Until::Transactions(1),
            rows_per_transaction: 3,
            ..SynthOptions::default()
        };
        synth::generate(dir.path(), &opts).unwrap();
        let reader =
            BinlogReader::open(Source::dir(dir.path()).unwrap(), ReaderOptions::default()).unwrap();
        let group = Grouper::new(reader).next().unwrap().expect("one group");
        let w = Watermark {
            seq_no: 1,
            server_id: 1,
            end: BinlogPos::new(String::from("x.000001"), 400),
        };
        let mut trailer = Vec::new();
        assert!(ProgressTables::new("parapply")
            .unwrap()
            .shard_update_events(&group.format, &[(0, "db_00", &w)], 1, 1, 0, &mut trailer));
        let plan = |merge: bool| {
            let mut out = Vec::new();
            let used = plan_group(
                &group,
                &mut Session::default(),
                &Collations::default(),
                Some(Trailer {
                    events: &trailer,
                    merge,
                }),
                &mut out,
            )
            .unwrap();
            // The Format_description event first, then the rows.
            assert_eq!(out.len(), 2);
            (used, events_of(&out[1].sql))
        };
        let end = Some(rows_flags::STMT_END);
        let (used, events) = plan(false);
        assert_eq!(used, TrailerUse::Appended);
        assert_eq!(
            events,
            [
                (EventType::TABLE_MAP, None),
                (EventType::WRITE_ROWS_V1, end),
                (EventType::TABLE_MAP, None),
                (EventType::UPDATE_ROWS_V1, end),
            ]
        );
        let (used, events) = plan(true);
        assert_eq!(used, TrailerUse::Merged);
        assert_eq!(
            events,
            [
                (EventType::TABLE_MAP, None),
                (EventType::TABLE_MAP, None),
                (EventType::WRITE_ROWS_V1, Some(0)),
                (EventType::UPDATE_ROWS_V1, end),
            ]
        );
    }

    #[test]
    fn expected_errors_are_matched_as_the_sql_thread_matches_them() {
        assert!(Expect::Error(1442).accepts(Some(1442)));
        assert!(!Expect::Error(1442).accepts(None));
        assert!(!Expect::Error(1442).accepts(Some(1305)));
        // The duplicate-key family counts as one error.
        assert!(Expect::Error(1062).accepts(Some(1586)));
        assert!(Expect::Error(1022).accepts(Some(167)));
        assert!(!Expect::Error(167).accepts(Some(1062)));
        assert!(Expect::Error(1109).accepts(Some(1347)));
        assert!(Expect::SuccessOrError(1213).accepts(None));
        assert!(Expect::SuccessOrError(1213).accepts(Some(1213)));
        assert!(!Expect::SuccessOrError(1213).accepts(Some(1062)));
        assert!(Expect::SuccessOrUnknownTable.accepts(Some(1051)));
        assert!(!Expect::Success.accepts(Some(1051)));
        assert!(is_drop_temporary(
            b"DROP /*!40005 TEMPORARY */ TABLE IF EXISTS `t`"
        ));
        assert!(is_drop_temporary(b"drop temporary table t"));
        assert!(!is_drop_temporary(b"DROP TABLE temporary_things"));
        assert!(is_drop_database(b"drop\n  database if exists d"));
        assert!(is_drop_database(b"DROP SCHEMA `d`"));
        assert!(!is_drop_database(b"DROP TABLE database_x"));
    }

    #[test]
    fn temporary_table_statements_are_recognised() {
        let names = |sql: &str| temp_table_statement(sql.as_bytes());
        let n = |db: Option<&str>, t: &str| (db.map(String::from), t.to_string());
        assert_eq!(
            names("CREATE TEMPORARY TABLE tmp (a INT)"),
            Some((true, vec![n(None, "tmp")]))
        );
        assert_eq!(
            names("create or replace temporary table if not exists `d`.`t``x` AS SELECT 1"),
            Some((true, vec![n(Some("d"), "t`x")]))
        );
        assert_eq!(
            names("DROP /*!40005 TEMPORARY */ TABLE IF EXISTS `tt`.`tmp`, `a`"),
            Some((false, vec![n(Some("tt"), "tmp"), n(None, "a")]))
        );
        assert_eq!(names("DROP TABLE tmp"), None);
        assert_eq!(names("CREATE TABLE tmp (a INT)"), None);
        assert_eq!(names("INSERT INTO tmp VALUES (1)"), None);
    }

    #[test]
    fn binlog_statement_is_base64_of_the_bytes() {
        assert_eq!(binlog_statement(b"abc"), b"BINLOG 'YWJj'".to_vec());
        assert_eq!(binlog_statement(b"abcd"), b"BINLOG 'YWJjZA=='".to_vec());
    }
}
