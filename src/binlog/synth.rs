//! Synthetic MariaDB binlogs: valid files of any size, made in code.
//!
//! Benchmarks need hundreds of megabytes of binlog, fuzzers need a valid
//! Format_description event to start from, and tests need files whose
//! content they know exactly. This module writes binlog files the way a
//! MariaDB 10.11 primary with `binlog_format=ROW`, `binlog_checksum=CRC32`
//! and `binlog_annotate_row_events=ON` writes them, byte for byte in every
//! field that a reader looks at:
//!
//! ```text
//! file NAME.000001                      NAME.000002 …
//!   magic  fe 62 69 6e                    magic
//!   Format_description (CRC32)            Format_description
//!   Gtid_list  [state before the file]    Gtid_list  [0-1-N]
//!   Binlog_checkpoint NAME.000001         Binlog_checkpoint NAME.000002
//!   transaction × k                       transaction × …
//!   Rotate → NAME.000002   (at max size)
//! NAME.index: one `./NAME.00000n` line per file
//! ```
//!
//! Each transaction is one row-format INSERT into `db_XX.t` (`id INT NOT
//! NULL, v VARCHAR(255)`) of database `XX = seq_no mod databases`:
//!
//! ```text
//! Gtid 0-1-seq  transactional,allow_parallel
//! Annotate_rows "INSERT INTO db_XX.t VALUES (…)"     (optional)
//! Table_map     table_id → db_XX.t
//! Write_rows_v1 the rows (STMT_END)
//! Xid
//! ```
//!
//! Every header carries the event's end position in its file (`log_pos`)
//! and every event ends with its CRC32, so `mariadb-binlog` reads the files
//! without a warning and parapply's reader verifies them like real ones.
//!
//! Nothing here reads a real binlog: the Format_description event is built
//! from the format (see [`format_description_event`]); its post-header
//! lengths are the ones MariaDB 10.11 declares ([`post_header_lengths`]).
//!
//! # Using it
//!
//! ```no_run
//! use parapply::binlog::synth::{generate, SynthOptions, Until};
//! let dir = tempfile::tempdir().unwrap();
//! let opts = SynthOptions { until: Until::Transactions(1000), ..SynthOptions::default() };
//! let out = generate(dir.path(), &opts).unwrap();
//! assert_eq!(out.groups, 1000);
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::constants::{
    column_type, gtid_flags, rows_flags, EventType, CHECKSUM_ALG_CRC32, CHECKSUM_LEN, HEADER_LEN,
    LOG_EVENT_SUPPRESS_USE_F, MAGIC, TM_BIT_LEN_EXACT_F,
};
use super::events::FormatDescription;
use crate::position::MariaGtid;

/// The server version the synthetic Format_description event announces.
pub const SERVER_VERSION: &str = "10.11.19-MariaDB-log";

/// Length of the server-version field of a Format_description event.
const SERVER_VERSION_LEN: usize = 50;

/// Number of event types a MariaDB 10.11 Format_description event declares
/// a post-header length for (types 1 to 171).
pub const POST_HEADER_TYPES: usize = 171;

/// Largest value (in bytes) of the `v VARCHAR(255)` column: its length then
/// fits the one-byte prefix the server uses below 256.
pub const MAX_VALUE_LEN: usize = 255;

