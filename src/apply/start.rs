//! Where a run starts reading ("Start", step 3, in the engine's module doc).
//!
//! In order:
//!
//! 1. The target has progress (its own, or restored with a backup of
//!    another parapply replica: the progress tables travel inside the
//!    backup): reading resumes at the end of the applied prefix. The
//!    source must hold that place: a source file whose Gtid_list (the
//!    binlog state before it) already holds a low-watermark's GTID cannot
//!    hold the group that ends in it — the progress tables come from
//!    another topology.
//! 2. `--from FILE:POS|GTID`, or `--from-backup DIR` (mariadb-backup's
//!    binlog-info file: [`BackupInfo`]).
//! 3. The target's `@@gtid_slave_pos`: a dump restored with
//!    `mariadb-dump --master-data --gtid` (or `--dump-slave --gtid`) sets
//!    it, as does the server's own SQL thread.
//! 4. The source's beginning.
//!
//! A GTID position (2 and 3, one GTID per domain, the last applied)
//! becomes low-watermarks to start from ([`Start::seeds`]): reading starts
//! in the earliest file that can hold a group after one of them, and the
//! groups they cover are skipped. A source whose oldest file begins after
//! such a GTID lacks groups the target needs: an error names them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::ApplyError;
use crate::binlog::reader::{gtid_list_of, read_index};
use crate::binlog::Source;
use crate::position::{BinlogPos, MariaGtid, StartAt};
use crate::progress::{parse_gtid_list, ReplicaState, Selection, Watermark};
use crate::replica::{PreflightError, Replica};

use super::engine::ApplyOptions;

/// The names mariadb-backup (and xtrabackup before it) give the file that
/// records the server's binlog position at the backup's consistent point.
pub const BINLOG_INFO_FILES: [&str; 2] = ["mariadb_backup_binlog_info", "xtrabackup_binlog_info"];

/// The binlog position a backup recorded: `FILE<TAB>POS[<TAB>GTIDS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The file it was read from (named in messages).
    pub path: PathBuf,
    /// The binlog file and position of the backup's consistent point.
    pub pos: BinlogPos,
    /// The GTID position there (one per domain; empty for a server
    /// without GTIDs).
    pub gtids: Vec<MariaGtid>,
}

impl BackupInfo {
    /// Reads the binlog-info file of a backup directory (either name of
    /// [`BINLOG_INFO_FILES`]).
    pub fn read(dir: &Path) -> Result<BackupInfo, String> {
        let path = BINLOG_INFO_FILES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "{}: no {} or {} (was the backup taken with mariadb-backup from a server \
                     with log_bin on?)",
                    dir.display(),
                    BINLOG_INFO_FILES[0],
                    BINLOG_INFO_FILES[1]
                )
            })?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: PathBuf) -> Result<BackupInfo, String> {
        let bad = |why: &str| format!("{}: {why}: {text:?}", path.display());
        let line = text.lines().next().unwrap_or("");
        let mut fields = line.split('\t');
        let file = fields.next().filter(|f| !f.is_empty());
        let pos = fields.next().and_then(|p| p.trim().parse::<u64>().ok());
        let (Some(file), Some(pos)) = (file, pos) else {
            return Err(bad("expected FILE<TAB>POS[<TAB>GTIDS]"));
        };
        let gtids = parse_gtid_list(fields.next().unwrap_or("")).map_err(|e| bad(&e))?;
        Ok(BackupInfo {
            pos: BinlogPos::new(file, pos),
            gtids,
            path,
        })
    }
}

/// Where reading starts, and the low-watermarks a GTID position gives.
#[derive(Debug)]
pub struct Start {
    /// The first event read.
    pub at: StartAt,
    /// Per domain, the last group applied before this run (a GTID
    /// position's), to be taken as the low-watermark.
    pub seeds: BTreeMap<u32, Watermark>,
}

impl Start {
    fn at(at: StartAt) -> Start {
        Start {
            at,
            seeds: BTreeMap::new(),
        }
    }
}

/// Steps 1–4 of the module doc.
pub fn start(
    opts: &ApplyOptions,
    replica: &mut Replica,
    state: &ReplicaState,
) -> Result<Start, ApplyError> {
    let named = opts.from.is_some() || opts.from_backup.is_some();
    match state.resume_position() {
        Some(applied_to) if named => Err(PreflightError::FromWithProgress {
            addr: replica.addr(),
            applied_to,
            schema: opts.progress.schema().to_string(),
        }
        .into()),
        Some(end) => resume_start(opts, state, end, replica).map(Start::at),
        None => {
            if let Some(f) = &opts.from {
                return Ok(Start::at(f.clone()));
            }
            if let Some(b) = &opts.from_backup {
                if b.gtids.is_empty() {
                    return Ok(Start::at(StartAt::Pos(b.pos.clone())));
                }
                let what = format!("the backup's {}", b.path.display());
                return after_gtids(&opts.source, &b.gtids, &what, &replica.addr());
            }
            // (A catch-up names its own start.)
            let restart = matches!(opts.selection, Selection::Restart);
            let pos = if restart {
                replica.gtid_slave_pos()?
            } else {
                Vec::new()
            };
            if pos.is_empty() {
                return Ok(Start::at(StartAt::Beginning));
            }
            tracing::info!(gtid_slave_pos = %gtid_list(&pos), "no progress tables: starting after the target's gtid_slave_pos (a restored dump, or the server's own replication)");
            after_gtids(
                &opts.source,
                &pos,
                "the target's gtid_slave_pos",
                &replica.addr(),
            )
        }
    }
}

