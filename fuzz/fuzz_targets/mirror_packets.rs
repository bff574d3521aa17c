//! Fuzzes the mirror's handling of a primary's binlog dump: the packets a
//! primary sends after `COM_BINLOG_DUMP` (framing removed: an OK marker and
//! an event, EOF, ERR, anything else) are fed, without a network, to a
//! mirror directory by `parapply::mirror::fuzzing::feed`, in one or more
//! sessions (each after a simulated restart: the directory is recovered
//! first). Then the directory is recovered once more and read back with
//! the binlog reader to its end, as `apply --follow` would.
//!
//! Input: a flags byte, then records `u16 LE length, bytes`; the length
//! 0xffff ends a session (the next records are the next session).
//! * flags bit 0: the primary's `binlog_checksum` is CRC32 (the mirror
//!   checks the fake Rotate's checksum and strips it from the name).
//! * flags bit 1: before feeding, each OK packet of at least 24 bytes gets
//!   the right CRC32 in its last 4 bytes (so that mutations get past the
//!   checksum check to what follows it).
//! * flags bit 2: before feeding, each OK packet of at least 20 bytes gets
//!   its length in the header's `event_size`.
//!
//! Must not panic. The mirror directory lives under /dev/shm when there is
//! one (each input creates and removes files).

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use parapply::binlog::checksum;
use parapply::binlog::{BinlogReader, ReaderOptions, Source};
use parapply::mirror::fuzzing;

const SESSION_BREAK: usize = 0xffff;

fn base() -> &'static Path {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    BASE.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("temporary directory")
    })
    .path()
}

/// The input's sessions of packets, with the fix-ups its flags ask for.
fn sessions(flags: u8, mut data: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut out = vec![Vec::new()];
    while let Some((len, rest)) = data.split_first_chunk::<2>() {
        let len = usize::from(u16::from_le_bytes(*len));
        if len == SESSION_BREAK {
            out.push(Vec::new());
            data = rest;
            continue;
        }
        let (p, rest) = rest.split_at(len.min(rest.len()));
        data = rest;
        let mut p = p.to_vec();
        if p.first() == Some(&0) {
            let ev_len = p.len() - 1;
            if flags & 4 != 0 && ev_len >= 13 {
                p[1 + 9..1 + 13].copy_from_slice(&(ev_len as u32).to_le_bytes());
            }
            if flags & 2 != 0 {
                if let Some(crc) = checksum::compute(&p[1..]) {
                    let n = p.len();
                    p[n - 4..].copy_from_slice(&crc.to_le_bytes());
                }
            }
        }
        out.last_mut().expect("one session").push(p);
    }
    out
}

fn read_back(dir: &Path) {
    let Ok(source) = Source::dir(dir) else {
        return;
    };
    let opts = ReaderOptions {
        partial_grace: std::time::Duration::ZERO,
        ..ReaderOptions::default()
    };
    let Ok(mut r) = BinlogReader::open(source, opts) else {
        return;
    };
    while let Ok(Some(ev)) = r.next() {
        let _ = ev.decode();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let sessions = sessions(flags, rest);
    let refs: Vec<Vec<&[u8]>> = sessions
        .iter()
        .map(|s| s.iter().map(Vec::as_slice).collect())
        .collect();
    let dir: PathBuf = base().join("mirror");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = fuzzing::feed(&dir, flags & 1 != 0, &refs);
    // Recovered again after the last session, then read back.
    let _ = fuzzing::feed(&dir, flags & 1 != 0, &[Vec::new()]);
    read_back(&dir);
});
