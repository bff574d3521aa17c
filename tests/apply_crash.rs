//! Crash safety of `parapply apply`: nothing lost, nothing applied twice.
//!
//! * The applier process is killed with SIGKILL at 20+ random moments of one
//!   run and restarted each time; at the end the target's tables equal the
//!   primary's, and a ledger (a table without a primary key into which
//!   every transaction inserts its own token) holds every token exactly once.
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

/// xorshift: enough randomness for kill moments, reproducible from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kill_9_of_the_applier_at_random_moments_loses_and_repeats_nothing() {
    let p = primary_with_ledger(12_000);
    let t = target();
    let seed = std::env::var("PARAPPLY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill moments from seed {seed} (PARAPPLY_CRASH_SEED={seed} repeats them)");
    let mut rng = Rng(seed);
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
    let mut kills = 0;
    let mut finished_early = 0;
    while kills < 20 {
        let mut child = apply(if rng.next() & 1 == 0 { "1" } else { "8" });
        let wait = Duration::from_millis(20 + rng.next() % 80);
        let deadline = Instant::now() + wait;
        let mut exited = None;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                exited = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match exited {
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
            }
            Some(status) => {
                let out = child.wait_with_output().unwrap();
                assert!(
                    status.success(),
                    "apply failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                finished_early += 1;
                assert!(
                    finished_early < 50,
                    "the run keeps finishing before the kill"
                );
                // Everything was applied before the moment came: nothing to
                // kill any more. Count it and stop.
                break;
            }
        }
    }
    // The final run, to the end.
    let out = apply("1").wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("killed {kills} times");
    assert!(
        kills >= 20,
        "only {kills} kills happened before the work was done"
    );
    assert_exactly_once(&p, &t);
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
    // Kill the target once some progress is there.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: Option<u64> = t
            .query_first("SELECT COUNT(*) FROM parapply.shard_progress")
            .unwrap_or(None);
        if n.unwrap_or(0) > 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !runner.is_finished(),
        "the run ended before the target was killed: nothing was tested"
    );
    t.kill9().unwrap();
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
