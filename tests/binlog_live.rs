//! The reader and grouper on binlogs that real servers write during the
//! test: a primary with rotations and every kind of group, a binlog tailed
//! while it grows, a replica's relay logs, and binlogs without checksums and
//! with compressed events.
//!
//! Each test starts its own throwaway `mariadbd` (see `parapply::sandbox`).
//! Run: `cargo test --test binlog_live` (needs mariadb-server installed; the
//! system service need not run).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::assert_agrees_with_mariadb_binlog;
use parapply::binlog::{BinlogReader, Event, EventType, ReaderOptions, Source};
use parapply::group::{Group, GroupKind, Grouper};
use parapply::sandbox::{BinlogChecksum, BinlogFormat, Server, ServerOptions};

fn groups_of(source: Source) -> Vec<Group> {
    let mut g = Grouper::new(BinlogReader::open(source, ReaderOptions::default()).unwrap());
    let mut v = Vec::new();
    while let Some(x) = g.next().unwrap() {
        v.push(x);
    }
    assert!(
        g.pending().is_none(),
        "no group left open: {:?}",
        g.pending()
    );
    v
}

/// GTIDs in the order `mariadb-binlog` prints their events.
fn gtids_per_mariadb_binlog(files: &[std::path::PathBuf]) -> Vec<String> {
    let out = std::process::Command::new("mariadb-binlog")
        .args(files)
        .output()
        .expect("mariadb-binlog is needed: apt-get install mariadb-server");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let i = l.find("\tGTID ")?;
            Some(l[i + 6..].split_whitespace().next()?.to_string())
        })
        .collect()
}

/// A workload with every kind of group, over several files.
fn run_workload(p: &Server) {
    p.exec(
        "CREATE DATABASE d0; CREATE DATABASE d1; CREATE DATABASE d2;
         CREATE TABLE d0.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(100), n DECIMAL(10,2),
                            ts DATETIME(6), j JSON, b BLOB) ENGINE=InnoDB;
         CREATE TABLE d1.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(100)) ENGINE=InnoDB;
         CREATE TABLE d2.m (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(100)) ENGINE=MyISAM;
         CREATE TABLE d2.nopk (a INT, b TEXT) ENGINE=InnoDB",
    )
    .unwrap();
    let mut c = p.conn().unwrap();
    use mysql::prelude::Queryable;
    for i in 0..150 {
        let db = ["d0", "d1"][i % 2];
        if db == "d0" {
            c.query_drop(format!(
                "INSERT INTO d0.t (v, n, ts, j, b) VALUES ('r{i}', {i}.25, NOW(6), '{{\"k\": {i}}}', REPEAT('x', {i}))"
            ))
            .unwrap();
        } else {
            c.query_drop(format!("INSERT INTO d1.t (v) VALUES ('r{i}')"))
                .unwrap();
        }
    }
    c.query_drop("FLUSH BINARY LOGS").unwrap();
    // Cross-database transaction.
    c.query_drop("SET SESSION binlog_format='ROW'; START TRANSACTION; UPDATE d0.t SET v='x' WHERE id=1; UPDATE d1.t SET v='y' WHERE id=1; COMMIT; SET SESSION binlog_format='MIXED'")
        .unwrap();
    // Statement format with session context.
    c.query_drop(
        "SET SESSION binlog_format='STATEMENT'; SET @u := 'from-user-var';
         INSERT INTO d1.t (v) VALUES (@u); UPDATE d1.t SET v = CONCAT(v, RAND() > 2) WHERE id = 2;
         SET SESSION binlog_format='MIXED'",
    )
    .unwrap();
    // Non-transactional table, table without primary key.
    c.query_drop("INSERT INTO d2.m (v) VALUES ('myisam')")
        .unwrap();
    c.query_drop("INSERT INTO d2.nopk VALUES (1,'a'),(1,'a'),(2,'b')")
        .unwrap();
    // XA.
    c.query_drop("XA START 'x1'; INSERT INTO d1.t (v) VALUES ('xa'); XA END 'x1'; XA PREPARE 'x1'; XA COMMIT 'x1'")
        .unwrap();
    // DDL in the middle, and a large transaction (many row events).
    c.query_drop("ALTER TABLE d1.t ADD COLUMN extra INT NOT NULL DEFAULT 7")
        .unwrap();
    c.query_drop("SET SESSION binlog_format='ROW'; START TRANSACTION; INSERT INTO d0.t (v, b) SELECT CONCAT('big', seq), REPEAT('z', 2000) FROM d0.seq_1_to_600; COMMIT")
        .unwrap();
    c.query_drop("DROP TABLE d2.nopk").unwrap();
    c.query_drop("FLUSH BINARY LOGS").unwrap();
    c.query_drop("INSERT INTO d1.t (v) VALUES ('last')")
        .unwrap();
}

