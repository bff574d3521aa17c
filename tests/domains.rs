//! Several GTID domains in one source (issue 16, item 4, as far as one
//! source goes): two writers with their own `gtid_domain_id` interleave in
//! one primary's binlog; apply keeps one low-watermark per domain, a run
//! stopped part-way resumes without applying anything twice, and the
//! final GTID position names both domains as the primary's does.
//!
//! Run: `cargo test --test domains` (needs mariadb-server).

mod common;

use parapply::sandbox::{Server, ServerOptions};

fn apply(p: &Server, t: &Server, extra: &[&str]) -> serde_json::Value {
    common::apply_json(p, t, extra)
}

#[test]
fn two_domains_in_one_source_have_their_own_watermarks() {
    let p = Server::start(ServerOptions::new().server_id(1).log_bin("mariadb-bin")).unwrap();
    let t = common::replica_target();
    p.exec(
        "CREATE DATABASE d1; CREATE DATABASE d2; CREATE TABLE d1.t (i INT PRIMARY KEY);
         CREATE TABLE d2.t (i INT PRIMARY KEY); CREATE TABLE d2.c (id INT PRIMARY KEY, n INT);
         INSERT INTO d2.c VALUES (1, 0)",
    )
    .unwrap(); // 0-1-1 … 0-1-6
    for i in 0..20 {
        p.exec(&format!("INSERT INTO d1.t VALUES ({i})")).unwrap();
        p.exec(&format!(
            "SET SESSION gtid_domain_id = 2; INSERT INTO d2.t VALUES ({i});
             UPDATE d2.c SET n = n + 1"
        ))
        .unwrap();
    }
    let pos = p.gtid_binlog_pos().unwrap();
    assert_eq!(pos, "0-1-26,2-1-40");
    let half = apply(&p, &t, &["--until", "2-1-21"]);
    let mid = half["gtid_position"].as_str().unwrap().to_string();
    assert!(mid.contains("2-1-21") && mid.contains("0-1-"), "{half}");
    let rest = apply(&p, &t, &[]);
    assert_eq!(rest["gtid_position"], pos, "{rest}");
    assert_eq!(
        half["applied"].as_u64().unwrap() + rest["applied"].as_u64().unwrap(),
        66,
        "every group once: {half} {rest}"
    );
    assert_eq!(
        t.checksums(&["d1", "d2"]).unwrap(),
        p.checksums(&["d1", "d2"]).unwrap()
    );
}
