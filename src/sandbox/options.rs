//! How a throwaway server is configured: [`ServerOptions`] and the
//! `mariadbd` command line it turns into.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// `binlog_format`: how the primary logs changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinlogFormat {
    /// Row images (Table_map + Write/Update/Delete_rows events).
    Row,
    /// SQL statements (Query events).
    Statement,
    /// Statements, switching to rows where a statement is unsafe.
    Mixed,
}

impl BinlogFormat {
    fn as_str(self) -> &'static str {
        match self {
            BinlogFormat::Row => "ROW",
            BinlogFormat::Statement => "STATEMENT",
            BinlogFormat::Mixed => "MIXED",
        }
    }
}

/// `binlog_checksum`: whether each binlog event ends with a CRC32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinlogChecksum {
    /// No checksum.
    None,
    /// A CRC32 after each event (the server's default).
    Crc32,
}

impl BinlogChecksum {
    fn as_str(self) -> &'static str {
        match self {
            BinlogChecksum::None => "NONE",
            BinlogChecksum::Crc32 => "CRC32",
        }
    }
}

/// `slave_parallel_mode`: how MariaDB's own parallel replication schedules
/// (only relevant with [`ServerOptions::slave_parallel_threads`] > 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlaveParallelMode {
    /// No parallelism.
    None,
    /// Only the commit steps of a group commit overlap.
    Minimal,
    /// Transactions group-committed together on the primary run in parallel.
    Conservative,
    /// Run in parallel speculatively, roll back and retry on conflict (default).
    Optimistic,
    /// Like optimistic, with fewer heuristics holding transactions back.
    Aggressive,
}

impl SlaveParallelMode {
    fn as_str(self) -> &'static str {
        match self {
            SlaveParallelMode::None => "none",
            SlaveParallelMode::Minimal => "minimal",
            SlaveParallelMode::Conservative => "conservative",
            SlaveParallelMode::Optimistic => "optimistic",
            SlaveParallelMode::Aggressive => "aggressive",
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// The InnoDB redo log size of the cached template data directory (see the
/// module doc); starting with another size makes the server resize its log.
pub(super) const DEFAULT_INNODB_LOG_FILE_SIZE: u64 = 16 * MIB;

/// Configuration of a throwaway server, built with chained setters:
///
/// ```no_run
/// use parapply::sandbox::{BinlogFormat, Server, ServerOptions};
///
/// let primary = Server::start(
///     ServerOptions::new()
///         .server_id(1)
///         .log_bin("mariadb-bin")
///         .binlog_format(BinlogFormat::Row),
/// )?;
/// # Ok::<(), parapply::sandbox::SandboxError>(())
/// ```
///
/// The defaults are made for fast tests: binary log off, `ROW` format once it
/// is on, `sync_binlog=0`, `innodb_flush_log_at_trx_commit=2`, no doublewrite
/// buffer, a 32 MiB buffer pool, a 16 MiB redo log, no performance schema,
/// `utf8mb4`. Committed transactions survive a kill of the server (they are in
/// the operating system's cache), not a crash of the machine. [`durable`]
/// selects the settings of a production replica for benchmarks. The binary
/// log settings (`binlog_format`, `binlog_annotate_row_events`,
/// `binlog_checksum`, `log_slave_updates`) apply only with [`log_bin`].
///
/// [`durable`]: ServerOptions::durable
/// [`log_bin`]: ServerOptions::log_bin
#[derive(Clone, Debug)]
pub struct ServerOptions {
    server_id: u32,
    log_bin: Option<String>,
    binlog_format: BinlogFormat,
    binlog_annotate_row_events: bool,
    binlog_checksum: BinlogChecksum,
    max_binlog_size: Option<u64>,
    log_slave_updates: bool,
    gtid_domain_id: u32,
    gtid_strict_mode: bool,
    sync_binlog: u32,
    innodb_flush_log_at_trx_commit: u8,
    innodb_doublewrite: bool,
    innodb_buffer_pool_size: u64,
    innodb_log_file_size: u64,
    relay_log: String,
    relay_log_purge: bool,
    skip_slave_start: bool,
    slave_parallel_threads: u32,
    slave_parallel_mode: SlaveParallelMode,
    extra_args: Vec<String>,
    start_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            server_id: 1,
            log_bin: None,
            binlog_format: BinlogFormat::Row,
            binlog_annotate_row_events: true,
            binlog_checksum: BinlogChecksum::Crc32,
            max_binlog_size: None,
            log_slave_updates: false,
            gtid_domain_id: 0,
            gtid_strict_mode: false,
            sync_binlog: 0,
            innodb_flush_log_at_trx_commit: 2,
            innodb_doublewrite: false,
            innodb_buffer_pool_size: 32 * MIB,
            innodb_log_file_size: DEFAULT_INNODB_LOG_FILE_SIZE,
            relay_log: "relay-bin".to_owned(),
            relay_log_purge: true,
            skip_slave_start: false,
            slave_parallel_threads: 0,
            slave_parallel_mode: SlaveParallelMode::Optimistic,
            extra_args: Vec::new(),
            start_timeout: Duration::from_secs(60),
        }
    }
}

