//! The `parapply apply` and `status` commands as an operator runs them:
//! the password from the environment (never argv or a log line), clear
//! preflight errors for a wrong password and a missing privilege, `--follow`
//! tailing a live binlog, SIGINT draining to one consistent position and
//! printing the statement that hands over to the server's own SQL thread,
//! `status` reporting the watermarks and what is left, and a closed standard
//! output (`parapply status | head`) ending every command quietly.
//!
//! Run: `cargo test --test apply_cli` (needs mariadb-server installed).

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use parapply::sandbox::{Server, ServerOptions};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_parapply")
}

fn servers() -> (Server, Server) {
    let p = Server::start(ServerOptions::new().server_id(1).log_bin("mariadb-bin")).unwrap();
    let t = common::replica_target();
    p.exec("CREATE DATABASE s1; CREATE DATABASE s2; CREATE TABLE s1.t (i INT PRIMARY KEY); CREATE TABLE s2.t (i INT PRIMARY KEY)")
        .unwrap();
    for i in 0..50 {
        p.exec(&format!("INSERT INTO s{}.t VALUES ({i})", 1 + i % 2))
            .unwrap();
    }
    (p, t)
}

fn apply(p: &Server, user: &str, port: u16, password: Option<&str>, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(["apply", "--workers", "4", "--source"])
        .arg(p.binlog_dir())
        .args(["--target", &format!("mysql://{user}@127.0.0.1:{port}/")])
        .args(extra)
        .env_remove("PARAPPLY_TARGET_PASSWORD");
    if let Some(pw) = password {
        c.env("PARAPPLY_TARGET_PASSWORD", pw);
    }
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn wrong_password_and_missing_privilege_are_clear_errors_without_the_secret() {
    let (p, t) = servers();
    t.exec(
        "CREATE USER 'app'@'%' IDENTIFIED BY 'right-secret-1';
         GRANT ALL ON *.* TO 'app'@'%';
         CREATE USER 'weak'@'%' IDENTIFIED BY 'weak-secret-2';
         GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON *.* TO 'weak'@'%'",
    )
    .unwrap();
    let out = apply(&p, "app", t.port(), Some("not-the-password-3"), &[])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot log in as `app`") && err.contains("1045"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-password-3"),
        "the secret leaked: {err}"
    );

    let out = apply(&p, "weak", t.port(), Some("weak-secret-2"), &[])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(err.contains("replaying binlog events is refused"), "{err}");
    assert!(err.contains("BINLOG REPLAY"), "{err}");
    assert!(!err.contains("weak-secret-2"));

    // A password in the URL is refused (it would show in `ps`).
    let out = Command::new(bin())
        .args(["apply", "--source"])
        .arg(p.binlog_dir())
        .args([
            "--target",
            &format!("mysql://app:right-secret-1@127.0.0.1:{}/", t.port()),
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(!err.contains("right-secret-1"), "{err}");
    // It names the target's own variable, not another connection's.
    assert!(
        err.contains("PARAPPLY_TARGET_PASSWORD") && !err.contains("PRIMARY"),
        "{err}"
    );

    // The right password from the environment works.
    let out = apply(&p, "app", t.port(), Some("right-secret-1"), &[])
        .output()
        .unwrap();
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(stdout.contains("applied 54 groups"), "{stdout}");
}

#[test]
fn follow_tails_new_writes_and_sigint_drains_to_one_position() {
    let (p, t) = servers();
    let mut child = apply(&p, "root", t.port(), None, &["--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let count = |t: &Server| -> u64 {
        let a: Option<u64> = t.query_first("SELECT COUNT(*) FROM s1.t").unwrap_or(None);
        let b: Option<u64> = t.query_first("SELECT COUNT(*) FROM s2.t").unwrap_or(None);
        a.unwrap_or(0) + b.unwrap_or(0)
    };
    let wait_for = |n: u64| {
        let deadline = Instant::now() + common::HANG_GUARD;
        while count(&t) != n {
            assert!(
                Instant::now() < deadline,
                "target has {} rows, want {n}",
                count(&t)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(50);
    for i in 50..80 {
        p.exec(&format!("INSERT INTO s{}.t VALUES ({i})", 1 + i % 2))
            .unwrap();
    }
    p.exec("FLUSH BINARY LOGS").unwrap();
    for i in 80..100 {
        p.exec(&format!("INSERT INTO s{}.t VALUES ({i})", 1 + i % 2))
            .unwrap();
    }
    wait_for(100);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + common::HANG_GUARD;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "apply did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let pos = p.gtid_binlog_pos().unwrap();
    assert!(
        stdout.contains(&format!("SET GLOBAL gtid_slave_pos='{pos}'")),
        "{stdout}\n{err}"
    );

    // status: every shard reported, nothing pending.
    let out = Command::new(bin())
        .args([
            "status",
            "--json",
            "--target",
            &format!("mysql://root@127.0.0.1:{}/", t.port()),
        ])
        .arg("--source")
        .arg(p.binlog_dir())
        .output()
        .unwrap();
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["pending"]["groups"], 0, "{v}");
    assert_eq!(v["drained"], true, "{v}");
    let shards: Vec<&str> = v["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shard"].as_str().unwrap())
        .collect();
    assert_eq!(shards, ["s1", "s2"], "{v}");
    assert_eq!(v["low_watermark"][0]["gtid"], pos.as_str(), "{v}");
}

/// A group that fails stops `apply` with an error naming that group (its
/// GTID, position and database), and the command still prints where the
/// applied prefix ends: the groups before it are applied, and the next run
/// resumes there.
#[test]
fn an_error_names_the_failing_group_and_prints_the_final_position() {
    let (p, t) = servers();
    let out = apply(&p, "root", t.port(), None, &[]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    for i in 100..105 {
        p.exec(&format!("INSERT INTO s1.t VALUES ({i})")).unwrap();
    }
    let before = p.gtid_binlog_pos().unwrap();
    // The replica diverged: it has the row the primary inserts next.
    t.exec("INSERT INTO s1.t VALUES (1000)").unwrap();
    p.exec("INSERT INTO s1.t VALUES (1000)").unwrap();
    let failing = p.gtid_binlog_pos().unwrap();
    // One transaction per group: the five before the failing one commit.
    let out = apply(&p, "root", t.port(), None, &["--batch", "1"])
        .output()
        .unwrap();
    let (stdout, err) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        err.contains(&format!("apply failed at {failing} (mariadb-bin.")),
        "{err}"
    );
    assert!(err.contains(") in s1: server error 1062"), "{err}");
    assert!(
        stdout.contains("applied 5 groups") && stdout.contains(&format!("GTID position {before}")),
        "{stdout}"
    );
}

/// Runs `cmd` with a standard output whose reading end is already closed
/// (as `parapply … | head` ends up once `head` has exited): the command must
/// end quietly — exit 0, no error, no panic.
fn assert_quiet_with_stdout_closed(mut cmd: Command, what: &str) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = cmd.stdout(writer).stderr(Stdio::piped()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("error") && !err.contains("panicked"),
        "{what} with stdout closed: {:?}\n{err}",
        out.status
    );
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let (p, t) = servers();
    let target = format!("mysql://root@127.0.0.1:{}/", t.port());

    let mut inspect = Command::new(bin());
    inspect.args(["inspect", "--groups"]).arg(p.binlog_dir());
    assert_quiet_with_stdout_closed(inspect, "inspect");

    assert_quiet_with_stdout_closed(apply(&p, "root", t.port(), None, &[]), "apply");
    // It applied before it found nobody to tell.
    let rows: Option<u64> = t.query_first("SELECT COUNT(*) FROM s1.t").unwrap();
    assert_eq!(rows, Some(25));

    // A failure stays one: its error is reported (exit 1) although the
    // report printed before it found nobody reading.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = apply(&p, "nobody", t.port(), None, &["--json"])
        .stdout(writer)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot log in as `nobody`"),
        "{:?}\n{err}",
        out.status
    );

    for json in [false, true] {
        let mut status = Command::new(bin());
        status.args(["status", "--target", &target]);
        if json {
            status.arg("--json");
        }
        status.arg("--source").arg(p.binlog_dir());
        assert_quiet_with_stdout_closed(status, "status");
    }
}

/// Runs `c`, which must succeed; its standard output.
fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    stdout
}

