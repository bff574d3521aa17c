//! `parapply demo`: the whole story on throwaway servers of this machine,
//! with nothing to configure (feature `demo`, on by default).
//!
//! # Steps ([`run`])
//!
//! 1. **Servers** ([`fleet`]): a primary, three replicas `r1`–`r3`
//!    (durable, read-only, their own binlog) and a fourth run by MariaDB's
//!    own single SQL thread, each a [`crate::sandbox::Server`] on a free
//!    loopback port. Each of `r1`–`r3` gets a mirror of the primary's
//!    binlog ([`crate::mirror::run`] in a thread: `parapply mirror`); the
//!    SQL-thread replica's IO thread fills its relay log.
//! 2. **Race**: client connections write orders to eight databases
//!    ([`load`]); then, on the same binlog, the three appliers
//!    ([`crate::apply::engine::run`] with `follow`: `parapply apply
//!    --follow`) and the SQL thread start at one moment. Each one's time to
//!    apply every group is measured; the speed-up is the SQL thread's time
//!    over the slowest applier's.
//! 3. **Crash**: a long report on `r1` locks the tables of `shop1`, one on
//!    `r2` those of `shop2` (their appliers go on with every other
//!    database); the load goes on; `r3`'s mirror loses the primary
//!    (stopped); the primary is killed (SIGKILL) mid-load. Once the
//!    appliers have applied what they can, they are stopped at once (as a
//!    crash of their hosts would: open transactions roll back) and the
//!    reports end. The replicas' states are shown side by side per
//!    database, and each pair compared ([`crate::progress::compare`]):
//!    incomparable pairs are marked.
//! 4. **Promotion**: [`crate::promote::run`] over the three replicas and
//!    their mirrors: its plan (candidate, source, the catch-up set of each
//!    replica), then its report.
//! 5. **New writes**: the other two replicas mirror the new primary from
//!    the re-point position promote gave and their appliers resume; orders
//!    written on the new primary reach them (checksums polled).
//! 6. **Checks and summary** ([`DemoSummary`], measured): every replica's
//!    checksums equal, its ledger holds every order of the longest mirror
//!    plus the new ones (none lost), one writable server.
//!
//! `short` shrinks every step (the test, `tests/demo.rs`); `keep` leaves
//! everything running after the summary, with how to connect to each
//! server, until `stop`. `stop` (Ctrl-C) ends the demo at the next check:
//! a promotion already started finishes first; every thread is stopped and
//! joined and every server removed on the way out.

mod fleet;
mod load;
mod view;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use crate::apply::ApplyError;
use crate::binlog::{BinlogReader, ReadError, ReaderOptions, Source};
use crate::group::{GroupKind, Grouper};
use crate::mirror::MirrorError;
use crate::position::BinlogPos;
use crate::promote::{self, MirrorLoc, Outcome, PromoteError, PromoteOptions, ReplicaSpec};
use crate::replica::ReplicaError;
use crate::sandbox::{column, SandboxError, Server};

use fleet::{Fleet, Node};
use load::{Load, LoadSpec};
use view::{Line, Live};

pub use view::PairOrder;

/// What `run` needs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// A shorter run (the test's).
    pub short: bool,
    /// Leave everything running after the summary until `stop`.
    pub keep: bool,
    /// The output is a terminal: redraw progress in place, use colour.
    pub terminal: bool,
    /// Set to stop (Ctrl-C).
    pub stop: Arc<AtomicBool>,
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A throwaway server failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A statement failed.
    #[error("{server}: `{sql}`: {error}")]
    Sql {
        /// The server.
        server: String,
        /// The statement.
        sql: String,
        /// The error.
        error: String,
    },
    /// A load client failed before the primary was killed.
    #[error("the workload failed: {0}")]
    Load(String),
    /// A mirror failed.
    #[error("{replica}'s mirror: {error}")]
    Mirror {
        /// The replica.
        replica: String,
        /// The error.
        error: Box<MirrorError>,
    },
    /// A mirror could not be read.
    #[error("{replica}'s mirror: {error}")]
    Read {
        /// The replica.
        replica: String,
        /// The error.
        error: Box<ReadError>,
    },
    /// An applier failed.
    #[error("{replica}'s applier: {error}")]
    Apply {
        /// The replica.
        replica: String,
        /// The error.
        error: Box<ApplyError>,
    },
    /// A replica's parapply state could not be read.
    #[error("{replica}: {error}")]
    Replica {
        /// The replica.
        replica: String,
        /// The error.
        error: Box<ReplicaError>,
    },
    /// The promotion failed.
    #[error("promotion: {0}")]
    Promote(#[from] Box<PromoteError>),
    /// Something did not happen in time.
    #[error("{0}")]
    Timeout(String),
    /// A thread of the demo panicked.
    #[error("{0} panicked")]
    Panicked(String),
    /// An I/O error (output, threads).
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        error: std::io::Error,
    },
    /// Stopped by the user.
    #[error("interrupted: every server was stopped and removed")]
    Interrupted,
}

