//! `parapply::wire` against real throwaway servers: authentication with and
//! without a password (and a wrong one), with MariaDB's ed25519 plugin, multi-statement batches with an
//! error in a later statement, bytes that are not UTF-8, packets of 16 MiB
//! and more in both directions (and exactly at the split boundary), NULLs in
//! result sets, a `BINLOG` statement at the end of a batch, timeouts, and a
//! dead port.
//!
//! Run: `cargo test --test wire` (needs MariaDB server binaries; see
//! `parapply::sandbox`).

use std::net::TcpListener;
use std::time::Duration;

use base64::Engine;
use parapply::binlog::{BinlogReader, EventType, ReaderOptions, Source};
use parapply::sandbox::{Server, ServerOptions};
use parapply::wire::{Conn, ConnectOptions, Secret, WireError};

fn root(server: &Server) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", server.port(), "root")
}

fn connect(server: &Server) -> Conn {
    Conn::connect(&root(server)).expect("connect as root")
}

fn text(v: &Option<Vec<u8>>) -> Option<String> {
    v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
}

#[test]
fn logs_in_with_and_without_a_password_and_refuses_a_wrong_one() {
    let server = Server::start(ServerOptions::new()).unwrap();
    let mut c = connect(&server);
    assert!(
        c.server_version().contains("MariaDB"),
        "{}",
        c.server_version()
    );
    c.ping().unwrap();
    let id = c.query_value("SELECT CONNECTION_ID()").unwrap();
    assert_eq!(id, Some(c.connection_id().to_string()));
    c.execute(
        b"CREATE USER 'app'@'%' IDENTIFIED BY 's3cr3t-pw'; \
          CREATE USER 'nopw'@'%'; CREATE DATABASE appdb; \
          GRANT ALL ON appdb.* TO 'app'@'%'",
    )
    .unwrap();

    let mut o = ConnectOptions::new("127.0.0.1", server.port(), "app");
    o.password = Some(Secret::new("s3cr3t-pw"));
    o.database = Some("appdb".into());
    let mut app = Conn::connect(&o).unwrap();
    assert_eq!(
        app.query_value("SELECT DATABASE()").unwrap().as_deref(),
        Some("appdb")
    );
    assert_eq!(
        app.query_value("SELECT CURRENT_USER()").unwrap().as_deref(),
        Some("app@%")
    );

    let nopw = ConnectOptions::new("127.0.0.1", server.port(), "nopw");
    Conn::connect(&nopw).unwrap().ping().unwrap();

    o.password = Some(Secret::new("wrong-pw"));
    let e = Conn::connect(&o).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            WireError::Auth {
                code: Some(1045),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        msg.contains("Access denied") && msg.contains("`app`"),
        "{msg}"
    );
    assert!(
        !msg.contains("wrong-pw") && !format!("{e:?}").contains("wrong-pw"),
        "{msg}"
    );
    assert!(!e.is_connection_lost());

    // No password for a user that has one.
    o.password = None;
    let e = Conn::connect(&o).unwrap_err();
    assert_eq!(e.code(), Some(1045), "{e}");

    // MariaDB's ed25519 plugin, reached through an AuthSwitchRequest (the
    // greeting offers mysql_native_password). Several logins: each signs
    // another nonce.
    c.execute(
        b"INSTALL SONAME 'auth_ed25519'; \
          CREATE USER 'ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-s3cret')",
    )
    .expect("MariaDB's auth_ed25519 plugin is needed (shipped with mariadb-server)");
    let mut o = ConnectOptions::new("127.0.0.1", server.port(), "ed");
    o.password = Some(Secret::new("ed-s3cret"));
    for _ in 0..5 {
        let mut ed = Conn::connect(&o).unwrap();
        assert_eq!(
            ed.query_value("SELECT CURRENT_USER()").unwrap().as_deref(),
            Some("ed@%")
        );
    }
    o.password = Some(Secret::new("not-it"));
    let e = Conn::connect(&o).unwrap_err();
    assert_eq!(e.code(), Some(1045), "{e}");
    assert!(!e.to_string().contains("not-it"), "{e}");
}

