//! What the server may serve, and reading it.
//!
//! [`Published`] is the contract between the writer of a mirror and the
//! server: the files of the mirror in index order, and how many bytes of
//! the last one may be served. `parapply mirror --serve` advances it from
//! the mirror's own writer, only after the bytes are fsynced (or written,
//! under `--sync never`); `parapply serve --dir` advances it from a poller
//! that watches the directory. Dump threads wait on it for growth.
//!
//! [`FileReader`] reads a binlog file through a bounded buffer;
//! [`BinlogState`] is MariaDB's binlog GTID state (last seq_no per domain
//! and server, and each domain's last GTID), read from a file's
//! Gtid_list event and the GTID events after it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::binlog::constants::{
    EventType, CHECKSUM_ALG_CRC32, CHECKSUM_ALG_OFF, CHECKSUM_LEN, HEADER_LEN, MAGIC,
    MAX_EVENT_SIZE,
};
use crate::position::MariaGtid;

/// The servable part of a mirror; see the module doc.
#[derive(Debug, Default)]
pub struct Published {
    state: Mutex<Snapshot>,
    cond: Condvar,
}

/// One view of [`Published`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The mirror's files in index order (names, no directory).
    pub files: Vec<String>,
    /// Bytes of the last file that may be served.
    pub last_len: u64,
    /// Grows with every change.
    pub version: u64,
}

/// Where a file stands in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileView {
    /// The last file: this many bytes may be served; more may come.
    Active(u64),
    /// A file followed by `next`: complete on disk.
    Closed {
        /// The next file.
        next: String,
    },
    /// Not in the mirror.
    Missing,
}

impl Published {
    /// An empty mirror.
    pub fn new() -> Self {
        Published::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        // A panic elsewhere while holding the lock leaves a usable snapshot.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the whole view (recovery, the directory poller).
    pub fn set(&self, files: Vec<String>, last_len: u64) {
        let mut s = self.lock();
        if s.files == files && s.last_len == last_len {
            return;
        }
        s.files = files;
        s.last_len = last_len;
        s.version += 1;
        drop(s);
        self.cond.notify_all();
    }

    /// `file` may be served up to `len` bytes; a file not listed yet is
    /// appended (it follows the others).
    pub fn advance(&self, file: &str, len: u64) {
        let mut s = self.lock();
        if s.files.last().map(String::as_str) != Some(file) {
            s.files.push(file.to_owned());
        } else if s.last_len == len {
            return;
        }
        s.last_len = len;
        s.version += 1;
        drop(s);
        self.cond.notify_all();
    }

    /// The current view.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().clone()
    }

    /// Where `file` stands, and the version of the view.
    pub fn view(&self, file: &str) -> (FileView, u64) {
        let s = self.lock();
        let v = match s.files.iter().position(|f| f == file) {
            None => FileView::Missing,
            Some(i) if i + 1 == s.files.len() => FileView::Active(s.last_len),
            Some(i) => FileView::Closed {
                next: s.files[i + 1].clone(),
            },
        };
        (v, s.version)
    }

    /// Waits until the version differs from `version` or `timeout` passes.
    pub fn wait_change(&self, version: u64, timeout: Duration) {
        let s = self.lock();
        if s.version != version {
            return;
        }
        let _ = self
            .cond
            .wait_timeout_while(s, timeout, |s| s.version == version);
    }

    /// Wakes every waiter (at shutdown).
    pub fn wake_all(&self) {
        self.cond.notify_all();
    }
}

/// Reads the directory's index and the last file's length into `p` (for a
/// mirror written by another process, or a frozen one).
pub fn poll_dir(dir: &Path, p: &Published) -> io::Result<()> {
    let Some(index) = find_index(dir)? else {
        p.set(Vec::new(), 0);
        return Ok(());
    };
    let text = std::fs::read_to_string(&index)?;
    let files: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            Path::new(l)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .collect();
    let last_len = match files.last() {
        Some(f) => match std::fs::metadata(dir.join(f)) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        },
        None => 0,
    };
    p.set(files, last_len);
    Ok(())
}

/// The one `*.index` file of a mirror directory.
pub fn find_index(dir: &Path) -> io::Result<Option<PathBuf>> {
    let mut found = None;
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "index") {
            if found.is_some() {
                return Err(io::Error::other(format!(
                    "{}: several *.index files; a mirror directory holds one binlog",
                    dir.display()
                )));
            }
            found = Some(path);
        }
    }
    Ok(found)
}