fn gtid_list(gtids: &[MariaGtid]) -> String {
    gtids
        .iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn source_files(source: &Source) -> Result<Vec<PathBuf>, ApplyError> {
    Ok(match source {
        Source::Files(v) => v.clone(),
        Source::Index(index) => read_index(index)?,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A start after a GTID position (the last group applied per domain):
/// the source's oldest file must not begin after any of them.
fn after_gtids(
    source: &Source,
    gtids: &[MariaGtid],
    what: &str,
    addr: &str,
) -> Result<Start, ApplyError> {
    let files = source_files(source)?;
    let Some(first) = files.first() else {
        return Ok(Start::at(StartAt::Beginning));
    };
    let lists = files
        .iter()
        .map(|f| gtid_list_of(f))
        .collect::<Result<Vec<_>, _>>()?;
    for g in gtids {
        let later = lists[0]
            .iter()
            .flatten()
            .find(|x| x.domain == g.domain && x.seq > g.seq);
        if let Some(begins_after) = later {
            return Err(PreflightError::SourceTooNew {
                addr: addr.to_string(),
                what: what.to_string(),
                applied: *g,
                file: file_name(first),
                begins_after: *begins_after,
            }
            .into());
        }
    }
    // Per GTID, the latest file whose start state does not hold the group
    // after it: that group is in this file or a later one.
    let index = gtids
        .iter()
        .map(|g| {
            lists
                .iter()
                .rposition(|l| {
                    l.as_ref().is_none_or(|l| {
                        l.iter()
                            .find(|x| x.domain == g.domain)
                            .is_none_or(|x| x.seq <= g.seq)
                    })
                })
                .unwrap_or(0)
        })
        .min()
        .unwrap_or(0);
    let at = BinlogPos::new(file_name(&files[index]), 4);
    tracing::info!(gtids = %gtid_list(gtids), from = %what, start = %at, "starting after a GTID position");
    Ok(Start {
        at: if index == 0 {
            StartAt::Beginning
        } else {
            StartAt::Pos(at.clone())
        },
        seeds: ReplicaState::prefix(gtids.iter().map(|g| (*g, at.clone()))).low,
    })
}

/// Where reading resumes. In a mirror the prefix's end position names a
/// file of the source; relay logs have other file names (the position is in
/// the primary's coordinates), so there the GTID of the prefix's last group
/// is looked up instead (it is applied, and skipped again).
fn resume_start(
    opts: &ApplyOptions,
    state: &ReplicaState,
    end: BinlogPos,
    replica: &Replica,
) -> Result<StartAt, ApplyError> {
    let listed = source_files(&opts.source)?;
    if let Some(file) = listed.iter().find(|f| file_name(f) == end.file) {
        check_same_stream(opts, state, file, replica)?;
        return Ok(StartAt::Pos(end));
    }
    let Some(last) = state
        .low
        .iter()
        .find(|(_, w)| w.end == end)
        .map(|(d, w)| MariaGtid {
            domain: *d,
            server: w.server_id,
            seq: w.seq_no,
        })
    else {
        return Err(PreflightError::NoResumePoint {
            addr: replica.addr(),
            end,
        }
        .into());
    };
    tracing::info!(%end, gtid = %last, "the source has no file {}: resuming by GTID", end.file);
    Ok(StartAt::Gtid(last))
}

/// The low-watermark ending in `file` names a group of that file: the
/// file's Gtid_list (the binlog state before it) cannot hold it already.
fn check_same_stream(
    opts: &ApplyOptions,
    state: &ReplicaState,
    file: &Path,
    replica: &Replica,
) -> Result<(), ApplyError> {
    let Some(list) = gtid_list_of(file)? else {
        return Ok(());
    };
    let name = file_name(file);
    // (A mark at the file's first event, a GTID position's start, holds
    // only what the Gtid_list holds.)
    let in_file = |w: &&Watermark| w.end.file == name && w.end.pos > 4;
    for (domain, w) in state.low.iter().filter(|(_, w)| in_file(w)) {
        if let Some(x) = list
            .iter()
            .find(|x| x.domain == *domain && x.seq >= w.seq_no)
        {
            return Err(PreflightError::ForeignProgress {
                addr: replica.addr(),
                schema: opts.progress.schema().to_string(),
                applied: MariaGtid {
                    domain: *domain,
                    server: w.server_id,
                    seq: w.seq_no,
                },
                end: w.end.clone(),
                begins_after: *x,
            }
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mariadb_backups_binlog_info() {
        let p = PathBuf::from("b/mariadb_backup_binlog_info");
        let b = BackupInfo::parse("mariadb-bin.000003\t385\t0-1-10,1-2-7\n", p.clone()).unwrap();
        assert_eq!(b.pos, BinlogPos::new("mariadb-bin.000003", 385));
        assert_eq!(gtid_list(&b.gtids), "0-1-10,1-2-7");
        let b = BackupInfo::parse("mariadb-bin.000001\t4\n", p.clone()).unwrap();
        assert!(b.gtids.is_empty());
        let e = BackupInfo::parse("garbage\n", p.clone()).unwrap_err();
        assert!(e.contains("FILE<TAB>POS"), "{e}");
        let e = BackupInfo::parse("f\t4\t0-x-1\n", p).unwrap_err();
        assert!(e.contains("mariadb_backup_binlog_info"), "{e}");
    }
}