impl ServerOptions {
    /// The fast test defaults (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// `server_id` (default 1). Servers that replicate from each other need
    /// different ids.
    pub fn server_id(mut self, id: u32) -> Self {
        self.server_id = id;
        self
    }

    /// Turns the binary log on, with files `BASENAME.000001, …` and
    /// `BASENAME.index` in [`Server::binlog_dir`](super::Server::binlog_dir).
    /// Off by default.
    pub fn log_bin(mut self, basename: impl Into<String>) -> Self {
        self.log_bin = Some(basename.into());
        self
    }

    /// `binlog_format` (default `ROW`).
    pub fn binlog_format(mut self, format: BinlogFormat) -> Self {
        self.binlog_format = format;
        self
    }

    /// `binlog_annotate_row_events`: log the statement text before its row
    /// events (default on, as in MariaDB 10.11).
    pub fn binlog_annotate_row_events(mut self, on: bool) -> Self {
        self.binlog_annotate_row_events = on;
        self
    }

    /// `binlog_checksum` (default `CRC32`).
    pub fn binlog_checksum(mut self, checksum: BinlogChecksum) -> Self {
        self.binlog_checksum = checksum;
        self
    }

    /// `max_binlog_size` in bytes (server default 1 GiB; minimum 4096): small
    /// values make the server rotate binlog files often.
    pub fn max_binlog_size(mut self, bytes: u64) -> Self {
        self.max_binlog_size = Some(bytes);
        self
    }

    /// `log_slave_updates`: write replicated transactions to this server's
    /// own binary log (default off).
    pub fn log_slave_updates(mut self, on: bool) -> Self {
        self.log_slave_updates = on;
        self
    }

    /// `gtid_domain_id` (default 0).
    pub fn gtid_domain_id(mut self, domain: u32) -> Self {
        self.gtid_domain_id = domain;
        self
    }

    /// `gtid_strict_mode` (default off).
    pub fn gtid_strict_mode(mut self, on: bool) -> Self {
        self.gtid_strict_mode = on;
        self
    }

    /// `sync_binlog`: fsync the binary log every N commits; 0 leaves it to
    /// the operating system (default 0).
    pub fn sync_binlog(mut self, every: u32) -> Self {
        self.sync_binlog = every;
        self
    }

    /// `innodb_flush_log_at_trx_commit`: 1 flushes and syncs at each commit,
    /// 2 writes at commit and syncs once a second (default 2), 0 does both
    /// once a second.
    pub fn innodb_flush_log_at_trx_commit(mut self, mode: u8) -> Self {
        self.innodb_flush_log_at_trx_commit = mode;
        self
    }

    /// `innodb_doublewrite` (default off).
    pub fn innodb_doublewrite(mut self, on: bool) -> Self {
        self.innodb_doublewrite = on;
        self
    }

    /// `innodb_buffer_pool_size` in bytes (default 32 MiB).
    pub fn innodb_buffer_pool_size(mut self, bytes: u64) -> Self {
        self.innodb_buffer_pool_size = bytes;
        self
    }

