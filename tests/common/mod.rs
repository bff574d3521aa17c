//! Helpers shared by the integration tests: listing events the way both
//! parapply and `mariadb-binlog` see them.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use parapply::binlog::{BinlogReader, ReadError, ReaderOptions, Source};
use parapply::position::StartAt;

/// How long a test waits for something that must happen (a row to arrive,
/// a process to exit) before it fails: a hang guard, not a performance
/// bound. Latencies and throughputs are printed and reported in
/// `docs/benchmarks.md`, never asserted.
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// (pos, end_pos, log_pos, type_code) of each event, or the error.
pub type Listing = Vec<(u64, u64, u32, u8)>;

pub fn list_events(source: Source, start: StartAt) -> (Listing, Option<ReadError>) {
    let opts = ReaderOptions {
        start,
        partial_grace: std::time::Duration::ZERO,
        ..ReaderOptions::default()
    };
    let mut out = Vec::new();
    let mut r = match BinlogReader::open(source, opts) {
        Ok(r) => r,
        Err(e) => return (out, Some(e)),
    };
    loop {
        match r.next() {
            Ok(Some(ev)) => {
                if let Err(e) = ev.decode() {
                    return (out, Some(e));
                }
                out.push((
                    ev.pos,
                    ev.end_pos(),
                    ev.header.log_pos,
                    ev.header.event_type.0,
                ))
            }
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

pub fn file_source(p: &Path) -> Source {
    Source::Files(vec![p.to_path_buf()])
}

/// What `mariadb-binlog --hexdump` prints of a file: the `# at POS` lines in
/// order, and `(type_code, event_size, log_pos)` from each event's hexdump
/// header line. (It prints an Annotate_rows event together with the
/// Table_map after it, so positions and headers are compared as two lists.)
pub fn mariadb_binlog_listing(file: &Path) -> (Vec<u64>, Vec<(u8, u32, u32)>) {
    let out = Command::new("mariadb-binlog")
        .arg("--hexdump")
        .arg(file)
        .output()
        .expect("mariadb-binlog is needed for this test: apt-get install mariadb-server (or mariadb-client)");
    assert!(
        out.status.success(),
        "mariadb-binlog failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut positions = Vec::new();
    let mut headers = Vec::new();
    let hex = |s: &str| {
        let b: Vec<u8> = s
            .split_whitespace()
            .map(|x| u8::from_str_radix(x, 16).unwrap())
            .collect();
        b.iter().rev().fold(0u32, |a, &x| (a << 8) | u32::from(x))
    };
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("# at ") {
            positions.push(p.trim().parse().unwrap());
            continue;
        }
        // "#      100  |41 25 01 6b |a3   |01 00 00 00 |2b 00 00 00 |2b 01 00 00 |00 00"
        let parts: Vec<&str> = line.split('|').collect();
        if parts.len() == 7 && !line.contains("Timestamp") {
            let t = u8::from_str_radix(parts[2].trim(), 16).unwrap();
            headers.push((t, hex(parts[4]), hex(parts[5])));
        }
    }
    (positions, headers)
}

/// Our event positions, types, sizes and end positions equal mariadb-binlog's.
pub fn assert_agrees_with_mariadb_binlog(f: &Path) {
    let (positions, headers) = mariadb_binlog_listing(f);
    let (ours, err) = list_events(file_source(f), StartAt::Beginning);
    assert!(err.is_none(), "{}: {err:?}", f.display());
    assert!(!positions.is_empty());
    let our_pos: Vec<u64> = ours.iter().map(|e| e.0).collect();
    // mariadb-binlog shows a compressed Rows event (166–171) as the plain
    // event it inflates to (23–25, 30–32), with that event's size.
    let mut headers = headers;
    let mut our_headers: Vec<(u8, u32, u32)> = ours
        .iter()
        .map(|&(p, e, l, t)| (t, u32::try_from(e - p).unwrap(), l))
        .collect();
    for (ours, theirs) in our_headers.iter_mut().zip(headers.iter_mut()) {
        if (166..=171).contains(&ours.0) {
            ours.0 = if ours.0 <= 168 {
                ours.0 - 143
            } else {
                ours.0 - 139
            };
            ours.1 = 0;
            theirs.1 = 0;
        }
    }
    assert_eq!(our_pos, positions, "{}: positions", f.display());
    assert_eq!(our_headers, headers, "{}: headers", f.display());
}

/// Commits `n` small row transactions (an insert and an update each) over
/// `dbs` databases `{prefix}0…`, each with a table `t`, from 4 connections.
pub fn load_small_transactions(p: &parapply::sandbox::Server, prefix: &str, dbs: usize, n: usize) {
    use mysql::prelude::Queryable;
    let mut ddl = String::new();
    for d in 0..dbs {
        ddl.push_str(&format!(
            "CREATE DATABASE {prefix}{d}; CREATE TABLE {prefix}{d}.t (id INT PRIMARY KEY, k INT NOT NULL, v VARCHAR(64));
             INSERT INTO {prefix}{d}.t VALUES (0, 0, 'counter');"
        ));
    }
    p.exec(&ddl).unwrap();
    std::thread::scope(|s| {
        for part in 0..4 {
            s.spawn(move || {
                let mut c = p.conn().unwrap();
                for i in (part..n).step_by(4) {
                    let d = i % dbs;
                    c.query_drop("START TRANSACTION").unwrap();
                    c.query_drop(format!(
                        "INSERT INTO {prefix}{d}.t VALUES ({}, {i}, 'v{i}')",
                        i + 1
                    ))
                    .unwrap();
                    c.query_drop(format!("UPDATE {prefix}{d}.t SET k = k + 1 WHERE id = 0"))
                        .unwrap();
                    c.query_drop("COMMIT").unwrap();
                }
            });
        }
    });
}

/// A throwaway server as a replica target is set up for parapply: server id
/// 2, its own binary log with `log_slave_updates`.
pub fn replica_target() -> parapply::sandbox::Server {
    use parapply::sandbox::{Server, ServerOptions};
    Server::start(
        ServerOptions::new()
            .server_id(2)
            .log_bin("target-bin")
            .log_slave_updates(true),
    )
    .unwrap()
}

/// A primary with a binary log named `mariadb-bin` rotating at
/// `max_binlog_size` bytes (the mirror tests' primary).
pub fn mirror_primary(max_binlog_size: u64) -> parapply::sandbox::Server {
    parapply::sandbox::Server::start(
        parapply::sandbox::ServerOptions::new()
            .server_id(1)
            .log_bin("mariadb-bin")
            .max_binlog_size(max_binlog_size),
    )
    .expect("start the primary")
}

/// A root connection to a sandbox server over the project's own client.
pub fn root_conn(s: &parapply::sandbox::Server) -> parapply::wire::Conn {
    parapply::wire::Conn::connect(&parapply::wire::ConnectOptions::new(
        "127.0.0.1",
        s.port(),
        "root",
    ))
    .expect("connect")
}

/// `n` small transactions over two databases (`w1`, `w2`), each an INSERT
/// and an UPDATE of one row, numbered from `from`; the tables are created
/// when missing.
pub fn two_db_workload(s: &parapply::sandbox::Server, from: usize, n: usize) {
    let mut c = root_conn(s);
    c.execute(
        b"CREATE DATABASE IF NOT EXISTS w1; CREATE DATABASE IF NOT EXISTS w2; \
          CREATE TABLE IF NOT EXISTS w1.t (id INT PRIMARY KEY, v VARCHAR(200)); \
          CREATE TABLE IF NOT EXISTS w2.t (id INT PRIMARY KEY, v VARCHAR(200))",
    )
    .unwrap();
    for i in from..from + n {
        let db = if i % 2 == 0 { "w1" } else { "w2" };
        let sql = format!(
            "BEGIN; INSERT INTO {db}.t VALUES ({i}, REPEAT('x', {})); \
             UPDATE {db}.t SET v = 'u' WHERE id = {i}; COMMIT",
            i % 150
        );
        c.execute(sql.as_bytes()).unwrap();
    }
}

/// A primary for the replay tests: server id 1, a binary log named
/// `mariadb-bin` in `format`.
pub fn primary(format: parapply::sandbox::BinlogFormat) -> parapply::sandbox::Server {
    use parapply::sandbox::{Server, ServerOptions};
    Server::start(
        ServerOptions::new()
            .server_id(1)
            .log_bin("mariadb-bin")
            .binlog_format(format),
    )
    .unwrap()
}

/// The text of `s`'s binary log, as `mariadb-binlog` prints its events'
/// headers and statements.
pub fn binlog_text(s: &parapply::sandbox::Server) -> String {
    let mut text = String::new();
    for f in s.binlog_files().unwrap() {
        let out = Command::new("mariadb-binlog")
            .arg(&f)
            .output()
            .expect("mariadb-binlog is needed: apt-get install mariadb-client");
        assert!(out.status.success(), "mariadb-binlog {}", f.display());
        text.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    text
}

/// xorshift: enough randomness for kill moments, reproducible from the seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The seed of a test's random moments: `PARAPPLY_CRASH_SEED`, else the
/// clock (odd, never 0).
pub fn crash_seed() -> u64 {
    std::env::var("PARAPPLY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

/// Runs `child` (an applier) until it exits or the kill moment comes:
/// `extra` after `progressed()` first says yes, or at `blind` (a moment
/// fixed in advance) when given. At the moment it is killed with SIGKILL
/// and `true` returned; an applier that exits first must have succeeded
/// (its stderr is shown otherwise), and `false` is returned. Fails after
/// [`HANG_GUARD`] without progress.
pub fn kill_at_moment(
    mut child: std::process::Child,
    blind: Option<std::time::Instant>,
    extra: Duration,
    mut progressed: impl FnMut() -> bool,
) -> bool {
    let started = std::time::Instant::now();
    let mut moment = blind;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(
                status.success(),
                "apply failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return false;
        }
        match moment {
            Some(m) if std::time::Instant::now() >= m => break,
            Some(_) => {}
            None if progressed() => moment = Some(std::time::Instant::now() + extra),
            None => assert!(
                started.elapsed() < HANG_GUARD,
                "the applier committed nothing in {HANG_GUARD:?} (a hang guard)"
            ),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    true
}

/// Runs `parapply apply --workers 4 --json` of `primary`'s binlog directory
/// onto `target` (root, no password) with `extra` arguments; its output,
/// whatever its exit status.
pub fn apply_output(
    primary: &parapply::sandbox::Server,
    target: &parapply::sandbox::Server,
    extra: &[&str],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_parapply"))
        .args(["apply", "--workers", "4", "--json", "--source"])
        .arg(primary.binlog_dir())
        .args([
            "--target",
            &format!("mysql://root@127.0.0.1:{}/", target.port()),
        ])
        .args(extra)
        .env_remove("PARAPPLY_TARGET_PASSWORD")
        .output()
        .unwrap()
}

/// [`apply_output`]'s JSON report; panics with its stderr if it failed.
pub fn apply_json(
    primary: &parapply::sandbox::Server,
    target: &parapply::sandbox::Server,
    extra: &[&str],
) -> serde_json::Value {
    let o = apply_output(primary, target, extra);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "apply failed: {err}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {err}"))
}
