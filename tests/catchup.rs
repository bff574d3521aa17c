//! `parapply catchup` against real servers: a primary, its mirror, two
//! replicas applied by parapply to incomparable states, and a replica run
//! by MariaDB's own SQL thread.
//!
//! The replicas A and B are applied by the apply engine itself, each with
//! a catch-up selection towards a state written out by hand (everything
//! up to the tables' setup, then database w1 up to one point and w2 up to
//! another): the engine applies exactly those groups and stops, leaving the
//! per-shard watermarks a parallel applier leaves when it is stopped with
//! one database ahead of the other. The native replica N is stopped with
//! `START SLAVE UNTIL master_gtid_pos`: a prefix of the stream.
//!
//! What each replica holds is read from its tables (every transaction of
//! the workload inserts one row with its own id), and mapped to GTIDs
//! through the ledger the workload wrote (`@@last_gtid` after each commit):
//! the catch-up sets printed by `parapply catchup --json` must be exactly
//! the GTIDs one side holds and the other lacks. After `--apply` in both
//! directions every replica's checksums equal the primary's (each
//! transaction also counts itself in its database's row 0), and no primary
//! GTID is twice in a replica's binary log.
//!
//! Run: `cargo test --test catchup -- --nocapture` (needs mariadb-server).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mysql::prelude::Queryable;
use parapply::apply::engine::{self, ApplyOptions};
use parapply::binlog::Source;
use parapply::catchup::{self, Applier, Item};
use parapply::mirror::serve::{ServeOptions, Server as BinlogServer};
use parapply::position::MariaGtid;
use parapply::progress::{compare, AppliedSet, ProgressTables, Selection, StateOrder, Watermark};
use parapply::replica::{Replica, ReplicaOptions};
use parapply::sandbox::{Server, ServerOptions};
use parapply::schedule::{ShardBy, ShardMap};
use parapply::wire::{ConnectOptions, Secret};

const N: usize = 120;
const SERVE_USER: &str = "repl";
const SERVE_PASSWORD: &str = "catchup-test-secret";

/// GTID → (database, row id) of each workload transaction, in commit order.
type Ledger = Vec<(MariaGtid, &'static str, u32)>;

/// The tables, then `N` transactions alternating between w1 and w2, each
/// inserting its row and counting in the database's row 0.
fn workload(p: &Server) -> Ledger {
    p.exec(
        "CREATE DATABASE w1; CREATE DATABASE w2;
         CREATE TABLE w1.t (id INT PRIMARY KEY, k INT NOT NULL, v VARCHAR(200));
         CREATE TABLE w2.t (id INT PRIMARY KEY, k INT NOT NULL, v VARCHAR(200));
         INSERT INTO w1.t VALUES (0, 0, 'counter'); INSERT INTO w2.t VALUES (0, 0, 'counter');",
    )
    .unwrap();
    let mut c = p.conn().unwrap();
    let mut ledger = Vec::new();
    for i in 1..=N as u32 {
        let db = if i % 2 == 0 { "w1" } else { "w2" };
        c.query_drop(format!(
            "BEGIN; INSERT INTO {db}.t VALUES ({i}, {i}, REPEAT('x', {})); \
             UPDATE {db}.t SET k = k + 1 WHERE id = 0; COMMIT",
            i % 150
        ))
        .unwrap();
        let g: String = c.query_first("SELECT @@last_gtid").unwrap().unwrap();
        ledger.push((g.parse().unwrap(), db, i));
    }
    ledger
}

fn target(s: &Server) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", s.port(), "root")
}

fn url(s: &Server) -> String {
    format!("mysql://root@127.0.0.1:{}/", s.port())
}

fn wm(it: &Item) -> Watermark {
    Watermark {
        seq_no: it.gtid.seq,
        server_id: it.gtid.server,
        end: it.end_pos(),
    }
}

/// The mirror's item of `g`.
fn item(items: &[Item], g: MariaGtid) -> &Item {
    items.iter().find(|i| i.gtid == g).expect("in the mirror")
}

/// Applies to `t`, with the engine, everything up to `low` and then w1 up
/// to `w1`, w2 up to `w2` (see the module doc).
fn apply_partially(mirror: &Path, t: &Server, items: &[Item], low: &Item, w1: &Item, w2: &Item) {
    let mut goal = AppliedSet::default();
    goal.state.low.insert(0, wm(low));
    goal.state.shards.insert((0, "w1".into()), wm(w1));
    goal.state.shards.insert((0, "w2".into()), wm(w2));
    let mut opts = ApplyOptions::new(Source::dir(mirror).unwrap(), target(t));
    opts.workers = 4;
    opts.selection = Selection::catch_up(goal);
    let r = engine::run(opts).unwrap();
    assert!(r.applied > 0 && items.len() > r.applied as usize);
}

