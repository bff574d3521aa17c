//! Reader and grouper throughput on a synthetic binlog.
//!
//! The input is one file of small row transactions over 16 databases
//! (`parapply::binlog::synth`): Gtid, Annotate_rows, Table_map,
//! Write_rows_v1 (one row: INT and a 32-byte VARCHAR), Xid — about 280
//! bytes each. It is generated once and kept under the target directory
//! (`CARGO_TARGET_TMPDIR/synth-<MiB>mib/`).
//!
//! * `reader/read_events`: every event read and its CRC32 verified.
//! * `reader/read_and_group`: the same, cut into transaction groups — what
//!   the apply pipeline's reader thread does.
//!
//! Throughput is reported in bytes of binlog; groups per second are printed
//! after the run. Under `cargo bench` the file is [`FULL_MB`] MiB; under
//! `cargo test` (criterion's test mode: each bench runs once) it is
//! [`TEST_MB`] MiB, so the test suite stays fast.

use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use parapply::binlog::synth::{self, SynthOptions, SynthOutput, Until};
use parapply::binlog::{BinlogReader, ReaderOptions, Source};
use parapply::group::Grouper;

/// Size of the measured file under `cargo bench`, in MiB (≥ 200 MB).
pub const FULL_MB: u64 = 200;
/// Size under `cargo test`, in MiB.
pub const TEST_MB: u64 = 2;

/// The options of the measured binlog, `bytes` long (at least).
pub fn options(bytes: u64) -> SynthOptions {
    SynthOptions {
        until: Until::Bytes(bytes),
        databases: 16,
        rows_per_transaction: 1,
        value_len: 32,
        annotate: true,
        // One file: other tools are timed on the very same bytes.
        max_file_size: u64::MAX,
        ..SynthOptions::default()
    }
}

/// Writes the measured binlog into `dir`.
pub fn generate(dir: &Path, bytes: u64) -> io::Result<SynthOutput> {
    synth::generate(dir, &options(bytes))
}

/// What a cached file holds, as its marker file records it.
struct Input {
    file: PathBuf,
    bytes: u64,
    events: u64,
    groups: u64,
}

/// The binlog of `mb` MiB, generated on first use and then reused.
fn cached(mb: u64) -> Input {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("synth-{mb}mib"));
    let marker = dir.join("generated");
    // The marker names the generator's options: a change regenerates.
    let tag = format!("{:?}", options(mb << 20));
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let mut lines = text.lines();
        if lines.next() == Some(tag.as_str()) {
            let nums: Vec<u64> = lines.filter_map(|l| l.parse().ok()).collect();
            let file = dir.join("synth-bin.000001");
            if let (&[bytes, events, groups], Ok(meta)) =
                (nums.as_slice(), std::fs::metadata(&file))
            {
                if meta.len() == bytes {
                    return Input {
                        file,
                        bytes,
                        events,
                        groups,
                    };
                }
            }
        }
    }
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let t = Instant::now();
    let out = generate(&dir, mb << 20).expect("generate the bench binlog");
    eprintln!(
        "generated {} ({} bytes, {} groups) in {:.1} s",
        out.files[0].display(),
        out.bytes,
        out.groups,
        t.elapsed().as_secs_f64()
    );
    std::fs::write(
        &marker,
        format!("{tag}\n{}\n{}\n{}\n", out.bytes, out.events, out.groups),
    )
    .expect("write the marker");
    Input {
        file: out.files[0].clone(),
        bytes: out.bytes,
        events: out.events,
        groups: out.groups,
    }
}

fn open(file: &Path) -> BinlogReader {
    BinlogReader::open(
        Source::Files(vec![file.to_path_buf()]),
        ReaderOptions::default(),
    )
    .expect("open the bench binlog")
}

/// Reads every event; returns how many.
fn read_events(file: &Path) -> u64 {
    let mut r = open(file);
    let mut n = 0;
    while r.next().expect("read").is_some() {
        n += 1;
    }
    n
}

/// Reads and groups everything; returns the number of groups.
fn read_and_group(file: &Path) -> u64 {
    let mut g = Grouper::new(open(file));
    let mut n = 0;
    while let Some(group) = g.next().expect("group") {
        std::hint::black_box(&group);
        n += 1;
    }
    n
}

/// The reader suite.
pub fn bench(c: &mut Criterion) {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let input = cached(if super::measuring() { FULL_MB } else { TEST_MB });
    let mut g = c.benchmark_group("reader");
    g.throughput(Throughput::Bytes(input.bytes))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));

    g.bench_function("read_events", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                // magic is not an event; every other byte is.
                assert_eq!(read_events(&input.file), input.events);
            }
            t.elapsed()
        })
    });

    let spent = Cell::new(Duration::ZERO);
    let grouped = Cell::new(0u64);
    g.bench_function("read_and_group", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let n = read_and_group(&input.file);
                assert_eq!(n, input.groups);
                grouped.set(grouped.get() + n);
            }
            let e = t.elapsed();
            spent.set(spent.get() + e);
            e
        })
    });
    g.finish();
    let secs = spent.get().as_secs_f64();
    if secs > 0.0 {
        println!(
            "reader/read_and_group: {:.0} groups/s, {:.1} MB/s ({} groups, {} bytes per pass; \
             mean over {:.1} s incl. warm-up)",
            grouped.get() as f64 / secs,
            (grouped.get() / input.groups * input.bytes) as f64 / secs / 1e6,
            input.groups,
            input.bytes,
            secs
        );
    }
}
