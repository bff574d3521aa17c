//! One function per command: turn parsed arguments into library options,
//! call the library, and print the result on [`Output`]. This is the
//! binary's edge: errors are `anyhow` here and nowhere in the library.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use parapply::apply::engine::{self, ApplyOptions, ApplyReport, Until};
use parapply::apply::filter::Filter;
use parapply::apply::start::BackupInfo;
use parapply::binlog::Source;
use parapply::inspect::{self, InspectOptions};
use parapply::metrics;
use parapply::mirror::serve::{Published, ServeOptions, Server};
use parapply::mirror::{self, MirrorOptions, MirrorStart};
use parapply::position::StartAt;
use parapply::progress::{ProgressTables, Selection};
use parapply::replica::{self, Replica, ReplicaOptions, WaitOptions, WaitOutcome};
use parapply::schedule::ShardBy;
use parapply::text::escape_control;
use parapply::wire::{ClientTls, ConnectOptions};

#[cfg(feature = "bench")]
use super::args::BenchArgs;
#[cfg(feature = "demo")]
use super::args::DemoArgs;
use super::args::{
    ApplyArgs, InspectArgs, MirrorArg, MirrorArgs, PromoteArgs, ServeArgs, ServeLoginArgs,
    StatusArgs, TargetArgs, WaitArgs,
};
use super::output::Output;
use super::secrets::{
    connect_options, serve_password, PRIMARY_PASSWORD_ENV, REPL_PASSWORD_ENV, SERVE_PASSWORD_ENV,
    TARGET_PASSWORD_ENV,
};
use super::signals;

