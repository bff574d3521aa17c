//! `parapply mirror`: a byte-identical copy of the primary's binlog, written
//! by connecting to the primary as a replica (what a replica's IO thread
//! does, but keeping the primary's file names, offsets and bytes instead of
//! writing relay logs). `docs/mirror.md` is the operator's page.
//!
//! # Session (one connection)
//!
//! 1. Connect ([`crate::wire`]), refuse a primary with our own server id.
//! 2. `SET @master_binlog_checksum = <the primary's @@binlog_checksum>` so
//!    events arrive exactly as stored (with the checksum they have in the
//!    file), `@master_heartbeat_period`, and `@mariadb_slave_capability = 4`
//!    so GTID, Gtid_list and Binlog_checkpoint events arrive as they are in
//!    the file instead of being rewritten or left out.
//! 3. `COM_REGISTER_SLAVE`, then `COM_BINLOG_DUMP` from the mirror's end
//!    (always by file and position) with `BINLOG_SEND_ANNOTATE_ROWS_EVENT`.
//! 4. Each event is checked and written at the offset the primary has it
//!    (`dir`): its `log_pos` must be the mirror file's length plus its
//!    size, its CRC32 must match; anything else is an error, never a silent
//!    gap.
//!
//! # What the primary sends that is not written
//!
//! (From `mysql_binlog_send()` in MariaDB's `sql/sql_repl.cc`.)
//!
//! * A fake Rotate (`LOG_EVENT_ARTIFICIAL_F`, `log_pos` 0) before each file:
//!   it names the file and the position the dump continues at. A new file
//!   must start at 4 and sort after the current one.
//! * The file's FDE, with `LOG_EVENT_BINLOG_IN_USE_F` cleared. At offset 4 it
//!   is written (with the flag set again, as in the primary's active file);
//!   when the dump starts mid-file the primary zeroes its `log_pos` (and its
//!   `created` field), and it is skipped.
//! * Heartbeats (type 27) and any other artificial event.
//! * Never sent: a Start_encryption event (an encrypted binlog cannot be
//!   mirrored; the position check reports the gap).
//!
//! # Start
//!
//! A mirror that holds files resumes after its last complete event
//! (`--from`/`--from-gtid` must then be left out). An empty mirror starts
//! at the beginning of a whole file, so that it holds the primary's bytes from
//! offset 0: `--from FILE:POS` copies FILE from its start (POS only has to
//! lie in it), `--from-gtid GTID` copies the file in which the primary would
//! start sending to a replica at that GTID (found with a GTID dump whose first
//! fake Rotate names it), and no option starts at the primary's oldest file
//! (a dump with an empty file name, which needs no privilege beyond
//! `REPLICATION SLAVE`).
//!
//! # Faults
//!
//! Lost connections, timeouts and a restarting primary are retried with a
//! new session after a backoff (0.1 s doubling to `max_backoff`). A wrong
//! password, a missing `REPLICATION SLAVE` privilege, a purged or unknown
//! binlog (error 1236), a server id clash (error 4052) and any mismatch
//! between the stream and the mirror stop the mirror with an error that says
//! what to do.
//!
//! Whatever the primary sends, nothing panics: every length is checked
//! before it is indexed, and a malformed event is a [`MirrorError::Stream`]
//! or [`MirrorError::Checksum`] naming the mirror file and offset where it
//! would have gone (nothing of it is written). A Rotate must name a file
//! `BASENAME.NUMBER` that follows the current one. `fuzz/` holds a target
//! (`mirror_packets`) that feeds raw dump packets through the same code
//! (`fuzzing::feed`).

mod dir;
mod error;
pub mod metrics;
pub mod serve;

pub use metrics::MirrorMetrics;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use dir::Resume;
pub use error::{MirrorError, ER_SLAVE_SAME_ID};

use crate::binlog::checksum;
use crate::binlog::constants::{
    EventType, CHECKSUM_LEN, HEADER_LEN, LOG_EVENT_ARTIFICIAL_F, MAGIC,
};
use crate::binlog::{EventHeader, FormatDescription};
use crate::position::BinlogPos;
use crate::wire::{
    command, Conn, ConnectOptions, WireError, ER_ACCESS_DENIED_ERROR,
    ER_MASTER_FATAL_ERROR_READING_BINLOG, ER_SPECIFIC_ACCESS_DENIED_ERROR,
};
use dir::MirrorDir;

/// `COM_BINLOG_DUMP` flag: send Annotate_rows events.
const BINLOG_SEND_ANNOTATE_ROWS_EVENT: u16 = 2;
/// `MARIA_SLAVE_CAPABILITY_MINE`: GTID events as they are.
const MARIADB_SLAVE_CAPABILITY: u32 = 4;
/// `ER_DBACCESS_DENIED_ERROR`.
const ER_DBACCESS_DENIED_ERROR: u16 = 1044;

/// When to `fsync` mirror files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// After every event.
    Every,
    /// After every N events (and at each file switch).
    EveryN(u32),
    /// Never (the OS writes back; a machine crash can lose the tail, which
    /// is fetched again on resume).
    Never,
}

impl std::str::FromStr for SyncPolicy {
    type Err = String;

