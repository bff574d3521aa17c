//! The mirror directory: the primary's binlog files, byte for byte, and an
//! index file listing them.
//!
//! # Write order (what a crash can leave behind)
//!
//! 1. A new file is created with its magic and the primary's
//!    Format_description event (FDE) in one `write()`; only then is its name
//!    appended to the index (a tailing reader never sees a listed file
//!    without its head).
//! 2. Each further event is appended with one `write()`.
//! 3. A Rotate or Stop event ends a file: after writing it, the FDE's
//!    `LOG_EVENT_BINLOG_IN_USE_F` flag is cleared in place, as the primary
//!    does when it closes a file (the FDE's checksum does not cover that
//!    flag). A new file gets the flag set, as the primary's active file has.
//! 4. `fsync` follows the [`SyncPolicy`]: the file after each event or every
//!    N events, and the file, the directory and the index at file switches
//!    (except with `never`).
//!
//! Recovery ([`MirrorDir::recover`]) reads the last listed file with the
//! binlog reader, cuts a partial trailing event (and a last event whose
//! checksum fails because its bytes never reached the disk), and resumes
//! after the last complete event: no duplicate, no gap, no reorder.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::binlog::constants::{EventType, HEADER_LEN, LOG_EVENT_BINLOG_IN_USE_F, MAGIC};
use crate::binlog::reader::read_index;
use crate::binlog::{BinlogReader, ReadError, ReaderOptions, Source};
use crate::position::BinlogPos;

use super::error::MirrorError;
use super::serve::Published;
use super::SyncPolicy;

/// Offset of the FDE's flags in a binlog file (magic, then header bytes 17–18).
const FDE_FLAGS_OFFSET: u64 = 4 + 17;

/// Where a recovered mirror continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Nothing mirrored yet.
    Empty,
    /// Continue this file at this offset (the end of its last complete event).
    At(BinlogPos),
    /// (Re)create this file from its start: it is listed but has no complete
    /// head.
    Create(String),
}

/// The file being appended.
#[derive(Debug)]
pub(crate) struct Current {
    pub name: String,
    file: File,
    path: PathBuf,
    /// Bytes in the file: the offset of the next event.
    pub len: u64,
    /// The file's FDE announces CRC32.
    pub crc32: bool,
    /// A Rotate or Stop was written: nothing may follow in this file.
    pub finished: bool,
}

/// The mirror directory; see the module doc.
#[derive(Debug)]
pub(crate) struct MirrorDir {
    dir: PathBuf,
    index: Option<PathBuf>,
    /// Names listed in the index, in order.
    listed: Vec<String>,
    pub cur: Option<Current>,
    sync: SyncPolicy,
    unsynced: u32,
    /// Where the servable length is published for a binlog server in this
    /// process (only bytes that are fsynced, unless the policy is `never`).
    published: Option<std::sync::Arc<Published>>,
}

fn basename_of(file: &str) -> &str {
    match file.rsplit_once('.') {
        Some((base, ext)) if !base.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => file,
    }
}

