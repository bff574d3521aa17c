//! Streams events from binlog or relay-log files, in order.
//!
//! # What it guarantees
//!
//! 1. Every event it yields is whole and, when the file's Format_description
//!    event (FDE) announces CRC32, its checksum has been verified. A mismatch
//!    is an error naming the file and position; nothing after it is yielded.
//! 2. It never yields a partial trailing event. In follow mode it waits for
//!    the writer to finish the event; otherwise, after a short grace period
//!    for a writer that is finishing it ([`ReaderOptions::partial_grace`]),
//!    the stream ends with
//!    [`ReadError::Truncated`] naming the file and position.
//! 3. Files come from an explicit list, or from a directory's index file
//!    (re-read whenever the current file is exhausted, so new files appear).
//! 4. Each event is also placed in the *primary's* coordinates
//!    ([`RawEvent::origin_file`], [`RawEvent::origin_end`]): in a binlog or a
//!    mirror they are the file's own; in a relay log the file name comes from
//!    the primary's Rotate events (those whose server id is not the relay
//!    log's own) and the end position from each event's `log_pos`.
//!
//! # Follow mode
//!
//! At the end of the last file the reader sleeps (1 ms doubling up to
//! [`ReaderOptions::poll`]) and looks again for more bytes or a new file in
//! the index; a set [`ReaderOptions::stop`] flag ends the stream at the next
//! look. It never spins.
//!
//! # Memory
//!
//! One read buffer per reader, as large as the largest event seen (at least
//! 1 MiB); it does not grow with the file.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::checksum::{self, ChecksumError};
use super::constants::{EventType, CHECKSUM_ALG_CRC32, HEADER_LEN, MAGIC, MAX_EVENT_SIZE};
use super::error::ReadError;
use super::event::{Event, EventHeader};
use super::events::{FormatDescription, GtidEvent, GtidListEvent, RotateEvent};
use crate::position::{BinlogPos, MariaGtid, StartAt};

const MIN_BUF: usize = 1 << 20;
/// Interval between looks at a partial trailing event (see
/// [`ReaderOptions::partial_grace`]).
const GRACE_LOOK: Duration = Duration::from_millis(20);

/// Where the files come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// These files, in this order.
    Files(Vec<PathBuf>),
    /// The files a directory's index file lists, in its order. `index` is the
    /// index file's path; [`Source::dir`] finds it.
    Index(PathBuf),
}

impl Source {
    /// The binlog of directory `dir`: the one `*.index` file in it.
    pub fn dir(dir: &Path) -> Result<Source, ReadError> {
        let rd = std::fs::read_dir(dir).map_err(|e| ReadError::Io {
            path: dir.to_path_buf(),
            error: e,
        })?;
        let mut found: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "index"))
            .collect();
        found.sort();
        match found.len() {
            1 => Ok(Source::Index(found.remove(0))),
            0 => Err(ReadError::Index {
                path: dir.to_path_buf(),
                what: "no *.index file in this directory: pass the binlog files or the index file"
                    .into(),
            }),
            _ => Err(ReadError::Index {
                path: dir.to_path_buf(),
                what: format!(
                    "several index files ({}): pass the one to read",
                    found
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    /// The binlog of directory `dir` once it has one: waits (with a log
    /// line, then one a minute) while `dir` does not exist or holds no
    /// `*.index` file yet — a mirror started at the same time has not
    /// written its first file. `None` when `stop` is set meanwhile.
    pub fn wait_for_dir(dir: &Path, stop: &AtomicBool) -> Result<Option<Source>, ReadError> {
        let started = std::time::Instant::now();
        let mut told: Option<std::time::Instant> = None;
        loop {
            if dir.is_dir() {
                match Source::dir(dir) {
                    Err(ReadError::Index { what, .. }) if what.starts_with("no *.index") => {}
                    found => {
                        if told.is_some() {
                            tracing::info!(dir = %dir.display(), "the binlog index appeared; starting");
                        }
                        return found.map(Some);
                    }
                }
            }
            if told.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                tracing::info!(
                    dir = %dir.display(),
                    waited_s = started.elapsed().as_secs(),
                    "waiting for the binlog to appear (no *.index file yet; is the mirror running?)"
                );
                told = Some(std::time::Instant::now());
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Turns command-line paths into a source: one directory, one `*.index`
    /// file, or binlog files.
    pub fn from_paths(paths: &[PathBuf]) -> Result<Source, ReadError> {
        match paths {
            [] => Err(ReadError::Index {
                path: PathBuf::from("."),
                what: "no binlog path given".into(),
            }),
            [p] if p.is_dir() => Source::dir(p),
            [p] if p.extension().is_some_and(|x| x == "index") => Ok(Source::Index(p.clone())),
            ps => {
                if let Some(d) = ps.iter().find(|p| p.is_dir()) {
                    return Err(ReadError::Index {
                        path: d.clone(),
                        what: "a directory can only be given alone".into(),
                    });
                }
                Ok(Source::Files(ps.to_vec()))
            }
        }
    }

    /// The file list as it stands now.
    fn list(&self) -> Result<Vec<PathBuf>, ReadError> {
        match self {
            Source::Files(v) => Ok(v.clone()),
            Source::Index(index) => read_index(index),
        }
    }
}

/// Reads an index file: one file per line, relative to the index's directory
/// (the server writes `./name`; only the file name is used).
pub fn read_index(index: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let text = std::fs::read_to_string(index).map_err(|e| ReadError::Io {
        path: index.to_path_buf(),
        error: e,
    })?;
    let dir = index.parent().unwrap_or(Path::new("."));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            Path::new(l)
                .file_name()
                .map(|n| dir.join(n))
                .ok_or_else(|| ReadError::Index {
                    path: index.to_path_buf(),
                    what: format!("line `{l}` names no file"),
                })
        })
        .collect()
}

/// How to read.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// Where to start.
    pub start: StartAt,
    /// Wait for more at the end instead of ending.
    pub follow: bool,
    /// Longest sleep between looks for growth in follow mode.
    pub poll: Duration,
    /// Set to end a follow-mode stream at the next look.
    pub stop: Option<Arc<AtomicBool>>,
    /// Without follow: how long a partial trailing event may take to be
    /// completed by its writer before it is a truncation (zero for files
    /// nobody writes).
    pub partial_grace: Duration,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            start: StartAt::Beginning,
            follow: false,
            poll: Duration::from_millis(50),
            stop: None,
            partial_grace: Duration::from_millis(200),
        }
    }
}