/// The post-header length of each event type, index `type - 1`, as MariaDB
/// 10.11 declares them in its Format_description event.
///
/// Types without a fixed part declare 0. The values follow the layouts:
/// Query 13 (thread id, exec time, db length, error code, status length),
/// Rotate 8 (position), Table_map and v1 Rows 8 (table id, flags), v2 Rows
/// 10 (plus extra-data length), GTID 19 (seq_no, domain, flags, reserved),
/// and the legacy LOAD family as the server still declares them.
pub fn post_header_lengths() -> [u8; POST_HEADER_TYPES] {
    let mut l = [0u8; POST_HEADER_TYPES];
    let mut set = |t: EventType, n: u8| l[usize::from(t.0) - 1] = n;
    set(EventType::START_V3, 56);
    set(EventType::QUERY, 13);
    set(EventType::ROTATE, 8);
    set(EventType::LOAD, 18);
    set(EventType::CREATE_FILE, 4);
    set(EventType::APPEND_BLOCK, 4);
    set(EventType::EXEC_LOAD, 4);
    set(EventType::DELETE_FILE, 4);
    set(EventType::NEW_LOAD, 18);
    // Format_description: version, server version, timestamp, header length,
    // and one byte per declared type.
    set(
        EventType::FORMAT_DESCRIPTION,
        u8::try_from(2 + SERVER_VERSION_LEN + 4 + 1 + POST_HEADER_TYPES).expect("fits"),
    );
    set(EventType::BEGIN_LOAD_QUERY, 4);
    set(EventType::EXECUTE_LOAD_QUERY, 26);
    set(EventType::TABLE_MAP, 8);
    for t in [
        EventType::WRITE_ROWS_V1,
        EventType::UPDATE_ROWS_V1,
        EventType::DELETE_ROWS_V1,
    ] {
        set(t, 8);
    }
    set(EventType::INCIDENT, 2);
    for t in [
        EventType::WRITE_ROWS_V2,
        EventType::UPDATE_ROWS_V2,
        EventType::DELETE_ROWS_V2,
        EventType::PARTIAL_UPDATE_ROWS,
        EventType::TRANSACTION_PAYLOAD,
        EventType::HEARTBEAT_V2,
    ] {
        set(t, 10);
    }
    set(EventType::BINLOG_CHECKPOINT, 4);
    set(EventType::GTID, 19);
    set(EventType::GTID_LIST, 4);
    set(EventType::QUERY_COMPRESSED, 13);
    for t in [
        EventType::WRITE_ROWS_COMPRESSED_V1,
        EventType::UPDATE_ROWS_COMPRESSED_V1,
        EventType::DELETE_ROWS_COMPRESSED_V1,
    ] {
        set(t, 8);
    }
    for t in [
        EventType::WRITE_ROWS_COMPRESSED,
        EventType::UPDATE_ROWS_COMPRESSED,
        EventType::DELETE_ROWS_COMPRESSED,
    ] {
        set(t, 10);
    }
    l
}

/// Appends a whole event — header with `log_pos`, body, CRC32 — to `out`.
///
/// `pos` is the offset in its file where the event starts; the header's
/// `log_pos` is the offset just past it. Returns that end offset.
pub fn push_event(
    out: &mut Vec<u8>,
    pos: u64,
    header: EventMeta,
    t: EventType,
    body: &[u8],
) -> u64 {
    let (h, end) = header_bytes(pos, header, t, body.len());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h);
    crc.update(body);
    out.extend_from_slice(&h);
    out.extend_from_slice(body);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    end
}

/// Header fields of an event that the caller chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMeta {
    /// Seconds since the epoch.
    pub timestamp: u32,
    /// The writing server.
    pub server_id: u32,
    /// `LOG_EVENT_*` flags.
    pub flags: u16,
}

/// The 19-byte header of an event with a `body_len`-byte body and a CRC32,
/// starting at `pos`; and its end offset.
fn header_bytes(pos: u64, m: EventMeta, t: EventType, body_len: usize) -> ([u8; HEADER_LEN], u64) {
    let size = HEADER_LEN + body_len + CHECKSUM_LEN;
    let size32 = u32::try_from(size).expect("a synthetic event is far below 4 GiB");
    let end = pos + u64::from(size32);
    // log_pos is 32 bits: MariaDB files never pass 4 GiB (max_binlog_size is 1 GiB).
    let log_pos = u32::try_from(end).unwrap_or(u32::MAX);
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&m.timestamp.to_le_bytes());
    h[4] = t.0;
    h[5..9].copy_from_slice(&m.server_id.to_le_bytes());
    h[9..13].copy_from_slice(&size32.to_le_bytes());
    h[13..17].copy_from_slice(&log_pos.to_le_bytes());
    h[17..19].copy_from_slice(&m.flags.to_le_bytes());
    (h, end)
}