    /// `every`, `never`, or a number of events.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "every" => Ok(SyncPolicy::Every),
            "never" => Ok(SyncPolicy::Never),
            n => match n.parse::<u32>() {
                Ok(0) | Err(_) => Err(format!(
                    "`{s}`: expected `every`, `never` or a number of events (≥ 1)"
                )),
                Ok(1) => Ok(SyncPolicy::Every),
                Ok(n) => Ok(SyncPolicy::EveryN(n)),
            },
        }
    }
}

impl std::fmt::Display for SyncPolicy {
    /// As [`FromStr`](std::str::FromStr) reads it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncPolicy::Every => f.write_str("every"),
            SyncPolicy::EveryN(n) => write!(f, "{n}"),
            SyncPolicy::Never => f.write_str("never"),
        }
    }
}

/// Where an empty mirror starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorStart {
    /// The primary's oldest binlog file.
    Oldest,
    /// The file of this position, copied from its start.
    Pos(BinlogPos),
    /// The file where the primary starts sending to a replica at this GTID
    /// state (`domain-server-seq[,…]`).
    Gtid(String),
}

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    /// The primary.
    pub primary: ConnectOptions,
    /// The mirror directory.
    pub dir: std::path::PathBuf,
    /// Our server id; unique among the primary's replicas.
    pub server_id: u32,
    /// Where an empty mirror starts; `None`: resume, or the oldest file.
    pub start: Option<MirrorStart>,
    /// When to fsync.
    pub sync: SyncPolicy,
    /// Heartbeat period asked of the primary; a silence of four periods
    /// (plus 2 s) counts as a lost connection.
    pub heartbeat: Duration,
    /// Longest pause between reconnection attempts.
    pub max_backoff: Duration,
    /// How often the position is logged.
    pub progress_every: Duration,
    /// Set to stop at the next event or heartbeat.
    pub stop: Option<Arc<AtomicBool>>,
    /// A binlog server in this process ([`serve`]): the mirror publishes
    /// to it what may be served (fsynced bytes, or written ones under
    /// [`SyncPolicy::Never`]). When idle it fsyncs at each heartbeat, so
    /// that under [`SyncPolicy::EveryN`] the served end lags the written one
    /// by at most N events or one heartbeat period.
    pub publish: Option<Arc<serve::Published>>,
    /// The live figures, for a metrics endpoint ([`MirrorMetrics::render`]).
    pub metrics: Arc<MirrorMetrics>,
}

impl MirrorOptions {
    /// Default fsync policy: every 1000 events.
    pub const DEFAULT_SYNC: SyncPolicy = SyncPolicy::EveryN(1000);
    /// Default heartbeat period.
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
    /// Default longest pause between reconnection attempts.
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);
    /// Default period of the progress log line.
    pub const DEFAULT_PROGRESS_EVERY: Duration = Duration::from_secs(10);

    /// Options with the defaults (the `DEFAULT_*` constants; the command
    /// line reads them too): sync every 1000 events, heartbeat 1 s, backoff
    /// up to 5 s, progress every 10 s; no stop flag.
    pub fn new(
        primary: ConnectOptions,
        dir: impl Into<std::path::PathBuf>,
        server_id: u32,
    ) -> Self {
        MirrorOptions {
            primary,
            dir: dir.into(),
            server_id,
            start: None,
            sync: Self::DEFAULT_SYNC,
            heartbeat: Self::DEFAULT_HEARTBEAT,
            max_backoff: Self::DEFAULT_MAX_BACKOFF,
            progress_every: Self::DEFAULT_PROGRESS_EVERY,
            stop: None,
            publish: None,
            metrics: Arc::new(MirrorMetrics::new()),
        }
    }

    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

/// Mirrors until stopped or a non-transient error; see the module doc.
pub fn run(o: &MirrorOptions) -> Result<(), MirrorError> {
    if o.server_id == 0 {
        return Err(MirrorError::Usage(
            "--server-id must be > 0 (the primary does not stream to server id 0)".into(),
        ));
    }
    let (mut dir, resume) = MirrorDir::recover(&o.dir, o.sync)?;
    if let Some(p) = &o.publish {
        dir.set_published(p.clone())?;
    }
    match (&resume, &o.start) {
        (Resume::Empty, _) | (_, None) => {}
        (r, Some(s)) => {
            return Err(MirrorError::Usage(format!(
                "{} already holds a mirror ({r:?}); it resumes by itself: leave out the start \
                 option ({s:?}), or use an empty directory",
                o.dir.display()
            )))
        }
    }
    let mut pending = match resume {
        Resume::Empty => None,
        Resume::At(p) => {
            tracing::info!(at = %p, "resuming the mirror");
            None
        }
        Resume::Create(name) => Some(name),
    };
    let mut backoff = Duration::from_millis(100);
    let mut progress = Progress::new(o.progress_every);
    progress.metrics = Some(o.metrics.clone());
    loop {
        if o.stopped() {
            dir.flush()?;
            return Ok(());
        }
        let before = dir.position();
        let result = session(o, &mut dir, &mut pending, &mut progress);
        match result {
            Ok(()) => {
                dir.flush()?;
                return Ok(());
            }
            Err(e) if e.is_transient() => {
                if dir.position() != before {
                    backoff = Duration::from_millis(100);
                }
                tracing::warn!(error = %e, retry_in = ?backoff, at = ?dir.position().map(|p| p.to_string()), "connection to the primary lost; reconnecting");
                o.metrics.reconnected();
                sleep_unless_stopped(o, backoff);
                backoff = (backoff * 2).min(o.max_backoff);
            }
            Err(e) => {
                dir.flush()?;
                return Err(e);
            }
        }
    }
}

