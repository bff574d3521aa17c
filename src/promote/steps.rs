//! The steps of a promotion, in the order of the module doc of
//! [`super`]; [`run`] strings them together.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::apply::engine::ApplyOptions;
use crate::binlog::reader::gtid_list_of;
use crate::binlog::Source;
use crate::catchup::remote::{self, CopyDir};
use crate::catchup::{self, Loaded, Scan};
use crate::position::{BinlogPos, MariaGtid};
use crate::progress::{AppliedSet, Watermark};
use crate::replica::{self, Replica, ReplicaOptions, FREEZE, PROMOTION};
use crate::trace::{quote, TraceSink};
use crate::wire::ConnectOptions;

use super::errant::{binlog_gtids, Held};
use super::mirrors::{first_difference, MirrorFiles};
use super::plan::{plan, Facts, Plan};
use super::{
    MirrorLoc, Outcome, Phase, PromoteError, PromoteOptions, PromoteReport, Record, ReplicaSpec,
    StepReport,
};

/// What promote read once frozen.
struct Gathered {
    /// Every mirror directory, by replica.
    mirrors: BTreeMap<String, MirrorFiles>,
    /// The replica whose mirror is the longest: the catch-up source.
    source: String,
    /// Its directory.
    source_dir: PathBuf,
    /// The source from the earliest resume position of the states.
    scan: Scan,
    /// The state holding the whole source: every replica's catch-up goal.
    whole: AppliedSet,
    /// Per replica (in the order given).
    facts: Vec<Facts>,
}

/// One replica during the run.
struct Member {
    spec: ReplicaSpec,
    conn: Replica,
}

impl Member {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn native(&self) -> bool {
        matches!(self.spec.mirror, MirrorLoc::Native)
    }
    fn err(&self) -> impl Fn(replica::ReplicaError) -> PromoteError + '_ {
        move |e| PromoteError::Replica {
            name: self.spec.name.clone(),
            error: Box::new(e),
        }
    }
}

/// The run's state.
struct Run<'a> {
    opts: &'a PromoteOptions,
    members: Vec<Member>,
    id: String,
    resumed: Option<Record>,
    steps: Vec<StepReport>,
    started: Instant,
    trace: Option<TraceSink>,
}

/// Runs a promotion (see the module doc of [`super`]); `on_plan` is
/// called with the plan before anything but the freeze changes.
pub fn run(opts: &PromoteOptions, on_plan: &mut dyn FnMut(&Plan)) -> Result<Outcome, PromoteError> {
    if opts.replicas.is_empty() {
        return Err(super::plan::PlanError::NoReplica.into());
    }
    let mut r = Run::connect(opts)?;
    if opts.unfreeze {
        return r.unfreeze().map(Outcome::Unfrozen);
    }
    if opts.dry_run {
        let _copies = r.copy_mirror_servers()?;
        let g = r.gather()?;
        let p = plan(&g.facts, opts.candidate.as_deref())?;
        on_plan(&p);
        return Ok(Outcome::DryRun(p));
    }
    r.refuse_writable()?;
    r.pre_hook()?;
    let writable_done = r
        .resumed
        .as_ref()
        .is_some_and(|x| x.phase >= Phase::Writable);
    if !writable_done {
        if let Some(old) = &opts.switchover {
            r.switchover_drain(old)?;
        }
    }
    r.freeze()?;
    let _copies = r.copy_mirror_servers()?;
    let g = r.gather()?;
    let (candidate, source) = match r.resumed.clone().filter(|x| x.phase >= Phase::Writable) {
        Some(rec) => {
            if opts.candidate.as_ref().is_some_and(|c| *c != rec.candidate) {
                tracing::warn!(
                    persisted = %rec.candidate,
                    "the promotion already made its candidate writable: --candidate is not taken"
                );
            }
            let p = plan(&g.facts, Some(&rec.candidate))?;
            on_plan(&p);
            (rec.candidate, p.source)
        }
        None => {
            r.checks(&g)?;
            let named = opts
                .candidate
                .clone()
                .or_else(|| r.resumed.as_ref().map(|x| x.candidate.clone()));
            let p = plan(&g.facts, named.as_deref())?;
            on_plan(&p);
            r.persist_plan(&p)?;
            r.catch_up(&p.candidate, &g)?;
            (p.candidate.clone(), p.source.clone())
        }
    };
    let (repoint, last) = r.make_writable(&candidate, &source, &g)?;
    let writable_after = r.started.elapsed().as_secs_f64();
    r.repoint(&candidate, &repoint, &last)?;
    r.finish(&candidate, &source, repoint, last, writable_after)
}