impl DemoError {
    fn io(what: &str, error: std::io::Error) -> DemoError {
        DemoError::Io {
            what: what.into(),
            error,
        }
    }
}

impl From<std::io::Error> for DemoError {
    fn from(e: std::io::Error) -> Self {
        DemoError::io("writing the demo's output", e)
    }
}

/// The race between the SQL thread and parapply.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Race {
    /// Groups of the binlog both applied.
    pub groups: u64,
    /// Seconds MariaDB's single SQL thread took.
    pub sql_thread_seconds: f64,
    /// Seconds each parapply applier took (all three ran at once, beside
    /// the SQL thread).
    pub parapply_seconds: BTreeMap<String, f64>,
    /// The SQL thread's time over the slowest applier's.
    pub speedup: f64,
}

/// What the promotion did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Promotion {
    /// The new primary.
    pub primary: String,
    /// Whose mirror was the catch-up source.
    pub source: String,
    /// Groups no mirror held (lost by the old primary's death).
    pub lost_groups: u64,
    /// The catch-up set of each replica, in groups, as planned.
    pub catch_up_groups: BTreeMap<String, u64>,
    /// Seconds the promotion took.
    pub seconds: f64,
    /// Where the others follow the new primary from.
    pub repoint: String,
}

/// One replica at the end.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplicaCheck {
    /// Its name.
    pub name: String,
    /// Its port on 127.0.0.1 (user root, no password).
    pub port: u16,
    /// Whether it is read-only (every one but the new primary).
    pub read_only: bool,
    /// Rows of its ledgers (one per order).
    pub ledger_rows: u64,
    /// Orders its `totals` rows count (equal to `ledger_rows`: each once).
    pub totals_orders: u64,
    /// `CHECKSUM TABLE … EXTENDED` of every table of the workload.
    pub checksums: BTreeMap<String, u64>,
}

/// One throwaway server of the demo.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerInfo {
    /// `primary` (the old one), `r1`–`r3`, `sql`.
    pub name: String,
    /// Its port on 127.0.0.1 (user root, no password).
    pub port: u16,
    /// Its sandbox directory (data, binlogs, mirrors, error log), removed
    /// with it.
    pub dir: String,
}

/// The closing summary: every figure measured in this run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoSummary {
    /// `short` or `full`.
    pub mode: String,
    /// Databases of the workload.
    pub databases: usize,
    /// Orders the old primary acknowledged before it was killed.
    pub orders_acknowledged: u64,
    /// Orders in the longest mirror (what promotion can keep).
    pub orders_in_longest_mirror: u64,
    /// Orders written on the new primary.
    pub new_orders: u64,
    /// Seconds from the new orders to every replica holding them.
    pub new_orders_reached_all_after: f64,
    /// The race.
    pub race: Race,
    /// How the replicas' states compared after the crash.
    pub states: Vec<PairOrder>,
    /// Of which incomparable.
    pub incomparable_pairs: usize,
    /// The promotion.
    pub promotion: Promotion,
    /// The replicas at the end.
    pub replicas: Vec<ReplicaCheck>,
    /// Whether every replica's checksums are equal.
    pub checksums_equal: bool,
    /// Orders of the longest mirror or new ones missing on some replica.
    pub lost_orders: u64,
    /// Servers writable at the end (one: the new primary).
    pub writable_servers: usize,
    /// Every server of the demo.
    pub servers: Vec<ServerInfo>,
    /// Seconds the demo took (up to the summary).
    pub seconds: f64,
}