fn sleep_unless_stopped(o: &MirrorOptions, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !o.stopped() {
        std::thread::sleep(Duration::from_millis(20).min(d));
    }
}

struct Progress {
    every: Duration,
    last: Instant,
    events: u64,
    bytes: u64,
    metrics: Option<Arc<MirrorMetrics>>,
}

impl Progress {
    fn new(every: Duration) -> Self {
        Progress {
            every,
            last: Instant::now(),
            events: 0,
            bytes: 0,
            metrics: None,
        }
    }

    fn tick(&mut self, ev: &[u8], dir: &MirrorDir) {
        self.events += 1;
        self.bytes += ev.len() as u64;
        if let (Some(m), Some((file, end))) = (&self.metrics, dir.end()) {
            m.event(ev, file, end);
        }
        if self.last.elapsed() >= self.every {
            let secs = self.last.elapsed().as_secs_f64();
            if let Some(at) = dir.position() {
                tracing::info!(
                    at = %at,
                    events_per_s = (self.events as f64 / secs).round(),
                    mib_per_s = format!("{:.2}", self.bytes as f64 / secs / 1048576.0),
                    "mirror progress"
                );
            }
            self.last = Instant::now();
            self.events = 0;
            self.bytes = 0;
        }
    }
}

fn wire(during: impl Into<String>) -> impl FnOnce(WireError) -> MirrorError {
    let during = during.into();
    move |source| match source {
        WireError::Server { code, message, .. }
            if code == ER_SPECIFIC_ACCESS_DENIED_ERROR
                || code == ER_ACCESS_DENIED_ERROR
                || code == ER_DBACCESS_DENIED_ERROR =>
        {
            MirrorError::Privilege { code, message }
        }
        source => MirrorError::Wire { during, source },
    }
}

/// Connects, checks the primary and prepares the session for a dump.
fn connect(o: &MirrorOptions) -> Result<(Conn, bool), MirrorError> {
    let mut primary = o.primary.clone();
    primary.read_timeout = Some(o.heartbeat * 4 + Duration::from_secs(2));
    let mut conn = Conn::connect(&primary).map_err(wire("connecting"))?;
    let row = conn
        .query_rows("SELECT @@server_id, @@global.binlog_checksum, @@log_bin")
        .map_err(wire("reading its settings"))?;
    let field = |i: usize| {
        row.first()
            .and_then(|r| r.get(i).cloned().flatten())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    };
    let (server_id, checksum, log_bin) = (field(0), field(1), field(2));
    if log_bin != "1" {
        return Err(MirrorError::Usage(format!(
            "the primary {} has no binary log (log_bin is off)",
            conn.addr()
        )));
    }
    if server_id == o.server_id.to_string() {
        return Err(MirrorError::Usage(format!(
            "the primary {} has server id {server_id}, the same as --server-id; pick another",
            conn.addr()
        )));
    }
    let crc32 = checksum.eq_ignore_ascii_case("CRC32");
    let set = format!(
        "SET @master_binlog_checksum = '{}', @master_heartbeat_period = {}, \
         @mariadb_slave_capability = {MARIADB_SLAVE_CAPABILITY}",
        if crc32 { "CRC32" } else { "NONE" },
        o.heartbeat.as_nanos().max(1_000_000),
    );
    conn.execute(set.as_bytes())
        .map_err(wire("setting up the dump"))?;
    Ok((conn, crc32))
}

fn register(o: &MirrorOptions, conn: &mut Conn) -> Result<(), MirrorError> {
    let host = b"parapply-mirror";
    let mut p = Vec::with_capacity(32);
    p.extend_from_slice(&o.server_id.to_le_bytes());
    p.push(host.len() as u8);
    p.extend_from_slice(host);
    p.push(0); // user
    p.push(0); // password
    p.extend_from_slice(&0u16.to_le_bytes()); // port
    p.extend_from_slice(&0u32.to_le_bytes()); // replication rank
    p.extend_from_slice(&0u32.to_le_bytes()); // master id
    conn.simple_command(command::REGISTER_SLAVE, &p)
        .map_err(wire("registering as a replica (COM_REGISTER_SLAVE)"))
}

fn dump(o: &MirrorOptions, conn: &mut Conn, file: &str, pos: u64) -> Result<(), MirrorError> {
    let pos32 = u32::try_from(pos).map_err(|_| MirrorError::Stream {
        at: BinlogPos::new(file, pos),
        what: "position beyond 4 GiB: COM_BINLOG_DUMP cannot ask for it".into(),
    })?;
    let mut p = Vec::with_capacity(11 + file.len());
    p.extend_from_slice(&pos32.to_le_bytes());
    p.extend_from_slice(&BINLOG_SEND_ANNOTATE_ROWS_EVENT.to_le_bytes());
    p.extend_from_slice(&o.server_id.to_le_bytes());
    p.extend_from_slice(file.as_bytes());
    conn.write_command(command::BINLOG_DUMP, &p)
        .map_err(wire("requesting the binlog dump"))
}

/// A packet of a dump, its framing removed.
#[derive(Debug)]
enum Packet<'b> {
    /// An event: the bytes after the OK marker.
    Event(&'b [u8]),
    /// EOF: the primary ended the dump.
    End,
    /// ERR: the primary's error.
    Error(WireError),
    /// Anything else: what it starts with.
    Unexpected(String),
}

