//! Binlog serving throughput: the mirror's binlog server against a real
//! `mariadbd` serving the same bytes, to the same client
//! (docs/benchmarks.md, "Serving a mirror").
//!
//! A throwaway primary gets about 1 GiB of binlog (`INSERT … SELECT` of
//! 2,000-byte rows, 20,000 rows per transaction; size in MiB as the first
//! argument). `parapply mirror` (in this process, `--sync never`) copies it;
//! the mirror is checked byte for byte against the primary, stopped, and
//! served by `parapply serve` (in this process). Then five rounds
//! (`SERVE_BENCH_ROUNDS`) of
//! `mariadb-binlog --read-from-remote-server --raw --to-last-log` from the
//! first file: once against the primary, once against the mirror's server
//! (which goes first alternates), each into a fresh directory, timed from
//! start to exit. Each round's two outputs must be byte-identical (CRC-32
//! per file; each output is removed before the next run starts).
//! Besides the wall time, each round reports the CPU time the serving
//! process spent (`mariadbd`'s from `/proc/PID/stat`, this process's from
//! `/proc/self/stat`: nothing else runs in it meanwhile) and the client's
//! (its rusage, via the reaped children's times), which the other
//! sessions on a shared machine disturb far less than the wall time.
//!
//! The client writes into OUT_DIR (default: a temporary directory; give a
//! tmpfs such as /dev/shm to keep the disk's writeback of one round out of
//! the next).
//!
//! `SERVE_BENCH_CLIENT_WRAP="strace -f -c -o /tmp/calls"` runs each client
//! under that command (the last word, a path, gets the port appended): the
//! client's system calls against each server, e.g. how often it found the
//! socket empty (`recvfrom` errors) — which says whether a server ever made
//! the client wait.
//!
//! `SERVE_BENCH_PIN=1` pins both servers to CPU 0 and the client to CPU 1
//! (`taskset`), so that the client, which bounds the rate, never shares its
//! core with the server it reads from.
//!
//! Run: `cargo run --release --example serve_vs_mariadbd [MIB [OUT_DIR]]`

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parapply::mirror::serve::{ServeOptions, Server as BinlogServer};
use parapply::mirror::{self, MirrorOptions, SyncPolicy};
use parapply::sandbox::{Server, ServerOptions};
use parapply::wire::{ConnectOptions, Secret};

const PASSWORD: &str = "bench-password";