/// One event as read from a file, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct RawEvent<'r> {
    /// The file it was read from (name only).
    pub file: &'r Arc<str>,
    /// Offset of its first byte in that file.
    pub pos: u64,
    /// Its header.
    pub header: EventHeader,
    /// The whole event: header, body, checksum.
    pub bytes: &'r [u8],
    /// Bytes of checksum at its end (0 or 4).
    pub checksum_len: usize,
    /// The format description in force for it.
    pub fde: &'r Arc<FormatDescription>,
    /// The primary's file that holds it (differs from `file` in relay logs).
    pub origin_file: &'r Arc<str>,
    /// Its end position in the primary's file.
    pub origin_end: u64,
}

impl<'r> RawEvent<'r> {
    /// Offset just past it in its file.
    pub fn end_pos(&self) -> u64 {
        self.pos + self.bytes.len() as u64
    }

    /// Its start position in the primary's file.
    pub fn origin_start(&self) -> u64 {
        self.origin_end.saturating_sub(self.bytes.len() as u64)
    }

    /// Its type.
    pub fn event_type(&self) -> EventType {
        self.header.event_type
    }

    /// The body: without header and checksum.
    pub fn body(&self) -> &'r [u8] {
        &self.bytes[HEADER_LEN..self.bytes.len() - self.checksum_len]
    }

    /// Decodes it; an error names file and position.
    pub fn decode(&self) -> Result<Event<'r>, ReadError> {
        let t = self.header.event_type;
        let r = if t == EventType::FORMAT_DESCRIPTION {
            FormatDescription::decode(&self.bytes[HEADER_LEN..]).map(Event::FormatDescription)
        } else {
            Event::decode(t, self.body(), self.fde)
        };
        r.map_err(|cause| ReadError::Decode {
            file: self.file.to_string(),
            pos: self.pos,
            type_name: t.name(),
            cause,
        })
    }

    /// Its place, for messages: `file:pos`.
    pub fn place(&self) -> BinlogPos {
        BinlogPos::new(self.file.to_string(), self.pos)
    }
}

/// An open file being read.
struct OpenFile {
    name: Arc<str>,
    path: PathBuf,
    file: File,
    /// `buf[head..tail]` holds file bytes starting at offset `at`.
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    at: u64,
    /// Server id of the file's first FDE: the writer of this file.
    owner: u32,
    /// The magic bytes have been read and checked.
    magic: bool,
}

