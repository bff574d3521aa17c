//! The binlog reader and grouper against the real binlogs in
//! `../shared/binlogs/` (written by MariaDB 10.11 and by MySQL 5.0–8.x).
//!
//! Covers: every fixture is read without a panic, with the outcome the table
//! below expects; event positions, end positions and type codes agree with
//! `mariadb-binlog` for every MariaDB file; a flipped byte and a cut file are
//! errors that name the file and position and yield nothing after the bad
//! event; starting by position and by GTID; the `inspect --json` fields.
//!
//! Run: `cargo test --test binlog_fixtures` (needs `mariadb-binlog`, from the
//! mariadb-server / mariadb-client package, and the shared/ folder beside the
//! repository).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{assert_agrees_with_mariadb_binlog, file_source, list_events};
use parapply::binlog::{BinlogReader, ReadError, ReaderOptions, Source};
use parapply::group::{GroupKind, Grouper};
use parapply::position::{BinlogPos, StartAt};

fn fixtures() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/binlogs");
    assert!(
        p.is_dir(),
        "the binlog fixtures are missing: expected {} (the shared/ folder beside the repository)",
        p.display()
    );
    p
}

fn mariadb_dir() -> PathBuf {
    fixtures().join("mariadb-10.11")
}

/// Fixtures whose events all read, but which the grouper refuses as a
/// corrupt transaction group (rows events with no Table_map in their group:
/// MySQL's hand-made 5.1 test files), with the text its error must carry.
/// Applying such a group would skip its rows silently.
const GROUPER_REFUSES: &[(&str, &str)] = &[(
    "ver_5_1-wl2325_s.001",
    "ver_5_1-wl2325_s.001:411: corrupt transaction group",
)];

/// What each fixture must give: `Ok(events)` or an error containing the text.
const EXPECTED: &[(&str, Result<usize, &str>)] = &[
    ("binlog-invisible-columns.000001", Ok(22)),
    ("binlog_56_gtid_reserved_word.000001", Ok(20)),
    ("binlog_savepoint.000001", Ok(12)),
    ("binlog_transaction.000001", Ok(20)),
    ("binlog_transaction_previous_GTID_no_tag.000001", Ok(3)),
    ("binlog_transaction_with_GTID.000001", Ok(11)),
    ("binlog_transaction_with_GTID_TAG.000001", Ok(8)),
    ("binlog_transaction_with_anonymous_GTID.000001", Ok(9)),
    (
        "binlog_truncated_event.000001",
        Err("binlog_truncated_event.000001:4: truncated event"),
    ),
    (
        "binlog_truncated_prev_gtid_event.000001",
        Err("binlog_truncated_prev_gtid_event.000001:120: truncated event"),
    ),
    ("bug11747887-bin.000003", Ok(9)),
    ("bug16266.000001", Ok(6)),
    ("bug27213339-bin.000001", Ok(95)),
    ("bug32407.001", Ok(7)),
    ("bug33029-slave-relay-bin.000001", Ok(43)),
    ("bug40482-bin.000001", Ok(3)),
    (
        "corrupt-relay-bin.000624",
        Err("corrupt-relay-bin.000624:91204: malformed Query event"),
    ),
    ("json.binlog.000001", Ok(36)),
    ("json-opaque.binlog", Ok(25)),
    ("mariadb-bin.000001", Ok(13)),
    ("master-bin.000001", Ok(3)),
    ("minimal_row_metadata.000001", Ok(8)),
    ("mysql-enum-string-set.000001", Ok(21)),
    ("mysql_type_bit.000001", Ok(11)),
    ("rpl_atomic_ddl_rollback_full.000001", Ok(11)),
    ("rpl_atomic_ddl_rollback_table.000001", Ok(7)),
    ("rpl_atomic_ddl_rollback_view.000001", Ok(7)),
    ("rpl_cross_version_default_utf8mb4_collation.000001", Ok(19)),
    ("rpl_unfiltered_hidden_gcol.000001", Ok(15)),
    ("slave-relay-bin.000001", Ok(6)),
    ("time_issue.000001", Ok(8)),
    ("transaction_compression.000001", Ok(5)),
    ("update-full-row.binlog", Ok(10)),
    ("update-partial-row.binlog", Ok(10)),
    ("vector.binlog", Ok(38)),
    // A 5.1 beta (5.2.2) file in a pre-GA Table_map layout.
    (
        "ver_5_1-wl2325_r.001",
        Err("ver_5_1-wl2325_r.001:650: malformed Table_map event"),
    ),
    ("ver_5_1-wl2325_s.001", Ok(15)),
    ("ver_5_1_23.001", Ok(24)),
    ("ver_trunk_row_v2.001", Ok(40)),
    ("write-full-row.binlog", Ok(9)),
    ("write-partial-row.binlog", Ok(10)),
    ("mariadb-10.11/mariadb-bin.000001", Ok(67)),
    ("mariadb-10.11/mariadb-bin.000002", Ok(18)),
    ("mariadb-10.11/mariadb-bin.000003", Ok(407)),
    ("mariadb-10.11/mariadb-bin.000004", Ok(3)),
];

