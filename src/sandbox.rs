//! Throwaway MariaDB servers on this machine, for integration tests, the
//! `demo` command and benchmarks.
//!
//! A [`Server`] is a private `mariadbd` that lives exactly as long as the
//! value: its files are in a fresh temporary directory, it listens on a free
//! port of 127.0.0.1 only, and it reads no option file of the machine
//! (`--no-defaults`). Root logs in without a password.
//!
//! # Lifecycle
//!
//! 1. [`Server::start`] finds `mariadbd` and `mariadb-install-db` (in `$PATH`,
//!    `/usr/sbin`, `/usr/bin`, …) and makes sure a template data directory
//!    with the system tables exists: `mariadb-install-db` runs once per
//!    MariaDB version and user, and the result is cached in the temporary
//!    directory, so that each start copies ~26 MB instead of installing for
//!    ~1.7 s.
//! 2. It creates the sandbox root `$TMPDIR/parapply-sandbox-XXXXXX/` holding
//!    `data/` (a copy of the template), `binlog/`, `relay/`, `tmp/`,
//!    `mariadbd.sock`, `mariadbd.pid` and `error.log`, and starts the
//!    watchdog (see [Orphans](#orphans)).
//! 3. It asks the kernel for a free port, starts `mariadbd` with the
//!    [`ServerOptions`], and polls until a connection succeeds *to this
//!    server* (its `@@socket` is checked) or the start timeout passes. If
//!    another program took the port meanwhile, `mariadbd` exits with "address
//!    in use" and the start is retried on a new port.
//! 4. The server is used through [`Server::conn`], [`Server::exec`],
//!    [`Server::query`], [`Server::checksums`] (and [`Snapshot`], which
//!    adds columns, routines, triggers and views to the checksums), and set
//!    up as a replica of another sandbox with [`Server::replicate_from`].
//! 5. [`Server::kill9`] and [`Server::stop`] end the process but keep the
//!    data directory and the port; [`Server::restart`] starts it again on both
//!    (with crash recovery after a kill).
//! 6. Dropping the `Server` — also while a test panics — kills the process
//!    with SIGKILL, reaps it, and removes the sandbox root. Nothing of a
//!    throwaway server is worth a graceful shutdown.
//!
//! # Orphans
//!
//! A test process killed with SIGKILL runs no destructor. For that case each
//! server has a watchdog: a small `sh` process whose stdin is a pipe from the
//! owning process. It is told the pid of the running `mariadbd`; when the
//! pipe reaches end-of-file — the kernel closes it whenever the owner exits,
//! however it exits — it kills that pid and removes the sandbox root. The
//! watchdog ignores the SIGINT/SIGTERM/SIGHUP sent to a whole process group,
//! and `mariadbd` runs in its own process group, so Ctrl-C on `cargo test`
//! cleans up too. The watchdog forgets a pid before the owner reaps that
//! process, so it never kills a recycled pid.
//!
//! # Prerequisites
//!
//! MariaDB server binaries (Debian: `apt-get install mariadb-server`; the
//! system service need not run). A missing program is a
//! [`SandboxError::MissingProgram`] that says what to install: tests that
//! need a server fail loudly instead of skipping.
//!
//! # Errors
//!
//! [`SandboxError`] says what failed and where: the port, the data directory
//! and, when the server failed, the tail of its error log.

mod error;
mod options;
mod process;
mod snapshot;
mod template;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::{FromRow, Queryable};
use mysql::{Conn, Opts, OptsBuilder, Row};

pub use error::{Result, SandboxError};
pub use options::{BinlogChecksum, BinlogFormat, ServerOptions, SlaveParallelMode};
pub use snapshot::Snapshot;

use options::Layout;
use process::{file_len, find_program, log_tail, running_as_root, PortLease, Watchdog};

/// How many ports a start tries when other programs keep taking them.
const PORT_ATTEMPTS: usize = 5;
/// How many error-log lines an error shows.
const LOG_TAIL_LINES: usize = 25;
/// How long a graceful [`Server::stop`] may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// The pause between two readiness or status polls.
const POLL: Duration = Duration::from_millis(20);
/// System schemas, left out of [`Server::databases`].
const SYSTEM_SCHEMAS: [&str; 4] = ["information_schema", "mysql", "performance_schema", "sys"];

