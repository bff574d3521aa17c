//! `parapply apply` end to end against real servers: a primary writes a
//! workload, its binlog directory is the source, a second server (with
//! log-bin, as a replica has) is the target; every test ends by comparing
//! table checksums of target and primary.
//!
//! Covers: many small row transactions over 16 databases; cross-database
//! transactions; DDL interleaved; statement and mixed format with session
//! context; tables without a primary key; restart is exactly-once (a second
//! run applies nothing; a run stopped with --until and resumed); preflight
//! errors.
//!
//! Run: `cargo test --test apply` (needs mariadb-server installed).

mod common;

use std::time::Duration;

use parapply::apply::engine::{self, ApplyOptions, ApplyReport, Until};
use parapply::apply::{ApplyError, DefiniteError};
use parapply::binlog::Source;
use parapply::replica::PreflightError;
use parapply::sandbox::{BinlogFormat, Server, ServerOptions};
use parapply::wire::ConnectOptions;

fn primary(format: BinlogFormat) -> Server {
    Server::start(
        ServerOptions::new()
            .server_id(1)
            .log_bin("mariadb-bin")
            .binlog_format(format)
            .max_binlog_size(1 << 20),
    )
    .unwrap()
}

fn target() -> Server {
    common::replica_target()
}

fn options(source: &Server, target: &Server) -> ApplyOptions {
    let mut o = ApplyOptions::new(
        Source::dir(source.binlog_dir()).unwrap(),
        ConnectOptions::new("127.0.0.1", target.port(), "root"),
    );
    o.workers = 8;
    o.max_inflight_bytes = 16 << 20;
    o.reconnect_timeout = Duration::from_secs(30);
    o.low_watermark_interval = Duration::from_millis(200);
    o
}

fn user_dbs(s: &Server) -> Vec<String> {
    s.databases()
        .unwrap()
        .into_iter()
        .filter(|d| d != "parapply" && d != "test")
        .collect()
}

fn assert_same_data(p: &Server, t: &Server) {
    let dbs = user_dbs(p);
    let refs: Vec<&str> = dbs.iter().map(String::as_str).collect();
    let a = p.checksums(&refs).unwrap();
    let b = t.checksums(&refs).unwrap();
    assert!(!a.is_empty());
    assert_eq!(a, b, "target differs from primary");
}

fn run(o: ApplyOptions) -> ApplyReport {
    match engine::run(o) {
        Ok(r) => r,
        Err(e) => panic!("apply failed: {e}"),
    }
}

#[test]
fn twenty_thousand_row_transactions_over_16_databases_apply_in_parallel_exactly_once() {
    let p = primary(BinlogFormat::Row);
    let t = target();
    common::load_small_transactions(&p, "db", 16, 20_000);
    // Cross-database transactions.
    for i in 0..40 {
        p.exec(&format!(
            "START TRANSACTION; UPDATE db{}.t SET k = k + 1 WHERE id = 0; UPDATE db{}.t SET k = k + 1 WHERE id = 0; COMMIT",
            i % 16,
            (i + 5) % 16
        ))
        .unwrap();
    }
    let r = run(options(&p, &t));
    assert_eq!(r.applied, 16 * 3 + 20_000 + 40, "{r:?}");
    assert!(r.drained);
    assert_same_data(&p, &t);
    let binlog_state = |s: &Server| -> String {
        s.query_first("SELECT @@GLOBAL.gtid_binlog_state")
            .unwrap()
            .unwrap()
    };
    // (Shards commit out of order: the last GTID the target logged for
    // server 1 need not be the primary's last.)
    let state = binlog_state(&t);
    assert!(
        state.split(',').any(|g| g.starts_with("0-1-")),
        "the primary's GTIDs are in the target's binlog: {state}"
    );
    // A second run finds everything applied, and writes nothing to the
    // target's binary log: parapply's bookkeeping is not logged.
    let again = run(options(&p, &t));
    assert_eq!((again.applied, again.skipped), (0, 0), "{again:?}");
    assert_same_data(&p, &t);
    assert_eq!(binlog_state(&t), state);
}