fn classify(p: &[u8]) -> Packet<'_> {
    match p.split_first() {
        Some((0x00, ev)) => Packet::Event(ev),
        Some((0xfe, _)) if p.len() < 9 => Packet::End,
        Some((0xff, _)) => Packet::Error(Conn::server_error(p, 0)),
        _ => Packet::Unexpected(format!(
            "unexpected packet starting {:02x?}",
            &p[..p.len().min(8)]
        )),
    }
}

/// The next packet of a dump: an event, or the end of the stream.
fn next_event<'b>(
    o: &MirrorOptions,
    conn: &mut Conn,
    buf: &'b mut Vec<u8>,
    from: &str,
) -> Result<Option<&'b [u8]>, MirrorError> {
    conn.read_packet_into(buf).map_err(wire(format!(
        "reading the binlog stream (mirror at {from})"
    )))?;
    match classify(buf) {
        Packet::Event(ev) => Ok(Some(ev)),
        Packet::End => Ok(None),
        Packet::Error(e) => Err(classify_dump_error(o, e, from)),
        Packet::Unexpected(what) => Err(MirrorError::Wire {
            during: format!("reading the binlog stream (mirror at {from})"),
            source: WireError::Protocol {
                addr: conn.addr().to_owned(),
                what,
            },
        }),
    }
}

fn classify_dump_error(o: &MirrorOptions, e: WireError, from: &str) -> MirrorError {
    match e {
        WireError::Server { code, message, .. } if code == ER_SLAVE_SAME_ID => {
            MirrorError::ServerIdClash {
                server_id: o.server_id,
                message,
            }
        }
        WireError::Server { code, message, .. } if code == ER_MASTER_FATAL_ERROR_READING_BINLOG => {
            MirrorError::PrimaryRefused {
                from: from.to_owned(),
                code,
                message,
            }
        }
        e => wire(format!("streaming from {from}"))(e),
    }
}

/// Asks the primary where it would start sending to a replica at `gtid`:
/// the file named by the first fake Rotate of a GTID dump.
fn file_for_gtid(o: &MirrorOptions, gtid: &str) -> Result<String, MirrorError> {
    if !gtid
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'-' || b == b',' || b == b' ')
    {
        return Err(MirrorError::Usage(format!(
            "--from-gtid `{gtid}`: expected domain-server-seq[,domain-server-seq…]"
        )));
    }
    let (mut conn, crc32) = connect(o)?;
    let set = format!(
        "SET @slave_connect_state = '{gtid}', @slave_gtid_strict_mode = 0, \
         @slave_gtid_ignore_duplicates = 0"
    );
    conn.execute(set.as_bytes())
        .map_err(wire("setting the GTID start state"))?;
    register(o, &mut conn)?;
    dump(o, &mut conn, "", 4)?;
    let mut buf = Vec::new();
    let from = format!("GTID {gtid}");
    let ev = next_event(o, &mut conn, &mut buf, &from)?.ok_or_else(|| {
        MirrorError::Usage(format!(
            "the primary ended the GTID dump for {gtid} at once"
        ))
    })?;
    let h = header(ev, &BinlogPos::new("", 0))?;
    if h.event_type != EventType::ROTATE {
        return Err(MirrorError::Usage(format!(
            "GTID dump for {gtid}: expected a fake Rotate first, got {}",
            h.event_type
        )));
    }
    let (name, _) = rotate_target(ev, crc32).map_err(|what| MirrorError::Stream {
        at: BinlogPos::new("", 0),
        what,
    })?;
    Ok(name)
}

fn header(ev: &[u8], at: &BinlogPos) -> Result<EventHeader, MirrorError> {
    let bad = |what: String| MirrorError::Stream {
        at: at.clone(),
        what,
    };
    if ev.len() < HEADER_LEN {
        return Err(bad(format!(
            "event of {} bytes, shorter than a header",
            ev.len()
        )));
    }
    let h = EventHeader::decode(ev).map_err(|e| bad(e.to_string()))?;
    if h.event_size as usize != ev.len() {
        return Err(bad(format!(
            "{} event announces {} bytes, the packet holds {}",
            h.event_type,
            h.event_size,
            ev.len()
        )));
    }
    Ok(h)
}

/// File name and position of a Rotate event.
fn rotate_target(ev: &[u8], crc32: bool) -> Result<(String, u64), String> {
    let short = || format!("Rotate event of {} bytes is too short", ev.len());
    let end = ev
        .len()
        .checked_sub(if crc32 { CHECKSUM_LEN } else { 0 })
        .ok_or_else(short)?;
    let body = ev.get(HEADER_LEN..end).ok_or_else(short)?;
    let (pos, name) = body.split_first_chunk::<8>().ok_or_else(short)?;
    let name = String::from_utf8(name.to_vec())
        .map_err(|_| "Rotate event names a file that is not UTF-8".to_owned())?;
    if file_number(&name).is_none() {
        return Err(format!(
            "Rotate event names an unusable file `{}`: expected BASENAME.NUMBER",
            name.escape_debug()
        ));
    }
    Ok((name, u64::from_le_bytes(*pos)))
}