enum Next {
    /// A complete event of this size starts at `head`.
    Event(usize),
    /// End of data: `have` bytes of a partial event (0 at a clean boundary).
    End { have: u64, need: u64 },
}

impl OpenFile {
    fn open(path: &Path) -> Result<OpenFile, ReadError> {
        let file = File::open(path).map_err(|e| ReadError::Io {
            path: path.to_path_buf(),
            error: e,
        })?;
        let name: Arc<str> = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string())
            .into();
        Ok(OpenFile {
            name,
            path: path.to_path_buf(),
            file,
            buf: vec![0; MIN_BUF],
            head: 0,
            tail: 0,
            at: 0,
            owner: 0,
            magic: false,
        })
    }

    fn io(&self, e: io::Error) -> ReadError {
        ReadError::Io {
            path: self.path.clone(),
            error: e,
        }
    }

    /// Reads until at least `n` bytes are buffered or the file ends.
    ///
    /// The buffer grows only as far as the file has bytes, so a corrupt size
    /// field cannot make the reader allocate what is not there; a growing
    /// file (follow mode) grows it again at the next call.
    fn fill(&mut self, n: usize) -> Result<(), ReadError> {
        if self.tail - self.head >= n {
            return Ok(());
        }
        if self.head + n > self.buf.len() {
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.at += self.head as u64;
            self.head = 0;
            if n > self.buf.len() {
                let len = self.file.metadata().map_err(|e| self.io(e))?.len();
                let in_file = usize::try_from(len.saturating_sub(self.at)).unwrap_or(usize::MAX);
                let want = n.min(in_file);
                if want > self.buf.len() {
                    self.buf.resize(want.next_power_of_two().min(n), 0);
                }
            }
        }
        while self.tail - self.head < n && self.tail < self.buf.len() {
            match self.file.read(&mut self.buf[self.tail..]) {
                Ok(0) => break,
                Ok(k) => self.tail += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io(e)),
            }
        }
        Ok(())
    }

    /// Offset of `buf[head]` in the file.
    fn pos(&self) -> u64 {
        self.at + self.head as u64
    }

    fn peek(&mut self) -> Result<Next, ReadError> {
        self.fill(HEADER_LEN)?;
        let have = (self.tail - self.head) as u64;
        if have < HEADER_LEN as u64 {
            return Ok(Next::End {
                have,
                need: HEADER_LEN as u64,
            });
        }
        let size = u32::from_le_bytes([
            self.buf[self.head + 9],
            self.buf[self.head + 10],
            self.buf[self.head + 11],
            self.buf[self.head + 12],
        ]);
        if size < HEADER_LEN as u32 || size > MAX_EVENT_SIZE {
            return Err(ReadError::BadHeader {
                file: self.name.to_string(),
                pos: self.pos(),
                what: format!("event size {size} (type {})", self.buf[self.head + 4]),
            });
        }
        let size = size as usize;
        self.fill(size)?;
        let have = (self.tail - self.head) as u64;
        if have < size as u64 {
            return Ok(Next::End {
                have,
                need: size as u64,
            });
        }
        Ok(Next::Event(size))
    }
}

/// Streams events; see the module doc.
pub struct BinlogReader {
    source: Source,
    opts: ReaderOptions,
    /// Files to read, as last listed.
    files: Vec<PathBuf>,
    /// Index in `files` of the current file.
    idx: usize,
    cur: Option<OpenFile>,
    fde: Option<Arc<FormatDescription>>,
    /// Primary's file name learned from a relay log's foreign Rotate.
    relay_origin: Option<Arc<str>>,
    /// Position or GTID to skip to before yielding.
    skip_to: Option<StartAt>,
}

impl BinlogReader {
    /// A reader over `source`, positioned as `opts.start` says.
    pub fn open(source: Source, opts: ReaderOptions) -> Result<BinlogReader, ReadError> {
        let files = source.list()?;
        let mut r = BinlogReader {
            source,
            opts,
            files,
            idx: 0,
            cur: None,
            fde: None,
            relay_origin: None,
            skip_to: None,
        };
        match r.opts.start.clone() {
            StartAt::Beginning => {}
            StartAt::Pos(p) => {
                r.idx = r
                    .files
                    .iter()
                    .position(|f| f.file_name().is_some_and(|n| n.to_string_lossy() == p.file))
                    .ok_or_else(|| ReadError::StartNotFound {
                        what: format!("{p}: no file {} in the source", p.file),
                    })?;
                r.skip_to = Some(StartAt::Pos(p));
            }
            StartAt::Gtid(g) => {
                r.idx = r.file_for_gtid(g)?;
                r.skip_to = Some(StartAt::Gtid(g));
            }
        }
        Ok(r)
    }