#[test]
fn fresh_binlogs_agree_with_mariadb_binlog_and_every_gtid_is_one_group() {
    let p = Server::start(
        ServerOptions::new()
            .log_bin("mariadb-bin")
            .binlog_format(BinlogFormat::Mixed)
            .max_binlog_size(64 * 1024),
    )
    .unwrap();
    run_workload(&p);
    let files = p.binlog_files().unwrap();
    assert!(files.len() >= 3, "rotations happened: {files:?}");
    for f in &files {
        assert_agrees_with_mariadb_binlog(f);
    }
    let groups = groups_of(Source::dir(p.binlog_dir()).unwrap());
    let ours: Vec<String> = groups
        .iter()
        .map(|g| g.gtid.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(ours, gtids_per_mariadb_binlog(&files));
    let last = ours.last().unwrap().clone();
    assert_eq!(p.gtid_binlog_pos().unwrap(), last);

    let by_kind = |k: GroupKind| groups.iter().filter(|g| g.kind == k).count();
    assert!(
        by_kind(GroupKind::Ddl) >= 7,
        "CREATE DATABASE/TABLE, ALTER, DROP"
    );
    assert_eq!(
        by_kind(GroupKind::Xa),
        2,
        "XA PREPARE group and XA COMMIT group"
    );
    assert_eq!(by_kind(GroupKind::NonTransactional), 1, "the MyISAM insert");
    assert!(by_kind(GroupKind::StatementDml) >= 2);
    let cross = groups
        .iter()
        .find(|g| g.databases == ["d0", "d1"] && g.kind == GroupKind::RowDml)
        .expect("the cross-database transaction");
    assert!(cross.databases_exact);
    let big = groups.iter().max_by_key(|g| g.bytes.len()).unwrap();
    assert!(
        big.bytes.len() > 1_000_000 && big.events.len() > 10,
        "{} {} bytes {} events {:?}",
        big.describe(),
        big.bytes.len(),
        big.events.len(),
        big.events
            .iter()
            .map(|e| e.event_type.name())
            .collect::<Vec<_>>()
    );
    // Groups are contiguous within a file and ordered.
    for w in groups.windows(2) {
        if w[0].file == w[1].file {
            assert!(
                w[0].end_pos <= w[1].start_pos,
                "{} / {}",
                w[0].describe(),
                w[1].describe()
            );
        } else {
            assert!(w[0].file < w[1].file);
        }
    }
    // Each group's bytes are exactly the file's bytes between its positions
    // (a group never has control events inside in a primary's binlog).
    for g in groups.iter().step_by(17) {
        let data = std::fs::read(p.binlog_dir().join(&*g.file)).unwrap();
        let range = usize::try_from(g.start_pos).unwrap()..usize::try_from(g.end_pos).unwrap();
        assert_eq!(&data[range], &g.bytes[..], "{}", g.describe());
    }
}

#[test]
fn follow_mode_sees_new_groups_and_new_files_as_they_are_written() {
    let p = Server::start(ServerOptions::new().log_bin("mariadb-bin")).unwrap();
    p.exec("CREATE DATABASE f; CREATE TABLE f.t (id INT PRIMARY KEY, v INT)")
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<String>();
    let opts = ReaderOptions {
        follow: true,
        stop: Some(stop.clone()),
        poll: Duration::from_millis(20),
        ..ReaderOptions::default()
    };
    let source = Source::dir(p.binlog_dir()).unwrap();
    let reader = std::thread::spawn(move || {
        let mut g = Grouper::new(BinlogReader::open(source, opts).unwrap());
        while let Some(group) = g.next().unwrap() {
            tx.send(group.gtid.unwrap().to_string()).unwrap();
        }
    });
    let mut seen = Vec::new();
    let wait_for = |want: &str, seen: &mut Vec<String>| {
        let deadline = Instant::now() + common::HANG_GUARD;
        while !seen.iter().any(|s| s == want) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(g) => seen.push(g),
                Err(_) => panic!("follow mode did not deliver {want}; saw {seen:?}"),
            }
        }
    };
    for round in 0..3 {
        for i in 0..20 {
            p.exec(&format!(
                "INSERT INTO f.t VALUES ({}, {i})",
                round * 100 + i
            ))
            .unwrap();
        }
        let pos = p.gtid_binlog_pos().unwrap();
        wait_for(&pos, &mut seen);
        p.exec("FLUSH BINARY LOGS").unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    // In order, no duplicate, nothing missing.
    let seqs: Vec<u64> = seen
        .iter()
        .map(|g| g.rsplit('-').next().unwrap().parse().unwrap())
        .collect();
    let want: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, want);
    assert_eq!(seen.len(), 2 + 60);
}