#[test]
fn a_50_mb_transaction_and_tables_without_primary_key_apply() {
    let p = primary(BinlogFormat::Row);
    let t = target();
    p.exec(
        "CREATE DATABASE big; CREATE TABLE big.t (id INT PRIMARY KEY, pad VARCHAR(2000));
         CREATE TABLE big.nopk (a INT, b VARCHAR(100))",
    )
    .unwrap();
    p.exec(
        "START TRANSACTION;
         INSERT INTO big.t SELECT seq, REPEAT(CHAR(65 + seq % 26), 1000) FROM big.seq_1_to_52000;
         COMMIT",
    )
    .unwrap();
    p.exec("INSERT INTO big.nopk VALUES (1,'a'),(1,'a'),(2,'b'),(2,'b'),(2,'b')")
        .unwrap();
    p.exec("DELETE FROM big.nopk WHERE a = 2 LIMIT 2").unwrap();
    p.exec("UPDATE big.nopk SET b = 'c' WHERE a = 1 LIMIT 1")
        .unwrap();
    let r = run(options(&p, &t));
    assert!(r.bytes > 50_000_000, "{r:?}");
    assert_same_data(&p, &t);
}

/// DDL between DML, statement and mixed format with NOW(), RAND(),
/// LAST_INSERT_ID(), user variables, AUTO_INCREMENT, a non-default sql_mode
/// and character sets, and tables without a primary key.
#[test]
fn ddl_statement_format_and_session_context_replay_exactly() {
    let p = primary(BinlogFormat::Mixed);
    let t = target();
    p.exec(
        "CREATE DATABASE a; CREATE DATABASE b;
         CREATE TABLE a.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(100) CHARACTER SET latin1, ts DATETIME(6), r DOUBLE);
         CREATE TABLE b.nopk (x INT, y TEXT CHARACTER SET utf8mb4);
         CREATE TABLE b.log (id INT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(200)) ENGINE=MyISAM",
    )
    .unwrap();
    let mut c = p.conn().unwrap();
    use mysql::prelude::Queryable;
    let stmts = [
        "SET SESSION binlog_format='STATEMENT'",
        "SET NAMES latin1",
        "INSERT INTO a.t (v, ts, r) VALUES ('caf\u{e9}', NOW(6), 1.5)",
        "SET NAMES utf8mb4",
        "SET @who := 'user-var \u{263a}'",
        "INSERT INTO b.nopk VALUES (1, @who), (1, @who)",
        "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,ANSI_QUOTES'",
        "INSERT INTO a.t (id, v) VALUES (0, 'zero id')",
        "SET SESSION sql_mode = DEFAULT",
        "INSERT INTO a.t (v) VALUES ('after'); INSERT INTO b.log (note) VALUES (CONCAT('last id ', LAST_INSERT_ID()))",
        "SET SESSION binlog_format='MIXED'",
        "INSERT INTO a.t (v, r) VALUES ('rand', RAND(42))",
        "UPDATE a.t SET ts = NOW() WHERE id = 1",
        "ALTER TABLE a.t ADD COLUMN extra INT NOT NULL DEFAULT 3",
        "SET SESSION binlog_format='ROW'",
        "INSERT INTO a.t (v, extra) SELECT CONCAT('row', seq), seq FROM a.seq_1_to_50",
        "DELETE FROM b.nopk WHERE x = 1 LIMIT 1",
        "CREATE TABLE b.gone (i INT)",
        "DROP TABLE b.gone",
        "SET SESSION binlog_format='STATEMENT'",
        "INSERT INTO b.log (note) VALUES ('myisam in statement format')",
        "SET SESSION binlog_format='ROW'",
        "CREATE DATABASE c",
        "CREATE TABLE c.t (i INT PRIMARY KEY)",
        "INSERT INTO c.t VALUES (1), (2)",
        "DROP DATABASE c",
    ];
    for s in stmts {
        c.query_drop(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    let r = run(options(&p, &t));
    assert!(r.drained, "{r:?}");
    assert_same_data(&p, &t);
    let again = run(options(&p, &t));
    assert_eq!(again.applied, 0);
    // The same without batching (each group its own transaction, session
    // autocommit switching between statement groups, DDL and chains).
    let t1 = target();
    let mut o = options(&p, &t1);
    o.batch_groups = 1;
    o.workers = 2;
    let r = run(o);
    assert!(r.drained, "{r:?}");
    assert_same_data(&p, &t1);
}

#[test]
fn until_stops_at_a_consistent_point_and_the_next_run_resumes() {
    let p = primary(BinlogFormat::Row);
    let t = target();
    p.exec("CREATE DATABASE u1; CREATE DATABASE u2; CREATE TABLE u1.t (i INT PRIMARY KEY); CREATE TABLE u2.t (i INT PRIMARY KEY)")
        .unwrap();
    for i in 0..200 {
        p.exec(&format!("INSERT INTO u{}.t VALUES ({i})", 1 + i % 2))
            .unwrap();
    }
    // GTID 0-1-4 .. : the 104th group is 0-1-104.
    let mut o = options(&p, &t);
    o.until = Some("0-1-104".parse::<Until>().unwrap());
    let r = run(o);
    assert_eq!(r.gtid_position, "0-1-104", "{r:?}");
    let n: Option<u64> = t.query_first("SELECT COUNT(*) FROM u1.t").unwrap();
    let m: Option<u64> = t.query_first("SELECT COUNT(*) FROM u2.t").unwrap();
    assert_eq!(n.unwrap() + m.unwrap(), 100);
    let r = run(options(&p, &t));
    assert_eq!(r.applied, 100);
    assert_same_data(&p, &t);
}

#[test]
fn preflight_refuses_a_target_without_binlog_or_with_strict_gtid_mode() {
    let p = primary(BinlogFormat::Row);
    p.exec("CREATE DATABASE x").unwrap();
    let no_binlog = Server::start(ServerOptions::new().server_id(3)).unwrap();
    match engine::run(options(&p, &no_binlog)) {
        Err(f) => match &f.error {
            ApplyError::Definite(DefiniteError::Preflight(
                e @ PreflightError::LogBinOff { addr },
            )) => {
                assert!(addr.contains(&no_binlog.port().to_string()), "{addr}");
                assert!(e.to_string().contains("log_bin off"), "{e}");
                assert_eq!(f.report.applied, 0);
            }
            e => panic!("expected a preflight error, got {e:?}"),
        },
        other => panic!("expected a preflight error, got {other:?}"),
    }
    let strict = Server::start(
        ServerOptions::new()
            .server_id(4)
            .log_bin("b")
            .gtid_strict_mode(true),
    )
    .unwrap();
    match engine::run(options(&p, &strict)) {
        Err(f) => match &f.error {
            ApplyError::Definite(DefiniteError::Preflight(
                e @ PreflightError::GtidStrictMode { .. },
            )) => assert!(e.to_string().contains("gtid_strict_mode"), "{e}"),
            e => panic!("expected a preflight error, got {e:?}"),
        },
        other => panic!("expected a preflight error, got {other:?}"),
    }
    // A dead target: a clear error naming the address.
    let port = no_binlog.port();
    drop(no_binlog);
    let mut o = options(&p, &strict);
    o.target = ConnectOptions::new("127.0.0.1", port, "root");
    let e = engine::run(o).unwrap_err().to_string();
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
}

/// The shared MariaDB 10.11 workload (every column type, XA, MyISAM, a
/// savepoint, a second GTID domain, a 3 MB transaction, a cross-database
/// transaction, rotations) applied by parapply gives the same tables as
/// `mariadb-binlog | mariadb`, the reference replay.
#[test]
fn the_shared_workload_matches_the_reference_replay() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/binlogs/mariadb-10.11");
    assert!(dir.is_dir(), "missing fixtures: {}", dir.display());
    let ours = target();
    let ours_batch_1 = target();
    let reference = target();
    let mut o = options(&ours, &ours);
    o.source = Source::dir(&dir).unwrap();
    let r = run(o);
    assert_eq!(r.applied, 30, "{r:?}");
    // Without batching: single-statement groups chained and merged with
    // their watermark, the others on their own.
    let mut o = options(&ours_batch_1, &ours_batch_1);
    o.source = Source::dir(&dir).unwrap();
    o.batch_groups = 1;
    o.workers = 2;
    let r = run(o);
    assert_eq!(r.applied, 30, "{r:?}");
    // The reference: mariadb-binlog piped into the mariadb client.
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| {
                x.len() == 6 && x.to_string_lossy().chars().all(|c| c.is_ascii_digit())
            })
        })
        .collect();
    files.sort();
    let dump = std::process::Command::new("mariadb-binlog")
        .args(&files)
        .output()
        .expect("mariadb-binlog is needed: apt-get install mariadb-server");
    assert!(dump.status.success());
    let mut client = std::process::Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &reference.port().to_string(),
            "-uroot",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("the mariadb client is needed: apt-get install mariadb-client");
    use std::io::Write;
    client
        .stdin
        .take()
        .unwrap()
        .write_all(&dump.stdout)
        .unwrap();
    assert!(client.wait().unwrap().success());
    let dbs = ["shop", "blog", "audit"];
    let a = ours.checksums(&dbs).unwrap();
    let b = reference.checksums(&dbs).unwrap();
    assert!(a.len() >= 4, "{a:?}");
    assert_eq!(a, b);
    assert_eq!(ours_batch_1.checksums(&dbs).unwrap(), b);
}

