//! The mirror's binlog server against the clients no one here wrote, with
//! real throwaway servers: `mariadb-binlog --read-from-remote-server --raw`
//! writes the primary's files byte for byte; stock MariaDB replicas
//! replicate from it by file and position and by GTID and end with the
//! primary's checksums; a mirror of a mirror is byte-identical; all of it
//! while the served mirror still receives from the primary and across
//! rotations. Then the faults: a client gone mid-event, a file or position
//! the mirror does not have (1236 naming it), 16+ concurrent dumps, a wrong
//! password, no anonymous access, unknown commands and queries, and what is
//! served under `--sync every`.
//!
//! Run: `cargo test --test mirror_serve` (needs MariaDB server binaries and
//! `mariadb-binlog`; see `parapply::sandbox`).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parapply::mirror::serve::{
    Published, ServeError, ServeOptions, Server as BinlogServer, Service,
};
use parapply::mirror::{self, MirrorError, MirrorOptions, SyncPolicy};
mod common;

use common::{mirror_primary as primary, two_db_workload as workload, HANG_GUARD};
use parapply::sandbox::{Server, ServerOptions};
use parapply::wire::{Conn, ConnectOptions, Secret, WireError};

const USER: &str = "repl";
const PASSWORD: &str = "mirror-secret-42";

/// A mirror of `p` written in this process, served over the protocol.
struct Served {
    addr: SocketAddr,
    svc: Arc<Service>,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<Result<(), ServeError>>>,
    mirror: Option<JoinHandle<Result<(), MirrorError>>>,
}

impl Served {
    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops the mirror and the server; the mirror's result.
    fn stop(mut self) -> Result<(), MirrorError> {
        self.stop.store(true, Ordering::SeqCst);
        let m = self.mirror.take().map(|h| h.join().unwrap());
        if let Some(h) = self.server.take() {
            h.join().unwrap().unwrap();
        }
        m.unwrap_or(Ok(()))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.mirror.take() {
            let _ = h.join();
        }
        if let Some(h) = self.server.take() {
            let _ = h.join();
        }
    }
}

fn serve_options(dir: &Path, stop: &Arc<AtomicBool>) -> ServeOptions {
    let mut so = ServeOptions::new(dir, "127.0.0.1:0", USER, Secret::new(PASSWORD));
    so.stop = stop.clone();
    so
}

/// `parapply mirror --serve`, as a library: the mirror of `source` (a
/// primary or another binlog server) written into `dir` and served.
fn mirror_and_serve(
    source: ConnectOptions,
    dir: &Path,
    server_id: u32,
    sync: SyncPolicy,
) -> Served {
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(Published::new());
    let mut mo = MirrorOptions::new(source, dir, server_id);
    mo.sync = sync;
    mo.heartbeat = Duration::from_millis(200);
    mo.stop = Some(stop.clone());
    mo.publish = Some(published.clone());
    let mirror = thread::spawn(move || mirror::run(&mo));
    let server = BinlogServer::bind(serve_options(dir, &stop), Some(published)).unwrap();
    let addr = server.local_addr().unwrap();
    let svc = server.service();
    let server = thread::spawn(move || server.run());
    Served {
        addr,
        svc,
        dir: dir.to_path_buf(),
        stop,
        server: Some(server),
        mirror: Some(mirror),
    }
}

fn primary_source(p: &Server) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", p.port(), "root")
}

/// `parapply serve --dir`, as a library.
fn serve_dir(dir: &Path) -> Served {
    let stop = Arc::new(AtomicBool::new(false));
    let server = BinlogServer::bind(serve_options(dir, &stop), None).unwrap();
    let addr = server.local_addr().unwrap();
    let svc = server.service();
    let server = thread::spawn(move || server.run());
    Served {
        addr,
        svc,
        dir: dir.to_path_buf(),
        stop,
        server: Some(server),
        mirror: None,
    }
}