#[test]
fn every_fixture_reads_with_the_expected_outcome_and_no_panic() {
    let dir = fixtures();
    // Every binlog in the folder is in the table: a new fixture must be added.
    let mut on_disk: Vec<String> = Vec::new();
    for sub in ["", "mariadb-10.11/"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_file()
                && !name.ends_with(".txt")
                && !name.ends_with(".md")
                && !name.ends_with(".index")
            {
                on_disk.push(format!("{sub}{name}"));
            }
        }
    }
    on_disk.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "fixtures on disk and in the table differ");

    for (name, want) in EXPECTED {
        let path = dir.join(name);
        let (events, err) = list_events(file_source(&path), StartAt::Beginning);
        match (want, err) {
            (Ok(n), None) => assert_eq!(events.len(), *n, "{name}: event count"),
            (Ok(_), Some(e)) => panic!("{name}: unexpected error: {e}"),
            (Err(text), Some(e)) => {
                assert!(
                    e.to_string().contains(text),
                    "{name}: error `{e}` lacks `{text}`"
                )
            }
            (Err(text), None) => panic!(
                "{name}: read {} events, expected error `{text}`",
                events.len()
            ),
        }
        // The grouper over the same file: no panic, same error if any.
        let opts = ReaderOptions::default();
        let mut g = Grouper::new(BinlogReader::open(file_source(&path), opts).unwrap());
        let mut groups = 0;
        let outcome = loop {
            match g.next() {
                Ok(Some(_)) => groups += 1,
                Ok(None) => break Ok(groups),
                Err(e) => break Err(e.to_string()),
            }
        };
        let refused = GROUPER_REFUSES.iter().find(|(n, _)| n == name);
        match (want, outcome) {
            (Ok(_), Ok(_)) if refused.is_none() => {}
            (Ok(_), Err(e)) if refused.is_some_and(|(_, text)| e.contains(text)) => {}
            (Err(text), Err(e)) => assert!(e.contains(text), "{name}: grouper error `{e}`"),
            (w, o) => panic!("{name}: grouper gave {o:?}, reader expectation {w:?}"),
        }
    }
}

#[test]
fn mariadb_files_agree_with_mariadb_binlog() {
    let mut files: Vec<PathBuf> = vec![fixtures().join("mariadb-bin.000001")];
    for i in 1..=4 {
        files.push(mariadb_dir().join(format!("mariadb-bin.00000{i}")));
    }
    for f in files {
        assert_agrees_with_mariadb_binlog(&f);
    }
}

