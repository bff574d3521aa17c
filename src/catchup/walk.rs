//! The catch-up scan's walk over one mirror file: event headers only (the
//! length at offset 9 of the 19-byte header), large reads into one
//! reused buffer, and a decode of just what places a group.
//!
//! * **Fast groups** — the shape nearly every transaction has: a MariaDB
//!   GTID event (not standalone, no DDL or XA flag), then Annotate_rows,
//!   Table_map and row events (v1, v2), ended by an XID. Only the GTID
//!   body, the Table_map's database and table names and the row events'
//!   table ids are decoded; the group's shards come from a per-file cache
//!   keyed by those names, and each distinct shard set gets a number
//!   ([`View::set`]) so that a caller deciding many groups works per set,
//!   not per group. Nothing is allocated per group.
//! * **Every other group** (DDL, statements, non-transactional tables, XA,
//!   a group after a server start, one cut short, a row event without its
//!   Table_map…) and every group under key shards (which need the rows)
//!   is handed, event by event, to the grouper's own [`Cutter`] and
//!   placed by [`ShardMap::placement`], as the apply engine does. A group
//!   found unusual halfway is handed over from its first event. So the
//!   groups and their placement are the grouper's (tested against it in
//!   `scan.rs`).
//!
//! **No CRC32 recomputation.** The walk does not verify event checksums:
//! a mirror verifies every event's CRC32 as it receives it (`parapply
//! mirror`; a torn or damaged tail is cut at its restart), promote compares
//! the mirrors byte for byte, and the apply engine's reader verifies every
//! event again when it applies the set. The catch-up set is a plan over
//! bytes already checked.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use super::CatchupError;
use crate::binlog::cursor::Cursor;
use crate::binlog::events::{FormatDescription, GtidEvent, TableMapEvent};
use crate::binlog::{EventHeader, EventType, RawEvent, ReadError};
use crate::group::{Cutter, Group};
use crate::position::MariaGtid;
use crate::schedule::{Placement, ShardBy, ShardMap};

/// Bytes read from the file at a time.
const CHUNK: usize = 8 << 20;
const HEADER_LEN: usize = 19;
const MAGIC: &[u8; 4] = b"\xfebin";

/// One group as the walk yields it (borrowed: build an `Item` to keep it).
#[derive(Debug)]
pub struct View<'a> {
    /// Its GTID.
    pub gtid: MariaGtid,
    /// The file.
    pub file: &'a Arc<str>,
    /// Where it starts and ends in the file.
    pub start: u64,
    /// Where it ends.
    pub end: u64,
    /// Bytes of its events.
    pub bytes: u64,
    /// Its shards, sorted; `None` for a barrier.
    pub shards: Option<&'a [Arc<str>]>,
    /// The number of its shard set in this walk (`None` for a barrier):
    /// groups with the same number have the same shards.
    pub set: Option<u32>,
}

/// How a file's walk ended.
pub struct Walked {
    /// Bytes of the events walked.
    pub bytes: u64,
    /// A group still open at its end (`gtid or position`); `None` also
    /// when the visitor stopped the walk.
    pub open: Option<String>,
}

/// Shard names and shard sets met in one file, numbered.
#[derive(Default)]
struct Sets {
    /// Database (or `db\0table` under table shards) → shard number.
    by_key: HashMap<Vec<u8>, u32>,
    /// Shard name → shard number.
    by_name: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
    /// Shard numbers (sorted by name) → set number.
    by_members: HashMap<Vec<u32>, u32>,
    sets: Vec<Vec<Arc<str>>>,
    /// Scratch key.
    key: Vec<u8>,
}

impl Sets {
    fn shard(&mut self, name: Arc<str>) -> u32 {
        if let Some(&i) = self.by_name.get(&name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.clone());
        self.by_name.insert(name, i);
        i
    }

