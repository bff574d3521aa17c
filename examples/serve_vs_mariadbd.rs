//! Binlog serving throughput: the mirror's binlog server against a real
//! `mariadbd` serving the same bytes, to the same client
//! (docs/benchmarks.md, "Serving a mirror").
//!
//! A throwaway primary gets about 1 GiB of binlog (`INSERT … SELECT` of
//! 2,000-byte rows, 20,000 rows per transaction; size in MiB as the first
//! argument). `parapply mirror` (in this process, `--sync never`) copies it;
//! the mirror is checked byte for byte against the primary, stopped, and
//! served by `parapply serve` (in this process). Then five rounds of
//! `mariadb-binlog --read-from-remote-server --raw --to-last-log` from the
//! first file: once against the primary, once against the mirror's server
//! (which goes first alternates), each into a fresh directory, timed from
//! start to exit. Each round's two outputs must be byte-identical.
//!
//! Run: `cargo run --release --example serve_vs_mariadbd [MIB]`

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

fn fetch(port: u16, user: &str, password: &str, first: &str, out: &Path) -> Duration {
    fs::create_dir_all(out).expect("output dir");
    let t = Instant::now();
    let o = Command::new("mariadb-binlog")
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
    let took = t.elapsed();
    assert!(
        o.status.success(),
        "mariadb-binlog failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    took
}

fn same_dirs(a: &Path, b: &Path, names: &[String]) {
    for n in names {
        let x = fs::read(a.join(n)).expect("read output");
        let y = fs::read(b.join(n)).expect("read output");
        assert!(x == y, "{n}: the two copies differ");
    }
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

    let out = tmp.path().join("out");
    let mut theirs = Vec::new();
    let mut ours = Vec::new();
    for round in 1..=5 {
        let a = out.join(format!("primary{round}"));
        let b = out.join(format!("mirror{round}"));
        let (tp, tm) = if round % 2 == 1 {
            let tp = fetch(p.port(), "root", "", &names[0], &a);
            (tp, fetch(port, "repl", PASSWORD, &names[0], &b))
        } else {
            let tm = fetch(port, "repl", PASSWORD, &names[0], &b);
            (fetch(p.port(), "root", "", &names[0], &a), tm)
        };
        same_dirs(&a, &b, &names);
        println!(
            "round {round}: mariadbd {:.2} s ({:.0} MiB/s), parapply serve {:.2} s ({:.0} MiB/s)",
            tp.as_secs_f64(),
            size / tp.as_secs_f64(),
            tm.as_secs_f64(),
            size / tm.as_secs_f64()
        );
        theirs.push(tp.as_secs_f64());
        ours.push(tm.as_secs_f64());
        fs::remove_dir_all(&a).expect("clean");
        fs::remove_dir_all(&b).expect("clean");
    }
    theirs.sort_by(f64::total_cmp);
    ours.sort_by(f64::total_cmp);
    println!(
        "median: mariadbd {:.0} MiB/s, parapply serve {:.0} MiB/s ({:.2}x)",
        size / theirs[2],
        size / ours[2],
        theirs[2] / ours[2]
    );
    serve_stop.store(true, Ordering::SeqCst);
    srv.join().expect("server thread").expect("server");
}