/// Size of [`FileReader`]'s buffer: events up to this size are read whole;
/// larger ones are streamed through it.
pub const READ_BUF: usize = 256 * 1024;

/// A binlog file read through a bounded buffer.
pub struct FileReader {
    file: File,
    /// The file's path, for messages.
    pub path: PathBuf,
    buf: Vec<u8>,
    start: u64,
}

impl FileReader {
    /// Opens `path`.
    pub fn open(path: PathBuf) -> io::Result<Self> {
        Ok(FileReader {
            file: File::open(&path)?,
            path,
            buf: Vec::with_capacity(READ_BUF),
            start: 0,
        })
    }

    /// The file's length on disk.
    pub fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Bytes `[pos, pos + n)` of the file (`n` ≤ [`READ_BUF`]), reading
    /// ahead as far as `limit`.
    pub fn get(&mut self, pos: u64, n: usize, limit: u64) -> io::Result<&[u8]> {
        let end = pos + n as u64;
        if n > READ_BUF || end > limit {
            return Err(io::Error::other(format!(
                "internal: read of {n} bytes at {pos} beyond the limit {limit}"
            )));
        }
        if pos < self.start || end > self.start + self.buf.len() as u64 {
            let want = (limit - pos).min(READ_BUF as u64) as usize;
            self.buf.resize(want, 0);
            let mut got = 0;
            while got < n {
                let k = self.file.read_at(&mut self.buf[got..], pos + got as u64)?;
                if k == 0 {
                    break;
                }
                got += k;
            }
            self.buf.truncate(got);
            self.start = pos;
            if got < n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} ends at {} inside the bytes it should hold up to {end}",
                        self.path.display(),
                        pos + got as u64
                    ),
                ));
            }
        }
        let at = (pos - self.start) as usize;
        Ok(&self.buf[at..at + n])
    }

    /// The bytes from `pos` that are buffered, at least `n` of them
    /// (`n` ≤ [`READ_BUF`]; reading ahead as far as `limit` when fewer are
    /// buffered) and at most up to `limit`.
    pub fn ahead(&mut self, pos: u64, n: usize, limit: u64) -> io::Result<&[u8]> {
        self.get(pos, n, limit)?;
        let at = (pos - self.start) as usize;
        let end = (limit - self.start).min(self.buf.len() as u64) as usize;
        Ok(&self.buf[at..end])
    }

    /// Reads `[pos, pos + n)` (any size) in pieces of at most
    /// [`READ_BUF`], handing each to `each`.
    pub fn stream(
        &mut self,
        pos: u64,
        n: u64,
        mut each: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut at = pos;
        let end = pos + n;
        while at < end {
            let k = (end - at).min(READ_BUF as u64) as usize;
            let piece = self.get(at, k, end)?;
            each(piece)?;
            at += k as u64;
        }
        Ok(())
    }
}

/// The fixed fields of an event header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Event type.
    pub t: EventType,
    /// `server_id`.
    pub server_id: u32,
    /// `event_size`.
    pub size: u32,
    /// `log_pos` (end position in the primary's file).
    pub log_pos: u32,
    /// Flags.
    pub flags: u16,
}

impl Header {
    /// Decodes the first 19 bytes of `b`.
    pub fn parse(b: &[u8]) -> Option<Header> {
        let h = b.get(..HEADER_LEN)?;
        let u32at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Some(Header {
            t: EventType(h[4]),
            server_id: u32at(5),
            size: u32at(9),
            log_pos: u32at(13),
            flags: u16::from_le_bytes([h[17], h[18]]),
        })
    }

    /// Whether the event at `pos` is plausible as a mirror event: a sane
    /// size and the `log_pos` of an event of the primary's own file.
    pub fn fits_at(&self, pos: u64) -> bool {
        self.size as usize >= HEADER_LEN
            && self.size <= MAX_EVENT_SIZE
            && u64::from(self.log_pos) == pos + u64::from(self.size)
    }
}

