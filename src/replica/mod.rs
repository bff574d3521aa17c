//! One target server's parapply state: the connection to it, the checks it
//! must pass before anything is applied, the applier lock, and reading what
//! it has applied. The apply engine, `status` and (later) promotion all go
//! through a [`Replica`]; it knows nothing of them (plain inputs,
//! [`ReplicaOptions`], and its own result types).
//!
//! # Connection
//!
//! [`Replica::connect`] opens one control connection. A lost connection is
//! opened again within [`ReplicaOptions::reconnect_timeout`]
//! ([`reconnect_within`], which the workers use too); the session the lost
//! connection may have left on the server is ended ([`end_lost_session`],
//! the workers' too), and the session's settings (`sql_log_bin=0`) and the
//! applier lock are taken back.
//!
//! # Preflight
//!
//! Each requirement is one `ensure_*` method returning a typed
//! [`PreflightError`] that says what to change: [`Replica::ensure_log_bin`],
//! [`Replica::ensure_gtid_strict_mode_off`],
//! [`Replica::ensure_binlog_replay`] (the `BINLOG` privilege),
//! [`Replica::ensure_gtid_seq_no`] (keeping the primary's GTIDs),
//! [`Replica::ensure_progress_tables`], [`Replica::ensure_sql_log_bin_off`]
//! (bookkeeping stays out of the target's binary log) and
//! [`Replica::ensure_shard_map`].
//!
//! # The applier lock
//!
//! One applier per target, whatever its progress schema:
//! [`Replica::take_applier_lock`] takes the server lock
//! ([`crate::progress::ProgressTables::applier_lock`]), or says which
//! connection holds it ([`ReplicaError::Locked`]); then it waits until the
//! sessions a dead applier left behind have left the server (their
//! statements committed or rolled back), so that the state read next is
//! final.
//!
//! # State
//!
//! [`Replica::read_state`] (watermarks and low-watermark),
//! [`Replica::gtid_binlog_state`], [`Replica::applied_set`] (both: what the
//! restart rule needs), [`Replica::has_progress_tables`],
//! [`Replica::sql_thread_running`], [`Replica::read_only`], [`Replica::gtid_slave_pos`],
//! [`Replica::collations`] (every collation id the target knows, which the
//! replay of Query events needs); [`pending`] counts what a
//! source holds that the replica has not applied (`parapply status`).
//!
//! # Promotion's rows
//!
//! The progress schema's `config` table also holds what a promotion
//! leaves on the target: [`FREEZE`] (the promotion that froze it:
//! [`Replica::frozen_by`], [`Replica::ensure_not_frozen`], which the engine
//! checks at start and polls while running), [`PROMOTION`] (its persisted
//! record) and [`OWN_GTIDS`] (the GTIDs creating the progress tables wrote
//! in the target's binlog: not errant transactions, [`Replica::own_gtids`]).
//! source holds that the replica has not applied (`parapply status`);
//! [`wait_applied`] waits until one group is applied (`parapply wait`).

mod error;
mod pending;
mod wait;

pub use error::{PreflightError, ReplicaError};
pub use pending::{pending, Pending};
pub use wait::{wait_applied, WaitError, WaitOptions, WaitOutcome};

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::position::MariaGtid;
use crate::progress::{
    escape, parse_gtid_list, AppliedSet, ProgressTables, ReplicaState, Watermark,
    SHARD_PROGRESS_LAYOUT,
};
use crate::schedule::KeyCatalog;
use crate::wire::{Conn, ConnectOptions, WireError};

/// How to reach a replica and where its progress lives.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// The server.
    pub target: ConnectOptions,
    /// The progress tables.
    pub progress: ProgressTables,
    /// How long a lost connection is tried again.
    pub reconnect_timeout: Duration,
}

/// A replica server, through one control connection.
pub struct Replica {
    opts: ReplicaOptions,
    conn: Conn,
    /// This connection holds the applier lock (take it back after a reconnect).
    locked: bool,
    /// This connection runs with `sql_log_bin=0`.
    log_bin_off: bool,
}

