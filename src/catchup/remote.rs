//! A mirror read over the network: a mirror server (`parapply serve`,
//! `parapply mirror --serve`; docs/mirror.md) is copied into a local
//! directory with [`crate::mirror::run`], from the file a scan needs up to
//! the end the server had when the copy began, then scanned like any
//! mirror.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::CatchupError;
use crate::mirror::{self, MirrorOptions, MirrorStart, SyncPolicy};
use crate::position::BinlogPos;
use crate::wire::{Conn, ConnectOptions};

/// How long the copy may go without growing before it is given up.
pub const STALL: Duration = Duration::from_secs(60);

/// The server's end: `SHOW MASTER STATUS` (its last file and the bytes it
/// serves of it). An unreachable server is an error naming it.
pub fn server_end(server: &ConnectOptions) -> Result<BinlogPos, CatchupError> {
    let addr = server.addr();
    let wire = |error| CatchupError::MirrorWire {
        addr: addr.clone(),
        error: Box::new(error),
    };
    let mut c = Conn::connect(server).map_err(wire)?;
    let rows = c.query_rows("SHOW MASTER STATUS").map_err(wire)?;
    let text = |r: &[Option<Vec<u8>>], i: usize| {
        r.get(i)
            .and_then(|v| v.as_deref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let row = rows.first().ok_or_else(|| CatchupError::MirrorServer {
        addr: addr.clone(),
        what: "SHOW MASTER STATUS returned no row: the server has no binlog to serve".into(),
    })?;
    match (text(row, 0), text(row, 1).and_then(|p| p.parse().ok())) {
        (Some(file), Some(pos)) => Ok(BinlogPos::new(file, pos)),
        _ => Err(CatchupError::MirrorServer {
            addr,
            what: "SHOW MASTER STATUS: no file and position".into(),
        }),
    }
}

/// Copies the mirror server `server` into the empty directory `dir`, from
/// the start of `start`'s file (`None`: its oldest file) up to the end it
/// serves now. `server_id` is the id the copy registers with.
pub fn fetch(
    server: &ConnectOptions,
    server_id: u32,
    start: Option<&BinlogPos>,
    dir: &Path,
) -> Result<BinlogPos, CatchupError> {
    let addr = server.addr();
    let end = server_end(server)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut o = MirrorOptions::new(server.clone(), dir, server_id);
    o.start = Some(start.map_or(MirrorStart::Oldest, |p| MirrorStart::Pos(p.clone())));
    o.sync = SyncPolicy::Never;
    o.stop = Some(stop.clone());
    let copy = std::thread::Builder::new()
        .name("mirror-copy".into())
        .spawn(move || mirror::run(&o))
        .map_err(|error| CatchupError::Io {
            what: "starting the mirror copy".into(),
            error,
        })?;
    let target = dir.join(&end.file);
    let mut grown = (0, Instant::now());
    let outcome = loop {
        if copy.is_finished() {
            break Err(CatchupError::MirrorServer {
                addr: addr.clone(),
                what: format!("the copy ended before reaching {end}"),
            });
        }
        let len = std::fs::metadata(&target).map_or(0, |m| m.len());
        if len >= end.pos {
            break Ok(());
        }
        let size = dir_size(dir);
        if size != grown.0 {
            grown = (size, Instant::now());
        } else if grown.1.elapsed() > STALL {
            break Err(CatchupError::MirrorServer {
                addr: addr.clone(),
                what: format!(
                    "the copy made no progress for {} s before reaching {end}",
                    STALL.as_secs()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, Ordering::SeqCst);
    let copied = copy.join().map_err(|_| CatchupError::MirrorServer {
        addr: addr.clone(),
        what: "the copy thread panicked".into(),
    })?;
    // The copy's own error says more than "ended early".
    copied.map_err(|error| CatchupError::MirrorCopy {
        addr,
        error: Box::new(error),
    })?;
    outcome.map(|()| end)
}

/// Bytes of the files in `dir`.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A fresh temporary directory for a mirror server's copy (under
/// `TMPDIR`, named `parapply-<tag>-<pid>-<nanos>`), removed when dropped
/// (also on an error): `parapply catchup` and `parapply promote` copy
/// into one.
#[derive(Debug)]
pub struct CopyDir(std::path::PathBuf);

impl CopyDir {
    /// Creates it.
    pub fn new(tag: &str) -> Result<CopyDir, CatchupError> {
        let d = std::env::temp_dir().join(format!(
            "parapply-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&d).map_err(|error| CatchupError::Io {
            what: format!("creating {}", d.display()),
            error,
        })?;
        Ok(CopyDir(d))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for CopyDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// The server id a copy of a mirror server registers with: high, and per
/// process, so that two copies do not clash.
pub fn copy_server_id() -> u32 {
    0x7000_0000 | (std::process::id() & 0x00ff_ffff)
}
