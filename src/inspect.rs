//! `parapply inspect`: list the events or transaction groups of binlog files.
//!
//! Text output is one line per event or group; `--json` prints one JSON
//! object per line with the fields documented on [`EventLine`] and
//! [`GroupLine`]. Positions and type codes are those `mariadb-binlog` prints
//! (`# at POS`, `end_log_pos`).

use std::io::{self, Write};

use serde::Serialize;

use crate::binlog::{BinlogReader, Event, RawEvent, ReadError, ReaderOptions, Source};
use crate::group::{Group, Grouper};
use crate::position::StartAt;
use crate::text::escape_control;

/// What to list and how.
#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// Groups instead of events.
    pub groups: bool,
    /// JSON lines instead of text.
    pub json: bool,
    /// Where to start.
    pub start: StartAt,
    /// Keep waiting for new events.
    pub follow: bool,
}

/// One event, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct EventLine<'a> {
    /// File it was read from.
    pub file: &'a str,
    /// Offset of its first byte (`# at` in mariadb-binlog).
    pub pos: u64,
    /// Offset just past it in the file.
    pub end_pos: u64,
    /// `log_pos` of its header: end position in the primary's file.
    pub log_pos: u32,
    /// Type code.
    pub type_code: u8,
    /// Type name.
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// Server id.
    pub server_id: u32,
    /// Header timestamp.
    pub timestamp: u32,
    /// Header flags.
    pub flags: u16,
    /// Whole size in bytes.
    pub size: usize,
    /// The primary's file, when it differs from `file` (relay logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_file: Option<&'a str>,
    /// The decoded body.
    pub event: Event<'a>,
}

/// One group, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct GroupLine<'a> {
    /// `domain-server-seq` (or `uuid:gno`), null without GTIDs.
    pub gtid: Option<String>,
    /// The primary's file.
    pub file: &'a str,
    /// Start position in the primary's file.
    pub start_pos: u64,
    /// End position in the primary's file.
    pub end_pos: u64,
    /// Databases touched.
    pub databases: &'a [String],
    /// Whether `databases` is known to be complete.
    pub databases_exact: bool,
    /// `db.table` of each Table_map.
    pub tables: Vec<String>,
    /// Kind: row_dml, statement_dml, ddl, xa, non_transactional, unknown.
    pub kind: &'static str,
    /// Number of events.
    pub events: usize,
    /// Bytes of events.
    pub bytes: usize,
    /// MariaDB GTID flags by name.
    pub flags: Vec<&'static str>,
    /// Group-commit id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_id: Option<u64>,
    /// File the group was read from, when it differs from `file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_file: Option<&'a str>,
}

