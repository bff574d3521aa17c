//! Replay fidelity: parapply applies statement-format events the way the
//! server's own SQL thread does. Each test writes on a throwaway primary,
//! applies its binlog with parapply (and, where the SQL thread's behaviour
//! is the reference, replicates it with a stock replica too), and compares
//! the data.
//!
//! Covers: every collation the server knows as the session's connection
//! collation; the session context a Query event carries (lc_time_names,
//! auto-increment, collation_database, pseudo_thread_id, non-ASCII default
//! databases).
//!
//! Run: `cargo test --test replay_fidelity` (needs mariadb-server installed).

mod common;

use std::time::Duration;

use mysql::prelude::Queryable;
use parapply::apply::engine::{self, ApplyOptions, ApplyReport};
use parapply::apply::replay::Expect;
use parapply::apply::{ApplyError, DefiniteError};
use parapply::binlog::Source;
use parapply::sandbox::{BinlogFormat, Server, ServerOptions};
use parapply::wire::ConnectOptions;

/// A stock replica of `p` (server id 3), caught up.
fn stock_replica(p: &Server) -> Server {
    let r = Server::start(ServerOptions::new().server_id(3)).unwrap();
    r.replicate_from(p).unwrap();
    r.wait_caught_up(p, common::HANG_GUARD).unwrap();
    r
}

fn options(source: &Server, target: &Server) -> ApplyOptions {
    let mut o = ApplyOptions::new(
        Source::dir(source.binlog_dir()).unwrap(),
        ConnectOptions::new("127.0.0.1", target.port(), "root"),
    );
    o.workers = 4;
    o.reconnect_timeout = Duration::from_secs(30);
    o.low_watermark_interval = Duration::from_millis(200);
    o
}

fn run(o: ApplyOptions) -> ApplyReport {
    match engine::run(o) {
        Ok(r) => r,
        Err(e) => panic!("apply failed: {e}"),
    }
}

/// Checksums of every table, and every column's type and collation.
type Snapshot = (Vec<(String, u64)>, Vec<(String, String, String)>);

/// The [`Snapshot`] of `dbs`.
fn snapshot(s: &Server, dbs: &[&str]) -> Snapshot {
    let sums = s.checksums(dbs).unwrap().into_iter().collect();
    let list = dbs
        .iter()
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(",");
    let cols = s
        .query(&format!(
            "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME, '.', COLUMN_NAME), COLUMN_TYPE, \
             IFNULL(COLLATION_NAME, '') FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA IN ({list}) ORDER BY 1"
        ))
        .unwrap();
    (sums, cols)
}

