//! `parapply demo --short --keep --json` end to end (issue 17, item 4):
//! the binary runs the whole story on its throwaway servers and prints its
//! closing summary as JSON, then keeps every server running; this test
//! checks the summary against those servers (each replica's checksums and
//! ledger recomputed here, one writable server: the promoted one, nothing
//! of the longest mirror or of the new writes missing, the two replicas
//! whose reports locked a database incomparable), then sends SIGINT (as
//! Ctrl-C) and checks that the demo exits cleanly and removes every
//! server's directory. No timing is asserted: the speed-up is the demo's
//! figure to print, not this test's to judge.
//!
//! Run: `cargo test --test demo -- --nocapture` (needs mariadb-server;
//! scripts/test installs it).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parapply::wire::{Conn, ConnectOptions};
use serde_json::Value;

/// The workload's tables, as the demo names them.
fn tables() -> Vec<String> {
    (1..=8)
        .flat_map(|i| [format!("shop{i}.ledger"), format!("shop{i}.totals")])
        .collect()
}

fn conn(port: u16) -> Conn {
    Conn::connect(&ConnectOptions::new("127.0.0.1", port, "root"))
        .expect("connect to a kept server")
}

/// `CHECKSUM TABLE … EXTENDED` of every workload table, computed here.
fn checksums(c: &mut Conn) -> BTreeMap<String, u64> {
    let sql = format!("CHECKSUM TABLE {} EXTENDED", tables().join(", "));
    c.query_rows(&sql)
        .expect("checksum")
        .iter()
        .map(|r| {
            let text =
                |i: usize| String::from_utf8(r[i].clone().expect("not NULL")).expect("UTF-8");
            (text(0), text(1).parse().expect("a number"))
        })
        .collect()
}

fn value(c: &mut Conn, sql: &str) -> u64 {
    c.query_value(sql)
        .expect(sql)
        .expect("a value")
        .parse()
        .expect("a number")
}

#[test]
fn short_demo_summary_holds_on_the_servers_and_ctrl_c_removes_them() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parapply"))
        .args(["demo", "--short", "--keep", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start parapply demo");
    // The story (standard error) is shown as it comes.
    let mut story = child.stderr.take().unwrap();
    let story = std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = story.read(&mut buf) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n]);
            eprint!("{text}");
            all.push_str(&text);
        }
        all
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = match lines.next() {
        Some(Ok(l)) => l,
        other => {
            let status = child.wait().unwrap();
            panic!("no summary line ({other:?}); the demo exited with {status}");
        }
    };
    let s: Value = serde_json::from_str(&line).expect("the summary is JSON");

    assert_eq!(s["mode"], "short");
    assert_eq!(s["checksums_equal"], true, "{s}");
    assert_eq!(s["lost_orders"], 0, "{s}");
    assert_eq!(s["writable_servers"], 1, "{s}");
    assert_eq!(s["promotion"]["lost_groups"], 0, "{s}");
    let in_mirror = s["orders_in_longest_mirror"].as_u64().unwrap();
    let new = s["new_orders"].as_u64().unwrap();
    assert!(in_mirror > 300 && new > 0, "{s}");
    // An order is acknowledged when its COMMIT answered; one a client was
    // committing when the primary died may be in the binlog unacknowledged
    // (at most one per client: the short demo runs 2).
    assert!(
        s["orders_acknowledged"].as_u64().unwrap() + 2 >= in_mirror,
        "{s}"
    );
    let r1_r2 = s["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["a"] == "r1" && p["b"] == "r2")
        .expect("r1/r2 compared");
    assert_eq!(r1_r2["order"], "incomparable", "{s}");
    assert!(s["race"]["sql_thread_seconds"].as_f64().unwrap() > 0.0);

    // The summary against the servers themselves.
    let primary = s["promotion"]["primary"].as_str().unwrap();
    let replicas = s["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 3);
    let mut first: Option<BTreeMap<String, u64>> = None;
    for r in replicas {
        let name = r["name"].as_str().unwrap();
        let mut c = conn(r["port"].as_u64().unwrap() as u16);
        let sums = checksums(&mut c);
        assert_eq!(sums.len(), 16, "{name}: {sums:?}");
        let reported: BTreeMap<String, u64> =
            serde_json::from_value(r["checksums"].clone()).unwrap();
        assert_eq!(sums, reported, "{name}: the summary's checksums");
        match &first {
            None => first = Some(sums),
            Some(f) => assert_eq!(&sums, f, "{name} differs from r1"),
        }
        let rows: u64 = (1..=8)
            .map(|i| value(&mut c, &format!("SELECT COUNT(*) FROM shop{i}.ledger")))
            .sum();
        let counted: u64 = (1..=8)
            .map(|i| value(&mut c, &format!("SELECT orders FROM shop{i}.totals")))
            .sum();
        assert_eq!(rows, in_mirror + new, "{name}: every order, once");
        assert_eq!(counted, rows, "{name}: each order counted once");
        assert_eq!(r["ledger_rows"].as_u64(), Some(rows));
        let read_only = value(&mut c, "SELECT @@GLOBAL.read_only") == 1;
        assert_eq!(read_only, name != primary, "{name}: read_only");
    }

    // Ctrl-C: a clean exit, and nothing left of any server.
    let dirs: Vec<String> = s["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["dir"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(dirs.len(), 5);
    assert!(dirs.iter().all(|d| Path::new(d).exists()));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let deadline = Instant::now() + common::HANG_GUARD;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not exit after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let story = story.join().unwrap();
    assert!(status.success(), "exit status {status}; story:\n{story}");
    for d in &dirs {
        assert!(!Path::new(d).exists(), "{d} is left behind");
    }
}
