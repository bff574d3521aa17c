//! `parapply promote` with real servers (issue 12, item 4): one primary,
//! three replicas, each with a mirror of the primary's binlog and a state
//! applied by the apply engine, stopped at different moments so that the
//! states are pairwise incomparable (asserted first); the primary is
//! killed; promote. Then every replica's tables equal the primary's last
//! state (the longest mirror: groups nobody applied survive), a ledger shows
//! every transaction applied exactly once everywhere, and new writes on the
//! new primary reach the others through mirrors re-pointed where promote
//! said. The run's steps (the appliers', promote's, the re-pointed
//! appliers') are recorded as a TLA+ trace and checked against
//! `tla/TracePromotion.tla`.
//!
//! Mirrors: one `parapply mirror` process per replica, started before the
//! workload and killed (`kill -9`) at different moments: r3's once it holds
//! round 2, r2's once it holds round 3, r1's once it holds everything.
//!
//! Run: `cargo test --test promote -- --nocapture` (needs mariadb-server and
//! the `tla` checker: `cargo install tla-checker --locked`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parapply::apply::engine::{self, ApplyOptions};
use parapply::binlog::{BinlogReader, ReaderOptions, Source};
use parapply::group::Grouper;
use parapply::mirror::serve::{ServeOptions, Server as BinlogServer};
use parapply::position::{BinlogPos, MariaGtid};
use parapply::progress::{compare, AppliedSet, ReplicaState, Selection, StateOrder, Watermark};
use parapply::sandbox::{Server, ServerOptions};
use parapply::schedule::{Placement, ShardBy, ShardMap};
use parapply::trace::{self, quote, string_set, TraceSink};
use parapply::wire::{ConnectOptions, Secret};

const DBS: [&str; 3] = ["d1", "d2", "d3"];
const ROUNDS: usize = 5;
const OLD: u32 = 1;
const SERVE_PASSWORD: &str = "promote-test";

/// One group of the primary's binlog.
#[derive(Debug, Clone)]
struct G {
    gtid: MariaGtid,
    /// Its shards; `None` for a barrier.
    shards: Option<Vec<String>>,
    end: BinlogPos,
}

struct Topology {
    primary: Server,
    replicas: Vec<Server>,
    names: Vec<String>,
    mirrors: Vec<PathBuf>,
    groups: Vec<G>,
    work: tempfile::TempDir,
    /// Where the harness's and the appliers' records go.
    traces: PathBuf,
}

/// A replica as it runs in production: its own binlog, read-only.
fn replica(id: u32) -> Server {
    let s = Server::start(
        ServerOptions::new()
            .server_id(id)
            .log_bin("replica-bin")
            .log_slave_updates(true),
    )
    .expect("start a replica");
    s.exec("SET GLOBAL read_only = 1").unwrap();
    s
}

/// The workload: per database a ledger table whose row 0 counts the
/// transactions; then ROUNDS rounds of one transaction per database, each
/// inserting its ledger row and counting it.
fn workload(p: &Server) {
    workload_rounds(p, |_| {});
}

/// [`workload`], calling `after_round` after each round.
fn workload_rounds(p: &Server, mut after_round: impl FnMut(usize)) {
    let mut c = common::root_conn(p);
    for d in DBS {
        c.execute(format!("CREATE DATABASE {d}").as_bytes())
            .unwrap();
        c.execute(
            format!("CREATE TABLE {d}.ledger (id INT PRIMARY KEY, n INT NOT NULL)").as_bytes(),
        )
        .unwrap();
    }
    for round in 0..ROUNDS {
        for d in DBS {
            write_one(&mut c, d, 1 + round as i64);
        }
        after_round(round);
    }
}

fn write_one(c: &mut parapply::wire::Conn, d: &str, id: i64) {
    c.execute(
        format!(
            "BEGIN; INSERT INTO {d}.ledger VALUES ({id}, 1); \
             INSERT INTO {d}.ledger VALUES (0, 1) ON DUPLICATE KEY UPDATE n = n + 1; COMMIT"
        )
        .as_bytes(),
    )
    .unwrap();
}

fn groups_of(dir: &Path) -> Vec<G> {
    let map = ShardMap::new(ShardBy::Database);
    let mut gr = Grouper::new(
        BinlogReader::open(Source::dir(dir).unwrap(), ReaderOptions::default()).unwrap(),
    );
    let mut out = Vec::new();
    while let Some(g) = gr.next().unwrap() {
        let Some(gtid) = g.maria_gtid() else { continue };
        let end = g.end();
        let shards = match map.placement(&g) {
            Placement::Shards(s) => Some(s.iter().map(|x| x.0.to_string()).collect()),
            Placement::Barrier(_) => None,
        };
        out.push(G { gtid, shards, end });
    }
    out
}

