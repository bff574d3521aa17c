//! `COM_BINLOG_DUMP`: the mirror's events, byte for byte, the way a MariaDB
//! primary sends its binlog (`mysql_binlog_send()` in `sql/sql_repl.cc` is
//! the reference for the behaviour; nothing is copied from it).
//!
//! For each file: a fake Rotate (artificial, `log_pos` 0) naming the file
//! and the position the dump continues at; the file's Format_description
//! event with `LOG_EVENT_BINLOG_IN_USE_F` cleared (and, when the dump starts
//! past it, with `log_pos` and `created` zeroed and the checksum redone, so
//! the client neither counts it nor drops its temporary tables); then every
//! event as stored. At the end of a file that has a successor the dump goes
//! on in it; at the end of the last file it waits for the mirror to grow
//! (a non-blocking dump, or one with server id 0, ends with an EOF packet
//! instead), sending a heartbeat (type 27, naming the file and offset) when
//! idle for `@master_heartbeat_period`.
//!
//! By GTID (`@slave_connect_state`): the requested GTIDs are checked
//! against the mirror's binlog state (the last file's Gtid_list and GTID
//! events), the newest file whose Gtid_list the requested state covers is
//! chosen, and the dump starts at its beginning, leaving out every event
//! group the client already has; after the group that reaches the client's
//! position a fake Gtid_list event tells the client where it stands.
//!
//! Anything the dump cannot serve is error 1236
//! (`ER_MASTER_FATAL_ERROR_READING_BINLOG`, which replicas do not retry)
//! with a message naming the file, the position or the GTID.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::protocol::{Fields, PacketIo, ProtoError};
use super::query::{Val, Vars};
use super::source::{
    parse_gtid_body, read_fde, start_state, BinlogState, FileReader, FileStart, FileView, Header,
    READ_BUF,
};
use super::{ClientStream, Service};
use crate::binlog::constants::{
    EventType, CHECKSUM_ALG_CRC32, CHECKSUM_ALG_OFF, CHECKSUM_ALG_UNDEF, CHECKSUM_LEN, HEADER_LEN,
    LOG_EVENT_ARTIFICIAL_F, LOG_EVENT_BINLOG_IN_USE_F,
};
use crate::position::MariaGtid;

/// `ER_MASTER_FATAL_ERROR_READING_BINLOG`.
pub const ER_MASTER_FATAL_ERROR_READING_BINLOG: u16 = 1236;
/// `BINLOG_DUMP_NON_BLOCK`.
const NON_BLOCK: u16 = 1;
/// `BINLOG_SEND_ANNOTATE_ROWS_EVENT`.
const SEND_ANNOTATE: u16 = 2;
/// `MARIA_SLAVE_CAPABILITY_GTID`: the client takes GTID, Gtid_list and
/// Binlog_checkpoint events as they are, and holes in the stream.
const CAPABILITY_GTID: i64 = 4;
/// Offset of the `created` field of an FDE (header, binlog version, server
/// version).
const FDE_CREATED: usize = HEADER_LEN + 2 + 50;
/// Longest wait between checks of the stop flag and of the client.
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// A `COM_BINLOG_DUMP` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Start position.
    pub pos: u32,
    /// `BINLOG_DUMP_NON_BLOCK`, `BINLOG_SEND_ANNOTATE_ROWS_EVENT`.
    pub flags: u16,
    /// The client's server id (0: do not wait at the end).
    pub server_id: u32,
    /// Start file (empty: the first file).
    pub file: String,
}

/// Parses a `COM_BINLOG_DUMP` payload (after the command byte).
pub fn parse_request(p: &[u8]) -> Result<Request, String> {
    let mut f = Fields::new(p);
    let pos = f.u32("binlog position")?;
    let flags = f.u16("flags")?;
    let server_id = f.u32("server id")?;
    let rest = f.rest();
    let rest = match rest.iter().position(|&b| b == 0) {
        Some(n) => &rest[..n],
        None => rest,
    };
    let file = std::str::from_utf8(rest)
        .map_err(|_| "the binlog file name is not UTF-8".to_string())?
        .to_owned();
    if file.len() > 512 || file.contains('/') {
        return Err(format!("`{file}` is not a binlog file name"));
    }
    Ok(Request {
        pos,
        flags,
        server_id,
        file,
    })
}

/// Why a dump ends.
pub enum Stop {
    /// Refused or failed: error 1236 with this message.
    Refuse(String),
    /// The connection failed.
    Proto(ProtoError),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Proto(ProtoError::Io(e))
    }
}

