//! One function per command: turn parsed arguments into library options,
//! call the library, and print the result on [`Output`]. This is the
//! binary's edge: errors are `anyhow` here and nowhere in the library.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use parapply::apply::engine::{self, ApplyOptions, ApplyReport};
use parapply::binlog::Source;
use parapply::inspect::{self, InspectOptions};
use parapply::mirror::serve::{Published, ServeOptions, Server};
use parapply::mirror::{self, MirrorOptions, MirrorStart};
use parapply::position::StartAt;
use parapply::progress::{ProgressTables, Selection};
use parapply::replica::{self, Replica, ReplicaOptions};
use parapply::wire::ConnectOptions;

#[cfg(feature = "bench")]
use super::args::BenchArgs;
use super::args::{
    ApplyArgs, InspectArgs, MirrorArg, MirrorArgs, PromoteArgs, ServeArgs, ServeLoginArgs,
    StatusArgs, TargetArgs,
};
use super::output::Output;
use super::secrets::{
    connect_options, serve_password, PRIMARY_PASSWORD_ENV, REPL_PASSWORD_ENV, SERVE_PASSWORD_ENV,
    TARGET_PASSWORD_ENV,
};
use super::signals;

/// Connection options of the target, with the password from the file or
/// the environment (never from the command line).
fn target_options(t: &TargetArgs) -> anyhow::Result<ConnectOptions> {
    connect_options(
        "target",
        &t.target,
        t.target_password_file.as_deref(),
        TARGET_PASSWORD_ENV,
    )
}

fn source_of(path: &Path) -> anyhow::Result<Source> {
    if !path.exists() {
        bail!("source {} does not exist", path.display());
    }
    Ok(Source::from_paths(&[path.to_path_buf()])?)
}

/// `parapply inspect`.
pub fn inspect(a: InspectArgs, out: &mut Output) -> anyhow::Result<()> {
    let source = Source::from_paths(&a.paths)?;
    let opts = InspectOptions {
        groups: a.groups,
        json: a.json,
        start: a.from.unwrap_or(StartAt::Beginning),
        follow: a.follow,
    };
    Ok(inspect::run(source, &opts, out)?)
}

/// `parapply mirror`: until a signal (the event being written is finished
/// and synced, exit 0) or an error. With `--serve`, a binlog server in the
/// same process serves what the mirror has fsynced.
pub fn mirror(a: MirrorArgs) -> anyhow::Result<()> {
    let primary = connect_options(
        "primary",
        &a.primary,
        a.primary_password_file.as_deref(),
        PRIMARY_PASSWORD_ENV,
    )?;
    let mut o = MirrorOptions::new(primary, a.dir.clone(), a.server_id);
    let (stop, _abort) = signals::install()?;
    o.stop = Some(stop.clone());
    o.sync = a.sync;
    o.heartbeat = a.heartbeat.0;
    o.progress_every = a.progress_every.0;
    o.start = match (a.from, a.from_gtid) {
        (Some(p), _) => Some(MirrorStart::Pos(p)),
        (None, Some(g)) => Some(MirrorStart::Gtid(g)),
        (None, None) => None,
    };
    let Some(listen) = a.serve else {
        return Ok(mirror::run(&o)?);
    };
    let so = serve_options(&a.dir, &listen, &a.serve_login, &stop)?;
    let published = Arc::new(Published::new());
    o.publish = Some(published.clone());
    let server = Server::bind(so, Some(published))?;
    let server = std::thread::Builder::new()
        .name("binlog-server".into())
        .spawn(move || server.run())
        .context("starting the binlog server")?;
    let mirrored = mirror::run(&o);
    // The mirror stopped (signal or error): stop serving too.
    stop.store(true, Ordering::SeqCst);
    let served = server
        .join()
        .map_err(|_| anyhow::anyhow!("the binlog server thread panicked"))?;
    mirrored?;
    Ok(served?)
}

fn serve_options(
    dir: &Path,
    listen: &str,
    l: &ServeLoginArgs,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<ServeOptions> {
    let mut so = ServeOptions::new(
        dir,
        listen,
        l.serve_user.clone(),
        serve_password(l.serve_password_file.as_deref())?,
    );
    so.max_clients = l.serve_max_clients;
    so.server_id = l.serve_server_id;
    so.stop = stop.clone();
    Ok(so)
}

/// `parapply serve`: until a signal.
pub fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let (stop, _abort) = signals::install()?;
    let so = serve_options(&a.dir, &a.listen, &a.login, &stop)?;
    Ok(Server::bind(so, None)?.run()?)
}

