//! `--shard-by key` against real servers: one busy database applied in
//! parallel by key buckets, killed with SIGKILL at random moments and
//! restarted, ends equal to the primary.
//!
//! The primary's workload, from four connections at once, in one database
//! `k`: updates of a few hot rows and of many cold ones (overlapping and
//! disjoint keys), unique values that move from row to row (`code`, an
//! INT, and `email`, text under `utf8mb4_bin`), deletes and re-inserts of
//! the same primary key (in one transaction and across transactions), a
//! table without a primary key (`log`), a parent/child pair with a foreign
//! key (`parent`, `child`, `ON DELETE CASCADE`), and halfway a DDL that
//! creates a table the second half writes (the keys are read again after
//! it). Statements that hit a duplicate key or a missing parent on the
//! primary are rolled back there: they are not in the binlog.
//!
//! The applier runs with 6 workers and 64 buckets (few, so that
//! transactions share buckets often), in batches of 8 or `--batch 1`
//! (chained), and is killed 5 times; the final run applies the rest. Then
//! the checksums of every table equal the primary's — an update applied
//! twice or out of order fails (its before image no longer matches), one
//! lost or reordered changes them — and the progress table shows that key
//! buckets, the no-key table's own shard and the foreign-key shard were
//! all used.
//!
//! Run: `cargo test --test keyshards` (needs mariadb-server installed).
//! The kill moments come from a seed the test prints
//! (`PARAPPLY_CRASH_SEED` repeats them).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use mysql::prelude::Queryable;
use parapply::sandbox::Server;

use common::Rng;

/// A number below `n`.
fn below(r: &mut Rng, n: u64) -> u64 {
    r.next() % n
}

const ROWS: u64 = 400;

/// One random transaction of the workload (see the module doc).
fn transaction(r: &mut Rng, late: bool) -> Vec<String> {
    let id = |r: &mut Rng| {
        // A quarter of the picks hit 8 hot rows.
        if below(r, 4) == 0 {
            1 + below(r, 8)
        } else {
            1 + below(r, ROWS)
        }
    };
    let mut out = Vec::new();
    for _ in 0..1 + below(r, 3) {
        let a = id(r);
        out.push(match below(r, if late { 10 } else { 9 }) {
            0 | 1 => format!("UPDATE k.acct SET n = n + 1 WHERE id = {a}"),
            2 => format!("UPDATE k.acct SET code = {} WHERE id = {a}", below(r, 2 * ROWS)),
            3 => format!("UPDATE k.acct SET email = 'e{}' WHERE id = {a}", below(r, 2 * ROWS)),
            4 => format!(
                "DELETE FROM k.acct WHERE id = {a}; INSERT INTO k.acct VALUES ({a}, {}, NULL, 0)",
                10_000 + a
            ),
            5 => {
                if below(r, 2) == 0 {
                    format!("DELETE FROM k.acct WHERE id = {a}")
                } else {
                    format!(
                        "INSERT INTO k.acct VALUES ({a}, {}, 'r{a}', 1)",
                        20_000 + below(r, 100_000)
                    )
                }
            }
            6 => format!(
                "INSERT INTO k.log VALUES ({a}, 'x'); UPDATE k.log SET b = CONCAT(b, 'y') WHERE a = {}",
                below(r, 20)
            ),
            7 => {
                let p = 1 + below(r, 40);
                match below(r, 4) {
                    0 => format!("INSERT INTO k.parent VALUES ({p}, 0)"),
                    1 => format!("DELETE FROM k.parent WHERE id = {p}"),
                    _ => format!("INSERT INTO k.child (pid) VALUES ({p})"),
                }
            }
            8 => format!("UPDATE k.acct SET n = n + 1 WHERE id = {a} OR id = {}", id(r)),
            _ => format!(
                "INSERT INTO k.late VALUES ({a}, 1) ON DUPLICATE KEY UPDATE v = v + 1"
            ),
        });
    }
    out
}

