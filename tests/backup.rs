//! A new replica from a backup, no coordinates typed (issue 16, item 1),
//! with the real tools: `mariadb-backup` and `mariadb-dump
//! --single-transaction --master-data --gtid`, of the primary and of
//! another parapply replica. After the restore `parapply apply` without
//! `--from` (or with `--from-backup DIR` for mariadb-backup of the primary)
//! finds where to start; the tables then equal the primary's, and a
//! counter bumped by every transaction shows nothing was applied twice.
//! Mismatches (a source that begins after the backup; progress tables of
//! another topology) are errors naming what is missing.
//!
//! Run: `cargo test --test backup` (needs mariadb-server, mariadb-client
//! and mariadb-backup: scripts/test installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use parapply::apply::start::BINLOG_INFO_FILES;
use parapply::sandbox::{Server, ServerOptions};

const DBS: [&str; 2] = ["s1", "s2"];

/// A MariaDB tool, or a failure that says what to install.
fn tool(name: &str, package: &str) -> PathBuf {
    ["/usr/bin", "/usr/local/bin", "/usr/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} is missing: apt-get install {package}"))
}

fn run(c: &mut Command) -> Output {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn primary(basename: &str, server_id: u32) -> Server {
    let p = Server::start(ServerOptions::new().server_id(server_id).log_bin(basename)).unwrap();
    p.exec(
        "CREATE DATABASE s1; CREATE DATABASE s2; CREATE TABLE s1.t (i INT PRIMARY KEY);
         CREATE TABLE s2.t (i INT PRIMARY KEY); CREATE TABLE s1.c (id INT PRIMARY KEY, n INT);
         INSERT INTO s1.c VALUES (1, 0)",
    )
    .unwrap();
    p
}

/// Two groups per row: an insert, and the counter (applied twice, it
/// would differ).
fn write(p: &Server, rows: std::ops::Range<u32>) {
    for i in rows {
        p.exec(&format!("INSERT INTO s{}.t VALUES ({i})", 1 + i % 2))
            .unwrap();
        p.exec("UPDATE s1.c SET n = n + 1").unwrap();
    }
}

fn client_args(c: &mut Command, s: &Server) {
    c.arg("--user=root")
        .arg(format!("--socket={}", s.socket().display()));
}

/// `mariadb-backup --backup`, then `--prepare`.
fn backup(from: &Server) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("b");
    let mb = tool("mariadb-backup", "mariadb-backup");
    let mut c = Command::new(&mb);
    c.arg("--backup")
        .arg(format!("--target-dir={}", target.display()));
    client_args(&mut c, from);
    run(&mut c);
    run(Command::new(&mb)
        .arg("--prepare")
        .arg(format!("--target-dir={}", target.display())));
    dir
}

/// The backup's directory.
fn backup_dir(b: &tempfile::TempDir) -> PathBuf {
    b.path().join("b")
}

/// Stops `into`, replaces its data directory by the backup
/// (`--copy-back`) and starts it again.
fn restore_backup(b: &tempfile::TempDir, into: &mut Server) {
    into.stop().unwrap();
    let datadir = into.datadir().to_path_buf();
    std::fs::remove_dir_all(&datadir).unwrap();
    std::fs::create_dir(&datadir).unwrap();
    run(Command::new(tool("mariadb-backup", "mariadb-backup"))
        .arg("--copy-back")
        .arg(format!("--target-dir={}", backup_dir(b).display()))
        .arg(format!("--datadir={}", datadir.display())));
    into.restart().unwrap();
}

/// `mariadb-dump --single-transaction --master-data=1 --gtid` of `dbs`,
/// restored into `into` with `mariadb` (not logged on `into`).
fn dump_and_restore(from: &Server, dbs: &[&str], into: &Server) -> String {
    let mut c = Command::new(tool("mariadb-dump", "mariadb-client"));
    client_args(&mut c, from);
    c.args([
        "--single-transaction",
        "--master-data=1",
        "--gtid",
        "--databases",
    ])
    .args(dbs);
    let sql = run(&mut c).stdout;
    let text = String::from_utf8_lossy(&sql).into_owned();
    let mut c = Command::new(tool("mariadb", "mariadb-client"));
    client_args(&mut c, into);
    c.arg("--init-command=SET sql_log_bin=0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&sql).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "restoring the dump failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    text
}

fn apply(source: &Server, target: &Server, extra: &[&str]) -> Output {
    common::apply_output(source, target, extra)
}

/// The run's JSON report; the run must succeed.
fn applied(o: &Output) -> serde_json::Value {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "apply failed: {err}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {err}"))
}

fn assert_equal(p: &Server, t: &Server) {
    assert_eq!(p.checksums(&DBS).unwrap(), t.checksums(&DBS).unwrap());
    let n: Option<u32> = t.query_first("SELECT n FROM s1.c").unwrap();
    let want: Option<u32> = p.query_first("SELECT n FROM s1.c").unwrap();
    assert_eq!(n, want, "the counter: a group applied twice or missing");
}

