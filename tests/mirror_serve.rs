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
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parapply::mirror::serve::{Published, ServeError, ServeOptions, Server as BinlogServer};
use parapply::mirror::{self, MirrorError, MirrorOptions, SyncPolicy};
use parapply::sandbox::{Server, ServerOptions};
use parapply::wire::{Conn, ConnectOptions, Secret};

const USER: &str = "repl";
const PASSWORD: &str = "mirror-secret-42";

fn primary(max_binlog_size: u64) -> Server {
    Server::start(
        ServerOptions::new()
            .server_id(1)
            .log_bin("mariadb-bin")
            .max_binlog_size(max_binlog_size),
    )
    .expect("start the primary")
}

fn conn(s: &Server) -> Conn {
    Conn::connect(&ConnectOptions::new("127.0.0.1", s.port(), "root")).expect("connect")
}

/// `n` small transactions over two databases, some multi-row, one DDL.
fn workload(s: &Server, from: usize, n: usize) {
    let mut c = conn(s);
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

/// A mirror of `p` written in this process, served over the protocol.
struct Served {
    addr: SocketAddr,
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
    let server = thread::spawn(move || server.run());
    Served {
        addr,
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
#[allow(dead_code)]
fn serve_dir(dir: &Path) -> Served {
    let stop = Arc::new(AtomicBool::new(false));
    let server = BinlogServer::bind(serve_options(dir, &stop), None).unwrap();
    let addr = server.local_addr().unwrap();
    let server = thread::spawn(move || server.run());
    Served {
        addr,
        dir: dir.to_path_buf(),
        stop,
        server: Some(server),
        mirror: None,
    }
}

#[allow(dead_code)]
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
    let deadline = Instant::now() + Duration::from_secs(30);
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
    by_pos.wait_caught_up(&p, Duration::from_secs(60)).unwrap();
    by_gtid.wait_caught_up(&p, Duration::from_secs(60)).unwrap();
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
    by_gtid.wait_caught_up(&p, Duration::from_secs(60)).unwrap();
    by_pos.wait_caught_up(&p, Duration::from_secs(60)).unwrap();
    assert_same_data(&p, &by_gtid);
    assert_same_data(&p, &by_pos);
    s.stop().unwrap();
}
