//! The workloads: what the throwaway primary is made to write before the
//! contenders replay its binlog. Each is generated once per bench, by real
//! client connections (several at once, so that the binary log interleaves
//! the databases as a busy primary's does), and every contender applies the
//! same binlog.
//!
//! | letter | name | shape at `--scale 1` |
//! |---|---|---|
//! | a | uniform | 20,000 two-row transactions spread evenly over 16 databases |
//! | b | skewed | 20,000 two-row transactions; one database takes half, 15 share the rest |
//! | c | one-database | 20,000 two-row transactions, all in one database |
//! | d | large | 500 transactions of 1,000 rows of ~1 KB (~1 MB each) over 16 databases |
//! | e | cross-database | 20,000 two-row transactions over 16 databases; 5 % also insert into the next database |
//! | f | sysbench | sysbench `oltp_write_only` on 8 databases, 2 client threads each, 2,500 transactions per database |
//! | g | sysbench-one-database | sysbench `oltp_write_only` on one database (`sbtest`), `--clients` threads, 20,000 transactions (`--rand-type=uniform`) |
//!
//! A two-row transaction inserts two new rows or updates the two rows the
//! previous transaction of its database inserted (they alternate), one
//! autocommit statement each: one transaction, one GTID.

use std::fmt;
use std::process::Command;
use std::str::FromStr;

use mysql::Conn;

use super::{sql_error, BenchError, Result};
use crate::sandbox::Server;

/// One of the bench's workloads; see the [module doc](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    /// (a) two-row transactions, 16 databases evenly.
    Uniform,
    /// (b) half of them in one database, the rest over 15 others.
    Skewed,
    /// (c) all in one database.
    OneDatabase,
    /// (d) ~1 MB transactions of 1,000 rows over 16 databases.
    Large,
    /// (e) as (a), 5 % touching two databases.
    CrossDatabase,
    /// (f) sysbench `oltp_write_only`, 8 databases, 2 threads each.
    Sysbench,
    /// (g) sysbench `oltp_write_only` on one database, `--clients` threads
    /// (the key-shards issue's second one-database workload).
    SysbenchOneDatabase,
}

impl Workload {
    /// Every workload, in letter order.
    pub const ALL: [Workload; 7] = [
        Workload::Uniform,
        Workload::Skewed,
        Workload::OneDatabase,
        Workload::Large,
        Workload::CrossDatabase,
        Workload::Sysbench,
        Workload::SysbenchOneDatabase,
    ];

    /// Its letter in issue 14 and on the command line.
    pub fn letter(self) -> char {
        match self {
            Workload::Uniform => 'a',
            Workload::Skewed => 'b',
            Workload::OneDatabase => 'c',
            Workload::Large => 'd',
            Workload::CrossDatabase => 'e',
            Workload::Sysbench => 'f',
            Workload::SysbenchOneDatabase => 'g',
        }
    }