/// mariadb-backup of the primary: `--from-backup DIR` reads its
/// binlog-info file; without it the restored server would start at the
/// source's beginning and apply the backup's groups again.
#[test]
fn mariadb_backup_of_the_primary_starts_at_its_recorded_position() {
    let p = primary("mariadb-bin", 1);
    write(&p, 0..20);
    let b = backup(&p);
    write(&p, 20..35);
    let mut t = common::replica_target();
    restore_backup(&b, &mut t);
    // (xtrabackup_binlog_info before MariaDB 11.)
    let info = BINLOG_INFO_FILES
        .iter()
        .find_map(|n| std::fs::read_to_string(backup_dir(&b).join(n)).ok())
        .expect("mariadb-backup wrote its binlog info");
    assert!(info.contains("0-1-"), "{info}");
    let dir = backup_dir(&b);
    let report = applied(&apply(&p, &t, &["--from-backup", dir.to_str().unwrap()]));
    assert_eq!(report["applied"], 30, "{report}");
    assert_equal(&p, &t);
    // A second run finds its own progress and applies nothing.
    let report = applied(&apply(&p, &t, &[]));
    assert_eq!(report["applied"], 0, "{report}");
}

/// mariadb-dump of the primary: the restore sets `gtid_slave_pos`, and
/// apply starts after it with no option at all.
#[test]
fn mariadb_dump_of_the_primary_starts_after_the_restored_gtid_slave_pos() {
    let p = primary("mariadb-bin", 1);
    write(&p, 0..20);
    let t = common::replica_target();
    let dump = dump_and_restore(&p, &DBS, &t);
    assert!(dump.contains("gtid_slave_pos"), "the dump records no GTID");
    write(&p, 20..30);
    let report = applied(&apply(&p, &t, &[]));
    assert_eq!(report["applied"], 20, "{report}");
    assert_equal(&p, &t);
}

/// A parapply replica stopped half-way; a new replica from its backup
/// (mariadb-backup, then mariadb-dump with the progress schema) resumes
/// from the progress tables that travelled in the backup.
#[test]
fn a_backup_of_a_parapply_replica_resumes_from_its_progress_tables() {
    let p = primary("mariadb-bin", 1);
    write(&p, 0..20);
    let r = common::replica_target();
    // 6 groups of setup, 60 of rows: stop half-way.
    let half = applied(&apply(&p, &r, &["--until", "0-1-26"]));
    assert_eq!(half["applied"], 26, "{half}");
    write(&p, 20..30);

    let b = backup(&r);
    let mut t = common::replica_target();
    restore_backup(&b, &mut t);
    let report = applied(&apply(&p, &t, &[]));
    assert_eq!(report["applied"], 40, "{report}");
    assert_equal(&p, &t);

    let t2 = common::replica_target();
    dump_and_restore(&r, &["s1", "s2", "parapply"], &t2);
    let report = applied(&apply(&p, &t2, &[]));
    assert_eq!(report["applied"], 40, "{report}");
    assert_equal(&p, &t2);
}

/// The source's oldest binlog begins after the dump: the error names the
/// missing groups. Progress tables of another primary's stream: an error
/// too, nothing applied.
#[test]
fn mismatched_backups_are_clear_errors() {
    let p = primary("mariadb-bin", 1);
    write(&p, 0..10);
    let t = common::replica_target();
    dump_and_restore(&p, &DBS, &t); // last GTID 0-1-26
    write(&p, 10..15);
    p.exec("FLUSH BINARY LOGS").unwrap();
    write(&p, 15..20);
    // (A file is purged once its transactions are durable in InnoDB.)
    p.wait_binlog_settled(common::HANG_GUARD).unwrap();
    p.exec("PURGE BINARY LOGS TO 'mariadb-bin.000002'").unwrap();
    assert_eq!(p.binlog_files().unwrap().len(), 1, "purged");
    let o = apply(&p, &t, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("gtid_slave_pos says 0-1-26")
            && err.contains("mariadb-bin.000002 begins after 0-1-36")
            && err.contains("after seq 26 up to 36 are missing"),
        "{err}"
    );

    // A parapply replica of q (applied into q's second file), backed up and
    // restored beside another primary's binlog of the same file names.
    let q = primary("mariadb-bin", 1);
    write(&q, 0..10);
    q.exec("FLUSH BINARY LOGS").unwrap();
    write(&q, 10..20);
    let r = common::replica_target();
    applied(&apply(&q, &r, &[]));
    let other = primary("mariadb-bin", 3);
    write(&other, 0..30);
    other.exec("FLUSH BINARY LOGS").unwrap();
    write(&other, 30..31);
    let b = backup(&r);
    let mut t = common::replica_target();
    restore_backup(&b, &mut t);
    let o = apply(&other, &t, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("say 0-1-46 ends at mariadb-bin.000002:")
            && err.contains("begins after 0-3-66")
            && err.contains("another topology"),
        "{err}"
    );
    assert_eq!(
        t.checksums(&["s1"]).unwrap(),
        r.checksums(&["s1"]).unwrap(),
        "nothing applied"
    );
}
