//! The catch-up set over a large mirror (issue 12, item 7): both
//! directions between two incomparable states, computed with
//! `catchup::between` over a 1 GiB generated mirror, against a plain
//! sequential read of the same mirror.
//!
//! The mirror: `parapply::binlog::synth`, small row transactions over 16
//! databases (about 280 bytes each, as in the reader suite), in files of
//! 64 MiB, generated once under `CARGO_TARGET_TMPDIR/catchup-<MiB>mib/`.
//! The states: both low-watermarks at the first group (so the whole mirror
//! must be read: the worst case), A with databases 0–7 applied to the end
//! and 8–15 to the middle, B the other way round.
//!
//! * `catchup/between`: `catchup::between`, the files read in parallel on
//!   rayon's pool (one thread per core).
//! * `catchup/between_one_thread`: the same call in a one-thread pool.
//! * `catchup/sequential_scan`: the peer — one thread reading and grouping
//!   the files in order with their event bytes, as the apply engine's
//!   reader does (no catch-up decision at all).
//! * `catchup/between_tail`: the common case — both states resume at the
//!   last file (replicas that differ in their last seconds): only the tail
//!   is read.
//!
//! Under `cargo bench` the mirror is [`FULL_MB`] MiB; under `cargo test`
//! (each bench once) [`TEST_MB`] MiB in 1 MiB files. Criterion takes ten
//! samples of each, minutes on a loaded machine; `cargo bench --bench
//! benches -- --catchup-runs N` instead runs the four back to back N times
//! ([`interleaved`]) and prints the medians and ratios.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use parapply::binlog::synth::{self, SynthOptions, Until};
use parapply::binlog::{BinlogReader, ReaderOptions, Source};
use parapply::catchup::{self, Item};
use parapply::group::Grouper;
use parapply::position::BinlogPos;
use parapply::progress::{AppliedSet, Watermark};
use parapply::schedule::{ShardBy, ShardMap};

/// Size of the mirror under `cargo bench`, in MiB.
pub const FULL_MB: u64 = 1024;
/// Size under `cargo test`, in MiB.
pub const TEST_MB: u64 = 4;

fn options(mb: u64) -> SynthOptions {
    SynthOptions {
        until: Until::Bytes(mb << 20),
        databases: 16,
        rows_per_transaction: 1,
        value_len: 32,
        annotate: true,
        max_file_size: if mb >= 256 { 64 << 20 } else { 1 << 20 },
        ..SynthOptions::default()
    }
}