    /// The shard of a Table_map's `db` and `table` under `map` (database
    /// or table shards).
    fn shard_of(&mut self, map: &ShardMap, db: &[u8], table: &[u8]) -> u32 {
        self.key.clear();
        self.key.extend_from_slice(db);
        let by_table = matches!(map.by(), ShardBy::Table);
        if by_table {
            self.key.push(0);
            self.key.extend_from_slice(table);
        }
        if let Some(&i) = self.by_key.get(&self.key[..]) {
            return i;
        }
        let db_s = String::from_utf8_lossy(db);
        let shard = if by_table {
            map.shard_of_table(&db_s, &String::from_utf8_lossy(table))
        } else {
            map.shard_of_database(&db_s)
        };
        let i = self.shard(shard.0);
        self.by_key.insert(self.key.clone(), i);
        i
    }

    /// The set of shard numbers `ids` (deduplicated, any order; sorted
    /// here by name).
    fn set_of(&mut self, ids: &mut Vec<u32>) -> u32 {
        let names = &self.names;
        ids.sort_unstable_by(|a, b| names[*a as usize].cmp(&names[*b as usize]));
        ids.dedup();
        if let Some(&s) = self.by_members.get(&ids[..]) {
            return s;
        }
        let s = self.sets.len() as u32;
        self.sets.push(
            ids.iter()
                .map(|&i| self.names[i as usize].clone())
                .collect(),
        );
        self.by_members.insert(ids.clone(), s);
        s
    }

    /// The set of a group the cutter cut and the map placed.
    fn set_of_shards(&mut self, shards: Vec<crate::schedule::Shard>) -> u32 {
        let mut ids: Vec<u32> = shards.into_iter().map(|s| self.shard(s.0)).collect();
        self.set_of(&mut ids)
    }
}

/// A fast group being walked.
struct Fast {
    gtid: MariaGtid,
    /// Its first event's offset in the file.
    at: u64,
    start: u64,
    bytes: u64,
    saw_rows: bool,
}

/// The file's bytes `[base, base + buf.len())`, read in chunks.
struct Buffer {
    file: File,
    buf: Vec<u8>,
    base: u64,
    eof: bool,
}

impl Buffer {
    /// Makes `[from, to)` available (keeping nothing before `keep`);
    /// false when the file ends before `to`.
    fn have(&mut self, keep: u64, to: u64) -> std::io::Result<bool> {
        while self.base + (self.buf.len() as u64) < to {
            if self.eof {
                return Ok(false);
            }
            if keep > self.base {
                let drop = (keep - self.base) as usize;
                self.buf.drain(..drop.min(self.buf.len()));
                self.base = keep;
            }
            let len = self.buf.len();
            let want = CHUNK.max((to - self.base) as usize - len);
            self.buf.resize(len + want, 0);
            let mut got = 0;
            while got < want {
                let n = self.file.read(&mut self.buf[len + got..])?;
                if n == 0 {
                    self.eof = true;
                    break;
                }
                got += n;
            }
            self.buf.truncate(len + got);
        }
        Ok(true)
    }

    /// Moves to `at`, dropping what was read.
    fn jump(&mut self, at: u64) -> std::io::Result<()> {
        if at >= self.base && at <= self.base + self.buf.len() as u64 {
            return Ok(());
        }
        self.file.seek(SeekFrom::Start(at))?;
        self.buf.clear();
        self.base = at;
        self.eof = false;
        Ok(())
    }

    fn slice(&self, from: u64, len: usize) -> &[u8] {
        let i = (from - self.base) as usize;
        &self.buf[i..i + len]
    }
}

/// The walk of one file.
struct Walk<'m> {
    name: Arc<str>,
    map: &'m ShardMap,
    fde: Option<Arc<FormatDescription>>,
    csum: usize,
    cutter: Cutter,
    sets: Sets,
    /// Every group goes through the cutter (key shards).
    all_slow: bool,
    /// Scratch: the fast group's table ids and shard numbers.
    table_ids: Vec<u64>,
    ids: Vec<u32>,
}

