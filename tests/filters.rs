//! Replication filters against real servers (issue 16, item 3):
//! `--include-db`, `--exclude-db`, `--include-table`/`--exclude-table` with
//! LIKE wildcards. Row events are filtered per Table_map, also inside one
//! transaction and one statement that touch kept and filtered tables;
//! statements by their default database; groups the filters empty still
//! move the watermarks (the final GTID position is the primary's, and a
//! second run applies nothing).
//!
//! Run: `cargo test --test filters` (needs mariadb-server).

mod common;

use parapply::sandbox::{BinlogFormat, Server, ServerOptions};

fn apply(p: &Server, t: &Server, extra: &[&str]) -> serde_json::Value {
    common::apply_json(p, t, extra)
}

fn count(s: &Server, table: &str) -> u64 {
    s.query_first::<u64>(&format!("SELECT COUNT(*) FROM {table}"))
        .unwrap()
        .unwrap()
}

fn schemas(s: &Server) -> Vec<String> {
    s.databases()
        .unwrap()
        .into_iter()
        .filter(|d| d != "parapply" && d != "test")
        .collect()
}

#[test]
fn row_events_are_filtered_per_table_map_and_watermarks_move() {
    let p = Server::start(
        ServerOptions::new()
            .server_id(1)
            .log_bin("mariadb-bin")
            .binlog_format(BinlogFormat::Row),
    )
    .unwrap();
    let t = common::replica_target();
    p.exec(
        "CREATE DATABASE a; CREATE DATABASE b; CREATE DATABASE c;
         USE a; CREATE TABLE t (i INT PRIMARY KEY, v INT); CREATE TABLE t_1 (i INT PRIMARY KEY);
         USE b; CREATE TABLE t (i INT PRIMARY KEY); CREATE TABLE secret_1 (i INT PRIMARY KEY);
         USE c; CREATE TABLE t (i INT PRIMARY KEY, v INT)",
    )
    .unwrap();
    for i in 0..10 {
        p.exec(&format!(
            "INSERT INTO a.t VALUES ({i}, 0); INSERT INTO a.t_1 VALUES ({i});
             INSERT INTO b.t VALUES ({i}); INSERT INTO b.secret_1 VALUES ({i});
             INSERT INTO c.t VALUES ({i}, 0)"
        ))
        .unwrap();
    }
    // One transaction over kept and filtered tables; one statement (a
    // multi-table UPDATE: c's rows close the statement) over both.
    p.exec(
        "BEGIN; INSERT INTO c.t VALUES (100, 0); INSERT INTO a.t VALUES (100, 0);
         INSERT INTO b.secret_1 VALUES (100); INSERT INTO b.t VALUES (100); COMMIT;
         UPDATE a.t JOIN c.t USING (i) SET a.t.v = a.t.v + 1, c.t.v = c.t.v + 1",
    )
    .unwrap();
    // The last groups are filtered out whole.
    p.exec("INSERT INTO c.t VALUES (200, 0); INSERT INTO b.secret_1 VALUES (200)")
        .unwrap();

    let r = apply(
        &p,
        &t,
        &[
            "--include-db",
            "a,b",
            "--exclude-table",
            "b.secret%",
            "--include-table",
            "a.t%,b.%",
        ],
    );
    // c's two DDL (the server logs CREATE DATABASE with the database it
    // creates as the default one), the 10 + 1 c-only and the 10 + 1
    // secret-only inserts.
    assert_eq!(r["filtered"], 24, "{r}");
    assert_eq!(r["gtid_position"], p.gtid_binlog_pos().unwrap(), "{r}");
    assert_eq!(schemas(&t), ["a", "b"]);
    assert_eq!(
        t.checksums(&["a"]).unwrap(),
        p.checksums(&["a"]).unwrap(),
        "a is replicated whole, the multi-table UPDATE included"
    );
    assert_eq!(count(&t, "b.t"), 11);
    // The table's DDL is a statement (not filtered by table); its rows are.
    assert_eq!(count(&t, "b.secret_1"), 0);
    let again = apply(&p, &t, &["--include-db", "a,b"]);
    assert_eq!(again["applied"], 0, "{again}");
}

#[test]
fn statements_are_filtered_by_their_default_database() {
    let p = Server::start(
        ServerOptions::new()
            .server_id(1)
            .log_bin("mariadb-bin")
            .binlog_format(BinlogFormat::Statement),
    )
    .unwrap();
    let t = common::replica_target();
    p.exec(
        "CREATE DATABASE a; CREATE DATABASE c;
         USE a; CREATE TABLE t (i INT PRIMARY KEY); USE c; CREATE TABLE t (i INT PRIMARY KEY)",
    )
    .unwrap();
    for i in 0..10 {
        p.exec(&format!(
            "USE a; INSERT INTO t VALUES ({i}); USE c; INSERT INTO t VALUES ({i})"
        ))
        .unwrap();
    }
    let r = apply(&p, &t, &["--exclude-db", "c"]);
    assert_eq!(r["gtid_position"], p.gtid_binlog_pos().unwrap(), "{r}");
    // (CREATE DATABASE c is logged with c as its default database.)
    assert_eq!(schemas(&t), ["a"]);
    assert_eq!(t.checksums(&["a"]).unwrap(), p.checksums(&["a"]).unwrap());
    assert_eq!(r["filtered"], 12, "{r}");
}

/// `--rewrite-db a->a2`: row events (Table_map) and statements (default
/// database) land in a2; the other rules see the new name.
#[test]
fn rewrite_db_renames_table_maps_and_default_databases() {
    for format in [BinlogFormat::Row, BinlogFormat::Statement] {
        let p = Server::start(
            ServerOptions::new()
                .server_id(1)
                .log_bin("mariadb-bin")
                .binlog_format(format),
        )
        .unwrap();
        let t = common::replica_target();
        p.exec("CREATE DATABASE a; USE a; CREATE TABLE t (i INT PRIMARY KEY, v INT)")
            .unwrap();
        for i in 0..10 {
            p.exec(&format!("USE a; INSERT INTO t VALUES ({i}, {i})"))
                .unwrap();
        }
        p.exec("USE a; UPDATE t SET v = v * 2 WHERE i < 5").unwrap();
        // The statement `CREATE DATABASE a` itself still creates a.
        t.exec("CREATE DATABASE a2").unwrap();
        let r = apply(&p, &t, &["--rewrite-db", "a->a2", "--exclude-table", "a.%"]);
        assert_eq!(r["gtid_position"], p.gtid_binlog_pos().unwrap(), "{r}");
        let want: Vec<u64> = p.checksums(&["a"]).unwrap().into_values().collect();
        let got: Vec<u64> = t.checksums(&["a2"]).unwrap().into_values().collect();
        assert_eq!(got, want, "{format:?}");
        assert_eq!(count(&t, "a2.t"), 10);
    }
}
