//! Replay fidelity, item 6 of the issue: the statements a MIXED or
//! STATEMENT binlog carries for triggers, stored functions and procedures,
//! `CREATE … SELECT`, `INSERT … SELECT` across databases, transactions
//! mixing MyISAM/Aria and InnoDB, and XA are replayed as the server's SQL
//! thread replays them. One primary, one stock replica and one parapply
//! target per format, shared by all the cases: the target and the stock
//! replica each equal the primary in every table's checksum, column,
//! routine, trigger and view.
//!
//! Run: `cargo test --test replay_statements` (needs mariadb-server).

mod common;

use std::time::Duration;

use mysql::prelude::Queryable;
use parapply::apply::engine::{self, ApplyOptions};
use parapply::binlog::Source;
use parapply::sandbox::{BinlogFormat, Server, ServerOptions, Snapshot};
use parapply::wire::ConnectOptions;

/// The schema: InnoDB, MyISAM and Aria tables over three databases,
/// triggers (one writing another database's MyISAM table), a function
/// that writes, a pure one, a procedure that loops, and a view across
/// databases.
const SCHEMA: &[&str] = &[
    "CREATE DATABASE a6",
    "CREATE DATABASE b6",
    "CREATE DATABASE c6",
    "CREATE TABLE a6.t (id INT PRIMARY KEY, v VARCHAR(40), n INT) ENGINE=InnoDB",
    "CREATE TABLE a6.audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(60), at_id INT) \
     ENGINE=InnoDB",
    "CREATE TABLE b6.log (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(80)) ENGINE=MyISAM",
    "CREATE TABLE b6.cnt (k VARCHAR(10) PRIMARY KEY, n INT) ENGINE=Aria",
    "CREATE TABLE c6.s (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB",
    "CREATE TRIGGER a6.t_ai AFTER INSERT ON a6.t FOR EACH ROW \
     INSERT INTO a6.audit (what, at_id) VALUES (CONCAT('ins ', NEW.v), NEW.id)",
    "CREATE TRIGGER a6.t_bu BEFORE UPDATE ON a6.t FOR EACH ROW SET NEW.n = OLD.n + 1",
    "CREATE TRIGGER a6.t_ad AFTER DELETE ON a6.t FOR EACH ROW \
     INSERT INTO b6.log (msg) VALUES (CONCAT('del ', OLD.id))",
    "CREATE FUNCTION a6.next_n(key_ VARCHAR(10)) RETURNS INT MODIFIES SQL DATA DETERMINISTIC \
     BEGIN INSERT INTO b6.cnt VALUES (key_, 1) ON DUPLICATE KEY UPDATE n = n + 1; \
     RETURN (SELECT n FROM b6.cnt WHERE k = key_); END",
    "CREATE FUNCTION a6.label(x INT) RETURNS VARCHAR(40) DETERMINISTIC RETURN CONCAT('L', x * 2)",
    "CREATE PROCEDURE a6.fill(IN lo INT, IN hi INT) MODIFIES SQL DATA \
     BEGIN DECLARE i INT DEFAULT lo; \
     WHILE i <= hi DO INSERT INTO a6.t VALUES (i, a6.label(i), 0); SET i = i + 1; END WHILE; \
     UPDATE c6.s SET v = CONCAT(v, '+') WHERE id <= hi; END",
    "CREATE VIEW c6.v AS SELECT t.id, t.v, s.v AS sv FROM a6.t t JOIN c6.s s USING (id)",
];