/// Every collation of the server (each id of
/// COLLATION_CHARACTER_SET_APPLICABILITY, which also holds the UCA 14.0.0
/// collations SHOW COLLATION lists without an id) as the connection
/// collation of a statement-format write: the target equals the primary.
#[test]
fn every_collation_as_the_connection_collation_replays_exactly() {
    let p = common::primary(BinlogFormat::Statement);
    let t = common::replica_target();
    p.exec(
        "CREATE DATABASE fid;
         CREATE TABLE fid.t (id INT PRIMARY KEY, coll VARCHAR(64), co VARCHAR(64),
           ws VARCHAR(1024), ci INT, hx VARCHAR(256)) CHARACTER SET utf8mb4",
    )
    .unwrap();
    let collations: Vec<(u32, String, String, String)> = p
        .query(
            "SELECT ID, CHARACTER_SET_NAME, FULL_COLLATION_NAME, IS_DEFAULT \
             FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY ORDER BY ID",
        )
        .unwrap();
    assert!(collations.len() > 300, "{} collations", collations.len());
    let shown: Vec<mysql::Row> = p.query("SHOW COLLATION").unwrap();
    assert!(collations.len() >= shown.len() - 200);
    let mut c = p.conn().unwrap();
    let mut tables = std::collections::BTreeSet::new();
    for (id, cs, coll, is_default) in &collations {
        // ucs2, utf16, utf16le and utf32 cannot be the client character
        // set: the connection collation alone is set then.
        if c.query_drop(format!("SET NAMES {cs} COLLATE {coll}"))
            .is_err()
        {
            c.query_drop(format!(
                "SET NAMES utf8mb4; SET collation_connection = {coll}"
            ))
            .unwrap();
        }
        // String literals take the connection's character set and collation.
        c.query_drop(format!(
            "INSERT INTO fid.t VALUES ({id}, '{coll}', COLLATION('x'), HEX(WEIGHT_STRING('Ab')), \
             'a' = 'A', HEX('Ab'))"
        ))
        .unwrap_or_else(|e| panic!("{coll}: {e}"));
        // One table per character set, its column in a collation of it
        // that is not the default (where there is one): the DDL's text and
        // column types follow the connection.
        if is_default != "Yes" && tables.insert(cs.clone()) {
            c.query_drop(format!(
                "CREATE TABLE fid.c_{id} AS SELECT 'Ab' AS v, COLLATION('x') AS c"
            ))
            .unwrap_or_else(|e| panic!("{coll}: {e}"));
        }
    }
    drop(c);
    let r = run(options(&p, &t));
    assert!(r.drained, "{r:?}");
    let (a, b) = (snapshot(&p, &["fid"]), snapshot(&t, &["fid"]));
    assert!(a.0.len() > 30, "{} tables", a.0.len());
    assert_eq!(a, b, "target differs from primary");
    let distinct: Vec<u64> = t.query("SELECT COUNT(DISTINCT co) FROM fid.t").unwrap();
    assert_eq!(distinct, [collations.len() as u64]);
}

