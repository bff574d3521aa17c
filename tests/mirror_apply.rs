//! The whole replica path: `parapply mirror` copies the primary's binlog as
//! it is written, and `parapply apply --follow` tails that mirror into the
//! replica. Under steady load every transaction arrives, the replica's tables
//! equal the primary's, and the commit-to-visible lag is printed (measured,
//! not asserted: performance is reported in docs/benchmarks.md).
//!
//! Run: `cargo test --test mirror_apply -- --nocapture` (needs mariadb-server).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parapply::sandbox::{Server, ServerOptions};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn mirror_then_follow_apply_keeps_the_replica_equal_under_load() {
    let p = Server::start(
        ServerOptions::new()
            .server_id(1)
            .log_bin("mariadb-bin")
            .max_binlog_size(64 * 1024),
    )
    .unwrap();
    let t = common::replica_target();
    p.exec(
        "CREATE DATABASE m1; CREATE DATABASE m2;
         CREATE TABLE m1.t (id INT PRIMARY KEY, at DOUBLE); CREATE TABLE m2.t (id INT PRIMARY KEY, at DOUBLE)",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_parapply");
    let mirror = Killed(
        Command::new(bin)
            .args(["mirror", "--server-id", "77", "--primary"])
            .arg(format!("mysql://root@127.0.0.1:{}/", p.port()))
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The applier needs the mirror's index to exist.
    let deadline = Instant::now() + common::HANG_GUARD;
    while !std::fs::read_dir(dir.path())
        .unwrap()
        .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "index"))
    {
        assert!(Instant::now() < deadline, "the mirror wrote no index");
        std::thread::sleep(Duration::from_millis(20));
    }
    let apply = Killed(
        Command::new(bin)
            .args(["apply", "--follow", "--workers", "4", "--source"])
            .arg(dir.path())
            .args(["--target", &format!("mysql://root@127.0.0.1:{}/", t.port())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Steady load: 100 transactions/s for 4 s; every 10th is a probe whose
    // arrival on the replica is timed.
    let mut lags = Vec::new();
    let mut c = p.conn().unwrap();
    use mysql::prelude::Queryable;
    let start = Instant::now();
    for i in 0..400u32 {
        let due = start + Duration::from_millis(u64::from(i) * 10);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let db = 1 + i % 2;
        c.query_drop(format!(
            "INSERT INTO m{db}.t VALUES ({i}, UNIX_TIMESTAMP(NOW(6)))"
        ))
        .unwrap();
        if i % 10 == 9 {
            let committed = Instant::now();
            let deadline = committed + Duration::from_secs(30);
            loop {
                let n: Option<u32> = t
                    .query_first(&format!("SELECT COUNT(*) FROM m{db}.t WHERE id = {i}"))
                    .unwrap_or(None);
                if n == Some(1) {
                    lags.push(committed.elapsed());
                    break;
                }
                assert!(Instant::now() < deadline, "transaction {i} never arrived");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    lags.sort();
    eprintln!(
        "commit-to-replica lag over {} probes: p50 {:?}, p90 {:?}, max {:?}",
        lags.len(),
        lags[lags.len() / 2],
        lags[lags.len() * 9 / 10],
        lags[lags.len() - 1]
    );
    let deadline = Instant::now() + common::HANG_GUARD;
    loop {
        let a = p.checksums(&["m1", "m2"]).unwrap();
        let b = t.checksums(&["m1", "m2"]).unwrap_or_default();
        if a == b {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica never caught up: {a:?} vs {b:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGINT stops both cleanly (exit 0).
    for (name, mut child) in [("mirror", mirror), ("apply", apply)] {
        let ok = Command::new("kill")
            .args(["-INT", &child.0.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let deadline = Instant::now() + common::HANG_GUARD;
        let status = loop {
            if let Some(st) = child.0.try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not stop after SIGINT"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{name} exited with {status}");
    }
}
