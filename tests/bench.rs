//! `parapply bench` itself, end to end at a tiny `--scale`: every workload
//! (a–g) is generated, every kind of contender (the single SQL thread, the
//! three parallel modes, `mariadb-binlog | mariadb`, parapply at default
//! batching and with `--batch 1`) applies it to a fresh replica and the
//! bench's checksum check passes (a mismatch makes the command fail), the
//! charts are PNG files, and the lag phases time their probes. No timing is
//! asserted: the figures go in docs/benchmarks.md.
//!
//! Run: `cargo test --test bench -- --nocapture` (needs mariadb-server,
//! mariadb-client, sysbench and fonts-dejavu-core; scripts/test installs
//! them).

use std::process::Command;

const CONFIGS: &str = "native-single,native-conservative-4,native-optimistic-4,\
                       native-aggressive-4,mariadb-binlog,parapply-4,parapply-4-batch-1";

#[test]
fn every_contender_completes_every_workload_with_equal_checksums() {
    let charts = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parapply"))
        .args(["bench", "--workload", "a,b,c,d,e,f,g", "--scale", "0.005"])
        .args(["--runs", "1", "--configs", CONFIGS, "--json"])
        .args(["--lag", "0.2", "--lag-seconds", "1"])
        .arg("--charts")
        .arg(charts.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let workloads = report["workloads"].as_array().unwrap();
    let letters: Vec<&str> = workloads
        .iter()
        .map(|w| w["workload"].as_str().unwrap())
        .collect();
    assert_eq!(letters, ["a", "b", "c", "d", "e", "f", "g"]);
    let configs: Vec<&str> = CONFIGS.split(',').collect();
    for w in workloads {
        let letter = w["workload"].as_str().unwrap();
        assert!(w["binlog_groups"].as_u64().unwrap() > 16, "{letter}");
        let results = w["results"].as_array().unwrap();
        let names: Vec<&str> = results
            .iter()
            .map(|r| r["config"].as_str().unwrap())
            .collect();
        assert_eq!(names, configs, "workload {letter}");
        for r in results {
            let secs = r["seconds"].as_array().unwrap();
            assert_eq!(secs.len(), 1, "{letter} {}", r["config"]);
            assert!(secs[0].as_f64().unwrap() > 0.0);
            assert!(r["vs_best_native"].as_f64().unwrap() > 0.0);
        }
        // The chart is a PNG file.
        let chart = charts.path().join(format!("workload-{letter}.png"));
        let png = std::fs::read(&chart).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", chart.display());
        // Each checksum check is logged (the bench stops on a mismatch).
        let equal = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("bench: {letter} run 1/1 ")))
            .filter(|l| l.contains("checksums equal"))
            .count();
        assert_eq!(equal, configs.len(), "workload {letter}: {stderr}");
    }
    let phases = report["lag"]["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    for p in phases {
        assert!(p["probes"].as_u64().unwrap() > 0, "{p}");
        assert!(p["max_ms"].as_f64().unwrap() >= p["p50_ms"].as_f64().unwrap());
    }
}