/// Runs `inspect` over `source`, writing to `out`.
pub fn run(source: Source, opts: &InspectOptions, out: &mut dyn Write) -> Result<(), InspectError> {
    let ropts = ReaderOptions {
        start: opts.start.clone(),
        follow: opts.follow,
        ..ReaderOptions::default()
    };
    let mut reader = BinlogReader::open(source, ropts)?;
    if opts.groups {
        let mut grouper = Grouper::new(reader);
        while let Some(g) = grouper.next()? {
            write_group(&g, opts.json, out)?;
        }
        if let Some((what, n)) = grouper.pending() {
            tracing::warn!(group = %what, events = n, "the stream ends inside a transaction group (not yet committed)");
        }
    } else {
        while let Some(ev) = reader.next()? {
            write_event(&ev, opts.json, out)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn write_event(ev: &RawEvent<'_>, json: bool, out: &mut dyn Write) -> Result<(), InspectError> {
    let event = ev.decode()?;
    if json {
        let line = EventLine {
            file: ev.file,
            pos: ev.pos,
            end_pos: ev.end_pos(),
            log_pos: ev.header.log_pos,
            type_code: ev.header.event_type.0,
            type_name: ev.header.event_type.name(),
            server_id: ev.header.server_id,
            timestamp: ev.header.timestamp,
            flags: ev.header.flags,
            size: ev.bytes.len(),
            origin_file: (ev.origin_file != ev.file).then_some(&**ev.origin_file),
            event,
        };
        serde_json::to_writer(&mut *out, &line).map_err(io::Error::from)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{}:{}\t{}\t{}\tserver {}\tend_log_pos {}\t{}",
            escape_control(ev.file),
            ev.pos,
            ev.end_pos(),
            ev.header.event_type.name(),
            ev.header.server_id,
            ev.header.log_pos,
            summary(&event)
        )?;
    }
    Ok(())
}

/// A short human description of an event.
fn summary(ev: &Event<'_>) -> String {
    // Names and statements come from the primary: control characters
    // are shown escaped, never sent to the terminal.
    let text = |b: &[u8], max: usize| {
        let s = String::from_utf8_lossy(b);
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        let s = if s.chars().count() > max {
            format!("{}…", s.chars().take(max).collect::<String>())
        } else {
            s
        };
        escape_control(&s).into_owned()
    };
    match ev {
        Event::FormatDescription(f) => format!(
            "binlog v{} server {} checksum {}",
            f.binlog_version,
            f.server_version,
            match f.checksum_alg {
                0 => "off",
                1 => "crc32",
                _ => "none",
            }
        ),
        Event::Gtid(g) => format!(
            "domain {} seq {} {}",
            g.domain_id,
            g.seq_no,
            g.flag_names().join(",")
        ),
        Event::GtidList(l) => format!(
            "[{}]",
            l.gtids
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Event::BinlogCheckpoint(c) => text(c.file, 80),
        Event::AnnotateRows(a) => text(a.query, 100),
        Event::Query(q) => format!("db `{}`: {}", text(q.db, 64), text(&q.query, 100)),
        Event::Xid(x) => format!("xid {}", x.xid),
        Event::XaPrepare(x) => format!("xid '{}'", text(x.gtrid, 64)),
        Event::Intvar(i) => format!(
            "{} = {}",
            if i.kind == 1 {
                "LAST_INSERT_ID"
            } else {
                "INSERT_ID"
            },
            i.value
        ),
        Event::Rand(r) => format!("seeds {} {}", r.seed1, r.seed2),
        Event::UserVar(u) => format!("@`{}`", text(u.name, 64)),
        Event::TableMap(t) => format!(
            "table_id {} `{}`.`{}`",
            t.table_id,
            text(t.db, 64),
            text(t.table, 64)
        ),
        Event::Rows(r) => format!(
            "table_id {} {} bytes{}",
            r.table_id,
            r.rows.len(),
            if r.stmt_end() { " stmt_end" } else { "" }
        ),
        Event::Rotate(r) => format!("to {}:{}", text(r.next_file, 80), r.position),
        Event::Stop => String::new(),
        Event::Heartbeat(h) => text(h.file, 80),
        Event::MySqlGtid(g) => format!("{}:{}", crate::position::format_uuid(&g.sid), g.gno),
        Event::PreviousGtids(p) => p.gtid_set.clone().unwrap_or_else(|| "(tagged)".into()),
        Event::TransactionPayload(p) => format!(
            "{} bytes, {} uncompressed",
            p.payload.len(),
            p.uncompressed_size
        ),
        Event::Other(b) => format!("{} bytes", b.len()),
    }
}

fn write_group(g: &Group, json: bool, out: &mut dyn Write) -> Result<(), InspectError> {
    let flags = crate::binlog::events::gtid_flag_names(g.gtid_flags, 0);
    if json {
        let line = GroupLine {
            gtid: g.gtid.as_ref().map(|x| x.to_string()),
            file: &g.file,
            start_pos: g.start_pos,
            end_pos: g.end_pos,
            databases: &g.databases,
            databases_exact: g.databases_exact,
            tables: g.tables.iter().map(|(d, t)| format!("{d}.{t}")).collect(),
            kind: g.kind.as_str(),
            events: g.events.len(),
            bytes: g.bytes.len(),
            flags,
            commit_id: g.commit_id,
            source_file: (g.source_file != g.file).then_some(&*g.source_file),
        };
        serde_json::to_writer(&mut *out, &line).map_err(io::Error::from)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{}\t{}:{}-{}\t{}\t[{}]{}\t{} events\t{} bytes",
            g.gtid
                .as_ref()
                .map(|x| x.to_string())
                .unwrap_or_else(|| "-".into()),
            escape_control(&g.file),
            g.start_pos,
            g.end_pos,
            g.kind.as_str(),
            escape_control(&g.databases.join(",")),
            if g.databases_exact { "" } else { "?" },
            g.events.len(),
            g.bytes.len()
        )?;
    }
    Ok(())
}

/// Why `inspect` stopped.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The binlog could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Output could not be written.
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
}
