//! The commands behind the command line: turn parsed arguments into
//! library calls and print results. This is the binary's edge: errors are
//! `anyhow` here and nowhere else.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::apply::engine::{self, ApplyOptions, Until};
use crate::binlog::{BinlogReader, ReaderOptions, Source};
use crate::cli::{ApplyArgs, ShardByArg, StatusArgs, TargetArgs};
use crate::group::Grouper;
use crate::position::StartAt;
use crate::progress::{parse_gtid_list, Applied, ProgressTables, ReplicaState};
use crate::schedule::{Placement, ShardBy, ShardMap};
use crate::wire::{Conn, ConnectOptions, Secret};

/// Environment variable holding the target's password.
pub const TARGET_PASSWORD_ENV: &str = "PARAPPLY_TARGET_PASSWORD";

/// Connection options of the target, with the password from the file or
/// the environment (never from the command line).
pub fn target_options(t: &TargetArgs) -> anyhow::Result<ConnectOptions> {
    let mut o = ConnectOptions::from_url(&t.target)?;
    o.password = match &t.target_password_file {
        Some(f) => Some(
            Secret::from_file(f)
                .with_context(|| format!("reading the password file {}", f.display()))?,
        ),
        None => std::env::var(TARGET_PASSWORD_ENV).ok().map(Secret::new),
    };
    Ok(o)
}

fn shard_map(spec: Option<&str>, by: ShardByArg) -> anyhow::Result<ShardMap> {
    let by = match by {
        ShardByArg::Database => ShardBy::Database,
        ShardByArg::Table => ShardBy::Table,
    };
    ShardMap::parse(spec.unwrap_or(""), by).map_err(|e| anyhow::anyhow!("--shard-map: {e}"))
}

fn source_of(path: &Path) -> anyhow::Result<Source> {
    if !path.exists() {
        bail!("source {} does not exist", path.display());
    }
    Ok(Source::from_paths(&[path.to_path_buf()])?)
}

/// Installs SIGINT/SIGTERM handling: the first sets `stop`, the second `abort`.
pub fn signals(stop: Arc<AtomicBool>, abort: Arc<AtomicBool>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut sigs = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for _ in sigs.forever() {
                if stop.swap(true, Ordering::SeqCst) {
                    abort.store(true, Ordering::SeqCst);
                    eprintln!("parapply: second signal: aborting (open transactions roll back)");
                } else {
                    eprintln!("parapply: stopping cleanly (signal again to abort)");
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// `parapply apply`.
pub fn apply(a: ApplyArgs) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let abort = Arc::new(AtomicBool::new(false));
    signals(stop.clone(), abort.clone())?;
    let until = a
        .until
        .as_deref()
        .map(str::parse::<Until>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--until: {e}"))?;
    let mut opts = ApplyOptions::new(source_of(&a.source)?, target_options(&a.target)?);
    opts.workers = usize::from(a.workers);
    opts.batch_groups = usize::from(a.batch);
    opts.batch_bytes = usize::try_from(a.batch_bytes).unwrap_or(usize::MAX);
    opts.max_inflight_bytes = a.max_inflight_bytes;
    opts.follow = a.follow;
    opts.from = a.from;
    opts.until = until;
    opts.shard_map = shard_map(a.shard_map.as_deref(), a.shard_by)?;
    opts.progress = ProgressTables::new(&a.target.progress_schema)
        .map_err(|e| anyhow::anyhow!("--progress-schema: {e}"))?;
    opts.reconnect_timeout = Duration::from_secs(a.reconnect_timeout);
    opts.stop = stop.clone();
    opts.abort = abort;
    opts.status_line = true;
    let report = engine::run(opts)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "applied {} groups ({} skipped as already applied) in {:.2} s ({:.0} groups/s)",
            report.applied,
            report.skipped,
            report.seconds,
            report.applied as f64 / report.seconds.max(1e-9)
        );
        if let Some(p) = &report.position {
            println!(
                "applied prefix ends at {p}; GTID position {}",
                report.gtid_position
            );
        }
        if report.drained && stop.load(Ordering::SeqCst) {
            println!(
                "drained: every shard is at {}. To let the server's own SQL thread take over:\n  \
                 SET GLOBAL gtid_slave_pos='{}'; START SLAVE;",
                report.gtid_position, report.gtid_position
            );
        }
    }
    Ok(())
}

/// `parapply status`.
pub fn status(a: StatusArgs) -> anyhow::Result<()> {
    let opts = target_options(&a.target)?;
    let tables = ProgressTables::new(&a.target.progress_schema)
        .map_err(|e| anyhow::anyhow!("--progress-schema: {e}"))?;
    let mut c = Conn::connect(&opts)?;
    let shards = c
        .query_rows(&tables.select_shards_sql())
        .with_context(|| format!("reading {}.shard_progress", tables.schema()))?;
    let low = c.query_rows(&tables.select_low_sql())?;
    let map = c.query_value(&tables.select_shard_map_sql())?;
    let state = ProgressTables::parse_state(&shards, &low, map).map_err(anyhow::Error::msg)?;
    let pending = match &a.source {
        Some(src) => Some(pending(
            &state,
            source_of(src)?,
            &shard_map(a.shard_map.as_deref(), a.shard_by)?,
            &parse_gtid_list(
                &c.query_value("SELECT @@GLOBAL.gtid_binlog_state")?
                    .unwrap_or_default(),
            )
            .map_err(anyhow::Error::msg)?,
        )?),
        None => None,
    };
    if a.json {
        let mut v = state.to_json();
        v["pending"] = serde_json::to_value(&pending)?;
        println!("{v}");
        return Ok(());
    }
    println!("low-watermark (every group up to it is applied):");
    for (d, w) in &state.low {
        println!(
            "  domain {d}: {d}-{}-{} at {}",
            w.server_id, w.seq_no, w.end
        );
    }
    println!("shards ({}):", state.shards.len());
    for ((d, s), w) in &state.shards {
        println!("  {d}/{s}: {d}-{}-{} at {}", w.server_id, w.seq_no, w.end);
    }
    if let Some(p) = pending {
        println!(
            "source: {} groups ({} bytes) not applied yet; the source ends at {}",
            p.groups,
            p.bytes,
            p.source_end
                .map(|e| e.to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}

/// What the source holds that the target has not applied.
#[derive(Debug, serde::Serialize)]
pub struct Pending {
    /// Groups not applied.
    pub groups: u64,
    /// Their bytes.
    pub bytes: u64,
    /// End of the last group in the source.
    pub source_end: Option<crate::position::BinlogPos>,
}

fn pending(
    state: &ReplicaState,
    source: Source,
    map: &ShardMap,
    binlog_state: &[crate::position::MariaGtid],
) -> anyhow::Result<Pending> {
    let start = state
        .resume_position()
        .map(StartAt::Pos)
        .unwrap_or(StartAt::Beginning);
    let opts = ReaderOptions {
        start,
        ..ReaderOptions::default()
    };
    let mut g = Grouper::new(BinlogReader::open(source, opts)?);
    let mut p = Pending {
        groups: 0,
        bytes: 0,
        source_end: None,
    };
    while let Some(group) = g.next()? {
        p.source_end = Some(group.end());
        let Some(gtid) = group.maria_gtid() else {
            continue;
        };
        let applied = match map.placement(&group) {
            Placement::Shards(s) => state.shard_group_applied(gtid, s.iter().map(|x| &*x.0)),
            Placement::Barrier(_) => state.barrier_applied(gtid, binlog_state),
        };
        if applied == Applied::No {
            p.groups += 1;
            p.bytes += group.bytes.len() as u64;
        }
    }
    Ok(p)
}