/// A running (or stopped) throwaway `mariadbd`; see the [module doc](self).
#[derive(Debug)]
pub struct Server {
    options: ServerOptions,
    mariadbd: PathBuf,
    port: PortLease,
    layout: Layout,
    /// The server process; `None` after [`Server::kill9`] or [`Server::stop`].
    process: Option<Child>,
    /// The sandbox root; `None` only while dropping.
    root: Option<tempfile::TempDir>,
    /// Declared last: dropped after the root is removed.
    watchdog: Watchdog,
}

impl Server {
    /// Creates a sandbox and starts `mariadbd` in it; returns once the server
    /// accepts connections.
    ///
    /// Takes ~0.1–0.5 s, plus ~2 s once per MariaDB version for the
    /// template. Fails with [`SandboxError::MissingProgram`] if MariaDB is not
    /// installed, and with the tail of the error log if the server does not
    /// come up within [`ServerOptions::start_timeout`].
    pub fn start(options: ServerOptions) -> Result<Server> {
        let started = Instant::now();
        let mariadbd = find_program("mariadbd")?;
        let install_db = find_program("mariadb-install-db")?;
        let template = template::template_datadir(&mariadbd, &install_db)?;

        let temp = std::env::temp_dir();
        let root = tempfile::Builder::new()
            .prefix("parapply-sandbox-")
            .tempdir_in(&temp)
            .map_err(|e| SandboxError::io("create a directory in", &temp, e))?;
        // From here on, a SIGKILL of this process leaves nothing behind.
        let watchdog = Watchdog::spawn(root.path())?;
        let layout = Layout::new(root.path());
        for dir in [&layout.binlog_dir, &layout.relay_log_dir, &layout.tmpdir] {
            fs::create_dir(dir).map_err(|e| SandboxError::io("create directory", dir, e))?;
        }
        template::copy_tree(&template, &layout.datadir)?;

        let mut server = Server {
            options,
            mariadbd,
            port: PortLease::new()?,
            layout,
            process: None,
            root: Some(root),
            watchdog,
        };
        let mut attempt = 1;
        loop {
            let log_offset = file_len(&server.layout.error_log);
            match server.launch(log_offset) {
                Ok(()) => break,
                Err(SandboxError::Exited { port, .. })
                    if attempt < PORT_ATTEMPTS && server.port_was_taken(log_offset) =>
                {
                    tracing::debug!(port, "port taken by another program; retrying");
                    server.port = PortLease::new()?;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
        tracing::debug!(
            port = server.port(),
            root = %server.root().display(),
            elapsed = ?started.elapsed(),
            "sandbox server started"
        );
        Ok(server)
    }

    /// The TCP port on 127.0.0.1; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port.port()
    }

    /// `mysql://root@127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/", self.port())
    }

    /// Client options for this server (TCP, user root, no password), for
    /// callers that build their own connections or pools.
    pub fn mysql_opts(&self) -> Opts {
        OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(self.port())
            .user(Some("root"))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(10)))
            .into()
    }

    /// A new connection, as root, with no default database.
    pub fn conn(&self) -> Result<Conn> {
        self.ensure_running()?;
        Conn::new(self.mysql_opts()).map_err(|error| SandboxError::Connect {
            port: self.port(),
            error,
        })
    }

    /// Runs `sql` (one or more statements separated by `;`) on a new
    /// connection, discarding any result. Fails at the first statement that
    /// fails, whichever it is (the client library's `query_drop` reports
    /// only the first statement's error: a later one's would be lost).
    pub fn exec(&self, sql: &str) -> Result<()> {
        exec_all(&mut self.conn()?, sql).map_err(|e| SandboxError::sql(self.port(), sql, e))
    }

    /// Runs one query on a new connection and returns all its rows.
    pub fn query<T: FromRow>(&self, sql: &str) -> Result<Vec<T>> {
        self.conn()?
            .query(sql)
            .map_err(|e| SandboxError::sql(self.port(), sql, e))
    }

    /// Runs one query on a new connection and returns its first row, if any.
    pub fn query_first<T: FromRow>(&self, sql: &str) -> Result<Option<T>> {
        self.conn()?
            .query_first(sql)
            .map_err(|e| SandboxError::sql(self.port(), sql, e))
    }

    /// The databases other than the system schemas, sorted.
    pub fn databases(&self) -> Result<Vec<String>> {
        let all: Vec<String> = self.query("SELECT schema_name FROM information_schema.schemata")?;
        let mut user: Vec<String> = all
            .into_iter()
            .filter(|db| !SYSTEM_SCHEMAS.contains(&db.as_str()))
            .collect();
        user.sort();
        Ok(user)
    }

    /// `CHECKSUM TABLE … EXTENDED` of every base table of `dbs`, keyed by
    /// `db.table`. Two servers hold the same rows in those databases iff the
    /// maps are equal (up to checksum collisions); a table present on one
    /// server only shows as a key missing on the other.
    pub fn checksums(&self, dbs: &[&str]) -> Result<BTreeMap<String, u64>> {
        let mut conn = self.conn()?;
        let list_sql = "SELECT table_name FROM information_schema.tables \
                        WHERE table_schema = ? AND table_type = 'BASE TABLE' \
                        ORDER BY table_name";
        let mut tables = Vec::new();
        for db in dbs {
            let names: Vec<String> = conn
                .exec(list_sql, (db,))
                .map_err(|e| SandboxError::sql(self.port(), list_sql, e))?;
            tables.extend(
                names
                    .iter()
                    .map(|table| format!("{}.{}", quote_ident(db), quote_ident(table))),
            );
        }
        if tables.is_empty() {
            return Ok(BTreeMap::new());
        }
        let sql = format!("CHECKSUM TABLE {} EXTENDED", tables.join(", "));
        let rows: Vec<(String, Option<u64>)> = conn
            .query(&sql)
            .map_err(|e| SandboxError::sql(self.port(), &sql, e))?;
        // NULL: the table was dropped since it was listed, so it is absent.
        Ok(rows
            .into_iter()
            .filter_map(|(table, checksum)| Some((table, checksum?)))
            .collect())
    }

    /// `@@gtid_binlog_pos`: the last GTID of each domain in the binary log
    /// (empty if nothing has been logged).
    pub fn gtid_binlog_pos(&self) -> Result<String> {
        Ok(self
            .query_first::<Option<String>>("SELECT @@GLOBAL.gtid_binlog_pos")?
            .flatten()
            .unwrap_or_default())
    }

    /// Makes this server a replica of `primary` with MariaDB's own
    /// replication: `CHANGE MASTER TO … MASTER_USE_GTID=slave_pos` and
    /// `START SLAVE`. It replicates from the start of the primary's binary log
    /// (or from this server's `gtid_slave_pos`). The primary needs
    /// [`ServerOptions::log_bin`], and the two servers different server ids.
    pub fn replicate_from(&self, primary: &Server) -> Result<()> {
        let error = |detail: &str| SandboxError::Replication {
            primary_port: primary.port(),
            replica_port: self.port(),
            detail: detail.to_owned(),
        };
        if primary.options.get_log_bin().is_none() {
            return Err(error(
                "the primary has no binary log; start it with ServerOptions::log_bin",
            ));
        }
        if primary.options.get_server_id() == self.options.get_server_id() {
            return Err(error(
                "primary and replica have the same server_id; set ServerOptions::server_id",
            ));
        }
        self.exec(&format!(
            "STOP SLAVE; \
             CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
             MASTER_USER = 'root', MASTER_PASSWORD = '', MASTER_CONNECT_RETRY = 1, \
             MASTER_USE_GTID = slave_pos; \
             START SLAVE",
            primary.port()
        ))
    }

    /// Waits until this replica has applied everything in `primary`'s binary
    /// log at the time of the call (`MASTER_GTID_WAIT` on its
    /// `gtid_binlog_pos`). Fails at once if replication stopped with an error,
    /// and after `timeout` otherwise, with the replica's status.
    pub fn wait_caught_up(&self, primary: &Server, timeout: Duration) -> Result<()> {
        let target = primary.gtid_binlog_pos()?;
        let deadline = Instant::now() + timeout;
        let error = |detail: String| SandboxError::Replication {
            primary_port: primary.port(),
            replica_port: self.port(),
            detail,
        };
        let mut conn = self.conn()?;
        let status_sql = "SHOW SLAVE STATUS";
        let wait_sql = "SELECT MASTER_GTID_WAIT(?, 0.1)";
        let slave_status = |conn: &mut Conn| -> Result<Row> {
            let status: Option<Row> = conn
                .query_first(status_sql)
                .map_err(|e| SandboxError::sql(self.port(), status_sql, e))?;
            status.ok_or_else(|| {
                error("this server is not a replica; call replicate_from first".to_owned())
            })
        };
        slave_status(&mut conn)?;
        loop {
            let reached: Option<i64> = conn
                .exec_first(wait_sql, (&target,))
                .map_err(|e| SandboxError::sql(self.port(), wait_sql, e))?;
            if reached == Some(0) {
                return Ok(());
            }
            let status = slave_status(&mut conn)?;
            let running = |thread: &str| column(&status, thread) != "No";
            if !running("Slave_IO_Running") || !running("Slave_SQL_Running") {
                return Err(error(format!(
                    "replication stopped before reaching {target}: {}",
                    describe_slave_status(&status)
                )));
            }
            if Instant::now() >= deadline {
                return Err(error(format!(
                    "did not reach {target} within {timeout:?}: {}",
                    describe_slave_status(&status)
                )));
            }
        }
    }

    /// Kills the server with SIGKILL, as a crash would, and reaps it. The
    /// data directory and the port are kept for [`Server::restart`].
    pub fn kill9(&mut self) -> Result<()> {
        let mut child = self.process.take().ok_or_else(|| self.not_running())?;
        if let Err(e) = child.kill() {
            self.process = Some(child);
            return Err(SandboxError::io("kill", &self.mariadbd, e));
        }
        self.watchdog.unguard();
        child
            .wait()
            .map_err(|e| SandboxError::io("reap", &self.mariadbd, e))?;
        tracing::debug!(port = self.port(), "sandbox server killed");
        Ok(())
    }

    /// Shuts the server down gracefully (`SHUTDOWN`) and waits for the
    /// process to exit. The data directory and the port are kept for
    /// [`Server::restart`]. A server that had crashed, or does not exit
    /// within a minute, is reported as [`SandboxError::StopFailed`] (and
    /// killed).
    pub fn stop(&mut self) -> Result<()> {
        let mut child = self.process.take().ok_or_else(|| self.not_running())?;
        // A server that is shutting down exits by itself: if this process
        // dies meanwhile, the watchdog need not (and must not) kill the pid.
        self.watchdog.unguard();
        let failed = |server: &Server, child: &mut Child, reason: String| {
            // Best effort: the error below is what matters to the caller.
            let _ = child.kill();
            let _ = child.wait();
            SandboxError::StopFailed {
                port: server.port(),
                datadir: server.layout.datadir.clone(),
                reason,
                error_log: server.layout.error_log.clone(),
                log_tail: server.error_log_tail(LOG_TAIL_LINES),
            }
        };
        if let Ok(Some(status)) = child.try_wait() {
            let reason = format!("it had exited already ({status})");
            return Err(failed(self, &mut child, reason));
        }
        let mut conn = match Conn::new(self.mysql_opts()) {
            Ok(conn) => conn,
            Err(e) => {
                let reason = format!("cannot connect to send SHUTDOWN ({e}); killed it");
                return Err(failed(self, &mut child, reason));
            }
        };
        // The server may drop the connection before it answers: whether the
        // shutdown worked is judged by the process exiting.
        let shutdown = conn.query_drop("SHUTDOWN");
        drop(conn);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
                Ok(None) => {
                    let sent = match shutdown {
                        Ok(()) => "SHUTDOWN was accepted".to_owned(),
                        Err(e) => format!("SHUTDOWN failed: {e}"),
                    };
                    let reason = format!("{sent}, but it ran on for {STOP_TIMEOUT:?}; killed it");
                    return Err(failed(self, &mut child, reason));
                }
                Err(e) => {
                    let reason = format!("cannot wait for it ({e}); killed it");
                    return Err(failed(self, &mut child, reason));
                }
            }
        }
        tracing::debug!(port = self.port(), "sandbox server stopped");
        Ok(())
    }

    /// Starts the server again on the same data directory and port, after
    /// [`Server::kill9`], [`Server::stop`] or a crash of the server; a running
    /// server is stopped gracefully first (killed if that fails). Returns
    /// once it accepts connections (crash recovery included).
    pub fn restart(&mut self) -> Result<()> {
        if let Some(child) = self.process.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                tracing::warn!(port = self.port(), %status, "sandbox server had exited");
                self.watchdog.unguard();
                self.process = None;
            }
        }
        if self.process.is_some() {
            match self.stop() {
                Ok(()) => {}
                // The server is gone all the same: start it with crash recovery.
                Err(error @ SandboxError::StopFailed { .. }) => {
                    tracing::warn!(%error, "restarting after a failed shutdown");
                }
                Err(error) => return Err(error),
            }
        }
        let log_offset = file_len(&self.layout.error_log);
        self.launch(log_offset)
    }

    /// The pid of the running `mariadbd`, `None` when it is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// The sandbox root: everything of this server is below it.
    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    /// The data directory (`--datadir`).
    pub fn datadir(&self) -> &Path {
        &self.layout.datadir
    }

    /// The server's error log (`--log-error`); it spans restarts.
    pub fn error_log(&self) -> &Path {
        &self.layout.error_log
    }

    /// The last `lines` lines of the error log, for diagnostics.
    pub fn error_log_tail(&self, lines: usize) -> String {
        log_tail(&self.layout.error_log, 0, lines)
    }

    /// The Unix socket the server listens on besides TCP.
    pub fn socket(&self) -> &Path {
        &self.layout.socket
    }

    /// The server id this server was started with.
    pub fn server_id(&self) -> u32 {
        self.options.get_server_id()
    }

    /// The directory of the binary log files and their index (empty unless
    /// [`ServerOptions::log_bin`] was set).
    pub fn binlog_dir(&self) -> &Path {
        &self.layout.binlog_dir
    }

    /// The binary log basename (`mariadb-bin` for `mariadb-bin.000001`), if
    /// the binary log is on.
    pub fn binlog_basename(&self) -> Option<&str> {
        self.options.get_log_bin()
    }

    /// The binary log index file, if the binary log is on.
    pub fn binlog_index(&self) -> Option<PathBuf> {
        self.binlog_basename()
            .map(|basename| self.layout.binlog_index(basename))
    }

    /// The binary log files listed in the index, oldest first (empty if the
    /// binary log is off).
    pub fn binlog_files(&self) -> Result<Vec<PathBuf>> {
        let Some(index) = self.binlog_index() else {
            return Ok(Vec::new());
        };
        let text = fs::read_to_string(&index).map_err(|e| SandboxError::io("read", &index, e))?;
        Ok(text
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| self.layout.datadir.join(line))
            .collect())
    }

    /// Waits until the newest binary log file holds a binlog checkpoint
    /// naming itself: the server writes that event on its own, after a
    /// rotation, once the older files' transactions are durable in InnoDB.
    /// After it, an idle primary's binary log no longer changes, so two
    /// clients reading it at different times read the same bytes.
    pub fn wait_binlog_settled(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let last: Option<String> = self
                .query_first::<Row>("SHOW MASTER STATUS")?
                .map(|row| column(&row, "File"));
            let Some(last) = last else {
                return Err(SandboxError::Binlog {
                    port: self.port(),
                    detail: "it is off; start with ServerOptions::log_bin".into(),
                });
            };
            let events: Vec<Row> = self.query(&format!("SHOW BINLOG EVENTS IN '{last}'"))?;
            let settled = events.iter().any(|e| {
                column(e, "Event_type") == "Binlog_checkpoint"
                    && column(e, "Info").contains(last.as_str())
            });
            if settled {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SandboxError::Binlog {
                    port: self.port(),
                    detail: format!("{last} has no binlog checkpoint of its own after {timeout:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The directory of the relay log files and their index.
    pub fn relay_log_dir(&self) -> &Path {
        &self.layout.relay_log_dir
    }

    /// The relay log index file.
    pub fn relay_log_index(&self) -> PathBuf {
        self.layout.relay_log_index(self.options.get_relay_log())
    }

    /// Spawns `mariadbd` and waits until it accepts connections; on failure
    /// the process is gone and `self.process` is `None`.
    fn launch(&mut self, log_offset: u64) -> Result<()> {
        let error_log = &self.layout.error_log;
        let open_log = || {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(error_log)
                .map_err(|e| SandboxError::io("open", error_log, e))
        };
        let args = self
            .options
            .server_args(&self.layout, self.port(), running_as_root());
        // Messages printed before the error log is opened go to it as well.
        let mut child = Command::new(&self.mariadbd)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(open_log()?)
            .stderr(open_log()?)
            .process_group(0)
            .spawn()
            .map_err(|e| SandboxError::io("spawn", &self.mariadbd, e))?;
        let ready = self
            .watchdog
            .guard(child.id())
            .and_then(|()| self.wait_ready(&mut child, log_offset));
        match ready {
            Ok(()) => {
                self.process = Some(child);
                Ok(())
            }
            Err(error) => {
                // Best effort: the process may have exited already.
                let _ = child.kill();
                self.watchdog.unguard();
                let _ = child.wait();
                Err(error)
            }
        }
    }

    /// Polls until a connection reaches this very server (not another one
    /// that took the port), the process exits, or the start timeout passes.
    fn wait_ready(&self, child: &mut Child, log_offset: u64) -> Result<()> {
        let timeout = self.options.get_start_timeout();
        let deadline = Instant::now() + timeout;
        let opts: Opts = OptsBuilder::from_opts(self.mysql_opts())
            .tcp_connect_timeout(Some(Duration::from_secs(1)))
            .into();
        let our_socket = self.layout.socket.to_string_lossy().into_owned();
        let tail = || log_tail(&self.layout.error_log, log_offset, LOG_TAIL_LINES);
        loop {
            let exited = child
                .try_wait()
                .map_err(|e| SandboxError::io("wait for", &self.mariadbd, e))?;
            if let Some(status) = exited {
                return Err(SandboxError::Exited {
                    port: self.port(),
                    datadir: self.layout.datadir.clone(),
                    status: status.to_string(),
                    error_log: self.layout.error_log.clone(),
                    log_tail: tail(),
                });
            }
            let last_error = match Conn::new(opts.clone()) {
                Ok(mut conn) => match conn.query_first::<String, _>("SELECT @@socket") {
                    Ok(Some(socket)) if socket == our_socket => return Ok(()),
                    Ok(other) => format!("port answered by another server (socket {other:?})"),
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(SandboxError::StartTimeout {
                    port: self.port(),
                    datadir: self.layout.datadir.clone(),
                    timeout,
                    last_error,
                    error_log: self.layout.error_log.clone(),
                    log_tail: tail(),
                });
            }
            thread::sleep(POLL);
        }
    }

    /// Whether the start that logged from `log_offset` failed on its port.
    fn port_was_taken(&self, log_offset: u64) -> bool {
        log_tail(&self.layout.error_log, log_offset, usize::MAX).contains("Address already in use")
    }

    fn ensure_running(&self) -> Result<()> {
        match self.process {
            Some(_) => Ok(()),
            None => Err(self.not_running()),
        }
    }

    fn not_running(&self) -> SandboxError {
        SandboxError::NotRunning {
            port: self.port(),
            datadir: self.layout.datadir.clone(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            if let Err(error) = child.kill() {
                tracing::warn!(%error, port = self.port(), "cannot kill sandbox server");
            }
            self.watchdog.unguard();
            if let Err(error) = child.wait() {
                tracing::warn!(%error, port = self.port(), "cannot reap sandbox server");
            }
        }
        if let Some(root) = self.root.take() {
            let path = root.path().to_owned();
            // The watchdog retries the removal when it is dropped next.
            if let Err(error) = root.close() {
                tracing::warn!(%error, root = %path.display(), "cannot remove sandbox");
            }
        }
    }
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Runs `sql` (one or more statements separated by `;`) on `conn`,
/// discarding any result, and fails at the first statement that fails,
/// whichever it is: the client library's `query_drop` reports only the
/// first statement's error, so `BEGIN; INSERT …; COMMIT` would commit what
/// came before a failed INSERT and report success.
pub fn exec_all(conn: &mut Conn, sql: &str) -> std::result::Result<(), mysql::Error> {
    let mut result = conn.query_iter(sql)?;
    while let Some(set) = result.iter() {
        for row in set {
            row?;
        }
    }
    Ok(())
}

/// A column of a text-protocol row (e.g. of `SHOW SLAVE STATUS`) as text
/// (empty if NULL or absent).
pub fn column(row: &Row, name: &str) -> String {
    match row.get_opt::<Option<String>, _>(name) {
        Some(Ok(Some(value))) => value,
        _ => String::new(),
    }
}

/// The columns of `SHOW SLAVE STATUS` that explain a stalled replica.
pub fn describe_slave_status(row: &Row) -> String {
    [
        "Slave_IO_Running",
        "Slave_SQL_Running",
        "Read_Master_Log_Pos",
        "Last_IO_Error",
        "Last_SQL_Error",
        "Gtid_IO_Pos",
        "Gtid_Slave_Pos",
    ]
    .iter()
    .map(|name| format!("{name}={:?}", column(row, name)))
    .collect::<Vec<_>>()
    .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("t1"), "`t1`");
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
    }
}