    /// Its name (also accepted on the command line).
    pub fn name(self) -> &'static str {
        match self {
            Workload::Uniform => "uniform",
            Workload::Skewed => "skewed",
            Workload::OneDatabase => "one-database",
            Workload::Large => "large",
            Workload::CrossDatabase => "cross-database",
            Workload::Sysbench => "sysbench",
            Workload::SysbenchOneDatabase => "sysbench-one-database",
        }
    }

    /// Transactions at `--scale 1` (for sysbench: `oltp_write_only` events
    /// over all databases).
    fn base_transactions(self) -> u64 {
        match self {
            Workload::Large => 500,
            _ => 20_000,
        }
    }

    /// Transactions at `scale` (at least one per database).
    pub fn transactions(self, scale: f64) -> u64 {
        let n = (self.base_transactions() as f64 * scale).round() as u64;
        n.max(u64::from(self.databases()))
    }

    /// Databases it writes.
    pub fn databases(self) -> u32 {
        match self {
            Workload::OneDatabase | Workload::SysbenchOneDatabase => 1,
            Workload::Sysbench => SYSBENCH_DATABASES,
            _ => 16,
        }
    }

    /// One line for the report's header.
    pub fn describe(self, scale: f64) -> String {
        let n = self.transactions(scale);
        match self {
            Workload::Uniform => format!("{n} two-row transactions over 16 databases, evenly"),
            Workload::Skewed => {
                format!("{n} two-row transactions over 16 databases, half of them in one database")
            }
            Workload::OneDatabase => format!("{n} two-row transactions in one database"),
            Workload::Large => {
                format!("{n} transactions of {LARGE_ROWS} rows of ~1 KB over 16 databases")
            }
            Workload::CrossDatabase => format!(
                "{n} two-row transactions over 16 databases, every 20th also inserting into the \
                 next database"
            ),
            Workload::Sysbench => format!(
                "sysbench oltp_write_only, {SYSBENCH_DATABASES} databases of one {}-row table, \
                 {SYSBENCH_THREADS} threads each, {n} transactions in all",
                sysbench_table_size(scale)
            ),
            Workload::SysbenchOneDatabase => format!(
                "sysbench oltp_write_only, one database of one {}-row table, --clients threads, \
                 {n} transactions",
                sysbench_table_size(scale)
            ),
        }
    }

    /// Writes the workload on `primary` with `clients` connections (sysbench
    /// brings its own).
    pub fn generate(self, primary: &Server, scale: f64, clients: u16) -> Result<()> {
        let n = self.transactions(scale);
        match self {
            Workload::Uniform => two_row(primary, 16, n, clients, |j| j % 16, None),
            Workload::Skewed => two_row(primary, 16, n, clients, skewed_database, None),
            Workload::OneDatabase => two_row(primary, 1, n, clients, |_| 0, None),
            Workload::CrossDatabase => {
                two_row(primary, 16, n, clients, |j| j % 16, Some(CROSS_EVERY))
            }
            Workload::Large => large(primary, n, clients),
            Workload::Sysbench => {
                let dbs: Vec<String> = (0..SYSBENCH_DATABASES).map(|d| format!("sb{d}")).collect();
                sysbench(primary, &dbs, SYSBENCH_THREADS, n, scale, false)
            }
            Workload::SysbenchOneDatabase => sysbench(
                primary,
                &["sbtest".to_owned()],
                u32::from(clients),
                n,
                scale,
                true,
            ),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        Workload::ALL
            .into_iter()
            .find(|w| s.len() == 1 && s.starts_with(w.letter()) || s == w.name())
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a workload: use {}",
                    Workload::ALL
                        .map(|w| format!("{} ({})", w.letter(), w.name()))
                        .join(", ")
                )
            })
    }
}

/// Rows of a large transaction (d).
const LARGE_ROWS: u32 = 1000;
/// Every how many transactions of (e) one touches a second database.
const CROSS_EVERY: u64 = 20;
/// Databases of (f).
const SYSBENCH_DATABASES: u32 = 8;
/// sysbench threads per database of (f).
const SYSBENCH_THREADS: u32 = 2;

fn sysbench_table_size(scale: f64) -> u64 {
    ((10_000.0 * scale).round() as u64).max(100)
}

/// (b): even transactions go to db0, odd ones round-robin over db1..db15.
fn skewed_database(j: u64) -> u64 {
    if j.is_multiple_of(2) {
        0
    } else {
        1 + (j / 2) % 15
    }
}

fn create_databases(primary: &Server, databases: u32, tables: &str) -> Result<()> {
    let mut ddl = String::new();
    for d in 0..databases {
        ddl.push_str(&format!("CREATE DATABASE db{d}; "));
        ddl.push_str(&tables.replace("{db}", &format!("db{d}")));
    }
    primary.exec(&ddl)?;
    Ok(())
}