    /// `innodb_log_file_size` in bytes (default 16 MiB). A different size
    /// costs a log resize at the first start.
    pub fn innodb_log_file_size(mut self, bytes: u64) -> Self {
        self.innodb_log_file_size = bytes;
        self
    }

    /// Crash-safe settings of a production replica, for benchmarks:
    /// `sync_binlog=1`, `innodb_flush_log_at_trx_commit=1`, doublewrite on.
    pub fn durable(self) -> Self {
        self.sync_binlog(1)
            .innodb_flush_log_at_trx_commit(1)
            .innodb_doublewrite(true)
    }

    /// Basename of the relay log files, kept in
    /// [`Server::relay_log_dir`](super::Server::relay_log_dir)
    /// (default `relay-bin`).
    pub fn relay_log(mut self, basename: impl Into<String>) -> Self {
        self.relay_log = basename.into();
        self
    }

    /// `relay_log_purge`: delete relay logs once applied (default on). Turn it
    /// off to keep them as input for `parapply apply`.
    pub fn relay_log_purge(mut self, on: bool) -> Self {
        self.relay_log_purge = on;
        self
    }

    /// `skip_slave_start`: do not resume replication when the server starts
    /// (default off: a configured replica resumes after [`restart`]).
    ///
    /// [`restart`]: super::Server::restart
    pub fn skip_slave_start(mut self, on: bool) -> Self {
        self.skip_slave_start = on;
        self
    }

    /// `slave_parallel_threads` of MariaDB's own replication (default 0: one
    /// SQL thread).
    pub fn slave_parallel_threads(mut self, threads: u32) -> Self {
        self.slave_parallel_threads = threads;
        self
    }

    /// `slave_parallel_mode` of MariaDB's own replication (default
    /// optimistic).
    pub fn slave_parallel_mode(mut self, mode: SlaveParallelMode) -> Self {
        self.slave_parallel_mode = mode;
        self
    }

