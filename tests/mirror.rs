//! `parapply mirror` against real throwaway primaries, running the real
//! binary as a child process: byte-identical files across rotations (closed
//! files equal, the active one equal once the primary is idle), `kill -9` of
//! the mirror at random moments under load (at least 9 of 12 while it is
//! writing), a primary restarted (gracefully and after a crash) mid-stream,
//! a GTID start against a never-mirrored server, and the faults an operator
//! must see clearly: a purged binlog, a wrong password, a missing
//! REPLICATION SLAVE privilege, a server id clash.
//!
//! Run: `cargo test --test mirror` (needs MariaDB server binaries; see
//! `parapply::sandbox`). Set `MIRROR_TEST_SEED` to replay the kill moments.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{mirror_primary as primary, root_conn as conn, two_db_workload as workload};
use parapply::binlog::{BinlogReader, ReaderOptions, Source};
use parapply::position::StartAt;
use parapply::sandbox::Server;

struct Mirror {
    child: Child,
    log: PathBuf,
}

fn mirror_cmd(s: &Server, dir: &Path, server_id: u32, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parapply"));
    cmd.arg("mirror");
    if !extra.contains(&"--primary") {
        cmd.arg("--primary")
            .arg(format!("mysql://root@127.0.0.1:{}/", s.port()));
    }
    cmd.arg("--dir")
        .arg(dir)
        .arg("--server-id")
        .arg(server_id.to_string())
        .arg("--heartbeat")
        .arg("0.2")
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    cmd
}

fn spawn_mirror(s: &Server, dir: &Path, server_id: u32, extra: &[&str]) -> Mirror {
    let log = dir.with_extension(format!("log{}", rand_u64() % 1_000_000));
    let f = fs::File::create(&log).unwrap();
    let child = mirror_cmd(s, dir, server_id, extra)
        .stdout(Stdio::null())
        .stderr(f)
        .spawn()
        .expect("run parapply mirror");
    Mirror { child, log }
}