/// The body of a Format_description event as MariaDB 10.11 writes it,
/// without its trailing CRC: binlog version 4, [`SERVER_VERSION`] padded
/// with NULs to 50 bytes, `create_timestamp` (set in the first file a server
/// writes after starting, 0 in files opened by a rotation), common-header
/// length 19, [`post_header_lengths`], checksum algorithm CRC32.
pub fn format_description_body(create_timestamp: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(2 + SERVER_VERSION_LEN + 4 + 1 + POST_HEADER_TYPES + 1);
    b.extend_from_slice(&4u16.to_le_bytes());
    let mut version = [0u8; SERVER_VERSION_LEN];
    version[..SERVER_VERSION.len()].copy_from_slice(SERVER_VERSION.as_bytes());
    b.extend_from_slice(&version);
    b.extend_from_slice(&create_timestamp.to_le_bytes());
    b.push(u8::try_from(HEADER_LEN).expect("19"));
    b.extend_from_slice(&post_header_lengths());
    b.push(CHECKSUM_ALG_CRC32);
    b
}

/// The whole Format_description event (header, body, CRC32) at offset 4 of
/// a file: 252 bytes, ending at 256 like every MariaDB 10.11 binlog's.
pub fn format_description_event(m: EventMeta, create_timestamp: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    push_event(
        &mut out,
        MAGIC.len() as u64,
        m,
        EventType::FORMAT_DESCRIPTION,
        &format_description_body(create_timestamp),
    );
    out
}

/// The decoded synthetic Format_description: what the reader holds while
/// reading a synthetic file (and what a fuzzer decodes bodies under).
pub fn format_description() -> FormatDescription {
    let m = EventMeta {
        timestamp: 0,
        server_id: 1,
        flags: 0,
    };
    let ev = format_description_event(m, 0);
    let mut fde = FormatDescription::decode(&ev[HEADER_LEN..]).expect("synthetic FDE decodes");
    fde.raw_event = ev;
    fde
}

/// A GTID event body: `seq_no`, `domain_id`, `flags2` and the six reserved
/// bytes MariaDB writes to fill its 19-byte post-header. No group-commit id
/// or XA xid is written, so `flags` must not ask for them.
pub fn gtid_body(out: &mut Vec<u8>, seq_no: u64, domain_id: u32, flags: u8) {
    debug_assert!(
        flags & (gtid_flags::GROUP_COMMIT_ID | gtid_flags::PREPARED_XA | gtid_flags::COMPLETED_XA)
            == 0
    );
    out.extend_from_slice(&seq_no.to_le_bytes());
    out.extend_from_slice(&domain_id.to_le_bytes());
    out.push(flags);
    out.extend_from_slice(&[0; 6]);
}

/// A GTID_LIST body: the count, then domain, server and seq_no of each GTID.
/// MariaDB pads an empty list with two zero bytes; so does this.
pub fn gtid_list_body(out: &mut Vec<u8>, gtids: &[MariaGtid]) {
    let n = u32::try_from(gtids.len()).expect("fewer than 2^28 domains");
    out.extend_from_slice(&n.to_le_bytes());
    for g in gtids {
        out.extend_from_slice(&g.domain.to_le_bytes());
        out.extend_from_slice(&g.server.to_le_bytes());
        out.extend_from_slice(&g.seq.to_le_bytes());
    }
    if gtids.is_empty() {
        out.extend_from_slice(&[0; 2]);
    }
}

/// A BINLOG_CHECKPOINT body: the file name's length (u32), then the name.
pub fn checkpoint_body(out: &mut Vec<u8>, file: &str) {
    let n = u32::try_from(file.len()).expect("short name");
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(file.as_bytes());
}

/// A ROTATE body: position 4 in the next file, then its name.
pub fn rotate_body(out: &mut Vec<u8>, next_file: &str) {
    out.extend_from_slice(&4u64.to_le_bytes());
    out.extend_from_slice(next_file.as_bytes());
}

/// A TABLE_MAP body for `db.table (id INT NOT NULL, v VARCHAR(255))`:
/// table id (6 bytes), flags, names, column types, the VARCHAR's maximum
/// length as metadata, and the NULL-ability bitmap (`v` may be NULL).
pub fn table_map_body(out: &mut Vec<u8>, table_id: u64, db: &str, table: &str) {
    out.extend_from_slice(&table_id.to_le_bytes()[..6]);
    out.extend_from_slice(&TM_BIT_LEN_EXACT_F.to_le_bytes());
    for name in [db, table] {
        out.push(u8::try_from(name.len()).expect("names are at most 64 bytes"));
        out.extend_from_slice(name.as_bytes());
        out.push(0);
    }
    out.push(2); // column count
    out.extend_from_slice(&[column_type::LONG, column_type::VARCHAR]);
    out.push(2); // metadata length: the VARCHAR's two bytes
    out.extend_from_slice(&u16::try_from(MAX_VALUE_LEN).expect("255").to_le_bytes());
    out.push(0b10); // NULL-ability: `v` only
}

