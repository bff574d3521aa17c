//! The corpus run: MariaDB's own regression test files, which no one on
//! this project wrote, as the workload of a primary whose binary log both
//! parapply and a stock replica then apply.
//!
//! For each selected test file and each binlog format (ROW, MIXED,
//! STATEMENT):
//!
//! 1. A throwaway primary starts with the settings MariaDB's test runner
//!    gives its servers where they change what a test writes ([`MTR_ARGS`]:
//!    MyISAM as the default engine, latin1 as the server character set,
//!    routines without `DETERMINISTIC` allowed); it, the replica and the
//!    target get a `test` database and the `mtr.add_suppression` procedure
//!    tests call, unlogged, as the test runner creates them.
//! 2. `mariadb-test --test-file …` (Debian's `mariadb-test` package) runs
//!    the file against it. A file that stops part-way (it expects the test
//!    runner's environment: debug builds, restarts, other servers) still
//!    wrote a binary log up to there, which is what counts; where it
//!    stopped is reported.
//! 3. A stock replica (CHANGE MASTER to the primary, its SQL thread) and a
//!    parapply target (`engine::run` on the primary's binlog directory),
//!    both started with the same settings, apply it.
//! 4. Every user database of each is compared with the primary's
//!    ([`Snapshot`]: table checksums, columns, routines, triggers, views).
//!    Tests drop what they create, so the end state alone proves little:
//!    both replicas log in ROW format with `log_slave_updates`, parapply
//!    commits each group alone, and the row changes each logged under
//!    each primary GTID are compared too (`mariadb-binlog --verbose`).
//!
//! Each (file, format) gets fresh servers, so that a stop on one file
//! cannot hide the next. [`SUBSET`] runs in the test suite
//! (`tests/corpus.rs`); [`SELECTION`] is the full run (`cargo run --release
//! --example mariadb_corpus`, minutes; its result is in
//! `docs/operations.md`).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::apply::engine::{self, ApplyOptions};
use crate::binlog::Source;
use crate::sandbox::{BinlogFormat, SandboxError, Server, ServerOptions, Snapshot};
use crate::wire::ConnectOptions;

/// Where Debian's `mariadb-test-data` puts the test files.
pub const SUITE_DIR: &str = "/usr/share/mysql/mysql-test";

/// The settings of MariaDB's test runner (its `default_mysqld.cnf` and
/// command line) that change what a test writes, given to all three
/// servers: a replica is configured like its primary.
pub const MTR_ARGS: &[&str] = &[
    "--default-storage-engine=MyISAM",
    "--character-set-server=latin1",
    "--collation-server=latin1_swedish_ci",
    "--log-bin-trust-function-creators=1",
    "--max-heap-table-size=1M",
    "--sort-buffer-size=256K",
    "--local-infile=ON",
];

/// What the test runner creates on its servers before a test: the `test`
/// database and `mtr.add_suppression`. Created on each server without
/// logging it (some tests reset the binary log).
const MTR_SETUP: &str = "SET sql_log_bin = 0; CREATE DATABASE test; CREATE DATABASE mtr; \
     CREATE TABLE mtr.test_suppressions (pattern VARCHAR(255)) ENGINE=MyISAM; \
     CREATE PROCEDURE mtr.add_suppression(pattern VARCHAR(255)) \
     INSERT INTO mtr.test_suppressions VALUES (pattern)";

/// A few files: INSERT … SELECT (with `CREATE TABLE … SELECT`, and
/// statements logged with an error after changing MyISAM tables) and
/// triggers (also on MyISAM tables, calling functions and procedures).
pub const SUBSET: &[&str] = &["main/insert_select.test", "main/trigger.test"];

/// The full run's files: DML, DDL, routines, triggers, views, character
/// sets, temporary tables, XA and mixed-engine transactions.
pub const SELECTION: &[&str] = &[
    "main/insert.test",
    "main/insert_select.test",
    "main/insert_update.test",
    "main/replace.test",
    "main/update.test",
    "main/delete.test",
    "main/multi_update.test",
    "main/auto_increment.test",
    "main/create.test",
    "main/temp_table.test",
    "main/trigger.test",
    "main/sp-vars.test",
    "main/view.test",
    "main/ctype_utf8.test",
    "main/xa.test",
    "main/commit.test",
    "main/func_str.test",
    "main/type_datetime.test",
];

