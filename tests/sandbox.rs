//! Integration tests of `parapply::sandbox`, the throwaway `mariadbd`
//! servers every other integration test builds on: binary log files and
//! index, table checksums, cleanup when a test panics and when the test
//! process is killed with SIGKILL, kill -9 + restart, and MariaDB's own
//! replication between two sandboxes.
//!
//! Needs the MariaDB server binaries (`apt-get install mariadb-server`; the
//! system service need not run). Run with:
//!
//! ```text
//! cargo test --test sandbox
//! ```

mod common;

use std::io::{BufRead, BufReader, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use parapply::sandbox::{SandboxError, Server, ServerOptions};

type TestResult = Result<(), SandboxError>;

const SHOP: &str = "
    CREATE DATABASE shop;
    CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40), qty INT) ENGINE=InnoDB;
    INSERT INTO shop.orders VALUES (1, 'apple', 3), (2, 'pear', 5), (3, 'plum', 7);
    CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB;
    INSERT INTO shop.customers VALUES (1, 'ada'), (2, 'grace');
    CREATE DATABASE inventory;
    CREATE TABLE inventory.stock (sku INT PRIMARY KEY, n BIGINT) ENGINE=InnoDB;
    INSERT INTO inventory.stock VALUES (10, 100), (11, 0);
";
const SHOP_DBS: [&str; 2] = ["shop", "inventory"];

/// Whether the `mariadbd` of the sandbox at `root` still runs as `pid` (a
/// recycled pid runs another command line).
fn server_alive(pid: u32, root: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&*root.to_string_lossy()))
}

fn count(server: &Server, sql: &str) -> Result<u64, SandboxError> {
    Ok(server.query_first::<u64>(sql)?.unwrap_or_default())
}

#[test]
fn primary_writes_binlog_files_and_index() -> TestResult {
    let primary = Server::start(ServerOptions::new().log_bin("mariadb-bin"))?;
    assert_eq!(primary.binlog_basename(), Some("mariadb-bin"));
    assert_eq!(
        primary.url(),
        format!("mysql://root@127.0.0.1:{}/", primary.port())
    );

    primary.exec(SHOP)?;
    primary.exec("FLUSH BINARY LOGS")?;
    primary.exec("UPDATE shop.orders SET qty = qty - 1 WHERE id = 1")?;

    let index = primary.binlog_index().expect("the binary log is on");
    assert!(index.is_file(), "{} missing", index.display());
    assert_eq!(index.parent(), Some(primary.binlog_dir()));
    let files = primary.binlog_files()?;
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, ["mariadb-bin.000001", "mariadb-bin.000002"]);
    for file in &files {
        assert_eq!(file.parent(), Some(primary.binlog_dir()));
        let bytes = std::fs::read(file).expect("read binlog file");
        assert!(
            bytes.starts_with(b"\xfebin"),
            "{} lacks the magic",
            file.display()
        );
    }
    // 8 statements of SHOP and the UPDATE, each its own GTID of domain 0.
    assert_eq!(primary.gtid_binlog_pos()?, "0-1-9");
    Ok(())
}

#[test]
fn checksums_equal_for_same_data_and_differ_otherwise() -> TestResult {
    let a = Server::start(ServerOptions::new())?;
    let b = Server::start(ServerOptions::new())?;
    a.exec(SHOP)?;
    b.exec(SHOP)?;
    assert_eq!(a.databases()?, ["inventory", "shop"]);

    let same = a.checksums(&SHOP_DBS)?;
    let keys: Vec<&str> = same.keys().map(String::as_str).collect();
    assert_eq!(keys, ["inventory.stock", "shop.customers", "shop.orders"]);
    assert_eq!(same, b.checksums(&SHOP_DBS)?);

    b.exec("UPDATE shop.orders SET qty = qty + 1 WHERE id = 2")?;
    let changed = b.checksums(&SHOP_DBS)?;
    assert_ne!(same["shop.orders"], changed["shop.orders"]);
    assert_eq!(same["shop.customers"], changed["shop.customers"]);
    assert_eq!(same["inventory.stock"], changed["inventory.stock"]);

    b.exec("CREATE TABLE inventory.extra (id INT PRIMARY KEY)")?;
    assert!(b.checksums(&SHOP_DBS)?.contains_key("inventory.extra"));
    assert!(a.checksums(&[])?.is_empty());

    // A later statement's error is not lost behind an earlier success.
    let e = a
        .exec("SELECT 1; INSERT INTO shop.no_such_table VALUES (1); SELECT 2")
        .unwrap_err();
    assert!(e.to_string().contains("no_such_table"), "{e}");
    Ok(())
}

#[test]
fn panicking_test_leaves_no_server_and_no_files() {
    let seen = Mutex::new(None);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let server = Server::start(ServerOptions::new().log_bin("mariadb-bin")).expect("start");
        let pid = server.pid().expect("running");
        *seen.lock().expect("lock") = Some((pid, server.root().to_owned()));
        panic!("deliberate panic: this test checks the cleanup after it");
    }));
    assert!(outcome.is_err());
    let (pid, root) = seen.lock().expect("lock").take().expect("server started");
    assert!(
        !server_alive(pid, &root),
        "mariadbd {pid} survived the panic"
    );
    assert!(!root.exists(), "{} survived the panic", root.display());
}