impl MirrorDir {
    /// Opens (creating it if needed) the mirror directory and finds where it
    /// continues; cuts a partial trailing event.
    pub fn recover(dir: &Path, sync: SyncPolicy) -> Result<(MirrorDir, Resume), MirrorError> {
        fs::create_dir_all(dir).map_err(|e| MirrorError::io(dir, "create directory", e))?;
        let mut md = MirrorDir {
            dir: dir.to_path_buf(),
            index: None,
            listed: Vec::new(),
            cur: None,
            sync,
            unsynced: 0,
            published: None,
        };
        let rd = fs::read_dir(dir).map_err(|e| MirrorError::io(dir, "list", e))?;
        let mut indexes: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "index"))
            .collect();
        let index = match indexes.len() {
            0 => return Ok((md, Resume::Empty)),
            1 => indexes.remove(0),
            _ => {
                return Err(MirrorError::Usage(format!(
                    "{}: several *.index files; a mirror directory holds one binlog",
                    dir.display()
                )))
            }
        };
        md.listed = read_index(&index)?
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        md.index = Some(index);
        let Some(last) = md.listed.last().cloned() else {
            return Ok((md, Resume::Empty));
        };
        for name in &md.listed {
            let p = dir.join(name);
            if !p.exists() {
                return Err(MirrorError::Usage(format!(
                    "{}: listed in the index but missing; the mirror is damaged",
                    p.display()
                )));
            }
        }
        let path = dir.join(&last);
        let scan = scan_last_file(&path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| MirrorError::io(&path, "open", e))?;
        let on_disk = file
            .metadata()
            .map_err(|e| MirrorError::io(&path, "stat", e))?
            .len();
        if scan.end < on_disk {
            tracing::warn!(
                file = %last, from = scan.end, bytes = on_disk - scan.end,
                "cutting a partial trailing event left by a crash"
            );
            file.set_len(scan.end)
                .map_err(|e| MirrorError::io(&path, "truncate", e))?;
            file.sync_all()
                .map_err(|e| MirrorError::io(&path, "fsync", e))?;
        }
        if !scan.has_fde {
            return Ok((md, Resume::Create(last)));
        }
        file.seek(SeekFrom::End(0))
            .map_err(|e| MirrorError::io(&path, "seek", e))?;
        let mut cur = Current {
            name: last.clone(),
            file,
            path,
            len: scan.end,
            crc32: scan.crc32,
            finished: scan.finished,
        };
        if cur.finished {
            // A crash may have come between the last event and the flag.
            clear_in_use(&mut cur)?;
        }
        md.cur = Some(cur);
        Ok((md, Resume::At(BinlogPos::new(last, scan.end))))
    }

    /// Publishes to `p` what may be served from now on, starting with what
    /// the directory holds (fsynced first, so that a served byte is a durable
    /// one).
    pub fn set_published(&mut self, p: std::sync::Arc<Published>) -> Result<(), MirrorError> {
        let mut files = self.listed.clone();
        let len = match self.cur.as_mut() {
            Some(cur) => {
                if self.sync != SyncPolicy::Never {
                    cur.file
                        .sync_data()
                        .map_err(|e| MirrorError::io(&cur.path, "fsync", e))?;
                }
                cur.len
            }
            None => {
                // The last listed file has no complete head yet: serve up to
                // the one before it.
                files.pop();
                match files.last() {
                    Some(f) => {
                        let path = self.dir.join(f);
                        fs::metadata(&path)
                            .map_err(|e| MirrorError::io(&path, "stat", e))?
                            .len()
                    }
                    None => 0,
                }
            }
        };
        p.set(files, len);
        self.published = Some(p);
        Ok(())
    }

    /// Whether a binlog server in this process is served from this mirror.
    pub fn is_published(&self) -> bool {
        self.published.is_some()
    }

    fn publish(&self) {
        if let (Some(p), Some(cur)) = (&self.published, &self.cur) {
            p.advance(&cur.name, cur.len);
        }
    }

    /// Where the next event goes.
    ///
    /// (Without allocating: the name borrowed.)
    pub fn end(&self) -> Option<(&str, u64)> {
        self.cur.as_ref().map(|c| (c.name.as_str(), c.len))
    }

    /// Where the mirror ends: the current file and its length.
    pub fn position(&self) -> Option<BinlogPos> {
        self.cur
            .as_ref()
            .map(|c| BinlogPos::new(c.name.clone(), c.len))
    }

    /// Starts file `name` with the magic and `fde` (the primary's FDE as
    /// sent), then lists it in the index.
    pub fn create_file(&mut self, name: &str, fde: &[u8], crc32: bool) -> Result<(), MirrorError> {
        if let Some(cur) = self.cur.as_mut() {
            if self.sync != SyncPolicy::Never {
                cur.file
                    .sync_data()
                    .map_err(|e| MirrorError::io(&cur.path, "fsync", e))?;
            }
        }
        let path = self.dir.join(name);
        let mut head = Vec::with_capacity(MAGIC.len() + fde.len());
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(fde);
        // The primary's active file has the in-use flag set; the primary
        // sends the FDE with it cleared.
        let Some(flags) = head.get_mut(FDE_FLAGS_OFFSET as usize..FDE_FLAGS_OFFSET as usize + 2)
        else {
            return Err(MirrorError::Stream {
                at: BinlogPos::new(name, MAGIC.len() as u64),
                what: format!("an FDE of {} bytes has no header flags", fde.len()),
            });
        };
        let set = u16::from_le_bytes([flags[0], flags[1]]) | LOG_EVENT_BINLOG_IN_USE_F;
        flags.copy_from_slice(&set.to_le_bytes());
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| MirrorError::io(&path, "create", e))?;
        file.write_all(&head)
            .map_err(|e| MirrorError::io(&path, "write", e))?;
        if self.sync != SyncPolicy::Never {
            file.sync_all()
                .map_err(|e| MirrorError::io(&path, "fsync", e))?;
            sync_dir(&self.dir)?;
        }
        if self.listed.last().map(String::as_str) != Some(name) {
            self.append_index(name)?;
        }
        self.cur = Some(Current {
            name: name.to_owned(),
            file,
            path,
            len: head.len() as u64,
            crc32,
            finished: false,
        });
        self.unsynced = 0;
        self.publish();
        Ok(())
    }

    fn append_index(&mut self, name: &str) -> Result<(), MirrorError> {
        let index = match &self.index {
            Some(i) => i.clone(),
            None => {
                let i = self.dir.join(format!("{}.index", basename_of(name)));
                self.index = Some(i.clone());
                i
            }
        };
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&index)
            .map_err(|e| MirrorError::io(&index, "open", e))?;
        f.write_all(format!("./{name}\n").as_bytes())
            .map_err(|e| MirrorError::io(&index, "append to", e))?;
        if self.sync != SyncPolicy::Never {
            f.sync_all()
                .map_err(|e| MirrorError::io(&index, "fsync", e))?;
            sync_dir(&self.dir)?;
        }
        self.listed.push(name.to_owned());
        Ok(())
    }

    /// Appends one whole event (one `write()`); a Rotate or Stop finishes
    /// the file.
    pub fn append(&mut self, event: &[u8], t: EventType) -> Result<(), MirrorError> {
        let cur = self.cur.as_mut().ok_or_else(|| {
            MirrorError::Usage("internal: an event to append but no open file".into())
        })?;
        cur.file
            .write_all(event)
            .map_err(|e| MirrorError::io(&cur.path, "write", e))?;
        cur.len += event.len() as u64;
        if t == EventType::ROTATE || t == EventType::STOP {
            cur.finished = true;
            clear_in_use(cur)?;
            if self.sync != SyncPolicy::Never {
                cur.file
                    .sync_data()
                    .map_err(|e| MirrorError::io(&cur.path, "fsync", e))?;
            }
            self.unsynced = 0;
            self.publish();
            return Ok(());
        }
        self.unsynced += 1;
        let due = match self.sync {
            SyncPolicy::Every => true,
            SyncPolicy::EveryN(n) => self.unsynced >= n,
            SyncPolicy::Never => false,
        };
        if due {
            cur.file
                .sync_data()
                .map_err(|e| MirrorError::io(&cur.path, "fsync", e))?;
            self.unsynced = 0;
        }
        if due || self.sync == SyncPolicy::Never {
            self.publish();
        }
        Ok(())
    }

    /// Flushes what is not yet synced (at a clean stop).
    pub fn flush(&mut self) -> Result<(), MirrorError> {
        if let Some(cur) = self.cur.as_mut() {
            if self.sync != SyncPolicy::Never && self.unsynced > 0 {
                cur.file
                    .sync_data()
                    .map_err(|e| MirrorError::io(&cur.path, "fsync", e))?;
                self.unsynced = 0;
            }
        }
        self.publish();
        Ok(())
    }
}

