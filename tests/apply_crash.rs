//! Crash safety of `parapply apply`: nothing lost, nothing applied twice.
//!
//! * The applier process is killed with SIGKILL at 20 random moments of one
//!   run and restarted each time; at the end the target's tables equal the
//!   primary's, and a ledger (a table without a primary key into which
//!   every transaction inserts its own token) holds every token exactly once.
//!   The kills must have landed while applying: at least 15 of the 20 come
//!   after the run committed something (the ledger grew during it) and
//!   before it committed everything.
//! * The target `mariadbd` is killed and restarted in the middle of a run:
//!   the applier reconnects and finishes, again exactly once.
//!
//! Run: `cargo test --test apply_crash` (needs mariadb-server installed).
//! The random moments come from a seed printed by the test.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parapply::apply::engine::{self, ApplyOptions};
use parapply::binlog::Source;
use parapply::sandbox::{Server, ServerOptions};
use parapply::wire::ConnectOptions;

const DBS: usize = 6;

/// A primary with a workload whose every transaction leaves a token in its
/// database's ledger; DDL (barriers) and cross-database transactions mixed in.
fn primary_with_ledger(transactions: usize) -> Server {
    let p = Server::start(
        ServerOptions::new()
            .server_id(1)
            .log_bin("mariadb-bin")
            .max_binlog_size(256 * 1024),
    )
    .unwrap();
    let mut setup = String::new();
    for d in 0..DBS {
        setup.push_str(&format!(
            "CREATE DATABASE c{d}; CREATE TABLE c{d}.t (id INT PRIMARY KEY, n INT NOT NULL);
             CREATE TABLE c{d}.ledger (token VARCHAR(40) NOT NULL);
             INSERT INTO c{d}.t VALUES (1, 0);"
        ));
    }
    p.exec(&setup).unwrap();
    let mut c = p.conn().unwrap();
    use mysql::prelude::Queryable;
    for i in 0..transactions {
        let d = i % DBS;
        let sql = if i % 50 == 25 {
            let e = (d + 1) % DBS;
            format!(
                "START TRANSACTION; UPDATE c{d}.t SET n = n + 1 WHERE id = 1; UPDATE c{e}.t SET n = n + 1 WHERE id = 1;
                 INSERT INTO c{d}.ledger VALUES ('x{i}'); INSERT INTO c{e}.ledger VALUES ('x{i}'); COMMIT"
            )
        } else if i % 400 == 200 {
            format!("CREATE TABLE c{d}.ddl{i} (a INT); INSERT INTO c{d}.ledger VALUES ('d{i}')")
        } else {
            format!(
                "START TRANSACTION; INSERT INTO c{d}.t VALUES ({}, {i}); UPDATE c{d}.t SET n = n + 1 WHERE id = 1;
                 INSERT INTO c{d}.ledger VALUES ('t{i}'); COMMIT",
                i + 10
            )
        };
        for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            c.query_drop(stmt).unwrap();
        }
    }
    p
}

fn target() -> Server {
    common::replica_target()
}

fn dbs() -> Vec<String> {
    (0..DBS).map(|d| format!("c{d}")).collect()
}

/// Tables equal, and every ledger token exactly once.
fn assert_exactly_once(p: &Server, t: &Server) {
    let names = dbs();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(p.checksums(&refs).unwrap(), t.checksums(&refs).unwrap());
    for d in &names {
        let dup: Vec<(String, u64)> = t
            .query(&format!(
                "SELECT token, COUNT(*) FROM {d}.ledger GROUP BY token HAVING COUNT(*) <> 1"
            ))
            .unwrap();
        assert!(
            dup.is_empty(),
            "{d}: tokens applied more than once: {dup:?}"
        );
        let want: Option<u64> = p
            .query_first(&format!("SELECT COUNT(*) FROM {d}.ledger"))
            .unwrap();
        let got: Option<u64> = t
            .query_first(&format!("SELECT COUNT(*) FROM {d}.ledger"))
            .unwrap();
        assert_eq!(want, got, "{d}: ledger rows");
    }
}