/// Connection options of the target, with the password from the file or
/// the environment (never from the command line).
fn target_options(t: &TargetArgs, tls: &ClientTls) -> anyhow::Result<ConnectOptions> {
    connect_options(
        "target",
        &t.target,
        t.target_password_file.as_deref(),
        TARGET_PASSWORD_ENV,
        tls,
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
pub fn mirror(a: MirrorArgs, tls: &ClientTls) -> anyhow::Result<()> {
    let primary = connect_options(
        "primary",
        &a.primary,
        a.primary_password_file.as_deref(),
        PRIMARY_PASSWORD_ENV,
        tls,
    )?;
    let mut o = MirrorOptions::new(primary, a.dir.clone(), a.server_id);
    let (stop, _abort) = signals::install()?;
    o.stop = Some(stop.clone());
    let m = o.metrics.clone();
    let _endpoint = serve_metrics(a.metrics.as_deref(), Arc::new(move || m.render()))?;
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
    if let (Some(cert), Some(key)) = (&l.serve_ssl_cert, &l.serve_ssl_key) {
        so.tls = Some(parapply::wire::tls::server_config(cert, key)?);
    }
    so.require_tls = l.serve_require_ssl;
    Ok(so)
}

/// `parapply serve`: until a signal.
pub fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let (stop, _abort) = signals::install()?;
    let so = serve_options(&a.dir, &a.listen, &a.login, &stop)?;
    Ok(Server::bind(so, None)?.run()?)
}

/// `parapply apply`.
pub fn apply(a: ApplyArgs, tls: &ClientTls, out: &mut Output) -> anyhow::Result<()> {
    let (stop, abort) = signals::install()?;
    let target = target_options(&a.target, tls)?;
    // Services started together: in follow mode the mirror may not have
    // written its first file yet (as the SQL thread waits for its relay log).
    let source = if a.follow && a.source.extension().is_none_or(|x| x != "index") {
        match Source::wait_for_dir(&a.source, &stop)? {
            Some(s) => s,
            None => return Ok(()),
        }
    } else {
        source_of(&a.source)?
    };
    let mut opts = ApplyOptions::new(source, target);
    opts.workers = a.workers;
    opts.batch_groups = a.batch;
    opts.batch_bytes = a.batch_bytes.as_usize();
    opts.max_inflight_bytes = a.max_inflight_bytes.0;
    opts.follow = a.follow;
    opts.from = a.from;
    opts.from_backup = a
        .from_backup
        .as_deref()
        .map(BackupInfo::read)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--from-backup: {e}"))?;
    opts.until = a.until.or(a.until_time.map(Until::Time));
    opts.shard_map = a.sharding.map().map_err(anyhow::Error::msg)?;
    opts.progress = ProgressTables::new(&a.target.progress_schema)
        .map_err(|e| anyhow::anyhow!("--progress-schema: {e}"))?;
    opts.reconnect_timeout = Duration::from_secs(a.reconnect_timeout);
    opts.ignore_server_ids = a.ignore_server_ids.iter().copied().collect();
    opts.filter = Filter {
        include_db: a.include_db,
        exclude_db: a.exclude_db,
        include_table: a.include_table,
        exclude_table: a.exclude_table,
        rewrite_db: a.rewrite_db,
    };
    opts.liveness = a.liveness.0;
    opts.stop = stop.clone();
    opts.abort = abort;
    opts.status_line = true;
    let m = opts.metrics.clone();
    let _endpoint = serve_metrics(a.metrics.as_deref(), Arc::new(move || m.render()))?;
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

/// A running metrics endpoint; stopped and joined when dropped.
struct Endpoint {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `render` at `addr` (`--metrics`), if given.
fn serve_metrics(addr: Option<&str>, render: metrics::Render) -> anyhow::Result<Option<Endpoint>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (_, thread) = metrics::serve(addr, render, stop.clone())
        .with_context(|| format!("--metrics {addr}: cannot listen"))?;
    Ok(Some(Endpoint {
        stop,
        thread: Some(thread),
    }))
}

/// A running applier's live figures, read from its metrics endpoint.
#[derive(Debug, serde::Serialize)]
struct Live {
    groups_per_second: Option<f64>,
    lag_seconds: Option<f64>,
    groups_in_flight: Option<f64>,
    groups_total: Option<f64>,
    latency_p99_seconds: Option<f64>,
    commit_lag_p99_seconds: Option<f64>,
    reconnects_total: Option<f64>,
}

fn live_figures(addr: &str) -> anyhow::Result<Live> {
    let page = metrics::scrape(addr)
        .with_context(|| format!("--live {addr}: reading the applier's metrics"))?;
    let v = |name: &str| metrics::sample_value(&page, name, &[]);
    let q = |name: &str| metrics::sample_value(&page, name, &[("quantile", "0.99")]);
    Ok(Live {
        groups_per_second: v("parapply_apply_groups_per_second"),
        lag_seconds: v("parapply_apply_lag_seconds"),
        groups_in_flight: v("parapply_apply_groups_in_flight"),
        groups_total: v("parapply_apply_groups_total"),
        latency_p99_seconds: q("parapply_apply_latency_seconds"),
        commit_lag_p99_seconds: q("parapply_apply_commit_lag_seconds"),
        reconnects_total: v("parapply_apply_reconnects_total"),
    })
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
        if report.ignored > 0 {
            writeln!(
                out,
                "ignored {} groups of the servers of --ignore-server-ids",
                report.ignored
            )?;
        }
        if report.filtered > 0 {
            writeln!(
                out,
                "left out {} groups the filters emptied",
                report.filtered
            )?;
        }
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

/// The target's control connection, for the commands that only read it.
fn connect_target(t: &TargetArgs, tls: &ClientTls) -> anyhow::Result<Replica> {
    Ok(Replica::connect(ReplicaOptions {
        target: target_options(t, tls)?,
        progress: ProgressTables::new(&t.progress_schema)
            .map_err(|e| anyhow::anyhow!("--progress-schema: {e}"))?,
        reconnect_timeout: Duration::ZERO,
    })?)
}

/// `parapply status`.
pub fn status(a: StatusArgs, tls: &ClientTls, out: &mut Output) -> anyhow::Result<()> {
    let mut replica = connect_target(&a.target, tls)?;
    let own = replica.applied_set()?;
    let pending = match &a.source {
        Some(src) => {
            let mut map = a.sharding.map().map_err(anyhow::Error::msg)?;
            if matches!(map.by(), ShardBy::Key(_)) {
                // The target's keys now (groups beyond a DDL not yet
                // applied are placed by them too: the count is an estimate).
                map.set_catalog(Arc::new(replica.key_catalog()?));
            }
            Some(replica::pending(
                &own,
                &Selection::Restart,
                source_of(src)?,
                &map,
            )?)
        }
        None => None,
    };
    let live = a.live.as_deref().map(live_figures).transpose()?;
    let state = &own.state;
    if a.json {
        let mut v = state.to_json();
        v["pending"] = serde_json::to_value(&pending)?;
        if let Some(p) = &pending {
            v["lag"] = serde_json::json!({ "seconds": p.lag_seconds(), "bytes": p.bytes });
        }
        if let Some(l) = &live {
            v["live"] = serde_json::to_value(l)?;
        }
        writeln!(out, "{v}")?;
        return Ok(());
    }
    // Names and file names come from the primary: shown escaped.
    writeln!(out, "low-watermark (every group up to it is applied):")?;
    for (d, w) in &state.low {
        writeln!(
            out,
            "  domain {d}: {d}-{}-{} at {}",
            w.server_id,
            w.seq_no,
            escape_control(&w.end.to_string())
        )?;
    }
    writeln!(out, "shards ({}):", state.shards.len())?;
    for ((d, s), w) in &state.shards {
        writeln!(
            out,
            "  {d}/{}: {d}-{}-{} at {}",
            escape_control(s),
            w.server_id,
            w.seq_no,
            escape_control(&w.end.to_string())
        )?;
    }
    if let Some(p) = pending {
        writeln!(
            out,
            "source: {} groups ({} bytes) not applied yet; the source ends at {}",
            p.groups,
            p.bytes,
            p.source_end
                .as_ref()
                .map(|e| escape_control(&e.to_string()).into_owned())
                .unwrap_or_else(|| "-".into())
        )?;
        writeln!(
            out,
            "lag behind the source's end: {} s ({} bytes)",
            p.lag_seconds(),
            p.bytes
        )?;
    }
    if let Some(l) = live {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        writeln!(
            out,
            "live: {} groups/s, lag {} s, {} groups in flight, p99 apply latency {} s, \
             p99 commit-to-apply lag {} s",
            f(l.groups_per_second),
            f(l.lag_seconds),
            f(l.groups_in_flight),
            f(l.latency_p99_seconds),
            f(l.commit_lag_p99_seconds)
        )?;
    }
    Ok(())
}

/// `parapply promote`: the plan (text or one JSON line), then the report.
pub fn promote(a: PromoteArgs, tls: &ClientTls, out: &mut Output) -> anyhow::Result<()> {
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
        let target = connect_options("replica", &r.url, None, TARGET_PASSWORD_ENV, tls)
            .with_context(|| format!("replica {}", r.name))?;
        replicas.push(ReplicaSpec {
            name: r.name.clone(),
            target,
            mirror: match &r.mirror {
                MirrorArg::Dir(d) => MirrorLoc::Dir(d.clone()),
                MirrorArg::Server(u) => MirrorLoc::Server(
                    connect_options("replica", u, None, SERVE_PASSWORD_ENV, tls)
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
            tls,
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

/// Exit code of `parapply wait` when the timeout passes first.
pub const WAIT_TIMED_OUT: u8 = 3;
/// Exit code of `parapply wait` when the source passed the GTID without it.
pub const WAIT_UNKNOWN: u8 = 4;

/// `parapply wait`: one line (or JSON object) saying how the wait ended;
/// the exit code says it too.
pub fn wait(a: WaitArgs, tls: &ClientTls, out: &mut Output) -> anyhow::Result<ExitCode> {
    let mut replica = connect_target(&a.target, tls)?;
    if let Some(src) = &a.source {
        if !src.exists() {
            bail!("source {} does not exist", src.display());
        }
    }
    let opts = WaitOptions {
        gtid: a.gtid,
        source: a.source.clone(),
        map: a.sharding.map().map_err(anyhow::Error::msg)?,
        timeout: a.timeout,
        poll: WaitOptions::DEFAULT_POLL,
    };
    let outcome = replica::wait_applied(&mut replica, &opts)?;
    let g = a.gtid;
    let (word, text, code) = match &outcome {
        WaitOutcome::Reached => ("reached", format!("{g} is applied"), ExitCode::SUCCESS),
        WaitOutcome::TimedOut => (
            "timed_out",
            format!("{g} is not applied yet; the timeout passed"),
            ExitCode::from(WAIT_TIMED_OUT),
        ),
        WaitOutcome::Unknown { passed, at } => (
            "unknown",
            format!(
                "{g} is not in the source and will not come: the source holds {passed} \
                 (ending at {at}) after the target's applied prefix, without {g}"
            ),
            ExitCode::from(WAIT_UNKNOWN),
        ),
    };
    if a.json {
        let mut v = serde_json::json!({ "gtid": g.to_string(), "outcome": word });
        if let WaitOutcome::Unknown { passed, at } = &outcome {
            v["passed_by"] = passed.to_string().into();
            v["at"] = at.to_string().into();
        }
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "{text}")?;
    }
    Ok(code)
}

#[cfg(feature = "bench")]
/// `parapply bench`: the table (or JSON) on standard output; progress goes
/// to stderr.
pub fn bench(a: BenchArgs, out: &mut Output) -> anyhow::Result<()> {
    let lag = if a.lag.is_empty() {
        None
    } else {
        Some(parapply::bench::LagOptions {
            fractions: a.lag,
            base_rate: a.lag_base_rate,
            seconds: a.lag_seconds,
            parapply: std::env::current_exe()?,
        })
    };
    let opts = parapply::bench::BenchOptions {
        workloads: a.workload,
        scale: a.scale,
        runs: a.runs,
        clients: a.clients,
        configs: a.configs,
        charts: a.charts,
        lag,
    };
    let report = parapply::bench::run(&opts)?;
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", parapply::bench::render_report(&report))?;
    }
    Ok(())
}

#[cfg(feature = "demo")]
/// `parapply demo`: the story on standard output (standard error with
/// `--json`, whose summary is the one line on standard output); Ctrl-C
/// stops it and removes everything.
pub fn demo(a: DemoArgs, out: &mut Output) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let (stop, _abort) = signals::install()?;
    let terminal = if a.json {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let opts = parapply::demo::DemoOptions {
        short: a.short,
        keep: a.keep,
        terminal,
        stop,
    };
    let mut json = Ok(());
    let mut on_summary = |s: &parapply::demo::DemoSummary| {
        if a.json {
            json = serde_json::to_string(s)
                .map_err(anyhow::Error::from)
                .and_then(|line| Ok(writeln!(out, "{line}").and_then(|()| out.flush())?));
        }
        Ok(())
    };
    let result = if a.json {
        parapply::demo::run(&opts, &mut std::io::stderr(), &mut on_summary)
    } else {
        let mut story = std::io::stdout();
        parapply::demo::run(&opts, &mut story, &mut on_summary)
    };
    result?;
    json
}
