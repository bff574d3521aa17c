//! Faults a hostile test run found, and how a target that stops answering
//! is handled, each against real servers:
//!
//! * the target's own replication (an SQL thread) is refused before
//!   applying and noticed when it starts later; a second applier is locked
//!   out whatever its `--progress-schema`, and hears SIGTERM while it
//!   waits for the lock;
//! * a Rows event without its Table_map is a corrupt group named with its
//!   place, and the groups read before it are applied; `--from GTID`
//!   starts after that GTID (as `gtid_slave_pos` means it);
//! * `apply --follow` waits for a mirror's index to appear; database names
//!   holding terminal escapes are printed escaped by `status` and
//!   `inspect`; the mirror says a refused login once;
//! * a target stopped with SIGSTOP is a lost connection within the
//!   liveness bound (reconnected, exactly once, when it continues; an
//!   error naming it when it does not); SIGSTOP/SIGCONT of the primary and
//!   of the applier lose and repeat nothing;
//! * metrics scraped during a run move with the data; `status` shows the
//!   lag behind the source's end and a running applier's live figures;
//! * the mirror's disk full (a 1 MiB tmpfs: run as root) stops it with a
//!   clear error; after space returns a restart ends byte-identical;
//! * the target's disk full (its table on a 2 MiB tmpfs; mariadbd 10.11
//!   aborts) stops the apply with an error naming the target, after a
//!   consistent prefix; with space back and the server restarted, a rerun
//!   applies the rest once.
//!
//! Run: `cargo test --test hardening` (needs mariadb-server installed).

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parapply::apply::engine::{self, ApplyFailure, ApplyOptions, ApplyReport};
use parapply::binlog::{ReaderOptions, Source};
use parapply::group::{GroupKind, Grouper};
use parapply::position::StartAt;
use parapply::sandbox::Server;
use parapply::wire::ConnectOptions;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_parapply")
}

fn options(source: Source, t: &Server) -> ApplyOptions {
    let mut o = ApplyOptions::new(source, ConnectOptions::new("127.0.0.1", t.port(), "root"));
    o.workers = 4;
    o.reconnect_timeout = Duration::from_secs(60);
    o
}

/// Runs `o` on a thread; the receiver gets its result.
fn spawn_run(o: ApplyOptions) -> mpsc::Receiver<Result<ApplyReport, ApplyFailure>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(engine::run(o));
    });
    rx
}

fn count(t: &Server, sql: &str) -> u64 {
    t.query_first::<u64>(sql).unwrap().unwrap_or(0)
}

/// Waits (under the hang guard) until `f` holds.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + common::HANG_GUARD;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn the_targets_own_replication_and_a_second_applier_are_refused() {
    let p = common::mirror_primary(1 << 20);
    let t = common::replica_target();
    common::two_db_workload(&p, 0, 20);
    let source = || Source::dir(p.binlog_dir()).unwrap();

    // An SQL thread runs on the target (its primary does not even answer).
    t.exec(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=9, MASTER_USER='x', \
         MASTER_USE_GTID=no; START SLAVE SQL_THREAD",
    )
    .unwrap();
    let e = engine::run(options(source(), &t)).unwrap_err().to_string();
    assert!(
        e.contains("replicates by itself") && e.contains("STOP SLAVE SQL_THREAD"),
        "{e}"
    );
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'w1'"
        ),
        0
    );
    t.exec("STOP SLAVE SQL_THREAD").unwrap();

    // A first applier follows the source.
    let mut a = options(source(), &t);
    a.follow = true;
    let stop_a = a.stop.clone();
    let first = spawn_run(a);
    wait_until("the first applier applied the workload", || {
        count(&t, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ('w1','w2') AND TABLE_NAME='t'") == 2
            && count(&t, "SELECT (SELECT COUNT(*) FROM w1.t) + (SELECT COUNT(*) FROM w2.t)") == 20
    });

    // A second one, with another progress schema, waits for the lock and
    // ends on SIGTERM without applying anything.
    let mut second = Command::new(bin())
        .args(["apply", "--progress-schema", "other", "--source"])
        .arg(p.binlog_dir())
        .args(["--target", &format!("mysql://root@127.0.0.1:{}/", t.port())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the second applier waits for the lock", || {
        count(
            &t,
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT GET_LOCK(%'",
        ) > 0
    });
    signal(second.id(), "-TERM");
    let deadline = Instant::now() + common::HANG_GUARD;
    while second.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "SIGTERM was not heard while waiting for the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM other.shard_progress"),
        0,
        "{err}"
    );

    // The target's SQL thread started while the first applier runs: it
    // stops, saying why.
    t.exec("START SLAVE SQL_THREAD").unwrap();
    let r = first
        .recv_timeout(common::HANG_GUARD)
        .expect("the applier did not notice");
    stop_a.store(true, Ordering::SeqCst);
    let e = r
        .expect_err("a running SQL thread must stop the applier")
        .to_string();
    assert!(e.contains("replicates by itself"), "{e}");
    t.exec("STOP SLAVE SQL_THREAD").unwrap();
}