/// `parapply apply`.
pub fn apply(a: ApplyArgs, out: &mut Output) -> anyhow::Result<()> {
    let (stop, abort) = signals::install()?;
    let mut opts = ApplyOptions::new(source_of(&a.source)?, target_options(&a.target)?);
    opts.workers = a.workers;
    opts.batch_groups = a.batch;
    opts.batch_bytes = a.batch_bytes.as_usize();
    opts.max_inflight_bytes = a.max_inflight_bytes.0;
    opts.follow = a.follow;
    opts.from = a.from;
    opts.until = a.until;
    opts.shard_map = a.sharding.map().map_err(anyhow::Error::msg)?;
    opts.progress = ProgressTables::new(&a.target.progress_schema)
        .map_err(|e| anyhow::anyhow!("--progress-schema: {e}"))?;
    opts.reconnect_timeout = Duration::from_secs(a.reconnect_timeout);
    opts.stop = stop.clone();
    opts.abort = abort;
    opts.status_line = true;
    let report = match engine::run(opts) {
        Ok(r) => r,
        Err(f) => {
            // What was applied and where the applied prefix ends (the next
            // run resumes there) — unless it stopped before it started.
            // The error is what matters: a report that cannot be printed
            // (standard output closed) does not replace it.
            if a.json || f.report.position.is_some() {
                print_report(out, &f.report, a.json, false).ok();
            }
            return Err(f.error.into());
        }
    };
    print_report(out, &report, a.json, stop.load(Ordering::SeqCst))
}

/// What a run applied; `stopped`: by a signal (then a drained state is
/// offered to the server's own SQL thread).
fn print_report(
    out: &mut Output,
    report: &ApplyReport,
    json: bool,
    stopped: bool,
) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(report)?)?;
    } else {
        writeln!(
            out,
            "applied {} groups ({} skipped as already applied) in {:.2} s ({:.0} groups/s)",
            report.applied,
            report.skipped,
            report.seconds,
            report.applied as f64 / report.seconds.max(1e-9)
        )?;
        if let Some(p) = &report.position {
            writeln!(
                out,
                "applied prefix ends at {p}; GTID position {}",
                report.gtid_position
            )?;
        }
        if report.drained && stopped {
            writeln!(
                out,
                "drained: every shard is at {}. To let the server's own SQL thread take over:\n  \
                 SET GLOBAL gtid_slave_pos='{}'; START SLAVE;",
                report.gtid_position, report.gtid_position
            )?;
        }
    }
    Ok(())
}