/// The sizes of a run.
struct Sizes {
    clients: u64,
    race_orders: u64,
    crash_seconds: f64,
    crash_rate: f64,
    new_orders: u64,
}

impl Sizes {
    fn of(short: bool) -> Sizes {
        if short {
            Sizes {
                clients: 2,
                race_orders: 300,
                crash_seconds: 3.0,
                crash_rate: 80.0,
                new_orders: 16,
            }
        } else {
            Sizes {
                clients: 4,
                race_orders: 3000,
                crash_seconds: 10.0,
                crash_rate: 150.0,
                new_orders: 80,
            }
        }
    }
}

/// How long any one wait of the demo may take.
const WAIT_LIMIT: Duration = Duration::from_secs(600);
/// The pause between two looks at the servers.
const TICK: Duration = Duration::from_millis(200);

/// The demo's state between steps.
struct Demo<'a> {
    o: &'a DemoOptions,
    out: &'a mut dyn Write,
    sizes: Sizes,
    started: Instant,
}

/// Runs the demo (see the module doc), writing its story to `out`;
/// `on_summary` is called with the summary while every server still runs.
pub fn run(
    o: &DemoOptions,
    out: &mut dyn Write,
    on_summary: &mut dyn FnMut(&DemoSummary) -> Result<(), DemoError>,
) -> Result<DemoSummary, DemoError> {
    let mut d = Demo {
        o,
        out,
        sizes: Sizes::of(o.short),
        started: Instant::now(),
    };
    d.say("1/6 starting throwaway MariaDB servers (127.0.0.1, free ports)")?;
    let mut fleet = {
        let out = &mut *d.out;
        Fleet::start(|name, s| {
            let _ = writeln!(out, "  {name:<8} port {}  {}", s.port(), s.root().display());
        })?
    };
    d.check_stop()?;
    load::create_schema(&fleet.primary)?;
    let port = fleet.primary.port();
    for (i, n) in fleet.nodes.iter_mut().enumerate() {
        let dir = n.mirror_dir.clone();
        n.start_mirror(port, dir, None, 100 + i as u32)?;
    }
    fleet.start_sql_io()?;
    let race = d.race(&mut fleet)?;
    let (acknowledged, old_mirrors) = d.crash(&mut fleet)?;
    let states = d.show_states(&fleet)?;
    let (report, plan) = d.promote(&fleet)?;
    let after = d.new_writes(&mut fleet, &report)?;
    let summary = d.summarize(
        &fleet,
        race,
        acknowledged,
        &old_mirrors,
        states,
        report,
        plan,
        after,
    )?;
    d.say("6/6 summary (every figure measured in this run)")?;
    write!(d.out, "{}", summary.render())?;
    d.out.flush()?;
    on_summary(&summary)?;
    if o.keep {
        d.keep(&fleet)?;
    }
    Ok(summary)
}