/// Serves one dump; see the module doc. An `Err` is a connection failure;
/// a refusal has been sent as an ERR packet.
pub fn serve_dump<S: ClientStream>(
    svc: &Service,
    io: &mut PacketIo<S>,
    vars: &Vars,
    payload: &[u8],
) -> Result<(), ProtoError> {
    let r = match parse_request(payload) {
        Ok(req) => Dump::start(svc, io, vars, &req),
        Err(e) => Err(Stop::Refuse(format!("malformed COM_BINLOG_DUMP: {e}"))),
    };
    match r {
        Ok(()) => Ok(()),
        Err(Stop::Refuse(msg)) => {
            tracing::info!(client = %io.stream().peer(), error = %msg, "binlog dump refused or ended with an error");
            io.err(ER_MASTER_FATAL_ERROR_READING_BINLOG, "HY000", &msg)?;
            io.flush()?;
            Ok(())
        }
        Err(Stop::Proto(e)) => Err(e),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Not,
    Standalone,
    Transaction,
}

struct Want {
    gtid: MariaGtid,
    /// The domain was not in the binlog when the dump started: check the
    /// GTID when the domain shows up.
    empty_domain: bool,
}

struct GtidFilter {
    want: BTreeMap<u32, Want>,
    strict: bool,
    skip: Skip,
    /// GTIDs met while skipping (MariaDB's "until binlog state").
    seen: BinlogState,
    send_fake_list: bool,
}

impl GtidFilter {
    /// Whether the filter leaves nothing more out and has nothing more to
    /// send: every requested domain is reached, no group is being skipped,
    /// the fake Gtid_list is sent.
    fn inert(&self) -> bool {
        self.want.is_empty() && self.skip == Skip::Not && !self.send_fake_list
    }
}

struct Dump<'a, S: ClientStream> {
    svc: &'a Service,
    io: &'a mut PacketIo<S>,
    /// Checksum algorithm of artificial events: the client's
    /// `@master_binlog_checksum` until the first FDE, then the file's.
    alg: u8,
    /// The client set `@master_binlog_checksum`: it handles checksums.
    aware: bool,
    server_id: u32,
    heartbeat: Option<Duration>,
    last_sent: Instant,
    annotate: bool,
    blocking: bool,
    filter: Option<GtidFilter>,
    /// The events of a run (see [`Self::send_run`]).
    spans: Vec<std::ops::Range<usize>>,
}

enum Flow {
    Next(String),
    Ended,
}

fn parse_state(s: &str) -> Result<BTreeMap<u32, Want>, String> {
    let mut want = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let g: MariaGtid = part.parse()?;
        if want
            .insert(
                g.domain,
                Want {
                    gtid: g,
                    empty_domain: false,
                },
            )
            .is_some()
        {
            return Err(format!("domain {} appears twice", g.domain));
        }
    }
    Ok(want)
}