#[test]
fn multi_statement_batches_report_the_failing_statement() {
    let server = Server::start(ServerOptions::new()).unwrap();
    let mut c = connect(&server);
    let out = c
        .execute(b"CREATE DATABASE m; CREATE TABLE m.t (id INT PRIMARY KEY, v TEXT); INSERT INTO m.t VALUES (1, 'a'), (2, NULL); SELECT id, v FROM m.t ORDER BY id; DO 1")
        .unwrap();
    assert_eq!(out.len(), 5);
    assert_eq!(out[2].affected_rows, 2);
    assert_eq!(out[3].columns, ["id", "v"]);
    let rows: Vec<Vec<Option<String>>> = out[3]
        .rows
        .iter()
        .map(|r| r.iter().map(text).collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![Some("1".to_owned()), Some("a".to_owned())],
            vec![Some("2".to_owned()), None]
        ]
    );
    assert!(out[4].rows.is_empty() && out[4].columns.is_empty());

    let e = c
        .execute(b"INSERT INTO m.t VALUES (3, 'c'); SELECT 1; INSERT INTO m.t VALUES (1, 'dup'); INSERT INTO m.t VALUES (4, 'never')")
        .unwrap_err();
    match &e {
        WireError::Server {
            code,
            state,
            message,
            statement,
        } => {
            assert_eq!(
                (*code, state.as_str(), *statement),
                (1062, "23000", 2),
                "{e}"
            );
            assert!(message.contains("Duplicate entry '1'"), "{message}");
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    assert!(e.to_string().contains("statement 3 of the batch"), "{e}");
    assert!(!e.is_connection_lost() && !e.is_deadlock());
    // The connection is still in step; the statement after the error never ran.
    let n = c.query_value("SELECT COUNT(*) FROM m.t").unwrap();
    assert_eq!(n.as_deref(), Some("3"));
    // An error in a result set's statement (the first one).
    let e = c.execute(b"SELECT * FROM m.nope; SELECT 1").unwrap_err();
    assert!(
        matches!(
            e,
            WireError::Server {
                code: 1146,
                statement: 0,
                ..
            }
        ),
        "{e:?}"
    );
    // NULLs and empty strings are told apart.
    let rows = c
        .query_rows("SELECT NULL, '', 1 UNION ALL SELECT 'x', NULL, NULL")
        .unwrap();
    assert_eq!(
        rows,
        vec![
            vec![None, Some(vec![]), Some(b"1".to_vec())],
            vec![Some(b"x".to_vec()), None, None]
        ]
    );
}

#[test]
fn bytes_that_are_not_utf8_round_trip() {
    let server = Server::start(ServerOptions::new()).unwrap();
    let mut c = connect(&server);
    let mut sql = b"SET NAMES latin1; CREATE DATABASE l; CREATE TABLE l.t (s VARCHAR(20)) CHARSET latin1; INSERT INTO l.t VALUES ('caf".to_vec();
    sql.extend_from_slice(&[0xe9, 0xff, 0x80]);
    sql.extend_from_slice(b"')");
    c.execute(&sql).unwrap();
    let rows = c.query_rows("SELECT s, HEX(s) FROM l.t").unwrap();
    assert_eq!(rows[0][0].as_deref(), Some(&b"caf\xe9\xff\x80"[..]));
    assert_eq!(text(&rows[0][1]).as_deref(), Some("636166E9FF80"));
}

#[test]
fn packets_of_16_mib_and_more_both_ways() {
    let server = Server::start(ServerOptions::new().arg("--max-allowed-packet=64M")).unwrap();
    let mut c = connect(&server);
    // A 20 MiB statement (two packets) and a 20 MiB value back.
    let n = 20 << 20;
    let mut sql =
        b"CREATE DATABASE b; CREATE TABLE b.t (v LONGBLOB); INSERT INTO b.t VALUES ('".to_vec();
    sql.extend(std::iter::repeat_n(b'x', n));
    sql.extend_from_slice(b"')");
    c.execute(&sql).unwrap();
    let rows = c.query_rows("SELECT v, LENGTH(v) FROM b.t").unwrap();
    assert_eq!(rows[0][0].as_ref().map(Vec::len), Some(n));
    assert_eq!(text(&rows[0][1]), Some(n.to_string()));

    // A statement whose packet is exactly 2^24-1 bytes: an empty packet must follow.
    let head = b"SELECT LENGTH('";
    let tail = b"')";
    let fill = 0xff_ffff - 1 - head.len() - tail.len();
    let mut sql = head.to_vec();
    sql.extend(std::iter::repeat_n(b'y', fill));
    sql.extend_from_slice(tail);
    assert_eq!(
        c.query_value(std::str::from_utf8(&sql).unwrap()).unwrap(),
        Some(fill.to_string())
    );

    // A row packet of exactly 2^24-1 bytes (4-byte length prefix + value).
    let len = 0xff_ffff - 4;
    let rows = c.query_rows(&format!("SELECT REPEAT('z', {len})")).unwrap();
    assert_eq!(rows[0][0].as_ref().map(Vec::len), Some(len));
    c.ping().unwrap();
}

#[test]
fn binlog_statement_at_the_end_of_a_batch() {
    let server = Server::start(ServerOptions::new().log_bin("mariadb-bin")).unwrap();
    let files = server.binlog_files().unwrap();
    let mut r = BinlogReader::open(
        Source::Files(vec![files[0].clone()]),
        ReaderOptions::default(),
    )
    .unwrap();
    let fde = r.next().unwrap().expect("an FDE");
    assert_eq!(fde.event_type(), EventType::FORMAT_DESCRIPTION);
    let b64 = base64::engine::general_purpose::STANDARD.encode(fde.bytes);
    let mut c = connect(&server);
    let sql = format!("SET @a = 1; SET @b = 2; BINLOG '{b64}'");
    let out = c.execute(sql.as_bytes()).unwrap();
    assert_eq!(out.len(), 3);
    c.ping().unwrap();
    assert_eq!(
        c.query_value("SELECT @a + @b").unwrap().as_deref(),
        Some("3")
    );
}

#[test]
fn timeouts_and_dead_ports_are_clear_io_errors() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = Conn::connect(&ConnectOptions::new("127.0.0.1", port, "root")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, WireError::Io { .. }), "{e:?}");
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("connect"),
        "{msg}"
    );
    assert!(e.is_connection_lost());

    let server = Server::start(ServerOptions::new()).unwrap();
    let mut o = root(&server);
    o.read_timeout = Some(Duration::from_millis(300));
    let mut c = Conn::connect(&o).unwrap();
    // Without the read timeout the query would return its row after 5 s.
    let e = c.query_rows("SELECT SLEEP(5)").unwrap_err();
    assert!(e.is_timeout() && e.is_connection_lost(), "{e:?}");
    // The connection is unusable after a half-done exchange.
    assert!(c.ping().unwrap_err().is_connection_lost());

    // Over the Unix socket too.
    let mut o = root(&server);
    o.socket = Some(server.socket().to_path_buf());
    assert!(Conn::connect(&o)
        .unwrap()
        .query_value("SELECT @@socket")
        .unwrap()
        .is_some());
}