/// The parts of a file's Format_description event the server needs.
#[derive(Debug, Clone)]
pub struct Fde {
    /// The whole event as stored (at offset 4).
    pub raw: Vec<u8>,
    /// The checksum algorithm of the file's events.
    pub alg: u8,
    /// The primary's version string.
    pub server_version: String,
    /// The primary's server id (of the FDE's header).
    pub server_id: u32,
}

impl Fde {
    /// Whether events of this file end with a CRC32.
    pub fn crc32(&self) -> bool {
        self.alg == CHECKSUM_ALG_CRC32
    }
}

/// Reads the FDE at offset 4 of a file of which `limit` bytes are valid.
pub fn read_fde(r: &mut FileReader, limit: u64) -> Result<Fde, String> {
    let where_ = r.path.display().to_string();
    if limit < (MAGIC.len() + HEADER_LEN) as u64 {
        return Err(format!("{where_} holds no Format_description event yet"));
    }
    let magic = r.get(0, 4, limit).map_err(|e| e.to_string())?;
    if magic != MAGIC {
        return Err(format!(
            "{where_} does not start with the binlog magic bytes"
        ));
    }
    let h = Header::parse(r.get(4, HEADER_LEN, limit).map_err(|e| e.to_string())?)
        .ok_or_else(|| format!("{where_}: short header"))?;
    if h.t != EventType::FORMAT_DESCRIPTION || h.size as usize > 4096 || (h.size as usize) < 80 {
        return Err(format!(
            "{where_}: no Format_description event at offset 4 (a {} event of {} bytes)",
            h.t, h.size
        ));
    }
    if 4 + u64::from(h.size) > limit {
        return Err(format!(
            "{where_}: its Format_description event is not whole yet"
        ));
    }
    let raw = r
        .get(4, h.size as usize, limit)
        .map_err(|e| e.to_string())?
        .to_vec();
    let fde = crate::binlog::FormatDescription::decode(&raw[HEADER_LEN..])
        .map_err(|e| format!("{where_}: malformed Format_description event: {e}"))?;
    let alg = fde.checksum_alg;
    let server_version = fde.server_version;
    Ok(Fde {
        raw,
        alg,
        server_version,
        server_id: h.server_id,
    })
}

/// MariaDB's binlog GTID state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BinlogState {
    /// Per domain: (server, seq_no), the most recently logged last.
    domains: BTreeMap<u32, Vec<(u32, u64)>>,
}

impl BinlogState {
    /// A GTID was logged.
    pub fn update(&mut self, g: MariaGtid) {
        let d = self.domains.entry(g.domain).or_default();
        d.retain(|&(s, _)| s != g.server);
        d.push((g.server, g.seq));
    }

    /// An event was read: a GTID event updates the state, others do not.
    pub fn note_event(&mut self, h: &Header, body: Option<&[u8]>) {
        if h.t == EventType::GTID {
            if let Some((seq, domain, _)) = body.and_then(parse_gtid_body) {
                self.update(MariaGtid {
                    domain,
                    server: h.server_id,
                    seq,
                });
            }
        }
    }

    /// The state a Gtid_list lists (in its order).
    pub fn from_list(list: &[MariaGtid]) -> Self {
        let mut s = BinlogState::default();
        for g in list {
            s.update(*g);
        }
        s
    }

    /// Every (domain, server) entry, domains ascending, each domain's last
    /// GTID last (the order of a Gtid_list event).
    pub fn to_list(&self) -> Vec<MariaGtid> {
        self.domains
            .iter()
            .flat_map(|(&domain, v)| {
                v.iter().map(move |&(server, seq)| MariaGtid {
                    domain,
                    server,
                    seq,
                })
            })
            .collect()
    }

    /// The seq_no logged last by `server` in `domain`.
    pub fn find(&self, domain: u32, server: u32) -> Option<u64> {
        self.domains
            .get(&domain)?
            .iter()
            .find(|&&(s, _)| s == server)
            .map(|&(_, q)| q)
    }

    /// The last GTID logged in `domain`.
    pub fn last_in_domain(&self, domain: u32) -> Option<MariaGtid> {
        let &(server, seq) = self.domains.get(&domain)?.last()?;
        Some(MariaGtid {
            domain,
            server,
            seq,
        })
    }

