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

mod dir;
mod error;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use dir::Resume;
pub use error::{MirrorError, ER_SLAVE_SAME_ID};

use crate::binlog::constants::{
    EventType, CHECKSUM_LEN, HEADER_LEN, LOG_EVENT_ARTIFICIAL_F, LOG_EVENT_BINLOG_IN_USE_F, MAGIC,
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
}

impl Progress {
    fn new(every: Duration) -> Self {
        Progress {
            every,
            last: Instant::now(),
            events: 0,
            bytes: 0,
        }
    }

    fn tick(&mut self, bytes: usize, dir: &MirrorDir) {
        self.events += 1;
        self.bytes += bytes as u64;
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
    match buf.first().copied() {
        Some(0x00) => Ok(Some(&buf[1..])),
        Some(0xfe) if buf.len() < 9 => Ok(None),
        Some(0xff) => Err(classify_dump_error(o, Conn::server_error(buf, 0), from)),
        _ => Err(MirrorError::Wire {
            during: format!("reading the binlog stream (mirror at {from})"),
            source: WireError::Protocol {
                addr: conn.addr().to_owned(),
                what: format!(
                    "unexpected packet starting {:02x?}",
                    &buf[..buf.len().min(8)]
                ),
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
    let end = ev.len() - if crc32 { CHECKSUM_LEN } else { 0 };
    let body = ev
        .get(HEADER_LEN..end)
        .filter(|b| b.len() > 8)
        .ok_or_else(|| format!("Rotate event of {} bytes is too short", ev.len()))?;
    let mut p = [0u8; 8];
    p.copy_from_slice(&body[..8]);
    let name = String::from_utf8(body[8..].to_vec())
        .map_err(|_| "Rotate event names a file that is not UTF-8".to_owned())?;
    if name.is_empty() || name.contains('/') {
        return Err(format!("Rotate event names an unusable file `{name}`"));
    }
    Ok((name, u64::from_le_bytes(p)))
}

fn crc_ok(ev: &[u8], t: EventType) -> bool {
    let (data, tail) = ev.split_at(ev.len() - CHECKSUM_LEN);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if t == EventType::FORMAT_DESCRIPTION {
        let mut h = crc32fast::Hasher::new();
        h.update(&data[..17]);
        let flags = u16::from_le_bytes([data[17], data[18]]) & !LOG_EVENT_BINLOG_IN_USE_F;
        h.update(&flags.to_le_bytes());
        h.update(&data[19..]);
        h.finalize() == stored
    } else {
        crc32fast::hash(data) == stored
    }
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
        let first = match &o.start {
            // An empty file name asks the primary for its oldest file.
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
        };
        *pending = Some(first);
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
    // Set by a fake Rotate to a new file: its FDE comes next.
    let mut new_file: Option<String> = pending.clone();
    // A fake Rotate for the current file: its (log_pos 0) FDE comes next.
    let mut resume_fde = false;
    // Whether the stream has opened a file yet: the first event must be a fake Rotate.
    let mut rotated = false;
    loop {
        if o.stopped() {
            return Ok(());
        }
        let at = dir
            .position()
            .unwrap_or_else(|| BinlogPos::new(new_file.clone().unwrap_or_default(), 4));
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
        let h = header(ev, &at)?;
        let t = h.event_type;
        let bad = |what: String| MirrorError::Stream {
            at: at.clone(),
            what,
        };
        if t == EventType::ROTATE && (h.flags & LOG_EVENT_ARTIFICIAL_F != 0 || h.log_pos == 0) {
            if crc32 && !crc_ok(ev, t) {
                return Err(bad("checksum mismatch in the primary's fake Rotate".into()));
            }
            let (name, rpos) = rotate_target(ev, crc32).map_err(bad)?;
            rotated = true;
            match dir.cur.as_ref() {
                Some(cur) if cur.name == name => {
                    if rpos != cur.len {
                        return Err(bad(format!(
                            "the primary continues {name} at {rpos}, the mirror file ends at {}",
                            cur.len
                        )));
                    }
                    resume_fde = true;
                    new_file = None;
                }
                cur => {
                    if let Some(cur) = cur {
                        if name <= cur.name {
                            return Err(bad(format!(
                                "the primary switches back from {} to {name}: that would reorder the mirror",
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
                    new_file = Some(name);
                    resume_fde = false;
                }
            }
            continue;
        }
        if !rotated {
            return Err(bad(format!(
                "the primary's stream starts with a {t} event, not a fake Rotate"
            )));
        }
        if t == EventType::HEARTBEAT || h.flags & LOG_EVENT_ARTIFICIAL_F != 0 {
            tracing::trace!(event = %t, "not written (heartbeat or artificial)");
            continue;
        }
        if t == EventType::FORMAT_DESCRIPTION {
            if let Some(name) = new_file.take() {
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
                if fde.checksum_alg != crate::binlog::constants::CHECKSUM_ALG_UNDEF
                    && file_crc
                    && !crc_ok(ev, t)
                {
                    return Err(MirrorError::Stream {
                        at,
                        what: "checksum mismatch in the FDE".into(),
                    });
                }
                dir.create_file(&name, ev, file_crc)?;
                *pending = None;
                tracing::info!(file = %name, "new mirror file");
                progress.tick(ev.len(), dir);
                continue;
            }
            if resume_fde && h.log_pos == 0 {
                resume_fde = false;
                continue;
            }
        }
        resume_fde = false;
        let Some(cur) = dir.cur.as_ref() else {
            return Err(bad(format!("a {t} event before any file was started")));
        };
        if new_file.is_some() {
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
        if cur.crc32 && !crc_ok(ev, t) {
            return Err(bad(format!(
                "checksum mismatch in a {t} event from the primary"
            )));
        }
        dir.append(ev, t)?;
        progress.tick(ev.len(), dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