/// Walks `path` from `start` (`None`: its first event after the
/// Format_description; else an event boundary), calling `visit` for each
/// group until it says [`ControlFlow::Break`].
pub fn walk_file(
    path: &Path,
    start: Option<u64>,
    map: &ShardMap,
    mut visit: impl FnMut(&View<'_>) -> ControlFlow<()>,
) -> Result<Walked, CatchupError> {
    let io = |error| ReadError::Io {
        path: path.to_path_buf(),
        error,
    };
    let name: Arc<str> = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default()
        .into();
    let all_slow = matches!(map.by(), ShardBy::Key(_));
    let mut w = Walk {
        name: name.clone(),
        map,
        fde: None,
        csum: 0,
        cutter: Cutter::new(all_slow),
        sets: Sets::default(),
        all_slow,
        table_ids: Vec::new(),
        ids: Vec::new(),
    };
    let mut b = Buffer {
        file: File::open(path).map_err(io)?,
        buf: Vec::with_capacity(CHUNK),
        base: 0,
        eof: false,
    };
    let bad = |pos: u64, what: String| ReadError::BadHeader {
        file: name.to_string(),
        pos,
        what,
    };
    if !b.have(0, 4).map_err(io)? || b.slice(0, 4) != MAGIC {
        return Err(bad(0, "not a binlog file (no magic bytes)".into()).into());
    }
    let mut pos = 4u64;
    let mut fast: Option<Fast> = None;
    let mut walked = 0u64;
    // Events before `start` are not handed to the cutter (as the reader
    // does not yield them): only the Format_description is read.
    let mut skip_to = start.filter(|&s| s > 4);
    let mut check_boundary = false;
    let len = b.file.metadata().map_err(io)?.len();
    loop {
        let keep = fast.as_ref().map_or(pos, |f| f.at);
        if !b.have(keep, pos + HEADER_LEN as u64).map_err(io)? {
            if b.base + (b.buf.len() as u64) > pos {
                return Err(truncated(&name, pos, HEADER_LEN as u64, &b).into());
            }
            break;
        }
        let size = u32::from_le_bytes(b.slice(pos + 9, 4).try_into().expect("4 bytes")) as u64;
        if size < HEADER_LEN as u64 + w.csum as u64 {
            return Err(bad(pos, format!("event size {size}")).into());
        }
        if !b.have(keep, pos + size).map_err(io)? {
            return Err(truncated(&name, pos, size, &b).into());
        }
        let bytes = b.slice(pos, size as usize);
        let t = EventType(bytes[4]);
        if pos == 4 && t != EventType::FORMAT_DESCRIPTION {
            return Err(ReadError::NoFormatDescription {
                file: name.to_string(),
                pos,
                type_code: t.0,
            }
            .into());
        }
        if t == EventType::FORMAT_DESCRIPTION {
            let mut fde = FormatDescription::decode(&bytes[HEADER_LEN..]).map_err(|cause| {
                ReadError::Decode {
                    file: name.to_string(),
                    pos,
                    type_name: t.name(),
                    cause,
                }
            })?;
            fde.raw_event = bytes.to_vec();
            w.csum = fde.checksum_len();
            w.fde = Some(Arc::new(fde));
        }
        if let Some(s) = skip_to.take() {
            // The start must be an event boundary: the event there ends
            // where its header says (checked at the next turn).
            if s > len {
                return Err(ReadError::StartNotFound {
                    what: format!("{name}:{s} is past the end of the file ({len} bytes)"),
                }
                .into());
            }
            check_boundary = true;
            pos = s;
            b.jump(pos).map_err(io)?;
            continue;
        }
        if std::mem::take(&mut check_boundary) {
            let log_pos = u32::from_le_bytes(bytes[13..17].try_into().expect("4 bytes"));
            if log_pos != 0 && u64::from(log_pos) != pos + size {
                return Err(ReadError::StartNotFound {
                    what: format!("{name}:{pos} is not an event boundary"),
                }
                .into());
            }
        }
        walked += size;
        let step = w.event(&b, pos, size, &mut fast)?;
        pos += size;
        if let Some(g) = step {
            let view = w.view(&g)?;
            if visit(&view).is_break() {
                return Ok(Walked {
                    bytes: walked,
                    open: None,
                });
            }
        }
    }
    if let Some(f) = fast.take() {
        w.replay(&b, f.at, pos)?;
    }
    Ok(Walked {
        bytes: walked,
        open: w.cutter.pending().map(|(g, _)| g),
    })
}

fn truncated(name: &str, pos: u64, need: u64, b: &Buffer) -> ReadError {
    ReadError::Truncated {
        file: name.to_string(),
        pos,
        needed: need,
        available: b.base + b.buf.len() as u64 - pos,
    }
}

/// A group the walk completed: fast (its fields) or cut by the cutter.
enum Done {
    Fast {
        gtid: MariaGtid,
        start: u64,
        end: u64,
        bytes: u64,
        set: u32,
    },
    Cut(Group),
}

impl Walk<'_> {
    fn fde(&self, pos: u64) -> Result<&Arc<FormatDescription>, ReadError> {
        self.fde
            .as_ref()
            .ok_or_else(|| ReadError::NoFormatDescription {
                file: self.name.to_string(),
                pos,
                type_code: 0,
            })
    }

    fn decode_error(&self, pos: u64, t: EventType, cause: crate::binlog::DecodeError) -> ReadError {
        ReadError::Decode {
            file: self.name.to_string(),
            pos,
            type_name: t.name(),
            cause,
        }
    }

    /// Hands the event at `pos` to the cutter.
    fn cut(&mut self, b: &Buffer, pos: u64, size: u64) -> Result<Option<Group>, ReadError> {
        let bytes = b.slice(pos, size as usize);
        let header =
            EventHeader::decode(bytes).map_err(|c| self.decode_error(pos, EventType(0), c))?;
        let fde = self.fde(pos)?.clone();
        let checksum_len = if header.event_type == EventType::FORMAT_DESCRIPTION {
            fde.own_checksum_len()
        } else {
            fde.checksum_len()
        };
        let origin_end = if header.log_pos != 0 {
            u64::from(header.log_pos)
        } else {
            pos + size
        };
        let ev = RawEvent {
            file: &self.name,
            pos,
            header,
            bytes,
            checksum_len,
            fde: &fde,
            origin_file: &self.name,
            origin_end,
        };
        self.cutter.push(&ev)
    }

    /// Hands the events `[from, to)` to the cutter (a group that turned
    /// out not to be a fast one, from its first event); the group it
    /// completes, if any.
    fn replay(&mut self, b: &Buffer, from: u64, to: u64) -> Result<Option<Group>, ReadError> {
        let mut at = from;
        let mut done = None;
        while at < to {
            let size = u64::from(u32::from_le_bytes(
                b.slice(at + 9, 4).try_into().expect("4 bytes"),
            ));
            if let Some(g) = self.cut(b, at, size)? {
                done = Some(g);
            }
            at += size;
        }
        Ok(done)
    }

    /// One event; the group it completes, if any.
    fn event(
        &mut self,
        b: &Buffer,
        pos: u64,
        size: u64,
        fast: &mut Option<Fast>,
    ) -> Result<Option<Done>, ReadError> {
        let bytes = b.slice(pos, size as usize);
        let t = EventType(bytes[4]);
        let Some(f) = fast.as_mut() else {
            if t == EventType::GTID && !self.all_slow && self.cutter.is_idle() {
                if let Some(f) = self.fast_start(bytes, pos, size)? {
                    *fast = Some(f);
                    return Ok(None);
                }
            }
            if t.is_control() && t != EventType::FORMAT_DESCRIPTION && self.cutter.is_idle() {
                return Ok(None);
            }
            return Ok(self.cut(b, pos, size)?.map(Done::Cut));
        };
        let body = &bytes[HEADER_LEN..bytes.len() - self.csum];
        let fits = match t {
            EventType::ANNOTATE_ROWS => true,
            EventType::TABLE_MAP => {
                let phl = self.fde(pos)?.post_header_len(t).unwrap_or(8);
                let tm =
                    TableMapEvent::decode(body, phl).map_err(|c| self.decode_error(pos, t, c))?;
                if !self.table_ids.contains(&tm.table_id) {
                    self.table_ids.push(tm.table_id);
                }
                let id = self.sets.shard_of(self.map, tm.db, tm.table);
                if !self.ids.contains(&id) {
                    self.ids.push(id);
                }
                true
            }
            EventType::WRITE_ROWS_V1
            | EventType::UPDATE_ROWS_V1
            | EventType::DELETE_ROWS_V1
            | EventType::WRITE_ROWS_V2
            | EventType::UPDATE_ROWS_V2
            | EventType::DELETE_ROWS_V2 => {
                let phl = self.fde(pos)?.post_header_len(t).unwrap_or(8);
                let id = Cursor::new(body)
                    .table_id(phl)
                    .map_err(|c| self.decode_error(pos, t, c))?;
                f.saw_rows = true;
                self.table_ids.contains(&id)
            }
            EventType::XID => f.saw_rows && !self.ids.is_empty(),
            t if t.is_control() && t != EventType::FORMAT_DESCRIPTION => return Ok(None),
            _ => false,
        };
        if !fits {
            let at = f.at;
            *fast = None;
            return Ok(self.replay(b, at, pos + size)?.map(Done::Cut));
        }
        f.bytes += size;
        if t != EventType::XID {
            return Ok(None);
        }
        let f = fast.take().expect("a fast group");
        let set = self.sets.set_of(&mut self.ids);
        let header_end = u32::from_le_bytes(bytes[13..17].try_into().expect("4 bytes"));
        Ok(Some(Done::Fast {
            gtid: f.gtid,
            start: f.start,
            end: if header_end != 0 {
                u64::from(header_end)
            } else {
                pos + size
            },
            bytes: f.bytes,
            set,
        }))
    }

    /// A GTID event that starts a fast group, or `None` when its flags
    /// (standalone, DDL, XA) or a server start before it make it one for
    /// the cutter.
    fn fast_start(&mut self, bytes: &[u8], pos: u64, size: u64) -> Result<Option<Fast>, ReadError> {
        if self.cutter.primary_started() {
            return Ok(None);
        }
        let body = &bytes[HEADER_LEN..bytes.len() - self.csum];
        let g = GtidEvent::decode(body).map_err(|c| self.decode_error(pos, EventType::GTID, c))?;
        if g.standalone() || g.ddl() || g.xa() {
            return Ok(None);
        }
        let server = u32::from_le_bytes(bytes[5..9].try_into().expect("4 bytes"));
        let log_pos = u32::from_le_bytes(bytes[13..17].try_into().expect("4 bytes"));
        let end = if log_pos != 0 {
            u64::from(log_pos)
        } else {
            pos + size
        };
        self.table_ids.clear();
        self.ids.clear();
        Ok(Some(Fast {
            gtid: MariaGtid {
                domain: g.domain_id,
                server,
                seq: g.seq_no,
            },
            at: pos,
            start: end - size,
            bytes: size,
            saw_rows: false,
        }))
    }

    /// The view of a completed group.
    fn view(&mut self, d: &Done) -> Result<View<'_>, CatchupError> {
        Ok(match d {
            Done::Fast {
                gtid,
                start,
                end,
                bytes,
                set,
            } => View {
                gtid: *gtid,
                file: &self.name,
                start: *start,
                end: *end,
                bytes: *bytes,
                shards: Some(&self.sets.sets[*set as usize]),
                set: Some(*set),
            },
            Done::Cut(g) => {
                let Some(gtid) = g.maria_gtid() else {
                    return Err(CatchupError::NoGtid { pos: g.start() });
                };
                let set = match self.map.placement(g) {
                    Placement::Shards(s) => Some(self.sets.set_of_shards(s)),
                    Placement::Barrier(_) => None,
                };
                View {
                    gtid,
                    file: &self.name,
                    start: g.start_pos,
                    end: g.end_pos,
                    bytes: g.event_len(),
                    shards: set.map(|s| &self.sets.sets[s as usize][..]),
                    set,
                }
            }
        })
    }
}
