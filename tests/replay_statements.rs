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
/// `CREATE TABLE`, its rows, `COMMIT`. On the target its rows must be
/// logged under the group's GTID, not under the next sequence number (the
/// primary's next group, a DDL here, would then look applied after a
/// restart and be skipped). A
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

/// The GTID of each `Gtid` event of `s`'s binary logs, in order, with the
/// types of the events of its group (`SHOW BINLOG EVENTS`).
fn logged_groups(s: &Server) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for f in s.binlog_files().unwrap() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let rows: Vec<mysql::Row> = s.query(&format!("SHOW BINLOG EVENTS IN '{name}'")).unwrap();
        for r in rows {
            let kind: String = r.get("Event_type").unwrap();
            let info: String = r.get("Info").unwrap();
            if kind == "Gtid" {
                let gtid = info.rsplit(' ').next().unwrap().to_string();
                out.push((gtid, Vec::new()));
            } else if let Some(g) = out.last_mut() {
                g.1.push(format!(
                    "{kind}: {}",
                    info.chars().take(40).collect::<String>()
                ));
            }
        }
    }
    out
}

/// `CREATE TABLE … SELECT` in ROW format on a target with
/// `gtid_strict_mode=ON` (one worker: strict mode allows no other order):
/// each group is logged once there, the `CREATE TABLE` and its rows under
/// the group's GTID together, as the stock replica logs it (InnoDB,
/// MyISAM, Aria, `CREATE OR REPLACE`, an auto-increment key, a named
/// foreign key). The applier
/// is killed (failpoint `ctas-staged`: SIGKILL) after the rows of the
/// first one are staged and before its statement ran; the restart applies
/// it once, and everything else, and leaves no staging table.
#[test]
fn create_select_is_one_gtid_on_a_strict_target_and_a_kill_before_its_statement_loses_nothing() {
    let p = common::primary(BinlogFormat::Row);
    // The target's own GTIDs (its progress tables) come first in its
    // domain 0: strict mode wants the primary's to be higher.
    for sql in [
        "SET @@session.gtid_seq_no=100; CREATE DATABASE cs2",
        "CREATE TABLE cs2.src (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB",
        "INSERT INTO cs2.src VALUES (1, 'one'), (2, NULL), (3, 'drei'), (0, 'zero')",
        "CREATE TABLE cs2.copy (KEY (v)) ENGINE=InnoDB SELECT id * 10 AS id, v FROM cs2.src",
        "CREATE TABLE cs2.ai (n INT AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB \
         SELECT id + 100 AS n FROM cs2.src",
        "CREATE TABLE cs2.m ENGINE=MyISAM SELECT v, LENGTH(v) AS l FROM cs2.src",
        "CREATE OR REPLACE TABLE cs2.copy ENGINE=Aria SELECT id FROM cs2.src WHERE id > 1",
        "CREATE TABLE cs2.par (id INT PRIMARY KEY) ENGINE=InnoDB SELECT id FROM cs2.src",
        "CREATE TABLE cs2.fk (CONSTRAINT fk1 FOREIGN KEY (p) REFERENCES cs2.par (id)) \
         ENGINE=InnoDB SELECT id AS p FROM cs2.src WHERE id > 0",
        "CREATE TABLE cs2.after (id INT)",
    ] {
        p.exec(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let want = Snapshot::of(&p).unwrap();
    assert_eq!(want.checksums.len(), 7, "{want:?}");
    let primary_groups = logged_groups(&p);
    let t = Server::start(
        ServerOptions::new()
            .server_id(2)
            .log_bin("target-bin")
            .log_slave_updates(true)
            .gtid_strict_mode(true),
    )
    .unwrap();
    let apply = |failpoint: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_parapply"));
        c.args(["apply", "--workers", "1", "--source"])
            .arg(p.binlog_dir())
            .args(["--target", &format!("mysql://root@127.0.0.1:{}/", t.port())])
            .env("RUST_LOG", "warn");
        match failpoint {
            Some(f) => c.env("PARAPPLY_FAILPOINT", f),
            None => c.env_remove("PARAPPLY_FAILPOINT"),
        };
        c.output().unwrap()
    };
    let killed = apply(Some("ctas-staged"));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        killed.status.signal(),
        Some(9),
        "the failpoint did not kill the applier: {killed:?}"
    );
    // Killed with the rows staged: the table is not there, its GTID not
    // logged; the staging table is.
    let tables: Vec<String> = t
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'cs2' ORDER BY 1")
        .unwrap();
    assert_eq!(tables, ["#parapply-ctas", "src"], "{killed:?}");
    let done = apply(None);
    assert!(done.status.success(), "{done:?}");
    let ours = Snapshot::of(&t).unwrap().without_database("parapply");
    assert_eq!(want.differences(&ours), Vec::<String>::new());
    let staging: Vec<String> = t
        .query("SELECT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_NAME = '#parapply-ctas'")
        .unwrap();
    assert_eq!(staging, Vec::<String>::new());
    // Every GTID of the primary once on the target, each group with the
    // same kinds of events in the same order (aside: the Annotate_rows
    // events, which parapply's sessions do not write, and the row events of
    // its progress table).
    let ours: Vec<(String, Vec<String>)> = logged_groups(&t)
        .into_iter()
        .filter(|(g, _)| g.starts_with("0-1-"))
        .collect();
    let kinds = |groups: &[(String, Vec<String>)]| -> Vec<(String, Vec<String>)> {
        groups
            .iter()
            .map(|(g, evs)| {
                let mut k = Vec::new();
                let mut progress = false;
                for e in evs {
                    let kind = e.split(':').next().unwrap().to_string();
                    if kind == "Table_map" {
                        progress = e.contains("(parapply.");
                    }
                    if kind != "Annotate_rows" && !(progress && kind != "Xid") {
                        k.push(kind);
                    }
                }
                (g.clone(), k)
            })
            .collect()
    };
    assert_eq!(kinds(&ours), kinds(&primary_groups));
    let ctas = ours
        .iter()
        .filter(|(_, evs)| {
            evs.first().is_some_and(|e| e.starts_with("Query: CREATE"))
                && evs.iter().any(|e| e.starts_with("Write_rows"))
        })
        .count();
    assert_eq!(ctas, 6, "{ours:#?}");
}