/// A WRITE_ROWS_V1 body for the table of [`table_map_body`]: table id,
/// flags (`STMT_END`), column count, the columns-present bitmap, then per
/// row its NULL bitmap (unused bits set, as the server leaves them), `id`
/// as 4 bytes little-endian and `v` as a one-byte length and its bytes.
pub fn write_rows_body(out: &mut Vec<u8>, table_id: u64, rows: &[(i32, &[u8])]) {
    out.extend_from_slice(&table_id.to_le_bytes()[..6]);
    out.extend_from_slice(&rows_flags::STMT_END.to_le_bytes());
    out.push(2); // column count
    out.push(0b11); // both columns present
    for (id, v) in rows {
        out.push(0xfc); // no NULLs; bits past the two columns set
        out.extend_from_slice(&id.to_le_bytes());
        let len = v.len().min(MAX_VALUE_LEN);
        out.push(u8::try_from(len).expect("at most 255"));
        out.extend_from_slice(&v[..len]);
    }
}

/// How much to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Exactly this many transactions.
    Transactions(u64),
    /// Transactions until the files hold at least this many bytes in all.
    Bytes(u64),
}

/// What to generate. [`Default`] gives one small file of 1,000
/// transactions over 16 databases.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// File names are `BASE.000001`…, the index `BASE.index`.
    pub base_name: String,
    /// How much to write.
    pub until: Until,
    /// Transactions go round-robin to databases `db_00` … (at least 1).
    pub databases: u32,
    /// Rows per transaction (one Write_rows event holds them all; at least 1).
    pub rows_per_transaction: u32,
    /// Bytes of each row's `v` value (at most [`MAX_VALUE_LEN`]).
    pub value_len: usize,
    /// Write an Annotate_rows event (the statement) in each transaction.
    pub annotate: bool,
    /// Rotate to the next file once a file has reached this size, after a
    /// transaction (like `max_binlog_size`).
    pub max_file_size: u64,
    /// Server id in every header.
    pub server_id: u32,
    /// GTID domain of every transaction.
    pub domain_id: u32,
    /// seq_no of the first transaction; the next ones count up by one.
    pub first_seq_no: u64,
    /// Timestamp of the first event; it advances one second per 1,000
    /// transactions.
    pub timestamp: u32,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            base_name: "synth-bin".into(),
            until: Until::Transactions(1000),
            databases: 16,
            rows_per_transaction: 1,
            value_len: 32,
            annotate: true,
            max_file_size: 1 << 30,
            server_id: 1,
            domain_id: 0,
            first_seq_no: 1,
            // 2026-11-21 04:59:45 UTC
            timestamp: 1_795_237_185,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthOutput {
    /// The binlog files, in order.
    pub files: Vec<PathBuf>,
    /// The index file listing them.
    pub index: PathBuf,
    /// Transactions written (each is one group for the grouper).
    pub groups: u64,
    /// Events written, control events included.
    pub events: u64,
    /// Bytes of all files.
    pub bytes: u64,
    /// GTID of the last transaction, if any was written.
    pub last_gtid: Option<MariaGtid>,
}

/// Writes a synthetic binlog into `dir` (which must exist) as `opts` says:
/// the files and the index; existing files of the same names are replaced.
pub fn generate(dir: &Path, opts: &SynthOptions) -> io::Result<SynthOutput> {
    let mut g = Generator::new(dir, opts)?;
    let mut seq = opts.first_seq_no;
    let mut written = 0u64;
    loop {
        let done = match opts.until {
            Until::Transactions(n) => written >= n,
            Until::Bytes(n) => g.total_bytes() >= n,
        };
        if done {
            break;
        }
        if written > 0 && g.pos >= opts.max_file_size {
            g.rotate()?;
        }
        g.transaction(seq, written)?;
        seq += 1;
        written += 1;
    }
    g.finish()
}