impl Mirror {
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs the mirror to completion (for fault cases that must end it).
fn run_mirror(
    s: &Server,
    dir: &Path,
    server_id: u32,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = mirror_cmd(s, dir, server_id, extra);
    cmd.envs(env.iter().copied());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + common::HANG_GUARD;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "parapply mirror did not stop: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Compares the mirror with the primary's files from `first` on: every file
/// equal, the mirror's file list equal to the primary's from `first` on.
fn compare(primary: &Server, dir: &Path, first: usize) -> Result<(), String> {
    let files = primary.binlog_files().map_err(|e| e.to_string())?;
    let want: Vec<&PathBuf> = files.iter().skip(first).collect();
    let index = fs::read_to_string(dir.join("mariadb-bin.index")).unwrap_or_default();
    let listed: Vec<&str> = index.lines().collect();
    let names: Vec<String> = want
        .iter()
        .map(|p| format!("./{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    if listed != names {
        return Err(format!("index {listed:?}, primary {names:?}"));
    }
    for p in want {
        let name = p.file_name().unwrap();
        let ours = fs::read(dir.join(name)).map_err(|e| e.to_string())?;
        let theirs = fs::read(p).map_err(|e| e.to_string())?;
        if ours != theirs {
            let at = ours.iter().zip(&theirs).position(|(a, b)| a != b);
            return Err(format!(
                "{}: mirror {} bytes, primary {} bytes, first difference at {at:?}",
                name.to_string_lossy(),
                ours.len(),
                theirs.len()
            ));
        }
    }
    Ok(())
}

fn wait_identical(primary: &Server, dir: &Path, first: usize, m: Option<&Mirror>) {
    let deadline = Instant::now() + common::HANG_GUARD;
    loop {
        match compare(primary, dir, first) {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => {
                panic!(
                    "mirror not identical: {e}\nmirror log:\n{}",
                    m.map(Mirror::log).unwrap_or_default()
                )
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A small xorshift, seeded from `MIRROR_TEST_SEED` or the clock.
fn rand_u64() -> u64 {
    use std::cell::Cell;
    thread_local!(static S: Cell<u64> = Cell::new({
        let seed = std::env::var("MIRROR_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        eprintln!("MIRROR_TEST_SEED={seed}");
        seed
    }));
    S.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

#[test]
fn mirror_is_byte_identical_across_rotations() {
    let p = primary(8192);
    workload(&p, 0, 150);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mirror");
    let m = spawn_mirror(&p, &dir, 101, &["--sync", "every"]);
    // Live: more load, rotations by size and by FLUSH, a 1 MiB row.
    workload(&p, 150, 150);
    conn(&p)
        .execute(b"FLUSH BINARY LOGS; INSERT INTO w1.t VALUES (100000, REPEAT('b', 200))")
        .unwrap();
    conn(&p)
        .execute(
            b"CREATE TABLE w1.big (v LONGBLOB); INSERT INTO w1.big VALUES (REPEAT('z', 1048576))",
        )
        .unwrap();
    assert!(
        p.binlog_files().unwrap().len() >= 5,
        "want several rotations"
    );
    wait_identical(&p, &dir, 0, Some(&m));
    // A reader tailing the mirror sees every event with valid checksums.
    let mut r = BinlogReader::open(Source::dir(&dir).unwrap(), ReaderOptions::default()).unwrap();
    let mut n = 0;
    while r.next().unwrap().is_some() {
        n += 1;
    }
    assert!(n > 600, "{n} events");
    let log = m.log();
    assert!(log.contains("new mirror file"), "{log}");
}

#[test]
fn kill9_at_random_moments_resumes_identically() {
    let p = Arc::new(primary(16384));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mirror");
    let done = Arc::new(AtomicBool::new(false));
    let load = {
        let (p, done) = (p.clone(), done.clone());
        thread::spawn(move || {
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                workload(&p, i, 20);
                i += 20;
            }
        })
    };
    // Kills that landed while the mirror was writing: it wrote during the
    // run before the kill.
    let mut while_mirroring = 0;
    let mut at_kills = Vec::new();
    for k in 0..12 {
        let before = mirrored_bytes(&dir);
        let mut m = spawn_mirror(&p, &dir, 102, &["--sync", "never"]);
        // Most moments come once this run has written (the mirror grew),
        // then 0–100 ms later; every fourth is blind, 0–300 ms after the
        // start (connecting, recovering the directory, the dump request).
        let blind = k % 4 == 3;
        let extra = Duration::from_millis(rand_u64() % if blind { 300 } else { 100 });
        let started = Instant::now();
        let mut moment = blind.then_some(started + extra);
        loop {
            if let Some(status) = m.child.try_wait().unwrap() {
                panic!("the mirror exited with {status}:\n{}", m.log());
            }
            match moment {
                Some(t) if Instant::now() >= t => break,
                Some(_) => {}
                None if mirrored_bytes(&dir) > before => moment = Some(Instant::now() + extra),
                None => assert!(
                    started.elapsed() < common::HANG_GUARD,
                    "the mirror wrote nothing (a hang guard):\n{}",
                    m.log()
                ),
            }
            thread::sleep(Duration::from_millis(2));
        }
        m.kill9();
        let after = mirrored_bytes(&dir);
        if after > before {
            while_mirroring += 1;
        }
        at_kills.push(after);
    }
    done.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let m = spawn_mirror(&p, &dir, 102, &[]);
    wait_identical(&p, &dir, 0, Some(&m));
    eprintln!("{while_mirroring} of 12 kills while mirroring; bytes at the kills: {at_kills:?}");
    assert!(
        while_mirroring >= 9,
        "only {while_mirroring} of 12 kills landed while the mirror was writing \
         (bytes at the kills: {at_kills:?})"
    );
    assert!(p.binlog_files().unwrap().len() >= 3);
}

/// Bytes of binlog files in a mirror directory (the index left out).
fn mirrored_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_none_or(|x| x != "index"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn primary_restart_and_crash_mid_stream() {
    let mut p = primary(16384);
    workload(&p, 0, 50);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mirror");
    let m = spawn_mirror(&p, &dir, 103, &[]);
    workload(&p, 50, 50);
    wait_identical(&p, &dir, 0, Some(&m));
    p.restart().unwrap();
    workload(&p, 100, 50);
    wait_identical(&p, &dir, 0, Some(&m));
    p.kill9().unwrap();
    // Down for a moment (not a synchronisation): the mirror's reads fail
    // and it keeps reconnecting until the restart.
    thread::sleep(Duration::from_millis(300));
    p.restart().unwrap();
    workload(&p, 150, 50);
    wait_identical(&p, &dir, 0, Some(&m));
    let log = m.log();
    assert!(log.contains("reconnecting"), "{log}");
}

#[test]
fn gtid_start_against_a_fresh_server() {
    let p = primary(1 << 20);
    workload(&p, 0, 20);
    conn(&p).execute(b"FLUSH BINARY LOGS").unwrap();
    workload(&p, 20, 20);
    let gtid = p.gtid_binlog_pos().unwrap();
    conn(&p).execute(b"FLUSH BINARY LOGS").unwrap();
    workload(&p, 40, 20);
    conn(&p).execute(b"FLUSH BINARY LOGS").unwrap();
    workload(&p, 60, 20);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mirror");
    let m = spawn_mirror(&p, &dir, 104, &["--from-gtid", &gtid]);
    // The GTID is the last one of file 2: the primary starts in file 3.
    wait_identical(&p, &dir, 2, Some(&m));
    let next: parapply::position::MariaGtid = gtid.parse().unwrap();
    let next = parapply::position::MariaGtid {
        seq: next.seq + 1,
        ..next
    };
    let opts = ReaderOptions {
        start: StartAt::Gtid(next),
        ..ReaderOptions::default()
    };
    let mut r = BinlogReader::open(Source::dir(&dir).unwrap(), opts).unwrap();
    let ev = r
        .next()
        .unwrap()
        .expect("the GTID after the start is in the mirror");
    assert_eq!(ev.file.as_ref(), "mariadb-bin.000003");
}

#[test]
fn faults_are_reported_clearly() {
    let p = primary(1 << 20);
    workload(&p, 0, 10);
    conn(&p)
        .execute(
            b"FLUSH BINARY LOGS; FLUSH BINARY LOGS; \
              CREATE USER 'repl'@'%' IDENTIFIED BY 'good-pw'; \
              GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'; \
              CREATE USER 'weak'@'%' IDENTIFIED BY 'weak-pw'",
        )
        .unwrap();
    // MariaDB keeps a file until its binlog checkpoint is written: retry.
    let deadline = Instant::now() + common::HANG_GUARD;
    let mut c = conn(&p);
    loop {
        c.execute(b"PURGE BINARY LOGS TO 'mariadb-bin.000003'")
            .unwrap();
        let first = c.query_value("SHOW BINARY LOGS").unwrap();
        if first.as_deref() == Some("mariadb-bin.000003") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cannot purge: first binlog {first:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let tmp = tempfile::tempdir().unwrap();

    // A purged binlog: error 1236 with the primary's message.
    let out = run_mirror(
        &p,
        &tmp.path().join("a"),
        105,
        &["--from", "mariadb-bin.000001:4"],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("error 1236") && err.contains("mariadb-bin.000001"),
        "{err}"
    );

    let url = |user: &str| format!("mysql://{user}@127.0.0.1:{}/", p.port());
    // A wrong password (from the environment): 1045, and no password shown.
    let out = run_mirror(
        &p,
        &tmp.path().join("b"),
        105,
        &["--primary", &url("repl")],
        &[("PARAPPLY_PRIMARY_PASSWORD", "bad-pw")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("1045") && err.contains("repl") && !err.contains("bad-pw"),
        "{err}"
    );

    // A password in the URL is refused.
    let out = run_mirror(
        &p,
        &tmp.path().join("b"),
        105,
        &["--primary", "mysql://repl:good-pw@127.0.0.1:1/"],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && !err.contains("good-pw")
            && err.contains("PARAPPLY_PRIMARY_PASSWORD"),
        "{err}"
    );

    // No REPLICATION SLAVE privilege.
    let out = run_mirror(
        &p,
        &tmp.path().join("c"),
        105,
        &["--primary", &url("weak")],
        &[("PARAPPLY_PRIMARY_PASSWORD", "weak-pw")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("REPLICATION SLAVE"),
        "{err}"
    );

    // The password from a file works (and mirrors from the oldest file left).
    let pwfile = tmp.path().join("pw");
    fs::write(&pwfile, "good-pw\n").unwrap();
    let pwfile = pwfile.to_string_lossy().into_owned();
    let dir = tmp.path().join("d");
    let first = spawn_mirror(
        &p,
        &dir,
        106,
        &[
            "--primary",
            &url("repl"),
            "--primary-password-file",
            &pwfile,
        ],
    );
    wait_identical(&p, &dir, 0, Some(&first));

    // A second mirror with the same server id: the primary drops the first.
    let mut first = first;
    let second = spawn_mirror(&p, &tmp.path().join("e"), 106, &[]);
    let deadline = Instant::now() + common::HANG_GUARD;
    let status = loop {
        if let Some(s) = first.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "first mirror still running:\n{}",
            first.log()
        );
        thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let log = first.log();
    assert!(
        log.contains("server id 106") && log.contains("4052"),
        "{log}"
    );
    drop(second);
}

/// A reader tailing the mirror under steady load sees every transaction.
/// The commit-to-seen lag is printed as a benchmark figure
/// (docs/benchmarks.md), not asserted.
#[test]
fn a_reader_tailing_the_mirror_sees_every_transaction_and_prints_its_lag() {
    use parapply::binlog::Event;
    use std::collections::HashMap;
    use std::sync::mpsc;

    let p = primary(32768);
    workload(&p, 0, 5);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mirror");
    let m = spawn_mirror(&p, &dir, 107, &[]);
    wait_identical(&p, &dir, 0, Some(&m));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<(u64, Instant)>();
    let reader = {
        let (dir, stop) = (dir.clone(), stop.clone());
        thread::spawn(move || {
            let opts = ReaderOptions {
                follow: true,
                poll: Duration::from_millis(10),
                stop: Some(stop),
                ..ReaderOptions::default()
            };
            let mut r = BinlogReader::open(Source::dir(&dir).unwrap(), opts).unwrap();
            while let Some(ev) = r.next().unwrap() {
                if let Event::Gtid(g) = ev.decode().unwrap() {
                    let _ = tx.send((g.seq_no, Instant::now()));
                }
            }
        })
    };
    // Steady load: a transaction every 10 ms for 2 s, rotating by size.
    let mut c = conn(&p);
    let mut committed = HashMap::new();
    for i in 0..200 {
        let sql = format!(
            "INSERT INTO w1.t VALUES ({}, REPEAT('l', 100))",
            1_000_000 + i
        );
        c.execute(sql.as_bytes()).unwrap();
        let gtid = c.query_value("SELECT @@last_gtid").unwrap().unwrap();
        let seq: u64 = gtid.rsplit('-').next().unwrap().parse().unwrap();
        committed.insert(seq, Instant::now());
        thread::sleep(Duration::from_millis(10));
    }
    let last = *committed.keys().max().unwrap();
    let mut lags = Vec::new();
    let deadline = Instant::now() + common::HANG_GUARD;
    while lags.len() < committed.len() && Instant::now() < deadline {
        if let Ok((seq, seen)) = rx.recv_timeout(Duration::from_millis(100)) {
            if let Some(t) = committed.get(&seq) {
                lags.push(seen.saturating_duration_since(*t));
            }
            if seq == last {
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(
        lags.len(),
        committed.len(),
        "the reader saw every transaction"
    );
    lags.sort();
    let (p50, max) = (lags[lags.len() / 2], lags[lags.len() - 1]);
    eprintln!(
        "commit → seen by a reader tailing the mirror over {} transactions: p50 {p50:?}, \
         p90 {:?}, max {max:?}",
        lags.len(),
        lags[lags.len() * 9 / 10]
    );
    assert!(p.binlog_files().unwrap().len() >= 2, "the load rotated");
}