/// The workload GTIDs whose row `s` holds.
fn held(s: &Server, ledger: &Ledger) -> BTreeSet<MariaGtid> {
    let mut ids = BTreeSet::new();
    for db in ["w1", "w2"] {
        let rows: Vec<u32> = s
            .query(&format!("SELECT id FROM {db}.t WHERE id > 0"))
            .unwrap_or_default();
        ids.extend(rows.into_iter().map(|i| (db, i)));
    }
    ledger
        .iter()
        .filter(|(_, db, i)| ids.contains(&(*db, *i)))
        .map(|(g, _, _)| *g)
        .collect()
}

fn load(s: &Server, mirror: &Path) -> catchup::Loaded {
    let mut r = Replica::connect(ReplicaOptions {
        target: target(s),
        progress: ProgressTables::new("parapply").unwrap(),
        reconnect_timeout: std::time::Duration::ZERO,
    })
    .unwrap();
    catchup::load(&mut r, Some(mirror)).unwrap()
}

/// `parapply catchup --json` with `extra` arguments, parsed.
fn catchup_json(a: &Server, b: &Server, mirror: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_parapply"))
        .args([
            "catchup",
            "--json",
            "--workers",
            "4",
            "--from",
            &url(a),
            "--to",
            &url(b),
        ])
        .args(["--mirror", mirror])
        .args(extra)
        .env("PARAPPLY_MIRROR_PASSWORD", SERVE_PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "parapply catchup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn gtids(set: &serde_json::Value) -> Vec<MariaGtid> {
    set["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["gtid"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn sorted(s: BTreeSet<MariaGtid>) -> Vec<MariaGtid> {
    let mut v: Vec<MariaGtid> = s.into_iter().collect();
    v.sort_by_key(|g| g.seq);
    v
}

/// Every primary GTID (server 1) in `s`'s binary log, with its count.
fn logged(s: &Server) -> BTreeMap<MariaGtid, usize> {
    let index = s.binlog_index().unwrap();
    let scan = catchup::scan(&index, None, &ShardMap::new(ShardBy::Database)).unwrap();
    let mut n = BTreeMap::new();
    for it in scan.items.iter().filter(|i| i.gtid.server == 1) {
        *n.entry(it.gtid).or_insert(0) += 1;
    }
    n
}

/// The native replica: `START SLAVE UNTIL` `until`, then stopped there.
fn native_until(n: &Server, p: &Server, until: MariaGtid) {
    n.exec(&format!(
        "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root', \
         MASTER_PASSWORD = '', MASTER_CONNECT_RETRY = 1, MASTER_USE_GTID = slave_pos; \
         START SLAVE UNTIL master_gtid_pos = '{until}'",
        p.port()
    ))
    .unwrap();
    let deadline = Instant::now() + common::HANG_GUARD;
    loop {
        let pos: Option<String> = n.query_first("SELECT @@GLOBAL.gtid_slave_pos").unwrap();
        if pos.as_deref() == Some(&until.to_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the native replica never reached {until}: {pos:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    n.exec("STOP SLAVE").unwrap();
}

#[test]
fn catchup_between_incomparable_replicas_and_a_native_one() {
    let p = common::mirror_primary(16 * 1024);
    let ledger = workload(&p);
    // The mirror, copied from the primary up to its end (rotating files).
    let dir = tempfile::tempdir().unwrap();
    catchup::remote::fetch(&target(&p), 77, None, dir.path()).unwrap();
    let map = ShardMap::new(ShardBy::Database);
    let items = catchup::scan(dir.path(), None, &map).unwrap().items;
    assert!(
        catchup::mirror_files(dir.path()).unwrap().len() > 2,
        "the mirror should span several files"
    );
    // Served too, for the mirror-server path.
    let stop = Arc::new(AtomicBool::new(false));
    let mut so = ServeOptions::new(
        dir.path(),
        "127.0.0.1:0",
        SERVE_USER.to_string(),
        Secret::new(SERVE_PASSWORD),
    );
    so.stop = stop.clone();
    let server = BinlogServer::bind(so, None).unwrap();
    let served = format!("mysql://{SERVE_USER}@{}/", server.local_addr().unwrap());
    let serving = std::thread::spawn(move || server.run());

    // A: w1 to its end, w2 to 40 %; B: w1 to 40 %, w2 to its end.
    let setup = items
        .iter()
        .position(|i| i.gtid == ledger[0].0)
        .unwrap()
        .checked_sub(1)
        .unwrap();
    let low = &items[setup];
    let at = |i: usize| item(&items, ledger[i].0);
    // ledger[i] is row i + 1: odd i in w1, even i in w2.
    let (last_w1, last_w2) = (N - 1, N - 2);
    let (a, b) = (common::replica_target(), common::replica_target());
    apply_partially(dir.path(), &a, &items, low, at(last_w1), at(46));
    apply_partially(dir.path(), &b, &items, low, at(47), at(last_w2));
    // N: MariaDB's own SQL thread, stopped at 70 %.
    let n = Server::start(
        ServerOptions::new()
            .server_id(3)
            .log_bin("native-bin")
            .log_slave_updates(true),
    )
    .unwrap();
    native_until(&n, &p, ledger[83].0);

    // The states, loaded: pairwise incomparable (asserted first).
    let (la, lb, ln) = (
        load(&a, dir.path()),
        load(&b, dir.path()),
        load(&n, dir.path()),
    );
    assert_eq!(la.applier, Applier::Parapply);
    assert_eq!(ln.applier, Applier::Native);
    for (x, y) in [(&la, &lb), (&la, &ln), (&lb, &ln)] {
        assert!(
            matches!(
                compare(&x.applied.state, &y.applied.state),
                StateOrder::Incomparable { .. }
            ),
            "{} and {} should be incomparable",
            x.addr,
            y.addr
        );
    }
    let (ha, hb, hn) = (held(&a, &ledger), held(&b, &ledger), held(&n, &ledger));

    // Both directions, against the ledger.
    let j = catchup_json(&a, &b, dir.path().to_str().unwrap(), &[]);
    assert_eq!(j["order"]["relation"], "incomparable");
    assert_eq!(gtids(&j["a_to_b"]), sorted(&ha - &hb));
    assert_eq!(gtids(&j["b_to_a"]), sorted(&hb - &ha));
    assert_eq!(j["to"]["applier"], "parapply");
    let j = catchup_json(&a, &n, dir.path().to_str().unwrap(), &[]);
    assert_eq!(j["order"]["relation"], "incomparable");
    assert_eq!(j["to"]["applier"], "native");
    assert_eq!(gtids(&j["a_to_b"]), sorted(&ha - &hn));
    assert_eq!(gtids(&j["b_to_a"]), sorted(&hn - &ha));

    // The text form, with every group listed.
    let out = Command::new(env!("CARGO_BIN_EXE_parapply"))
        .args(["catchup", "--list", "--from", &url(&a), "--to", &url(&n)])
        .args(["--mirror", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("(parapply), B = ") && text.contains("(native)"));
    assert!(text.contains("states: incomparable; A leads in 0/w1"));
    assert_eq!(
        text.lines().filter(|l| l.starts_with("  0-1-")).count(),
        (&ha - &hn).len() + (&hn - &ha).len()
    );

    // A → N applied: N (native, seeded) holds A ∪ N.
    let j = catchup_json(&a, &n, dir.path().to_str().unwrap(), &["--apply"]);
    assert_eq!(j["applied"]["seeded"], true);
    assert_eq!(held(&n, &ledger), &ha | &hn);
    // A → B, then B → A through the mirror server: both hold everything.
    let j = catchup_json(&a, &b, dir.path().to_str().unwrap(), &["--apply"]);
    assert_eq!(j["applied"]["report"]["applied"], (&ha - &hb).len());
    let j = catchup_json(&b, &a, &served, &["--apply"]);
    assert_eq!(gtids(&j["a_to_b"]), sorted(&hb - &ha));
    // B → N: N holds everything too.
    catchup_json(&b, &n, dir.path().to_str().unwrap(), &["--apply"]);
    let want = p.checksums(&["w1", "w2"]).unwrap();
    for s in [&a, &b, &n] {
        assert_eq!(s.checksums(&["w1", "w2"]).unwrap(), want, "{}", url(s));
        // Nothing applied twice: each database's row 0 counted every
        // transaction once (in the checksums above), and no primary GTID
        // is twice in the replica's binary log. (Not every one is there:
        // a batch of one shard's groups is logged under its last GTID.)
        let counts = logged(s);
        assert!(counts.values().all(|&c| c == 1), "{}: {counts:?}", url(s));
        assert!(counts.keys().all(|g| g.seq <= ledger[N - 1].0.seq));
    }
    // Now equal, nothing to catch up either way.
    let j = catchup_json(&a, &n, &served, &[]);
    assert_eq!(j["order"]["relation"], "equal");
    assert!(gtids(&j["a_to_b"]).is_empty() && gtids(&j["b_to_a"]).is_empty());
    // An unreachable mirror server is an error naming it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let out = Command::new(env!("CARGO_BIN_EXE_parapply"))
        .args(["catchup", "--from", &url(&a), "--to", &url(&b)])
        .arg("--mirror")
        .arg(format!("mysql://{SERVE_USER}@{dead_addr}/"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("mirror server {dead_addr}")), "{err}");
    stop.store(true, Ordering::SeqCst);
    serving.join().unwrap().unwrap();
}