impl Demo<'_> {
    fn say(&mut self, text: &str) -> Result<(), DemoError> {
        let t = self.started.elapsed().as_secs_f64();
        if self.o.terminal {
            writeln!(self.out, "\n\x1b[1m==> {text}\x1b[0m   [{t:.0} s]")?;
        } else {
            writeln!(self.out, "\n==> {text}   [{t:.0} s]")?;
        }
        self.out.flush()?;
        Ok(())
    }

    fn check_stop(&self) -> Result<(), DemoError> {
        if self.o.stop.load(Ordering::Relaxed) {
            return Err(DemoError::Interrupted);
        }
        Ok(())
    }

    /// Sleeps one tick; fails when stopped or past `deadline`.
    fn tick(&self, deadline: Instant, what: &str) -> Result<(), DemoError> {
        self.check_stop()?;
        if Instant::now() > deadline {
            return Err(DemoError::Timeout(format!(
                "{what}: not done within {} s",
                WAIT_LIMIT.as_secs()
            )));
        }
        std::thread::sleep(TICK);
        Ok(())
    }

    /// Step 2: the orders, then the SQL thread and the appliers on them.
    fn race(&mut self, fleet: &mut Fleet) -> Result<Race, DemoError> {
        let n = self.sizes.race_orders;
        self.say(&format!(
            "2/6 {n} orders over {} databases on the primary; three mirrors copy its binlog",
            load::DATABASES
        ))?;
        let load = Load::start(
            &fleet.primary,
            &LoadSpec {
                clients: self.sizes.clients,
                orders: Some(n),
                rate: None,
                first_id: 1,
            },
        )?;
        let mut live = Live::new(self.o.terminal);
        let deadline = Instant::now() + WAIT_LIMIT;
        let mut rate = Rate::default();
        while !load.finished() {
            live.show(self.out, &[primary_line(&load, Some(n), &mut rate)], false)?;
            self.tick(deadline, "the workload")?;
        }
        live.show(self.out, &[primary_line(&load, Some(n), &mut rate)], true)?;
        load.stop(false)?;
        let goal = seq_of(&fleet.primary.gtid_binlog_pos()?);
        let (file, pos) = master_status(&fleet.primary)?;
        while !fleet
            .nodes
            .iter()
            .all(|nd| fleet::file_len(&nd.mirror_dir, &file) >= pos)
            || !relay_has(&fleet.sql, &fleet.primary.gtid_binlog_pos()?)?
        {
            self.tick(deadline, "mirroring the binlog")?;
        }
        self.say(&format!(
            "   the same {goal} groups applied by MariaDB's single SQL thread and by three \
             parapply appliers, all started now"
        ))?;
        let t0 = Instant::now();
        fleet.sql.exec("START SLAVE SQL_THREAD")?;
        for nd in &mut fleet.nodes {
            nd.start_applier(&self.o.stop)?;
        }
        let mut done: BTreeMap<String, f64> = BTreeMap::new();
        let mut sql_rate = Rate::default();
        let mut live = Live::new(self.o.terminal);
        loop {
            let mut lines: Vec<Line> = fleet.nodes.iter().map(node_line).collect();
            let sql_done = seq_of(&gtid_slave_pos(&fleet.sql)?);
            lines.push(Line {
                name: "sql".into(),
                what: "SQL thread",
                done: sql_done,
                rate: sql_rate.update(sql_done),
                ..Line::default()
            });
            for l in &mut lines {
                l.goal = Some(goal);
                if l.done >= goal {
                    done.entry(l.name.clone())
                        .or_insert(t0.elapsed().as_secs_f64());
                }
                l.finished = done.get(&l.name).copied();
            }
            let all = done.len() == lines.len();
            live.show(self.out, &lines, all)?;
            if all {
                break;
            }
            self.check_appliers(fleet)?;
            self.tick(deadline, "the race")?;
        }
        fleet.sql.exec("STOP SLAVE")?;
        let sql_thread_seconds = done.remove("sql").unwrap_or_default();
        let slowest = done.values().copied().fold(0.0, f64::max);
        let speedup = sql_thread_seconds / slowest.max(1e-3);
        writeln!(
            self.out,
            "  measured: the SQL thread took {sql_thread_seconds:.1} s, the slowest parapply \
             applier {slowest:.1} s: {speedup:.1}x faster (the SQL thread's part ends here)"
        )?;
        Ok(Race {
            groups: goal,
            sql_thread_seconds,
            parapply_seconds: done,
            speedup,
        })
    }

    /// Fails with an applier's error if one ended by itself.
    fn check_appliers(&self, fleet: &mut Fleet) -> Result<(), DemoError> {
        for nd in &mut fleet.nodes {
            if nd.applier_ended() {
                nd.stop_applier(false)?;
                return Err(DemoError::Timeout(format!(
                    "{}'s applier stopped by itself",
                    nd.name
                )));
            }
        }
        Ok(())
    }

    /// Step 3: reports lock a database on r1 and r2, r3's mirror loses the
    /// primary, the primary is killed mid-load, the appliers apply what
    /// they can and are stopped hard. Returns the orders the primary
    /// acknowledged, and the old mirrors.
    fn crash(&mut self, fleet: &mut Fleet) -> Result<(u64, Vec<std::path::PathBuf>), DemoError> {
        self.say(
            "3/6 a long report locks shop1 on r1 and shop2 on r2; the load goes on; r3's mirror \
             loses the primary; then the primary is killed (SIGKILL) mid-load",
        )?;
        fleet.hold_lock(0, &load::db(0))?;
        fleet.hold_lock(1, &load::db(1))?;
        let before = self.sizes.race_orders;
        let load = Load::start(
            &fleet.primary,
            &LoadSpec {
                clients: self.sizes.clients,
                orders: None,
                rate: Some(self.sizes.crash_rate),
                first_id: before + 1,
            },
        )?;
        let t0 = Instant::now();
        let total = Duration::from_secs_f64(self.sizes.crash_seconds);
        let mut live = Live::new(self.o.terminal);
        let deadline = Instant::now() + WAIT_LIMIT;
        let mut rate = Rate::default();
        while t0.elapsed() < total {
            if fleet.nodes[2].mirrored_bytes() > 0 && t0.elapsed() > total.mul_f64(0.4) {
                fleet.nodes[2].stop_mirror()?;
            }
            if load.any_ended() {
                return Err(load.stop(false).err().unwrap_or(DemoError::Load(
                    "a client ended before the primary was killed".into(),
                )));
            }
            let mut lines = vec![primary_line(&load, None, &mut rate)];
            lines.extend(fleet.nodes.iter().map(node_line));
            live.show(self.out, &lines, false)?;
            self.tick(deadline, "the load")?;
        }
        fleet.primary.kill9()?;
        let acknowledged = before + load.stop(true)?;
        let mut old_mirrors = Vec::new();
        for nd in &mut fleet.nodes {
            nd.stop_mirror()?;
            old_mirrors.push(nd.mirror_dir.clone());
        }
        writeln!(
            self.out,
            "  primary killed after acknowledging {acknowledged} orders; the appliers apply \
             what their mirrors hold"
        )?;
        // Applied what they can: no applier moved for a while.
        let mut last: Vec<u64> = Vec::new();
        let mut still = Instant::now();
        while still.elapsed() < Duration::from_secs(2) {
            let now: Vec<u64> = fleet.nodes.iter().map(applied_of).collect();
            if now != last {
                still = Instant::now();
                last = now;
            }
            let lines: Vec<Line> = fleet.nodes.iter().map(node_line).collect();
            live.show(self.out, &lines, false)?;
            self.check_appliers(fleet)?;
            self.tick(deadline, "the appliers settling")?;
        }
        let lines: Vec<Line> = fleet.nodes.iter().map(node_line).collect();
        live.show(self.out, &lines, true)?;
        // Stopped hard, as their hosts' crash would: a worker waiting on a
        // report's lock rolls back when the report ends.
        for nd in &fleet.nodes {
            nd.abort_applier();
        }
        fleet.release_locks();
        for nd in &mut fleet.nodes {
            nd.stop_applier(true)?;
        }
        Ok((acknowledged, old_mirrors))
    }

    /// The states side by side, and each pair compared.
    fn show_states(&mut self, fleet: &Fleet) -> Result<Vec<PairOrder>, DemoError> {
        self.say("   the replicas' states now, per database")?;
        let mut states = Vec::new();
        for nd in &fleet.nodes {
            states.push((nd.name.clone(), nd.state()?));
        }
        let pairs = view::pair_orders(&states);
        let table = view::states_table(&states, &load::databases(), &pairs, self.o.terminal);
        write!(self.out, "{table}")?;
        Ok(pairs)
    }

    /// Step 4: `parapply promote` over the three replicas.
    fn promote(
        &mut self,
        fleet: &Fleet,
    ) -> Result<(promote::PromoteReport, promote::Plan), DemoError> {
        self.say("4/6 parapply promote: freeze, check the mirrors, plan, catch up, switch")?;
        self.check_stop()?;
        let specs = fleet
            .nodes
            .iter()
            .map(|nd| ReplicaSpec {
                name: nd.name.clone(),
                target: nd.target(),
                mirror: MirrorLoc::Dir(nd.mirror_dir.clone()),
            })
            .collect();
        let o = PromoteOptions::new(specs);
        let mut plan = None;
        let mut printed = Ok(());
        let outcome = {
            let out = &mut *self.out;
            let mut on_plan = |p: &promote::Plan| {
                printed = out
                    .write_all(format!("  plan:\n{}", view::plan_text(p)).as_bytes())
                    .and_then(|()| out.flush());
                plan = Some(p.clone());
            };
            promote::run(&o, &mut on_plan).map_err(Box::new)?
        };
        printed?;
        let (Outcome::Done(report), Some(plan)) = (outcome, plan) else {
            return Err(DemoError::Timeout("promote ended without promoting".into()));
        };
        write!(self.out, "  done:\n{}", view::report_text(&report))?;
        Ok((report, plan))
    }

    /// Step 5: the others follow the new primary; new orders reach them.
    /// Returns the orders written and the seconds until all held them.
    fn new_writes(
        &mut self,
        fleet: &mut Fleet,
        report: &promote::PromoteReport,
    ) -> Result<(u64, f64), DemoError> {
        let new = report.primary.clone();
        self.say(&format!(
            "5/6 the others mirror {new} from {} and resume; new orders on {new}",
            report.repoint
        ))?;
        let at: BinlogPos = report.repoint.parse().map_err(|e| {
            DemoError::Timeout(format!("re-point position {}: {e}", report.repoint))
        })?;
        let port = fleet.node(&new).map(|n| n.server.port()).unwrap_or(0);
        for (i, nd) in fleet.nodes.iter_mut().enumerate() {
            if nd.name == new {
                continue;
            }
            let dir = nd.server.root().join("mirror-of-new-primary");
            nd.start_mirror(port, dir, Some(at.clone()), 200 + i as u32)?;
            nd.start_applier(&self.o.stop)?;
        }
        let primary = &fleet.node(&new).expect("the new primary is a node").server;
        let n = self.sizes.new_orders;
        let t0 = Instant::now();
        Load::start(
            primary,
            &LoadSpec {
                clients: 1,
                orders: Some(n),
                rate: None,
                first_id: 1_000_000_001,
            },
        )?
        .stop_when_done()?;
        let want = primary.checksums(&db_refs())?;
        let mut live = Live::new(self.o.terminal);
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let lines: Vec<Line> = fleet
                .nodes
                .iter()
                .filter(|nd| nd.name != new)
                .map(node_line)
                .collect();
            let mut equal = true;
            for nd in &fleet.nodes {
                equal &= nd.server.checksums(&db_refs())? == want;
            }
            live.show(self.out, &lines, equal)?;
            if equal {
                break;
            }
            self.check_appliers(fleet)?;
            self.tick(deadline, "the new orders reaching the others")?;
        }
        let secs = t0.elapsed().as_secs_f64();
        writeln!(
            self.out,
            "  {n} new orders on {new} reached every replica after {secs:.1} s"
        )?;
        Ok((n, secs))
    }

    /// Step 6: everything measured on the servers.
    #[allow(clippy::too_many_arguments)]
    fn summarize(
        &mut self,
        fleet: &Fleet,
        race: Race,
        acknowledged: u64,
        old_mirrors: &[std::path::PathBuf],
        states: Vec<PairOrder>,
        report: promote::PromoteReport,
        plan: promote::Plan,
        (new_orders, reached): (u64, f64),
    ) -> Result<DemoSummary, DemoError> {
        let source = fleet
            .nodes
            .iter()
            .position(|n| n.name == plan.source)
            .and_then(|i| old_mirrors.get(i))
            .ok_or_else(|| DemoError::Timeout(format!("no mirror of {}", plan.source)))?;
        let in_mirror = orders_in(source).map_err(|e| DemoError::Read {
            replica: plan.source.clone(),
            error: Box::new(e),
        })?;
        let mut replicas = Vec::new();
        for nd in &fleet.nodes {
            replicas.push(check_replica(nd)?);
        }
        let expected = in_mirror + new_orders;
        let lost_orders = replicas
            .iter()
            .map(|r| expected.saturating_sub(r.ledger_rows))
            .max()
            .unwrap_or(expected);
        let checksums_equal = replicas
            .windows(2)
            .all(|w| w[0].checksums == w[1].checksums);
        Ok(DemoSummary {
            mode: if self.o.short { "short" } else { "full" }.into(),
            databases: load::DATABASES,
            orders_acknowledged: acknowledged,
            orders_in_longest_mirror: in_mirror,
            new_orders,
            new_orders_reached_all_after: reached,
            race,
            incomparable_pairs: states.iter().filter(|p| p.order == "incomparable").count(),
            states,
            promotion: Promotion {
                primary: report.primary.clone(),
                source: plan.source.clone(),
                lost_groups: plan.lost_groups,
                catch_up_groups: plan
                    .replicas
                    .iter()
                    .map(|r| (r.name.clone(), r.lacks_groups))
                    .collect(),
                seconds: report.seconds,
                repoint: report.repoint.clone(),
            },
            writable_servers: replicas.iter().filter(|r| !r.read_only).count(),
            replicas,
            checksums_equal,
            lost_orders,
            servers: server_infos(fleet),
            seconds: self.started.elapsed().as_secs_f64(),
        })
    }

    /// `--keep`: how to connect; everything runs until `stop`.
    fn keep(&mut self, fleet: &Fleet) -> Result<(), DemoError> {
        self.say("kept running: connect with the mariadb client (user root, no password)")?;
        for nd in &fleet.nodes {
            writeln!(
                self.out,
                "  {:<4} mariadb -h 127.0.0.1 -P {} -u root   (mirror: {})",
                nd.name,
                nd.server.port(),
                nd.mirror_dir.display()
            )?;
        }
        writeln!(
            self.out,
            "  the appliers follow the new primary; Ctrl-C stops and removes everything"
        )?;
        self.out.flush()?;
        while !self.o.stop.load(Ordering::Relaxed) {
            std::thread::sleep(TICK);
        }
        Ok(())
    }
}