/// A lock-wait timeout is retried until the lock goes away; a real conflict
/// (the replica diverged) stops the engine with an error naming the GTID,
/// position, database and the server's message, and nothing of the failing
/// transaction is committed.
///
/// The lock is released once the target has counted a lock-wait timeout
/// (InnoDB's `lock_timeouts` metric), not after a guessed delay: the run can
/// then only succeed by retrying, and its report must say it did.
#[test]
fn lock_waits_are_retried_and_divergence_is_a_clear_error() {
    let p = primary(BinlogFormat::Row);
    let t = target();
    p.exec("CREATE DATABASE l; CREATE TABLE l.t (id INT PRIMARY KEY, v INT); INSERT INTO l.t VALUES (1, 0)")
        .unwrap();
    let mut o = options(&p, &t);
    o.until = Some("0-1-3".parse::<Until>().unwrap());
    let first = run(o);
    assert_eq!(first.retries, 0, "{first:?}");
    for i in 1..=5 {
        p.exec(&format!("UPDATE l.t SET v = {i} WHERE id = 1"))
            .unwrap();
    }
    // Another client holds the row; the target gives up waiting after 1 s.
    t.exec("SET GLOBAL innodb_lock_wait_timeout = 1").unwrap();
    let lock_timeouts = |t: &Server| -> u64 {
        t.query_first(
            "SELECT COUNT FROM information_schema.INNODB_METRICS WHERE NAME = 'lock_timeouts'",
        )
        .unwrap()
        .expect("InnoDB counts lock-wait timeouts (metric lock_timeouts, enabled by default)")
    };
    let timeouts_before = lock_timeouts(&t);
    let mut holder = t.conn().unwrap();
    use mysql::prelude::Queryable;
    holder.query_drop("START TRANSACTION").unwrap();
    holder
        .query_drop("SELECT * FROM l.t WHERE id = 1 FOR UPDATE")
        .unwrap();
    let r = std::thread::scope(|s| {
        let release = s.spawn(|| {
            // A hang guard only: the timeout comes after about 1 s.
            let deadline = std::time::Instant::now() + common::HANG_GUARD;
            while lock_timeouts(&t) == timeouts_before {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no lock-wait timeout on the target"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            holder.query_drop("COMMIT").unwrap();
        });
        let r = run(options(&p, &t));
        release.join().unwrap();
        r
    });
    assert_eq!(r.applied, 5, "{r:?}");
    assert!(
        r.retries >= 1,
        "the group that timed out was applied without a retry: {r:?}"
    );
    assert!(lock_timeouts(&t) > timeouts_before);
    assert_same_data(&p, &t);

    // Divergence: the replica already has a row the primary inserts.
    t.exec("INSERT INTO l.t VALUES (2, 99)").unwrap();
    p.exec("INSERT INTO l.t VALUES (2, 2)").unwrap();
    p.exec("UPDATE l.t SET v = 7 WHERE id = 1").unwrap();
    let f = engine::run(options(&p, &t)).unwrap_err();
    let msg = f.to_string();
    assert!(
        matches!(&f.error, ApplyError::Definite(DefiniteError::Group { .. })),
        "{msg}"
    );
    assert!(!f.error.is_transient());
    // The group that failed, by its own GTID and database.
    let group = f.error.group().expect("names its group");
    assert_eq!(group.databases, ["l"]);
    assert_eq!(
        group.gtid.as_ref().map(|g| g.to_string()).as_deref(),
        Some("0-1-9")
    );
    // What was applied up to there: the low-watermark is the group before.
    assert_eq!(f.report.gtid_position, "0-1-8", "{:?}", f.report);
    assert!(
        msg.starts_with("apply failed at 0-1-9 (mariadb-bin.000001:"),
        "{msg}"
    );
    assert!(msg.contains(") in l: server error 1062 (23000): "), "{msg}");
    assert!(!msg.contains("of the batch"), "{msg}");
    assert!(msg.contains("Duplicate entry '2'"), "{msg}");
    let v: Option<i64> = t.query_first("SELECT v FROM l.t WHERE id = 2").unwrap();
    assert_eq!(
        v,
        Some(99),
        "nothing of the failing transaction is committed"
    );
}

/// Relay logs as the source: a replica's IO thread writes them; parapply
/// applies them to another server, stops half-way and resumes (by GTID, as
/// the relay log's file names are not the primary's).
#[test]
fn relay_logs_apply_and_resume() {
    let p = primary(BinlogFormat::Row);
    let relay = Server::start(ServerOptions::new().server_id(5).relay_log_purge(false)).unwrap();
    let t = target();
    common::load_small_transactions(&p, "r", 4, 400);
    p.exec("FLUSH BINARY LOGS").unwrap();
    common::load_small_transactions(&p, "q", 4, 200);
    relay.replicate_from(&p).unwrap();
    relay.wait_caught_up(&p, Duration::from_secs(60)).unwrap();
    let relay_source = || Source::Index(relay.relay_log_index());
    let mut o = options(&p, &t);
    o.source = relay_source();
    o.until = Some("0-1-300".parse::<Until>().unwrap());
    let first = run(o);
    assert_eq!(first.gtid_position, "0-1-300", "{first:?}");
    let mut o = options(&p, &t);
    o.source = relay_source();
    let second = run(o);
    assert_eq!(
        first.applied + second.applied,
        4 * 3 + 400 + 4 * 3 + 200,
        "{second:?}"
    );
    assert_eq!(
        second.skipped, 1,
        "only the group at the resume point is seen again"
    );
    assert_same_data(&p, &t);
}

/// The watermark row events a worker appends to a group's `BINLOG`
/// statement move `shard_progress` rows exactly as the SQL upsert does, on
/// a table as `create_sql` makes it; a missing row is an error, not an
/// insert.
#[test]
fn shard_progress_row_events_update_the_rows_like_sql() {
    use parapply::apply::replay::binlog_statement;
    use parapply::binlog::synth;
    use parapply::position::BinlogPos;
    use parapply::progress::{ProgressTables, Watermark, SHARD_PROGRESS_LAYOUT};
    use parapply::wire::Conn;

    let t = target();
    let tables = ProgressTables::new("pp_rows").unwrap();
    let mut c = Conn::connect(&ConnectOptions::new("127.0.0.1", t.port(), "root")).unwrap();
    for sql in tables.create_sql() {
        c.execute(sql.as_bytes()).unwrap();
    }
    let layout = c.query_value(&tables.layout_sql()).unwrap();
    assert_eq!(layout.as_deref(), Some(SHARD_PROGRESS_LAYOUT));

    let wm = |seq: u64, file: &str, pos: u64| Watermark {
        seq_no: seq,
        server_id: 7,
        end: BinlogPos::new(file.to_string(), pos),
    };
    let shard_a = "db_ä.t";
    let shard_b = "b".repeat(400);
    let before = [wm(1, "bin.000001", 100), wm(2, "bin.000001", 200)];
    let after = [wm(41, "bin.000002", 4_000_000_000_000), wm(42, "x", 9)];
    let rows = |w: &[Watermark]| {
        vec![
            (3u32, shard_a, w[0].clone()),
            (3, &shard_b[..], w[1].clone()),
        ]
    };
    let refs = |r: &[(u32, &str, Watermark)]| -> Vec<(u32, String, Watermark)> {
        r.iter()
            .map(|(d, s, w)| (*d, s.to_string(), w.clone()))
            .collect()
    };
    let sql_rows = rows(&before);
    let sql_refs: Vec<(u32, &str, &Watermark)> =
        sql_rows.iter().map(|(d, s, w)| (*d, *s, w)).collect();
    c.execute(tables.upsert_shards_sql(&sql_refs).as_bytes())
        .unwrap();

    let fde = synth::format_description();
    let new_rows = rows(&after);
    let new_refs: Vec<(u32, &str, &Watermark)> =
        new_rows.iter().map(|(d, s, w)| (*d, *s, w)).collect();
    let mut events = Vec::new();
    let now_micros = 1_700_000_000_123_456;
    assert!(tables.shard_update_events(&fde, &new_refs, 1_700_000_000, 7, now_micros, &mut events));
    c.execute(&binlog_statement(&fde.raw_event)).unwrap();
    c.execute(b"START TRANSACTION").unwrap();
    c.execute(&binlog_statement(&events)).unwrap();
    c.execute(b"COMMIT").unwrap();

    let got = c.query_rows(&tables.select_shards_sql()).unwrap();
    let state = ProgressTables::parse_state(&got, &[], None).unwrap();
    let want: Vec<(u32, String, Watermark)> = refs(&new_rows);
    let have: Vec<(u32, String, Watermark)> = state
        .shards
        .iter()
        .map(|((d, s), w)| (*d, s.clone(), w.clone()))
        .collect();
    let mut want_sorted = want.clone();
    want_sorted.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    assert_eq!(have, want_sorted);
    let stamp = c
        .query_value("SELECT MIN(UNIX_TIMESTAMP(updated_at)) FROM pp_rows.shard_progress")
        .unwrap();
    assert_eq!(stamp.as_deref(), Some("1700000000.123456"));

    // A shard without a row: the event fails instead of inserting one.
    let missing = [(3u32, "no_such_shard", &after[0])];
    let mut events = Vec::new();
    assert!(tables.shard_update_events(&fde, &missing, 1_700_000_000, 7, now_micros, &mut events));
    c.execute(b"START TRANSACTION").unwrap();
    let err = c.execute(&binlog_statement(&events)).unwrap_err();
    assert!(err.to_string().contains("1032"), "{err}");
    c.execute(b"ROLLBACK").unwrap();
}

/// `--batch 1`: each group its own transaction, several chained in one
/// round trip. A group failing in the middle of a chain leaves exactly the
/// groups before it committed, each with its primary GTID in the target's
/// binary log; the next run resumes at the failing group.
#[test]
fn with_batch_1_a_failure_inside_a_chain_commits_exactly_the_groups_before_it() {
    let p = primary(BinlogFormat::Row);
    let t = target();
    p.exec("CREATE DATABASE c; CREATE TABLE c.t (id INT PRIMARY KEY, v INT); INSERT INTO c.t VALUES (1, 0)")
        .unwrap();
    let single = |o: &mut ApplyOptions| {
        o.workers = 1;
        o.batch_groups = 1;
    };
    let mut o = options(&p, &t);
    single(&mut o);
    run(o); // the shard row of `c` exists from here on
    let before_seq: Vec<u64> = (1..=4u64)
        .map(|i| {
            p.exec(&format!("UPDATE c.t SET v = {i} WHERE id = 1"))
                .unwrap();
            p.gtid_binlog_pos()
                .unwrap()
                .rsplit('-')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    p.exec("INSERT INTO c.t VALUES (2, 2)").unwrap();
    let failing = p.gtid_binlog_pos().unwrap();
    for i in 5..=8 {
        p.exec(&format!("UPDATE c.t SET v = {i} WHERE id = 1"))
            .unwrap();
    }
    // The replica diverged: it has row 2 already.
    t.exec("INSERT INTO c.t VALUES (2, 99)").unwrap();
    let mut o = options(&p, &t);
    single(&mut o);
    let e = engine::run(o).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("apply failed at {failing} (mariadb-bin.000001:")),
        "{msg}"
    );
    assert!(msg.contains("Duplicate entry '2'"), "{msg}");
    let v: Option<i64> = t.query_first("SELECT v FROM c.t WHERE id = 1").unwrap();
    assert_eq!(
        v,
        Some(4),
        "the four groups before the failing one are committed"
    );
    let w: Option<u64> = t
        .query_first("SELECT seq_no FROM parapply.shard_progress WHERE shard = 'c'")
        .unwrap();
    assert_eq!(
        w,
        before_seq.last().copied(),
        "the watermark is the last committed group"
    );
    let state: String = t
        .query_first("SELECT @@GLOBAL.gtid_binlog_state")
        .unwrap()
        .unwrap();
    assert!(
        state
            .split(',')
            .any(|g| g == format!("0-1-{}", before_seq[3])),
        "the primary's GTID of the last committed group is in the target's binlog: {state}"
    );

    // Repaired, the next run starts at the failing group.
    t.exec("DELETE FROM c.t WHERE id = 2").unwrap();
    let mut o = options(&p, &t);
    single(&mut o);
    let r = run(o);
    assert_eq!(r.applied, 5, "{r:?}");
    assert_same_data(&p, &t);
    let state: String = t
        .query_first("SELECT @@GLOBAL.gtid_binlog_state")
        .unwrap()
        .unwrap();
    let last = p.gtid_binlog_pos().unwrap();
    assert!(state.split(',').any(|g| g == last), "{state} lacks {last}");
}

/// The same chain, made deterministic: every group is queued before the
/// worker starts, so it sends them in one round trip. The four groups
/// before the failing one come back in one report (one chain, not four
/// round trips), then the failure names the failing group.
#[test]
fn a_worker_sends_the_queued_single_statement_groups_as_one_chain() {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};

    use parapply::apply::replay::Collations;
    use parapply::apply::worker::{self, Report, WorkItem, WorkerConfig};
    use parapply::binlog::{BinlogReader, ReaderOptions};
    use parapply::group::Grouper;
    use parapply::progress::ProgressTables;

    let p = primary(BinlogFormat::Row);
    let t = target();
    p.exec("CREATE DATABASE c; CREATE TABLE c.t (id INT PRIMARY KEY, v INT); INSERT INTO c.t VALUES (1, 0)")
        .unwrap();
    run(options(&p, &t)); // progress tables and the shard row of `c`
    let setup_seq: u64 = p
        .gtid_binlog_pos()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for i in 1..=4 {
        p.exec(&format!("UPDATE c.t SET v = {i} WHERE id = 1"))
            .unwrap();
    }
    p.exec("INSERT INTO c.t VALUES (2, 2)").unwrap();
    let failing = p.gtid_binlog_pos().unwrap();
    for i in 5..=7 {
        p.exec(&format!("UPDATE c.t SET v = {i} WHERE id = 1"))
            .unwrap();
    }
    t.exec("INSERT INTO c.t VALUES (2, 99)").unwrap();

    let reader = BinlogReader::open(
        Source::dir(p.binlog_dir()).unwrap(),
        ReaderOptions::default(),
    )
    .unwrap();
    let mut grouper = Grouper::new(reader);
    let (items_tx, items_rx) = crossbeam_channel::unbounded();
    let mut id = 0;
    while let Some(g) = grouper.next().unwrap() {
        if g.maria_gtid().is_some_and(|x| x.seq > setup_seq) {
            items_tx
                .send(WorkItem {
                    id,
                    group: Arc::new(g),
                    shards: vec![Arc::from("c")],
                    barrier: false,
                })
                .unwrap();
            id += 1;
        }
    }
    assert_eq!(id, 8);
    drop(items_tx);
    let (reports_tx, reports_rx) = crossbeam_channel::unbounded();
    let cfg = WorkerConfig {
        index: 0,
        target: ConnectOptions::new("127.0.0.1", t.port(), "root"),
        progress: ProgressTables::new("parapply").unwrap(),
        collations: Arc::new(Collations::default()),
        batch_groups: 1,
        batch_bytes: 4 << 20,
        max_retries: 3,
        reconnect_timeout: Duration::from_secs(5),
        abort: Arc::new(AtomicBool::new(false)),
        retries: Arc::default(),
        reconnects: Arc::default(),
        shard_rows: Arc::new(Mutex::new([(0, Arc::from("c"))].into_iter().collect())),
        row_events: true,
        trace: None,
    };
    worker::run(cfg, items_rx, reports_tx);
    let reports: Vec<Report> = reports_rx.try_iter().collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
    match &reports[0] {
        Report::Applied { ids, .. } => assert_eq!(ids, &[0, 1, 2, 3]),
        r => panic!("expected the chain's four groups, got {r:?}"),
    }
    match &reports[1] {
        Report::Failed { error, .. } => {
            let msg = error.to_string();
            assert!(
                msg.starts_with(&format!("apply failed at {failing} (")),
                "{msg}"
            );
            assert!(msg.contains("Duplicate entry '2'"), "{msg}");
        }
        r => panic!("expected the failure, got {r:?}"),
    }
    let v: Option<i64> = t.query_first("SELECT v FROM c.t WHERE id = 1").unwrap();
    assert_eq!(v, Some(4));
}