/// The cases, in order, on one session.
const CASES: &[&str] = &[
    // Triggers, a procedure, functions called from statements.
    "USE c6",
    "INSERT INTO s VALUES (1, 's1'), (2, 's2'), (3, 's3'), (4, 's4')",
    "CALL a6.fill(1, 4)",
    "INSERT INTO a6.t VALUES (10, a6.label(10), a6.next_n('x'))",
    "SELECT a6.next_n('sel')",
    "DO a6.next_n('do')",
    "UPDATE a6.t SET v = 'upd' WHERE id = 2",
    "DELETE FROM a6.t WHERE id = 3",
    // INSERT … SELECT across databases, with a function and triggers, under
    // a default database that is neither the source nor the destination.
    "INSERT INTO a6.t SELECT id + 100, CONCAT('copy ', v), a6.next_n('y') FROM a6.t WHERE id < 5 \
     ORDER BY id",
    "USE b6",
    "INSERT INTO c6.s SELECT id + 10, v FROM a6.t WHERE id > 100 ORDER BY id",
    "INSERT INTO c6.s SELECT id + 20, v FROM a6.t WHERE id > 100 ORDER BY id \
     ON DUPLICATE KEY UPDATE v = 'dup'",
    // CREATE … SELECT, into InnoDB and MyISAM, from a join and a view.
    "CREATE TABLE c6.ctas ENGINE=InnoDB AS SELECT t.id, t.v, l.msg FROM a6.t t \
     LEFT JOIN b6.log l ON l.msg = CONCAT('del ', t.id) ORDER BY t.id",
    "CREATE TABLE b6.ctas_m (extra INT DEFAULT 7) ENGINE=MyISAM SELECT * FROM c6.v ORDER BY id",
    // Non-transactional and transactional tables in one transaction.
    "BEGIN",
    "INSERT INTO a6.t VALUES (20, 'mix', 0)",
    "INSERT INTO b6.log (msg) VALUES ('mixed')",
    "UPDATE a6.t SET v = 'mix2' WHERE id = 20",
    "COMMIT",
    "BEGIN",
    "INSERT INTO b6.log (msg) VALUES ('myisam first')",
    "INSERT INTO c6.s VALUES (50, 'after myisam')",
    "UPDATE b6.cnt SET n = n + 100 WHERE k = 'x'",
    "COMMIT",
    "BEGIN",
    "INSERT INTO a6.t VALUES (21, 'rolled back', 0)",
    "INSERT INTO b6.cnt VALUES ('rb', 1)",
    "ROLLBACK",
    // XA: two phases committed, rolled back after prepare, one phase.
    "XA START 'x1'",
    "INSERT INTO a6.t VALUES (30, 'xa1', 0)",
    "UPDATE c6.s SET v = 'xa' WHERE id = 1",
    "XA END 'x1'",
    "XA PREPARE 'x1'",
    "XA COMMIT 'x1'",
    "XA START 'x2'",
    "INSERT INTO a6.t VALUES (31, 'xa2', 0)",
    "XA END 'x2'",
    "XA PREPARE 'x2'",
    "XA ROLLBACK 'x2'",
    "XA START 'x3'",
    "INSERT INTO c6.s VALUES (60, 'one phase')",
    "XA END 'x3'",
    "XA COMMIT 'x3' ONE PHASE",
    // The session's default database dropped and created again: the
    // session has none in between, and the next statement in it must use
    // it again.
    "CREATE DATABASE d6",
    "USE d6",
    "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB",
    "INSERT INTO t VALUES (1)",
    "DROP DATABASE d6",
    "CREATE DATABASE d6",
    "USE d6",
    "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB",
    "INSERT INTO t VALUES (2)",
];

