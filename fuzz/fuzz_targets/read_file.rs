//! Fuzzes the file reader and the grouper: the input becomes one or two
//! binlog files, which are read to the end event by event (each event
//! decoded and serialized, as `parapply inspect --json` does) and then cut
//! into transaction groups (as `parapply inspect --groups` and `apply` do).
//!
//! Input: a flags byte, two bytes of split offset, then the data.
//! * flags bit 0 clear: each file is the magic, the synthetic MariaDB 10.11
//!   Format_description event (CRC32), then the data; set: the data is the
//!   whole file, magic included (raw).
//! * flags bit 1 set: the data is split in two files at the offset (modulo
//!   its length), read in order as one binlog.
//!
//! The reader runs in follow mode with its stop flag already set: at the
//! end of the last file it stops instead of waiting 200 ms for a writer to
//! finish a partial event (which would make every run slow). A partial event
//! at the end of the first of two files is still reported as truncated.
//!
//! With `PARAPPLY_FUZZ_SKIP_HUGE_EVENTS=1` in the environment, inputs in
//! which an event header announces more than 1 MiB are skipped: the reader
//! sizes its buffer from that field before it knows whether the bytes exist
//! (a known out-of-memory, see README.md), and skipping them lets a run get
//! past it to the rest of the reader. Without it, every input is run.

#![no_main]

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use parapply::binlog::constants::MAGIC;
use parapply::binlog::synth::{self, EventMeta};
use parapply::binlog::{BinlogReader, ReaderOptions, Source};
use parapply::group::Grouper;

struct Files {
    _dir: tempfile::TempDir,
    paths: [PathBuf; 2],
    fde: Vec<u8>,
}

fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let paths = [
            dir.path().join("fuzz-bin.000001"),
            dir.path().join("fuzz-bin.000002"),
        ];
        let meta = EventMeta {
            timestamp: 1,
            server_id: 1,
            flags: 0,
        };
        Files {
            _dir: dir,
            paths,
            fde: synth::format_description_event(meta, 1),
        }
    })
}

/// Whether a header in `file` (walked as the reader walks it) announces an
/// event larger than the reader's initial 1 MiB buffer.
fn announces_huge_event(file: &[u8]) -> bool {
    let mut pos = MAGIC.len();
    while let Some(b) = file.get(pos + 9..pos + 13) {
        let size = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if size > 1 << 20 {
            return true;
        }
        if size < 19 {
            return false;
        }
        pos += size;
    }
    false
}

fn skip_huge() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| {
        std::env::var_os("PARAPPLY_FUZZ_SKIP_HUGE_EVENTS").is_some_and(|v| v == "1")
    })
}

fn options() -> ReaderOptions {
    ReaderOptions {
        follow: true,
        poll: Duration::from_millis(1),
        stop: Some(Arc::new(AtomicBool::new(true))),
        ..ReaderOptions::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, a, b, rest @ ..] = data else {
        return;
    };
    let f = files();
    let raw = flags & 1 != 0;
    let parts: Vec<&[u8]> = if flags & 2 != 0 && !rest.is_empty() {
        let at = usize::from(u16::from_le_bytes([*a, *b])) % rest.len();
        vec![&rest[..at], &rest[at..]]
    } else {
        vec![rest]
    };
    for (part, path) in parts.iter().zip(&f.paths) {
        let mut bytes = Vec::with_capacity(part.len() + 260);
        if !raw {
            bytes.extend_from_slice(&MAGIC);
            bytes.extend_from_slice(&f.fde);
        }
        bytes.extend_from_slice(part);
        if skip_huge() && announces_huge_event(&bytes) {
            return;
        }
        std::fs::write(path, bytes).expect("write the input file");
    }
    let source = || Source::Files(f.paths[..parts.len()].to_vec());

    // Every event, decoded and serialized.
    if let Ok(mut r) = BinlogReader::open(source(), options()) {
        while let Ok(Some(ev)) = r.next() {
            if let Ok(decoded) = ev.decode() {
                let _ = serde_json::to_vec(&decoded);
            }
            let _ = ev.body();
            let _ = ev.origin_start();
        }
    }
    // Every group.
    if let Ok(r) = BinlogReader::open(source(), options()) {
        let mut g = Grouper::new(r);
        while let Ok(Some(group)) = g.next() {
            let _ = group.event_bytes().count();
            let _ = group.describe();
        }
        let _ = g.pending();
    }
});