/// A catch-up is the same engine run with another selection: replica B,
/// behind, receives exactly the groups replica A holds and B lacks — none
/// that A lacks, although the source has more — and then stops; B ends in
/// A's state.
#[test]
fn a_catch_up_applies_what_the_goal_holds_and_stops_there() {
    use parapply::progress::{compare, Selection, StateOrder};
    use parapply::replica::{Replica, ReplicaOptions};
    let p = primary(BinlogFormat::Row);
    let (a, b) = (target(), target());
    common::load_small_transactions(&p, "cu", 3, 30);
    let mid = p.gtid_binlog_pos().unwrap();
    for i in 0..12 {
        p.exec(&format!("UPDATE cu{}.t SET v = 'a{i}' WHERE id = 0", i % 3))
            .unwrap();
    }
    // A applies everything so far.
    let r = run(options(&p, &a));
    assert!(r.drained, "{r:?}");
    // The primary goes on; A lacks these.
    for i in 0..6 {
        p.exec(&format!(
            "UPDATE cu{}.t SET v = 'later{i}' WHERE id = 0",
            i % 3
        ))
        .unwrap();
    }
    // B stops at `mid`.
    let mut o = options(&p, &b);
    o.until = Some(mid.parse().unwrap());
    run(o);
    let replica = |s: &Server| {
        Replica::connect(ReplicaOptions {
            target: ConnectOptions::new("127.0.0.1", s.port(), "root"),
            progress: parapply::progress::ProgressTables::new("parapply").unwrap(),
            reconnect_timeout: Duration::from_secs(5),
        })
        .unwrap()
    };
    let goal = replica(&a).applied_set().unwrap();
    let before = replica(&b).read_state().unwrap();
    assert!(
        matches!(compare(&goal.state, &before), StateOrder::AAhead(_)),
        "{:?}",
        compare(&goal.state, &before)
    );

    // The plan: what a catch-up would apply, counted by the same decision.
    let plan = parapply::replica::pending(
        &replica(&b).applied_set().unwrap(),
        &Selection::catch_up(goal.clone()),
        Source::dir(p.binlog_dir()).unwrap(),
        &parapply::schedule::ShardMap::new(parapply::schedule::ShardBy::Database),
    )
    .unwrap();
    assert_eq!(plan.groups, 12, "{plan:?}");

    let catch_up = |b: &Server| {
        let mut o = options(&p, b);
        o.selection = Selection::catch_up(goal.clone());
        run(o)
    };
    let r = catch_up(&b);
    assert_eq!(
        r.applied, 12,
        "the twelve groups after `mid` that A holds: {r:?}"
    );
    let dbs = ["cu0", "cu1", "cu2"];
    assert_eq!(a.checksums(&dbs).unwrap(), b.checksums(&dbs).unwrap());
    assert_ne!(p.checksums(&dbs).unwrap(), b.checksums(&dbs).unwrap());
    let after = replica(&b).read_state().unwrap();
    assert_eq!(compare(&goal.state, &after), StateOrder::Equal);
    // Again: nothing left to catch up.
    assert_eq!(catch_up(&b).applied, 0);
    // A goal written under another shard map is refused before anything.
    let mut o = options(&p, &b);
    o.shard_map = parapply::schedule::ShardMap::new(parapply::schedule::ShardBy::Table);
    o.selection = Selection::catch_up(goal.clone());
    match engine::run(o) {
        Err(f) => assert!(
            matches!(
                f.error,
                ApplyError::Definite(DefiniteError::Preflight(
                    PreflightError::GoalShardMap { .. }
                ))
            ),
            "{:?}",
            f.error
        ),
        Ok(r) => panic!("a catch-up under another shard map ran: {r:?}"),
    }
    assert_eq!(
        replica(&b).read_state().unwrap().shard_map.as_deref(),
        Some("by=database"),
        "the refused run changed nothing"
    );
    // And the restart rule takes B on from there to the primary's end.
    run(options(&p, &b));
    assert_same_data(&p, &b);
}