/// Writes one file after another.
struct Generator<'o> {
    dir: PathBuf,
    opts: &'o SynthOptions,
    files: Vec<PathBuf>,
    out: BufWriter<File>,
    /// Offset of the next event in the current file.
    pos: u64,
    /// Bytes of the files before the current one.
    done_bytes: u64,
    events: u64,
    groups: u64,
    last: Option<MariaGtid>,
    timestamp: u32,
    /// Scratch buffers, reused for every transaction.
    body: Vec<u8>,
    rows_body: Vec<u8>,
    tm_body: Vec<u8>,
    ev: Vec<u8>,
    value: Vec<u8>,
    text: Vec<u8>,
    /// Database names, `db_00`…
    dbs: Vec<String>,
    /// State of the value generator.
    rng: u64,
}

impl<'o> Generator<'o> {
    fn new(dir: &Path, opts: &'o SynthOptions) -> io::Result<Self> {
        let ndb = opts.databases.max(1);
        let width = ndb.saturating_sub(1).to_string().len().max(2);
        let name = file_name(&opts.base_name, 1);
        let path = dir.join(&name);
        let out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let mut g = Generator {
            dir: dir.to_path_buf(),
            opts,
            files: vec![path],
            out,
            pos: 0,
            done_bytes: 0,
            events: 0,
            groups: 0,
            last: None,
            timestamp: opts.timestamp,
            body: Vec::with_capacity(4096),
            rows_body: Vec::with_capacity(4096),
            tm_body: Vec::with_capacity(64),
            ev: Vec::with_capacity(4096),
            value: Vec::with_capacity(MAX_VALUE_LEN),
            text: Vec::with_capacity(4096),
            dbs: (0..ndb).map(|i| format!("db_{i:0width$}")).collect(),
            rng: 0x9e37_79b9_7f4a_7c15,
        };
        g.start_file(&name, opts.timestamp)?;
        Ok(g)
    }

    fn total_bytes(&self) -> u64 {
        self.done_bytes + self.pos
    }

    fn meta(&self, flags: u16) -> EventMeta {
        EventMeta {
            timestamp: self.timestamp,
            server_id: self.opts.server_id,
            flags,
        }
    }

    /// Magic, Format_description, Gtid_list, Binlog_checkpoint.
    fn start_file(&mut self, name: &str, create_timestamp: u32) -> io::Result<()> {
        self.out.write_all(&MAGIC)?;
        self.pos = MAGIC.len() as u64;
        let fde = format_description_event(self.meta(0), create_timestamp);
        self.out.write_all(&fde)?;
        self.pos += fde.len() as u64;
        self.events += 1;
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        let state: Vec<MariaGtid> = self.last.into_iter().collect();
        gtid_list_body(&mut body, &state);
        self.emit(0, EventType::GTID_LIST, &body)?;
        body.clear();
        checkpoint_body(&mut body, name);
        self.emit(0, EventType::BINLOG_CHECKPOINT, &body)?;
        self.body = body;
        Ok(())
    }

    /// Writes one event of the current file.
    fn emit(&mut self, flags: u16, t: EventType, body: &[u8]) -> io::Result<()> {
        let meta = self.meta(flags);
        self.ev.clear();
        self.pos = push_event(&mut self.ev, self.pos, meta, t, body);
        self.out.write_all(&self.ev)?;
        self.events += 1;
        Ok(())
    }

    /// Rotate event, then the next file.
    fn rotate(&mut self) -> io::Result<()> {
        let next = file_name(&self.opts.base_name, self.files.len() + 1);
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        rotate_body(&mut body, &next);
        self.emit(0, EventType::ROTATE, &body)?;
        self.body = body;
        self.out.flush()?;
        self.done_bytes += self.pos;
        let path = self.dir.join(&next);
        self.out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        self.files.push(path);
        self.start_file(&next, 0)
    }