/// Runs `n` random transactions from each of 4 connections.
fn workload(p: &Server, seed: u64, n: usize, late: bool) {
    std::thread::scope(|s| {
        for part in 0..4u64 {
            s.spawn(move || {
                let mut c = p.conn().unwrap();
                let mut r = Rng(seed ^ (part + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
                for _ in 0..n {
                    c.query_drop("START TRANSACTION").unwrap();
                    let mut ok = true;
                    for sql in transaction(&mut r, late) {
                        for stmt in sql.split("; ") {
                            if c.query_drop(stmt).is_err() {
                                ok = false;
                            }
                        }
                    }
                    c.query_drop(if ok { "COMMIT" } else { "ROLLBACK" })
                        .unwrap();
                }
            });
        }
    });
}

fn primary(seed: u64) -> Server {
    let p = common::mirror_primary(256 * 1024);
    p.exec(
        "CREATE DATABASE k;
         CREATE TABLE k.acct (id INT PRIMARY KEY, code INT NOT NULL, \
           email VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, n INT NOT NULL, \
           UNIQUE KEY (code), UNIQUE KEY (email)) ENGINE=InnoDB;
         CREATE TABLE k.log (a INT, b VARCHAR(200)) ENGINE=InnoDB;
         CREATE TABLE k.parent (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB;
         CREATE TABLE k.child (id INT AUTO_INCREMENT PRIMARY KEY, pid INT NOT NULL, \
           FOREIGN KEY (pid) REFERENCES k.parent (id) ON DELETE CASCADE) ENGINE=InnoDB;",
    )
    .unwrap();
    let mut fill = String::from("INSERT INTO k.acct VALUES ");
    for i in 1..=ROWS {
        if i > 1 {
            fill.push(',');
        }
        fill.push_str(&format!("({i}, {i}, 'e{i}', 0)"));
    }
    p.exec(&fill).unwrap();
    workload(&p, seed, 700, false);
    p.exec("CREATE TABLE k.late (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB")
        .unwrap();
    workload(&p, seed.rotate_left(17), 700, true);
    p
}

/// The highest seq_no any shard row holds (0 before the table exists).
fn progress(t: &Server) -> u64 {
    t.query_first::<Option<u64>>("SELECT MAX(seq_no) FROM parapply.shard_progress")
        .ok()
        .flatten()
        .flatten()
        .unwrap_or(0)
}

#[test]
fn key_shards_apply_one_database_in_parallel_exactly_once_across_kills() {
    let seed = common::crash_seed();
    eprintln!("workload and kill moments from seed {seed} (PARAPPLY_CRASH_SEED={seed})");
    let p = primary(seed);
    let t = common::replica_target();
    let mut rng = Rng(seed.rotate_left(31) | 1);
    let bin = env!("CARGO_BIN_EXE_parapply");
    let apply = |batch: &str| {
        Command::new(bin)
            .args([
                "apply",
                "--workers",
                "6",
                "--shard-by",
                "key:64",
                "--batch",
                batch,
            ])
            .arg("--source")
            .arg(p.binlog_dir())
            .args(["--target", &format!("mysql://root@127.0.0.1:{}/", t.port())])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut kills = 0;
    let mut while_applying = 0;
    while kills < 5 {
        let before = progress(&t);
        let child = apply(if rng.next() & 1 == 0 { "1" } else { "8" });
        let extra = Duration::from_millis(below(&mut rng, 60));
        if !common::kill_at_moment(child, None, extra, || progress(&t) > before) {
            break;
        }
        kills += 1;
        if progress(&t) > before {
            while_applying += 1;
        }
        // The killed applier's sessions leave the server before the next
        // run reads the state (the next run waits for them too).
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = apply("8").wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("killed {kills} times, {while_applying} after the run had committed");
    assert!(
        while_applying >= 3,
        "only {while_applying} of {kills} kills landed while applying"
    );
    assert_eq!(
        p.checksums(&["k"]).unwrap(),
        t.checksums(&["k"]).unwrap(),
        "the target's tables differ from the primary's"
    );
    // Every kind of shard was used: key buckets, the table without a
    // primary key, the foreign-key pair's shard.
    let shards: Vec<String> = t
        .query("SELECT DISTINCT shard FROM parapply.shard_progress")
        .unwrap();
    let buckets = shards.iter().filter(|s| s.starts_with('#')).count();
    assert!(buckets > 32, "only {buckets} key buckets used: {shards:?}");
    for s in ["k.log", "k"] {
        assert!(shards.iter().any(|x| x == s), "no shard {s}: {shards:?}");
    }
    let wrong = shards
        .iter()
        .filter(|s| !s.starts_with('#') && !["k.log", "k", ""].contains(&s.as_str()))
        .count();
    assert_eq!(wrong, 0, "unexpected shards: {shards:?}");
}