fn served_client(port: u16) -> ConnectOptions {
    let mut o = ConnectOptions::new("127.0.0.1", port, USER);
    o.password = Some(Secret::new(PASSWORD));
    o
}

/// `mariadb-binlog --read-from-remote-server --raw` from `file` to the
/// last file, into `out/`. The password goes in the environment, not on
/// the command line.
fn mariadb_binlog_raw(
    port: u16,
    user: &str,
    password: &str,
    file: &str,
    out: &Path,
    extra: &[&str],
) -> Output {
    fs::create_dir_all(out).unwrap();
    Command::new("mariadb-binlog")
        .arg("--read-from-remote-server")
        .arg("--raw")
        .arg("--host=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--user={user}"))
        .arg("--skip-ssl")
        .arg(format!("--result-file={}/", out.display()))
        .args(extra)
        .arg(file)
        .env("MYSQL_PWD", password)
        .stdin(Stdio::null())
        .output()
        .expect("mariadb-binlog is needed for this test")
}

fn names(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The first difference between two files, if any.
fn differs(a: &Path, b: &Path) -> Option<String> {
    let x = match fs::read(a) {
        Ok(x) => x,
        Err(e) => return Some(format!("{}: {e}", a.display())),
    };
    let y = match fs::read(b) {
        Ok(y) => y,
        Err(e) => return Some(format!("{}: {e}", b.display())),
    };
    if x == y {
        return None;
    }
    let at = x.iter().zip(&y).position(|(p, q)| p != q);
    Some(format!(
        "{} ({} bytes) and {} ({} bytes) differ, first at {at:?}",
        a.display(),
        x.len(),
        b.display(),
        y.len()
    ))
}

/// Waits until every file of `primary` is in `dir` with the same bytes
/// (the mirror has caught up).
fn wait_mirrored(primary: &Server, dir: &Path) {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let files = primary.binlog_files().unwrap();
        let bad = files
            .iter()
            .find_map(|f| differs(f, &dir.join(f.file_name().unwrap())));
        match bad {
            None => return,
            Some(e) if Instant::now() > deadline => panic!("mirror not caught up: {e}"),
            Some(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn mariadb_binlog_reads_the_primarys_bytes() {
    let p = primary(16384);
    workload(&p, 0, 200);
    p.exec("FLUSH BINARY LOGS").unwrap();
    workload(&p, 200, 50);
    // The primary writes a binlog checkpoint into its newest file on its own,
    // some time after a rotation: wait for it, or the two reads below could
    // see the file before and after it.
    p.wait_binlog_settled(HANG_GUARD).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let s = mirror_and_serve(
        primary_source(&p),
        &tmp.path().join("m"),
        101,
        SyncPolicy::Every,
    );
    wait_mirrored(&p, &s.dir);
    let files = p.binlog_files().unwrap();
    assert!(files.len() >= 4, "want several files: {:?}", names(&files));
    let first = names(&files)[0].clone();

    // The same client, the same way, against the primary and the mirror.
    let from_primary = tmp.path().join("from-primary");
    let out = mariadb_binlog_raw(
        p.port(),
        "root",
        "",
        &first,
        &from_primary,
        &["--to-last-log"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_mirror = tmp.path().join("from-mirror");
    let out = mariadb_binlog_raw(
        s.port(),
        USER,
        PASSWORD,
        &first,
        &from_mirror,
        &["--to-last-log"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (i, f) in files.iter().enumerate() {
        let name = f.file_name().unwrap();
        assert_eq!(
            differs(&from_primary.join(name), &from_mirror.join(name)),
            None,
            "mariadb-binlog's copies of {name:?}"
        );
        if i + 1 < files.len() {
            // Closed files: exactly the primary's.
            assert_eq!(differs(f, &from_mirror.join(name)), None);
        }
    }
    s.stop().unwrap();
}

/// A stock MariaDB replica of the binlog server at `port`.
fn replica(server_id: u32) -> Server {
    Server::start(ServerOptions::new().server_id(server_id)).expect("start a replica")
}

fn change_master(r: &Server, port: u16, how: &str) {
    r.exec(&format!(
        "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {port}, \
         MASTER_USER = '{USER}', MASTER_PASSWORD = '{PASSWORD}', MASTER_CONNECT_RETRY = 1, \
         MASTER_HEARTBEAT_PERIOD = 0.5, {how}; START SLAVE"
    ))
    .unwrap();
}

fn assert_same_data(p: &Server, r: &Server) {
    let dbs = ["w1", "w2"];
    let want = p.checksums(&dbs).unwrap();
    assert!(want.len() == 2, "{want:?}");
    assert_eq!(r.checksums(&dbs).unwrap(), want);
}

#[test]
fn stock_replicas_replicate_by_position_and_by_gtid() {
    let p = primary(16384);
    workload(&p, 0, 100);
    let tmp = tempfile::tempdir().unwrap();
    let s = mirror_and_serve(
        primary_source(&p),
        &tmp.path().join("m"),
        101,
        SyncPolicy::Every,
    );
    wait_mirrored(&p, &s.dir);
    let first = names(&p.binlog_files().unwrap())[0].clone();

    let by_pos = replica(3);
    change_master(
        &by_pos,
        s.port(),
        &format!("MASTER_LOG_FILE = '{first}', MASTER_LOG_POS = 4, MASTER_USE_GTID = no"),
    );
    let by_gtid = replica(4);
    change_master(&by_gtid, s.port(), "MASTER_USE_GTID = slave_pos");

    // While the mirror is receiving: more load and rotations.
    workload(&p, 100, 150);
    p.exec("FLUSH BINARY LOGS").unwrap();
    workload(&p, 250, 50);
    by_pos.wait_caught_up(&p, HANG_GUARD).unwrap();
    by_gtid.wait_caught_up(&p, HANG_GUARD).unwrap();
    assert_same_data(&p, &by_pos);
    assert_same_data(&p, &by_gtid);

    // The GTID replica reconnects from the middle of the history: the
    // server finds the file through the Gtid_list events and skips what the
    // replica has.
    by_gtid.exec("STOP SLAVE").unwrap();
    workload(&p, 300, 80);
    p.exec("FLUSH BINARY LOGS").unwrap();
    workload(&p, 380, 80);
    by_gtid.exec("START SLAVE").unwrap();
    by_gtid.wait_caught_up(&p, HANG_GUARD).unwrap();
    by_pos.wait_caught_up(&p, HANG_GUARD).unwrap();
    assert_same_data(&p, &by_gtid);
    assert_same_data(&p, &by_pos);
    s.stop().unwrap();
}

#[test]
fn a_mirror_of_a_mirror_is_byte_identical() {
    let p = primary(16384);
    workload(&p, 0, 100);
    let tmp = tempfile::tempdir().unwrap();
    let a = mirror_and_serve(
        primary_source(&p),
        &tmp.path().join("a"),
        101,
        SyncPolicy::Every,
    );
    // B mirrors A's server (not the primary), and serves too.
    let b = mirror_and_serve(
        served_client(a.port()),
        &tmp.path().join("b"),
        102,
        SyncPolicy::Every,
    );
    // While both receive: load and rotations.
    workload(&p, 100, 150);
    p.exec("FLUSH BINARY LOGS").unwrap();
    let mid = p.gtid_binlog_pos().unwrap();
    workload(&p, 250, 100);
    p.exec("FLUSH BINARY LOGS").unwrap();
    workload(&p, 350, 20);
    wait_mirrored(&p, &a.dir);
    wait_mirrored(&p, &b.dir);
    // C starts from a GTID through B: it copies the file in which the
    // server starts that GTID, and every file after it.
    let c_dir = tmp.path().join("c");
    let mut mo = MirrorOptions::new(served_client(b.port()), &c_dir, 103);
    mo.start = Some(mirror::MirrorStart::Gtid(mid.clone()));
    mo.heartbeat = Duration::from_millis(200);
    let stop = Arc::new(AtomicBool::new(false));
    mo.stop = Some(stop.clone());
    let c = thread::spawn(move || mirror::run(&mo));
    let files = p.binlog_files().unwrap();
    let deadline = Instant::now() + HANG_GUARD;
    let c_files = loop {
        let index = fs::read_to_string(c_dir.join("mariadb-bin.index")).unwrap_or_default();
        let listed: Vec<String> = index
            .lines()
            .map(|l| l.trim_start_matches("./").to_owned())
            .collect();
        let all_equal = !listed.is_empty()
            && listed.last() == names(&files).last()
            && listed
                .iter()
                .all(|f| differs(&p.binlog_dir().join(f), &c_dir.join(f)).is_none());
        if all_equal {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "mirror C not caught up: {listed:?}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    stop.store(true, Ordering::SeqCst);
    c.join().unwrap().unwrap();
    // The primary starts a GTID replica at `mid` in the file after the
    // FLUSH that followed it: C starts there, not at the first file.
    assert!(c_files.len() < files.len(), "{c_files:?}");
    b.stop().unwrap();
    a.stop().unwrap();
}

/// Logs in to the served mirror and asks for a dump; the first answer.
fn dump_first_packet(port: u16, sets: &str, file: &str, pos: u32) -> Result<Vec<u8>, WireError> {
    let mut c = Conn::connect(&served_client(port))?;
    if !sets.is_empty() {
        c.execute(sets.as_bytes())?;
    }
    let mut p = pos.to_le_bytes().to_vec();
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(file.as_bytes());
    c.write_command(0x12, &p)?;
    c.read_packet()
}

fn expect_err(p: &[u8], code: u16, needle: &str) {
    assert_eq!(
        p.first(),
        Some(&0xff),
        "expected an ERR packet, got {:02x?}",
        &p[..p.len().min(16)]
    );
    let got = u16::from_le_bytes([p[1], p[2]]);
    let msg = String::from_utf8_lossy(&p[9..]);
    assert_eq!(got, code, "{msg}");
    assert!(msg.contains(needle), "`{needle}` not in: {msg}");
}

const CLIENT_SETS: &str =
    "SET @master_binlog_checksum = @@global.binlog_checksum, @mariadb_slave_capability = 4";

#[test]
fn faults_get_clear_errors_never_a_hang() {
    let p = primary(16384);
    workload(&p, 0, 30);
    let tmp = tempfile::tempdir().unwrap();
    let s = mirror_and_serve(
        primary_source(&p),
        &tmp.path().join("m"),
        101,
        SyncPolicy::Every,
    );
    wait_mirrored(&p, &s.dir);

    // A wrong password, no password, another user: access denied.
    for (user, pw) in [
        (USER, Some("wrong")),
        (USER, None),
        ("root", None),
        ("", None),
    ] {
        let mut o = served_client(s.port());
        o.user = user.into();
        o.password = pw.map(Secret::new);
        match Conn::connect(&o) {
            Err(WireError::Auth { code, message, .. }) => {
                assert_eq!(code, Some(1045), "{message}");
                assert!(message.contains("Access denied"), "{message}");
            }
            other => panic!("{user}/{pw:?} was let in: {other:?}"),
        }
    }
    let out = mariadb_binlog_raw(
        s.port(),
        USER,
        "wrong",
        "mariadb-bin.000001",
        &tmp.path().join("x"),
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Access denied"),
        "{out:?}"
    );
    // No anonymous server.
    let e = BinlogServer::bind(
        ServeOptions::new(&s.dir, "127.0.0.1:0", USER, Secret::new("")),
        None,
    )
    .err()
    .expect("a server without a password");
    assert!(e.to_string().contains("anonymous"), "{e}");

    // Unknown statements and commands: errors, and the session goes on.
    let mut o = served_client(s.port());
    o.read_timeout = Some(Duration::from_secs(20));
    let mut c = Conn::connect(&o).unwrap();
    for (sql, code) in [
        ("DROP DATABASE w1", 1235),
        ("SELECT * FROM w1.t", 1235),
        ("SELECT @@innodb_buffer_pool_size", 1193),
        ("SET GLOBAL read_only = 0", 1227),
        ("SELECT 'unterminated", 1064),
    ] {
        match c.execute(sql.as_bytes()) {
            Err(WireError::Server {
                code: got, message, ..
            }) => assert_eq!(got, code, "{sql}: {message}"),
            other => panic!("{sql}: {other:?}"),
        }
    }
    match c.simple_command(0x16, b"SELECT 1") {
        Err(WireError::Server { code, message, .. }) => {
            assert_eq!(code, 1047, "{message}");
            assert!(message.contains("COM_BINLOG_DUMP"), "{message}");
        }
        other => panic!("COM_STMT_PREPARE: {other:?}"),
    }
    c.ping().unwrap();
    assert_eq!(
        c.query_value("SELECT @@server_id").unwrap().as_deref(),
        Some("1")
    );
    let rows = c.query_rows("SHOW BINARY LOGS").unwrap();
    assert_eq!(rows.len(), p.binlog_files().unwrap().len());

    // Dumps of what the mirror does not have: 1236 naming it.
    let e = dump_first_packet(s.port(), CLIENT_SETS, "mariadb-bin.000099", 4).unwrap();
    expect_err(&e, 1236, "mariadb-bin.000099");
    let e = dump_first_packet(s.port(), CLIENT_SETS, "mariadb-bin.000001", 5).unwrap();
    expect_err(&e, 1236, "mariadb-bin.000001:5");
    let e = dump_first_packet(s.port(), CLIENT_SETS, "mariadb-bin.000001", 1 << 30).unwrap();
    expect_err(&e, 1236, "mariadb-bin.000001:1073741824");
    let sets = format!("{CLIENT_SETS}, @slave_connect_state = '0-1-999999'");
    let e = dump_first_packet(s.port(), &sets, "", 4).unwrap();
    expect_err(&e, 1236, "0-1-999999");
    let e = dump_first_packet(s.port(), "", "mariadb-bin.000001", 4).unwrap();
    expect_err(&e, 1236, "@mariadb_slave_capability");
    let out = mariadb_binlog_raw(
        s.port(),
        USER,
        PASSWORD,
        "mariadb-bin.000099",
        &tmp.path().join("y"),
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mariadb-bin.000099"),
        "{out:?}"
    );

    // Garbage instead of a login: an error or a closed connection, not a hang.
    let mut raw = TcpStream::connect(s.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut greeting = [0u8; 4];
    raw.read_exact(&mut greeting).unwrap();
    let mut rest = vec![0u8; usize::from(greeting[0]) | usize::from(greeting[1]) << 8];
    raw.read_exact(&mut rest).unwrap();
    raw.write_all(&[
        0x10, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    ])
    .unwrap();
    let mut all = Vec::new();
    raw.read_to_end(&mut all)
        .expect("the server closes the connection");
    assert_eq!(
        all.get(4),
        Some(&0xff),
        "an ERR packet before closing: {all:02x?}"
    );
    // A packet announcing 16 MiB after login: refused before it is read.
    let mut raw = TcpStream::connect(s.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    raw.write_all(&[0xff, 0xff, 0xff, 1]).unwrap();
    let mut all = Vec::new();
    let _ = raw.read_to_end(&mut all);
    s.stop().unwrap();
}

#[test]
fn a_client_gone_mid_event_leaves_the_rest_serving() {
    let p = primary(1 << 20);
    workload(&p, 0, 20);
    p.exec("CREATE TABLE w1.big (id INT PRIMARY KEY, v LONGBLOB); INSERT INTO w1.big VALUES (1, REPEAT('z', 8388608))")
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let s = mirror_and_serve(
        primary_source(&p),
        &tmp.path().join("m"),
        101,
        SyncPolicy::Every,
    );
    wait_mirrored(&p, &s.dir);
    for _ in 0..3 {
        // Read the start of the stream, then vanish while the server is in
        // the middle of the 8 MiB event.
        let mut c = Conn::connect(&served_client(s.port())).unwrap();
        c.execute(CLIENT_SETS.as_bytes()).unwrap();
        let mut req = 4u32.to_le_bytes().to_vec();
        req.extend_from_slice(&0u16.to_le_bytes());
        req.extend_from_slice(&77u32.to_le_bytes());
        req.extend_from_slice(b"mariadb-bin.000001");
        c.write_command(0x12, &req).unwrap();
        let first = c.read_packet().unwrap();
        assert_eq!(first[0], 0);
        drop(c);
    }
    // The server lets go of those clients…
    let deadline = Instant::now() + HANG_GUARD;
    while s.svc.clients() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} clients still held",
            s.svc.clients()
        );
        thread::sleep(Duration::from_millis(20));
    }
    // …and the mirror and the other clients go on.
    workload(&p, 20, 50);
    p.exec("FLUSH BINARY LOGS").unwrap();
    wait_mirrored(&p, &s.dir);
    let out_dir = tmp.path().join("after");
    let out = mariadb_binlog_raw(
        s.port(),
        USER,
        PASSWORD,
        "mariadb-bin.000001",
        &out_dir,
        &["--to-last-log"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = p.binlog_files().unwrap();
    for f in &files[..files.len() - 1] {
        assert_eq!(differs(f, &out_dir.join(f.file_name().unwrap())), None);
    }
    s.stop().unwrap();
}

/// About `mb` MiB of binlog in 2 MiB transactions (rows of 2 KB).
fn bulk(p: &Server, mb: usize) {
    p.exec("CREATE DATABASE IF NOT EXISTS bulk; CREATE TABLE IF NOT EXISTS bulk.t (id INT PRIMARY KEY, v VARCHAR(2100))")
        .unwrap();
    for i in 0..mb / 2 {
        p.exec(&format!(
            "INSERT INTO bulk.t SELECT seq + {}, REPEAT(CHAR(65 + seq % 26), 2000) FROM bulk.seq_1_to_1000",
            i * 1000
        ))
        .unwrap();
    }
}

/// Mirrors `p` from scratch (with a server), optionally with `clients`
/// `mariadb-binlog --stop-never` dumps following it from its first file;
/// the time until the mirror holds the primary's bytes, and each client's
/// output directory.
fn timed_mirror(p: &Server, dir: &Path, clients: usize) -> (Duration, Vec<PathBuf>, Served) {
    let t0 = Instant::now();
    let s = mirror_and_serve(primary_source(p), dir, 101, SyncPolicy::Every);
    let mut children = Vec::new();
    let mut outs = Vec::new();
    if clients > 0 {
        while s.svc.clients() == 0 && !dir.join("mariadb-bin.index").exists() {
            thread::sleep(Duration::from_millis(5));
        }
        for i in 0..clients {
            let out = dir.with_extension(format!("client{i}"));
            fs::create_dir_all(&out).unwrap();
            let child = Command::new("mariadb-binlog")
                .args([
                    "--read-from-remote-server",
                    "--raw",
                    "--host=127.0.0.1",
                    "--skip-ssl",
                ])
                .arg(format!("--port={}", s.port()))
                .arg(format!("--user={USER}"))
                .arg("--stop-never")
                .arg(format!("--stop-never-slave-server-id={}", 1000 + i))
                .arg(format!("--result-file={}/", out.display()))
                .arg("mariadb-bin.000001")
                .env("MYSQL_PWD", PASSWORD)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            children.push(child);
            outs.push(out);
        }
    }
    wait_mirrored(p, &s.dir);
    let took = t0.elapsed();
    // Every client ends with the primary's bytes.
    let files = p.binlog_files().unwrap();
    for out in &outs {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let bad = files[..files.len() - 1]
                .iter()
                .find_map(|f| differs(f, &out.join(f.file_name().unwrap())));
            match bad {
                None => break,
                Some(e) => assert!(Instant::now() < deadline, "a dump client fell behind: {e}"),
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    (took, outs, s)
}

#[test]
fn sixteen_dumps_follow_a_growing_mirror() {
    let p = primary(4 << 20);
    bulk(&p, 24);
    p.exec("FLUSH BINARY LOGS").unwrap();
    workload(&p, 0, 20);
    let tmp = tempfile::tempdir().unwrap();
    let size: u64 = p
        .binlog_files()
        .unwrap()
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .sum();
    // Alone, with 16 dumps, alone again (the machine is shared: the two
    // runs alone show the noise).
    let (alone, _, s) = timed_mirror(&p, &tmp.path().join("alone"), 0);
    s.stop().unwrap();
    let (with, outs, s) = timed_mirror(&p, &tmp.path().join("with"), 16);
    assert_eq!(outs.len(), 16);
    s.stop().unwrap();
    let (again, _, s) = timed_mirror(&p, &tmp.path().join("again"), 0);
    s.stop().unwrap();
    // Figures for docs/benchmarks.md, not a pass/fail criterion.
    eprintln!(
        "mirroring {:.1} MiB from scratch (sync every): alone {:.2} s, with 16 mariadb-binlog \
         dumps following it {:.2} s, alone again {:.2} s",
        size as f64 / 1048576.0,
        alone.as_secs_f64(),
        with.as_secs_f64(),
        again.as_secs_f64(),
    );
}

#[test]
fn only_fsynced_bytes_are_served() {
    let p = primary(16 << 20);
    workload(&p, 0, 20);
    let tmp = tempfile::tempdir().unwrap();
    // fsync every million events, heartbeats every minute: the mirror
    // writes, but syncs (and publishes) only when it creates a file.
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(Published::new());
    let dir = tmp.path().join("m");
    let mut mo = MirrorOptions::new(primary_source(&p), &dir, 101);
    mo.sync = SyncPolicy::EveryN(1_000_000);
    mo.heartbeat = Duration::from_secs(60);
    mo.stop = Some(stop.clone());
    mo.publish = Some(published.clone());
    let m = thread::spawn(move || mirror::run(&mo));
    let server = BinlogServer::bind(serve_options(&dir, &stop), Some(published)).unwrap();
    let port = server.local_addr().unwrap().port();
    let srv = thread::spawn(move || server.run());
    wait_mirrored(&p, &dir);
    let file = names(&p.binlog_files().unwrap())[0].clone();
    let on_disk = fs::metadata(dir.join(&file)).unwrap().len();
    let mut c = Conn::connect(&served_client(port)).unwrap();
    let row = c.query_rows("SHOW MASTER STATUS").unwrap();
    let served: u64 = String::from_utf8_lossy(row[0][1].as_ref().unwrap())
        .parse()
        .unwrap();
    assert!(
        served < on_disk,
        "served {served} of {on_disk} unsynced bytes"
    );
    let out = tmp.path().join("out");
    let o = mariadb_binlog_raw(port, USER, PASSWORD, &file, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::metadata(out.join(&file)).unwrap().len(), served);
    // A clean stop fsyncs what was written (an event wakes the mirror,
    // which would otherwise notice the stop at its next heartbeat).
    stop.store(true, Ordering::SeqCst);
    p.exec("FLUSH BINARY LOGS").unwrap();
    m.join().unwrap().unwrap();
    srv.join().unwrap().unwrap();
}

#[test]
fn serve_dir_follows_a_mirror_written_by_another_process() {
    let p = primary(16384);
    workload(&p, 0, 50);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    // The mirror in its own process; the server only reads the directory.
    let mut child = Command::new(env!("CARGO_BIN_EXE_parapply"))
        .args([
            "mirror",
            "--server-id",
            "101",
            "--heartbeat",
            "0.2",
            "--sync",
            "every",
        ])
        .arg("--primary")
        .arg(format!("mysql://root@127.0.0.1:{}/", p.port()))
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_mirrored(&p, &dir);
    let s = serve_dir(&dir);
    let r = replica(5);
    change_master(&r, s.port(), "MASTER_USE_GTID = slave_pos");
    workload(&p, 50, 100);
    p.exec("FLUSH BINARY LOGS").unwrap();
    workload(&p, 150, 50);
    r.wait_caught_up(&p, HANG_GUARD).unwrap();
    assert_same_data(&p, &r);
    let _ = child.kill();
    let _ = child.wait();
    s.stop().unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until a binlog server answers a login on `port`.
fn wait_listening(port: u16) {
    let deadline = Instant::now() + HANG_GUARD;
    while Conn::connect(&served_client(port)).is_err() {
        assert!(Instant::now() < deadline, "nothing serves on {port}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_command_line_serves_a_mirror() {
    let p = primary(16384);
    workload(&p, 0, 100);
    p.exec("FLUSH BINARY LOGS").unwrap();
    workload(&p, 100, 20);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    let port = free_port();
    // `parapply mirror --serve`, the password in the environment.
    let mut mirror = Command::new(env!("CARGO_BIN_EXE_parapply"))
        .args(["mirror", "--server-id", "101", "--sync", "every"])
        .arg("--primary")
        .arg(format!("mysql://root@127.0.0.1:{}/", p.port()))
        .arg("--dir")
        .arg(&dir)
        .arg("--serve")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--serve-user", USER])
        .env("PARAPPLY_SERVE_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_mirrored(&p, &dir);
    wait_listening(port);
    let files = p.binlog_files().unwrap();
    let first = names(&files)[0].clone();
    let out = tmp.path().join("out");
    let o = mariadb_binlog_raw(port, USER, PASSWORD, &first, &out, &["--to-last-log"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in &files[..files.len() - 1] {
        assert_eq!(differs(f, &out.join(f.file_name().unwrap())), None);
    }
    // SIGTERM: the mirror and its server stop cleanly.
    Command::new("kill")
        .arg(mirror.id().to_string())
        .status()
        .unwrap();
    assert!(mirror.wait().unwrap().success());

    // `parapply serve` over the stopped mirror, the password from a file.
    let pw = tmp.path().join("pw");
    fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let port = free_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_parapply"))
        .arg("serve")
        .arg("--dir")
        .arg(&dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--serve-password-file")
        .arg(&pw)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port);
    let out = tmp.path().join("out2");
    let o = mariadb_binlog_raw(port, USER, PASSWORD, &first, &out, &["--to-last-log"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in &files[..files.len() - 1] {
        assert_eq!(differs(f, &out.join(f.file_name().unwrap())), None);
    }
    // The last file: the mirror's copy has the in-use flag of an active
    // file set, the one a client receives has it cleared (as from a primary).
    let name = files.last().unwrap().file_name().unwrap();
    let mut ours = fs::read(dir.join(name)).unwrap();
    let theirs = fs::read(out.join(name)).unwrap();
    assert_eq!(ours[21] & 1, 1);
    ours[21] &= !1;
    assert!(ours == theirs, "{name:?}");
    let _ = serve.kill();
    let _ = serve.wait();

    // No password: no server.
    let o = Command::new(env!("CARGO_BIN_EXE_parapply"))
        .arg("serve")
        .arg("--dir")
        .arg(&dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env_remove("PARAPPLY_SERVE_PASSWORD")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("anonymous"),
        "{o:?}"
    );
}