/// The `config` row naming the promotion that froze the target.
pub const FREEZE: &str = "freeze";
/// The `config` row holding a promotion's persisted plan and progress.
pub const PROMOTION: &str = "promotion";
/// The `config` row listing the GTIDs parapply wrote in the target's binlog.
pub const OWN_GTIDS: &str = "own_gtids";

/// How long [`Replica::take_applier_lock`] waits for the lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The longest single `GET_LOCK` wait: `stop` is asked between two.
const LOCK_STEP: Duration = Duration::from_secs(1);

impl Replica {
    /// Connects (once: an unreachable server is an error at once).
    pub fn connect(opts: ReplicaOptions) -> Result<Replica, ReplicaError> {
        let conn = Conn::connect(&opts.target).map_err(|error| ReplicaError::Connect {
            addr: opts.target.addr(),
            error: Box::new(error),
        })?;
        Ok(Replica {
            opts,
            conn,
            locked: false,
            log_bin_off: false,
        })
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        self.opts.target.addr()
    }

    /// Its options.
    pub fn options(&self) -> &ReplicaOptions {
        &self.opts
    }

    fn query_err(&self, what: &'static str) -> impl FnOnce(WireError) -> ReplicaError + '_ {
        move |error| ReplicaError::Query {
            addr: self.addr(),
            what,
            error: Box::new(error),
        }
    }

    fn value(&mut self, sql: &str, what: &'static str) -> Result<String, ReplicaError> {
        match self.conn.query_value(sql) {
            Ok(v) => Ok(v.unwrap_or_default()),
            Err(e) => Err(self.query_err(what)(e)),
        }
    }

    fn rows(
        &mut self,
        sql: &str,
        what: &'static str,
    ) -> Result<Vec<crate::wire::Row>, ReplicaError> {
        match self.conn.query_rows(sql) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.query_err(what)(e)),
        }
    }

    fn exec(&mut self, sql: &[u8], what: &'static str) -> Result<(), ReplicaError> {
        match self.conn.execute(sql) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.query_err(what)(e)),
        }
    }

    /// `log_bin` is on (DESIGN.md: exactly-once DDL and promotion need it).
    pub fn ensure_log_bin(&mut self) -> Result<(), ReplicaError> {
        if self.value("SELECT @@GLOBAL.log_bin", "reading log_bin")? != "1" {
            return Err(PreflightError::LogBinOff { addr: self.addr() }.into());
        }
        Ok(())
    }

    /// The server's own replication is not applying events: no
    /// replication connection has its SQL thread running (`SHOW ALL SLAVES
    /// STATUS`). Asked before applying and again while applying (a `START
    /// SLAVE` later would apply the same transactions as parapply).
    pub fn ensure_not_replicating(&mut self) -> Result<(), ReplicaError> {
        let names = match self.conn.execute(b"SHOW ALL SLAVES STATUS") {
            Ok(mut outcomes) => match outcomes.pop() {
                Some(o) => running_sql_threads(&o.columns, &o.rows),
                None => Vec::new(),
            },
            Err(error @ WireError::Server { .. }) => {
                return Err(PreflightError::ReplicationStatusRefused {
                    addr: self.addr(),
                    error: Box::new(error),
                }
                .into())
            }
            Err(e) => return Err(self.query_err("reading the replication status")(e)),
        };
        if names.is_empty() {
            return Ok(());
        }
        Err(PreflightError::ServerReplicates {
            addr: self.addr(),
            names,
        }
        .into())
    }

    /// `gtid_strict_mode` is off (out-of-order commits break it).
    pub fn ensure_gtid_strict_mode_off(&mut self) -> Result<(), ReplicaError> {
        let v = self.value(
            "SELECT @@GLOBAL.gtid_strict_mode",
            "reading gtid_strict_mode",
        )?;
        if v == "1" {
            return Err(PreflightError::GtidStrictMode { addr: self.addr() }.into());
        }
        Ok(())
    }

    /// The user may replay binlog events: runs `statement`, a harmless
    /// `BINLOG '…'` (the source's own Format_description event).
    pub fn ensure_binlog_replay(&mut self, statement: &[u8]) -> Result<(), ReplicaError> {
        self.conn.execute(statement).map(drop).map_err(|error| {
            PreflightError::BinlogReplayRefused {
                addr: self.addr(),
                error: Box::new(error),
            }
            .into()
        })
    }

    /// The user may set `gtid_seq_no` (the primary's GTIDs are kept).
    pub fn ensure_gtid_seq_no(&mut self) -> Result<(), ReplicaError> {
        self.conn
            .execute(b"SET @@session.gtid_seq_no=0")
            .map(drop)
            .map_err(|error| {
                PreflightError::GtidSeqNoRefused {
                    addr: self.addr(),
                    error: Box::new(error),
                }
                .into()
            })
    }

    /// Creates the progress tables when missing — through the binary log,
    /// once: a replica of this replica receives the watermark rows inside
    /// each transaction and needs the tables. Returns whether
    /// `shard_progress` has the layout the workers' row events describe
    /// (otherwise watermarks are written with SQL, slower).
    pub fn ensure_progress_tables(&mut self) -> Result<bool, ReplicaError> {
        let tables = self.opts.progress.clone();
        if self.value(&tables.count_tables_sql(), "counting the progress tables")? != "4" {
            let mut own = Vec::new();
            for sql in tables.create_sql() {
                if let Err(error) = self.conn.execute(sql.as_bytes()) {
                    return Err(PreflightError::ProgressTables {
                        addr: self.addr(),
                        schema: tables.schema().to_string(),
                        error: Box::new(error),
                    }
                    .into());
                }
                let gtid = self.value("SELECT @@SESSION.last_gtid", "reading last_gtid")?;
                if !gtid.is_empty() {
                    own.push(gtid);
                }
            }
            self.record_own_gtids(&own)?;
        }
        let layout = self.value(&tables.layout_sql(), "reading the progress table's layout")?;
        let row_events = layout == SHARD_PROGRESS_LAYOUT;
        if !row_events {
            tracing::warn!(
                layout = %layout,
                expected = SHARD_PROGRESS_LAYOUT,
                "`{}`.`shard_progress` does not have the layout parapply creates; watermarks are \
                 written with SQL (slower)",
                tables.schema()
            );
        }
        Ok(row_events)
    }

    /// Adds `gtids` (written by parapply itself in the target's binary log:
    /// the progress tables' DDL) to the `config` row [`OWN_GTIDS`], outside
    /// the binary log.
    fn record_own_gtids(&mut self, gtids: &[String]) -> Result<(), ReplicaError> {
        if gtids.is_empty() {
            return Ok(());
        }
        let mut all = self.config(OWN_GTIDS)?.unwrap_or_default();
        for g in gtids {
            if !all.is_empty() {
                all.push(',');
            }
            all.push_str(g);
        }
        let sql = self.opts.progress.save_config_sql(OWN_GTIDS, &all);
        let log_bin_was_off = self.log_bin_off;
        self.exec(b"SET @@session.sql_log_bin=0", "turning off binary logging")?;
        let r = self.exec(sql.as_bytes(), "recording parapply's own GTIDs");
        if !log_bin_was_off {
            self.exec(
                b"SET @@session.sql_log_bin=1",
                "turning binary logging back on",
            )?;
        }
        r
    }

    /// The GTIDs parapply wrote in the target's own binary log (creating
    /// its progress tables): not errant transactions.
    pub fn own_gtids(&mut self) -> Result<Vec<MariaGtid>, ReplicaError> {
        let value = self.config(OWN_GTIDS)?.unwrap_or_default();
        parse_gtid_list(&value).map_err(|error| ReplicaError::BadGtidList {
            addr: self.addr(),
            variable: "parapply own_gtids",
            value,
            error,
        })
    }

    /// The value of the `config` row `name` of the progress schema, if
    /// the row (or the table) exists.
    pub fn config(&mut self, name: &str) -> Result<Option<String>, ReplicaError> {
        let sql = self.opts.progress.select_config_sql(name);
        match self.conn.query_value(&sql) {
            Ok(v) => Ok(v),
            // No progress tables yet: no row.
            Err(WireError::Server { code: 1146, .. }) => Ok(None),
            Err(e) => Err(self.query_err("reading the config table")(e)),
        }
    }

    /// Sets the `config` row `name` (outside the binary log: call
    /// [`Replica::ensure_sql_log_bin_off`] first).
    pub fn set_config(&mut self, name: &str, value: &str) -> Result<(), ReplicaError> {
        let sql = self.opts.progress.save_config_sql(name, value);
        self.exec(sql.as_bytes(), "writing the config table")
    }

    /// The promotion that froze this target, if any ([`FREEZE`]).
    pub fn frozen_by(&mut self) -> Result<Option<String>, ReplicaError> {
        self.config(FREEZE)
    }

    /// Refuses a frozen target unless `promotion` froze it (an applier run
    /// by that promotion).
    pub fn ensure_not_frozen(&mut self, promotion: Option<&str>) -> Result<(), ReplicaError> {
        match self.frozen_by()? {
            Some(by) if Some(by.as_str()) != promotion => Err(PreflightError::Frozen {
                addr: self.addr(),
                by,
            }
            .into()),
            _ => Ok(()),
        }
    }

    /// Runs `statements` in one transaction on the control connection.
    pub fn transaction(
        &mut self,
        statements: &[String],
        what: &'static str,
    ) -> Result<(), ReplicaError> {
        let mut sql = String::from("START TRANSACTION");
        for s in statements {
            sql.push_str("; ");
            sql.push_str(s);
        }
        sql.push_str("; COMMIT");
        self.exec(sql.as_bytes(), what)
    }

    /// Runs one statement on the control connection.
    pub fn execute(&mut self, sql: &str, what: &'static str) -> Result<(), ReplicaError> {
        self.exec(sql.as_bytes(), what)
    }

    /// The rows of a query on the control connection, as text.
    pub fn query_text(
        &mut self,
        sql: &str,
        what: &'static str,
    ) -> Result<Vec<Vec<String>>, ReplicaError> {
        Ok(self
            .rows(sql, what)?
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|v| String::from_utf8_lossy(v.as_deref().unwrap_or(b"")).into_owned())
                    .collect()
            })
            .collect())
    }

    /// `@@GLOBAL.server_id`.
    pub fn server_id(&mut self) -> Result<u32, ReplicaError> {
        let v = self.value("SELECT @@GLOBAL.server_id", "reading server_id")?;
        Ok(v.parse().unwrap_or(0))
    }

    /// From here on this connection's writes stay out of the target's
    /// binary log (it holds the primary's GTIDs, not parapply's).
    pub fn ensure_sql_log_bin_off(&mut self) -> Result<(), ReplicaError> {
        self.conn
            .execute(b"SET @@session.sql_log_bin=0")
            .map_err(|error| PreflightError::SqlLogBinRefused {
                addr: self.addr(),
                error: Box::new(error),
            })?;
        self.log_bin_off = true;
        Ok(())
    }

    /// The watermarks in `state` were written under the shard map
    /// `fingerprint`, or are drained (then any map may continue); records
    /// the fingerprint.
    pub fn ensure_shard_map(
        &mut self,
        state: &ReplicaState,
        fingerprint: &str,
    ) -> Result<(), ReplicaError> {
        match &state.shard_map {
            Some(old) if old == fingerprint => Ok(()),
            Some(old) if !state.is_drained() => Err(PreflightError::ShardMapChanged {
                addr: self.addr(),
                old: old.clone(),
                new: fingerprint.to_string(),
            }
            .into()),
            _ => {
                let sql = self.opts.progress.save_shard_map_sql(fingerprint);
                self.exec(sql.as_bytes(), "saving the shard map")
            }
        }
    }

    /// Becomes the one applier of this target (see the module doc): takes
    /// the lock, waiting up to `wait` for it, then waits for a dead
    /// applier's sessions to leave, and forgets them. `stop` is asked
    /// while waiting, at least once a second.
    pub fn take_applier_lock(
        &mut self,
        wait: Duration,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), ReplicaError> {
        let lock = self.opts.progress.applier_lock();
        // Asked in steps of at most a second, so that a signal (`stop`)
        // is heard while another applier holds the lock.
        let deadline = Instant::now() + wait;
        let got = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let step = left.min(LOCK_STEP);
            let got = self.value(
                &format!(
                    "SELECT GET_LOCK('{}', {:.3})",
                    escape(&lock),
                    step.as_secs_f64()
                ),
                "taking the applier lock",
            )?;
            if got == "1" || left <= step {
                break got;
            }
            if stop() {
                return Err(ReplicaError::Stopped);
            }
        };
        if got != "1" {
            let holder = self.lock_holder().ok().flatten();
            return Err(ReplicaError::Locked {
                addr: self.addr(),
                lock,
                holder,
            });
        }
        self.locked = true;
        self.wait_for_dead_sessions(stop)?;
        let clear = self.opts.progress.clear_sessions_sql();
        self.exec(clear.as_bytes(), "clearing sessions")
    }

    /// The connection holding the applier lock, if any.
    pub fn lock_holder(&mut self) -> Result<Option<u64>, ReplicaError> {
        let lock = self.opts.progress.applier_lock();
        let v = self.value(
            &format!("SELECT IS_USED_LOCK('{}')", escape(&lock)),
            "asking who holds the applier lock",
        )?;
        Ok(v.parse().ok())
    }

    /// Waits until the connections listed in `sessions` by a previous
    /// applier have left the server's process list.
    fn wait_for_dead_sessions(&mut self, stop: &dyn Fn() -> bool) -> Result<(), ReplicaError> {
        let sql = self.opts.progress.select_sessions_sql();
        let ids: Vec<String> = self
            .rows(&sql, "reading sessions")?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let list = ids.join(",");
        let started = Instant::now();
        let mut told: Option<Instant> = None;
        loop {
            let running = self.rows(
                &format!(
                    "SELECT ID, COALESCE(LEFT(INFO, 80), '') FROM information_schema.PROCESSLIST \
                     WHERE ID IN ({list}) AND ID <> CONNECTION_ID()"
                ),
                "reading the process list",
            )?;
            if running.is_empty() {
                return Ok(());
            }
            if told.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                let what: Vec<String> = running
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|v| {
                                String::from_utf8_lossy(v.as_deref().unwrap_or(b"")).into_owned()
                            })
                            .collect::<Vec<_>>()
                            .join(": ")
                    })
                    .collect();
                tracing::warn!(
                    waited_s = started.elapsed().as_secs(),
                    sessions = %what.join("; "),
                    "waiting for a previous applier's statements to finish on the target"
                );
                told = Some(Instant::now());
            }
            if stop() {
                return Err(ReplicaError::Stopped);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The watermarks, low-watermark and shard-map fingerprint.
    pub fn read_state(&mut self) -> Result<ReplicaState, ReplicaError> {
        let t = self.opts.progress.clone();
        let shards = self.rows(&t.select_shards_sql(), "reading progress")?;
        let low = self.rows(&t.select_low_sql(), "reading progress")?;
        let map = match self.conn.query_value(&t.select_shard_map_sql()) {
            Ok(v) => v,
            Err(e) => return Err(self.query_err("reading progress")(e)),
        };
        ProgressTables::parse_state(&shards, &low, map).map_err(|error| ReplicaError::BadProgress {
            addr: self.addr(),
            error,
        })
    }

    /// `@@GLOBAL.gtid_binlog_state`: the last GTID of each (domain, server)
    /// in the target's binary log.
    pub fn gtid_binlog_state(&mut self) -> Result<Vec<MariaGtid>, ReplicaError> {
        let value = self.value(
            "SELECT @@GLOBAL.gtid_binlog_state",
            "reading gtid_binlog_state",
        )?;
        parse_gtid_list(&value).map_err(|error| ReplicaError::BadGtidList {
            addr: self.addr(),
            variable: "gtid_binlog_state",
            value,
            error,
        })
    }

    /// `@@GLOBAL.gtid_slave_pos`: what the server's own SQL thread applied
    /// (see [`ReplicaState::prefix`]).
    pub fn gtid_slave_pos(&mut self) -> Result<Vec<MariaGtid>, ReplicaError> {
        let value = self.value("SELECT @@GLOBAL.gtid_slave_pos", "reading gtid_slave_pos")?;
        parse_gtid_list(&value).map_err(|error| ReplicaError::BadGtidList {
            addr: self.addr(),
            variable: "gtid_slave_pos",
            value,
            error,
        })
    }

    /// What the restart rule needs: the state and the binlog state.
    pub fn applied_set(&mut self) -> Result<AppliedSet, ReplicaError> {
        Ok(AppliedSet {
            state: self.read_state()?,
            binlog_state: self.gtid_binlog_state()?,
        })
    }

    /// Whether the progress tables exist (a replica parapply never applied
    /// to has none: one run by the server's own SQL thread, say).
    pub fn has_progress_tables(&mut self) -> Result<bool, ReplicaError> {
        let sql = self.opts.progress.count_tables_sql();
        Ok(self.value(&sql, "counting the progress tables")? != "0")
    }

    /// Whether the server's own replication SQL thread runs, on any
    /// replication connection (`SHOW ALL SLAVES STATUS`).
    pub fn sql_thread_running(&mut self) -> Result<bool, ReplicaError> {
        let out = match self.conn.execute(b"SHOW ALL SLAVES STATUS") {
            Ok(mut v) => v.pop().unwrap_or_default(),
            Err(e) => return Err(self.query_err("reading the replication status")(e)),
        };
        let Some(col) = out.columns.iter().position(|c| c == "Slave_SQL_Running") else {
            return Ok(false);
        };
        Ok(out
            .rows
            .iter()
            .any(|r| r.get(col).and_then(|v| v.as_deref()) == Some(&b"Yes"[..])))
    }

    /// `@@GLOBAL.read_only`.
    pub fn read_only(&mut self) -> Result<bool, ReplicaError> {
        Ok(self.value("SELECT @@GLOBAL.read_only", "reading read_only")? == "1")
    }

    /// Drops the staging tables named `name` that a `CREATE TABLE … SELECT`
    /// of an earlier run left behind (it died between the statement and the
    /// drop; see `apply::replay`'s `ctas` module); returns their databases.
    /// Call it with the applier lock held and the dead applier's sessions
    /// gone. Not logged (this connection has `sql_log_bin=0`).
    pub fn drop_staging_tables(&mut self, name: &str) -> Result<Vec<String>, ReplicaError> {
        let dbs: Vec<String> = self
            .query_text(
                &format!(
                    "SELECT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_NAME = '{}'",
                    crate::progress::escape(name)
                ),
                "looking for staging tables",
            )?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect();
        let quote = |s: &str| format!("`{}`", s.replace('`', "``"));
        for db in &dbs {
            let sql = format!("DROP TABLE IF EXISTS {}.{}", quote(db), quote(name));
            self.exec(sql.as_bytes(), "dropping a staging table")?;
        }
        Ok(dbs)
    }

    /// The server's collations: id → (character set, collation name).
    ///
    /// Every collation id with its character set: MariaDB 10.10+ lists the
    /// ids of collations shared by several character sets (the UCA 14.0.0
    /// ones, 2048 and up) only in `COLLATION_CHARACTER_SET_APPLICABILITY`,
    /// with their full names; older servers have no `FULL_COLLATION_NAME`
    /// column there, and `COLLATIONS` lists every id.
    pub fn collations(&mut self) -> Result<HashMap<u32, (String, String)>, ReplicaError> {
        let rows = match self.conn.query_rows(
            "SELECT ID, CHARACTER_SET_NAME, FULL_COLLATION_NAME \
             FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY",
        ) {
            Ok(rows) => rows,
            Err(WireError::Server { .. }) => self.rows(
                "SELECT ID, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLLATIONS",
                "reading collations",
            )?,
            Err(e) => return Err(self.query_err("reading collations")(e)),
        };
        let mut out = HashMap::new();
        for r in rows {
            let text = |i: usize| {
                r.get(i)
                    .and_then(|v| v.as_ref())
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default()
            };
            if let Ok(id) = text(0).parse::<u32>() {
                out.insert(id, (text(1), text(2)));
            }
        }
        Ok(out)
    }

    /// The unique keys, foreign keys and triggers of the target's tables,
    /// for `--shard-by key` ([`KeyCatalog`]).
    pub fn key_catalog(&mut self) -> Result<KeyCatalog, ReplicaError> {
        let [columns, indexes, fks, triggers] = KeyCatalog::queries();
        let what = "reading the tables' keys";
        let columns = self.rows(&columns, what)?;
        let indexes = self.rows(&indexes, what)?;
        let fks = self.rows(&fks, what)?;
        let triggers = self.rows(&triggers, what)?;
        Ok(KeyCatalog::from_rows(&columns, &indexes, &fks, &triggers))
    }

    /// Stores the low-watermark of each domain in `low`. When the
    /// connection was lost (the target restarted, say) it is opened again
    /// within the reconnect time — the session settings and the applier
    /// lock taken back — and the write retried. `abort` ends the waiting.
    pub fn persist_low(
        &mut self,
        low: &BTreeMap<u32, Watermark>,
        abort: &AtomicBool,
    ) -> Result<(), ReplicaError> {
        let Some(sql) = self.opts.progress.upsert_low_sql(low) else {
            return Ok(());
        };
        match self.conn.execute(sql.as_bytes()) {
            Ok(_) => Ok(()),
            Err(error) if error.is_connection_lost() => {
                tracing::warn!(error = %error, "lost the control connection to the target; reconnecting");
                self.reconnect(abort, error)?;
                self.exec(sql.as_bytes(), "writing the low-watermark")
            }
            Err(e) => Err(self.query_err("writing the low-watermark")(e)),
        }
    }

    /// Opens the connection again after `first` (see [`reconnect_within`])
    /// and restores what the old one held: `sql_log_bin=0` and the applier
    /// lock — unless another applier took it meanwhile.
    pub fn reconnect(&mut self, abort: &AtomicBool, first: WireError) -> Result<(), ReplicaError> {
        let target = self.opts.target.clone();
        let lost = (self.conn.connection_id(), self.conn.age());
        let deadline = Instant::now() + self.opts.reconnect_timeout;
        self.conn = reconnect_within(&target, self.opts.reconnect_timeout, abort, first, || {
            Conn::connect(&target)
        })?;
        // The lost session may still hold the applier lock.
        end_lost_session(&mut self.conn, lost, deadline, abort)
            .map_err(|e| self.query_err("ending the lost connection's session")(e))?;
        if self.locked {
            let lock = self.opts.progress.applier_lock();
            let got = self.value(
                &format!("SELECT GET_LOCK('{}', 0)", escape(&lock)),
                "taking the applier lock back",
            )?;
            if got != "1" {
                self.locked = false;
                return Err(ReplicaError::LockLost {
                    addr: self.addr(),
                    lock,
                });
            }
        }
        if self.log_bin_off {
            self.exec(b"SET @@session.sql_log_bin=0", "turning off binary logging")?;
        }
        Ok(())
    }
}