#[test]
fn directory_reading_follows_the_index_and_groups_every_transaction() {
    let source = Source::dir(&mariadb_dir()).unwrap();
    let mut g = Grouper::new(BinlogReader::open(source, ReaderOptions::default()).unwrap());
    let mut gtids = Vec::new();
    let mut kinds = Vec::new();
    while let Some(group) = g.next().unwrap() {
        gtids.push(group.gtid.unwrap().to_string());
        kinds.push((group.kind, group.databases.clone(), group.databases_exact));
    }
    let mut want: Vec<String> = (1..=29).map(|s| format!("0-1-{s}")).collect();
    want.insert(24, "7-1-1".into());
    assert_eq!(gtids, want);
    assert!(g.pending().is_none());
    // DDL, XA, MyISAM and the cross-database row transaction are told apart.
    assert_eq!(kinds[0].0, GroupKind::Ddl);
    assert_eq!(kinds[17].0, GroupKind::Xa);
    assert_eq!(kinds[18].0, GroupKind::Xa);
    assert_eq!(kinds[10].0, GroupKind::NonTransactional);
    let cross = &kinds[28];
    assert_eq!(cross.0, GroupKind::RowDml);
    assert_eq!(cross.1, vec!["blog".to_string(), "shop".to_string()]);
    assert!(cross.2, "row events name their databases exactly");
    assert!(!kinds[7].2, "a statement's default database proves nothing");
    // The 3 MB transaction is one group.
    assert_eq!(kinds[26].0, GroupKind::RowDml);
}

#[test]
fn starts_by_position_and_by_gtid() {
    let src = || Source::dir(&mariadb_dir()).unwrap();
    let (ev, err) = list_events(
        src(),
        StartAt::Pos(BinlogPos::new("mariadb-bin.000003", 606)),
    );
    assert!(err.is_none(), "{err:?}");
    assert_eq!(ev[0].0, 606);
    assert_eq!(ev[0].3, 162, "a GTID event starts there");

    let (_, err) = list_events(
        src(),
        StartAt::Pos(BinlogPos::new("mariadb-bin.000003", 607)),
    );
    let msg = err.expect("607 is inside an event").to_string();
    assert!(
        msg.contains("mariadb-bin.000003:607 is not an event boundary"),
        "{msg}"
    );

    let (_, err) = list_events(src(), StartAt::Pos(BinlogPos::new("mariadb-bin.000009", 4)));
    assert!(err
        .unwrap()
        .to_string()
        .contains("no file mariadb-bin.000009"));

    let opts = ReaderOptions {
        start: StartAt::Gtid("0-1-26".parse().unwrap()),
        ..ReaderOptions::default()
    };
    let mut g = Grouper::new(BinlogReader::open(src(), opts).unwrap());
    let first = g.next().unwrap().unwrap();
    assert_eq!(first.gtid.as_ref().unwrap().to_string(), "0-1-26");
    assert_eq!(first.start(), BinlogPos::new("mariadb-bin.000003", 606));

    let opts = ReaderOptions {
        start: StartAt::Gtid("7-1-1".parse().unwrap()),
        ..ReaderOptions::default()
    };
    let mut g = Grouper::new(BinlogReader::open(src(), opts).unwrap());
    assert_eq!(
        g.next().unwrap().unwrap().gtid.unwrap().to_string(),
        "7-1-1"
    );

    for missing in ["0-1-99", "0-2-26"] {
        let opts = ReaderOptions {
            start: StartAt::Gtid(missing.parse().unwrap()),
            ..ReaderOptions::default()
        };
        let mut g = Grouper::new(BinlogReader::open(src(), opts).unwrap());
        let e = g.next().unwrap_err().to_string();
        assert!(
            e.contains("start not found") && e.contains(&missing[..1]),
            "{missing}: {e}"
        );
    }
}

fn copy_of(name: &str) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(mariadb_dir().join(name)).unwrap();
    let path = dir.path().join(name);
    (dir, path, bytes)
}