    /// The format description in force, once the first file's FDE was read.
    pub fn format(&self) -> Option<&Arc<FormatDescription>> {
        self.fde.as_ref()
    }

    /// The file being read and the offset of the next event in it.
    pub fn position(&self) -> Option<BinlogPos> {
        self.cur
            .as_ref()
            .map(|f| BinlogPos::new(f.name.to_string(), f.pos()))
    }

    /// The latest file whose GTID_LIST shows `g`'s domain before `g` (or not
    /// at all): `g` can only be in that file or a later one.
    fn file_for_gtid(&self, g: MariaGtid) -> Result<usize, ReadError> {
        for (i, path) in self.files.iter().enumerate().rev() {
            match gtid_list_of(path)? {
                None => {}
                Some(list) => {
                    let before = list.iter().find(|x| x.domain == g.domain);
                    if before.is_none_or(|x| x.seq < g.seq) {
                        return Ok(i);
                    }
                }
            }
        }
        Ok(0)
    }

    fn stopped(&self) -> bool {
        self.opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Opens `files[idx]` and reads its magic.
    fn open_current(&mut self) -> Result<(), ReadError> {
        let path = &self.files[self.idx];
        let mut f = OpenFile::open(path)?;
        f.fill(MAGIC.len())?;
        if f.tail < MAGIC.len() && self.opts.follow && self.idx + 1 == self.files.len() {
            // A brand-new file whose magic is not written yet.
            self.cur = Some(f);
            return Ok(());
        }
        if f.buf[..f.tail.min(4)] != MAGIC {
            return Err(ReadError::BadMagic {
                file: f.name.to_string(),
            });
        }
        f.head = MAGIC.len();
        f.magic = true;
        if self.relay_origin.is_none() {
            self.fde = None;
        }
        self.cur = Some(f);
        Ok(())
    }

    /// Whether a file after the current one exists (re-reading the index).
    fn has_next_file(&mut self) -> Result<bool, ReadError> {
        if self.idx + 1 < self.files.len() {
            return Ok(true);
        }
        if matches!(self.source, Source::Index(_)) {
            let listed = self.source.list()?;
            if listed.len() > self.files.len() && listed[..self.files.len()] == self.files[..] {
                self.files = listed;
            } else if listed[..] != self.files[..] {
                let cur = &self.files[self.idx];
                if let Some(i) = listed.iter().position(|p| p == cur) {
                    self.idx = i;
                    self.files = listed;
                }
            }
        }
        Ok(self.idx + 1 < self.files.len())
    }

    /// The next event, or `None` at the end of the stream.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<RawEvent<'_>>, ReadError> {
        let mut sleep = Duration::from_millis(1);
        let mut grace = Duration::ZERO;
        let size = loop {
            if self.cur.is_none() {
                if self.idx >= self.files.len() {
                    return Ok(None);
                }
                self.open_current()?;
            }
            let f = self.cur.as_mut().expect("opened above");
            if !f.magic {
                // Waiting for the magic of a brand-new file.
                f.fill(MAGIC.len())?;
                if f.tail >= MAGIC.len() {
                    if f.buf[..4] != MAGIC {
                        return Err(ReadError::BadMagic {
                            file: f.name.to_string(),
                        });
                    }
                    f.head = MAGIC.len();
                    f.magic = true;
                    continue;
                }
            } else {
                match f.peek()? {
                    Next::Event(size) => {
                        if self.accept(size)? {
                            break size;
                        }
                        sleep = Duration::from_millis(1);
                        continue;
                    }
                    Next::End { have, need } => {
                        // Starting exactly at the end of a file is starting
                        // at a boundary with nothing (yet) after it.
                        if have == 0 {
                            if let Some(StartAt::Pos(p)) = &self.skip_to {
                                let f = self.cur.as_ref().expect("open");
                                if *p.file == *f.name && p.pos == f.pos() {
                                    self.skip_to = None;
                                }
                            }
                        }
                        if self.has_next_file()? {
                            // The current file is complete: a partial event is corruption.
                            let f = self.cur.as_mut().expect("open");
                            f.fill(usize::try_from(need).unwrap_or(usize::MAX))?;
                            if (f.tail - f.head) as u64 == have {
                                if have > 0 {
                                    return Err(ReadError::Truncated {
                                        file: f.name.to_string(),
                                        pos: f.pos(),
                                        needed: need,
                                        available: have,
                                    });
                                }
                                self.idx += 1;
                                self.cur = None;
                            }
                            continue;
                        }
                        if !self.opts.follow {
                            if have > 0 {
                                // A writer finishes an event within moments:
                                // give it that long before calling it truncated.
                                if grace < self.opts.partial_grace {
                                    grace += GRACE_LOOK;
                                    std::thread::sleep(GRACE_LOOK);
                                    continue;
                                }
                                let f = self.cur.as_ref().expect("open");
                                return Err(ReadError::Truncated {
                                    file: f.name.to_string(),
                                    pos: f.pos(),
                                    needed: need,
                                    available: have,
                                });
                            }
                            return self.end_of_stream();
                        }
                    }
                }
            }
            // Follow mode at the end of the last file: wait for growth.
            if self.stopped() {
                return Ok(None);
            }
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(self.opts.poll);
        };
        Ok(Some(self.current_event(size)))
    }