/// A `parapply mirror` process copying `primary`'s binlog into `dir`
/// (from its oldest file), registered as `server_id`.
fn start_mirror(primary: &Server, server_id: u32, from: Option<&str>, dir: &Path) -> Killed {
    std::fs::create_dir_all(dir).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_parapply"));
    c.args([
        "mirror",
        "--server-id",
        &server_id.to_string(),
        "--primary",
        &url(primary),
    ]);
    if let Some(at) = from {
        c.args(["--from", at]);
    }
    let child = c
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Killed(child)
}

/// Waits until the mirror in `dir` holds `primary`'s binlog up to its
/// end now.
fn wait_mirror(primary: &Server, dir: &Path) {
    let (file, pos): (String, u64) = primary
        .query_first("SHOW MASTER STATUS")
        .map(|r: Option<(String, u64, String, String)>| {
            let r = r.unwrap();
            (r.0, r.1)
        })
        .unwrap();
    let deadline = Instant::now() + common::HANG_GUARD;
    loop {
        let len = std::fs::metadata(dir.join(&file))
            .map(|m| m.len())
            .unwrap_or(0);
        if len >= pos {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror in {} never reached {file}:{pos}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The seq_no of round `round`'s transaction of database `db` (index).
fn seq_of(groups: &[G], db: usize, round: usize) -> &G {
    groups
        .iter()
        .filter(|g| g.shards.as_deref() == Some(&[DBS[db].to_string()][..]))
        .nth(round)
        .expect("the round's group")
}

fn options(source: &Path, target: &Server) -> ApplyOptions {
    let mut o = ApplyOptions::new(
        Source::dir(source).unwrap(),
        ConnectOptions::new("127.0.0.1", target.port(), "root"),
    );
    o.workers = 4;
    o.reconnect_timeout = Duration::from_secs(5);
    o
}

/// Applies to replica `i`, from its mirror, every barrier and, per
/// database, the groups up to round `upto[db]` (inclusive; `None`:
/// nothing): the state of an applier stopped there.
fn apply_until(t: &Topology, i: usize, upto: [Option<usize>; 3], sink: &TraceSink) {
    let mut goal = ReplicaState::default();
    let last_barrier = t.groups.iter().rev().find(|g| g.shards.is_none()).unwrap();
    goal.low.insert(
        0,
        Watermark {
            seq_no: last_barrier.gtid.seq,
            server_id: OLD,
            end: last_barrier.end.clone(),
        },
    );
    for (db, u) in upto.iter().enumerate() {
        if let Some(r) = u {
            let g = seq_of(&t.groups, db, *r);
            goal.shards.insert(
                (0, DBS[db].to_string()),
                Watermark {
                    seq_no: g.gtid.seq,
                    server_id: OLD,
                    end: g.end.clone(),
                },
            );
        }
    }
    let mut o = options(&t.mirrors[i], &t.replicas[i]);
    o.selection = Selection::catch_up(AppliedSet {
        state: goal,
        binlog_state: Vec::new(),
    });
    o.trace = Some(sink.for_replica(&t.names[i], false));
    let r = engine::run(o).expect("apply");
    eprintln!("{}: applied {} groups", t.names[i], r.applied);
}

fn read_state(s: &Server) -> ReplicaState {
    let mut r = parapply::replica::Replica::connect(parapply::replica::ReplicaOptions {
        target: ConnectOptions::new("127.0.0.1", s.port(), "root"),
        progress: parapply::progress::ProgressTables::new("parapply").unwrap(),
        reconnect_timeout: Duration::ZERO,
    })
    .unwrap();
    r.read_state().unwrap()
}

/// The topology of the module doc, up to the primary's death.
///
/// Mirrors: r1 holds everything (the last round only there), r2 up to
/// round 3, r3 up to round 2. Applied (rounds per database d1, d2, d3; `-`
/// none): r1 (3, 0, 1), r2 (1, 3, 0), r3 (0, -, 2): pairwise
/// incomparable.
fn topology() -> Topology {
    let primary = Server::start(
        ServerOptions::new()
            .server_id(OLD)
            .log_bin("mariadb-bin")
            .max_binlog_size(4096),
    )
    .expect("start the primary");
    let replicas: Vec<Server> = (11..14).map(replica).collect();
    let work = tempfile::tempdir().unwrap();
    let names: Vec<String> = ["r1", "r2", "r3"].map(String::from).to_vec();
    let mirrors: Vec<PathBuf> = names
        .iter()
        .map(|n| work.path().join(format!("mirror-{n}")))
        .collect();
    let mut procs: Vec<Option<Killed>> = mirrors
        .iter()
        .zip(71..)
        .map(|(d, id)| Some(start_mirror(&primary, id, None, d)))
        .collect();
    // Each mirror stopped (kill -9) once it holds its last round.
    let mut stop_after = |i: usize| {
        wait_mirror(&primary, &mirrors[i]);
        drop(procs[i].take());
    };
    workload_rounds(&primary, |round| match round {
        2 => stop_after(2),
        3 => stop_after(1),
        _ => {}
    });
    stop_after(0);
    let groups = groups_of(&mirrors[0]);
    // The moments: r3 after round 2, r2 after round 3 (the last group of
    // d3 in that round ends each).
    for (i, round) in [(1, 3), (2, 2)] {
        let last = seq_of(&groups, 2, round).gtid;
        let have: Vec<MariaGtid> = groups_of(&mirrors[i]).iter().map(|g| g.gtid).collect();
        assert_eq!(
            have.last(),
            Some(&last),
            "the mirror of {} stopped after round {round}",
            names[i]
        );
    }
    let traces = work.path().join("traces");
    std::fs::create_dir_all(&traces).unwrap();
    let t = Topology {
        primary,
        replicas,
        names,
        mirrors,
        groups,
        traces,
        work,
    };
    let sink = TraceSink::open(&t.traces.join("1-apply.trace"), servers()).unwrap();
    for (i, upto) in [
        [Some(3), Some(0), Some(1)],
        [Some(1), Some(3), Some(0)],
        [Some(0), None, Some(2)],
    ]
    .into_iter()
    .enumerate()
    {
        apply_until(&t, i, upto, &sink);
    }
    t
}

fn servers() -> BTreeMap<u32, String> {
    parapply::promote::trace_names((OLD, "p0"), &[(11, "r1"), (12, "r2"), (13, "r3")])
}

fn url(s: &Server) -> String {
    format!("mysql://root@127.0.0.1:{}/", s.port())
}

/// The binary under test; `PARAPPLY_BIN` runs another build of it (a
/// release build, to measure).
fn parapply_bin() -> String {
    std::env::var("PARAPPLY_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_parapply").to_string())
}

fn promote_cmd(t: &Topology, extra: &[&str]) -> Command {
    promote_cmd_with(t, extra, None)
}

/// `served`: replica r3's mirror given as this mirror server's URL.
fn promote_cmd_with(t: &Topology, extra: &[&str], served: Option<&str>) -> Command {
    let mut c = Command::new(parapply_bin());
    c.arg("promote");
    for (i, s) in t.replicas.iter().enumerate() {
        let mirror = match served {
            Some(u) if i == 2 => u.to_string(),
            _ => t.mirrors[i].display().to_string(),
        };
        c.arg("--replica")
            .arg(format!("{}={},{mirror}", t.names[i], url(s)));
    }
    c.env("PARAPPLY_SERVE_PASSWORD", SERVE_PASSWORD);
    c.args(["--freeze-timeout", "10"]).args(extra);
    c
}

/// `--trace FILE` and the server names, for a promote run.
fn trace_args(file: &Path) -> Vec<String> {
    let mut v = vec!["--trace".to_string(), file.display().to_string()];
    for n in ["1=p0", "11=r1", "12=r2", "13=r3"] {
        v.push("--trace-server".into());
        v.push(n.into());
    }
    v
}

fn run_ok(mut c: Command) -> String {
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{c:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn all_checksums(s: &Server) -> BTreeMap<String, u64> {
    s.checksums(&DBS).unwrap()
}

/// Every transaction exactly once: per database, the counter row (one
/// increment per transaction) equals the number of ledger rows (one per
/// transaction), which is `per_db`.
fn assert_ledger(s: &Server, name: &str, per_db: i64) {
    for d in DBS {
        let (rows, n): (i64, i64) = s
            .query_first(&format!(
                "SELECT COUNT(*) - 1, (SELECT n FROM {d}.ledger WHERE id = 0) FROM {d}.ledger"
            ))
            .unwrap()
            .unwrap();
        assert_eq!(
            (rows, n),
            (per_db, per_db),
            "{name}: ledger of {d} (rows, counter)"
        );
    }
}

fn read_only(s: &Server) -> bool {
    s.query_first::<i64>("SELECT @@GLOBAL.read_only").unwrap() == Some(1)
}

fn assert_pairwise_incomparable(t: &Topology) {
    let states: Vec<ReplicaState> = t.replicas.iter().map(read_state).collect();
    for i in 0..3 {
        for j in i + 1..3 {
            let o = compare(&states[i], &states[j]);
            assert!(
                matches!(o, StateOrder::Incomparable { .. }),
                "{} and {} must be incomparable: {o:?}",
                t.names[i],
                t.names[j]
            );
        }
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Mirrors the new primary from `at` into `dir` (a `parapply mirror`
/// process), until it holds the primary's binlog up to its end now.
fn mirror_new_primary(primary: &Server, at: &str, dir: &Path) -> Killed {
    let m = start_mirror(primary, 77, Some(at), dir);
    wait_mirror(primary, dir);
    m
}

/// The trace of the whole run, as module TraceLog; checked with `tla`.
fn check_trace(t: &Topology, new_writes: &[(String, u64)], mirrors_after: usize) {
    check_trace_with(
        t,
        new_writes,
        mirrors_after,
        1,
        "failover of three incomparable replicas",
    );
}

/// [`check_trace`] allowing `reruns` reruns of promote.
fn check_trace_with(
    t: &Topology,
    new_writes: &[(String, u64)],
    mirrors_after: usize,
    reruns: usize,
    what: &str,
) {
    let mut recs = Vec::new();
    for g in &t.groups {
        let shards: Vec<&str> = match &g.shards {
            Some(s) => s.iter().map(String::as_str).collect(),
            None => DBS.to_vec(),
        };
        recs.push(trace::record(
            "OldPrimaryCommit",
            &[
                ("dom", g.gtid.domain.to_string()),
                ("shards", string_set(shards)),
                ("seq", g.gtid.seq.to_string()),
            ],
        ));
    }
    for (i, dir) in t.mirrors.iter().enumerate() {
        for _ in groups_of(dir) {
            recs.push(trace::record(
                "MirrorReceive",
                &[("replica", quote(&t.names[i]))],
            ));
        }
    }
    let read = |n: &str| -> Vec<String> {
        std::fs::read_to_string(t.traces.join(n))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    };
    recs.extend(read("1-apply.trace"));
    recs.push(trace::record("OldPrimaryCrash", &[]));
    recs.extend(read("2-promote.trace"));
    for (d, seq) in new_writes {
        recs.push(trace::record(
            "NewPrimaryCommit",
            &[
                ("dom", "0".into()),
                ("shards", string_set([d.as_str()])),
                ("seq", seq.to_string()),
            ],
        ));
    }
    for name in ["r1", "r2"] {
        for _ in 0..mirrors_after {
            recs.push(trace::record("MirrorReceive", &[("replica", quote(name))]));
        }
    }
    recs.extend(read("3-after.trace"));
    let dir = t.work.path().join("tla");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("tla");
    for f in ["Promotion.tla", "TracePromotion.tla", "MCPromotion.tla"] {
        std::fs::copy(spec.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(
        dir.join("TraceLog.tla"),
        trace::module(&format!("recorded by tests/promote.rs ({what})"), &recs),
    )
    .unwrap();
    let cfg = format!(
        "CONSTANTS\n    Replicas = {{\"r1\", \"r2\", \"r3\"}}\n    Shards = {}\n    Domains = {{0}}\n    \
         OldPrimary = \"p0\"\n    MaxOld = {}\n    MaxNew = {}\n    MaxBatch = 64\n    MaxReruns = {}\n    \
         Faults = {{}}\n    Reduce = FALSE\n    Bug = \"none\"\nSPECIFICATION TraceSpec\nINVARIANTS\n    \
         TraceUnfinished\n    TypeOK\n    NoAppliedGroupLost\n    NoReceivedGroupLost\n    \
         ReplicasConverged\n    AtMostOneWritable\n    RepointedNoSkipNoRepeat\n    NoGroupAppliedTwice\n    \
         MultiShardGroupsAtomic\n    SeqNosIncrease\n    WatermarksExact\n    LowWatermarkSound\n    \
         MirrorsArePrefixes\n    AppliedFromStream\n    RefusesOnlyWhenUnsafe\nCHECK_DEADLOCK FALSE\n",
        string_set(DBS),
        t.groups.len(),
        new_writes.len(),
        reruns.max(1),
    );
    std::fs::write(dir.join("Trace.cfg"), cfg).unwrap();
    // Kept for CI's artefacts and for reading.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("promotion-trace");
    let _ = std::fs::create_dir_all(&keep);
    let _ = std::fs::copy(dir.join("TraceLog.tla"), keep.join("TraceLog.tla"));
    let _ = std::fs::copy(dir.join("Trace.cfg"), keep.join("Trace.cfg"));
    let tla = tla_binary();
    let out = Command::new(&tla)
        .current_dir(&dir)
        .args([
            "TracePromotion.tla",
            "--config",
            "Trace.cfg",
            "--json",
            "--max-depth",
            "100000",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|_| {
        panic!(
            "tla printed no result: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!(
        "trace: {} records; tla: {} (states {})",
        recs.len(),
        v["status"],
        v["stats"]["states_explored"]
    );
    assert!(
        v["status"] == "invariant_violation" && v["invariant_name"] == "TraceUnfinished",
        "the recorded run is no behaviour of tla/Promotion.tla (trace kept in {}): {last}",
        keep.display()
    );
}

fn tla_binary() -> PathBuf {
    if Command::new("tla").arg("--version").output().is_ok() {
        return PathBuf::from("tla");
    }
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tla");
    assert!(
        home.exists(),
        "the TLA+ checker `tla` is needed for trace validation: cargo install tla-checker --locked"
    );
    home
}

#[test]
fn failover_across_three_incomparable_replicas_loses_nothing() {
    let mut t = topology();
    assert_pairwise_incomparable(&t);
    let expected = all_checksums(&t.primary);
    t.primary.kill9().unwrap();

    // The dry run ranks the longest mirror first and changes nothing.
    let plan = json_lines(&run_ok(promote_cmd(&t, &["--dry-run", "--json"])));
    let p = &plan[0]["plan"];
    assert_eq!(p["candidate"], "r1", "{p}");
    assert_eq!(p["source"], "r1");
    assert_eq!(p["lost_groups"], 0);
    assert_eq!(p["incomparable_pairs"].as_array().unwrap().len(), 3, "{p}");
    assert!(t.replicas.iter().all(read_only));

    // r3 lags both in mirror and in applied state; named, it ends complete.
    let trace_file = t.traces.join("2-promote.trace");
    let out = run_ok(promote_cmd(
        &t,
        &[
            "--candidate",
            "r3",
            "--json",
            "--trace",
            trace_file.to_str().unwrap(),
            "--trace-server",
            "1=p0",
            "--trace-server",
            "11=r1",
            "--trace-server",
            "12=r2",
            "--trace-server",
            "13=r3",
        ],
    ));
    let lines = json_lines(&out);
    let plan = &lines[0]["plan"];
    let report = &lines[1]["report"];
    eprintln!("plan: {plan}\nreport: {report}");
    assert_eq!(plan["candidate"], "r3");
    assert_eq!(plan["chosen_by"], "operator");
    let lacks: Vec<u64> = plan["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["lacks_groups"].as_u64().unwrap())
        .collect();
    assert!(
        lacks.iter().all(|&l| l > 0),
        "every replica lacks something: {lacks:?}"
    );
    for (i, s) in t.replicas.iter().enumerate() {
        assert_eq!(
            all_checksums(s),
            expected,
            "{} differs from the old primary",
            t.names[i]
        );
        assert_ledger(s, &t.names[i], ROUNDS as i64);
    }
    assert!(!read_only(&t.replicas[2]), "the new primary is writable");
    assert!(read_only(&t.replicas[0]) && read_only(&t.replicas[1]));

    // New writes on the new primary, above every seq_no applied.
    let highest = t.groups.iter().map(|g| g.gtid.seq).max().unwrap();
    let mut c = common::root_conn(&t.replicas[2]);
    let mut new_writes = Vec::new();
    for d in DBS {
        write_one(&mut c, d, 100);
        let g: MariaGtid = c
            .query_value("SELECT @@SESSION.last_gtid")
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert!(g.seq > highest, "new GTID {g} not above {highest}");
        new_writes.push((d.to_string(), g.seq));
    }
    let at = report["repoint"].as_str().unwrap().to_string();
    let sink = TraceSink::open(&t.traces.join("3-after.trace"), servers()).unwrap();
    let mut procs = Vec::new();
    for i in 0..2 {
        let dir = t.work.path().join(format!("new-mirror-{}", t.names[i]));
        procs.push(mirror_new_primary(&t.replicas[2], &at, &dir));
        let mut o = options(&dir, &t.replicas[i]);
        o.trace = Some(sink.for_replica(&t.names[i], false));
        let r = engine::run(o).expect("the re-pointed applier resumes");
        assert_eq!(r.applied, 3, "{}: exactly the new writes", t.names[i]);
    }
    let now = all_checksums(&t.replicas[2]);
    for i in 0..2 {
        assert_eq!(all_checksums(&t.replicas[i]), now, "{}", t.names[i]);
        assert_ledger(&t.replicas[i], &t.names[i], ROUNDS as i64 + 1);
    }
    drop(procs);
    check_trace(&t, &new_writes, 3);
}

/// The refusals, then kill -9 of promote at random moments, each followed
/// by a rerun (naming another candidate each time) until one finishes:
/// one primary, nothing lost, nothing applied twice. From the kills on,
/// r3's mirror is given as its mirror server's address.
#[test]
fn refusals_change_nothing_and_reruns_after_kill_9_converge() {
    let mut t = topology();
    let expected = all_checksums(&t.primary);
    t.primary.kill9().unwrap();
    let refused = |c: Command, says: &str| {
        let mut c = c;
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{c:?} must refuse");
        assert!(err.contains(says), "{c:?}: expected `{says}` in: {err}");
        eprintln!("refused as expected: {}", err.trim());
    };

    // A failing pre-hook: nothing changed (not even frozen).
    refused(
        promote_cmd(&t, &["--pre-hook", "exit 3"]),
        "pre-hook `exit 3` failed",
    );
    assert!(t.replicas.iter().all(|s| frozen_by(s).is_none()));

    // A diverged mirror: r2's holds another byte where r1's has the
    // primary's (a primary that lost its tail and wrote another history).
    let f = t.mirrors[1].join("mariadb-bin.000002");
    let good = std::fs::read(&f).unwrap();
    let mut bad = good.clone();
    let at = bad.len() - 10;
    bad[at] ^= 0xff;
    std::fs::write(&f, &bad).unwrap();
    refused(
        promote_cmd(&t, &[]),
        &format!("the mirror of r2 and the mirror of r1 diverge at mariadb-bin.000002:{at}"),
    );
    std::fs::write(&f, &good).unwrap();
    // Refused, the appliers stay frozen: an applier may not start.
    let o = options(&t.mirrors[0], &t.replicas[0]);
    let e = engine::run(o).unwrap_err();
    assert!(e.to_string().contains("frozen by promotion"), "{e}");

    errant_transactions_are_refused(&t);
    // The refused promotion's freeze cleared: from here on every run is
    // traced, and the trace checked against the spec at the end.
    let out = run_ok(promote_cmd(&t, &["--unfreeze"]));
    eprintln!("unfrozen: {}", out.trim());
    assert!(t.replicas.iter().all(|s| frozen_by(s).is_none()));
    let trace_file = t.traces.join("2-promote.trace");
    let traced = trace_args(&trace_file);
    let traced: Vec<&str> = traced.iter().map(String::as_str).collect();

    // r3's mirror is read through its mirror server from here on.
    let stop = Arc::new(AtomicBool::new(false));
    let mut so = ServeOptions::new(
        &t.mirrors[2],
        "127.0.0.1:0",
        "repl",
        Secret::new(SERVE_PASSWORD),
    );
    so.stop = stop.clone();
    let server = BinlogServer::bind(so, None).unwrap();
    let served = format!("mysql://repl@{}/", server.local_addr().unwrap());
    let serving = std::thread::spawn(move || server.run());

    // kill -9 at random moments; each rerun names another candidate.
    let mut rng = std::collections::hash_map::RandomState::new();
    let mut kills = 0;
    let mut late_kills = 0;
    let mut finished = false;
    let names = ["r1", "r2", "r3"];
    for round in 0..30 {
        let cand = names[round % 3];
        let mut args = vec!["--candidate", cand];
        args.extend(&traced);
        let mut c = promote_cmd_with(&t, &args, Some(&served));
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        // Random moments, spread wider as the kills go on (a rerun
        // resumes, so later ones reach later steps).
        let delay = Duration::from_millis(random(&mut rng) % (100 + 120 * kills));
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(st) => {
                let mut err = String::new();
                use std::io::Read;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                assert!(st.success(), "a rerun failed: {err}");
                finished = true;
                break;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                let phase = t.replicas.iter().find_map(|s| {
                    s.query_first::<String>(
                        "SELECT value FROM parapply.config WHERE name = 'promotion'",
                    )
                    .unwrap_or(None)
                });
                eprintln!(
                    "killed promote (candidate {cand}) after {delay:?}; persisted: {}",
                    phase.as_deref().unwrap_or("no plan yet")
                );
                late_kills += usize::from(phase.is_some());
                assert!(
                    t.replicas.iter().filter(|s| !read_only(s)).count() <= 1,
                    "two writable servers after a kill"
                );
            }
        }
        // At least ten kills, some of them after the plan was persisted.
        if (kills >= 10 && late_kills >= 3) || round == 29 {
            // Let the next rerun finish.
            let mut args = vec!["--json"];
            args.extend(&traced);
            let out = run_ok(promote_cmd_with(&t, &args, Some(&served)));
            eprintln!("final rerun: {}", out.lines().last().unwrap_or_default());
            finished = true;
            break;
        }
    }
    assert!(kills >= 10, "only {kills} kills before promote finished");
    eprintln!("{kills} kills, {late_kills} after the plan was persisted");
    assert!(finished);
    stop.store(true, Ordering::Relaxed);
    serving.join().unwrap().unwrap();
    let writable: Vec<usize> = (0..3).filter(|&i| !read_only(&t.replicas[i])).collect();
    assert_eq!(writable.len(), 1, "exactly one primary");
    for (i, s) in t.replicas.iter().enumerate() {
        assert_eq!(all_checksums(s), expected, "{}", t.names[i]);
        assert_ledger(s, &t.names[i], ROUNDS as i64);
        if i != writable[0] {
            assert_eq!(frozen_by(s), None, "{} re-pointed", t.names[i]);
        }
    }
    // Every run, killed or not, is a behaviour of the spec.
    let reruns = std::fs::read_to_string(&trace_file)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"PromoteRerun\""))
        .count();
    check_trace_with(&t, &[], 0, reruns, "kill -9 of promote and its reruns");
}

/// An errant transaction on r1 (a row written by hand) is refused; so is
/// one hidden behind a later GTID of r1 that parapply recorded as its own.
/// Undone afterwards the way the runbook says.
fn errant_transactions_are_refused(t: &Topology) {
    // An errant transaction, written on r1 by hand.
    t.replicas[0]
        .exec("INSERT INTO d1.ledger VALUES (999, 1)")
        .unwrap();
    let errant = last_gtid_of_r1(t);
    let out = promote_cmd(t, &[]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "promote must refuse: {err}");
    assert!(err.contains(&format!("r1: {errant}")), "{errant}: {err}");
    // Hidden behind parapply's own DDL: a later GTID of the same server
    // that parapply recorded as its own (as its progress-table DDL does)
    // is the pair's last in gtid_binlog_state; the binlog is read.
    t.replicas[0].exec("CREATE DATABASE own_ddl").unwrap();
    let own = last_gtid_of_r1(t);
    assert_ne!(own, errant);
    t.replicas[0]
        .exec(&format!(
            "SET sql_log_bin = 0; INSERT INTO parapply.config (name, value) \
             VALUES ('own_gtids', '{own}') ON DUPLICATE KEY UPDATE \
             value = CONCAT_WS(',', NULLIF(value, ''), '{own}'); SET sql_log_bin = 1"
        ))
        .unwrap();
    let out = promote_cmd(t, &[]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "promote must refuse: {err}");
    assert!(
        err.contains(&format!("r1: {errant}")) && !err.contains(&own),
        "the hidden errant GTID {errant}, not parapply's own {own}: {err}"
    );
    // Undone the way the runbook says: the row deleted outside the
    // binlog, the replica's own binlog reset.
    t.replicas[0]
        .exec("SET sql_log_bin = 0; DELETE FROM d1.ledger WHERE id = 999; DROP DATABASE own_ddl; SET sql_log_bin = 1; RESET MASTER")
        .unwrap();
}

/// The last GTID r1 (server id 11) logged itself.
fn last_gtid_of_r1(t: &Topology) -> String {
    let pos: String = t.replicas[0]
        .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
        .unwrap()
        .unwrap();
    pos.split(',')
        .find(|g| g.split('-').nth(1) == Some("11"))
        .unwrap()
        .to_string()
}

fn frozen_by(s: &Server) -> Option<String> {
    s.query_first::<String>("SELECT value FROM parapply.config WHERE name = 'freeze'")
        .unwrap_or(None)
}

fn random(state: &mut std::collections::hash_map::RandomState) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = state.build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    *state = std::collections::hash_map::RandomState::new();
    h.finish()
}

/// Waits until `s`'s tables equal `want` (a replica catching up).
fn wait_checksums(s: &Server, want: &BTreeMap<String, u64>, what: &str) {
    let deadline = Instant::now() + common::HANG_GUARD;
    loop {
        if s.checksums(&DBS).ok().as_ref() == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Switchover with the old primary alive, running mirrors and appliers
/// (`parapply mirror`, `parapply apply --follow`) on two replicas and a
/// third run by MariaDB's own replication: the appliers drain and stop
/// when frozen, the old primary's last writes reach the mirrors, and
/// afterwards the old primary and the native replica replicate from the
/// new primary (`CHANGE MASTER TO` the re-point position), the other
/// parapply replica through a mirror of it: all equal after new writes.
#[test]
fn switchover_with_running_appliers_and_a_native_replica() {
    let p = Server::start(
        ServerOptions::new()
            .server_id(OLD)
            .log_bin("mariadb-bin")
            .max_binlog_size(4096),
    )
    .expect("start the primary");
    let rs: Vec<Server> = (11..14).map(replica).collect();
    rs[2].replicate_from(&p).unwrap();
    let work = tempfile::tempdir().unwrap();
    let bin = parapply_bin();
    let bin = bin.as_str();
    let mut procs = Vec::new();
    let mut mirrors = Vec::new();
    for (i, r) in rs.iter().take(2).enumerate() {
        let dir = work.path().join(format!("mirror-r{}", i + 1));
        std::fs::create_dir_all(&dir).unwrap();
        procs.push(Killed(
            Command::new(bin)
                .args([
                    "mirror",
                    "--server-id",
                    &format!("{}", 70 + i),
                    "--primary",
                    &url(&p),
                ])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
        let deadline = Instant::now() + common::HANG_GUARD;
        while !std::fs::read_dir(&dir)
            .unwrap()
            .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "index"))
        {
            assert!(Instant::now() < deadline, "the mirror wrote no index");
            std::thread::sleep(Duration::from_millis(20));
        }
        procs.push(Killed(
            Command::new(bin)
                .args(["apply", "--follow", "--workers", "2", "--source"])
                .arg(&dir)
                .args(["--target", &url(r)])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
        mirrors.push(dir);
    }
    workload(&p);
    let expected = all_checksums(&p);
    let mut c = Command::new(bin);
    c.args([
        "promote",
        "--switchover",
        "--old-primary",
        &url(&p),
        "--candidate",
        "r1",
        "--json",
    ]);
    for (i, r) in rs.iter().enumerate() {
        let m = if i < 2 {
            mirrors[i].display().to_string()
        } else {
            "native".into()
        };
        c.arg("--replica").arg(format!("r{}={},{m}", i + 1, url(r)));
    }
    let out = run_ok(c);
    let report = &json_lines(&out)[1]["report"];
    eprintln!("report: {report}");
    // The frozen appliers drained and stopped by themselves.
    for k in [1, 3] {
        let deadline = Instant::now() + common::HANG_GUARD;
        let st = loop {
            if let Some(st) = procs[k].0.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "a frozen applier did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(st.success(), "a frozen applier exited with {st}");
    }
    drop(procs);
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(all_checksums(r), expected, "r{}", i + 1);
    }
    assert!(read_only(&p), "the old primary is read-only");
    assert!(!read_only(&rs[0]));
    assert!(read_only(&rs[1]) && read_only(&rs[2]));

    let mut c = common::root_conn(&rs[0]);
    for d in DBS {
        write_one(&mut c, d, 100);
    }
    let now = all_checksums(&rs[0]);
    wait_checksums(&p, &now, "the old primary (replicating from the new one)");
    wait_checksums(&rs[2], &now, "the native replica");
    let at = report["repoint"].as_str().unwrap();
    let dir = work.path().join("new-mirror-r2");
    let _m = mirror_new_primary(&rs[0], at, &dir);
    let r = engine::run(options(&dir, &rs[1])).expect("r2 resumes");
    assert_eq!(r.applied, 3);
    for (name, s) in [("old primary", &p), ("r2", &rs[1]), ("r3", &rs[2])] {
        assert_eq!(all_checksums(s), now, "{name}");
        assert_ledger(s, name, ROUNDS as i64 + 1);
    }
}