/// The mirror of `mb` MiB, generated on first use and then reused; its
/// directory and size in bytes.
fn cached(mb: u64) -> (PathBuf, u64) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("catchup-{mb}mib"));
    let marker = dir.join("generated");
    let tag = format!("{:?}", options(mb));
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let mut lines = text.lines();
        if lines.next() == Some(tag.as_str()) {
            if let Some(Ok(bytes)) = lines.next().map(str::parse::<u64>) {
                return (dir, bytes);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let t = Instant::now();
    let out = synth::generate(&dir, &options(mb)).expect("generate the mirror");
    eprintln!(
        "generated {} files, {} bytes, {} groups in {:.1} s",
        out.files.len(),
        out.bytes,
        out.groups,
        t.elapsed().as_secs_f64()
    );
    std::fs::write(&marker, format!("{tag}\n{}\n", out.bytes)).expect("write the marker");
    (dir, out.bytes)
}

fn wm(it: &Item) -> Watermark {
    Watermark {
        seq_no: it.gtid.seq,
        server_id: it.gtid.server,
        end: it.end_pos(),
    }
}

/// The groups of file `name` of the mirror.
fn file_items(dir: &Path, map: &ShardMap, name: &str) -> Vec<Item> {
    let all = catchup::scan(dir, Some(&BinlogPos::new(name, 4)), map).expect("scan");
    all.items
        .into_iter()
        .take_while(|i| *i.file == *name)
        .collect()
}

/// A state holding everything up to `low`, then database `db_XX` up to its
/// last group in `ahead` for `XX` in `first`, and in `behind` for the rest.
fn state(low: &Item, ahead: &[Item], behind: &[Item], first: std::ops::Range<usize>) -> AppliedSet {
    let mut st = AppliedSet::default();
    st.state.low.insert(low.gtid.domain, wm(low));
    for db in 0..16 {
        let name = format!("db_{db:02}");
        let from = if first.contains(&db) { ahead } else { behind };
        if let Some(it) = from
            .iter()
            .rev()
            .find(|i| i.shards.as_ref().is_some_and(|s| *s[0] == *name))
        {
            st.state.shards.insert((0, name), wm(it));
        }
    }
    st
}

/// Reads and groups every file in order, with event bytes (the peer).
fn sequential_scan(dir: &Path) -> u64 {
    let src = Source::dir(dir).expect("index");
    let mut g = Grouper::new(BinlogReader::open(src, ReaderOptions::default()).expect("open"));
    let mut n = 0;
    while let Some(group) = g.next().expect("group") {
        std::hint::black_box(&group);
        n += 1;
    }
    n
}

/// CPU seconds this process has used so far, all threads (user + system,
/// from `/proc/self/stat`; 0 where there is none): on a loaded machine
/// wall time says more about the other processes than about this one.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is
    // field 3; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // Clock ticks are 100 per second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// Times `f` over `iters` runs and records each run's seconds.
fn timed(iters: u64, log: &RefCell<Vec<f64>>, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        let one = Instant::now();
        f();
        log.borrow_mut().push(one.elapsed().as_secs_f64());
    }
    t.elapsed()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The mirror and the states measured.
struct Setup {
    dir: PathBuf,
    bytes: u64,
    map: ShardMap,
    a: AppliedSet,
    b: AppliedSet,
    /// Both resuming at the last file.
    ta: AppliedSet,
    tb: AppliedSet,
}

fn setup(mb: u64) -> Setup {
    let (dir, bytes) = cached(mb);
    let map = ShardMap::new(ShardBy::Database);
    let files = catchup::mirror_files(&dir).expect("files");
    let name = |i: usize| files[i].file_name().unwrap().to_string_lossy().into_owned();
    let (first, mid, last) = (
        file_items(&dir, &map, &name(0)),
        file_items(&dir, &map, &name(files.len() / 2)),
        file_items(&dir, &map, &name(files.len() - 1)),
    );
    let a = state(&first[1], &last, &mid, 0..8);
    let b = state(&first[1], &last, &mid, 8..16);
    let (mut ta, mut tb) = (a.clone(), b.clone());
    for s in [&mut ta, &mut tb] {
        s.state.low.insert(0, wm(&last[0]));
    }
    let check = catchup::between(&a, &b, &dir, &map).expect("between");
    assert!(!check.a_to_b.is_empty() && !check.b_to_a.is_empty());
    println!(
        "catchup: {} files, {bytes} bytes; A→B {} groups ({} bytes), B→A {} groups ({} bytes)",
        files.len(),
        check.a_to_b.len(),
        check.a_to_b.bytes,
        check.b_to_a.len(),
        check.b_to_a.bytes
    );
    Setup {
        dir,
        bytes,
        map,
        a,
        b,
        ta,
        tb,
    }
}

impl Setup {
    fn between(&self, a: &AppliedSet, b: &AppliedSet) {
        let r = catchup::between(a, b, &self.dir, &self.map).expect("between");
        std::hint::black_box(r);
    }
}

/// The four measurements interleaved `runs` times on the [`FULL_MB`]
/// mirror (`cargo bench --bench benches -- --catchup-runs N`): each run
/// times them back to back, so that the ratios compare runs under the same
/// load; prints every run and the medians.
pub fn interleaved(runs: usize) {
    let s = setup(FULL_MB);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let logs: [RefCell<Vec<f64>>; 4] = Default::default();
    let cpu: [RefCell<Vec<f64>>; 4] = Default::default();
    let measure = |i: usize, f: &mut dyn FnMut()| {
        let c = cpu_seconds();
        timed(1, &logs[i], f);
        cpu[i].borrow_mut().push(cpu_seconds() - c);
    };
    for r in 0..runs {
        measure(0, &mut || s.between(&s.a, &s.b));
        measure(1, &mut || one.install(|| s.between(&s.a, &s.b)));
        measure(2, &mut || {
            std::hint::black_box(sequential_scan(&s.dir));
        });
        measure(3, &mut || s.between(&s.ta, &s.tb));
        let last = |l: &[RefCell<Vec<f64>>; 4], i: usize| {
            l[i].borrow().last().copied().unwrap_or(f64::NAN)
        };
        println!(
            "run {}: between {:.3} s (cpu {:.2} s), one thread {:.3} s (cpu {:.2} s), sequential \
             scan {:.3} s (cpu {:.2} s), tail {:.4} s (cpu {:.2} s); load average {}",
            r + 1,
            last(&logs, 0),
            last(&cpu, 0),
            last(&logs, 1),
            last(&cpu, 1),
            last(&logs, 2),
            last(&cpu, 2),
            last(&logs, 3),
            last(&cpu, 3),
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .unwrap_or("?")
        );
    }
    let m: Vec<f64> = cpu.iter().map(|l| median(&l.borrow())).collect();
    println!(
        "catchup cpu medians: between {:.2} s, one thread {:.2} s, sequential scan {:.2} s, tail \
         {:.2} s",
        m[0], m[1], m[2], m[3]
    );
    summary(&logs, s.bytes);
}

fn summary(logs: &[RefCell<Vec<f64>>; 4], bytes: u64) {
    let m: Vec<f64> = logs.iter().map(|l| median(&l.borrow())).collect();
    println!(
        "catchup medians: between {:.3} s ({:.0} MiB/s), one thread {:.3} s, sequential scan \
         {:.3} s, tail {:.4} s; sequential scan / between = {:.2}×, one thread / between = {:.2}×",
        m[0],
        bytes as f64 / m[0] / 1048576.0,
        m[1],
        m[2],
        m[3],
        m[2] / m[0],
        m[1] / m[0]
    );
}

/// The catch-up suite.
pub fn bench(c: &mut Criterion) {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let s = setup(if super::measuring() { FULL_MB } else { TEST_MB });
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let logs: [RefCell<Vec<f64>>; 4] = Default::default();
    let mut g = c.benchmark_group("catchup");
    g.throughput(Throughput::Bytes(s.bytes))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15));
    g.bench_function("between", |bn| {
        bn.iter_custom(|n| timed(n, &logs[0], || s.between(&s.a, &s.b)))
    });
    g.bench_function("between_one_thread", |bn| {
        bn.iter_custom(|n| timed(n, &logs[1], || one.install(|| s.between(&s.a, &s.b))))
    });
    g.bench_function("sequential_scan", |bn| {
        bn.iter_custom(|n| {
            timed(n, &logs[2], || {
                std::hint::black_box(sequential_scan(&s.dir));
            })
        })
    });
    g.bench_function("between_tail", |bn| {
        bn.iter_custom(|n| timed(n, &logs[3], || s.between(&s.ta, &s.tb)))
    });
    g.finish();
    summary(&logs, s.bytes);
}