/// Runs `transactions` statements on `clients` connections; transaction `j`
/// is `statement(j)`, executed by the client that owns its database
/// (`database(j) mod clients`), so each database's transactions keep their
/// order.
fn run_clients(
    primary: &Server,
    databases: u32,
    transactions: u64,
    clients: u16,
    database: impl Fn(u64) -> u64 + Sync,
    statement: impl Fn(u64, u64, u64) -> String + Sync,
) -> Result<()> {
    let port = primary.port();
    let clients = u64::from(clients).clamp(1, u64::from(databases));
    let conns = (0..clients)
        .map(|_| primary.conn())
        .collect::<Result<Vec<Conn>, _>>()?;
    let (database, statement) = (&database, &statement);
    std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(client, mut conn)| {
                let client = client as u64;
                scope.spawn(move || -> Result<()> {
                    let mut done_in_db = vec![0u64; databases as usize];
                    for j in 0..transactions {
                        let d = database(j);
                        if d % clients != client {
                            continue;
                        }
                        let n = &mut done_in_db[d as usize];
                        let sql = statement(j, d, *n);
                        *n += 1;
                        crate::sandbox::exec_all(&mut conn, &sql).map_err(sql_error(port, sql))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| BenchError::Generate("a client thread panicked".into()))??;
        }
        Ok(())
    })
}

/// (a), (b), (c), (e): two-row transactions; with `cross_every`, every
/// such transaction also inserts a row into the next database's table `x`
/// (in one explicit transaction).
fn two_row(
    primary: &Server,
    databases: u32,
    transactions: u64,
    clients: u16,
    database: impl Fn(u64) -> u64 + Sync,
    cross_every: Option<u64>,
) -> Result<()> {
    let mut tables = String::from(
        "CREATE TABLE {db}.t (id INT PRIMARY KEY, k INT NOT NULL, v VARCHAR(64) NOT NULL) \
         ENGINE=InnoDB; ",
    );
    if cross_every.is_some() {
        tables.push_str(
            "CREATE TABLE {db}.x (id BIGINT PRIMARY KEY, v VARCHAR(64) NOT NULL) ENGINE=InnoDB; ",
        );
    }
    create_databases(primary, databases, &tables)?;
    let dbs = u64::from(databases);
    run_clients(
        primary,
        databases,
        transactions,
        clients,
        database,
        |j, d, n| {
            let sql = two_row_statement(d, n);
            match cross_every {
                Some(every) if j % every == every - 1 => format!(
                "START TRANSACTION; {sql}; INSERT INTO db{}.x (id, v) VALUES ({j}, 'from db{d}'); \
                 COMMIT",
                (d + 1) % dbs
            ),
                _ => sql,
            }
        },
    )
}

/// The `n`-th transaction of database `d`: even ones insert two rows, odd
/// ones update the two rows the previous one inserted.
pub(super) fn two_row_statement(d: u64, n: u64) -> String {
    let pair = n / 2;
    let (a, b) = (2 * pair + 1, 2 * pair + 2);
    if n.is_multiple_of(2) {
        format!("INSERT INTO db{d}.t (id, k, v) VALUES ({a}, {n}, 'row {a} of db{d}'), ({b}, {n}, 'row {b} of db{d}')")
    } else {
        format!("UPDATE db{d}.t SET k = k + 1, v = CONCAT(v, ' updated') WHERE id IN ({a}, {b})")
    }
}

/// (d): each transaction inserts `LARGE_ROWS` rows of ~1 KB into its
/// database's table with one `INSERT … SELECT` from the sequence engine.
fn large(primary: &Server, transactions: u64, clients: u16) -> Result<()> {
    create_databases(
        primary,
        16,
        "CREATE TABLE {db}.big (id BIGINT PRIMARY KEY, k INT NOT NULL, \
         v VARCHAR(1024) NOT NULL) ENGINE=InnoDB; ",
    )?;
    run_clients(
        primary,
        16,
        transactions,
        clients,
        |j| j % 16,
        |_, d, n| {
            let base = n * u64::from(LARGE_ROWS);
            format!(
                "INSERT INTO db{d}.big (id, k, v) SELECT {base} + seq, seq, \
             CONCAT(REPEAT(CHAR(65 + seq % 26), 992), LPAD(seq, 8, '0')) \
             FROM db{d}.seq_1_to_{LARGE_ROWS}"
            )
        },
    )
}