    /// The `n`-th transaction (from 0), GTID `seq`.
    fn transaction(&mut self, seq: u64, n: u64) -> io::Result<()> {
        let o = self.opts;
        self.timestamp = o
            .timestamp
            .saturating_add(u32::try_from(n / 1000).unwrap_or(u32::MAX));
        let db_index = usize::try_from(seq % u64::from(o.databases.max(1))).expect("small");
        // Each database's table keeps one table id, as on a server that
        // keeps the table open.
        let table_id = 32 + db_index as u64;

        // Row values: ids from the seq_no, text from a small LCG.
        let nrows = usize::try_from(o.rows_per_transaction.max(1)).expect("small");
        let vlen = o.value_len.min(MAX_VALUE_LEN);
        let mut value = std::mem::take(&mut self.value);
        value.clear();
        for _ in 0..nrows * vlen {
            self.rng = self
                .rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let r = usize::try_from(self.rng >> 59).expect("5 bits");
            value.push(b"abcdefghijklmnopqrstuvwxyz012345"[r]);
        }
        let id0 = i32::try_from(seq.wrapping_mul(nrows as u64) % (i32::MAX as u64))
            .expect("below i32::MAX");
        let rows: Vec<(i32, &[u8])> = value
            .chunks(vlen.max(1))
            .chain(std::iter::repeat(&[][..]))
            .take(nrows)
            .zip(0..)
            .map(|(v, i)| (id0.wrapping_add(i), v))
            .collect();

        let mut text = std::mem::take(&mut self.text);
        text.clear();
        if o.annotate {
            let _ = write!(text, "INSERT INTO {}.t VALUES ", self.dbs[db_index]);
            for (k, (id, v)) in rows.iter().enumerate() {
                if k > 0 {
                    text.push(b',');
                }
                let _ = write!(text, "({id},'");
                text.extend_from_slice(v);
                text.extend_from_slice(b"')");
            }
        }
        let mut rows_body = std::mem::take(&mut self.rows_body);
        rows_body.clear();
        write_rows_body(&mut rows_body, table_id, &rows);
        drop(rows);
        self.value = value;
        let mut tm_body = std::mem::take(&mut self.tm_body);
        tm_body.clear();
        table_map_body(&mut tm_body, table_id, &self.dbs[db_index], "t");
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        gtid_body(
            &mut body,
            seq,
            o.domain_id,
            gtid_flags::TRANSACTIONAL | gtid_flags::ALLOW_PARALLEL,
        );

        // MariaDB sets this flag on GTID events.
        self.emit(LOG_EVENT_SUPPRESS_USE_F, EventType::GTID, &body)?;
        if o.annotate {
            self.emit(0, EventType::ANNOTATE_ROWS, &text)?;
        }
        self.emit(0, EventType::TABLE_MAP, &tm_body)?;
        self.emit(0, EventType::WRITE_ROWS_V1, &rows_body)?;
        body.clear();
        // The server's internal xid: any growing number.
        body.extend_from_slice(&(seq + 1000).to_le_bytes());
        self.emit(0, EventType::XID, &body)?;

        self.body = body;
        self.text = text;
        self.rows_body = rows_body;
        self.tm_body = tm_body;
        self.groups += 1;
        self.last = Some(MariaGtid {
            domain: o.domain_id,
            server: o.server_id,
            seq,
        });
        Ok(())
    }

    /// Flushes the last file and writes the index.
    fn finish(mut self) -> io::Result<SynthOutput> {
        self.out.flush()?;
        let bytes = self.done_bytes + self.pos;
        let index = self.dir.join(format!("{}.index", self.opts.base_name));
        let mut text = String::new();
        for f in &self.files {
            let name = f.file_name().expect("a file").to_string_lossy();
            text.push_str("./");
            text.push_str(&name);
            text.push('\n');
        }
        std::fs::write(&index, text)?;
        Ok(SynthOutput {
            files: self.files,
            index,
            groups: self.groups,
            events: self.events,
            bytes,
            last_gtid: self.last,
        })
    }
}