#[test]
fn kill_9_of_the_applier_at_random_moments_loses_and_repeats_nothing() {
    let p = primary_with_ledger(12_000);
    let t = target();
    let seed = common::crash_seed();
    eprintln!("kill moments from seed {seed} (PARAPPLY_CRASH_SEED={seed} repeats them)");
    let mut rng = common::Rng(seed);
    let bin = env!("CARGO_BIN_EXE_parapply");
    // Each run batches (8 groups per transaction) or not (`--batch 1`:
    // groups chained in round trips, each its own transaction): kills land
    // in both ways of committing.
    let apply = |batch: &str| {
        Command::new(bin)
            .args(["apply", "--workers", "6", "--batch", batch, "--source"])
            .arg(p.binlog_dir())
            .args(["--target", &format!("mysql://root@127.0.0.1:{}/", t.port())])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let total = ledger_rows(&p);
    let mut kills = 0;
    // Kills that landed while the run was applying: the ledger grew during
    // the run, and was not complete when it was killed.
    let mut while_applying = 0;
    let mut ledger_at_kills = Vec::new();
    while kills < 20 {
        // The killed applier's sessions are gone: what the ledger holds now
        // is all the previous runs committed.
        wait_for_no_applier_session(&t);
        let before = ledger_rows(&t);
        let child = apply(if rng.next() & 1 == 0 { "1" } else { "8" });
        // Most moments come once this run has committed something (the
        // ledger grew), then 0–40 ms later; every fifth is blind, 0–100 ms
        // after the start (startup, preflight, the applier lock, skipping).
        let blind = kills % 5 == 4;
        let extra = Duration::from_millis(rng.next() % if blind { 100 } else { 40 });
        let blind = blind.then(|| Instant::now() + extra);
        if !common::kill_at_moment(child, blind, extra, || ledger_rows(&t) > before) {
            // Everything was applied before the moment came: nothing to
            // kill any more.
            break;
        }
        kills += 1;
        let after = ledger_rows(&t);
        if before < after && after < total {
            while_applying += 1;
        }
        ledger_at_kills.push(after);
    }
    // The final run, to the end.
    let out = apply("1").wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "killed {kills} times, {while_applying} while applying; ledger rows at the kills: \
         {ledger_at_kills:?} of {total}"
    );
    assert!(
        kills >= 20,
        "only {kills} kills happened before the work was done"
    );
    assert!(
        while_applying >= 15,
        "only {while_applying} of {kills} kills landed while the applier was applying \
         (ledger rows at the kills: {ledger_at_kills:?} of {total})"
    );
    assert!(
        ledger_at_kills.windows(2).all(|w| w[0] <= w[1]),
        "the ledger shrank between kills: {ledger_at_kills:?}"
    );
    assert_exactly_once(&p, &t);
}

/// Rows in all the ledgers of `s` (0 before the ledger tables exist there).
fn ledger_rows(s: &Server) -> u64 {
    let sum = dbs()
        .iter()
        .map(|d| format!("(SELECT COUNT(*) FROM {d}.ledger)"))
        .collect::<Vec<_>>()
        .join(" + ");
    match s.query_first::<u64>(&format!("SELECT {sum}")) {
        Ok(n) => n.unwrap_or(0),
        // The tables come with the first groups applied.
        Err(e)
            if e.to_string().contains("doesn't exist")
                || e.to_string().contains("Unknown database") =>
        {
            0
        }
        Err(e) => panic!("counting the ledger rows: {e}"),
    }
}

/// Waits until the target has no session but this one: a killed applier's
/// connections are closed and their transactions rolled back or committed.
fn wait_for_no_applier_session(t: &Server) {
    let deadline = Instant::now() + common::HANG_GUARD;
    loop {
        let n: Option<u64> = t
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE ID <> CONNECTION_ID() AND USER = 'root'",
            )
            .unwrap();
        if n == Some(0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the killed applier's sessions stayed for 120 s (a hang guard)"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_target_killed_and_restarted_mid_run_is_reconnected_and_nothing_is_lost() {
    target_killed_and_restarted(4);
}

/// The same with `--batch 1`: single transactions chained in round trips,
/// some committed before the connection went, some not.
#[test]
fn with_batch_1_the_target_killed_and_restarted_mid_run_loses_and_repeats_nothing() {
    target_killed_and_restarted(1);
}

fn target_killed_and_restarted(batch_groups: usize) {
    let p = primary_with_ledger(1500);
    let mut t = target();
    let port = t.port();
    let options = || {
        let mut o = ApplyOptions::new(
            Source::dir(p.binlog_dir()).unwrap(),
            ConnectOptions::new("127.0.0.1", port, "root"),
        );
        o.workers = 6;
        o.batch_groups = batch_groups;
        o.batch_bytes = 1 << 20;
        o.max_inflight_bytes = 4 << 20;
        o.reconnect_timeout = Duration::from_secs(60);
        o.low_watermark_interval = Duration::from_millis(100);
        o
    };
    let opts = options();
    let runner = std::thread::spawn(move || engine::run(opts));
    // Kill the target once the run has committed a tenth of the work, and
    // not all of it.
    let total = ledger_rows(&p);
    let deadline = Instant::now() + common::HANG_GUARD;
    let at_kill = loop {
        let n = ledger_rows(&t);
        if n >= total / 10 {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "nothing applied in 120 s (a hang guard)"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(
        !runner.is_finished() && at_kill < total,
        "the run ended before the target was killed: nothing was tested"
    );
    t.kill9().unwrap();
    // Down for a moment (not a synchronisation): the applier's
    // connections fail and it keeps reconnecting until the restart.
    std::thread::sleep(Duration::from_millis(500));
    t.restart().unwrap();
    let result = runner.join().unwrap();
    match result {
        Ok(r) => eprintln!("finished after the restart: {r:?}"),
        Err(e) => {
            // Exiting clearly is allowed too; a second run must then finish.
            eprintln!("the run stopped: {e}");
            let mut o2 = options();
            o2.workers = 4;
            engine::run(o2).unwrap();
        }
    }
    assert_exactly_once(&p, &t);
}