    /// Each domain's last GTID, as `@@gtid_binlog_pos` shows them.
    pub fn position(&self) -> String {
        self.domains
            .keys()
            .filter_map(|&d| self.last_in_domain(d))
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `seq_no`, `domain_id` and `flags2` of a GTID event body.
pub fn parse_gtid_body(body: &[u8]) -> Option<(u64, u32, u8)> {
    let b = body.get(..13)?;
    let seq = u64::from_le_bytes(b[..8].try_into().ok()?);
    let domain = u32::from_le_bytes(b[8..12].try_into().ok()?);
    Some((seq, domain, b[12]))
}

/// The GTIDs of a Gtid_list event body (without checksum).
pub fn parse_gtid_list_body(body: &[u8]) -> Option<Vec<MariaGtid>> {
    let n = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) & 0x0fff_ffff;
    let n = n as usize;
    let entries = body.get(4..)?;
    if entries.len() < n.checked_mul(16)? {
        return None;
    }
    Some(
        entries
            .chunks_exact(16)
            .take(n)
            .map(|e| MariaGtid {
                domain: u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
                server: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
                seq: u64::from_le_bytes(e[8..16].try_into().unwrap_or([0; 8])),
            })
            .collect(),
    )
}

/// Walks the events of a file from `from` up to `upto`, handing each
/// (position, header, and — for events of at most 64 KiB — the body
/// without checksum) to `each`. Stops at the first event not whole before
/// `upto`; returns the position reached.
pub fn walk(
    r: &mut FileReader,
    from: u64,
    upto: u64,
    crc32: bool,
    mut each: impl FnMut(u64, &Header, Option<&[u8]>) -> Result<(), String>,
) -> Result<u64, String> {
    let mut pos = from;
    while pos + HEADER_LEN as u64 <= upto {
        let h = Header::parse(r.get(pos, HEADER_LEN, upto).map_err(|e| e.to_string())?)
            .ok_or("short header")?;
        if !h.fits_at(pos) {
            return Err(format!(
                "{}: no valid event at {pos} (size {}, log_pos {})",
                r.path.display(),
                h.size,
                h.log_pos
            ));
        }
        let end = pos + u64::from(h.size);
        if end > upto {
            break;
        }
        let body_end = h.size as usize - if crc32 { CHECKSUM_LEN } else { 0 };
        if h.size as usize <= 64 * 1024 && body_end >= HEADER_LEN {
            let ev = r
                .get(pos, h.size as usize, upto)
                .map_err(|e| e.to_string())?;
            let body = ev[HEADER_LEN..body_end].to_vec();
            each(pos, &h, Some(&body))?;
        } else {
            each(pos, &h, None)?;
        }
        pos = end;
    }
    Ok(pos)
}

/// What the head of a binlog file says about the GTID state it starts at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStart {
    /// Its Gtid_list event: the state before the file's first GTID.
    Listed(BinlogState),
    /// The file has no Gtid_list event (a binlog older than MariaDB 10.0).
    Unlisted,
    /// The file is the growing last one and its Gtid_list is not servable
    /// yet (only the FDE is): nothing of this file is known.
    NotYet,
}

/// Reads the head of a file of which `limit` bytes may be served.
pub fn start_state(r: &mut FileReader, limit: u64) -> Result<FileStart, String> {
    let fde = read_fde(r, limit)?;
    let crc = fde.crc32();
    let mut pos = 4 + fde.raw.len() as u64;
    // The Gtid_list follows the FDE (after a Start_encryption, if any).
    for _ in 0..3 {
        if pos + HEADER_LEN as u64 > limit {
            return Ok(FileStart::NotYet);
        }
        let h = Header::parse(r.get(pos, HEADER_LEN, limit).map_err(|e| e.to_string())?)
            .ok_or("short header")?;
        if !h.fits_at(pos) {
            return Ok(FileStart::Unlisted);
        }
        if pos + u64::from(h.size) > limit {
            return Ok(FileStart::NotYet);
        }
        if h.t == EventType::GTID_LIST {
            if h.size as usize > READ_BUF {
                return Err(format!("{}: Gtid_list event too large", r.path.display()));
            }
            let ev = r
                .get(pos, h.size as usize, limit)
                .map_err(|e| e.to_string())?;
            let end = ev.len() - if crc { CHECKSUM_LEN } else { 0 };
            let list = ev
                .get(HEADER_LEN..end)
                .and_then(parse_gtid_list_body)
                .ok_or_else(|| format!("{}: malformed Gtid_list at {pos}", r.path.display()))?;
            return Ok(FileStart::Listed(BinlogState::from_list(&list)));
        }
        if h.t != EventType::START_ENCRYPTION {
            return Ok(FileStart::Unlisted);
        }
        pos += u64::from(h.size);
    }
    Ok(FileStart::Unlisted)
}