/// The sequence of a binlog file name `BASENAME.NUMBER` (what MariaDB
/// names its binlog files): `None` for anything else, among them every
/// name that is not a plain file name in the mirror directory (`..`, a
/// path, the index).
fn file_number(name: &str) -> Option<(&str, u64)> {
    let (base, number) = name.rsplit_once('.')?;
    if base.is_empty() || base.starts_with('.') || base.contains(['/', '\0']) {
        return None;
    }
    if base.chars().any(char::is_control) {
        return None;
    }
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((base, number.parse().ok()?))
}

/// Whether the primary's next file `next` comes after `cur` (same basename,
/// higher number: `.999999` is followed by `.1000000`).
fn follows(next: &str, cur: &str) -> bool {
    match (file_number(next), file_number(cur)) {
        (Some((b1, n1)), Some((b0, n0))) => b1 == b0 && n1 > n0,
        _ => false,
    }
}

/// Verifies `ev`'s CRC32 as an event of type `t` to be placed at `at`.
fn verify_crc(ev: &[u8], t: EventType, at: &BinlogPos) -> Result<(), MirrorError> {
    checksum::verify(ev).map_err(|cause| MirrorError::Checksum {
        at: at.clone(),
        event_type: t,
        cause,
    })
}

/// What one dump session knows between two events of the stream (see the
/// module doc for what the primary sends and what is written).
#[derive(Debug)]
struct Stream {
    /// The primary sends checksums (its `binlog_checksum` is CRC32).
    crc32: bool,
    /// Set by a fake Rotate to a new file: its FDE comes next.
    new_file: Option<String>,
    /// A fake Rotate for the current file: its (log_pos 0) FDE comes next.
    resume_fde: bool,
    /// Whether the stream has opened a file yet: the first event must be a
    /// fake Rotate.
    rotated: bool,
}

impl Stream {
    /// A session that asked for `pending` from its start (`Some`), or
    /// for the mirror's end (`None`).
    fn new(crc32: bool, pending: &Option<String>) -> Self {
        Stream {
            crc32,
            new_file: pending.clone(),
            resume_fde: false,
            rotated: false,
        }
    }

    /// Where the next event goes: the mirror's end, or the start of the
    /// file being asked for.
    fn at(&self, dir: &MirrorDir) -> BinlogPos {
        dir.position().unwrap_or_else(|| {
            BinlogPos::new(
                self.new_file.clone().unwrap_or_default(),
                MAGIC.len() as u64,
            )
        })
    }

    /// Checks one event of the stream against the mirror, then writes it or
    /// leaves it out (see the module doc). `pending` is the file asked for
    /// from its start, cleared once its FDE is written. Every length is
    /// checked before it is used: a malformed event is an error naming the
    /// mirror position, never a panic.
    fn event(
        &mut self,
        ev: &[u8],
        dir: &mut MirrorDir,
        pending: &mut Option<String>,
        progress: &mut Progress,
    ) -> Result<(), MirrorError> {
        let at = self.at(dir);
        let h = header(ev, &at)?;
        let t = h.event_type;
        let bad = |what: String| MirrorError::Stream {
            at: at.clone(),
            what,
        };
        if t == EventType::ROTATE && (h.flags & LOG_EVENT_ARTIFICIAL_F != 0 || h.log_pos == 0) {
            // A fake Rotate carries a checksum per the session's
            // @master_binlog_checksum until the first Format_description of
            // the stream, and per the current file's after it (as a primary
            // sends it; the two differ when the setting changed, or when the
            // source is a binlog server that did not know it yet).
            let crc = match (self.rotated, dir.cur.as_ref()) {
                (true, Some(cur)) => cur.crc32,
                _ => self.crc32,
            };
            if crc {
                verify_crc(ev, t, &at)?;
            }
            let (name, rpos) = rotate_target(ev, crc).map_err(bad)?;
            self.rotated = true;
            match dir.cur.as_ref() {
                Some(cur) if cur.name == name => {
                    if rpos != cur.len {
                        return Err(bad(format!(
                            "the primary continues {name} at {rpos}, the mirror file ends at {}",
                            cur.len
                        )));
                    }
                    self.resume_fde = true;
                    self.new_file = None;
                }
                cur => {
                    if let Some(cur) = cur {
                        if !follows(&name, &cur.name) {
                            return Err(bad(format!(
                                "the primary switches from {} to {name}, which does not follow \
                                 it: that would reorder the mirror",
                                cur.name
                            )));
                        }
                        if !cur.finished {
                            tracing::warn!(file = %cur.name, len = cur.len, next = %name,
                                "the primary's file ended without Rotate or Stop (the primary crashed); \
                                 continuing in the next file");
                        }
                    }
                    if rpos != MAGIC.len() as u64 {
                        return Err(bad(format!(
                            "the primary starts the new file {name} at {rpos}, not at its beginning"
                        )));
                    }
                    if let Some(p) = &*pending {
                        if !p.is_empty() && *p != name {
                            return Err(bad(format!(
                                "asked for {p} from its start, the primary sends {name}"
                            )));
                        }
                    }
                    self.new_file = Some(name);
                    self.resume_fde = false;
                }
            }
            return Ok(());
        }
        if !self.rotated {
            return Err(bad(format!(
                "the primary's stream starts with a {t} event, not a fake Rotate"
            )));
        }
        if t == EventType::HEARTBEAT || h.flags & LOG_EVENT_ARTIFICIAL_F != 0 {
            tracing::trace!(event = %t, "not written (heartbeat or artificial)");
            if t == EventType::HEARTBEAT && dir.is_published() {
                // The primary is idle: make what was written servable.
                dir.flush()?;
            }
            return Ok(());
        }
        if t == EventType::FORMAT_DESCRIPTION {
            if let Some(name) = self.new_file.take() {
                let at = BinlogPos::new(name.clone(), MAGIC.len() as u64);
                let expect = MAGIC.len() as u64 + ev.len() as u64;
                if u64::from(h.log_pos) != expect {
                    return Err(MirrorError::Stream {
                        at,
                        what: format!("FDE with log_pos {}, expected {expect}", h.log_pos),
                    });
                }
                let fde = FormatDescription::decode(&ev[HEADER_LEN..]).map_err(|e| {
                    MirrorError::Stream {
                        at: at.clone(),
                        what: format!("malformed FDE: {e}"),
                    }
                })?;
                let file_crc = fde.has_crc32();
                if file_crc {
                    verify_crc(ev, t, &at)?;
                }
                dir.create_file(&name, ev, file_crc)?;
                *pending = None;
                tracing::info!(file = %name, "new mirror file");
                progress.tick(ev, dir);
                return Ok(());
            }
            if self.resume_fde && h.log_pos == 0 {
                self.resume_fde = false;
                return Ok(());
            }
        }
        self.resume_fde = false;
        let Some(cur) = dir.cur.as_ref() else {
            return Err(bad(format!("a {t} event before any file was started")));
        };
        if self.new_file.is_some() {
            return Err(bad(format!(
                "a {t} event where the FDE of a new file was due"
            )));
        }
        if cur.finished {
            return Err(bad(format!(
                "a {t} event after the Rotate or Stop that ended {}",
                cur.name
            )));
        }
        let expect = cur.len + ev.len() as u64;
        if u64::from(h.log_pos) != expect {
            return Err(bad(format!(
                "{t} event of {} bytes with log_pos {}: it does not continue the mirror \
                 (expected log_pos {expect}); a gap or an overlap",
                ev.len(),
                h.log_pos
            )));
        }
        if cur.crc32 {
            verify_crc(ev, t, &at)?;
        }
        dir.append(ev, t)?;
        progress.tick(ev, dir);
        Ok(())
    }
}