fn clear_in_use(cur: &mut Current) -> Result<(), MirrorError> {
    let mut b = [0u8; 2];
    cur.file
        .read_exact_at(&mut b, FDE_FLAGS_OFFSET)
        .map_err(|e| MirrorError::io(&cur.path, "read the FDE flags of", e))?;
    let flags = u16::from_le_bytes(b);
    if flags & LOG_EVENT_BINLOG_IN_USE_F != 0 {
        let cleared = (flags & !LOG_EVENT_BINLOG_IN_USE_F).to_le_bytes();
        cur.file
            .write_all_at(&cleared, FDE_FLAGS_OFFSET)
            .map_err(|e| MirrorError::io(&cur.path, "clear the in-use flag of", e))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), MirrorError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| MirrorError::io(dir, "fsync", e))
}

struct Scan {
    /// End of the last complete, valid event (4 for a bare magic, 0 for less).
    end: u64,
    has_fde: bool,
    crc32: bool,
    /// The last event is a Rotate or Stop.
    finished: bool,
}

/// Reads the last mirror file to the end of its last complete event.
fn scan_last_file(path: &Path) -> Result<Scan, MirrorError> {
    let mut scan = Scan {
        end: 0,
        has_fde: false,
        crc32: false,
        finished: false,
    };
    let mut magic = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| MirrorError::io(path, "read", e))?;
    if n < 4 || magic != MAGIC {
        // Created but its head never reached the disk.
        return Ok(scan);
    }
    scan.end = MAGIC.len() as u64;
    let mut r = BinlogReader::open(
        Source::Files(vec![path.to_path_buf()]),
        // The mirror is the only writer and it is not running: a partial
        // trailing event will not be completed by anyone.
        ReaderOptions {
            partial_grace: std::time::Duration::ZERO,
            ..ReaderOptions::default()
        },
    )?;
    loop {
        match r.next() {
            Ok(Some(ev)) => {
                let t = ev.event_type();
                if t == EventType::FORMAT_DESCRIPTION && ev.pos == MAGIC.len() as u64 {
                    scan.has_fde = true;
                    scan.crc32 = ev.fde.has_crc32();
                }
                scan.finished = t == EventType::ROTATE || t == EventType::STOP;
                scan.end = ev.end_pos();
            }
            Ok(None) => return Ok(scan),
            Err(ReadError::Truncated { pos, .. }) => {
                scan.end = pos;
                return Ok(scan);
            }
            Err(ReadError::NoFormatDescription { .. }) if !scan.has_fde => return Ok(scan),
            Err(e) => {
                // A checksum or header failure is a torn write only if it is
                // the last thing in the file.
                let torn_at = match &e {
                    ReadError::Checksum { pos, .. } | ReadError::BadHeader { pos, .. } => {
                        Some(*pos)
                    }
                    _ => None,
                };
                if let Some(pos) = torn_at {
                    if is_last_event(path, pos)? {
                        scan.end = pos;
                        return Ok(scan);
                    }
                }
                return Err(e.into());
            }
        }
    }
}

/// Whether the event at `pos` announces a size that reaches or passes the
/// end of the file.
fn is_last_event(path: &Path, pos: u64) -> Result<bool, MirrorError> {
    let f = File::open(path).map_err(|e| MirrorError::io(path, "open", e))?;
    let len = f
        .metadata()
        .map_err(|e| MirrorError::io(path, "stat", e))?
        .len();
    let mut h = [0u8; HEADER_LEN];
    if f.read_exact_at(&mut h, pos).is_err() {
        return Ok(true);
    }
    let size = u64::from(u32::from_le_bytes([h[9], h[10], h[11], h[12]]));
    Ok(pos + size >= len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basenames() {
        assert_eq!(basename_of("mariadb-bin.000012"), "mariadb-bin");
        assert_eq!(basename_of("a.b.000001"), "a.b");
        assert_eq!(basename_of("odd"), "odd");
    }
}