/// A copy of `p`'s binlog in a new directory, with the table id of the
/// first Rows event of group `k` changed (and its checksum fixed); returns
/// the directory and the groups of the original.
fn corrupt_copy(p: &Server, k: usize) -> (tempfile::TempDir, Vec<parapply::group::Group>) {
    let dir = tempfile::tempdir().unwrap();
    copy_binlog(p, dir.path());
    let mut g = Grouper::new(
        parapply::binlog::BinlogReader::open(
            Source::dir(p.binlog_dir()).unwrap(),
            ReaderOptions::default(),
        )
        .unwrap(),
    );
    let mut groups = Vec::new();
    while let Some(x) = g.next().unwrap() {
        groups.push(x);
    }
    let bad = &groups[k];
    let span = bad
        .events
        .iter()
        .find(|s| s.event_type.is_rows())
        .expect("a row group");
    let file: PathBuf = dir.path().join(&*bad.source_file);
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bad.source_pos as usize + span.offset;
    let ev = &mut bytes[at..at + span.len];
    ev[19] ^= 0x40; // the table id's low byte
    let crc = crc32fast::hash(&ev[..span.len - 4]);
    ev[span.len - 4..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&file, bytes).unwrap();
    (dir, groups)
}

#[test]
fn a_corrupt_group_is_refused_after_the_groups_before_it_and_from_starts_after_its_gtid() {
    let p = common::mirror_primary(1 << 20);
    let t = common::replica_target();
    common::two_db_workload(&p, 0, 20);
    let k = 14;
    let (dir, groups) = corrupt_copy(&p, k);
    let first_dml = groups
        .iter()
        .position(|g| g.kind == GroupKind::RowDml)
        .unwrap();
    // The target applied the schema and the first transaction by itself
    // (as a replica's SQL thread had): `--from` names that GTID.
    t.exec(
        "CREATE DATABASE w1; CREATE DATABASE w2; \
         CREATE TABLE w1.t (id INT PRIMARY KEY, v VARCHAR(200)); \
         CREATE TABLE w2.t (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO w1.t VALUES (0, 'u')",
    )
    .unwrap();
    let mut o = options(Source::dir(dir.path()).unwrap(), &t);
    o.from = Some(StartAt::Gtid(groups[first_dml].maria_gtid().unwrap()));
    let f = engine::run(o).expect_err("a corrupt group must stop the run");
    let e = f.error.to_string();
    let bad = groups[k].maria_gtid().unwrap();
    assert!(
        e.contains(&format!(
            "corrupt transaction group {bad} (mariadb-bin.000001:"
        )) && e.contains("without a Table_map"),
        "{e}"
    );
    // Everything between the start and the bad group is applied, nothing
    // twice (a duplicate key would have stopped it first).
    let between = k - first_dml - 1;
    assert_eq!(
        (f.report.applied, f.report.skipped),
        (between as u64, 1),
        "{e}"
    );
    assert_eq!(
        count(
            &t,
            "SELECT (SELECT COUNT(*) FROM w1.t) + (SELECT COUNT(*) FROM w2.t)"
        ),
        1 + between as u64
    );
    assert_eq!(
        f.report.gtid_position,
        groups[k - 1].maria_gtid().unwrap().to_string()
    );
}

fn copy_binlog(from: &Server, to: &Path) {
    let mut names = String::new();
    for f in from.binlog_files().unwrap() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(&f, to.join(&name)).unwrap();
        names.push_str(&format!("./{name}\n"));
    }
    // The index last: as a mirror publishes it.
    std::fs::write(to.join("mariadb-bin.index"), names).unwrap();
}