/// Set in the environment of the child process that
/// `sigkilled_owner_leaves_no_server_and_no_files` kills.
const ORPHAN_CHILD: &str = "PARAPPLY_SANDBOX_ORPHAN_CHILD";
const ORPHAN_MARKER: &str = "sandbox-orphan:";

/// The child's part (the test binary runs this test again in a child
/// process with `ORPHAN_CHILD` set): starts a server, reports it, and waits
/// to be killed.
fn orphan_owner() -> ! {
    let server = Server::start(ServerOptions::new()).expect("start");
    let pid = server.pid().expect("running");
    let mut stdout = std::io::stdout();
    writeln!(stdout, "\n{ORPHAN_MARKER}{pid}:{}", server.root().display()).expect("report");
    stdout.flush().expect("flush");
    loop {
        thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn sigkilled_owner_leaves_no_server_and_no_files() {
    if std::env::var_os(ORPHAN_CHILD).is_some() {
        orphan_owner();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut owner = Command::new(exe)
        .args([
            "--exact",
            "sigkilled_owner_leaves_no_server_and_no_files",
            "--nocapture",
        ])
        .env(ORPHAN_CHILD, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the owner process");
    let stdout = owner.stdout.take().expect("piped stdout");
    let report = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.split_once(ORPHAN_MARKER).map(|(_, r)| r.to_owned()));
    let Some(report) = report else {
        let status = owner.wait();
        panic!("the owner process exited without starting a server: {status:?}");
    };
    let (pid, root) = report.split_once(':').expect("pid:root");
    let pid: u32 = pid.parse().expect("pid");
    let root = PathBuf::from(root);
    assert!(server_alive(pid, &root), "mariadbd {pid} is not running");

    owner.kill().expect("SIGKILL the owner");
    owner.wait().expect("reap the owner");

    let deadline = Instant::now() + common::HANG_GUARD;
    while (server_alive(pid, &root) || root.exists()) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !server_alive(pid, &root),
        "mariadbd {pid} outlived its owner"
    );
    assert!(!root.exists(), "{} outlived its owner", root.display());
}

#[test]
fn kill9_and_restart_keep_committed_data() -> TestResult {
    let mut server = Server::start(ServerOptions::new().log_bin("mariadb-bin"))?;
    let port = server.port();
    server.exec(SHOP)?;
    let committed = server.checksums(&SHOP_DBS)?;

    // A transaction still open at the crash must be rolled back.
    let mut open = server.conn()?;
    open.query_drop("START TRANSACTION; INSERT INTO shop.orders VALUES (4, 'fig', 1)")
        .expect("open transaction");

    server.kill9()?;
    assert_eq!(server.pid(), None);
    assert!(matches!(
        server.exec("SELECT 1"),
        Err(SandboxError::NotRunning { .. })
    ));
    drop(open);

    server.restart()?;
    assert_eq!(server.port(), port);
    assert_eq!(count(&server, "SELECT COUNT(*) FROM shop.orders")?, 3);
    assert_eq!(server.checksums(&SHOP_DBS)?, committed);

    // A graceful stop keeps the data as well, and restart brings it back.
    server.exec("INSERT INTO shop.orders VALUES (5, 'kiwi', 2)")?;
    server.stop()?;
    assert_eq!(server.pid(), None);
    server.restart()?;
    assert_eq!(server.port(), port);
    assert_eq!(count(&server, "SELECT COUNT(*) FROM shop.orders")?, 4);
    assert!(server.error_log_tail(200).contains("ready for connections"));

    // A server that died on its own (here: killed behind the sandbox's
    // back) is restarted as well.
    let pid = server.pid().expect("running");
    let killed = Command::new("sh")
        .args(["-c", "kill -9 \"$1\"", "sh", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    server.restart()?;
    assert_ne!(server.pid(), Some(pid));
    assert_eq!(count(&server, "SELECT COUNT(*) FROM shop.orders")?, 4);
    Ok(())
}

#[test]
fn replica_of_a_primary_catches_up() -> TestResult {
    let primary = Server::start(ServerOptions::new().server_id(1).log_bin("mariadb-bin"))?;
    let replica = Server::start(ServerOptions::new().server_id(2))?;
    assert!(matches!(
        primary.replicate_from(&replica),
        Err(SandboxError::Replication { .. })
    ));

    primary.exec(SHOP)?;
    replica.replicate_from(&primary)?;
    primary.exec(
        "UPDATE shop.orders SET qty = 0 WHERE id = 3;
         INSERT INTO inventory.stock VALUES (12, 42)",
    )?;
    replica.wait_caught_up(&primary, Duration::from_secs(30))?;

    assert_eq!(primary.checksums(&SHOP_DBS)?, replica.checksums(&SHOP_DBS)?);
    let slave_pos = replica.query_first::<String>("SELECT @@GLOBAL.gtid_slave_pos")?;
    assert_eq!(slave_pos, Some(primary.gtid_binlog_pos()?));
    Ok(())
}
