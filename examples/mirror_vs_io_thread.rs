//! Mirror throughput: `parapply mirror` against MariaDB's own IO thread on
//! the same primary binlog (docs/benchmarks.md, "Mirror throughput").
//!
//! A throwaway primary gets about 64 MiB of binlog: 60,000 single-row
//! transactions, then one 300,000-row `INSERT … SELECT`. Each reader starts
//! at `mariadb-bin.000001:4` on the idle primary and is timed until the last
//! byte of the primary's last file is in the mirror (file size) or in the
//! relay log (`Read_Master_Log_Pos`, polled every 2 ms). The mirror runs in
//! this process (`parapply::mirror::run`) with `--sync never` and with the
//! default `--sync 1000`, and each mirror is compared byte for byte with the
//! primary's files afterwards.
//!
//! Run: `cargo run --release --example mirror_vs_io_thread`

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parapply::mirror::{self, MirrorOptions, SyncPolicy};
use parapply::sandbox::{column, describe_slave_status, Server, ServerOptions};
use parapply::wire::ConnectOptions;

fn main() {
    let p = Server::start(
        ServerOptions::new()
            .server_id(1)
            .log_bin("mariadb-bin")
            .max_binlog_size(64 << 20),
    )
    .expect("start the primary");
    p.exec("CREATE DATABASE b; CREATE TABLE b.t (id INT PRIMARY KEY, v VARCHAR(200))")
        .expect("create");
    for batch in 0..60 {
        let sql: Vec<String> = (0..1000)
            .map(|i| {
                format!(
                    "INSERT INTO b.t VALUES ({}, REPEAT('s', 100))",
                    batch * 1000 + i
                )
            })
            .collect();
        p.exec(&sql.join(";")).expect("load");
    }
    p.exec(
        "CREATE TABLE b.big (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO b.big SELECT seq, REPEAT('b', 150) FROM b.seq_1_to_300000",
    )
    .expect("large rows");
    let files = p.binlog_files().expect("binlog files");
    let total: u64 = files
        .iter()
        .map(|f| fs::metadata(f).expect("size").len())
        .sum();
    let last_path = files.last().expect("a binlog file");
    let last = last_path
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let last_len = fs::metadata(last_path).expect("size").len();
    let mib = total as f64 / 1048576.0;
    println!("binlog: {} files, {mib:.1} MiB", files.len());

    for (name, sync) in [
        ("never", SyncPolicy::Never),
        ("1000", SyncPolicy::EveryN(1000)),
    ] {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("mirror");
        let stop = Arc::new(AtomicBool::new(false));
        let mut o = MirrorOptions::new(
            ConnectOptions::new("127.0.0.1", p.port(), "root"),
            &dir,
            201,
        );
        o.sync = sync;
        o.stop = Some(stop.clone());
        let started = Instant::now();
        let runner = thread::spawn(move || mirror::run(&o));
        while fs::metadata(dir.join(&last)).map_or(0, |m| m.len()) != last_len {
            assert!(!runner.is_finished(), "the mirror stopped early");
            thread::sleep(Duration::from_millis(2));
        }
        let secs = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        runner
            .join()
            .expect("the mirror thread")
            .expect("the mirror ran without error");
        for f in &files {
            let name = f.file_name().expect("a file name");
            assert!(
                fs::read(dir.join(name)).expect("mirror file")
                    == fs::read(f).expect("primary file"),
                "{} differs from the primary's",
                name.to_string_lossy()
            );
        }
        println!(
            "parapply mirror --sync {name}: {secs:.2} s = {:.0} MiB/s (byte-identical)",
            mib / secs
        );
    }

    let r = Server::start(ServerOptions::new().server_id(2)).expect("start the replica");
    let started = Instant::now();
    r.exec(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
         MASTER_USE_GTID=no, MASTER_LOG_FILE='{}', MASTER_LOG_POS=4; START SLAVE IO_THREAD",
        p.port(),
        files[0].file_name().expect("a file name").to_string_lossy()
    ))
    .expect("start the IO thread");
    loop {
        let status = r
            .query_first::<mysql::Row>("SHOW SLAVE STATUS")
            .expect("SHOW SLAVE STATUS")
            .expect("a replica");
        if column(&status, "Master_Log_File") == last
            && column(&status, "Read_Master_Log_Pos") == last_len.to_string()
        {
            break;
        }
        assert!(
            column(&status, "Slave_IO_Running") != "No",
            "the IO thread stopped: {}",
            describe_slave_status(&status)
        );
        thread::sleep(Duration::from_millis(2));
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "MariaDB IO thread → relay log (default sync_relay_log): {secs:.2} s = {:.0} MiB/s",
        mib / secs
    );
}