    /// At the end without follow: a start that was never reached is an error.
    fn end_of_stream(&mut self) -> Result<Option<RawEvent<'_>>, ReadError> {
        match self.skip_to.take() {
            None => Ok(None),
            Some(StartAt::Pos(p)) => Err(ReadError::StartNotFound {
                what: format!("{p} is past the end of the file"),
            }),
            Some(StartAt::Gtid(g)) => Err(ReadError::StartNotFound {
                what: format!("GTID {g} is not in the source"),
            }),
            Some(StartAt::Beginning) => Ok(None),
        }
    }

    /// Verifies and books the complete event at `head`; returns whether it
    /// is to be yielded (false while skipping to the start).
    fn accept(&mut self, size: usize) -> Result<bool, ReadError> {
        let f = self.cur.as_mut().expect("open");
        let pos = f.pos();
        let bytes = &f.buf[f.head..f.head + size];
        let header = EventHeader::decode(bytes).map_err(|cause| ReadError::Decode {
            file: f.name.to_string(),
            pos,
            type_name: "header",
            cause,
        })?;
        let t = header.event_type;
        let first = pos == MAGIC.len() as u64;
        if first && t == EventType::START_V3 {
            return Err(ReadError::Unsupported {
                file: f.name.to_string(),
                pos,
                what: "binlog format v1/v3 (MySQL 3.23–4.x); only v4 is supported".into(),
            });
        }
        if first && t != EventType::FORMAT_DESCRIPTION {
            return Err(ReadError::NoFormatDescription {
                file: f.name.to_string(),
                pos,
                type_code: t.0,
            });
        }
        if t == EventType::FORMAT_DESCRIPTION {
            let mut fde = FormatDescription::decode(&bytes[HEADER_LEN..]).map_err(|cause| {
                ReadError::Decode {
                    file: f.name.to_string(),
                    pos,
                    type_name: t.name(),
                    cause,
                }
            })?;
            if fde.binlog_version != 4 {
                return Err(ReadError::Unsupported {
                    file: f.name.to_string(),
                    pos,
                    what: format!("binlog version {}", fde.binlog_version),
                });
            }
            if fde.checksum_alg == CHECKSUM_ALG_CRC32 {
                verify_crc(&f.name, pos, t, bytes)?;
            }
            fde.raw_event = bytes.to_vec();
            if first {
                f.owner = header.server_id;
            }
            self.fde = Some(Arc::new(fde));
        } else {
            let fde = self
                .fde
                .as_ref()
                .ok_or_else(|| ReadError::NoFormatDescription {
                    file: f.name.to_string(),
                    pos,
                    type_code: t.0,
                })?;
            let csum = fde.checksum_len();
            if size < HEADER_LEN + csum {
                return Err(ReadError::BadHeader {
                    file: f.name.to_string(),
                    pos,
                    what: format!("event size {size} leaves no room for its checksum"),
                });
            }
            if csum > 0 {
                verify_crc(&f.name, pos, t, bytes)?;
            }
            if t == EventType::START_ENCRYPTION {
                return Err(ReadError::Unsupported {
                    file: f.name.to_string(),
                    pos,
                    what: "the binlog is encrypted (Start_encryption event); parapply needs \
                           unencrypted binlogs"
                        .into(),
                });
            }
            if t == EventType::ROTATE && header.server_id != f.owner {
                let phl = fde.post_header_len(t).unwrap_or(8);
                let body = &bytes[HEADER_LEN..size - csum];
                let rot = RotateEvent::decode(body, phl).map_err(|cause| ReadError::Decode {
                    file: f.name.to_string(),
                    pos,
                    type_name: t.name(),
                    cause,
                })?;
                self.relay_origin = Some(String::from_utf8_lossy(rot.next_file).into());
            }
        }
        let yield_it = match &self.skip_to {
            None => true,
            Some(StartAt::Pos(p)) => {
                let end = pos + size as u64;
                if pos >= p.pos {
                    if pos != p.pos {
                        return Err(ReadError::StartNotFound {
                            what: format!("{p} is not an event boundary (an event ends at {pos})"),
                        });
                    }
                    true
                } else if end > p.pos {
                    return Err(ReadError::StartNotFound {
                        what: format!(
                            "{p} is not an event boundary (the event at {pos} ends at {end})"
                        ),
                    });
                } else {
                    false
                }
            }
            Some(StartAt::Gtid(g)) => {
                if t == EventType::GTID {
                    let fde = self.fde.as_ref().expect("checked");
                    let body = &bytes[HEADER_LEN..size - fde.checksum_len()];
                    let ev = GtidEvent::decode(body).map_err(|cause| ReadError::Decode {
                        file: f.name.to_string(),
                        pos,
                        type_name: t.name(),
                        cause,
                    })?;
                    if ev.domain_id == g.domain && ev.seq_no == g.seq {
                        if header.server_id != g.server {
                            return Err(ReadError::StartNotFound {
                                what: format!(
                                    "GTID {g}: {}:{pos} has {}-{}-{} (same domain and \
                                     sequence number, another server)",
                                    f.name, ev.domain_id, header.server_id, ev.seq_no
                                ),
                            });
                        }
                        true
                    } else {
                        false
                    }
                } else {
                    false
                }
            }
            Some(StartAt::Beginning) => true,
        };
        if yield_it {
            self.skip_to = None;
        } else {
            let f = self.cur.as_mut().expect("open");
            f.head += size;
        }
        Ok(yield_it)
    }

    /// Builds the event at `head` and advances past it.
    fn current_event(&mut self, size: usize) -> RawEvent<'_> {
        let f = self.cur.as_mut().expect("open");
        let start = f.head;
        let pos = f.pos();
        f.head += size;
        let f = self.cur.as_ref().expect("open");
        let bytes = &f.buf[start..start + size];
        let header = EventHeader::decode(bytes).expect("decoded in accept");
        let fde = self.fde.as_ref().expect("set in accept");
        let checksum_len = if header.event_type == EventType::FORMAT_DESCRIPTION {
            fde.own_checksum_len()
        } else {
            fde.checksum_len()
        };
        let origin_file = self.relay_origin.as_ref().unwrap_or(&f.name);
        let origin_end = if header.log_pos != 0 {
            u64::from(header.log_pos)
        } else {
            pos + size as u64
        };
        RawEvent {
            file: &f.name,
            pos,
            header,
            bytes,
            checksum_len,
            fde,
            origin_file,
            origin_end,
        }
    }
}