fn status_json(p: &Server, t: &Server) -> serde_json::Value {
    let stdout = run_ok(
        Command::new(bin())
            .args(["status", "--json"])
            .args(["--target", &format!("mysql://root@127.0.0.1:{}/", t.port())])
            .arg("--source")
            .arg(p.binlog_dir()),
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

fn wait_cmd(t: &Server, p: &Server, gtid: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(["wait", "--gtid", gtid])
        .args(["--target", &format!("mysql://root@127.0.0.1:{}/", t.port())])
        .arg("--source")
        .arg(p.binlog_dir())
        .args(extra)
        .env_remove("PARAPPLY_TARGET_PASSWORD");
    c
}

/// `parapply wait`: reached (by the low-watermark, and by a shard's
/// watermark while the low-watermark lags), timed out, reached while
/// waiting, and unknown (the source passed the GTID), each with its exit
/// code.
#[test]
fn wait_returns_when_a_group_is_applied_with_exit_codes_for_timeout_and_unknown() {
    let (p, t) = servers(); // groups 0-1-1 … 0-1-54 (4 DDL, 50 inserts)
                            // A gap: 0-1-55 … 0-1-999 never exist.
    p.exec("SET gtid_seq_no = 1000; INSERT INTO s1.t VALUES (1000)")
        .unwrap();
    let code = |o: &Output| o.status.code();
    let out = apply(&p, "root", t.port(), None, &["--until", "0-1-20"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);

    let out = wait_cmd(&t, &p, "0-1-10", &["--timeout", "0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("0-1-10 is applied"),
        "{:?}",
        text(&out)
    );

    let out = wait_cmd(&t, &p, "0-1-30", &["--timeout", "0.3"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{:?}", text(&out));

    let out = wait_cmd(&t, &p, "0-1-500", &["--timeout", "30", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(4), "{:?}", text(&out));
    let v: serde_json::Value = serde_json::from_str(text(&out).0.trim()).unwrap();
    assert_eq!(v["outcome"], "unknown", "{v}");
    assert_eq!(v["passed_by"], "0-1-1000", "{v}");

    // Reached while waiting: the rest is applied meanwhile.
    let waiting = wait_cmd(&t, &p, "0-1-40", &["--timeout", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = apply(&p, "root", t.port(), None, &[]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(code(&out), Some(0), "{:?}", text(&out));
    assert_eq!(
        t.query_first::<u64>("SELECT COUNT(*) FROM s1.t WHERE i = 40")
            .unwrap(),
        Some(1)
    );

    // A low-watermark that lags (as between two of its periodic writes):
    // put it back to the end of 0-1-4, where the GTID event of 0-1-5 starts.
    let rows: Vec<(String, u64, String, u64, String)> = p
        .query("SHOW BINLOG EVENTS IN 'mariadb-bin.000001'")
        .unwrap()
        .into_iter()
        .map(
            |(f, pos, ty, _sid, end, info): (String, u64, String, u64, u64, String)| {
                (f, pos, ty, end, info)
            },
        )
        .collect();
    let (file, gtid5_pos) = rows
        .iter()
        .find(|r| r.2 == "Gtid" && r.4.ends_with("GTID 0-1-5"))
        .map(|r| (r.0.clone(), r.1))
        .expect("the GTID event of 0-1-5");
    t.exec(&format!(
        "UPDATE parapply.low_watermark SET seq_no = 4, file = '{file}', end_pos = {gtid5_pos}"
    ))
    .unwrap();
    // 0-1-41 (an insert into s1) is covered by the watermark of shard s1.
    let out = wait_cmd(&t, &p, "0-1-41", &["--timeout", "0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{:?}", text(&out));
    // Without the source its shard is unknown: only the low-watermark counts.
    let out = Command::new(bin())
        .args(["wait", "--gtid", "0-1-41", "--timeout", "0"])
        .args(["--target", &format!("mysql://root@127.0.0.1:{}/", t.port())])
        .env_remove("PARAPPLY_TARGET_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{:?}", text(&out));
}

/// `--ignore-server-ids`: the groups of server 7 (as if they came back
/// around a ring) are not applied, the others are, and the watermarks move
/// past them: nothing is pending, and a second run reads nothing again.
#[test]
fn ignore_server_ids_leaves_out_a_servers_groups_and_moves_past_them() {
    let (p, t) = servers(); // 0-1-1 … 0-1-54
    p.exec(
        "SET SESSION server_id = 7; INSERT INTO s1.t VALUES (700); \
         INSERT INTO s2.t VALUES (701); SET SESSION server_id = 1; \
         INSERT INTO s1.t VALUES (702)",
    )
    .unwrap();
    let stdout = run_ok(&mut apply(
        &p,
        "root",
        t.port(),
        None,
        &["--ignore-server-ids", "7,9"],
    ));
    assert!(stdout.contains("applied 55 groups"), "{stdout}");
    assert!(stdout.contains("ignored 2 groups"), "{stdout}");
    let has = |q: &str| t.query_first::<u64>(q).unwrap();
    assert_eq!(
        has("SELECT COUNT(*) FROM s1.t WHERE i IN (700, 702)"),
        Some(1)
    );
    assert_eq!(has("SELECT COUNT(*) FROM s1.t WHERE i = 702"), Some(1));
    assert_eq!(has("SELECT COUNT(*) FROM s2.t WHERE i = 701"), Some(0));
    let v = status_json(&p, &t);
    assert_eq!(v["low_watermark"][0]["gtid"], "0-1-57", "{v}");
    assert_eq!(v["pending"]["groups"], 0, "{v}");
    let stdout = run_ok(&mut apply(
        &p,
        "root",
        t.port(),
        None,
        &["--ignore-server-ids", "7"],
    ));
    assert!(stdout.contains("applied 0 groups (0 skipped"), "{stdout}");
}

/// Point-in-time recovery: `--until-time` stops before the first group the
/// primary logged at or after the moment; the target then equals the
/// primary's snapshot taken at that moment (table checksums).
#[test]
fn until_time_recovers_to_a_moment() {
    use std::time::{SystemTime, UNIX_EPOCH};
    let (p, t) = servers(); // 0-1-1 … 0-1-54
    let unix = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let moment = unix().as_secs() + 1;
    while unix().as_secs() < moment {
        std::thread::sleep(Duration::from_millis(20));
    }
    let snapshot = p.checksums(&["s1", "s2"]).unwrap();
    for i in 100..120 {
        p.exec(&format!("INSERT INTO s{}.t VALUES ({i})", 1 + i % 2))
            .unwrap();
    }
    let o = Command::new("date")
        .args(["-u", "-d", &format!("@{moment}"), "+%F %T"])
        .output()
        .unwrap();
    let when = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let stdout = run_ok(&mut apply(
        &p,
        "root",
        t.port(),
        None,
        &["--until-time", &when],
    ));
    assert!(stdout.contains("applied 54 groups"), "{stdout}");
    assert!(stdout.contains("GTID position 0-1-54"), "{stdout}");
    assert_eq!(t.checksums(&["s1", "s2"]).unwrap(), snapshot);
    assert_ne!(p.checksums(&["s1", "s2"]).unwrap(), snapshot);
}