/// What a corpus run needs and how it runs.
#[derive(Debug, Clone)]
pub struct CorpusOptions {
    /// The test suite's root (holds `main/`, `include/`, `std_data/`).
    pub suite_dir: PathBuf,
    /// Test files, relative to `suite_dir`.
    pub files: Vec<String>,
    /// The binlog formats each file runs in.
    pub formats: Vec<BinlogFormat>,
    /// parapply's workers.
    pub workers: usize,
    /// How long one test file may run before it is killed (a hang guard).
    pub test_timeout: Duration,
}

impl CorpusOptions {
    /// `files` in every format, from [`SUITE_DIR`], 4 workers.
    pub fn new(files: &[&str]) -> Self {
        CorpusOptions {
            suite_dir: PathBuf::from(SUITE_DIR),
            files: files.iter().map(|f| (*f).to_owned()).collect(),
            formats: vec![
                BinlogFormat::Row,
                BinlogFormat::Mixed,
                BinlogFormat::Statement,
            ],
            workers: 4,
            test_timeout: Duration::from_secs(300),
        }
    }
}

/// Why a corpus run could not run (a test file that stops, or an applier
/// that differs, is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// `mariadb-test` or the test files are not installed.
    #[error("{what} not found: install Debian's mariadb-test package (`apt-get install mariadb-test`; `scripts/test` does)")]
    Missing {
        /// The program or directory looked for.
        what: String,
    },
    /// A throwaway server failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Running `mariadb-test` failed.
    #[error("cannot run mariadb-test on {file}: {error}")]
    Io {
        /// The test file.
        file: String,
        /// The operating system's error.
        error: std::io::Error,
    },
}

type Result<T, E = CorpusError> = std::result::Result<T, E>;

/// How an applier's result compares with the reference (the primary's
/// databases, or the stock replica's row log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every database equals the primary's.
    Equal,
    /// It applied everything, and these items differ.
    Differs(Vec<String>),
    /// It stopped with this error.
    Stopped(String),
}

impl Outcome {
    /// Whether every database equals the primary's.
    pub fn is_equal(&self) -> bool {
        *self == Outcome::Equal
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Equal => f.write_str("equal"),
            Outcome::Differs(items) => {
                write!(f, "{} item(s) differ: {}", items.len(), items.join("; "))
            }
            Outcome::Stopped(error) => write!(f, "stopped: {error}"),
        }
    }
}

/// One test file in one format.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The test file, relative to the suite.
    pub file: String,
    /// The primary's binlog format.
    pub format: BinlogFormat,
    /// `None` when the test file ran to its end, else where `mariadb-test`
    /// stopped (its last line of error output).
    pub test_stopped: Option<String>,
    /// Groups parapply applied.
    pub groups: u64,
    /// Items (tables, columns, routines, triggers, views) compared at the
    /// end.
    pub items: usize,
    /// Row changes (rows inserted, updated or deleted, as the stock
    /// replica logged them) compared group by group.
    pub rows: usize,
    /// parapply's target's binary log against the stock replica's, group
    /// by group: the row changes each logged under each primary GTID.
    pub row_log: Outcome,
    /// Row-log differences of a known kind (listed in
    /// `docs/operations.md`), left out of `row_log`.
    pub known: Vec<String>,
    /// Seconds the test file took on the primary (with its start).
    pub test_seconds: f64,
    /// The stock replica against the primary.
    pub stock: Outcome,
    /// parapply's target against the primary.
    pub parapply: Outcome,
    /// Wall time of the whole file.
    pub seconds: f64,
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?}: {} groups, {} items, {} row changes; stock replica {}; parapply {}; \
             row log {} ({:.1} s, test {:.1} s)",
            self.file,
            self.format,
            self.groups,
            self.items,
            self.rows,
            self.stock,
            self.parapply,
            self.row_log,
            self.seconds,
            self.test_seconds
        )?;
        if !self.known.is_empty() {
            write!(f, " [known: {}]", self.known.join("; "))?;
        }
        if let Some(stop) = &self.test_stopped {
            write!(f, " [test file stopped: {stop}]")?;
        }
        Ok(())
    }
}

/// Checks that `mariadb-test` and the suite are installed; returns the
/// program.
pub fn prerequisites(o: &CorpusOptions) -> Result<PathBuf> {
    if !o.suite_dir.join("main").is_dir() {
        return Err(CorpusError::Missing {
            what: format!("the test suite {}", o.suite_dir.display()),
        });
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("mariadb-test"))
        .find(|p| p.is_file())
        .ok_or_else(|| CorpusError::Missing {
            what: "mariadb-test".to_owned(),
        })
}