/// `parapply status`.
pub fn status(a: StatusArgs, out: &mut Output) -> anyhow::Result<()> {
    let mut replica = Replica::connect(ReplicaOptions {
        target: target_options(&a.target)?,
        progress: ProgressTables::new(&a.target.progress_schema)
            .map_err(|e| anyhow::anyhow!("--progress-schema: {e}"))?,
        reconnect_timeout: Duration::ZERO,
    })?;
    let own = replica.applied_set()?;
    let pending = match &a.source {
        Some(src) => Some(replica::pending(
            &own,
            &Selection::Restart,
            source_of(src)?,
            &a.sharding.map().map_err(anyhow::Error::msg)?,
        )?),
        None => None,
    };
    let state = &own.state;
    if a.json {
        let mut v = state.to_json();
        v["pending"] = serde_json::to_value(&pending)?;
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(out, "low-watermark (every group up to it is applied):")?;
    for (d, w) in &state.low {
        writeln!(
            out,
            "  domain {d}: {d}-{}-{} at {}",
            w.server_id, w.seq_no, w.end
        )?;
    }
    writeln!(out, "shards ({}):", state.shards.len())?;
    for ((d, s), w) in &state.shards {
        writeln!(
            out,
            "  {d}/{s}: {d}-{}-{} at {}",
            w.server_id, w.seq_no, w.end
        )?;
    }
    if let Some(p) = pending {
        writeln!(
            out,
            "source: {} groups ({} bytes) not applied yet; the source ends at {}",
            p.groups,
            p.bytes,
            p.source_end
                .map(|e| e.to_string())
                .unwrap_or_else(|| "-".into())
        )?;
    }
    Ok(())
}

/// `parapply promote`: the plan (text or one JSON line), then the report.
pub fn promote(a: PromoteArgs, out: &mut Output) -> anyhow::Result<()> {
    use parapply::promote::{self, MirrorLoc, Outcome, PromoteOptions, ReplicaSpec};
    if let Some((r, s, g)) = a.simulate {
        let rep = promote::sim::simulate(r, s, g, 42);
        if a.json {
            writeln!(out, "{}", serde_json::to_string(&rep)?)?;
        } else {
            writeln!(
                out,
                "{} replicas x {} shards ({} groups): plan {:.3} s, what each lacks {:.3} s \
                 (generating the fleet {:.3} s); {} incomparable pairs; candidate {}",
                rep.replicas,
                rep.shards,
                rep.groups,
                rep.plan_seconds,
                rep.lacks_seconds,
                rep.generate_seconds,
                rep.incomparable_pairs,
                rep.candidate
            )?;
        }
        return Ok(());
    }
    let mut replicas = Vec::new();
    for r in &a.replicas {
        let target = connect_options("replica", &r.url, None, TARGET_PASSWORD_ENV)
            .with_context(|| format!("replica {}", r.name))?;
        replicas.push(ReplicaSpec {
            name: r.name.clone(),
            target,
            mirror: match &r.mirror {
                MirrorArg::Dir(d) => MirrorLoc::Dir(d.clone()),
                MirrorArg::Server(u) => MirrorLoc::Server(
                    connect_options("replica", u, None, SERVE_PASSWORD_ENV)
                        .with_context(|| format!("replica {}'s mirror server", r.name))?,
                ),
                MirrorArg::Native => MirrorLoc::Native,
            },
        });
    }
    let mut o = PromoteOptions::new(replicas);
    o.candidate = a.candidate.clone();
    o.switchover = match (&a.old_primary, a.switchover) {
        (Some(url), true) => Some(connect_options(
            "old-primary",
            url,
            None,
            PRIMARY_PASSWORD_ENV,
        )?),
        (Some(_), false) => bail!("--old-primary is for --switchover"),
        _ => None,
    };
    o.dry_run = a.dry_run;
    o.allow_errant = a.allow_errant;
    o.unfreeze = a.unfreeze;
    o.pre_hook = a.pre_hook.clone();
    o.post_hook = a.post_hook.clone();
    o.freeze_timeout = Duration::from_secs(a.freeze_timeout);
    o.workers = a.workers;
    o.repl_user = a.repl_user.clone();
    o.repl_password = std::env::var(REPL_PASSWORD_ENV)
        .ok()
        .map(parapply::wire::Secret::new);
    o.progress = ProgressTables::new(&a.progress_schema)
        .map_err(|e| anyhow::anyhow!("--progress-schema: {e}"))?;
    o.shard_map = a.sharding.map().map_err(anyhow::Error::msg)?;
    if let Some(path) = &a.trace {
        let mut names = std::collections::BTreeMap::new();
        for s in &a.trace_servers {
            let (id, name) = s
                .split_once('=')
                .and_then(|(i, n)| Some((i.parse::<u32>().ok()?, n.to_string())))
                .ok_or_else(|| anyhow::anyhow!("--trace-server `{s}`: expected ID=NAME"))?;
            names.insert(id, name);
        }
        o.trace = Some(
            parapply::trace::TraceSink::open(path, names)
                .with_context(|| format!("--trace {}", path.display()))?,
        );
    }
    let json = a.json;
    let mut printed: anyhow::Result<()> = Ok(());
    let outcome = {
        let mut on_plan = |p: &promote::Plan| {
            printed = print_plan(p, json, out);
        };
        promote::run(&o, &mut on_plan)
    };
    printed?;
    match outcome? {
        Outcome::DryRun(_) => {}
        Outcome::Unfrozen(names) => {
            if json {
                writeln!(out, "{}", serde_json::json!({ "unfrozen": names }))?;
            } else {
                writeln!(out, "freeze cleared on: {}", names.join(", "))?;
            }
        }
        Outcome::Done(r) => {
            if json {
                writeln!(out, "{}", serde_json::json!({ "report": r }))?;
            } else {
                writeln!(
                    out,
                    "promoted {} ({}) in {:.2} s (writable after {:.2} s, of which catch-up {:.2} s); \
                     others re-pointed at {}",
                    r.primary, r.primary_addr, r.seconds, r.writable_after, r.catch_up_seconds, r.repoint
                )?;
                for s in &r.steps {
                    writeln!(
                        out,
                        "  {:<20} {:<8} {:>8.3} s  {}",
                        s.step,
                        s.replica.as_deref().unwrap_or("-"),
                        s.seconds,
                        s.detail
                    )?;
                }
            }
            if let Some(e) = r.post_hook_error {
                bail!("the promotion is done, but the post-hook failed: {e}");
            }
        }
    }
    Ok(())
}

fn print_plan(p: &parapply::promote::Plan, json: bool, out: &mut Output) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::json!({ "plan": p }))?;
        out.flush()?;
        return Ok(());
    }
    writeln!(out, "plan: promote {} ({})", p.candidate, p.why)?;
    writeln!(
        out,
        "  source: the mirror of {} ({} bytes); lost if promoted now: {} groups, {} bytes",
        p.source, p.source_bytes, p.lost_groups, p.lost_bytes
    )?;
    for r in &p.replicas {
        writeln!(
            out,
            "  {:<10} lacks {:>6} groups ({:>9} bytes)  mirror {:>10} bytes  {} the candidate{}",
            r.name,
            r.lacks_groups,
            r.lacks_bytes,
            r.mirror_bytes,
            r.versus_candidate,
            if r.native { "  (native)" } else { "" }
        )?;
    }
    if !p.incomparable_pairs.is_empty() {
        let pairs: Vec<String> = p
            .incomparable_pairs
            .iter()
            .map(|(a, b)| format!("{a}/{b}"))
            .collect();
        writeln!(out, "  incomparable: {}", pairs.join(", "))?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(feature = "bench")]
/// `parapply bench`: the table (or JSON) on standard output; progress goes
/// to stderr.
pub fn bench(a: BenchArgs, out: &mut Output) -> anyhow::Result<()> {
    let opts = parapply::bench::BenchOptions {
        transactions: a.transactions,
        databases: a.databases,
        runs: a.runs,
        clients: a.clients,
        configs: a.configs,
    };
    let report = parapply::bench::run(&opts)?;
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", parapply::bench::render_table(&report))?;
    }
    Ok(())
}