#[test]
fn a_flipped_byte_is_a_checksum_error_at_that_event_and_nothing_after_it() {
    let (_d, path, mut bytes) = copy_of("mariadb-bin.000001");
    let (good, _) = list_events(
        file_source(&mariadb_dir().join("mariadb-bin.000001")),
        StartAt::Beginning,
    );
    // Flip a byte inside the body of the 10th event.
    let (pos, end, _, _) = good[10];
    let at = usize::try_from((pos + end) / 2).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let (ev, err) = list_events(file_source(&path), StartAt::Beginning);
    let err = err.expect("a checksum error");
    assert!(
        matches!(err, ReadError::Checksum { pos: p, .. } if p == pos),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("mariadb-bin.000001:{pos}: checksum mismatch")),
        "{err}"
    );
    assert_eq!(ev.len(), 10, "only the events before the bad one");

    // A corrupt size field in a header is caught too (as a size or checksum error).
    let (_d2, path2, mut bytes2) = copy_of("mariadb-bin.000001");
    let p = usize::try_from(good[5].0).unwrap();
    bytes2[p + 9..p + 13].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    std::fs::write(&path2, &bytes2).unwrap();
    let (ev, err) = list_events(file_source(&path2), StartAt::Beginning);
    let msg = err.expect("corrupt header").to_string();
    assert!(
        msg.contains(&format!("mariadb-bin.000001:{}", good[5].0)),
        "{msg}"
    );
    assert_eq!(ev.len(), 5);
}

#[test]
fn a_cut_file_is_a_truncation_error_naming_the_partial_event() {
    let (_d, path, bytes) = copy_of("mariadb-bin.000003");
    let (good, _) = list_events(
        file_source(&mariadb_dir().join("mariadb-bin.000003")),
        StartAt::Beginning,
    );
    let (pos, end, _, _) = good[good.len() / 2];
    for cut in [pos + 5, end - 1] {
        std::fs::write(&path, &bytes[..usize::try_from(cut).unwrap()]).unwrap();
        let (ev, err) = list_events(file_source(&path), StartAt::Beginning);
        let err = err.expect("truncated");
        assert!(
            matches!(err, ReadError::Truncated { pos: p, .. } if p == pos),
            "{err}"
        );
        assert_eq!(
            ev.last().unwrap().1,
            pos,
            "everything before the partial event, nothing of it"
        );
    }
    // A foreign file is refused by its magic.
    std::fs::write(&path, b"SQLite format 3\0").unwrap();
    let (_, err) = list_events(file_source(&path), StartAt::Beginning);
    assert!(matches!(err, Some(ReadError::BadMagic { .. })));
}

