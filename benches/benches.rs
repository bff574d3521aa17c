//! The one bench harness: criterion suites from `benches/suites/`.
//!
//! ```text
//! cargo bench --bench benches                      # every suite
//! cargo bench --bench benches -- reader            # suites matching "reader"
//! cargo bench --bench benches -- catchup           # catch-up sets over a 1 GiB mirror
//! cargo bench --bench benches -- --catchup-runs N  # the same, N interleaved runs, medians
//! cargo bench --bench benches -- --generate-only DIR [--size-mib N] [--max-file-mib M]
//! ```
//!
//! `--generate-only` writes the synthetic binlog the reader suite measures
//! (`DIR/synth-bin.000001` and its index; 200 MiB by default, in one file
//! unless `--max-file-mib` makes it rotate) and exits:
//! `benches/reader_vs_mariadb_binlog.sh` uses it to time other tools on the
//! same bytes.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) criterion runs
//! each bench once, and the suites shrink their inputs so the test suite
//! stays fast.

use criterion::Criterion;

mod suites;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--generate-only") {
        let Some(dir) = args.get(i + 1) else {
            eprintln!("usage: --generate-only DIR [--size-mib N] [--max-file-mib M]");
            std::process::exit(2);
        };
        let number = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|j| args.get(j + 1))
                .map(|n| {
                    n.parse::<u64>()
                        .unwrap_or_else(|_| panic!("{flag} takes a number"))
                })
        };
        let mut opts =
            suites::reader::options(number("--size-mib").unwrap_or(suites::reader::FULL_MB) << 20);
        if let Some(m) = number("--max-file-mib") {
            opts.max_file_size = m << 20;
        }
        let dir = std::path::Path::new(dir);
        std::fs::create_dir_all(dir).expect("create the output directory");
        let out = parapply::binlog::synth::generate(dir, &opts).expect("generate the binlog");
        println!(
            "{}: {} files, {} bytes, {} transactions, {} events",
            out.index.display(),
            out.files.len(),
            out.bytes,
            out.groups,
            out.events
        );
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--catchup-runs") {
        let runs = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("--catchup-runs takes a number"));
        suites::catchup::interleaved(runs);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    suites::reader::bench(&mut c);
    suites::catchup::bench(&mut c);
    c.final_summary();
}