    /// Appends a free-form `mariadbd` argument such as
    /// `--binlog-row-image=MINIMAL`. Extra arguments come last, so they
    /// override the settings above.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// How long [`Server::start`](super::Server::start) and
    /// [`Server::restart`](super::Server::restart) wait for the server to
    /// accept connections, crash recovery included (default 60 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    pub(super) fn get_server_id(&self) -> u32 {
        self.server_id
    }

    pub(super) fn get_log_bin(&self) -> Option<&str> {
        self.log_bin.as_deref()
    }

    pub(super) fn get_relay_log(&self) -> &str {
        &self.relay_log
    }

    pub(super) fn get_start_timeout(&self) -> Duration {
        self.start_timeout
    }

    /// The `mariadbd` command line (without the program) for a server laid
    /// out as `layout` and listening on `port`.
    pub(super) fn server_args(&self, layout: &Layout, port: u16, as_root: bool) -> Vec<String> {
        fn path(option: &str, path: &Path) -> String {
            format!("--{option}={}", path.display())
        }
        fn on_off(on: bool) -> &'static str {
            if on {
                "ON"
            } else {
                "OFF"
            }
        }

        // `--no-defaults` must come first: no my.cnf of the machine applies.
        let mut args = vec!["--no-defaults".to_owned()];
        if as_root {
            // mariadbd refuses to run as root unless told to.
            args.push("--user=root".to_owned());
        }
        args.extend([
            path("datadir", &layout.datadir),
            path("tmpdir", &layout.tmpdir),
            path("socket", &layout.socket),
            path("pid-file", &layout.pid_file),
            path("log-error", &layout.error_log),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--skip-networking=0".to_owned(),
            "--skip-name-resolve".to_owned(),
            "--performance-schema=OFF".to_owned(),
            "--character-set-server=utf8mb4".to_owned(),
            "--collation-server=utf8mb4_general_ci".to_owned(),
            format!("--server-id={}", self.server_id),
            format!("--gtid-domain-id={}", self.gtid_domain_id),
            format!("--gtid-strict-mode={}", on_off(self.gtid_strict_mode)),
            format!("--innodb-buffer-pool-size={}", self.innodb_buffer_pool_size),
            format!("--innodb-log-file-size={}", self.innodb_log_file_size),
            format!(
                "--innodb-flush-log-at-trx-commit={}",
                self.innodb_flush_log_at_trx_commit
            ),
            format!("--innodb-doublewrite={}", on_off(self.innodb_doublewrite)),
            format!("--sync-binlog={}", self.sync_binlog),
            path("relay-log", &layout.relay_log_dir.join(&self.relay_log)),
            path("relay-log-index", &layout.relay_log_index(&self.relay_log)),
            format!("--relay-log-purge={}", on_off(self.relay_log_purge)),
            format!("--slave-parallel-threads={}", self.slave_parallel_threads),
            format!(
                "--slave-parallel-mode={}",
                self.slave_parallel_mode.as_str()
            ),
        ]);
        // Binary log settings only with a binary log: the server warns about
        // them otherwise.
        if let Some(basename) = &self.log_bin {
            args.extend([
                path("log-bin", &layout.binlog_dir.join(basename)),
                path("log-bin-index", &layout.binlog_index(basename)),
                format!("--binlog-format={}", self.binlog_format.as_str()),
                format!(
                    "--binlog-annotate-row-events={}",
                    on_off(self.binlog_annotate_row_events)
                ),
                format!("--binlog-checksum={}", self.binlog_checksum.as_str()),
                format!("--log-slave-updates={}", on_off(self.log_slave_updates)),
            ]);
        }
        if let Some(bytes) = self.max_binlog_size {
            args.push(format!("--max-binlog-size={bytes}"));
        }
        if self.skip_slave_start {
            args.push("--skip-slave-start".to_owned());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// Where a sandbox keeps its files: everything below one temporary root.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    pub root: PathBuf,
    pub datadir: PathBuf,
    pub binlog_dir: PathBuf,
    pub relay_log_dir: PathBuf,
    pub tmpdir: PathBuf,
    pub socket: PathBuf,
    pub pid_file: PathBuf,
    pub error_log: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Layout {
            root: root.to_owned(),
            datadir: root.join("data"),
            binlog_dir: root.join("binlog"),
            relay_log_dir: root.join("relay"),
            tmpdir: root.join("tmp"),
            socket: root.join("mariadbd.sock"),
            pid_file: root.join("mariadbd.pid"),
            error_log: root.join("error.log"),
        }
    }

    pub fn binlog_index(&self, basename: &str) -> PathBuf {
        self.binlog_dir.join(format!("{basename}.index"))
    }

    pub fn relay_log_index(&self, basename: &str) -> PathBuf {
        self.relay_log_dir.join(format!("{basename}.index"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_args_come_last_and_no_defaults_first() {
        let layout = Layout::new(Path::new("/tmp/x"));
        let args = ServerOptions::new()
            .log_bin("mariadb-bin")
            .arg("--sync-binlog=7")
            .server_args(&layout, 3307, true);
        assert_eq!(args[0], "--no-defaults");
        assert_eq!(args[1], "--user=root");
        assert_eq!(args.last().map(String::as_str), Some("--sync-binlog=7"));
        assert!(args.contains(&"--log-bin=/tmp/x/binlog/mariadb-bin".to_owned()));
        assert!(args.contains(&"--log-bin-index=/tmp/x/binlog/mariadb-bin.index".to_owned()));
        assert!(args.contains(&"--port=3307".to_owned()));
    }

    #[test]
    fn durable_selects_crash_safe_settings() {
        let layout = Layout::new(Path::new("/tmp/x"));
        let args = ServerOptions::new()
            .durable()
            .server_args(&layout, 1, false);
        for expected in [
            "--sync-binlog=1",
            "--innodb-flush-log-at-trx-commit=1",
            "--innodb-doublewrite=ON",
        ] {
            assert!(args.contains(&expected.to_owned()), "{expected} missing");
        }
        assert!(!args.iter().any(|a| a.starts_with("--user")));
        assert!(!args.iter().any(|a| a.starts_with("--log-bin")));
        assert!(!args.iter().any(|a| a.starts_with("--binlog-format")));
    }
}