#[test]
fn follow_waits_for_the_index_names_are_escaped_and_a_refused_login_is_said_once() {
    let p = common::mirror_primary(1 << 20);
    let t = common::replica_target();
    p.exec(
        "CREATE DATABASE `evil\x1b[31m\nforged`; \
         CREATE TABLE `evil\x1b[31m\nforged`.t (i INT PRIMARY KEY); \
         INSERT INTO `evil\x1b[31m\nforged`.t VALUES (1)",
    )
    .unwrap();

    // `apply --follow` started before the mirror has written anything.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("mirror");
    let log = tmp.path().join("apply.log");
    let mut child = Command::new(bin())
        .args(["apply", "--follow", "--source"])
        .arg(&src)
        .args(["--target", &format!("mysql://root@127.0.0.1:{}/", t.port())])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_until("apply says it waits for the binlog", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("waiting for the binlog to appear"))
    });
    std::fs::create_dir(&src).unwrap();
    copy_binlog(&p, &src);
    wait_until("the rows arrived", || {
        t.query_first::<u64>("SELECT COUNT(*) FROM `evil\x1b[31m\nforged`.t")
            .ok()
            .flatten()
            == Some(1)
    });
    signal(child.id(), "-INT");
    assert!(
        child.wait().unwrap().success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );

    // Text output shows the name escaped; JSON escapes it by itself.
    // Each command's text output, with the name shown escaped (a listing
    // of events folds the newline of a statement into a space).
    let target = format!("mysql://root@127.0.0.1:{}/", t.port());
    let src_arg = src.to_string_lossy().into_owned();
    for args in [
        vec!["status", "--target", &target],
        vec!["inspect", "--groups", &src_arg],
        vec!["inspect", &src_arg],
    ] {
        let out = Command::new(bin()).args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {text}");
        assert!(
            !text.contains('\x1b') && text.contains("evil\\u{1b}[31m"),
            "{args:?}: {text}"
        );
    }

    // The mirror's refused login: one message, without the password.
    p.exec("CREATE USER 'repl'@'%' IDENTIFIED BY 'repl-secret-9'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'")
        .unwrap();
    let out = Command::new(bin())
        .args(["mirror", "--server-id", "77", "--dir"])
        .arg(tmp.path().join("m2"))
        .args([
            "--primary",
            &format!("mysql://repl@127.0.0.1:{}/", p.port()),
        ])
        .env("PARAPPLY_PRIMARY_PASSWORD", "wrong-secret-8")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("cannot log in as `repl`").count(), 1, "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn a_stopped_target_is_a_lost_connection_within_the_liveness_bound() {
    let p = common::mirror_primary(16 << 20);
    let t = common::replica_target();
    common::load_small_transactions(&p, "h", 8, 3000);
    let pid = t.pid().expect("the target runs");
    let dbs: Vec<String> = (0..8).map(|d| format!("h{d}")).collect();
    let refs: Vec<&str> = dbs.iter().map(String::as_str).collect();
    // Rows of `db`.t on the target (0 while it does not exist).
    let rows = |db: &str| {
        t.query_first::<u64>(&format!("SELECT COUNT(*) FROM {db}.t"))
            .ok()
            .flatten()
            .unwrap_or(0)
    };
    let run = |db: &str, reconnect: u64, stopped_for: Option<Duration>| {
        let mut o = options(Source::dir(p.binlog_dir()).unwrap(), &t);
        o.batch_groups = 1;
        o.liveness = Duration::from_secs(1);
        o.target.connect_timeout = Duration::from_secs(2);
        o.reconnect_timeout = Duration::from_secs(reconnect);
        let rx = spawn_run(o);
        wait_until("the run applies", || rows(db) > 10);
        signal(pid, "-STOP");
        let r = match stopped_for {
            Some(d) => {
                std::thread::sleep(d);
                signal(pid, "-CONT");
                rx.recv_timeout(common::HANG_GUARD)
            }
            None => {
                let r = rx.recv_timeout(common::HANG_GUARD);
                signal(pid, "-CONT");
                r
            }
        };
        r.expect("the run hung on a stopped target")
    };

    // Stopped longer than the liveness bound (1 s + a 2 s probe), then
    // continued: the workers reconnect and everything is applied once.
    let r = run("h0", 60, Some(Duration::from_secs(8))).unwrap_or_else(|f| panic!("{}", f.error));
    assert!(r.reconnects >= 1, "{r:?}");
    assert_eq!(p.checksums(&refs).unwrap(), t.checksums(&refs).unwrap());

    // Stopped for good: an error naming the target, not a hang.
    common::load_small_transactions(&p, "k", 8, 3000);
    let f = run("k0", 3, None).expect_err("a target that never answers again is an error");
    assert!(f.error.is_transient(), "{}", f.error);
    // The next run completes, exactly once.
    let r = engine::run(options(Source::dir(p.binlog_dir()).unwrap(), &t))
        .unwrap_or_else(|f| panic!("{}", f.error));
    assert!(r.applied > 0);
    let dbs: Vec<String> = (0..8)
        .flat_map(|d| [format!("h{d}"), format!("k{d}")])
        .collect();
    let refs: Vec<&str> = dbs.iter().map(String::as_str).collect();
    assert_eq!(p.checksums(&refs).unwrap(), t.checksums(&refs).unwrap());
}