/// The GTID state at the end of the first `limit` bytes of a file: its
/// Gtid_list updated by its GTID events. A file whose head is not servable
/// yet ends where `before` (the state at the end of the file before it,
/// computed only then) does.
pub fn end_state_of(
    r: &mut FileReader,
    limit: u64,
    before: impl FnOnce() -> Result<BinlogState, String>,
) -> Result<BinlogState, String> {
    let mut st = match start_state(r, limit)? {
        FileStart::Listed(st) => st,
        FileStart::Unlisted => BinlogState::default(),
        FileStart::NotYet => return before(),
    };
    let fde = read_fde(r, limit)?;
    walk(
        r,
        4 + fde.raw.len() as u64,
        limit,
        fde.crc32(),
        |_, h, body| {
            st.note_event(h, body);
            Ok(())
        },
    )?;
    Ok(st)
}

/// The GTID state of the binlog just before `pos` of a file: its
/// Gtid_list, updated by its GTID events before `pos`. `Err` when `pos`
/// is not at an event boundary.
pub fn state_at(r: &mut FileReader, pos: u64) -> Result<BinlogState, String> {
    let len = r.file_len().map_err(|e| e.to_string())?;
    if pos > len {
        return Err(format!("{} has only {len} bytes", r.path.display()));
    }
    let mut st = match start_state(r, len)? {
        FileStart::Listed(st) => st,
        FileStart::Unlisted | FileStart::NotYet => BinlogState::default(),
    };
    let fde = read_fde(r, len)?;
    let from = 4 + fde.raw.len() as u64;
    if pos < from {
        return Ok(st);
    }
    let reached = walk(r, from, pos, fde.crc32(), |_, h, body| {
        st.note_event(h, body);
        Ok(())
    })?;
    if reached != pos {
        return Err(format!(
            "position {pos} in {} is not at the start of an event",
            r.path.display()
        ));
    }
    Ok(st)
}

/// The checksum algorithm name MariaDB uses.
pub fn alg_name(alg: u8) -> &'static str {
    match alg {
        CHECKSUM_ALG_CRC32 => "CRC32",
        CHECKSUM_ALG_OFF => "NONE",
        _ => "NONE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_state_keeps_each_domains_last() {
        let g = |d, s, q| MariaGtid {
            domain: d,
            server: s,
            seq: q,
        };
        let mut st = BinlogState::from_list(&[g(0, 1, 5), g(0, 2, 7), g(1, 1, 3)]);
        assert_eq!(st.position(), "0-2-7,1-1-3");
        st.update(g(0, 1, 8));
        assert_eq!(st.position(), "0-1-8,1-1-3");
        assert_eq!(st.find(0, 2), Some(7));
        assert_eq!(st.to_list(), vec![g(0, 2, 7), g(0, 1, 8), g(1, 1, 3)]);
    }

    #[test]
    fn gtid_list_bodies() {
        let mut b = 2u32.to_le_bytes().to_vec();
        for (d, s, q) in [(0u32, 1u32, 9u64), (3, 2, 1)] {
            b.extend_from_slice(&d.to_le_bytes());
            b.extend_from_slice(&s.to_le_bytes());
            b.extend_from_slice(&q.to_le_bytes());
        }
        let l = parse_gtid_list_body(&b).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].to_string(), "3-2-1");
        assert!(parse_gtid_list_body(&b[..20]).is_none());
        let mut huge = 0x0fff_ffffu32.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        assert!(parse_gtid_list_body(&huge).is_none());
    }

    #[test]
    fn published_views() {
        let p = Published::new();
        p.advance("b.000001", 100);
        p.advance("b.000001", 200);
        p.advance("b.000002", 50);
        assert_eq!(
            p.view("b.000001").0,
            FileView::Closed {
                next: "b.000002".into()
            }
        );
        assert_eq!(p.view("b.000002").0, FileView::Active(50));
        assert_eq!(p.view("x").0, FileView::Missing);
    }
}