/// Checks an event's CRC32 ([`checksum::verify`]), naming the event's place.
fn verify_crc(file: &str, pos: u64, t: EventType, bytes: &[u8]) -> Result<(), ReadError> {
    match checksum::verify(bytes) {
        Ok(()) => Ok(()),
        Err(ChecksumError::Mismatch { stored, computed }) => Err(ReadError::Checksum {
            file: file.to_string(),
            pos,
            type_name: t.name(),
            stored,
            computed,
        }),
        Err(e @ ChecksumError::TooShort { .. }) => Err(ReadError::BadHeader {
            file: file.to_string(),
            pos,
            what: e.to_string(),
        }),
    }
}

/// The GTID_LIST at the start of a file, if it has one (MariaDB binlogs do).
pub fn gtid_list_of(path: &Path) -> Result<Option<Vec<MariaGtid>>, ReadError> {
    let opts = ReaderOptions::default();
    let mut r = BinlogReader::open(Source::Files(vec![path.to_path_buf()]), opts)?;
    while let Some(ev) = r.next()? {
        match ev.event_type() {
            EventType::GTID_LIST => {
                return match ev.decode()? {
                    Event::GtidList(GtidListEvent { gtids, .. }) => Ok(Some(gtids)),
                    _ => Ok(None),
                }
            }
            t if t.is_control() => continue,
            _ => return Ok(None),
        }
    }
    Ok(None)
}