/// The context a Query event carries, or lacks, applied as the SQL thread
/// applies it: `lc_time_names` back to en_US and the auto-increment pair
/// back to 1 when the event has none; `collation_database` from the
/// default database (or the server collation without one); the primary's
/// connection id; a default database whose name is not ASCII under a
/// latin1 client. Target and stock replica equal the primary.
#[test]
fn session_context_replays_like_the_sql_thread() {
    let p = common::primary(BinlogFormat::Statement);
    let t = common::replica_target();
    p.exec(
        "CREATE DATABASE l1 CHARACTER SET latin1;
         CREATE TABLE l1.t (id INT AUTO_INCREMENT PRIMARY KEY, a VARCHAR(64)) CHARACTER SET utf8mb4",
    )
    .unwrap();
    let mut c = p.conn().unwrap();
    let stmts = [
        "USE l1",
        "SET lc_time_names = 'de_DE'",
        "INSERT INTO t (a) VALUES (DATE_FORMAT('2020-01-06', '%W %M'))",
        "SET lc_time_names = 'en_US'",
        "INSERT INTO t (a) VALUES (DATE_FORMAT('2020-01-06', '%W %M'))",
        "SET auto_increment_increment = 5, auto_increment_offset = 3",
        "INSERT INTO t (a) VALUES ('inc5'), ('inc5'), ('inc5')",
        "SET auto_increment_increment = 1, auto_increment_offset = 1",
        "INSERT INTO t (a) VALUES ('inc1'), ('inc1'), ('inc1')",
        "INSERT INTO t (a) VALUES (@@collation_database)",
        "INSERT INTO t (a) VALUES (CONNECTION_ID() > 0)",
        "SET NAMES latin1 COLLATE latin1_bin",
        "SET @v = 'user var'",
        "INSERT INTO t (a) VALUES (CONCAT(@v, ' ', COLLATION(@v)))",
    ];
    for s in stmts {
        c.query_drop(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    // A session without a default database, between two of l1: the second
    // sees l1's character set again.
    let mut c2 =
        mysql::Conn::new(mysql::OptsBuilder::from_opts(p.mysql_opts()).db_name(None::<String>))
            .unwrap();
    c2.query_drop("INSERT INTO l1.t (a) VALUES (@@collation_database)")
        .unwrap();
    drop(c2);
    c.query_drop("INSERT INTO t (a) VALUES (@@collation_database)")
        .unwrap();
    for s in [
        "SET NAMES utf8mb4",
        "CREATE DATABASE `d\u{e9}j\u{e0}`",
        "USE `d\u{e9}j\u{e0}`",
        "SET NAMES latin1",
    ] {
        c.query_drop(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    // The event before the first one in the non-ASCII database runs with a
    // latin1 client: its name must not be read as latin1.
    let mut c3 = p.conn().unwrap();
    c3.query_drop("USE l1; SET NAMES latin1; INSERT INTO t (a) VALUES ('latin1 client')")
        .unwrap();
    drop(c3);
    c.query_drop("CREATE TABLE t (a VARCHAR(20)); INSERT INTO t VALUES ('x'), (DATABASE())")
        .unwrap();
    drop(c);
    let rows: Vec<(i64, String)> = p.query("SELECT id, a FROM l1.t ORDER BY id").unwrap();
    let texts: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert!(texts.contains(&"Montag Januar") && texts.contains(&"Monday January"));
    assert!(texts.contains(&"latin1_swedish_ci"), "{texts:?}");
    let replica = stock_replica(&p);
    let r = run(options(&p, &t));
    assert!(r.drained, "{r:?}");
    let dbs = ["l1", "d\u{e9}j\u{e0}"];
    let want = snapshot(&p, &dbs);
    assert_eq!(want.0.len(), 2);
    assert_eq!(snapshot(&replica, &dbs), want, "stock replica");
    assert_eq!(snapshot(&t, &dbs), want, "parapply");
    let got: Vec<(i64, String)> = t.query("SELECT id, a FROM l1.t ORDER BY id").unwrap();
    assert_eq!(got, rows);
}

const F1442: &str = "CREATE DATABASE e;
     CREATE TABLE e.t1 (a INT) ENGINE=MyISAM;
     CREATE TABLE e.t2 (a INT PRIMARY KEY) ENGINE=InnoDB;
     CREATE FUNCTION e.f1() RETURNS INT MODIFIES SQL DATA DETERMINISTIC
       BEGIN INSERT INTO e.t1 VALUES (99); RETURN 2; END";

/// Writes the issue's example: a stored function that inserts into the
/// MyISAM table the calling INSERT inserts into fails with 1442 after the
/// first row; the primary logs the statement with error_code=1442, alone
/// and inside a transaction. Returns the GTID of the first such group.
fn write_error_1442(p: &Server) -> String {
    let mut c = p.conn().unwrap();
    c.query_drop("USE e").unwrap();
    let first = p.gtid_binlog_pos().unwrap();
    let err = c
        .query_drop("INSERT INTO t1 VALUES (1), (f1())")
        .unwrap_err();
    assert!(err.to_string().contains("1442"), "{err}");
    c.query_drop("INSERT INTO t2 VALUES (1)").unwrap();
    c.query_drop("BEGIN").unwrap();
    c.query_drop("INSERT INTO t2 VALUES (2)").unwrap();
    assert!(c.query_drop("INSERT INTO t1 VALUES (3), (f1())").is_err());
    c.query_drop("INSERT INTO t2 VALUES (3)").unwrap();
    c.query_drop("COMMIT").unwrap();
    let seq: u64 = first.rsplit('-').next().unwrap().parse().unwrap();
    format!("0-1-{}", seq + 1)
}

/// Item 2 of the replay-fidelity issue: a statement the primary logged
/// with an error fails the same way on the target, which is accepted, and
/// the group goes on — in STATEMENT and MIXED format, like a stock replica.
#[test]
fn a_statement_logged_with_an_error_fails_alike_and_the_group_goes_on() {
    for format in [BinlogFormat::Statement, BinlogFormat::Mixed] {
        let p = common::primary(format);
        p.exec(F1442).unwrap();
        write_error_1442(&p);
        let text = common::binlog_text(&p);
        // (In MIXED format the server logs the one in the transaction as
        // rows.)
        let logged = text.matches("error_code=1442").count();
        assert!(
            logged > usize::from(format == BinlogFormat::Statement),
            "{format:?}"
        );
        let replica = stock_replica(&p);
        for batch in [1, 32] {
            let t = common::replica_target();
            let mut o = options(&p, &t);
            o.batch_groups = batch;
            let r = run(o);
            assert!(r.drained, "{r:?}");
            let want = snapshot(&p, &["e"]);
            assert_eq!(
                snapshot(&replica, &["e"]),
                want,
                "stock replica, {format:?}"
            );
            assert_eq!(
                snapshot(&t, &["e"]),
                want,
                "parapply, {format:?}, --batch {batch}"
            );
            let rows: Vec<i64> = t.query("SELECT a FROM e.t1 ORDER BY a").unwrap();
            assert_eq!(rows, [1, 3], "{format:?}");
            let rows: Vec<i64> = t.query("SELECT a FROM e.t2 ORDER BY a").unwrap();
            assert_eq!(rows, [1, 2, 3], "{format:?}");
        }
    }
}

/// A statement logged with error 1442 that succeeds on the target (its
/// function no longer writes), or fails with another error (the function
/// is gone), is a divergence naming the group.
#[test]
fn success_or_another_error_where_the_primary_logged_one_is_a_divergence() {
    let p = common::primary(BinlogFormat::Statement);
    p.exec(F1442).unwrap();
    let ddl_done = p.gtid_binlog_pos().unwrap();
    let failing = write_error_1442(&p);
    let t = common::replica_target();
    let mut o = options(&p, &t);
    o.until = Some(ddl_done.parse().unwrap());
    run(o);
    t.exec(
        "SET sql_log_bin = 0; DROP FUNCTION e.f1;
         CREATE FUNCTION e.f1() RETURNS INT DETERMINISTIC RETURN 2",
    )
    .unwrap();
    let e = engine::run(options(&p, &t)).unwrap_err().error;
    // A definite error naming the group, with the logged code and the
    // target's outcome (success).
    match &e {
        ApplyError::Definite(DefiniteError::Diverged {
            group,
            expected,
            actual,
        }) => {
            assert_eq!(
                group.gtid.as_ref().map(|g| g.to_string()),
                Some(failing.clone())
            );
            assert_eq!(group.databases, ["e"]);
            assert_eq!(*expected, Expect::Error(1442));
            assert!(actual.is_none(), "{actual:?}");
        }
        e => panic!("not a divergence: {e:?}"),
    }
    assert_eq!(
        e.group()
            .and_then(|g| g.gtid.as_ref())
            .map(|g| g.to_string()),
        Some(failing.clone())
    );
    let err = e.to_string();
    assert!(
        err.contains(&format!("apply failed at {failing} (mariadb-bin.000001:"))
            && err.contains("in e:")
            && err.contains("the primary logged error 1442")
            && err.contains("the target answered success"),
        "{err}"
    );
    // Another error than the one logged (the function is gone) is one too.
    // (The MyISAM rows of the diverged statement stayed, and the target
    // logged its group on rollback: the next run takes it as applied and
    // stops at the next statement logged with 1442, two groups later.)
    t.exec("SET sql_log_bin = 0; DROP FUNCTION e.f1").unwrap();
    let e = engine::run(options(&p, &t)).unwrap_err().error;
    let (head, seq) = failing.rsplit_once('-').unwrap();
    let next = format!("{head}-{}", seq.parse::<u64>().unwrap() + 2);
    match &e {
        ApplyError::Definite(DefiniteError::Diverged {
            group,
            expected,
            actual,
        }) => {
            assert_eq!(
                group.gtid.as_ref().map(|g| g.to_string()),
                Some(next.clone())
            );
            assert_eq!(*expected, Expect::Error(1442));
            assert_eq!(actual.as_ref().and_then(|a| a.code()), Some(1305));
        }
        e => panic!("not a divergence: {e:?}"),
    }
    let err = e.to_string();
    assert!(
        err.contains(&format!("apply failed at {next} (mariadb-bin.000001:"))
            && err.contains("the primary logged error 1442")
            && err.contains("the target answered server error 1305"),
        "{err}"
    );
}

/// Item 3: a transaction that changed a MyISAM and an InnoDB table and
/// ended with ROLLBACK is logged in full with `ROLLBACK`; the primary keeps
/// the MyISAM change only. Between committed transactions of the same
/// database (which batching would join), in ROW, MIXED and STATEMENT
/// format, with --batch 1 and 32: target equals primary and a stock
/// replica, and the neighbours are all there.
#[test]
fn a_group_ending_in_rollback_is_rolled_back_alone() {
    for format in [
        BinlogFormat::Row,
        BinlogFormat::Mixed,
        BinlogFormat::Statement,
    ] {
        let p = common::primary(format);
        p.exec(
            "CREATE DATABASE rb; CREATE TABLE rb.i (id INT PRIMARY KEY, v INT) ENGINE=InnoDB;
             CREATE TABLE rb.m (id INT PRIMARY KEY, v INT) ENGINE=MyISAM",
        )
        .unwrap();
        let mut c = p.conn().unwrap();
        for k in 0..20 {
            c.query_drop(format!("INSERT INTO rb.i VALUES ({}, 0)", 100 + k))
                .unwrap();
        }
        c.query_drop(
            "BEGIN; INSERT INTO rb.i VALUES (1, 1); INSERT INTO rb.m VALUES (1, 1);
             UPDATE rb.i SET v = 99; ROLLBACK",
        )
        .unwrap();
        for k in 0..20 {
            c.query_drop(format!(
                "BEGIN; INSERT INTO rb.i VALUES ({}, 0); UPDATE rb.i SET v = v + 1 WHERE id = 100; COMMIT",
                200 + k
            ))
            .unwrap();
        }
        drop(c);
        // In ROW and MIXED format (where a non-transactional change after a
        // transactional one is unsafe as a statement) the server logs the
        // MyISAM row at once as a committed group of its own, and the rest
        // not at all.
        assert_eq!(
            common::binlog_text(&p).contains("\nROLLBACK\n"),
            format == BinlogFormat::Statement,
            "{format:?}: the rolled-back group is logged"
        );
        let want = snapshot(&p, &["rb"]);
        let m: Vec<(i64, i64)> = p.query("SELECT id, v FROM rb.m").unwrap();
        assert_eq!(m, [(1, 1)]);
        let replica = stock_replica(&p);
        assert_eq!(
            snapshot(&replica, &["rb"]),
            want,
            "stock replica, {format:?}"
        );
        for batch in [1, 32] {
            let t = common::replica_target();
            let mut o = options(&p, &t);
            o.batch_groups = batch;
            o.workers = 2;
            let r = run(o);
            assert!(r.drained, "{r:?}");
            assert_eq!(
                r.applied,
                3 + 20 + 1 + 20,
                "{format:?} --batch {batch}: {r:?}"
            );
            assert_eq!(
                snapshot(&t, &["rb"]),
                want,
                "parapply, {format:?}, --batch {batch}"
            );
            let i: Vec<(i64, i64)> = t.query("SELECT id, v FROM rb.i WHERE id < 100").unwrap();
            assert!(i.is_empty(), "{format:?} --batch {batch}: {i:?}");
            // A second run finds everything applied.
            let again = run(options(&p, &t));
            assert_eq!(again.applied, 0, "{again:?}");
            assert_eq!(snapshot(&t, &["rb"]), want);
        }
    }
}

/// Item 3: the tail of a primary that crashed while writing a transaction
/// to its binary log — a group with no COMMIT, XID or ROLLBACK at the end
/// of a file, the next file starting after the restart — is not applied
/// (the primary rolled it back in recovery; the SQL thread rolls it back
/// at the next file's Format_description). Everything after it is, and a
/// second run applies nothing: the watermarks moved past it.
#[test]
fn a_crashed_primarys_unfinished_tail_is_not_applied() {
    use parapply::binlog::{BinlogReader, EventType, ReaderOptions};
    for format in [
        BinlogFormat::Row,
        BinlogFormat::Mixed,
        BinlogFormat::Statement,
    ] {
        let p = common::primary(format);
        p.exec("CREATE DATABASE ct; CREATE TABLE ct.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
            .unwrap();
        for k in 1..=5 {
            p.exec(&format!("INSERT INTO ct.t VALUES ({k}, 0)"))
                .unwrap();
        }
        p.exec(
            "BEGIN; INSERT INTO ct.t VALUES (999, 0); UPDATE ct.t SET v = 7 WHERE id = 1; COMMIT",
        )
        .unwrap();
        p.exec("FLUSH BINARY LOGS").unwrap();
        for k in 6..=10 {
            p.exec(&format!("INSERT INTO ct.t VALUES ({k}, 0)"))
                .unwrap();
        }
        let files = p.binlog_files().unwrap();
        assert_eq!(files.len(), 2);
        // The crash: the first file ends before the last group's XID.
        let dir = tempfile::tempdir().unwrap();
        let copies: Vec<_> = files
            .iter()
            .map(|f| {
                let to = dir.path().join(f.file_name().unwrap());
                std::fs::copy(f, &to).unwrap();
                to
            })
            .collect();
        let mut reader = BinlogReader::open(
            Source::Files(vec![copies[0].clone()]),
            ReaderOptions::default(),
        )
        .unwrap();
        let mut last_xid = None;
        while let Some(ev) = reader.next().unwrap() {
            if ev.event_type() == EventType::XID {
                last_xid = Some(ev.pos);
            }
        }
        let cut = last_xid.expect("the file ends with a transaction");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&copies[0])
            .unwrap()
            .set_len(cut)
            .unwrap();
        let want: Vec<(i64, i64)> = (1..=10).map(|k| (k, 0)).collect();
        for batch in [1, 32] {
            let t = common::replica_target();
            let mut o = options(&p, &t);
            o.source = Source::Files(copies.clone());
            o.batch_groups = batch;
            let r = run(o.clone());
            assert!(r.drained, "{r:?}");
            assert_eq!(r.applied, 2 + 10, "{format:?} --batch {batch}: {r:?}");
            let got: Vec<(i64, i64)> = t.query("SELECT id, v FROM ct.t ORDER BY id").unwrap();
            assert_eq!(got, want, "{format:?} --batch {batch}");
            let again = run(o);
            assert_eq!((again.applied, again.skipped), (0, 0), "{again:?}");
        }
    }
}

/// Item 4: LOAD DATA logged as a statement carries its file in a
/// Begin_load_query event and, when it is larger than a block, Append_block
/// events; parapply sends it back with `LOAD DATA LOCAL INFILE` from the
/// events' bytes. A small file and a 600 KB one (several Append_block
/// events), with REPLACE and IGNORE, latin1 bytes read through the
/// database's character set: target equals primary and a stock replica.
#[test]
fn load_data_in_statement_format_applies_with_the_file_from_the_events() {
    use parapply::binlog::{BinlogReader, EventType, ReaderOptions};
    let p = common::primary(BinlogFormat::Statement);
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.txt");
    std::fs::write(&small, b"1\tcaf\xe9\n2\tna\xefve\n").unwrap();
    let big = dir.path().join("big.txt");
    let text: String = (0..40_000).map(|i| format!("{i}\tvalue {i}\n")).collect();
    std::fs::write(&big, &text).unwrap();
    let dups = dir.path().join("dups.txt");
    std::fs::write(&dups, b"1\treplaced\n3\tnew\n").unwrap();
    p.exec(
        "CREATE DATABASE ld CHARACTER SET latin1;
         CREATE TABLE ld.t (id INT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB;
         CREATE TABLE ld.big (id INT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB",
    )
    .unwrap();
    let mut c = p.conn().unwrap();
    c.query_drop("USE ld").unwrap();
    for (file, how, table) in [
        (&small, "", "t"),
        (&big, "", "big"),
        (&dups, "REPLACE", "t"),
        (&dups, "IGNORE", "big"),
    ] {
        c.query_drop(format!(
            "LOAD DATA INFILE '{}' {how} INTO TABLE {table}",
            file.display()
        ))
        .unwrap();
    }
    drop(c);
    let files = p.binlog_files().unwrap();
    let mut reader =
        BinlogReader::open(Source::Files(files.clone()), ReaderOptions::default()).unwrap();
    let (mut blocks, mut executes) = (0, 0);
    while let Some(ev) = reader.next().unwrap() {
        blocks += usize::from(ev.event_type() == EventType::APPEND_BLOCK);
        executes += usize::from(ev.event_type() == EventType::EXECUTE_LOAD_QUERY);
    }
    assert!(blocks >= 2, "{blocks} Append_block events");
    assert_eq!(executes, 4);
    let want = snapshot(&p, &["ld"]);
    let rows: Vec<(i64, String)> = p.query("SELECT id, v FROM ld.t ORDER BY id").unwrap();
    assert_eq!(
        rows,
        [
            (1, "replaced".into()),
            (2, "na\u{ef}ve".into()),
            (3, "new".into())
        ]
    );
    let replica = stock_replica(&p);
    assert_eq!(snapshot(&replica, &["ld"]), want, "stock replica");
    for batch in [1, 32] {
        let t = common::replica_target();
        let mut o = options(&p, &t);
        o.batch_groups = batch;
        let r = run(o);
        assert!(r.drained, "{r:?}");
        assert_eq!(snapshot(&t, &["ld"]), want, "parapply --batch {batch}");
    }
}

/// Item 5: temporary tables of two primary sessions with the same name,
/// created, filled, used by later transactions of their session and
/// dropped (explicitly, and by the session's end), between row traffic of
/// other databases applied in parallel: target equals primary and a stock
/// replica, in STATEMENT and MIXED format, --batch 1 and 32.
#[test]
fn temporary_tables_replay_on_one_session_per_primary_session() {
    for format in [BinlogFormat::Statement, BinlogFormat::Mixed] {
        let p = common::primary(format);
        p.exec(
            "CREATE DATABASE tt; CREATE TABLE tt.r (id INT PRIMARY KEY, s INT, v VARCHAR(20));
             CREATE DATABASE o1; CREATE TABLE o1.t (id INT PRIMARY KEY);
             CREATE DATABASE o2; CREATE TABLE o2.t (id INT PRIMARY KEY)",
        )
        .unwrap();
        let mut a = p.conn().unwrap();
        let mut b = p.conn().unwrap();
        let mut other = p.conn().unwrap();
        other
            .query_drop("SET SESSION binlog_format = 'ROW'")
            .unwrap();
        let mut k = 0;
        let mut traffic = |c: &mut mysql::Conn| {
            for _ in 0..5 {
                k += 1;
                c.query_drop(format!(
                    "INSERT INTO o1.t VALUES ({k}); INSERT INTO o2.t VALUES ({k})"
                ))
                .unwrap();
            }
        };
        let steps: [(u8, &str); 9] = [
            (b'a', "USE tt"),
            (b'b', "USE tt"),
            (
                b'a',
                "CREATE TEMPORARY TABLE tmp (id INT PRIMARY KEY, v VARCHAR(20))",
            ),
            (
                b'b',
                "CREATE TEMPORARY TABLE tmp (id INT PRIMARY KEY, v VARCHAR(20))",
            ),
            (b'a', "INSERT INTO tmp VALUES (1, 'a1'), (2, 'a2')"),
            (b'b', "INSERT INTO tmp VALUES (1, 'b1')"),
            (
                b'a',
                "BEGIN; INSERT INTO r SELECT id, 1, v FROM tmp; COMMIT",
            ),
            (b'b', "INSERT INTO r SELECT id + 10, 2, v FROM tmp"),
            (b'b', "DROP TEMPORARY TABLE tmp"),
        ];
        for (who, sql) in steps {
            let c = if who == b'a' { &mut a } else { &mut b };
            c.query_drop(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            traffic(&mut other);
        }
        a.query_drop("UPDATE tmp SET v = 'a-upd'; INSERT INTO r SELECT id + 100, 1, v FROM tmp")
            .unwrap();
        // The session ends with its temporary table: the primary logs the drop.
        drop(a);
        drop(b);
        traffic(&mut other);
        drop(other);
        let dbs = ["tt", "o1", "o2"];
        let want = snapshot(&p, &dbs);
        let rows: Vec<i64> = p.query("SELECT COUNT(*) FROM tt.r").unwrap();
        assert_eq!(rows, [5]);
        let replica = stock_replica(&p);
        assert_eq!(snapshot(&replica, &dbs), want, "stock replica, {format:?}");
        for batch in [1, 32] {
            let t = common::replica_target();
            let mut o = options(&p, &t);
            o.batch_groups = batch;
            let r = run(o);
            assert!(r.drained, "{r:?}");
            assert_eq!(
                snapshot(&t, &dbs),
                want,
                "parapply, {format:?}, --batch {batch}"
            );
        }
    }
}

/// Item 5, stopping with a temporary table open: `--until` between its
/// creation and its use warns, naming it; the table is lost with the
/// session (as when the server's SQL thread restarts), and the next run
/// stops at the statement that uses it with the group's place.
#[test]
fn stopping_with_a_temporary_table_open_warns_and_the_next_use_stops_clearly() {
    let p = common::primary(BinlogFormat::Statement);
    p.exec("CREATE DATABASE tt; CREATE TABLE tt.r (id INT PRIMARY KEY)")
        .unwrap();
    let mut a = p.conn().unwrap();
    a.query_drop("USE tt; CREATE TEMPORARY TABLE tmp (id INT); INSERT INTO tmp VALUES (1)")
        .unwrap();
    let until = p.gtid_binlog_pos().unwrap();
    a.query_drop("INSERT INTO r SELECT id FROM tmp").unwrap();
    let using = p.gtid_binlog_pos().unwrap();
    drop(a);
    let t = common::replica_target();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parapply"))
        .args(["apply", "--workers", "4", "--source"])
        .arg(p.binlog_dir())
        .args(["--target", &format!("mysql://root@127.0.0.1:{}/", t.port())])
        .args(["--until", &until])
        .env_remove("PARAPPLY_TARGET_PASSWORD")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("the run stops with 1 temporary table(s) of primary sessions open")
            && err.contains("tt.tmp (server 1, session"),
        "{err}"
    );
    let e = engine::run(options(&p, &t)).unwrap_err().to_string();
    assert!(
        e.contains(&format!("apply failed at {using} (mariadb-bin.000001:"))
            && e.contains("1146")
            && e.contains("tmp' doesn't exist"),
        "{e}"
    );
}

/// Item 5, a primary that crashes with a temporary table open: after its
/// restart a new session may reuse the session id and the table name. As
/// the SQL thread does at the Format_description event of a server start,
/// parapply drops the earlier sessions' temporary tables first.
#[test]
fn temporary_tables_of_a_crashed_primary_are_dropped_at_its_restart() {
    let mut p = common::primary(BinlogFormat::Statement);
    p.exec("CREATE DATABASE tt; CREATE TABLE tt.r (id INT PRIMARY KEY, v VARCHAR(10))")
        .unwrap();
    let mut a = p.conn().unwrap();
    a.query_drop(
        "USE tt; CREATE TEMPORARY TABLE tmp (id INT, v VARCHAR(10));
         INSERT INTO tmp VALUES (1, 'before'); INSERT INTO r SELECT id, v FROM tmp",
    )
    .unwrap();
    let session: Vec<u32> = a.query("SELECT @@pseudo_thread_id").unwrap();
    p.kill9().unwrap();
    drop(a);
    p.restart().unwrap();
    let mut b = p.conn().unwrap();
    b.query_drop(format!(
        "SET pseudo_thread_id = {}; USE tt; CREATE TEMPORARY TABLE tmp (id INT, v VARCHAR(10));
         INSERT INTO tmp VALUES (2, 'after'); INSERT INTO r SELECT id, v FROM tmp",
        session[0]
    ))
    .unwrap();
    drop(b);
    assert_eq!(p.binlog_files().unwrap().len(), 2);
    let want = snapshot(&p, &["tt"]);
    let rows: Vec<(i64, String)> = p.query("SELECT id, v FROM tt.r ORDER BY id").unwrap();
    assert_eq!(rows, [(1, "before".into()), (2, "after".into())]);
    let t = common::replica_target();
    let r = run(options(&p, &t));
    assert!(r.drained, "{r:?}");
    assert_eq!(snapshot(&t, &["tt"]), want);
}