/// The connection names (`Connection_name`) of the rows of `SHOW ALL
/// SLAVES STATUS` whose `Slave_SQL_Running` is `Yes`.
fn running_sql_threads(columns: &[String], rows: &[crate::wire::Row]) -> Vec<String> {
    let col = |name: &str| columns.iter().position(|c| c.eq_ignore_ascii_case(name));
    let (Some(name), Some(running)) = (col("Connection_name"), col("Slave_SQL_Running")) else {
        return Vec::new();
    };
    let text = |r: &crate::wire::Row, i: usize| {
        r.get(i)
            .and_then(|v| v.as_deref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    rows.iter()
        .filter(|r| text(r, running).eq_ignore_ascii_case("yes"))
        .map(|r| text(r, name))
        .collect()
}

/// Ends the session a lost connection `(id, age)` may have left on the
/// server, through `conn` (a new connection to it): a half-open connection,
/// or a server that was stopped and continues, keeps running it — with its
/// transaction, its `COMMIT` in flight, its locks (the applier lock too).
/// It is killed and waited for until it has left (or `deadline`, or
/// `abort`), so that what it committed is final before anyone reads it.
///
/// A server that restarted since the lost connection was opened (its
/// uptime is shorter than the connection's age) holds no session of it —
/// and may have given its id to another connection: then nothing is
/// killed.
pub fn end_lost_session(
    conn: &mut Conn,
    (id, age): (u32, Duration),
    deadline: Instant,
    abort: &AtomicBool,
) -> Result<(), WireError> {
    let uptime = conn
        .query_value(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'UPTIME'",
        )?
        .and_then(|v| v.parse::<u64>().ok());
    // Uptime counts whole seconds: one of slack.
    if uptime.is_none_or(|up| up + 1 < age.as_secs()) {
        return Ok(());
    }
    if let Err(e) = conn.execute(format!("KILL CONNECTION {id}").as_bytes()) {
        // 1094: unknown thread — it is gone already.
        if e.code() != Some(1094) {
            tracing::debug!(connection = id, error = %e, "could not kill the lost connection's session");
        }
    }
    let sql = format!("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {id}");
    loop {
        if conn.query_value(&sql)?.as_deref() == Some("0") {
            return Ok(());
        }
        if Instant::now() >= deadline || abort.load(Ordering::Relaxed) {
            return Err(WireError::Protocol {
                addr: conn.addr().to_string(),
                what: format!(
                    "the session of the lost connection {id} is still on the server after the \
                     reconnect time; whether its transaction committed cannot be known yet"
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Calls `open` until it connects (backoff 100 ms doubling to 2 s), for
/// up to `timeout` after the connection was lost with `first`. Gives up at
/// once on an error that is not a lost connection (a refused login, say),
/// and on `abort` ([`ReplicaError::Stopped`]).
pub fn reconnect_within(
    target: &ConnectOptions,
    timeout: Duration,
    abort: &AtomicBool,
    first: WireError,
    mut open: impl FnMut() -> Result<Conn, WireError>,
) -> Result<Conn, ReplicaError> {
    let deadline = Instant::now() + timeout;
    let mut wait = Duration::from_millis(100);
    let mut last = first;
    loop {
        if abort.load(Ordering::Relaxed) {
            return Err(ReplicaError::Stopped);
        }
        match open() {
            Ok(c) => return Ok(c),
            Err(e) if e.is_connection_lost() && Instant::now() < deadline => {
                last = e;
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                let error = if e.is_connection_lost() { last } else { e };
                return Err(ReplicaError::Connect {
                    addr: target.addr(),
                    error: Box::new(error),
                });
            }
        }
    }
}