fn show_state(want: &BTreeMap<u32, Want>) -> String {
    want.values()
        .map(|w| w.gtid.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether the client's state is covered by a file's Gtid_list: every
/// domain of the list is requested, at or after the list's GTID.
fn covers(want: &BTreeMap<u32, Want>, list: &[MariaGtid]) -> bool {
    for (i, e) in list.iter().enumerate() {
        let Some(w) = want.get(&e.domain) else {
            return false;
        };
        if w.gtid.server == e.server && w.gtid.seq <= e.seq {
            if w.gtid.seq < e.seq {
                return false;
            }
            // Equal: fine only if it is the domain's last GTID in the list.
            if list.get(i + 1).is_some_and(|n| n.domain == e.domain) {
                return false;
            }
        }
    }
    true
}

fn is_part_of_group(t: EventType) -> bool {
    t.is_rows()
        || matches!(
            t,
            EventType::GTID
                | EventType::INTVAR
                | EventType::RAND
                | EventType::USER_VAR
                | EventType::TABLE_MAP
                | EventType::ANNOTATE_ROWS
        )
}

/// Whether a Query event (whole, with checksum if `crc`) is `COMMIT` or
/// `ROLLBACK`.
fn is_commit_or_rollback(ev: &[u8], crc: bool) -> bool {
    let end = ev.len().saturating_sub(if crc { CHECKSUM_LEN } else { 0 });
    let Some(b) = ev.get(HEADER_LEN..end) else {
        return false;
    };
    if b.len() < 13 {
        return false;
    }
    let db_len = usize::from(b[8]);
    let status_len = usize::from(u16::from_le_bytes([b[11], b[12]]));
    let q = 13 + status_len + db_len + 1;
    matches!(b.get(q..), Some(b"COMMIT") | Some(b"ROLLBACK"))
}

fn checksum(ev: &mut [u8], alg: u8) {
    if alg == CHECKSUM_ALG_CRC32 && ev.len() >= HEADER_LEN + CHECKSUM_LEN {
        let n = ev.len() - CHECKSUM_LEN;
        let c = crc32fast::hash(&ev[..n]);
        ev[n..].copy_from_slice(&c.to_le_bytes());
    }
}

impl<'a, S: ClientStream> Dump<'a, S> {
    fn start(
        svc: &'a Service,
        io: &'a mut PacketIo<S>,
        vars: &Vars,
        req: &Request,
    ) -> Result<(), Stop> {
        let aware = vars.get("master_binlog_checksum").is_some();
        let alg = match vars
            .get("master_binlog_checksum")
            .and_then(Val::text)
            .map(|t| String::from_utf8_lossy(&t).to_ascii_uppercase())
            .as_deref()
        {
            Some("CRC32") => CHECKSUM_ALG_CRC32,
            Some("NONE") => CHECKSUM_ALG_OFF,
            _ => CHECKSUM_ALG_UNDEF,
        };
        let capability = vars
            .get("mariadb_slave_capability")
            .and_then(Val::int)
            .unwrap_or(0);
        if capability < CAPABILITY_GTID {
            return Err(Stop::Refuse(format!(
                "this binlog server serves clients that take MariaDB's events as they are \
                 (@mariadb_slave_capability >= {CAPABILITY_GTID}: MariaDB 10.0+ replicas, \
                 mariadb-binlog, parapply mirror); this client announced {capability}"
            )));
        }
        if vars
            .get("slave_until_gtid")
            .is_some_and(|v| *v != Val::Null)
        {
            return Err(Stop::Refuse(
                "START SLAVE UNTIL master_gtid_pos is not supported by this binlog server; \
                 start the replica without UNTIL"
                    .into(),
            ));
        }
        let heartbeat = vars
            .get("master_heartbeat_period")
            .and_then(Val::int)
            .filter(|&n| n > 0)
            .map(|n| Duration::from_nanos(n as u64).max(Duration::from_millis(1)));
        let blocking = req.flags & NON_BLOCK == 0 && req.server_id != 0;
        let mut snap = svc.published.snapshot();
        // A mirror that has not written its first file yet: a waiting
        // client waits for it, as it would for new events.
        while snap.files.is_empty() && blocking {
            if svc.stopping() {
                return Ok(());
            }
            if io.stream().peer_closed() {
                return Err(Stop::Proto(ProtoError::Io(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the client closed the connection",
                ))));
            }
            svc.published.wait_change(snap.version, WAIT_SLICE);
            snap = svc.published.snapshot();
        }
        let Some(first_file) = snap.files.first().cloned() else {
            return Err(Stop::Refuse(
                "this mirror holds no binlog file yet; retry once it has started".into(),
            ));
        };
        let identity = svc.identity();
        let mut d = Dump {
            svc,
            io,
            alg,
            aware,
            server_id: identity.server_id,
            heartbeat,
            last_sent: Instant::now(),
            annotate: req.flags & SEND_ANNOTATE != 0,
            blocking,
            filter: None,
            spans: Vec::new(),
        };
        tracing::info!(
            client = %d.io.stream().peer(),
            client_server_id = req.server_id,
            file = %req.file,
            pos = req.pos,
            gtid = ?vars.get("slave_connect_state").and_then(Val::text).map(|t| String::from_utf8_lossy(&t).into_owned()),
            "binlog dump"
        );
        let connect_state = match vars.get("slave_connect_state") {
            None | Some(Val::Null) => None,
            Some(v) => Some(String::from_utf8_lossy(&v.text().unwrap_or_default()).into_owned()),
        };
        let (mut file, mut pos) = match connect_state {
            Some(state) => {
                let mut want = parse_state(&state).map_err(|e| {
                    Stop::Refuse(format!("malformed @slave_connect_state '{state}': {e}"))
                })?;
                let strict = vars
                    .get("slave_gtid_strict_mode")
                    .and_then(Val::int)
                    .is_some_and(|v| v != 0);
                let ignore_dup = vars
                    .get("slave_gtid_ignore_duplicates")
                    .and_then(Val::int)
                    .is_some_and(|v| v != 0);
                let end = svc.end_state().map_err(Stop::Refuse)?;
                check_start(&mut want, &end, ignore_dup)?;
                let file = find_start_file(&svc.dir, &snap.files, snap.last_len, &mut want)?;
                d.filter = Some(GtidFilter {
                    want,
                    strict,
                    skip: Skip::Not,
                    seen: BinlogState::default(),
                    send_fake_list: false,
                });
                (file, 4u64)
            }
            None => {
                let name = if req.file.is_empty() {
                    first_file
                } else {
                    req.file.clone()
                };
                if !snap.files.contains(&name) {
                    return Err(Stop::Refuse(format!(
                        "could not find the requested binlog file `{name}` in this mirror \
                         (it holds {} … {})",
                        snap.files[0],
                        snap.files[snap.files.len() - 1]
                    )));
                }
                (name, u64::from(req.pos))
            }
        };
        let mut first = true;
        loop {
            match d.send_file(&file, pos, first)? {
                Flow::Next(next) => {
                    file = next;
                    pos = 4;
                    first = false;
                }
                Flow::Ended => return Ok(()),
            }
        }
    }

    fn path(&self, file: &str) -> std::path::PathBuf {
        self.svc.dir.join(file)
    }

    /// The fake Rotate, the FDE, then the events of `file` from `pos`.
    fn send_file(&mut self, file: &str, pos: u64, first: bool) -> Result<Flow, Stop> {
        let path = self.path(file);
        let mut r = FileReader::open(path.clone())
            .map_err(|e| Stop::Refuse(format!("cannot open {file} in the mirror: {e}")))?;
        let limit = self.limit(file, &r)?.0;
        let fde = read_fde(&mut r, limit).map_err(Stop::Refuse)?;
        let fde_end = 4 + fde.raw.len() as u64;
        if first {
            let impossible = |why: &str| {
                Stop::Refuse(format!(
                    "the client asks to start at {file}:{pos}, an impossible position: {why}"
                ))
            };
            if pos < 4 {
                return Err(impossible("binlog events start at offset 4"));
            }
            if pos > limit {
                return Err(impossible(&format!(
                    "this mirror holds {file} up to offset {limit}"
                )));
            }
            if pos > 4 && pos < limit {
                let ok = pos >= fde_end
                    && pos + HEADER_LEN as u64 <= limit
                    && r.get(pos, HEADER_LEN, limit)
                        .ok()
                        .and_then(Header::parse)
                        .is_some_and(|h| h.fits_at(pos));
                if !ok {
                    return Err(impossible("it is not the start of an event"));
                }
            }
        }
        self.fake_rotate(file, pos)?;
        if fde.crc32() && !self.aware {
            return Err(Stop::Refuse(format!(
                "{file} has CRC32 checksums and the client did not announce that it handles \
                 them (SET @master_binlog_checksum = @@global.binlog_checksum before the dump)"
            )));
        }
        self.alg = fde.alg;
        let mut ev = fde.raw.clone();
        let flags = u16::from_le_bytes([ev[17], ev[18]]) & !LOG_EVENT_BINLOG_IN_USE_F;
        ev[17..19].copy_from_slice(&flags.to_le_bytes());
        let reached = self.filter.as_ref().is_none_or(|f| f.want.is_empty());
        if first && pos > 4 {
            ev[13..17].copy_from_slice(&[0; 4]);
            ev[FDE_CREATED..FDE_CREATED + 4].copy_from_slice(&[0; 4]);
            checksum(&mut ev, self.alg);
        } else if !reached {
            ev[FDE_CREATED..FDE_CREATED + 4].copy_from_slice(&[0; 4]);
            checksum(&mut ev, self.alg);
        }
        self.send_event(&ev)?;
        let cur = if pos > 4 { pos } else { fde_end };
        if cur == fde_end && cur + HEADER_LEN as u64 <= limit {
            let h = r.get(cur, HEADER_LEN, limit).ok().and_then(Header::parse);
            if h.is_some_and(|h| h.t == EventType::START_ENCRYPTION) {
                return Err(Stop::Refuse(format!(
                    "{file} is encrypted; this binlog server cannot serve encrypted binlogs"
                )));
            }
        }
        self.send_events(file, &mut r, cur)
    }

    /// The servable length of `file` and the view's version.
    fn limit(&self, file: &str, r: &FileReader) -> Result<(u64, FileView, u64), Stop> {
        let (view, version) = self.svc.published.view(file);
        let n = match &view {
            FileView::Active(n) => *n,
            FileView::Closed { .. } => r
                .file_len()
                .map_err(|e| Stop::Refuse(format!("cannot read {file}: {e}")))?,
            FileView::Missing => {
                return Err(Stop::Refuse(format!(
                    "{file} is no longer in this mirror's index"
                )))
            }
        };
        Ok((n, view, version))
    }

    fn send_events(&mut self, file: &str, r: &mut FileReader, mut cur: u64) -> Result<Flow, Stop> {
        loop {
            let (limit, view, version) = self.limit(file, r)?;
            while cur + HEADER_LEN as u64 <= limit {
                if self.filter.is_none() {
                    let n = self.send_run(file, r, cur, limit)?;
                    if n > 0 {
                        cur += n;
                        continue;
                    }
                }
                let h = r
                    .get(cur, HEADER_LEN, limit)
                    .map_err(|e| Stop::Refuse(format!("reading {file} at {cur}: {e}")))
                    .map(Header::parse)?
                    .ok_or_else(|| Stop::Refuse("short header".into()))?;
                if !h.fits_at(cur) {
                    return Err(Stop::Refuse(format!(
                        "bogus data in the mirror at {file}:{cur}: an event of {} bytes \
                         with log_pos {}",
                        h.size, h.log_pos
                    )));
                }
                let end = cur + u64::from(h.size);
                if end > limit {
                    break;
                }
                self.event(file, r, cur, &h, limit)?;
                cur = end;
                if self.filter.as_ref().is_some_and(GtidFilter::inert) {
                    // The client's position is reached: the rest goes in runs.
                    self.filter = None;
                }
            }
            match view {
                FileView::Closed { next } => {
                    if cur != limit {
                        return Err(Stop::Refuse(format!(
                            "{file} ends at {limit} inside the event at {cur}; the mirror file \
                             is truncated"
                        )));
                    }
                    return Ok(Flow::Next(next));
                }
                FileView::Active(_) => {}
                FileView::Missing => unreachable_missing()?,
            }
            if !self.blocking {
                self.io.eof(0)?;
                self.io.flush()?;
                return Ok(Flow::Ended);
            }
            self.io.flush()?;
            // Wait for growth, with heartbeats.
            loop {
                if self.svc.stopping() {
                    self.io.flush()?;
                    return Ok(Flow::Ended);
                }
                let slice = match self.heartbeat {
                    Some(hb) => hb.saturating_sub(self.last_sent.elapsed()).min(WAIT_SLICE),
                    None => WAIT_SLICE,
                };
                self.svc.published.wait_change(version, slice);
                if self.svc.published.view(file).1 != version {
                    break;
                }
                if self.io.stream().peer_closed() {
                    return Err(Stop::Proto(ProtoError::Io(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the client closed the connection",
                    ))));
                }
                if self
                    .heartbeat
                    .is_some_and(|hb| self.last_sent.elapsed() >= hb)
                {
                    self.heartbeat_event(file, cur)?;
                    self.io.flush()?;
                }
            }
        }
    }

    /// Sends the whole events buffered at `pos` in one vectored write
    /// (Annotate_rows events left out unless asked for); returns how many
    /// bytes of the file they take, 0 when the event at `pos` is not
    /// wholly buffered (or not whole yet): then [`Self::event`] takes it.
    fn send_run(
        &mut self,
        file: &str,
        r: &mut FileReader,
        pos: u64,
        limit: u64,
    ) -> Result<u64, Stop> {
        let w = r
            .ahead(pos, HEADER_LEN, limit)
            .map_err(|e| Stop::Refuse(format!("reading {file} at {pos}: {e}")))?;
        self.spans.clear();
        let mut off = 0usize;
        while let Some(h) = w.get(off..).and_then(Header::parse) {
            let at = pos + off as u64;
            if !h.fits_at(at) {
                // Reported by the event-at-a-time path.
                break;
            }
            let end = off + h.size as usize;
            if end > w.len() {
                break;
            }
            if h.t != EventType::ANNOTATE_ROWS || self.annotate {
                self.spans.push(off..end);
            }
            off = end;
        }
        if off > 0 {
            self.io.event_run(w, &self.spans)?;
            self.last_sent = Instant::now();
        }
        Ok(off as u64)
    }

    /// Sends (or leaves out) the event at `pos`.
    fn event(
        &mut self,
        file: &str,
        r: &mut FileReader,
        pos: u64,
        h: &Header,
        limit: u64,
    ) -> Result<(), Stop> {
        let size = h.size as usize;
        let crc = self.alg == CHECKSUM_ALG_CRC32;
        let small = size <= READ_BUF;
        let read_err = |e: io::Error| Stop::Refuse(format!("reading {file} at {pos}: {e}"));
        if self.filter.is_some() && small {
            let ev = r.get(pos, size, limit).map_err(read_err)?;
            if self.leave_out(h, ev, crc, file, pos)? {
                return Ok(());
            }
        } else if let Some(f) = &self.filter {
            // Large events are never GTID events or COMMITs.
            if f.skip != Skip::Not {
                if f.skip == Skip::Standalone && !is_part_of_group(h.t) {
                    if let Some(f) = self.filter.as_mut() {
                        f.skip = Skip::Not;
                    }
                }
                return Ok(());
            }
        }
        if h.t == EventType::ANNOTATE_ROWS && !self.annotate {
            return Ok(());
        }
        self.io.begin(size + 1);
        self.io.put(&[0])?;
        if small {
            let ev = r.get(pos, size, limit).map_err(read_err)?;
            self.io.put(ev)?;
        } else {
            let io = &mut *self.io;
            r.stream(pos, size as u64, |piece| io.put(piece))
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::Other => read_err(e),
                    _ => Stop::from(e),
                })?;
        }
        self.io.end()?;
        self.last_sent = Instant::now();
        let fake = self
            .filter
            .as_ref()
            .is_some_and(|f| f.send_fake_list && f.skip == Skip::Not);
        if fake {
            let list = match self.filter.as_mut() {
                Some(f) => {
                    f.send_fake_list = false;
                    f.seen.to_list()
                }
                None => Vec::new(),
            };
            self.fake_gtid_list(&list, pos + size as u64)?;
        }
        Ok(())
    }

    /// The GTID filter: whether this event is left out.
    fn leave_out(
        &mut self,
        h: &Header,
        ev: &[u8],
        crc: bool,
        file: &str,
        pos: u64,
    ) -> Result<bool, Stop> {
        let Some(f) = self.filter.as_mut() else {
            return Ok(false);
        };
        if h.t == EventType::GTID && !f.want.is_empty() {
            let body_end = ev.len().saturating_sub(if crc { CHECKSUM_LEN } else { 0 });
            let (seq, domain, flags2) = ev
                .get(HEADER_LEN..body_end)
                .and_then(parse_gtid_body)
                .ok_or_else(|| Stop::Refuse(format!("malformed GTID event at {file}:{pos}")))?;
            let g = MariaGtid {
                domain,
                server: h.server_id,
                seq,
            };
            f.seen.update(g);
            if let Some(w) = f.want.get_mut(&domain) {
                if w.empty_domain {
                    let end = self.svc.end_state().map_err(Stop::Refuse)?;
                    if end
                        .find(w.gtid.domain, w.gtid.server)
                        .is_none_or(|s| s < w.gtid.seq)
                    {
                        return Err(Stop::Refuse(format!(
                            "the client asks to start after GTID {}, which this mirror does not \
                             hold (domain {domain} starts at {g} in {file}:{pos})",
                            w.gtid
                        )));
                    }
                    w.empty_domain = false;
                }
                let standalone = flags2 & 1 != 0;
                if g.server != w.gtid.server || g.seq <= w.gtid.seq {
                    f.skip = if standalone {
                        Skip::Standalone
                    } else {
                        Skip::Transaction
                    };
                }
                if g.server == w.gtid.server && g.seq >= w.gtid.seq {
                    if f.strict && g.seq > w.gtid.seq {
                        return Err(Stop::Refuse(format!(
                            "GTID strict mode: the client asks to start after GTID {}, which \
                             this mirror does not hold, though it holds {g} after it \
                             ({file}:{pos})",
                            w.gtid
                        )));
                    }
                    f.send_fake_list = true;
                    f.want.remove(&domain);
                }
            }
        }
        match f.skip {
            Skip::Not => Ok(false),
            Skip::Standalone => {
                if !is_part_of_group(h.t) {
                    f.skip = Skip::Not;
                }
                Ok(true)
            }
            Skip::Transaction => {
                if h.t == EventType::XID
                    || h.t == EventType::XA_PREPARE
                    || (h.t == EventType::QUERY && is_commit_or_rollback(ev, crc))
                {
                    f.skip = Skip::Not;
                }
                Ok(true)
            }
        }
    }

    /// An artificial event: header (timestamp 0, our server id), body,
    /// checksum per the current algorithm.
    fn artificial(
        &mut self,
        t: EventType,
        log_pos: u32,
        flags: u16,
        body: &[u8],
    ) -> io::Result<()> {
        let crc = self.alg == CHECKSUM_ALG_CRC32;
        let size = HEADER_LEN + body.len() + if crc { CHECKSUM_LEN } else { 0 };
        let mut ev = Vec::with_capacity(size);
        ev.extend_from_slice(&0u32.to_le_bytes());
        ev.push(t.0);
        ev.extend_from_slice(&self.server_id.to_le_bytes());
        ev.extend_from_slice(&(size as u32).to_le_bytes());
        ev.extend_from_slice(&log_pos.to_le_bytes());
        ev.extend_from_slice(&flags.to_le_bytes());
        ev.extend_from_slice(body);
        if crc {
            ev.extend_from_slice(&[0; 4]);
            checksum(&mut ev, self.alg);
        }
        self.send_event(&ev)
    }

    fn send_event(&mut self, ev: &[u8]) -> io::Result<()> {
        self.io.begin(ev.len() + 1);
        self.io.put(&[0])?;
        self.io.put(ev)?;
        self.io.end()?;
        self.last_sent = Instant::now();
        Ok(())
    }

    fn fake_rotate(&mut self, file: &str, pos: u64) -> io::Result<()> {
        let mut body = pos.to_le_bytes().to_vec();
        body.extend_from_slice(file.as_bytes());
        self.artificial(EventType::ROTATE, 0, LOG_EVENT_ARTIFICIAL_F, &body)
    }

    fn heartbeat_event(&mut self, file: &str, pos: u64) -> io::Result<()> {
        match u32::try_from(pos) {
            Ok(p) => self.artificial(EventType::HEARTBEAT, p, 0, file.as_bytes()),
            Err(_) => {
                // Beyond 4 GiB: log_pos 0 and the position in a sub-header.
                let mut body = pos.to_le_bytes().to_vec();
                body.extend_from_slice(file.as_bytes());
                self.artificial(EventType::HEARTBEAT, 0, 0, &body)
            }
        }
    }

    fn fake_gtid_list(&mut self, list: &[MariaGtid], log_pos: u64) -> io::Result<()> {
        let mut body = (list.len() as u32).to_le_bytes().to_vec();
        for g in list {
            body.extend_from_slice(&g.domain.to_le_bytes());
            body.extend_from_slice(&g.server.to_le_bytes());
            body.extend_from_slice(&g.seq.to_le_bytes());
        }
        let p = u32::try_from(log_pos).unwrap_or(0);
        self.artificial(EventType::GTID_LIST, p, LOG_EVENT_ARTIFICIAL_F, &body)
    }
}

