//! Peak memory of `parapply apply` on a large source (issue: ≤ 256 MiB at
//! default settings on a 2 GB source).
//!
//! Builds a throwaway primary, writes about `GB` (default 2) gigabytes of
//! binlog — transactions of 64 rows × 1 KiB over 16 databases — then applies
//! it with the release binary at its default settings to a throwaway
//! replica, sampling the applier's peak resident set (`VmHWM`) and checking
//! the tables against the primary at the end.
//!
//! Run: `cargo build --release && cargo run --release --example apply_memory [GB]`

use std::process::Command;
use std::time::{Duration, Instant};

use parapply::sandbox::{Server, ServerOptions};

fn main() {
    let gb: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2.0);
    let target_bytes = (gb * 1024.0 * 1024.0 * 1024.0) as u64;
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("parapply"))
        .unwrap();
    assert!(
        bin.exists(),
        "build the binary first: cargo build --release ({})",
        bin.display()
    );
    let p = Server::start(
        ServerOptions::new()
            .server_id(1)
            .log_bin("mariadb-bin")
            .max_binlog_size(512 << 20)
            .innodb_buffer_pool_size(256 << 20)
            .innodb_log_file_size(512 << 20),
    )
    .unwrap();
    let t = Server::start(
        ServerOptions::new()
            .server_id(2)
            .log_bin("t-bin")
            .log_slave_updates(true)
            .innodb_buffer_pool_size(256 << 20)
            .innodb_log_file_size(512 << 20),
    )
    .unwrap();
    let mut ddl = String::new();
    for d in 0..16 {
        ddl.push_str(&format!(
            "CREATE DATABASE m{d}; CREATE TABLE m{d}.t (id BIGINT PRIMARY KEY, pad VARCHAR(1100));"
        ));
    }
    p.exec(&ddl).unwrap();
    let started = Instant::now();
    let binlog_size = |p: &Server| -> u64 {
        p.binlog_files()
            .unwrap()
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .sum()
    };
    let mut round = 0u64;
    while binlog_size(&p) < target_bytes {
        std::thread::scope(|s| {
            for part in 0..4u64 {
                let p = &p;
                s.spawn(move || {
                    let mut c = p.conn().unwrap();
                    use mysql::prelude::Queryable;
                    for k in 0..200u64 {
                        let n = (round * 4 + part) * 200 + k;
                        let d = n % 16;
                        c.query_drop(format!(
                            "INSERT INTO m{d}.t SELECT {n} * 64 + seq, REPEAT(CHAR(65 + seq % 26), 1024) FROM m{d}.seq_1_to_64"
                        ))
                        .unwrap();
                    }
                });
            }
        });
        round += 1;
        eprint!("\rbinlog: {} MiB", binlog_size(&p) >> 20);
    }
    eprintln!(
        "\nwrote {} MiB of binlog in {:.0} s",
        binlog_size(&p) >> 20,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let mut child = Command::new(&bin)
        .args(["apply", "--source"])
        .arg(p.binlog_dir())
        .args(["--target", &format!("mysql://root@127.0.0.1:{}/", t.port())])
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            for line in s.lines() {
                if let Some(v) = line.strip_prefix("VmHWM:") {
                    let kib: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak_kib = peak_kib.max(kib);
                }
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "apply failed");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let secs = started.elapsed().as_secs_f64();
    let dbs: Vec<String> = (0..16).map(|d| format!("m{d}")).collect();
    let refs: Vec<&str> = dbs.iter().map(String::as_str).collect();
    assert_eq!(
        p.checksums(&refs).unwrap(),
        t.checksums(&refs).unwrap(),
        "target differs"
    );
    println!(
        "applied {} MiB in {secs:.1} s; peak RSS of the applier {} MiB (VmHWM sampled every 50 ms); tables equal",
        binlog_size(&p) >> 20,
        peak_kib >> 10
    );
}