impl DemoSummary {
    /// The summary as text.
    pub fn render(&self) -> String {
        let mut t = String::new();
        let lost_by_async = self
            .orders_acknowledged
            .saturating_sub(self.orders_in_longest_mirror);
        t.push_str(&format!(
            "  speed-up: {} groups; MariaDB's single SQL thread {:.1} s, parapply {} \
             (three appliers at once): {:.1}x\n",
            self.race.groups,
            self.race.sql_thread_seconds,
            self.race
                .parapply_seconds
                .iter()
                .map(|(n, s)| format!("{n} {s:.1} s"))
                .collect::<Vec<_>>()
                .join(", "),
            self.race.speedup
        ));
        t.push_str(&format!(
            "  crash: the primary acknowledged {} orders; the longest mirror holds {} \
             ({} never left the primary: asynchronous replication)\n",
            self.orders_acknowledged, self.orders_in_longest_mirror, lost_by_async
        ));
        t.push_str(&format!(
            "  states after the crash: {} of {} replica pairs incomparable\n",
            self.incomparable_pairs,
            self.states.len()
        ));
        t.push_str(&format!(
            "  promotion: {} promoted in {:.1} s from the mirror of {}; catch-up sets {}\n",
            self.promotion.primary,
            self.promotion.seconds,
            self.promotion.source,
            self.promotion
                .catch_up_groups
                .iter()
                .map(|(n, g)| format!("{n} {g}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        t.push_str(&format!(
            "  new orders: {} on {}, on every replica after {:.1} s\n",
            self.new_orders, self.promotion.primary, self.new_orders_reached_all_after
        ));
        for r in &self.replicas {
            t.push_str(&format!(
                "  {:<4} port {:<5} {:<9} ledger rows {:>6}  totals count {:>6}  \
                 {} tables checksummed\n",
                r.name,
                r.port,
                if r.read_only { "read-only" } else { "WRITABLE" },
                r.ledger_rows,
                r.totals_orders,
                r.checksums.len()
            ));
        }
        t.push_str(&format!(
            "  checksums equal on every replica: {}; orders lost: {} (of {} in the longest \
             mirror + {} new); writable servers: {}; {:.0} s in all\n",
            if self.checksums_equal { "yes" } else { "NO" },
            self.lost_orders,
            self.orders_in_longest_mirror,
            self.new_orders,
            self.writable_servers,
            self.seconds
        ));
        t
    }
}

fn server_infos(fleet: &Fleet) -> Vec<ServerInfo> {
    let info = |name: &str, s: &Server| ServerInfo {
        name: name.into(),
        port: s.port(),
        dir: s.root().display().to_string(),
    };
    let mut v = vec![info("primary", &fleet.primary)];
    v.extend(fleet.nodes.iter().map(|n| info(&n.name, &n.server)));
    v.push(info("sql", &fleet.sql));
    v
}

/// The workload's databases, as the sandbox takes them.
fn db_refs() -> Vec<&'static str> {
    const NAMES: [&str; load::DATABASES] = [
        "shop1", "shop2", "shop3", "shop4", "shop5", "shop6", "shop7", "shop8",
    ];
    NAMES.to_vec()
}

/// The primary's live line.
fn primary_line(load: &Load, goal: Option<u64>, rate: &mut Rate) -> Line {
    let done = load.committed();
    Line {
        name: "primary".into(),
        what: "orders",
        done,
        goal,
        rate: rate.update(done),
        ..Line::default()
    }
}

/// Groups an applier applied (0: none runs).
fn applied_of(nd: &Node) -> u64 {
    nd.applier_metrics().map_or(0, |m| m.groups_total())
}

/// A parapply replica's live line.
fn node_line(nd: &Node) -> Line {
    let m = nd.applier_metrics();
    Line {
        name: nd.name.clone(),
        what: "parapply",
        done: applied_of(nd),
        rate: m.map_or(0.0, |m| m.groups_per_second()),
        lag: m.map(|m| m.lag().as_secs_f64()),
        in_flight: m.map(|m| m.groups_in_flight()),
        ..Line::default()
    }
}

/// Groups per second between two looks.
#[derive(Default)]
struct Rate {
    last: Option<(Instant, u64)>,
    value: f64,
}

impl Rate {
    fn update(&mut self, n: u64) -> f64 {
        let now = Instant::now();
        if let Some((t, m)) = self.last {
            let dt = now.duration_since(t).as_secs_f64();
            if dt >= 0.5 {
                self.value = n.saturating_sub(m) as f64 / dt;
                self.last = Some((now, n));
            }
        } else {
            self.last = Some((now, n));
        }
        self.value
    }
}

/// The highest seq_no of a GTID list (`0-1-42,…`); 0 when empty.
fn seq_of(list: &str) -> u64 {
    list.split(',')
        .filter_map(|g| g.trim().rsplit('-').next()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

fn gtid_slave_pos(s: &Server) -> Result<String, DemoError> {
    Ok(
        s.query_first::<Option<String>>("SELECT @@GLOBAL.gtid_slave_pos")?
            .flatten()
            .unwrap_or_default(),
    )
}

/// `SHOW MASTER STATUS`: the binlog's current file and end.
fn master_status(s: &Server) -> Result<(String, u64), DemoError> {
    let r: Option<(String, u64, String, String)> = s.query_first("SHOW MASTER STATUS")?;
    r.map(|r| (r.0, r.1))
        .ok_or_else(|| DemoError::Timeout("the primary has no binlog".into()))
}

/// Whether the SQL-thread replica's relay log holds `gtid_pos`.
fn relay_has(s: &Server, gtid_pos: &str) -> Result<bool, DemoError> {
    let row: Option<mysql::Row> = s.query_first("SHOW SLAVE STATUS")?;
    Ok(row.is_some_and(|r| column(&r, "Gtid_IO_Pos") == gtid_pos))
}

/// Orders in a mirror directory: its row-format transactions that write a
/// ledger.
fn orders_in(dir: &std::path::Path) -> Result<u64, ReadError> {
    let mut g = Grouper::new(BinlogReader::open(
        Source::dir(dir)?,
        ReaderOptions::default(),
    )?);
    let mut n = 0;
    while let Some(group) = g.next()? {
        if group.kind == GroupKind::RowDml && group.tables.iter().any(|(_, t)| t == "ledger") {
            n += 1;
        }
    }
    Ok(n)
}

/// A replica's figures at the end.
fn check_replica(nd: &Node) -> Result<ReplicaCheck, DemoError> {
    let s = &nd.server;
    let mut rows = 0;
    let mut orders = 0;
    let mut c = s.conn()?;
    for d in load::databases() {
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM {d}.ledger), (SELECT orders FROM {d}.totals WHERE id = 1)"
        );
        let r: Option<(u64, u64)> = c.query_first(&sql).map_err(|e| DemoError::Sql {
            server: nd.name.clone(),
            sql,
            error: e.to_string(),
        })?;
        let (l, o) = r.unwrap_or_default();
        rows += l;
        orders += o;
    }
    Ok(ReplicaCheck {
        name: nd.name.clone(),
        port: s.port(),
        read_only: s.query_first::<u8>("SELECT @@GLOBAL.read_only")? == Some(1),
        ledger_rows: rows,
        totals_orders: orders,
        checksums: s.checksums(&db_refs())?,
    })
}
