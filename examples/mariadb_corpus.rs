//! The full corpus run (issue 10, item 7): MariaDB's own regression test
//! files ([`corpus::SELECTION`], or the files named on the command line) on
//! a throwaway primary in ROW, MIXED and STATEMENT format, the binary log
//! applied by parapply and by a stock replica, every database compared
//! with the primary's. Prints one line per file and format as it goes, and
//! a summary; `--json` prints the reports as JSON lines instead. Exits 1
//! when parapply differs from the primary where the stock replica does not.
//!
//! Run: `cargo run --release --example mariadb_corpus [--json] [main/x.test …]`
//! (needs mariadb-server and mariadb-test; minutes). The result of the last
//! full run is in docs/operations.md.

use std::time::Instant;

use parapply::corpus::{self, CorpusOptions, FileReport};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let files: Vec<&str> = args
        .iter()
        .filter(|a| *a != "--json")
        .map(String::as_str)
        .collect();
    let o = CorpusOptions::new(if files.is_empty() {
        corpus::SELECTION
    } else {
        &files
    });
    let started = Instant::now();
    let total = o.files.len() * o.formats.len();
    let mut done = 0;
    let reports = corpus::run(&o, |r: &FileReport| {
        done += 1;
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "file": r.file,
                    "format": format!("{:?}", r.format),
                    "test_stopped": r.test_stopped,
                    "groups": r.groups,
                    "items": r.items,
                    "stock": r.stock.to_string(),
                    "parapply": r.parapply.to_string(),
                    "rows": r.rows,
                    "row_log": r.row_log.to_string(),
                    "known": r.known,
                    "seconds": r.seconds,
                })
            );
        } else {
            println!("[{done}/{total}] {r}");
        }
    })
    .unwrap_or_else(|e| {
        eprintln!("mariadb_corpus: {e}");
        std::process::exit(2)
    });
    let count = |f: &dyn Fn(&FileReport) -> bool| reports.iter().filter(|r| f(r)).count();
    let parapply_equal = count(&|r| r.parapply.is_equal());
    let stock_equal = count(&|r| r.stock.is_equal());
    let both = count(&|r| r.parapply.is_equal() && r.stock.is_equal());
    let logs = count(&|r| r.row_log.is_equal());
    let groups: u64 = reports.iter().map(|r| r.groups).sum();
    eprintln!(
        "{} runs ({} files x {} formats) in {:.0} s, {groups} groups: parapply equal to the primary in {parapply_equal}, \
         the stock replica in {stock_equal}, both in {both}; row logs equal in {logs}",
        reports.len(),
        o.files.len(),
        o.formats.len(),
        started.elapsed().as_secs_f64()
    );
    // Fails where parapply does worse than the stock replica on the same
    // binary log (a stop or difference both share is MariaDB's own).
    let worse = count(&|r| r.stock.is_equal() && !r.parapply.is_equal());
    if worse > 0 {
        eprintln!("parapply differs where the stock replica does not in {worse} run(s)");
        std::process::exit(1);
    }
}