/// The file an empty mirror asks for first: `""` asks the primary for its
/// oldest file.
fn first_file(o: &MirrorOptions) -> Result<String, MirrorError> {
    Ok(match &o.start {
        None | Some(MirrorStart::Oldest) => String::new(),
        Some(MirrorStart::Pos(p)) => {
            if p.pos != MAGIC.len() as u64 {
                tracing::info!(from = %p, "an empty mirror starts with a whole file: copying {} from offset 0", p.file);
            }
            p.file.clone()
        }
        Some(MirrorStart::Gtid(g)) => {
            let f = file_for_gtid(o, g)?;
            tracing::info!(gtid = %g, file = %f, "the primary starts GTID {g} in {f}: copying it from offset 0");
            f
        }
    })
}

/// One connection's life: connect, dump from the mirror's end, write events
/// until the stream ends or fails.
fn session(
    o: &MirrorOptions,
    dir: &mut MirrorDir,
    pending: &mut Option<String>,
    progress: &mut Progress,
) -> Result<(), MirrorError> {
    if dir.position().is_none() && pending.is_none() {
        *pending = Some(first_file(o)?);
    }
    let (file, pos) = match (&*pending, dir.position()) {
        (Some(name), _) => (name.clone(), MAGIC.len() as u64),
        (None, Some(p)) => (p.file, p.pos),
        (None, None) => return Err(MirrorError::Usage("internal: no start position".into())),
    };
    let from = format!("{file}:{pos}");
    let (mut conn, crc32) = connect(o)?;
    register(o, &mut conn)?;
    dump(o, &mut conn, &file, pos)?;
    tracing::info!(primary = %conn.addr(), from = %from, server_id = o.server_id, "dumping the primary's binlog");

    let mut buf = Vec::with_capacity(1 << 16);
    let mut stream = Stream::new(crc32, pending);
    loop {
        if o.stopped() {
            return Ok(());
        }
        let at = stream.at(dir);
        let Some(ev) = next_event(o, &mut conn, &mut buf, &at.to_string())? else {
            // The primary ended the dump (it is shutting down): reconnect.
            return Err(MirrorError::Wire {
                during: format!("streaming (mirror at {at})"),
                source: WireError::Protocol {
                    addr: conn.addr().to_owned(),
                    what: "the primary ended the binlog dump".into(),
                },
            });
        };
        stream.event(ev, dir, pending, progress)?;
    }
}