#[test]
fn inspect_json_has_the_documented_fields() {
    let bin = env!("CARGO_BIN_EXE_parapply");
    let out = Command::new(bin)
        .args(["inspect", "--json"])
        .arg(mariadb_dir().join("mariadb-bin.000002"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 18);
    for l in &lines {
        for k in [
            "file",
            "pos",
            "end_pos",
            "type_code",
            "type",
            "server_id",
            "timestamp",
        ] {
            assert!(l.get(k).is_some(), "event line lacks {k}: {l}");
        }
    }
    assert_eq!(lines[0]["type"], "Format_desc");
    assert_eq!(lines[0]["pos"], 4);

    let out = Command::new(bin)
        .args(["inspect", "--groups", "--json", "--from", "0-1-28"])
        .arg(mariadb_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let groups: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(groups.len(), 2);
    let g = &groups[0];
    assert_eq!(g["gtid"], "0-1-28");
    assert_eq!(g["file"], "mariadb-bin.000003");
    assert_eq!(g["start_pos"], 3034506);
    assert_eq!(g["end_pos"], 3045105);
    assert_eq!(g["databases"], serde_json::json!(["blog", "shop"]));
    assert_eq!(g["kind"], "row_dml");
    assert_eq!(g["events"], 9);

    // Errors name the place and exit non-zero.
    let out = Command::new(bin)
        .args(["inspect"])
        .arg(fixtures().join("binlog_truncated_event.000001"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("binlog_truncated_event.000001:4: truncated event"));
}

#[test]
fn follow_mode_waits_for_a_half_written_event_and_a_new_file() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let one = std::fs::read(mariadb_dir().join("mariadb-bin.000001")).unwrap();
    let two = std::fs::read(mariadb_dir().join("mariadb-bin.000002")).unwrap();
    let (good, _) = list_events(
        file_source(&mariadb_dir().join("mariadb-bin.000001")),
        StartAt::Beginning,
    );
    let (cut_event_pos, cut_event_end, _, _) = good[20];
    let cut = usize::try_from(cut_event_pos + 7).unwrap();
    let index = dir.path().join("mariadb-bin.index");
    std::fs::write(&index, "./mariadb-bin.000001\n").unwrap();
    let path1 = dir.path().join("mariadb-bin.000001");
    std::fs::write(&path1, &one[..cut]).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<(String, u64)>();
    let opts = ReaderOptions {
        follow: true,
        poll: Duration::from_millis(5),
        stop: Some(stop.clone()),
        ..ReaderOptions::default()
    };
    let reader = std::thread::spawn(move || {
        let mut r = BinlogReader::open(Source::Index(index), opts).unwrap();
        while let Some(ev) = r.next().unwrap() {
            tx.send((ev.file.to_string(), ev.end_pos())).unwrap();
        }
    });
    let recv_until = |end: u64| {
        let mut last = 0;
        while last != end {
            let (_, e) = rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no event ending at {end}; last {last}"));
            last = e;
        }
    };
    recv_until(cut_event_pos);
    // Nothing of the half-written event comes out.
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path1)
        .unwrap();
    f.write_all(&one[cut..]).unwrap();
    recv_until(cut_event_end);
    recv_until(one.len() as u64);
    // A new file appears in the index: the reader moves on to it.
    std::fs::write(dir.path().join("mariadb-bin.000002"), &two).unwrap();
    std::fs::write(
        dir.path().join("mariadb-bin.index"),
        "./mariadb-bin.000001\n./mariadb-bin.000002\n",
    )
    .unwrap();
    let (file, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(file, "mariadb-bin.000002");
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
}

/// Peak resident memory of this process (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Found by fuzzing: a header announcing a ~770 MB event in a 300-byte file
/// made the reader allocate and zero the whole size before reading any of
/// it. The reader now allocates only what the file holds.
#[test]
fn a_huge_announced_event_size_allocates_nothing_it_cannot_read() {
    let (_d, path, bytes) = copy_of("mariadb-bin.000001");
    let mut data = bytes[..256].to_vec(); // magic + FDE
    data.extend_from_slice(&[
        0x13, 0x30, 0x30, 0x32, 0xff, 0xff, 0x0f, 0x00, 0x00, 0x30, 0x30, 0x32, 0x32, 0x30, 0x30,
        0x32, 0x32, 0x30, 0x32, 0x32,
    ]);
    std::fs::write(&path, &data).unwrap();
    let before = peak_rss_kib();
    let (ev, err) = list_events(file_source(&path), StartAt::Beginning);
    let grown_mib = (peak_rss_kib() - before) / 1024;
    assert_eq!(ev.len(), 1, "the FDE");
    assert!(
        matches!(err, Some(ReadError::Truncated { pos: 256, .. })),
        "{err:?}"
    );
    assert!(
        grown_mib < 64,
        "reading a 276-byte file grew the peak RSS by {grown_mib} MiB"
    );
}

/// Found by the bench: when the read buffer moved its unread bytes to the
/// front for an event that was not complete yet, the reader took the moved
/// buffer for a file whose magic was still unread ("not a binlog"). A file
/// cut in such an event is a truncation, and the same file completed later
/// reads to the end in follow mode.
#[test]
fn an_event_cut_across_the_read_buffer_boundary_is_a_truncation_not_a_foreign_file() {
    use parapply::binlog::synth::{generate, SynthOptions, Until};
    let dir = tempfile::tempdir().unwrap();
    let out = generate(
        dir.path(),
        &SynthOptions {
            until: Until::Bytes(2 << 20),
            ..SynthOptions::default()
        },
    )
    .unwrap();
    let file = &out.files[0];
    let whole = std::fs::read(file).unwrap();
    // Cut at every byte around the first 1 MiB buffer's end: each cut is
    // either an event boundary (a clean end) or a truncation.
    for cut in (1 << 20) - 64..(1 << 20) + 64 {
        std::fs::write(file, &whole[..cut]).unwrap();
        let (ev, err) = list_events(file_source(file), StartAt::Beginning);
        let end = ev.last().map(|e| e.1).unwrap_or(0);
        match err {
            None => assert_eq!(end, cut as u64, "cut at {cut}"),
            Some(ReadError::Truncated { pos, .. }) => assert_eq!(pos, end, "cut at {cut}"),
            Some(e) => panic!("cut at {cut}: {e}"),
        }
    }
}

fn synth_read_back(source: Source) -> (u64, Vec<parapply::group::Group>) {
    let reader = BinlogReader::open(source, ReaderOptions::default()).unwrap();
    let mut grouper = Grouper::new(reader);
    let mut groups = Vec::new();
    while let Some(g) = grouper.next().unwrap() {
        groups.push(g);
    }
    assert!(grouper.pending().is_none());
    (grouper.stats().bytes, groups)
}

/// `binlog::synth` writes files that the reader and the grouper read back
/// as the transactions it generated (here rather than in `synth`'s unit
/// tests: `binlog` does not use `group`).
#[test]
fn synth_one_file_reads_back_as_its_groups() {
    use parapply::binlog::synth::{generate, SynthOptions, Until};
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        until: Until::Transactions(200),
        databases: 4,
        rows_per_transaction: 3,
        ..SynthOptions::default()
    };
    let out = generate(dir.path(), &opts).unwrap();
    assert_eq!(out.files.len(), 1);
    assert_eq!(out.groups, 200);
    // magic + FDE + Gtid_list + checkpoint + 5 events per transaction.
    assert_eq!(out.events, 3 + 200 * 5);
    assert_eq!(std::fs::metadata(&out.files[0]).unwrap().len(), out.bytes);
    let (bytes, groups) = synth_read_back(Source::Files(out.files.clone()));
    assert_eq!(bytes + 4, out.bytes);
    assert_eq!(groups.len(), 200);
    for (i, g) in groups.iter().enumerate() {
        let gtid = g.maria_gtid().unwrap();
        assert_eq!((gtid.domain, gtid.server, gtid.seq), (0, 1, i as u64 + 1));
        assert_eq!(g.kind, GroupKind::RowDml);
        assert_eq!(g.databases, vec![format!("db_{:02}", (i + 1) % 4)]);
        assert_eq!(g.events.len(), 5);
    }
    assert_eq!(out.last_gtid.unwrap().seq, 200);
}

#[test]
fn synth_rotates_at_the_size_limit_and_writes_the_index() {
    use parapply::binlog::synth::{generate, SynthOptions, Until};
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        until: Until::Bytes(200_000),
        max_file_size: 50_000,
        annotate: false,
        ..SynthOptions::default()
    };
    let out = generate(dir.path(), &opts).unwrap();
    assert!(out.bytes >= 200_000);
    assert!(out.files.len() >= 4, "{:?}", out.files);
    let index = std::fs::read_to_string(&out.index).unwrap();
    assert_eq!(index.lines().count(), out.files.len());
    assert!(index.starts_with("./synth-bin.000001\n"));
    for f in &out.files[..out.files.len() - 1] {
        let len = std::fs::metadata(f).unwrap().len();
        assert!((50_000..51_000).contains(&len), "{len}");
    }
    let (_, groups) = synth_read_back(Source::Index(out.index.clone()));
    assert_eq!(groups.len() as u64, out.groups);
    // seq_nos run on across files; the second file starts at 4.
    assert!(groups
        .windows(2)
        .all(|w| { w[1].maria_gtid().unwrap().seq == w[0].maria_gtid().unwrap().seq + 1 }));
    let second = groups
        .iter()
        .find(|g| &*g.file == "synth-bin.000002")
        .unwrap();
    let name_len = "synth-bin.000002".len() as u64;
    let first_pos = 4 + 252 + (19 + 4 + 16 + 4) + (19 + 4 + name_len + 4);
    assert_eq!(second.start_pos, first_pos);
    // The second file's Gtid_list holds the last GTID of the first.
    let list = parapply::binlog::reader::gtid_list_of(&out.files[1])
        .unwrap()
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].seq + 1, second.maria_gtid().unwrap().seq);
}