#[test]
fn relay_log_groups_carry_the_primarys_file_and_positions() {
    let p = Server::start(
        ServerOptions::new()
            .server_id(1)
            .log_bin("mariadb-bin")
            .max_binlog_size(16 * 1024),
    )
    .unwrap();
    let r = Server::start(ServerOptions::new().server_id(2).relay_log_purge(false)).unwrap();
    p.exec("CREATE DATABASE r; CREATE TABLE r.t (id INT PRIMARY KEY AUTO_INCREMENT, v TEXT)")
        .unwrap();
    r.replicate_from(&p).unwrap();
    for i in 0..120 {
        p.exec(&format!(
            "INSERT INTO r.t (v) VALUES (REPEAT('v', {}))",
            50 + i
        ))
        .unwrap();
    }
    r.wait_caught_up(&p, Duration::from_secs(60)).unwrap();
    let primary: BTreeMap<String, (String, u64, u64)> =
        groups_of(Source::dir(p.binlog_dir()).unwrap())
            .into_iter()
            .map(|g| {
                (
                    g.gtid.unwrap().to_string(),
                    (g.file.to_string(), g.start_pos, g.end_pos),
                )
            })
            .collect();
    let relay_groups = groups_of(Source::Index(r.relay_log_index()));
    let relay: BTreeMap<String, (String, u64, u64)> = relay_groups
        .iter()
        .map(|g| {
            (
                g.gtid.as_ref().unwrap().to_string(),
                (g.file.to_string(), g.start_pos, g.end_pos),
            )
        })
        .collect();
    assert!(p.binlog_files().unwrap().len() >= 3, "the primary rotated");
    assert_eq!(
        relay, primary,
        "same groups at the same primary coordinates"
    );
    assert!(relay_groups
        .iter()
        .all(|g| g.source_file.starts_with("relay-bin")));
}

#[test]
fn binlogs_without_checksums_and_with_compressed_events_read_too() {
    let p = Server::start(
        ServerOptions::new()
            .log_bin("mariadb-bin")
            .binlog_format(BinlogFormat::Row)
            .binlog_checksum(BinlogChecksum::None)
            .arg("--log-bin-compress=ON")
            .arg("--log-bin-compress-min-len=10"),
    )
    .unwrap();
    p.exec("CREATE DATABASE z; CREATE TABLE z.t (id INT PRIMARY KEY AUTO_INCREMENT, v TEXT)")
        .unwrap();
    for i in 0..30 {
        p.exec(&format!(
            "INSERT INTO z.t (v) VALUES (REPEAT('compress me ', {}))",
            10 + i
        ))
        .unwrap();
    }
    p.exec(
        "SET SESSION binlog_format='STATEMENT'; UPDATE z.t SET v = CONCAT(v, 'stmt') WHERE id < 5",
    )
    .unwrap();
    for f in p.binlog_files().unwrap() {
        assert_agrees_with_mariadb_binlog(&f);
    }
    let mut r = BinlogReader::open(
        Source::dir(p.binlog_dir()).unwrap(),
        ReaderOptions::default(),
    )
    .unwrap();
    let (mut compressed_rows, mut compressed_queries) = (0, 0);
    assert!(r.format().is_none());
    while let Some(ev) = r.next().unwrap() {
        if ev.event_type() != EventType::FORMAT_DESCRIPTION {
            assert_eq!(ev.checksum_len, 0, "no CRC with binlog_checksum=NONE");
        }
        match ev.event_type() {
            EventType::QUERY_COMPRESSED => {
                compressed_queries += 1;
                let Event::Query(q) = ev.decode().unwrap() else {
                    panic!()
                };
                let sql = String::from_utf8_lossy(&q.query).into_owned();
                assert!(sql.contains("z.t") || sql.contains("DATABASE"), "{sql}");
            }
            t if t.is_rows() && t.0 >= 166 => compressed_rows += 1,
            _ => {}
        }
    }
    assert!(compressed_rows >= 30, "{compressed_rows}");
    assert!(compressed_queries >= 2, "{compressed_queries}");
    let groups = groups_of(Source::dir(p.binlog_dir()).unwrap());
    assert_eq!(groups.len(), 2 + 30 + 1);
    assert_eq!(groups.last().unwrap().kind, GroupKind::StatementDml);
    // `UPDATE z.t` without a default database: the grouper cannot know.
    assert!(!groups.last().unwrap().databases_exact);
}