impl<'a> Run<'a> {
    fn connect(opts: &'a PromoteOptions) -> Result<Run<'a>, PromoteError> {
        let mut members = Vec::new();
        for spec in &opts.replicas {
            let conn = Replica::connect(replica_options(opts, &spec.target)).map_err(|e| {
                PromoteError::Replica {
                    name: spec.name.clone(),
                    error: Box::new(e),
                }
            })?;
            let mut m = Member {
                spec: spec.clone(),
                conn,
            };
            m.conn.ensure_sql_log_bin_off().map_err(m.err())?;
            members.push(m);
        }
        let mut resumed: Option<Record> = None;
        let mut frozen: Option<String> = None;
        for m in &mut members {
            if let Some(text) = m.conn.config(PROMOTION).map_err(m.err())? {
                if let Ok(rec) = serde_json::from_str::<Record>(&text) {
                    if rec.phase != Phase::Done
                        && resumed.as_ref().is_none_or(|x| rec.phase > x.phase)
                    {
                        resumed = Some(rec);
                    }
                }
            }
            if let Some(f) = m.conn.frozen_by().map_err(m.err())? {
                frozen.get_or_insert(f);
            }
        }
        let id = resumed
            .as_ref()
            .map(|x| x.id.clone())
            .or(frozen)
            .unwrap_or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                format!("promote-{}-{}", now.as_secs(), std::process::id())
            });
        let trace = opts.trace.clone();
        if let (Some(t), Some(rec)) = (&trace, &resumed) {
            // The candidate this run goes on with: the persisted one once
            // the re-point position is persisted.
            let c = match &opts.candidate {
                Some(c) if rec.phase < Phase::Writable => c.clone(),
                _ => rec.candidate.clone(),
            };
            t.step("PromoteRerun", &[("replica", quote(&c))]);
        }
        Ok(Run {
            opts,
            members,
            id,
            resumed,
            steps: Vec::new(),
            started: Instant::now(),
            trace,
        })
    }

    fn step(&mut self, step: &str, replica: Option<&str>, since: Instant, detail: String) {
        self.steps.push(StepReport {
            step: step.into(),
            replica: replica.map(String::from),
            groups: 0,
            bytes: 0,
            seconds: since.elapsed().as_secs_f64(),
            detail,
        });
    }

    fn trace(&self, step: &str, fields: &[(&str, String)]) {
        if let Some(t) = &self.trace {
            t.step(step, fields);
        }
    }

    /// `--unfreeze`: clears this promotion's freeze on every replica.
    fn unfreeze(&mut self) -> Result<Vec<String>, PromoteError> {
        if let Some(rec) = &self.resumed {
            return Err(PromoteError::Unsupported(format!(
                "promotion `{}` persisted its plan (phase {:?}, candidate {}): it must be finished \
                 (run promote again), not unfrozen",
                rec.id, rec.phase, rec.candidate
            )));
        }
        let mut out = Vec::new();
        for m in &mut self.members {
            if m.conn.frozen_by().map_err(m.err())?.is_some() {
                let sql = self.opts.progress.delete_config_sql(FREEZE);
                m.conn
                    .execute(&sql, "clearing the freeze")
                    .map_err(m.err())?;
                out.push(m.spec.name.clone());
            }
        }
        Ok(out)
    }

    /// Every replica read-only, but the persisted candidate of a promotion
    /// that made it writable.
    fn refuse_writable(&mut self) -> Result<(), PromoteError> {
        let allowed = self
            .resumed
            .as_ref()
            .filter(|x| x.phase >= Phase::Writable)
            .map(|x| x.candidate.clone());
        let mut names = Vec::new();
        for m in &mut self.members {
            if !m.conn.read_only().map_err(m.err())? && allowed.as_deref() != Some(m.name()) {
                names.push(m.spec.name.clone());
            }
        }
        if names.is_empty() {
            Ok(())
        } else {
            Err(PromoteError::Writable { names })
        }
    }

    fn pre_hook(&mut self) -> Result<(), PromoteError> {
        let Some(cmd) = self.opts.pre_hook.clone() else {
            return Ok(());
        };
        let t = Instant::now();
        let status = hook(&cmd, &self.id, self.opts.candidate.as_deref().unwrap_or(""))?;
        if !status.success() {
            return Err(PromoteError::PreHook {
                cmd,
                status: status.to_string(),
            });
        }
        self.step("pre_hook", None, t, cmd);
        Ok(())
    }

    /// Switchover: the old primary read-only, and its binlog's end in
    /// every mirror.
    fn switchover_drain(&mut self, old: &ConnectOptions) -> Result<(), PromoteError> {
        let t = Instant::now();
        let sw = |e: replica::ReplicaError| PromoteError::Switchover(e.to_string());
        let mut p = Replica::connect(replica_options(self.opts, old)).map_err(sw)?;
        p.execute("SET GLOBAL read_only = 1", "setting read_only")
            .map_err(sw)?;
        // Sessions already inside a transaction may still commit; FLUSH
        // waits for them.
        p.execute("FLUSH TABLES", "waiting for open writes")
            .map_err(sw)?;
        let end = master_status(&mut p).map_err(sw)?;
        let deadline = Instant::now() + self.opts.freeze_timeout;
        for m in &self.members {
            let dir = match &m.spec.mirror {
                MirrorLoc::Dir(dir) => dir,
                MirrorLoc::Native => continue,
                MirrorLoc::Server(server) => {
                    loop {
                        let at = crate::catchup::remote::server_end(server).map_err(|e| {
                            PromoteError::Switchover(format!("{}: {e}", m.spec.name))
                        })?;
                        if at >= end {
                            break;
                        }
                        if Instant::now() > deadline {
                            return Err(PromoteError::Switchover(format!(
                                "the mirror server of {} did not receive the old primary's \
                                 binlog up to {end} (it serves up to {at})",
                                m.spec.name
                            )));
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    continue;
                }
            };
            loop {
                let files = MirrorFiles::read(dir).map_err(|e| PromoteError::Mirror {
                    name: m.spec.name.clone(),
                    error: Box::new(e),
                })?;
                if files.end().is_some_and(|e| e >= end) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(PromoteError::Switchover(format!(
                        "the mirror of {} did not receive the old primary's binlog up to {end} \
                         within {} s (it ends at {}); the old primary is read-only now",
                        m.spec.name,
                        self.opts.freeze_timeout.as_secs(),
                        files.end().map(|e| e.to_string()).unwrap_or_default()
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.step(
            "switchover_drain",
            None,
            t,
            format!(
                "old primary {} read-only; every mirror holds its binlog up to {end}",
                old.addr()
            ),
        );
        Ok(())
    }

    /// Copies every mirror server into a temporary directory (removed when
    /// the returned guards drop) and reads it from there.
    fn copy_mirror_servers(&mut self) -> Result<Vec<CopyDir>, PromoteError> {
        let mut out = Vec::new();
        for m in &mut self.members {
            let MirrorLoc::Server(server) = m.spec.mirror.clone() else {
                continue;
            };
            let t = Instant::now();
            let name = m.spec.name.clone();
            let catchup_err = |e| PromoteError::Catchup {
                name: name.clone(),
                error: Box::new(e),
            };
            let dir = CopyDir::new("promote").map_err(catchup_err)?;
            let end = remote::fetch(&server, remote::copy_server_id(), None, dir.path())
                .map_err(catchup_err)?;
            m.spec.mirror = MirrorLoc::Dir(dir.path().to_path_buf());
            self.steps.push(StepReport {
                step: "copy_mirror".into(),
                replica: Some(m.spec.name.clone()),
                groups: 0,
                bytes: 0,
                seconds: t.elapsed().as_secs_f64(),
                detail: format!("mirror server {} copied up to {end}", server.addr()),
            });
            out.push(dir);
        }
        Ok(out)
    }

    /// Freezes every applier and waits until none holds its lock.
    fn freeze(&mut self) -> Result<(), PromoteError> {
        let t = Instant::now();
        let id = self.id.clone();
        for m in &mut self.members {
            if m.native() {
                m.conn
                    .execute("STOP SLAVE", "stopping replication")
                    .map_err(m.err())?;
                // Its catch-up keeps watermarks like any applier's.
                m.conn.ensure_progress_tables().map_err(m.err())?;
                continue;
            }
            match m.conn.frozen_by().map_err(m.err())? {
                Some(by) if by == id => {}
                Some(other) => {
                    return Err(PromoteError::OtherPromotion {
                        name: m.spec.name.clone(),
                        other,
                    })
                }
                None => {
                    // Tables first (a fresh replica has none).
                    m.conn.ensure_progress_tables().map_err(m.err())?;
                    m.conn.set_config(FREEZE, &id).map_err(m.err())?;
                    if let Some(tr) = &self.trace {
                        tr.step("FreezeApplier", &[("replica", quote(&m.spec.name))]);
                    }
                }
            }
        }
        let deadline = Instant::now() + self.opts.freeze_timeout;
        loop {
            let mut running = Vec::new();
            for m in &mut self.members {
                if !m.native() && m.conn.lock_holder().map_err(m.err())?.is_some() {
                    running.push(m.spec.name.clone());
                }
            }
            if running.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                self.trace("Refuse", &[]);
                return Err(PromoteError::NotFrozen {
                    names: running,
                    seconds: self.opts.freeze_timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.step(
            "freeze",
            None,
            t,
            format!("every applier stopped ({})", self.id),
        );
        Ok(())
    }

    /// Reads the mirrors, every replica's state (`catchup::load`, a native
    /// replica's `gtid_slave_pos` placed in the source) and the source from
    /// the earliest of their resume positions (`catchup::scan`, once).
    fn gather(&mut self) -> Result<Gathered, PromoteError> {
        let mut mirrors = BTreeMap::new();
        for m in &self.members {
            if let MirrorLoc::Dir(dir) = &m.spec.mirror {
                let f = MirrorFiles::read(dir).map_err(|e| PromoteError::Mirror {
                    name: m.spec.name.clone(),
                    error: Box::new(e),
                })?;
                mirrors.insert(m.spec.name.clone(), f);
            }
        }
        let Some((source, src)) = mirrors
            .iter()
            .max_by_key(|(n, f)| (f.bytes(), std::cmp::Reverse(*n)))
        else {
            return Err(PromoteError::Unsupported(
                "no replica has a mirror directory: promote needs at least one".into(),
            ));
        };
        let (source, source_dir) = (source.clone(), src.dir.clone());
        let src_err = |e| PromoteError::Catchup {
            name: source.clone(),
            error: Box::new(e),
        };
        let mut loaded = Vec::new();
        for m in &mut self.members {
            let l = catchup::load(&mut m.conn, Some(&source_dir)).map_err(|e| {
                PromoteError::Catchup {
                    name: m.spec.name.clone(),
                    error: Box::new(e),
                }
            })?;
            loaded.push(l);
        }
        let start = catchup::scan_start(loaded.iter().map(|l| &l.applied.state));
        let scan =
            catchup::scan(&source_dir, start.as_ref(), &self.opts.shard_map).map_err(src_err)?;
        // What lies before the scan: the binlog state where its file
        // starts, and every replica's applied prefix.
        let mut before = match &start {
            Some(p) => gtid_list_of(&source_dir.join(&p.file))
                .map_err(|e| PromoteError::Mirror {
                    name: source.clone(),
                    error: Box::new(e),
                })?
                .unwrap_or_default(),
            None => Vec::new(),
        };
        for l in &loaded {
            before.extend(l.applied.state.low.iter().map(|(d, w)| MariaGtid {
                domain: *d,
                server: w.server_id,
                seq: w.seq_no,
            }));
        }
        let mut held: BTreeMap<(u32, u32), u64> = BTreeMap::new();
        for g in before.iter().chain(scan.items.iter().map(|i| &i.gtid)) {
            let e = held.entry((g.domain, g.server)).or_insert(0);
            *e = (*e).max(g.seq);
        }
        let whole = scan.whole(&before);
        let mut facts = Vec::new();
        for (m, l) in self.members.iter_mut().zip(&loaded) {
            let lacks = scan.lacking(&l.applied).map_err(src_err)?;
            let errant = errant(m, l, &held)?;
            let mirror = mirrors.get(&m.spec.name);
            facts.push(Facts {
                name: m.spec.name.clone(),
                unhealthy: None,
                state: l.applied.state.clone(),
                mirror_bytes: mirror.map_or(0, |f| f.bytes()),
                mirror_end: mirror.and_then(|f| f.end()),
                lacks_groups: lacks.len() as u64,
                lacks_bytes: lacks.bytes,
                errant,
                native: m.native(),
            });
        }
        Ok(Gathered {
            mirrors,
            source,
            source_dir,
            scan,
            whole,
            facts,
        })
    }

    /// Refuses diverged mirrors and errant transactions.
    fn checks(&mut self, g: &Gathered) -> Result<(), PromoteError> {
        let longest = (&g.source, &g.mirrors[&g.source]);
        for (name, f) in &g.mirrors {
            let d = first_difference(f, longest.1).map_err(|error| PromoteError::Io {
                what: format!("comparing the mirrors of {name} and {}", longest.0),
                error,
            })?;
            if let Some(d) = d {
                self.trace("Refuse", &[]);
                return Err(PromoteError::Diverged {
                    a: name.clone(),
                    b: longest.0.clone(),
                    at: d.to_string(),
                });
            }
        }
        let list: Vec<(String, Vec<String>)> = g
            .facts
            .iter()
            .filter(|f| !f.errant.is_empty())
            .map(|f| {
                (
                    f.name.clone(),
                    f.errant.iter().map(|g| g.to_string()).collect(),
                )
            })
            .collect();
        if !list.is_empty() && !self.opts.allow_errant {
            self.trace("Refuse", &[]);
            return Err(PromoteError::Errant { list });
        }
        Ok(())
    }

    /// Persists the plan on every replica.
    fn persist_plan(&mut self, p: &Plan) -> Result<(), PromoteError> {
        let rec = Record {
            id: self.id.clone(),
            phase: Phase::Catchup,
            candidate: p.candidate.clone(),
            source: p.source.clone(),
            repoint: None,
            last: Vec::new(),
        };
        self.persist(&rec)?;
        if self.resumed.is_none() {
            self.trace("ChooseCandidate", &[("replica", quote(&p.candidate))]);
        }
        Ok(())
    }

    fn persist(&mut self, rec: &Record) -> Result<(), PromoteError> {
        let text = serde_json::to_string(rec).expect("a record serializes");
        // The candidate first: a rerun reads the most advanced record.
        let mut order: Vec<usize> = (0..self.members.len()).collect();
        order.sort_by_key(|&i| self.members[i].spec.name != rec.candidate);
        for i in order {
            let m = &mut self.members[i];
            m.conn.set_config(PROMOTION, &text).map_err(m.err())?;
        }
        Ok(())
    }

    /// The candidate, then every other replica, applies the source.
    fn catch_up(&mut self, candidate: &str, g: &Gathered) -> Result<(), PromoteError> {
        let cand = self
            .members
            .iter()
            .find(|m| m.spec.name == candidate)
            .map(|m| m.spec.clone())
            .expect("the plan's candidate is a member");
        let report = catch_up_one(self.opts, &self.id, &cand, g, self.trace.as_ref(), true)?;
        self.steps.push(report);
        self.trace("CandidateCaughtUp", &[]);
        let others: Vec<ReplicaSpec> = self
            .members
            .iter()
            .filter(|m| m.spec.name != candidate)
            .map(|m| m.spec.clone())
            .collect();
        let results: Vec<Result<StepReport, PromoteError>> = std::thread::scope(|s| {
            let handles: Vec<_> = others
                .iter()
                .map(|spec| {
                    let id = &self.id;
                    let opts = self.opts;
                    let trace = self.trace.as_ref();
                    s.spawn(move || catch_up_one(opts, id, spec, g, trace, false))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a catch-up thread does not panic"))
                .collect()
        });
        for r in results {
            self.steps.push(r?);
        }
        Ok(())
    }

    /// Checks convergence, persists the re-point position, and makes the
    /// candidate the one writable server.
    fn make_writable(
        &mut self,
        candidate: &str,
        source_name: &str,
        g: &Gathered,
    ) -> Result<(BinlogPos, Vec<MariaGtid>), PromoteError> {
        let t = Instant::now();
        let persisted = self.resumed.clone().filter(|x| x.phase >= Phase::Writable);
        let (repoint, last) = match &persisted {
            Some(rec) => (
                rec.repoint
                    .as_deref()
                    .and_then(|p| p.parse::<BinlogPos>().ok())
                    .ok_or_else(|| {
                        PromoteError::Unsupported(format!(
                            "promotion `{}`: the persisted record has no re-point position",
                            rec.id
                        ))
                    })?,
                rec.last
                    .iter()
                    .filter_map(|g| g.parse::<MariaGtid>().ok())
                    .collect(),
            ),
            None => {
                // Every replica holds the source now: nothing of the scan
                // is lacking (it started before every state's prefix).
                for m in &mut self.members {
                    let l = catchup::load(&mut m.conn, Some(&g.source_dir)).map_err(|e| {
                        PromoteError::Catchup {
                            name: m.spec.name.clone(),
                            error: Box::new(e),
                        }
                    })?;
                    let left = g
                        .scan
                        .lacking(&l.applied)
                        .map_err(|e| PromoteError::Catchup {
                            name: source_name.to_string(),
                            error: Box::new(e),
                        })?;
                    if !left.is_empty() {
                        return Err(PromoteError::NotConverged {
                            name: m.spec.name.clone(),
                            groups: left.len() as u64,
                        });
                    }
                }
                let c = self.member(candidate);
                let pos = master_status(&mut c.conn).map_err(c.err())?;
                let last: Vec<MariaGtid> = g
                    .whole
                    .state
                    .low
                    .iter()
                    .map(|(d, w)| MariaGtid {
                        domain: *d,
                        server: w.server_id,
                        seq: w.seq_no,
                    })
                    .collect();
                (pos, last)
            }
        };
        if persisted.is_none() {
            let rec = Record {
                id: self.id.clone(),
                phase: Phase::Writable,
                candidate: candidate.to_string(),
                source: source_name.to_string(),
                repoint: Some(repoint.to_string()),
                last: last.iter().map(|g| g.to_string()).collect(),
            };
            self.persist(&rec)?;
        }
        // Every other server read-only before the candidate is writable.
        for m in &mut self.members {
            if m.spec.name != candidate {
                m.conn
                    .execute("SET GLOBAL read_only = 1", "setting read_only")
                    .map_err(m.err())?;
            }
        }
        let c = self.member(candidate);
        // A rerun that finds the candidate still read-only resumes a run
        // killed between persisting the position and `read_only=OFF`: in
        // the spec's terms that run never made it writable, and this one
        // (which restarted catch-up from the candidate, found complete) does.
        let was_writable = persisted.is_some() && !c.conn.read_only().map_err(c.err())?;
        c.conn
            .execute("SET GLOBAL read_only = 0", "making the candidate writable")
            .map_err(c.err())?;
        if persisted.is_some() && !was_writable {
            self.trace("CandidateCaughtUp", &[]);
        }
        if !was_writable {
            self.trace("MakeWritable", &[]);
        }
        self.step(
            "make_writable",
            Some(candidate),
            t,
            format!(
                "read_only=OFF; re-point position {repoint}; next seq_no per domain above {}",
                last.iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        );
        Ok((repoint, last))
    }

    fn member(&mut self, name: &str) -> &mut Member {
        self.members
            .iter_mut()
            .find(|m| m.spec.name == name)
            .expect("a member")
    }

    /// Re-points every other replica (and the old primary of a switchover).
    fn repoint(
        &mut self,
        candidate: &str,
        at: &BinlogPos,
        last: &[MariaGtid],
    ) -> Result<(), PromoteError> {
        let primary = self.member(candidate).spec.target.clone();
        let id = self.id.clone();
        let mut names = Vec::new();
        for i in 0..self.members.len() {
            let t = Instant::now();
            let m = &mut self.members[i];
            if m.spec.name == candidate {
                continue;
            }
            let detail = if m.native() {
                change_master(&mut m.conn, &primary, at, self.opts).map_err(m.err())?
            } else {
                repoint_applier(m, &id, at, last, &self.opts.progress)?
            };
            let traced = !m.native() && detail.starts_with("low-watermark");
            if traced {
                self.trace("Repoint", &[("replica", quote(&self.members[i].spec.name))]);
            }
            names.push((self.members[i].spec.name.clone(), t, detail));
        }
        for (n, t, d) in names {
            self.step("repoint", Some(&n), t, d);
        }
        if let Some(old) = self.opts.switchover.clone() {
            let t = Instant::now();
            let sw = |e: replica::ReplicaError| PromoteError::Switchover(e.to_string());
            let mut p = Replica::connect(replica_options(self.opts, &old)).map_err(sw)?;
            let d = change_master(&mut p, &primary, at, self.opts).map_err(sw)?;
            self.step("repoint_old_primary", None, t, d);
        }
        Ok(())
    }

    fn finish(
        mut self,
        candidate: &str,
        source: &str,
        repoint: BinlogPos,
        last: Vec<MariaGtid>,
        writable_after: f64,
    ) -> Result<Outcome, PromoteError> {
        let rec = Record {
            id: self.id.clone(),
            phase: Phase::Done,
            candidate: candidate.to_string(),
            source: source.to_string(),
            repoint: Some(repoint.to_string()),
            last: last.iter().map(|g| g.to_string()).collect(),
        };
        self.persist(&rec)?;
        self.trace("PromoteDone", &[]);
        let mut post_hook_error = None;
        if let Some(cmd) = self.opts.post_hook.clone() {
            let t = Instant::now();
            match hook(&cmd, &self.id, candidate) {
                Ok(s) if s.success() => self.step("post_hook", None, t, cmd),
                Ok(s) => post_hook_error = Some(format!("`{cmd}` exited with {s}")),
                Err(e) => post_hook_error = Some(e.to_string()),
            }
        }
        let catch_up_seconds = self
            .steps
            .iter()
            .filter(|s| s.step == "catch_up")
            .map(|s| s.seconds)
            .fold(0.0, f64::max);
        let cand_seconds = self
            .steps
            .iter()
            .find(|s| s.step == "catch_up_candidate")
            .map_or(0.0, |s| s.seconds);
        let primary_addr = self.member(candidate).spec.target.addr();
        Ok(Outcome::Done(PromoteReport {
            promotion: self.id.clone(),
            primary: candidate.to_string(),
            primary_addr,
            repoint: repoint.to_string(),
            last: last.iter().map(|g| g.to_string()).collect(),
            resumed: self.resumed.is_some(),
            steps: self.steps,
            writable_after,
            catch_up_seconds: cand_seconds + catch_up_seconds,
            seconds: self.started.elapsed().as_secs_f64(),
            post_hook_error,
        }))
    }
}

fn replica_options(opts: &PromoteOptions, target: &ConnectOptions) -> ReplicaOptions {
    ReplicaOptions {
        target: target.clone(),
        progress: opts.progress.clone(),
        reconnect_timeout: Duration::from_secs(10),
    }
}

/// The errant GTIDs of member `m` (loaded as `l`) against what the source
/// holds (see [`super::errant`]).
fn errant(m: &mut Member, l: &Loaded, held: &Held) -> Result<Vec<MariaGtid>, PromoteError> {
    let own = m.conn.own_gtids().map_err(m.err())?;
    let st = &l.applied.state;
    let applied = st
        .low
        .iter()
        .map(|(d, w)| (*d, w))
        .chain(st.shards.iter().map(|((d, _), w)| (*d, w)));
    let applied = applied.map(|(d, w)| MariaGtid {
        domain: d,
        server: w.server_id,
        seq: w.seq_no,
    });
    let name = m.spec.name.clone();
    super::errant::errant(held, &l.applied.binlog_state, applied, &own, |pairs| {
        binlog_gtids(&mut m.conn, pairs)
    })
    .map_err(|e| PromoteError::Replica {
        name,
        error: Box::new(e),
    })
}

/// Applies to `spec` every group of the source it lacks: a catch-up
/// towards the state that holds the whole source (`catchup::apply`: the
/// apply engine, a native replica's prefix written as its low-watermark
/// first, and the check that it then holds the goal), as part of
/// promotion `id`.
fn catch_up_one(
    opts: &PromoteOptions,
    id: &str,
    spec: &ReplicaSpec,
    g: &Gathered,
    trace: Option<&TraceSink>,
    candidate: bool,
) -> Result<StepReport, PromoteError> {
    let t = Instant::now();
    let catchup_err = |e| PromoteError::Catchup {
        name: spec.name.clone(),
        error: Box::new(e),
    };
    let mut c = Replica::connect(replica_options(opts, &spec.target)).map_err(|e| {
        PromoteError::Replica {
            name: spec.name.clone(),
            error: Box::new(e),
        }
    })?;
    let own = catchup::load(&mut c, Some(&g.source_dir)).map_err(catchup_err)?;
    drop(c);
    let source = Source::dir(&g.source_dir).map_err(|e| PromoteError::Mirror {
        name: g.source.clone(),
        error: Box::new(e),
    })?;
    let mut a = ApplyOptions::new(source, spec.target.clone());
    a.workers = opts.workers;
    a.batch_groups = opts.batch_groups;
    a.shard_map = opts.shard_map.clone();
    a.progress = opts.progress.clone();
    a.reconnect_timeout = Duration::from_secs(30);
    a.promotion = Some(id.to_string());
    a.trace = trace.map(|t| t.for_replica(&spec.name, true));
    let r = catchup::apply(&own, &g.whole, a)
        .map_err(catchup_err)?
        .report;
    Ok(StepReport {
        step: if candidate {
            "catch_up_candidate".into()
        } else {
            "catch_up".into()
        },
        replica: Some(spec.name.clone()),
        groups: r.applied,
        bytes: r.bytes,
        seconds: t.elapsed().as_secs_f64(),
        detail: format!(
            "applied {} groups, skipped {} held already",
            r.applied, r.skipped
        ),
    })
}

/// Moves a parapply replica's low-watermark to the re-point position and
/// clears its freeze, in one transaction (once: a replica no longer frozen
/// by this promotion was re-pointed already).
fn repoint_applier(
    m: &mut Member,
    id: &str,
    at: &BinlogPos,
    last: &[MariaGtid],
    progress: &crate::progress::ProgressTables,
) -> Result<String, PromoteError> {
    if m.conn.frozen_by().map_err(m.err())?.as_deref() != Some(id) {
        return Ok("re-pointed already".into());
    }
    let low: BTreeMap<u32, Watermark> = last
        .iter()
        .map(|g| {
            (
                g.domain,
                Watermark {
                    seq_no: g.seq,
                    server_id: g.server,
                    end: at.clone(),
                },
            )
        })
        .collect();
    let mut stmts = Vec::new();
    if let Some(sql) = progress.upsert_low_sql(&low) {
        stmts.push(sql);
    }
    stmts.push(progress.delete_config_sql(FREEZE));
    m.conn
        .transaction(&stmts, "re-pointing the low-watermark")
        .map_err(m.err())?;
    Ok(format!(
        "low-watermark moved to {at}; its applier resumes there on a mirror of the new primary \
         (parapply mirror --from {at})"
    ))
}

/// `CHANGE MASTER TO` the new primary at `at`, then `START SLAVE` (skipped
/// when already replicating from it).
fn change_master(
    r: &mut Replica,
    primary: &ConnectOptions,
    at: &BinlogPos,
    opts: &PromoteOptions,
) -> Result<String, replica::ReplicaError> {
    let rows = r.query_text("SHOW SLAVE STATUS", "reading the replication status")?;
    if let Some(row) = rows.first() {
        // Master_Host is column 1, Master_Port column 3.
        if row.get(1).map(String::as_str) == Some(primary.host.as_str())
            && row.get(3).map(String::as_str) == Some(primary.port.to_string().as_str())
        {
            return Ok("replicating from the new primary already".into());
        }
    }
    let password = opts
        .repl_password
        .as_ref()
        .map(|s| crate::progress::escape(s.expose()))
        .unwrap_or_default();
    r.execute("STOP SLAVE", "stopping replication")?;
    let sql = format!(
        "CHANGE MASTER TO MASTER_HOST='{}', MASTER_PORT={}, MASTER_USER='{}', \
         MASTER_PASSWORD='{password}', MASTER_LOG_FILE='{}', MASTER_LOG_POS={}, \
         MASTER_USE_GTID=no",
        crate::progress::escape(&primary.host),
        primary.port,
        crate::progress::escape(&opts.repl_user),
        crate::progress::escape(&at.file),
        at.pos
    );
    r.execute(&sql, "re-pointing replication")?;
    r.execute("START SLAVE", "starting replication")?;
    Ok(format!(
        "CHANGE MASTER TO {}, {at}; START SLAVE",
        primary.addr()
    ))
}

/// `SHOW MASTER STATUS`: where the binlog ends.
fn master_status(r: &mut Replica) -> Result<BinlogPos, replica::ReplicaError> {
    let rows = r.query_text("SHOW MASTER STATUS", "reading the binlog position")?;
    let row = rows.first().cloned().unwrap_or_default();
    Ok(BinlogPos::new(
        row.first().cloned().unwrap_or_default(),
        row.get(1).and_then(|p| p.parse().ok()).unwrap_or(0),
    ))
}

/// Runs a hook with `sh -c`, with the promotion's id and candidate in
/// the environment.
fn hook(cmd: &str, id: &str, candidate: &str) -> Result<std::process::ExitStatus, PromoteError> {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("PARAPPLY_PROMOTION", id)
        .env("PARAPPLY_CANDIDATE", candidate)
        .status()
        .map_err(|error| PromoteError::Io {
            what: format!("running the hook `{cmd}`"),
            error,
        })
}