/// A free loopback port (bound, then released).
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// `parapply mirror` of `p` into `dir` (fsync every event), quiet.
fn spawn_mirror(p: &Server, dir: &Path, server_id: u32, extra: &[&str]) -> std::process::Child {
    Command::new(bin())
        .args([
            "mirror",
            "--sync",
            "every",
            "--server-id",
            &server_id.to_string(),
        ])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .args([
            "--primary",
            &format!("mysql://root@127.0.0.1:{}/", p.port()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `parapply apply --follow` of `dir` onto `t` with 4 workers, quiet.
fn spawn_follow(t: &Server, dir: &Path, extra: &[&str]) -> std::process::Child {
    Command::new(bin())
        .args(["apply", "--follow", "--workers", "4"])
        .args(extra)
        .arg("--source")
        .arg(dir)
        .args(["--target", &format!("mysql://root@127.0.0.1:{}/", t.port())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn scrape(addr: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let page = parapply::metrics::scrape(addr).ok()?;
    parapply::metrics::sample_value(&page, name, labels)
}

#[test]
fn metrics_move_with_the_data_and_status_shows_lag_and_live_figures() {
    let p = common::mirror_primary(1 << 20);
    let t = common::replica_target();
    common::two_db_workload(&p, 0, 40);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mirror");
    let (mirror_at, apply_at) = (free_addr(), free_addr());
    let mut mirror = spawn_mirror(&p, &dir, 71, &["--metrics", &mirror_at]);
    let mut apply = spawn_follow(&t, &dir, &["--metrics", &apply_at]);
    // Every group of the primary's binlog, one seq_no each from 1.
    let newest = || -> f64 {
        let pos = p.gtid_binlog_pos().unwrap();
        pos.rsplit('-').next().unwrap().parse().unwrap()
    };
    let at = apply_at.as_str();
    let groups = |n: f64| move || scrape(at, "parapply_apply_groups_total", &[]) == Some(n);
    let n1 = newest();
    wait_until("the applier reports every group", groups(n1));
    let mirrored = scrape(&mirror_at, "parapply_mirror_bytes_total", &[]).unwrap();
    assert!(mirrored > 0.0);
    let seq = |addr: &str, shard: &str| {
        scrape(
            addr,
            "parapply_apply_shard_watermark_seq_no",
            &[("domain", "0"), ("shard", shard)],
        )
    };
    let w1 = seq(&apply_at, "w1").unwrap();
    let w2 = seq(&apply_at, "w2").unwrap();
    assert_eq!(w1.max(w2), n1, "the newest group's seq_no");

    // More data: the figures move with it.
    common::two_db_workload(&p, 40, 20);
    let n2 = newest();
    assert!(n2 >= n1 + 20.0);
    wait_until("the applier reports the new groups", groups(n2));
    assert_eq!(
        seq(&apply_at, "w1")
            .unwrap()
            .max(seq(&apply_at, "w2").unwrap()),
        n2
    );
    wait_until("the low-watermark reaches the newest group", || {
        scrape(
            &apply_at,
            "parapply_apply_low_watermark_seq_no",
            &[("domain", "0")],
        ) == Some(n2)
    });
    assert_eq!(
        scrape(&apply_at, "parapply_apply_latency_seconds_count", &[]),
        Some(n2)
    );
    assert!(scrape(
        &apply_at,
        "parapply_apply_commit_lag_seconds",
        &[("quantile", "0.99")]
    )
    .is_some());
    assert!(scrape(&mirror_at, "parapply_mirror_bytes_total", &[]).unwrap() > mirrored);
    let page = parapply::metrics::scrape(&mirror_at).unwrap();
    assert!(
        page.contains("parapply_mirror_position_bytes{file=\"mariadb-bin.000001\"}"),
        "{page}"
    );

    // status: nothing left, no lag; the live figures of the running applier.
    let out = Command::new(bin())
        .args(["status", "--json", "--live", &apply_at, "--target"])
        .arg(format!("mysql://root@127.0.0.1:{}/", t.port()))
        .arg("--source")
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(
        v["lag"],
        serde_json::json!({"seconds": 0, "bytes": 0}),
        "{v}"
    );
    assert_eq!(v["live"]["groups_total"], n2, "{v}");
    assert_eq!(v["live"]["lag_seconds"], 0.0, "{v}");

    // Stopped, with work left behind: status shows the lag in bytes.
    signal(apply.id(), "-INT");
    assert!(apply.wait().unwrap().success());
    common::two_db_workload(&p, 60, 10);
    let n3 = newest();
    wait_until("status sees the new transactions pending", || {
        let own = Command::new(bin())
            .args(["status", "--json", "--target"])
            .arg(format!("mysql://root@127.0.0.1:{}/", t.port()))
            .arg("--source")
            .arg(&dir)
            .output()
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&own.stdout).trim()).unwrap();
        v["pending"]["groups"] == n3 - n2 && v["lag"]["bytes"].as_u64().unwrap() > 0
    });
    let out = Command::new(bin())
        .args(["status", "--target"])
        .arg(format!("mysql://root@127.0.0.1:{}/", t.port()))
        .arg("--source")
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{} groups (", n3 - n2))
            && text.contains("lag behind the source's end: "),
        "{text}"
    );
    signal(mirror.id(), "-INT");
    assert!(mirror.wait().unwrap().success());
}

/// A small tmpfs, unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(at: &Path, size: &str) -> SmallFs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("mount(8) is needed (util-linux)");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it: run it as root (or with CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFs(at.to_path_buf())
    }

    fn grow(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {}", self.0.display());
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_mirror_clearly_and_it_resumes_byte_identically() {
    let p = common::mirror_primary(64 << 20);
    p.exec("CREATE DATABASE big; CREATE TABLE big.t (i INT PRIMARY KEY, v LONGTEXT)")
        .unwrap();
    for i in 0..40 {
        p.exec(&format!(
            "INSERT INTO big.t VALUES ({i}, REPEAT('y', 60000))"
        ))
        .unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let fs = SmallFs::mount(&tmp.path().join("small"), "1m");
    let dir = fs.0.join("mirror");
    let mirror = || {
        let mut c = Command::new(bin());
        c.args(["mirror", "--server-id", "81", "--sync", "every", "--dir"])
            .arg(&dir)
            .args([
                "--primary",
                &format!("mysql://root@127.0.0.1:{}/", p.port()),
            ]);
        c
    };
    // The disk fills: the mirror stops with an error naming the file.
    let out = mirror().output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("No space left on device") && err.contains("mariadb-bin.000001"),
        "{err}"
    );
    // Space returns; a restart resumes and ends byte-identical.
    fs.grow("64m");
    let mut child = mirror().stderr(Stdio::piped()).spawn().unwrap();
    let original = p.binlog_files().unwrap();
    let same = || {
        original
            .iter()
            .all(|f| std::fs::read(dir.join(f.file_name().unwrap())).ok() == std::fs::read(f).ok())
    };
    wait_until("the mirror is byte-identical to the primary's binlog", same);
    signal(child.id(), "-INT");
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert!(same());
}

/// MariaDB 10.11 does not survive this: InnoDB aborts the server when a
/// page write finds the disk full (its error log shows the assertion and a
/// core dump). What parapply owes is a clear stop without a hang, and a
/// consistent prefix that a rerun completes exactly once after a restart.
#[test]
fn a_full_disk_on_the_target_stops_apply_and_leaves_a_consistent_prefix() {
    let p = common::mirror_primary(64 << 20);
    // The target's copy of the table lives on a 2 MiB tmpfs (DATA
    // DIRECTORY); the primary's is ordinary, and its DDL is not logged.
    // (The mount is declared first: it is unmounted after the server.)
    let tmp = tempfile::tempdir().unwrap();
    let fs = SmallFs::mount(&tmp.path().join("small"), "2m");
    let mut t = common::replica_target();
    let ddl = "CREATE DATABASE big; CREATE TABLE big.t (i INT PRIMARY KEY, v LONGTEXT)";
    p.exec(&format!("SET sql_log_bin = 0; {ddl}; SET sql_log_bin = 1"))
        .unwrap();
    t.exec(&format!("{ddl} DATA DIRECTORY = '{}'", fs.0.display()))
        .unwrap();
    let rows = 60u64;
    for i in 0..rows {
        p.exec(&format!(
            "INSERT INTO big.t VALUES ({i}, REPEAT('y', 60000))"
        ))
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    copy_binlog(&p, dir.path());
    let run = |t: &Server| {
        let mut o = options(Source::dir(dir.path()).unwrap(), t);
        o.reconnect_timeout = Duration::from_secs(5);
        engine::run(o)
    };
    let f = run(&t).expect_err("the target's disk fills");
    let e = f.error.to_string();
    println!(
        "target disk full: stopped after {} groups: {e}",
        f.report.applied
    );
    assert!(
        e.contains(&format!("127.0.0.1:{}", t.port())),
        "names the target: {e}"
    );
    assert!(f.report.applied < rows, "{e}");
    // Space returns and the server restarts (crash recovery): the rows
    // are a prefix, 0..n, and a rerun applies the rest, each once.
    fs.grow("64m");
    t.restart().unwrap();
    let n = count(&t, "SELECT COUNT(*) FROM big.t");
    assert_eq!(count(&t, "SELECT COALESCE(MAX(i) + 1, 0) FROM big.t"), n);
    assert!(
        n >= f.report.applied,
        "{n} rows, {} reported",
        f.report.applied
    );
    let r = run(&t).unwrap_or_else(|f| panic!("{}", f.error));
    println!("after the restart: {n} rows there, {} applied", r.applied);
    assert_eq!(r.applied, rows - n);
    assert_eq!(count(&t, "SELECT COUNT(*) FROM big.t"), rows);
    assert_eq!(count(&t, "SELECT COUNT(DISTINCT i) FROM big.t"), rows);
}

#[test]
fn sigstop_of_the_primary_and_of_the_applier_loses_and_repeats_nothing() {
    let p = common::mirror_primary(1 << 20);
    let t = common::replica_target();
    common::two_db_workload(&p, 0, 50);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mirror");
    let mut mirror = spawn_mirror(&p, &dir, 82, &[]);
    let mut apply = spawn_follow(&t, &dir, &[]);
    let dbs = ["w1", "w2"];
    let caught_up = || {
        t.checksums(&dbs).ok() == p.checksums(&dbs).ok()
            && p.binlog_files().unwrap().iter().all(|f| {
                std::fs::read(dir.join(f.file_name().unwrap())).ok() == std::fs::read(f).ok()
            })
    };
    wait_until("the replica caught up", caught_up);

    // The primary stops answering (longer than the mirror's heartbeat
    // bound), then continues and writes more.
    let primary = p.pid().unwrap();
    signal(primary, "-STOP");
    std::thread::sleep(Duration::from_secs(8));
    signal(primary, "-CONT");
    common::two_db_workload(&p, 50, 50);
    wait_until("the replica caught up after the primary's stop", caught_up);

    // The applier is stopped while the primary writes, then continues.
    signal(apply.id(), "-STOP");
    common::two_db_workload(&p, 100, 50);
    std::thread::sleep(Duration::from_secs(2));
    signal(apply.id(), "-CONT");
    wait_until("the replica caught up after the applier's stop", caught_up);

    for c in [&mut apply, &mut mirror] {
        signal(c.id(), "-INT");
        assert!(c.wait().unwrap().success());
    }
}