/// (f), (g): `sysbench oltp_write_only` prepare, then run, on `dbs` at once
/// (one sysbench process per database, `threads` threads each, `events`
/// transactions in all); `uniform`: `--rand-type=uniform`.
fn sysbench(
    primary: &Server,
    dbs: &[String],
    threads: u32,
    events: u64,
    scale: f64,
    uniform: bool,
) -> Result<()> {
    ensure_sysbench()?;
    primary.exec(
        &dbs.iter()
            .map(|d| format!("CREATE DATABASE {d};"))
            .collect::<String>(),
    )?;
    let events = (events / dbs.len().max(1) as u64).max(1);
    let size = sysbench_table_size(scale);
    let base = |db: &str, step: &str| {
        let mut c = Command::new("sysbench");
        c.arg("oltp_write_only")
            .arg("--db-driver=mysql")
            .arg(format!("--mysql-socket={}", primary.socket().display()))
            .arg("--mysql-user=root")
            .arg(format!("--mysql-db={db}"))
            .arg("--tables=1")
            .arg(format!("--table-size={size}"))
            .arg(format!("--threads={}", threads.max(1)))
            .arg(format!("--events={events}"))
            .arg("--time=0");
        if uniform {
            c.arg("--rand-type=uniform");
        }
        c.arg(step);
        c
    };
    for step in ["prepare", "run"] {
        let children = dbs
            .iter()
            .map(|db| {
                base(db, step)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| BenchError::Generate(format!("starting sysbench: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        for (db, child) in dbs.iter().zip(children) {
            let out = child
                .wait_with_output()
                .map_err(|e| BenchError::Generate(format!("waiting for sysbench: {e}")))?;
            if !out.status.success() {
                return Err(BenchError::Generate(format!(
                    "sysbench {step} on {db} exited with {}: {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
    }
    Ok(())
}

/// sysbench on the PATH, installed with apt-get if missing (as root, or
/// with `sudo -n`; scripts/test installs it too).
fn ensure_sysbench() -> Result<()> {
    let present = || {
        Command::new("sysbench")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if present() {
        return Ok(());
    }
    eprintln!("bench: sysbench missing: installing Debian's sysbench with apt-get");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut cmd = if root {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "apt-get"]);
        c
    };
    let installed = cmd
        .args(["install", "-y", "-q", "sysbench"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if installed && present() {
        Ok(())
    } else {
        Err(BenchError::Generate(
            "workload f/g needs sysbench, which is missing and could not be installed: \
             apt-get install sysbench"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_by_letter_or_name() {
        for w in Workload::ALL {
            assert_eq!(w.letter().to_string().parse::<Workload>(), Ok(w));
            assert_eq!(w.name().parse::<Workload>(), Ok(w));
        }
        assert!("h".parse::<Workload>().is_err());
        assert!("ab".parse::<Workload>().is_err());
    }

    #[test]
    fn sizes_scale_and_keep_one_transaction_per_database() {
        assert_eq!(Workload::Uniform.transactions(1.0), 20_000);
        assert_eq!(Workload::Large.transactions(1.0), 500);
        assert_eq!(Workload::Large.transactions(2.0), 1000);
        assert_eq!(Workload::Uniform.transactions(0.0001), 16);
        assert_eq!(Workload::OneDatabase.transactions(0.0), 1);
    }

    #[test]
    fn skewed_puts_half_in_one_database_and_spreads_the_rest() {
        let mut per_db = [0u32; 16];
        for j in 0..3000 {
            per_db[skewed_database(j) as usize] += 1;
        }
        assert_eq!(per_db[0], 1500);
        assert!(per_db[1..].iter().all(|&n| n == 100), "{per_db:?}");
    }

    #[test]
    fn the_two_row_workload_alternates_inserts_and_updates() {
        assert!(two_row_statement(3, 0).starts_with("INSERT INTO db3.t"));
        assert!(
            two_row_statement(3, 0).contains("(1, 0,")
                && two_row_statement(3, 0).contains("(2, 0,")
        );
        assert!(two_row_statement(3, 1).ends_with("WHERE id IN (1, 2)"));
        assert!(two_row_statement(3, 2).contains("(3, 2,"));
    }
}