/// The mirror's handling of dump packets without a network, for the fuzz
/// target (`fuzz/fuzz_targets/mirror_packets.rs`). Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// Feeds `sessions` of dump packets (as the primary sends them after
    /// `COM_BINLOG_DUMP`, the 4-byte framing removed) to the mirror in
    /// `dir`, each session as a new connection would after a restart:
    /// the directory is recovered first, and an empty mirror asks for the
    /// oldest file. `crc32` is the primary's `binlog_checksum`. Returns the
    /// outcome of each session (the error that ended it, if any); an error
    /// from recovery ends the feeding.
    pub fn feed(
        dir: &std::path::Path,
        crc32: bool,
        sessions: &[Vec<&[u8]>],
    ) -> Result<Vec<Result<(), MirrorError>>, MirrorError> {
        let o = MirrorOptions {
            sync: SyncPolicy::Never,
            ..MirrorOptions::new(ConnectOptions::new("127.0.0.1", 0, "fuzz"), dir, 1)
        };
        let mut outcomes = Vec::new();
        for packets in sessions {
            let (mut md, resume) = MirrorDir::recover(dir, o.sync)?;
            let mut pending = match resume {
                Resume::Empty => Some(String::new()),
                Resume::At(_) => None,
                Resume::Create(name) => Some(name),
            };
            let mut progress = Progress::new(Duration::from_secs(3600));
            let mut stream = Stream::new(crc32, &pending);
            let mut outcome = Ok(());
            for p in packets {
                let at = stream.at(&md);
                let step = match classify(p) {
                    Packet::Event(ev) => stream.event(ev, &mut md, &mut pending, &mut progress),
                    Packet::End => break,
                    Packet::Error(e) => Err(classify_dump_error(&o, e, &at.to_string())),
                    Packet::Unexpected(what) => Err(MirrorError::Stream { at, what }),
                };
                if let Err(e) = step {
                    outcome = Err(e);
                    break;
                }
            }
            md.flush()?;
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::checksum::ChecksumError;

    #[test]
    fn sync_policies() {
        assert_eq!("every".parse::<SyncPolicy>().unwrap(), SyncPolicy::Every);
        assert_eq!("never".parse::<SyncPolicy>().unwrap(), SyncPolicy::Never);
        assert_eq!(
            "100".parse::<SyncPolicy>().unwrap(),
            SyncPolicy::EveryN(100)
        );
        assert!("0".parse::<SyncPolicy>().is_err());
        assert!("sometimes".parse::<SyncPolicy>().is_err());
    }

    #[test]
    fn parses_a_fake_rotate() {
        let mut ev = vec![0u8; HEADER_LEN];
        ev.extend_from_slice(&4u64.to_le_bytes());
        ev.extend_from_slice(b"mariadb-bin.000002");
        ev.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(
            rotate_target(&ev, true).unwrap(),
            ("mariadb-bin.000002".to_owned(), 4)
        );
        assert!(rotate_target(&ev[..HEADER_LEN + 4], false).is_err());
        // Shorter than a checksum: an error, not an underflow.
        for len in 0..HEADER_LEN + 9 {
            assert!(rotate_target(&ev[..len], true).is_err(), "{len}");
        }
    }

    #[test]
    fn rotate_names_must_be_binlog_file_names() {
        let named = |name: &str| {
            let mut ev = vec![0u8; HEADER_LEN];
            ev.extend_from_slice(&4u64.to_le_bytes());
            ev.extend_from_slice(name.as_bytes());
            rotate_target(&ev, false)
        };
        assert!(named("mariadb-bin.000002").is_ok());
        assert!(named("db1.example-bin.1000000").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "../x.000001",
            "a/b.000001",
            ".hidden.000001",
            "mariadb-bin.index",
            "mariadb-bin.",
            "mariadb-bin",
            "mari\0db.000001",
            "line\nbreak.000001",
        ] {
            assert!(named(bad).is_err(), "{bad:?} accepted");
        }
        assert!(follows("mariadb-bin.000002", "mariadb-bin.000001"));
        assert!(follows("mariadb-bin.1000000", "mariadb-bin.999999"));
        assert!(!follows("mariadb-bin.000001", "mariadb-bin.000001"));
        assert!(!follows("mariadb-bin.000001", "mariadb-bin.000002"));
        assert!(!follows("other-bin.000009", "mariadb-bin.000001"));
    }

    use crate::binlog::synth::{self, EventMeta};

    fn meta(flags: u16) -> EventMeta {
        EventMeta {
            timestamp: 1,
            server_id: 1,
            flags,
        }
    }

    /// A dump packet: the OK marker, then the event.
    fn packet(event: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8];
        p.extend_from_slice(event);
        p
    }

    /// The fake Rotate the primary sends before a file.
    fn fake_rotate(name: &str, pos: u64) -> Vec<u8> {
        let mut body = pos.to_le_bytes().to_vec();
        body.extend_from_slice(name.as_bytes());
        let mut ev = Vec::new();
        synth::push_event(
            &mut ev,
            0,
            meta(LOG_EVENT_ARTIFICIAL_F),
            EventType::ROTATE,
            &body,
        );
        packet(&ev)
    }

    /// The events of a binlog file, as whole events.
    fn events_of(file: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut pos = MAGIC.len();
        while pos < file.len() {
            let size = u32::from_le_bytes(file[pos + 9..pos + 13].try_into().unwrap()) as usize;
            out.push(&file[pos..pos + size]);
            pos += size;
        }
        out
    }

    fn feed(dir: &std::path::Path, sessions: &[Vec<Vec<u8>>]) -> Vec<Result<(), MirrorError>> {
        let sessions: Vec<Vec<&[u8]>> = sessions
            .iter()
            .map(|s| s.iter().map(Vec::as_slice).collect())
            .collect();
        fuzzing::feed(dir, true, &sessions).unwrap()
    }

    /// The primary's stream of a real MariaDB 10.11 binlog file, fed
    /// without a network, gives the same bytes; a second session resumes
    /// after a fake Rotate for the same file and a `log_pos` 0 FDE.
    #[test]
    fn a_real_file_streamed_in_two_sessions_is_mirrored_byte_for_byte() {
        let file = std::fs::read("../shared/binlogs/mariadb-10.11/mariadb-bin.000001").unwrap();
        let events = events_of(&file);
        let name = "mariadb-bin.000001";
        let half = events.len() / 2;
        let mut first = vec![fake_rotate(name, 4)];
        first.extend(events[..half].iter().map(|e| packet(e)));
        let resume_at: usize = MAGIC.len() + events[..half].iter().map(|e| e.len()).sum::<usize>();
        let mut fde = events[0].to_vec();
        fde[13..17].copy_from_slice(&0u32.to_le_bytes()); // log_pos 0 when resuming
        let mut second = vec![fake_rotate(name, resume_at as u64), packet(&fde)];
        second.extend(events[half..].iter().map(|e| packet(e)));
        let tmp = tempfile::tempdir().unwrap();
        let outcomes = feed(tmp.path(), &[first, second]);
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        assert_eq!(std::fs::read(tmp.path().join(name)).unwrap(), file);
        let index = std::fs::read_to_string(tmp.path().join("mariadb-bin.index")).unwrap();
        assert_eq!(index, format!("./{name}\n"));
    }

    /// Issue 9: an FDE of 19 bytes in the middle of a file used to index
    /// past its end in the checksum check. Every cut of an event is an
    /// error naming the mirror position, and nothing of it is written.
    #[test]
    fn a_short_or_cut_event_is_an_error_with_its_position_not_a_panic() {
        let file = std::fs::read("../shared/binlogs/mariadb-10.11/mariadb-bin.000001").unwrap();
        let events = events_of(&file);
        let name = "mariadb-bin.000001";
        let head = || vec![fake_rotate(name, 4), packet(events[0])];
        let end = (MAGIC.len() + events[0].len()) as u64;
        // A bare FDE header announcing its 19 bytes, continuing the file.
        let mut short = vec![0u8; HEADER_LEN];
        short[4] = EventType::FORMAT_DESCRIPTION.0;
        short[9..13].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        short[13..17].copy_from_slice(&(end as u32 + HEADER_LEN as u32).to_le_bytes());
        let tmp = tempfile::tempdir().unwrap();
        let mut s = head();
        s.push(packet(&short));
        let outcome = feed(tmp.path(), &[s]).remove(0);
        match &outcome {
            Err(MirrorError::Checksum {
                at,
                event_type,
                cause: ChecksumError::TooShort { len: 19 },
            }) => {
                assert_eq!(*at, BinlogPos::new(name, end));
                assert_eq!(*event_type, EventType::FORMAT_DESCRIPTION);
            }
            other => panic!("expected a too-short checksum error, got {other:?}"),
        }
        assert_eq!(
            outcome.unwrap_err().to_string(),
            format!("{name}:{end}: Format_desc event from the primary: event of 19 bytes cannot hold a 19-byte header and a checksum")
        );
        assert_eq!(
            std::fs::metadata(tmp.path().join(name)).unwrap().len(),
            end,
            "nothing of the event is written"
        );
        // Every cut of every event of the file, and every cut of the
        // fake Rotate and of the FDE that start it.
        for (i, ev) in events.iter().enumerate().skip(1) {
            for len in 0..ev.len() {
                let tmp = tempfile::tempdir().unwrap();
                let mut s = head();
                s.extend(events[1..i].iter().map(|e| packet(e)));
                s.push(packet(&ev[..len]));
                let outcome = feed(tmp.path(), &[s]).remove(0);
                let e = outcome.expect_err("a cut event is an error");
                assert!(
                    matches!(e, MirrorError::Stream { .. } | MirrorError::Checksum { .. }),
                    "{e}"
                );
            }
        }
        for len in 0..events[0].len() {
            let tmp = tempfile::tempdir().unwrap();
            let s = vec![fake_rotate(name, 4), packet(&events[0][..len])];
            assert!(feed(tmp.path(), &[s]).remove(0).is_err(), "{len}");
        }
        let rotate = fake_rotate(name, 4);
        for len in 0..rotate.len() {
            let tmp = tempfile::tempdir().unwrap();
            assert!(
                feed(tmp.path(), &[vec![rotate[..len].to_vec()]])
                    .remove(0)
                    .is_err(),
                "{len}"
            );
        }
    }

    #[test]
    fn a_flipped_bit_is_a_checksum_error_and_is_not_written() {
        let file = std::fs::read("../shared/binlogs/mariadb-10.11/mariadb-bin.000001").unwrap();
        let events = events_of(&file);
        let name = "mariadb-bin.000001";
        let mut bad = events[2].to_vec();
        bad[HEADER_LEN + 1] ^= 4;
        let s = vec![
            fake_rotate(name, 4),
            packet(events[0]),
            packet(events[1]),
            packet(&bad),
        ];
        let tmp = tempfile::tempdir().unwrap();
        let outcome = feed(tmp.path(), &[s]).remove(0);
        let at = (MAGIC.len() + events[0].len() + events[1].len()) as u64;
        match outcome {
            Err(MirrorError::Checksum {
                at: a,
                cause: ChecksumError::Mismatch { .. },
                ..
            }) => assert_eq!(a, BinlogPos::new(name, at)),
            other => panic!("expected a checksum mismatch, got {other:?}"),
        }
        assert_eq!(std::fs::metadata(tmp.path().join(name)).unwrap().len(), at);
    }
}