#[test]
fn routines_triggers_cross_database_dml_mixed_engines_and_xa_replay_like_the_sql_thread() {
    for format in [BinlogFormat::Statement, BinlogFormat::Mixed] {
        let p = common::primary(format);
        let mut c = p.conn().unwrap();
        for sql in SCHEMA.iter().chain(CASES) {
            c.query_drop(sql)
                .unwrap_or_else(|e| panic!("{format:?}: {sql}: {e}"));
        }
        drop(c);
        let text = common::binlog_text(&p);
        // The cases reached the binary log as statements where the format
        // allows: in STATEMENT format all of them; in MIXED the safe ones.
        for logged in [
            "INSERT INTO c6.s SELECT id + 10",
            "XA PREPARE",
            "CREATE TABLE c6.ctas",
        ] {
            assert!(text.contains(logged), "{format:?}: {logged} not logged");
        }
        if format == BinlogFormat::Statement {
            assert!(
                text.contains("SELECT `a6`.`next_n`(_utf8mb4'sel'"),
                "{format:?}: {:?}",
                text.lines()
                    .filter(|l| l.contains("next_n"))
                    .collect::<Vec<_>>()
            );
            assert!(text.contains("INSERT INTO a6.t SELECT id + 100"));
        }
        let want = Snapshot::of(&p).unwrap();
        assert_eq!(want.triggers.len(), 3, "{want:?}");
        assert_eq!(want.routines.len(), 3, "{want:?}");
        assert_eq!(want.views.len(), 1, "{want:?}");
        assert!(want.checksums.len() >= 8, "{want:?}");
        let cnt: Vec<(String, i64)> = p.query("SELECT k, n FROM b6.cnt ORDER BY k").unwrap();
        assert!(cnt.contains(&("rb".into(), 1)), "{cnt:?}");

        let replica = Server::start(ServerOptions::new().server_id(3)).unwrap();
        replica.replicate_from(&p).unwrap();
        replica.wait_caught_up(&p, common::HANG_GUARD).unwrap();
        let t = common::replica_target();
        let mut o = ApplyOptions::new(
            Source::dir(p.binlog_dir()).unwrap(),
            ConnectOptions::new("127.0.0.1", t.port(), "root"),
        );
        o.workers = 4;
        o.reconnect_timeout = Duration::from_secs(30);
        let r = engine::run(o).unwrap_or_else(|e| panic!("{format:?}: apply failed: {e}"));
        assert!(r.drained, "{r:?}");
        let stock = Snapshot::of(&replica).unwrap();
        assert_eq!(
            want.differences(&stock),
            Vec::<String>::new(),
            "stock replica, {format:?}"
        );
        let ours = Snapshot::of(&t).unwrap().without_database("parapply");
        assert_eq!(
            want.differences(&ours),
            Vec::<String>::new(),
            "parapply, {format:?}"
        );
    }
}

/// `CREATE TABLE … SELECT` in ROW format is one group: `BEGIN`, the
/// `CREATE TABLE`, its rows, `COMMIT`. On the target the `CREATE TABLE`
/// commits by itself; its rows must still be logged under the group's
/// GTID, not under the next sequence number (the primary's next group, a
/// DDL here, would then look applied after a restart and be skipped). A
/// run that stops right after it and a second run: the target equals the
/// primary, and its binary log holds no GTID of the primary's server that
/// the primary did not write.
#[test]
fn create_select_in_row_format_keeps_its_gtid_and_the_next_ddl_applies_after_a_restart() {
    let p = common::primary(BinlogFormat::Row);
    p.exec(
        "CREATE DATABASE cs; CREATE TABLE cs.src (id INT PRIMARY KEY) ENGINE=InnoDB;
         INSERT INTO cs.src VALUES (1), (2), (3)",
    )
    .unwrap();
    p.exec("CREATE TABLE cs.copy ENGINE=InnoDB SELECT id * 10 AS id FROM cs.src")
        .unwrap();
    let ctas = p.gtid_binlog_pos().unwrap();
    p.exec("DROP TABLE cs.src; CREATE TABLE cs.after (id INT)")
        .unwrap();
    let want = Snapshot::of(&p).unwrap();
    assert_eq!(want.checksums.len(), 2, "{want:?}");
    let t = common::replica_target();
    let options = |until: Option<&str>| {
        let mut o = ApplyOptions::new(
            Source::dir(p.binlog_dir()).unwrap(),
            ConnectOptions::new("127.0.0.1", t.port(), "root"),
        );
        o.until = until.map(|u| u.parse().unwrap());
        o
    };
    engine::run(options(Some(&ctas))).unwrap();
    let copy: Vec<i64> = t.query("SELECT id FROM cs.copy ORDER BY id").unwrap();
    assert_eq!(copy, [10, 20, 30]);
    let logged: Vec<String> = t.query("SELECT @@GLOBAL.gtid_binlog_pos").unwrap();
    assert!(
        logged[0].split(',').any(|g| g == ctas),
        "{logged:?} vs {ctas}"
    );
    let r = engine::run(options(None)).unwrap();
    assert_eq!(r.applied, 2, "{r:?}");
    let ours = Snapshot::of(&t).unwrap().without_database("parapply");
    assert_eq!(want.differences(&ours), Vec::<String>::new());
    let (primary_pos, target_pos) = (p.gtid_binlog_pos().unwrap(), t.gtid_binlog_pos().unwrap());
    assert!(
        target_pos.split(',').any(|g| g == primary_pos),
        "{target_pos} vs {primary_pos}"
    );
}