fn unreachable_missing() -> Result<(), Stop> {
    Err(Stop::Refuse(
        "the file left the mirror's index during the dump".into(),
    ))
}

/// Checks the client's GTID state against the mirror's binlog state.
fn check_start(
    want: &mut BTreeMap<u32, Want>,
    end: &BinlogState,
    ignore_duplicates: bool,
) -> Result<(), Stop> {
    for w in want.values_mut() {
        let g = w.gtid;
        if end.find(g.domain, g.server).is_some_and(|s| s >= g.seq) {
            continue;
        }
        let Some(last) = end.last_in_domain(g.domain) else {
            w.empty_domain = true;
            continue;
        };
        if ignore_duplicates && last.seq < g.seq {
            continue;
        }
        let why = if last.seq >= g.seq {
            format!(
                "; the mirror holds later GTIDs of domain {} (up to {last}), so the client has \
                 probably diverged by applying transactions of its own",
                g.domain
            )
        } else {
            format!(" (domain {} ends at {last} in this mirror)", g.domain)
        };
        return Err(Stop::Refuse(format!(
            "the client asks to start after GTID {g}, which is not in this mirror's binlog{why}"
        )));
    }
    Ok(())
}

/// The newest file whose Gtid_list the requested state covers; removes the
/// domains whose requested GTID is that file's starting point.
fn find_start_file(
    dir: &Path,
    files: &[String],
    last_len: u64,
    want: &mut BTreeMap<u32, Want>,
) -> Result<String, Stop> {
    for (i, name) in files.iter().enumerate().rev() {
        let mut r = FileReader::open(dir.join(name))
            .map_err(|e| Stop::Refuse(format!("cannot open {name} in the mirror: {e}")))?;
        let len = if i + 1 == files.len() {
            last_len
        } else {
            r.file_len()
                .map_err(|e| Stop::Refuse(format!("cannot read {name}: {e}")))?
        };
        let list = match start_state(&mut r, len).map_err(Stop::Refuse)? {
            FileStart::Listed(st) => Some(st.to_list()),
            FileStart::Unlisted => None,
            // The newest file has only its FDE so far: it holds no GTID the
            // client could lack, and where it starts is not known yet; the
            // file before it is the place to start (or, with no file before
            // it, this one, from the beginning of the history).
            FileStart::NotYet if i > 0 => continue,
            FileStart::NotYet => Some(Vec::new()),
        };
        if list.as_ref().is_none_or(|l| covers(want, l)) {
            for e in list.iter().flatten() {
                if want
                    .get(&e.domain)
                    .is_some_and(|w| w.gtid.server == e.server && w.gtid.seq == e.seq)
                {
                    want.remove(&e.domain);
                }
            }
            return Ok(name.clone());
        }
    }
    Err(Stop::Refuse(format!(
        "the client's GTID position {} is older than this mirror: its first file {} starts \
         after it; the files the client needs are not in the mirror",
        show_state(want),
        files[0]
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(d: u32, s: u32, q: u64) -> MariaGtid {
        MariaGtid {
            domain: d,
            server: s,
            seq: q,
        }
    }

    #[test]
    fn requests() {
        let mut p = 4u32.to_le_bytes().to_vec();
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&9u32.to_le_bytes());
        p.extend_from_slice(b"b.000001");
        let r = parse_request(&p).unwrap();
        assert_eq!(
            (r.pos, r.flags, r.server_id, r.file.as_str()),
            (4, 2, 9, "b.000001")
        );
        assert!(parse_request(&p[..9]).is_err());
        let mut bad = p[..10].to_vec();
        bad.extend_from_slice(b"../etc/passwd");
        assert!(parse_request(&bad).is_err());
    }

    #[test]
    fn gtid_list_coverage() {
        let want = parse_state("0-1-10").unwrap();
        assert!(covers(&want, &[g(0, 1, 10)]));
        assert!(covers(&want, &[g(0, 1, 9)]));
        assert!(!covers(&want, &[g(0, 1, 11)]));
        assert!(!covers(&want, &[g(0, 1, 10), g(0, 2, 3)]));
        assert!(!covers(&want, &[g(1, 1, 1)]));
        assert!(parse_state("0-1-1,0-2-2").is_err());
        assert!(parse_state("x").is_err());
        assert!(parse_state("").unwrap().is_empty());
    }

    #[test]
    fn start_checks() {
        let end = BinlogState::from_list(&[g(0, 1, 20)]);
        let mut ok = parse_state("0-1-20,5-1-3").unwrap();
        assert!(check_start(&mut ok, &end, false).is_ok());
        assert!(ok[&5].empty_domain);
        let mut ahead = parse_state("0-1-21").unwrap();
        assert!(check_start(&mut ahead, &end, false).is_err());
        assert!(check_start(&mut ahead, &end, true).is_ok());
        let mut diverged = parse_state("0-2-5").unwrap();
        assert!(check_start(&mut diverged, &end, false).is_err());
    }

    #[test]
    fn commit_queries() {
        let mut ev = vec![0u8; HEADER_LEN];
        ev.extend_from_slice(&[0; 8]); // thread id, exec time
        ev.push(2); // db len
        ev.extend_from_slice(&[0, 0]); // error code
        ev.extend_from_slice(&1u16.to_le_bytes()); // status vars len
        ev.push(0xff); // a status var byte
        ev.extend_from_slice(b"db\0COMMIT");
        assert!(is_commit_or_rollback(&ev, false));
        ev.extend_from_slice(&[1, 2, 3, 4]);
        assert!(is_commit_or_rollback(&ev, true));
        assert!(!is_commit_or_rollback(&ev, false));
        assert!(!is_commit_or_rollback(&ev[..25], false));
    }

    /// A dump by GTID that arrives while the newest file holds only its
    /// FDE starts in the file before it: starting in the new file would
    /// skip every event of the old one (a stock replica then stopped with
    /// "Table 'w1.t' doesn't exist").
    #[test]
    fn a_file_just_begun_is_not_a_starting_point() {
        let real = std::fs::read("../shared/binlogs/mariadb-10.11/mariadb-bin.000001").unwrap();
        let fde_len = u32::from_le_bytes(real[4 + 9..4 + 13].try_into().unwrap()) as usize;
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("b.000001"), &real).unwrap();
        std::fs::write(tmp.path().join("b.000002"), &real[..4 + fde_len]).unwrap();
        let files = ["b.000001".to_owned(), "b.000002".to_owned()];
        let head = (4 + fde_len) as u64;

        let mut r = FileReader::open(tmp.path().join("b.000002")).unwrap();
        assert_eq!(start_state(&mut r, head).unwrap(), FileStart::NotYet);
        let mut r = FileReader::open(tmp.path().join("b.000001")).unwrap();
        let len = real.len() as u64;
        assert!(matches!(
            start_state(&mut r, len).unwrap(),
            FileStart::Listed(_)
        ));

        let mut from_scratch = parse_state("").unwrap();
        let start = find_start_file(tmp.path(), &files, head, &mut from_scratch);
        assert_eq!(start.ok().as_deref(), Some("b.000001"));
        // Alone, the file just begun is the start of the history.
        let mut from_scratch = parse_state("").unwrap();
        let start = find_start_file(tmp.path(), &files[1..], head, &mut from_scratch);
        assert_eq!(start.ok().as_deref(), Some("b.000002"));
    }
}