/// CPU seconds from a `/proc/…/stat` line: utime + stime, or (children)
/// cutime + cstime.
fn cpu_secs(stat_path: &str, children: bool) -> f64 {
    let s = fs::read_to_string(stat_path).expect("read stat");
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = &s[s.rfind(')').expect("stat format") + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let (a, b) = if children { (13, 14) } else { (11, 12) };
    (f[a] + f[b]) as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    let o = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK")
}

/// Wall time, server CPU and client CPU of one fetch.
struct Took {
    wall: f64,
    server: f64,
    client: f64,
}

fn fetch(
    port: u16,
    server_stat: &str,
    user: &str,
    password: &str,
    first: &str,
    out: &Path,
) -> Took {
    fs::create_dir_all(out).expect("output dir");
    let server0 = cpu_secs(server_stat, false);
    let client0 = cpu_secs("/proc/self/stat", true);
    let t = Instant::now();
    // SERVE_BENCH_CLIENT_WRAP="strace -c -o /tmp/x" wraps the client (to
    // count its system calls against each server).
    let wrap = std::env::var("SERVE_BENCH_CLIENT_WRAP").unwrap_or_default();
    let mut words: Vec<String> = wrap.split_whitespace().map(str::to_owned).collect();
    if let Some(last) = words.last_mut().filter(|_| !wrap.is_empty()) {
        if last.starts_with('/') {
            *last = format!("{last}.{port}");
        }
    }
    if std::env::var_os("SERVE_BENCH_PIN").is_some() {
        words.extend(["taskset", "-c", "1"].map(String::from));
    }
    words.push("mariadb-binlog".into());
    let o = Command::new(&words[0])
        .args(&words[1..])
        .args([
            "--read-from-remote-server",
            "--raw",
            "--to-last-log",
            "--skip-ssl",
        ])
        .arg("--host=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--user={user}"))
        .arg(format!("--result-file={}/", out.display()))
        .arg(first)
        .env("MYSQL_PWD", password)
        .stdin(Stdio::null())
        .output()
        .expect("run mariadb-binlog");
    let wall = t.elapsed().as_secs_f64();
    assert!(
        o.status.success(),
        "mariadb-binlog failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Took {
        wall,
        server: cpu_secs(server_stat, false) - server0,
        client: cpu_secs("/proc/self/stat", true) - client0,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The CRC-32 of each of the client's files, read back; the directory is
/// removed afterwards, so that the next run does not write into a tmpfs
/// that still holds this one's gigabyte.
fn digest_and_remove(dir: &Path, names: &[String]) -> Vec<u32> {
    let sums = names
        .iter()
        .map(|n| crc32fast::hash(&fs::read(dir.join(n)).expect("read output")))
        .collect();
    fs::remove_dir_all(dir).expect("clean");
    sums
}

fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("size in MiB"))
        .unwrap_or(1024);
    let p = Server::start(
        ServerOptions::new()
            .server_id(1)
            .log_bin("mariadb-bin")
            .max_binlog_size(256 << 20),
    )
    .expect("start the primary");
    p.exec("CREATE DATABASE b; CREATE TABLE b.t (id INT PRIMARY KEY, v VARCHAR(2100))")
        .expect("create");
    let t = Instant::now();
    let mut i = 0u64;
    loop {
        let total: u64 = p
            .binlog_files()
            .expect("files")
            .iter()
            .map(|f| fs::metadata(f).map_or(0, |m| m.len()))
            .sum();
        if total >= mib << 20 {
            break;
        }
        p.exec(&format!(
            "INSERT INTO b.t SELECT seq + {}, REPEAT(CHAR(65 + seq % 26), 2000) FROM b.seq_1_to_20000",
            i * 20000
        ))
        .expect("load");
        i += 1;
    }
    let files = p.binlog_files().expect("files");
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    let total: u64 = files
        .iter()
        .map(|f| fs::metadata(f).expect("size").len())
        .sum();
    let size = total as f64 / 1048576.0;
    println!(
        "binlog: {} files, {size:.1} MiB, loaded in {:.1} s",
        files.len(),
        t.elapsed().as_secs_f64()
    );

    // The mirror, byte-identical to the primary.
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("mirror");
    let stop = Arc::new(AtomicBool::new(false));
    let mut o = MirrorOptions::new(
        ConnectOptions::new("127.0.0.1", p.port(), "root"),
        &dir,
        201,
    );
    o.sync = SyncPolicy::Never;
    o.stop = Some(stop.clone());
    let m = thread::spawn(move || mirror::run(&o));
    let last = files.last().expect("a file");
    let last_len = fs::metadata(last).expect("size").len();
    let t = Instant::now();
    while fs::metadata(dir.join(&names[names.len() - 1])).map_or(0, |m| m.len()) < last_len {
        thread::sleep(Duration::from_millis(20));
    }
    println!("mirrored in {:.1} s", t.elapsed().as_secs_f64());
    stop.store(true, Ordering::SeqCst);
    p.exec("FLUSH BINARY LOGS").expect("wake the mirror");
    m.join().expect("mirror thread").expect("mirror");
    for (f, n) in files.iter().zip(&names) {
        assert!(
            fs::read(f).expect("read") == fs::read(dir.join(n)).expect("read"),
            "{n}: the mirror differs from the primary"
        );
    }

    // `parapply serve` over it.
    let serve_stop = Arc::new(AtomicBool::new(false));
    let mut so = ServeOptions::new(&dir, "127.0.0.1:0", "repl", Secret::new(PASSWORD));
    so.stop = serve_stop.clone();
    let server = BinlogServer::bind(so, None).expect("bind");
    let port = server.local_addr().expect("addr").port();
    let srv = thread::spawn(move || server.run());

    let out = match std::env::args().nth(2) {
        Some(d) => tempfile::tempdir_in(d).expect("output dir").keep(),
        None => tmp.path().join("out"),
    };
    println!("client output under {}", out.display());
    let primary_stat = format!("/proc/{}/stat", p.pid().expect("the primary's pid"));
    if std::env::var_os("SERVE_BENCH_PIN").is_some() {
        // Both servers on CPU 0, the client (below) on CPU 1: neither server
        // ever takes the client's core.
        for pid in [p.pid().expect("pid"), std::process::id()] {
            let ok = Command::new("taskset")
                .args(["-a", "-p", "-c", "0", &pid.to_string()])
                .stdout(Stdio::null())
                .status()
                .expect("run taskset")
                .success();
            assert!(ok, "taskset failed for pid {pid}");
        }
        println!("pinned: servers on CPU 0, client on CPU 1");
    }
    let mut theirs = Vec::new();
    let mut ours = Vec::new();
    let rounds: usize = std::env::var("SERVE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    for round in 1..=rounds {
        let a = out.join(format!("primary{round}"));
        let b = out.join(format!("mirror{round}"));
        let primary = || {
            let took = fetch(p.port(), &primary_stat, "root", "", &names[0], &a);
            (took, digest_and_remove(&a, &names))
        };
        let mirror = || {
            let took = fetch(port, "/proc/self/stat", "repl", PASSWORD, &names[0], &b);
            (took, digest_and_remove(&b, &names))
        };
        let ((tp, dp), (tm, dm)) = if round % 2 == 1 {
            let tp = primary();
            (tp, mirror())
        } else {
            let tm = mirror();
            (primary(), tm)
        };
        assert_eq!(dp, dm, "round {round}: the two clients' copies differ");
        println!(
            "round {round}: mariadbd {:.2} s ({:.0} MiB/s; server CPU {:.2} s, client CPU {:.2} s), \
             parapply serve {:.2} s ({:.0} MiB/s; server CPU {:.2} s, client CPU {:.2} s)",
            tp.wall,
            size / tp.wall,
            tp.server,
            tp.client,
            tm.wall,
            size / tm.wall,
            tm.server,
            tm.client
        );
        theirs.push(tp);
        ours.push(tm);
    }
    let (tw, ow) = (
        median(theirs.iter().map(|t| t.wall).collect()),
        median(ours.iter().map(|t| t.wall).collect()),
    );
    let (ts, os) = (
        median(theirs.iter().map(|t| t.server).collect()),
        median(ours.iter().map(|t| t.server).collect()),
    );
    let (tc, oc) = (
        median(theirs.iter().map(|t| t.client).collect()),
        median(ours.iter().map(|t| t.client).collect()),
    );
    let wins = theirs
        .iter()
        .zip(&ours)
        .filter(|(t, o)| o.wall <= t.wall)
        .count();
    println!(
        "median: mariadbd {:.0} MiB/s, parapply serve {:.0} MiB/s ({:.2}x; faster in {wins} of {} rounds); \
         server CPU {ts:.2} s vs {os:.2} s; client CPU {tc:.2} s vs {oc:.2} s",
        size / tw,
        size / ow,
        tw / ow,
        theirs.len()
    );
    if std::env::args().nth(2).is_some() {
        fs::remove_dir_all(&out).expect("clean");
    }
    serve_stop.store(true, Ordering::SeqCst);
    srv.join().expect("server thread").expect("server");
}