/// Runs every file of `o` in every format; `on_file` sees each report as it
/// is made (progress).
///
/// The formats of one file run at the same time, each on its own servers
/// (the servers mostly wait on one another).
pub fn run(o: &CorpusOptions, mut on_file: impl FnMut(&FileReport)) -> Result<Vec<FileReport>> {
    let program = prerequisites(o)?;
    let program = program.as_path();
    let mut out = Vec::new();
    for file in &o.files {
        let reports: Vec<Result<FileReport>> = std::thread::scope(|s| {
            let runs: Vec<_> = o
                .formats
                .iter()
                .map(|&format| s.spawn(move || run_file(o, program, format, file)))
                .collect();
            runs.into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for r in reports {
            let r = r?;
            on_file(&r);
            out.push(r);
        }
    }
    Ok(out)
}

/// A server configured as the test runner configures its servers.
fn mtr_server(options: ServerOptions) -> Result<Server> {
    let options = MTR_ARGS.iter().fold(options, |o, a| o.arg(*a));
    Ok(Server::start(options)?)
}

/// One file in one format, on fresh servers.
pub fn run_file(
    o: &CorpusOptions,
    program: &Path,
    format: BinlogFormat,
    file: &str,
) -> Result<FileReport> {
    let started = Instant::now();
    let primary = mtr_server(
        ServerOptions::new()
            .server_id(1)
            .log_bin("mariadb-bin")
            .binlog_format(format),
    )?;
    primary.exec(MTR_SETUP)?;
    let test_stopped = run_test_file(o, program, &primary, file)?;
    let want = Snapshot::of(&primary)?;

    let test_seconds = started.elapsed().as_secs_f64();
    let replica = mtr_server(replica_options(3))?;
    replica.exec(MTR_SETUP)?;
    replica.replicate_from(&primary)?;
    let stock = match replica.wait_caught_up(&primary, o.test_timeout) {
        Ok(()) => compare(&want, Snapshot::of(&replica)?),
        Err(SandboxError::Replication { detail, .. }) => Outcome::Stopped(detail),
        Err(e) => return Err(e.into()),
    };

    let target = mtr_server(replica_options(2))?;
    target.exec(MTR_SETUP)?;
    let mut ao = ApplyOptions::new(
        Source::dir(primary.binlog_dir()).map_err(|e| CorpusError::Io {
            file: file.to_owned(),
            error: std::io::Error::other(e.to_string()),
        })?,
        ConnectOptions::new("127.0.0.1", target.port(), "root"),
    );
    ao.workers = o.workers;
    // One target transaction per group: the target's binary log then has
    // each primary GTID with its own rows, comparable with the stock
    // replica's.
    ao.batch_groups = 1;
    let progress = ao.progress.schema().to_owned();
    let (groups, parapply) = match engine::run(ao) {
        Ok(r) => (
            r.applied,
            compare(&want, Snapshot::of(&target)?.without_database(&progress)),
        ),
        Err(e) => (e.report.applied, Outcome::Stopped(e.to_string())),
    };
    // The tests drop what they create, so the end state holds little:
    // every row change each applier made, group by group, is compared too.
    let stock_rows = row_changes(&replica, &progress)
        .map_err(io_error(file))?
        .rows;
    let rows = stock_rows.values().map(Vec::len).sum();
    let mut known = Vec::new();
    let row_log = match (&stock, &parapply) {
        (Outcome::Stopped(_), _) | (_, Outcome::Stopped(_)) => {
            Outcome::Stopped("not compared: an applier stopped".to_owned())
        }
        _ => {
            let ours = row_changes(&target, &progress).map_err(io_error(file))?;
            let logged = row_changes(&primary, &progress).map_err(io_error(file))?;
            let (differ, explained) = diff_row_changes(&stock_rows, &ours.rows, &logged.with_error);
            known = explained;
            outcome(differ)
        }
    };
    Ok(FileReport {
        file: file.to_owned(),
        format,
        test_stopped,
        groups,
        items: want.len(),
        rows,
        row_log,
        known,
        test_seconds,
        stock,
        parapply,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn compare(want: &Snapshot, got: Snapshot) -> Outcome {
    outcome(want.differences(&got))
}

fn outcome(d: Vec<String>) -> Outcome {
    if d.is_empty() {
        Outcome::Equal
    } else {
        Outcome::Differs(d)
    }
}

/// Runs `mariadb-test` on `file` against `primary`; `None` if it ran to
/// the end, else its last error line.
fn run_test_file(
    o: &CorpusOptions,
    program: &Path,
    primary: &Server,
    file: &str,
) -> Result<Option<String>> {
    let io = |error| CorpusError::Io {
        file: file.to_owned(),
        error,
    };
    let vardir = primary.root().join("mtr");
    std::fs::create_dir_all(vardir.join("tmp")).map_err(io)?;
    let out = File::create(vardir.join("output")).map_err(io)?;
    let err_path = vardir.join("errors");
    let err = File::create(&err_path).map_err(io)?;
    let mut suite = o.suite_dir.clone().into_os_string();
    suite.push("/");
    let mut child = Command::new(program)
        .arg("--host=127.0.0.1")
        .arg(format!("--port={}", primary.port()))
        .arg("--user=root")
        .arg("--database=test")
        .arg("--silent")
        .arg("--basedir")
        .arg(&suite)
        .arg("--tmpdir")
        .arg(vardir.join("tmp"))
        .arg("--test-file")
        .arg(o.suite_dir.join(file))
        .env("MYSQL_TEST_DIR", &o.suite_dir)
        .env("MYSQLTEST_VARDIR", &vardir)
        .env("MYSQL_TMP_DIR", vardir.join("tmp"))
        .current_dir(&o.suite_dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(io)?;
    let deadline = Instant::now() + o.test_timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            break status;
        }
        if Instant::now() >= deadline {
            // Killed: what it wrote so far is the workload.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Some(format!("killed after {:?}", o.test_timeout)));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let errors = std::fs::read_to_string(&err_path).unwrap_or_default();
    let last = errors
        .lines()
        .rev()
        .find(|l| l.starts_with("mysqltest:") || l.contains("failed"))
        .or_else(|| errors.lines().rev().find(|l| !l.trim().is_empty()));
    Ok(match (status.success(), errors.contains("not ok"), last) {
        (true, false, _) => None,
        (_, _, Some(line)) => Some(line.chars().take(300).collect()),
        _ => Some(format!("mariadb-test exited with {status}")),
    })
}

/// The options of a replica (stock or parapply's target): its own binary
/// log in ROW format with `log_slave_updates`, so that every row it
/// changed is logged under the primary's GTID.
fn replica_options(server_id: u32) -> ServerOptions {
    ServerOptions::new()
        .server_id(server_id)
        .log_bin("replica-bin")
        .binlog_format(BinlogFormat::Row)
        .log_slave_updates(true)
}

fn io_error(file: &str) -> impl Fn(std::io::Error) -> CorpusError + '_ {
    move |error| CorpusError::Io {
        file: file.to_owned(),
        error,
    }
}

/// Row changes by GTID.
type RowChanges = BTreeMap<String, Vec<String>>;

/// What a binary log says group by group: the row changes under each
/// GTID, and the GTIDs whose Query events were logged with an error.
#[derive(Default)]
struct LoggedGroups {
    rows: RowChanges,
    with_error: std::collections::BTreeSet<String>,
}

/// The row changes in `server`'s binary log, by the GTID they were logged
/// under, as `mariadb-binlog --verbose` decodes them (`### INSERT INTO
/// `db`.`t` / ### SET / ###   @1=…` lines); those of parapply's own
/// `progress` schema are left out.
fn row_changes(server: &Server, progress: &str) -> std::io::Result<LoggedGroups> {
    let mut out = LoggedGroups::default();
    let skip = format!("`{progress}`.");
    for f in server.binlog_files().map_err(std::io::Error::other)? {
        let o = Command::new("mariadb-binlog")
            .args([
                "--verbose",
                "--base64-output=DECODE-ROWS",
                "--skip-gtid-strict-mode",
            ])
            .arg(&f)
            .stdin(Stdio::null())
            .output()?;
        if !o.status.success() {
            return Err(std::io::Error::other(format!(
                "mariadb-binlog {} failed: {}",
                f.display(),
                String::from_utf8_lossy(&o.stderr)
            )));
        }
        let text = String::from_utf8_lossy(&o.stdout);
        let mut gtid = String::new();
        let mut skipping = false;
        for line in text.lines() {
            // "#261129  9:27:53 server id 1  end_log_pos 342 CRC32 0x…\tGTID 0-1-1 trans"
            if line.starts_with('#') && line.contains(" end_log_pos ") {
                if line.split_whitespace().any(|w| {
                    w.strip_prefix("error_code=")
                        .is_some_and(|c| c.parse::<u32>().is_ok_and(|c| c != 0))
                }) {
                    out.with_error.insert(gtid.clone());
                }
                let mut words = line.split_whitespace();
                if words.any(|w| w == "GTID") {
                    gtid = words.next().unwrap_or_default().to_owned();
                }
                continue;
            }
            let Some(change) = line.strip_prefix("### ") else {
                continue;
            };
            if let Some(table) = ["INSERT INTO ", "UPDATE ", "DELETE FROM "]
                .iter()
                .find_map(|p| change.strip_prefix(p))
            {
                skipping = table.starts_with(&skip);
            }
            if !skipping {
                out.rows
                    .entry(gtid.clone())
                    .or_default()
                    .push(change.to_owned());
            }
        }
    }
    Ok(out)
}

/// A group's row-log lines cut into row changes: each starts with the
/// line naming the statement and table (`INSERT INTO`, `UPDATE`, `DELETE
/// FROM`); its `WHERE`/`SET` and column lines follow.
fn changes_of(lines: &[String]) -> Vec<&[String]> {
    let starts_change = |l: &str| {
        ["INSERT INTO ", "UPDATE ", "DELETE FROM "]
            .iter()
            .any(|p| l.starts_with(p))
    };
    let mut out = Vec::new();
    let mut start = 0;
    for (i, l) in lines.iter().enumerate() {
        if i > start && starts_change(l) {
            out.push(&lines[start..i]);
            start = i;
        }
    }
    if start < lines.len() {
        out.push(&lines[start..]);
    }
    out
}

/// Whether two groups' row logs hold the same row changes, in another
/// order: statement-format replay of `INSERT … SELECT` without a fixed
/// order lets each server write the rows in its own order (seen with
/// `insert_select`'s `INSERT INTO v1 SELECT * FROM v1`); both replicas
/// still end with the primary's data, which the checksums check apart.
fn same_changes_in_another_order(a: &[String], b: &[String]) -> bool {
    let (mut x, mut y) = (changes_of(a), changes_of(b));
    x.sort_unstable();
    y.sort_unstable();
    a != b && x == y
}

/// The groups whose row changes differ (at most 10 named), and those
/// whose difference is the known one (see `docs/operations.md`): a
/// statement the primary logged with an error (it failed after changing a
/// non-transactional table) changes the same rows on both replicas, but
/// the stock replica logs none of them, parapply's target logs them.
fn diff_row_changes(
    want: &RowChanges,
    got: &RowChanges,
    with_error: &std::collections::BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let keys: std::collections::BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    let mut out = Vec::new();
    let mut known = Vec::new();
    for k in keys {
        let (w, g) = (want.get(k), got.get(k));
        if w == g {
            continue;
        }
        if w.is_none() && with_error.contains(k) {
            known.push(format!(
                "rows of {k}: a statement logged with an error: {} logged by parapply, none by \
                 the stock replica",
                g.map_or(0, Vec::len)
            ));
            continue;
        }
        let (w, g) = (
            w.map_or(&[][..], Vec::as_slice),
            g.map_or(&[][..], Vec::as_slice),
        );
        if same_changes_in_another_order(w, g) {
            known.push(format!(
                "rows of {k}: the same {} row change(s) in another order (a statement that \
                 does not fix the order of the rows it writes)",
                changes_of(w).len()
            ));
            continue;
        }
        let first = w
            .iter()
            .zip(g)
            .position(|(a, b)| a != b)
            .unwrap_or(w.len().min(g.len()));
        out.push(format!(
            "rows of {k}: {} logged by the stock replica, {} by parapply; first difference at \
             line {first}: {:?} != {:?}",
            w.len(),
            g.len(),
            w.get(first),
            g.get(first)
        ));
    }
    let n = out.len();
    if n > 10 {
        out.truncate(10);
        out.push(format!("… {} more group(s)", n - 10));
    }
    (out, known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_changes_in_another_order_are_told_apart() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = l(&["INSERT INTO t", "  @1=1", "INSERT INTO t", "  @1=3"]);
        let b = l(&["INSERT INTO t", "  @1=3", "INSERT INTO t", "  @1=1"]);
        let u = l(&["UPDATE t", "WHERE", "  @1=1", "SET", "  @1=2"]);
        assert_eq!(changes_of(&u).len(), 1);
        let c = l(&["INSERT INTO t", "  @1=3", "INSERT INTO t", "  @1=2"]);
        assert_eq!(changes_of(&a).len(), 2);
        assert!(same_changes_in_another_order(&a, &b));
        assert!(!same_changes_in_another_order(&a, &a));
        assert!(!same_changes_in_another_order(&a, &c));
    }
}