/// `BASE.00000n`.
fn file_name(base: &str, n: usize) -> String {
    format!("{base}.{n:06}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::Event;

    #[test]
    fn format_description_is_mariadb_10_11s() {
        let ev = format_description_event(
            EventMeta {
                timestamp: 7,
                server_id: 1,
                flags: 0,
            },
            7,
        );
        assert_eq!(ev.len(), 252);
        let fde = format_description();
        assert_eq!(fde.binlog_version, 4);
        assert_eq!(fde.server_version, SERVER_VERSION);
        assert!(fde.has_crc32());
        assert_eq!(fde.post_header_lens.len(), POST_HEADER_TYPES);
        assert_eq!(
            fde.post_header_len(EventType::FORMAT_DESCRIPTION),
            Some(228)
        );
        assert_eq!(fde.post_header_len(EventType::GTID), Some(19));
        assert_eq!(fde.post_header_len(EventType::TABLE_MAP), Some(8));
        assert_eq!(fde.post_header_len(EventType::WRITE_ROWS_V1), Some(8));
        assert_eq!(fde.post_header_len(EventType::QUERY), Some(13));
    }

    #[test]
    fn events_decode_as_written() {
        let fde = format_description();
        let mut b = Vec::new();
        table_map_body(&mut b, 40, "db_03", "t");
        match Event::decode(EventType::TABLE_MAP, &b, &fde).unwrap() {
            Event::TableMap(t) => {
                assert_eq!((t.table_id, t.db, t.table), (40, &b"db_03"[..], &b"t"[..]));
                assert_eq!(t.column_metadata().unwrap(), vec![0, 255]);
            }
            e => panic!("{e:?}"),
        }
        b.clear();
        write_rows_body(&mut b, 40, &[(1, b"x"), (2, b"yz")]);
        match Event::decode(EventType::WRITE_ROWS_V1, &b, &fde).unwrap() {
            Event::Rows(r) => assert!(r.table_id == 40 && r.stmt_end()),
            e => panic!("{e:?}"),
        }
        b.clear();
        gtid_body(&mut b, 9, 3, gtid_flags::TRANSACTIONAL);
        match Event::decode(EventType::GTID, &b, &fde).unwrap() {
            Event::Gtid(g) => assert!(g.seq_no == 9 && g.domain_id == 3 && g.transactional()),
            e => panic!("{e:?}"),
        }
    }

    /// The real MariaDB 10.11 fixture, when `shared/` is beside the
    /// repository (as in CI); the comparison is skipped otherwise.
    fn real_binlog() -> Option<Vec<u8>> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/binlogs/mariadb-10.11/mariadb-bin.000001");
        match std::fs::read(&p) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("skipped: {} ({e})", p.display());
                None
            }
        }
    }

    #[test]
    fn events_are_byte_identical_to_a_real_mariadb_10_11_binlog() {
        let Some(real) = real_binlog() else { return };
        let ts = u32::from_le_bytes([real[4], real[5], real[6], real[7]]);
        let meta = |flags| EventMeta {
            timestamp: ts,
            server_id: 1,
            flags,
        };
        // Format_description: everything after the server version and the
        // create timestamp — header length, post-header lengths, checksum
        // algorithm — is the server's.
        let fde = format_description_event(meta(0), ts);
        assert_eq!(fde.len(), 252);
        assert_eq!(fde[..19], real[4..23], "FDE header (its log_pos 256)");
        assert_eq!(fde[19 + 52 + 4..248], real[4 + 19 + 52 + 4..252]);
        // Gtid_list [] at 256 and the GTID 0-1-13 of a row transaction at
        // 3287, whole events with their CRC32.
        let mut ev = Vec::new();
        let mut body = Vec::new();
        gtid_list_body(&mut body, &[]);
        push_event(&mut ev, 256, meta(0), EventType::GTID_LIST, &body);
        assert_eq!(ev, real[256..285]);
        ev.clear();
        body.clear();
        let flags = gtid_flags::TRANSACTIONAL | gtid_flags::ALLOW_PARALLEL;
        gtid_body(&mut body, 13, 0, flags);
        let meta_gtid = meta(LOG_EVENT_SUPPRESS_USE_F);
        push_event(&mut ev, 3287, meta_gtid, EventType::GTID, &body);
        assert_eq!(ev, real[3287..3329]);
        // Its Xid (xid 21) at 3481.
        ev.clear();
        push_event(&mut ev, 3481, meta(0), EventType::XID, &21u64.to_le_bytes());
        assert_eq!(ev, real[3481..3512]);
    }
}
