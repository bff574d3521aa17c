//! Item 7 of the replay-fidelity issue, the test-suite part: a few of
//! MariaDB's own regression test files ([`corpus::SUBSET`], Debian's
//! mariadb-test package) run on a throwaway primary in ROW, MIXED and
//! STATEMENT format; parapply's target and a stock replica each equal the
//! primary in every database (table checksums, columns, routines,
//! triggers, views). The full selection is `cargo run --release --example
//! mariadb_corpus`.
//!
//! Run: `cargo test --test corpus` (needs mariadb-server and mariadb-test;
//! `scripts/test` installs both).

use parapply::corpus::{self, CorpusOptions};
use parapply::sandbox::BinlogFormat;

#[test]
fn mariadb_regression_tests_replay_like_a_stock_replica() {
    let o = CorpusOptions::new(corpus::SUBSET);
    let reports = corpus::run(&o, |r| eprintln!("{r}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports.len(), corpus::SUBSET.len() * 3);
    for r in &reports {
        // Each file wrote something worth comparing (the tests drop their
        // tables: the row logs hold the substance).
        assert!(r.groups >= 100, "{r}");
        assert!(r.stock.is_equal(), "{r}");
        assert!(r.parapply.is_equal(), "{r}");
        assert!(r.rows >= 100, "{r}");
        assert!(r.row_log.is_equal(), "{r}");
        // insert_select.test has statements logged with an error after
        // they changed MyISAM rows: parapply logs those rows, the stock
        // replica does not (the known difference of docs/operations.md).
        if r.file == "main/insert_select.test" && r.format != BinlogFormat::Row {
            assert!(!r.known.is_empty(), "{r}");
        }
    }
}
