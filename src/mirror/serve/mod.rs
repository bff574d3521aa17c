//! A binlog server over MariaDB's replication protocol, serving a mirror
//! directory to the clients no one here wrote: MariaDB replicas
//! (`CHANGE MASTER TO` the server, by file and position or by GTID),
//! `mariadb-binlog --read-from-remote-server`, and other `parapply mirror`s.
//! `docs/mirror.md` is the operator's page.
//!
//! * [`protocol`]: handshake, `mysql_native_password` against the one
//!   configured user (no anonymous access), TLS when the server has a
//!   certificate ([`ServeOptions::tls`]), packets.
//! * [`query`]: the `SET`/`SELECT`/`SHOW` a replica or a tool sends before
//!   dumping; anything else is a clear error.
//! * [`dump`]: `COM_BINLOG_DUMP` by file and position or by GTID, following
//!   the mirror as it grows, with heartbeats.
//! * [`source`]: what may be served ([`Published`]) and how it is read.
//!
//! # What is served
//!
//! The files of the mirror's index, byte for byte. The server reports the
//! *primary's* identity (server id and version of the newest file's
//! Format_description event; `--server-id` overrides the id), so a replica
//! checks its own id against the primary's, as it would connected to the
//! primary. Under `parapply mirror --serve` the mirror's writer publishes
//! a file's length only after it is fsynced (`--sync every`: each event;
//! `--sync N`: every N events, and whenever the primary is idle for a
//! heartbeat; `--sync never`: once written, since nothing is fsynced).
//! `parapply serve --dir` serves what the directory's files hold (whole
//! events only), polling for growth.
//!
//! # Resources
//!
//! One thread per client, at most [`ServeOptions::max_clients`] (more get
//! error 1040). Per client: a 256 KiB read buffer and up to 256 KiB of
//! output, whatever the event sizes (larger events are streamed), and at
//! most 64 KiB of user variables. Client packets over 1 MiB are refused
//! before they are read. A client must log in within
//! [`ServeOptions::login_timeout`], and an idle command connection is closed
//! after [`ServeOptions::idle_timeout`].

pub mod dump;
pub mod protocol;
pub mod query;
pub mod source;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::binlog::constants::CHECKSUM_ALG_UNDEF;
use crate::wire::Secret;
use protocol::{Handshake, PacketIo, ProtoError, STATUS_AUTOCOMMIT, STATUS_MORE_RESULTS};
use query::{Answer, Facts, Val, Vars};
pub use source::Published;
use source::{
    end_state_of, read_fde, start_state, state_at, walk, BinlogState, FileReader, FileStart,
};

/// Command bytes.
mod command {
    pub const QUIT: u8 = 0x01;
    pub const INIT_DB: u8 = 0x02;
    pub const QUERY: u8 = 0x03;
    pub const PING: u8 = 0x0e;
    pub const BINLOG_DUMP: u8 = 0x12;
    pub const REGISTER_SLAVE: u8 = 0x15;
}

/// `ER_CON_COUNT_ERROR`.
const ER_CON_COUNT_ERROR: u16 = 1040;
/// `ER_UNKNOWN_COM_ERROR`.
const ER_UNKNOWN_COM_ERROR: u16 = 1047;
/// `ER_BAD_DB_ERROR`.
const ER_BAD_DB_ERROR: u16 = 1049;
/// `ER_NET_PACKETS_OUT_OF_ORDER`, used for any protocol violation.
const ER_NET_PACKETS_OUT_OF_ORDER: u16 = 1156;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The mirror directory.
    pub dir: PathBuf,
    /// `HOST:PORT` to listen on (port 0: any free port).
    pub listen: String,
    /// The user clients log in as.
    pub user: String,
    /// Its password (never empty: no anonymous access).
    pub password: Secret,
    /// The server id reported to clients; default: the primary's (from the
    /// newest file's Format_description event).
    pub server_id: Option<u32>,
    /// Most clients at once.
    pub max_clients: usize,
    /// Time a client has to log in.
    pub login_timeout: Duration,
    /// An idle command connection (not dumping) is closed after this.
    pub idle_timeout: Duration,
    /// A client that takes no bytes for this long is dropped.
    pub write_timeout: Duration,
    /// How often a directory served by `parapply serve` is checked for growth.
    pub poll: Duration,
    /// Set to stop: the listener closes, dumps end at their next wait.
    pub stop: Arc<AtomicBool>,
    /// TLS offered to clients (`--serve-ssl-cert`/`--serve-ssl-key`,
    /// [`crate::wire::tls::server_config`]); `None`: no TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Refuse clients that log in without TLS (needs [`Self::tls`]).
    pub require_tls: bool,
}

impl ServeOptions {
    /// Default for [`ServeOptions::user`] on the command line.
    pub const DEFAULT_USER: &'static str = "repl";
    /// Default for [`ServeOptions::max_clients`].
    pub const DEFAULT_MAX_CLIENTS: usize = 64;
    /// Default for [`ServeOptions::login_timeout`].
    pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default for [`ServeOptions::idle_timeout`].
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
    /// Default for [`ServeOptions::write_timeout`].
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default for [`ServeOptions::poll`].
    pub const DEFAULT_POLL: Duration = Duration::from_millis(50);

    /// Options with the defaults (the `DEFAULT_*` constants).
    pub fn new(
        dir: impl Into<PathBuf>,
        listen: impl Into<String>,
        user: impl Into<String>,
        password: Secret,
    ) -> Self {
        ServeOptions {
            dir: dir.into(),
            listen: listen.into(),
            user: user.into(),
            password,
            server_id: None,
            max_clients: Self::DEFAULT_MAX_CLIENTS,
            login_timeout: Self::DEFAULT_LOGIN_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
            poll: Self::DEFAULT_POLL,
            stop: Arc::new(AtomicBool::new(false)),
            tls: None,
            require_tls: false,
        }
    }
}

/// An error of the server itself (a client's errors only end that client).
#[derive(Debug, Error)]
pub enum ServeError {
    /// The options are unusable.
    #[error("{0}")]
    Usage(String),
    /// Listening failed.
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        error: io::Error,
    },
    /// Reading the mirror directory failed.
    #[error("{}: {error}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        error: io::Error,
    },
}

/// A client connection's stream.
pub trait ClientStream: Read + Write {
    /// Whether the client has closed its end (checked while a dump waits).
    fn peer_closed(&self) -> bool {
        false
    }
    /// The client's address, for messages.
    fn peer(&self) -> String {
        "client".into()
    }
    /// Called once the client has logged in (to switch from the login
    /// timeout to the idle timeout).
    fn logged_in(&self) {}
    /// Whether TLS is offered to this client.
    fn tls_offered(&self) -> bool {
        false
    }
    /// Runs the TLS handshake (after the client's SSLRequest), starting
    /// with the client's bytes already read (`ahead`); reads and writes go
    /// through TLS from then on.
    fn start_tls(&mut self, _ahead: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this connection offers no TLS",
        ))
    }
}

impl ClientStream for TcpStream {
    fn peer_closed(&self) -> bool {
        if self.set_nonblocking(true).is_err() {
            return false;
        }
        let mut b = [0u8; 1];
        let closed = matches!(self.peek(&mut b), Ok(0))
            || matches!(self.peek(&mut b), Err(e) if e.kind() != io::ErrorKind::WouldBlock);
        let _ = self.set_nonblocking(false);
        closed
    }
    fn peer(&self) -> String {
        self.peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "client".into())
    }
}

/// Who the server says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Server id reported (the primary's, unless overridden).
    pub server_id: u32,
    /// Version reported (the primary's).
    pub version: String,
    /// Checksum algorithm of the newest file.
    pub alg: u8,
}

/// Version reported while the mirror holds no file.
const FALLBACK_VERSION: &str = "10.11.0-MariaDB-parapply-mirror";

/// What every client thread shares.
pub struct Service {
    dir: PathBuf,
    published: Arc<Published>,
    user: String,
    password_hash: [u8; 20],
    require_tls: bool,
    server_id: Option<u32>,
    port: u16,
    stop: Arc<AtomicBool>,
    next_id: AtomicU32,
    identity: Mutex<Option<(String, Identity)>>,
    end_state: Mutex<Option<EndState>>,
    clients: AtomicUsize,
}

struct EndState {
    file: String,
    pos: u64,
    state: BinlogState,
}

impl Service {
    /// A service over `dir` whose servable state is `published`.
    pub fn new(o: &ServeOptions, published: Arc<Published>, port: u16) -> Result<Self, ServeError> {
        if o.user.is_empty() || o.password.expose().is_empty() {
            return Err(ServeError::Usage(
                "the binlog server needs a user and a non-empty password: no anonymous access"
                    .into(),
            ));
        }
        Ok(Service {
            dir: o.dir.clone(),
            published,
            user: o.user.clone(),
            password_hash: protocol::password_hash(o.password.expose()),
            require_tls: o.require_tls,
            server_id: o.server_id,
            port,
            stop: o.stop.clone(),
            next_id: AtomicU32::new(1),
            identity: Mutex::new(None),
            end_state: Mutex::new(None),
            clients: AtomicUsize::new(0),
        })
    }

    /// Client connections being served now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::SeqCst)
    }

    /// Whether the server is stopping.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The server's identity, from the newest file.
    pub fn identity(&self) -> Identity {
        let snap = self.published.snapshot();
        let Some(last) = snap.files.last() else {
            return Identity {
                server_id: self.server_id.unwrap_or(0),
                version: FALLBACK_VERSION.into(),
                alg: CHECKSUM_ALG_UNDEF,
            };
        };
        let mut cache = self.identity.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((f, id)) = cache.as_ref() {
            if f == last {
                return id.clone();
            }
        }
        let id = FileReader::open(self.dir.join(last))
            .map_err(|e| e.to_string())
            .and_then(|mut r| read_fde(&mut r, snap.last_len))
            .map(|fde| Identity {
                server_id: self.server_id.unwrap_or(fde.server_id),
                version: fde.server_version,
                alg: fde.alg,
            });
        match id {
            Ok(id) => {
                *cache = Some((last.clone(), id.clone()));
                id
            }
            Err(e) => {
                tracing::warn!(file = %last, error = %e, "cannot read the newest file's Format_description event");
                Identity {
                    server_id: self.server_id.unwrap_or(0),
                    version: FALLBACK_VERSION.into(),
                    alg: CHECKSUM_ALG_UNDEF,
                }
            }
        }
    }

    /// The binlog GTID state at the end of what may be served (scanned
    /// incrementally).
    pub fn end_state(&self) -> Result<BinlogState, String> {
        let snap = self.published.snapshot();
        let Some(last) = snap.files.last() else {
            return Ok(BinlogState::default());
        };
        let mut cache = self.end_state.lock().unwrap_or_else(|e| e.into_inner());
        let mut r = FileReader::open(self.dir.join(last)).map_err(|e| format!("{last}: {e}"))?;
        let (mut st, from) = match cache.take() {
            Some(c) if c.file == *last && c.pos <= snap.last_len => (c.state, c.pos),
            _ => {
                let st = match start_state(&mut r, snap.last_len)? {
                    FileStart::Listed(st) => st,
                    FileStart::Unlisted => BinlogState::default(),
                    // A file just begun: the state is where the one before
                    // it ends (not cached: the head is published soon).
                    FileStart::NotYet => return self.end_of_previous(&snap.files),
                };
                let fde = read_fde(&mut r, snap.last_len)?;
                (st, 4 + fde.raw.len() as u64)
            }
        };
        let crc = read_fde(&mut r, snap.last_len)?.crc32();
        let reached = walk(&mut r, from, snap.last_len, crc, |_, h, body| {
            st.note_event(h, body);
            Ok(())
        })?;
        *cache = Some(EndState {
            file: last.clone(),
            pos: reached,
            state: st.clone(),
        });
        Ok(st)
    }

    /// The state at the end of the file before the last (complete on disk).
    fn end_of_previous(&self, files: &[String]) -> Result<BinlogState, String> {
        let Some(prev) = files.len().checked_sub(2).map(|i| &files[i]) else {
            return Ok(BinlogState::default());
        };
        let mut r = FileReader::open(self.dir.join(prev)).map_err(|e| format!("{prev}: {e}"))?;
        let len = r.file_len().map_err(|e| format!("{prev}: {e}"))?;
        end_state_of(&mut r, len, || {
            Err(format!(
                "{prev}: its Gtid_list is missing although a file follows it"
            ))
        })
    }

    /// Serves one client connection to its end.
    pub fn handle<S: ClientStream>(&self, stream: S) {
        match new_scramble() {
            Ok(s) => self.handle_with_scramble(stream, s),
            Err(e) => {
                tracing::error!(error = %e, "cannot read random bytes for the login scramble")
            }
        }
    }

    /// [`Service::handle`] with a given scramble (for tests and fuzzing;
    /// a real server takes a fresh random one per connection).
    #[doc(hidden)]
    pub fn handle_with_scramble<S: ClientStream>(&self, stream: S, scramble: [u8; 20]) {
        let peer = stream.peer();
        let mut io = PacketIo::new(stream);
        match self.session(&mut io, &scramble) {
            Ok(()) => tracing::debug!(client = %peer, "connection closed"),
            Err(ProtoError::Bad(what)) => {
                tracing::info!(client = %peer, error = %what, "protocol error; closing the connection");
                let _ = io.err(
                    ER_NET_PACKETS_OUT_OF_ORDER,
                    "08S01",
                    &format!("protocol error: {what}"),
                );
                let _ = io.flush();
            }
            Err(ProtoError::Io(e)) => {
                tracing::debug!(client = %peer, error = %e, "connection lost")
            }
        }
    }

    fn session<S: ClientStream>(
        &self,
        io: &mut PacketIo<S>,
        scramble: &[u8; 20],
    ) -> Result<(), ProtoError> {
        let identity = self.identity();
        let version = format!("5.5.5-{}", identity.version);
        let connection_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let peer = io.stream().peer();
        let peer_host = peer
            .rsplit_once(':')
            .map_or(peer.as_str(), |(h, _)| h)
            .to_owned();
        let h = Handshake {
            version: &version,
            connection_id,
            user: &self.user,
            password_hash: &self.password_hash,
            peer_host: &peer_host,
            require_tls: self.require_tls,
        };
        let Some(user) = io.handshake(&h, scramble)? else {
            tracing::warn!(client = %peer, "login refused: wrong user or password");
            return Ok(());
        };
        io.stream().logged_in();
        tracing::debug!(client = %peer, user = %user, "logged in");
        let facts = SessionFacts {
            svc: self,
            connection_id,
            user: format!("{user}@{peer_host}"),
        };
        let mut vars = Vars::default();
        let mut buf = Vec::new();
        loop {
            io.seq = 0;
            if !io.read_packet(&mut buf)? {
                return Ok(());
            }
            let Some((&cmd, payload)) = buf.split_first() else {
                return Err(ProtoError::Bad("an empty command packet".into()));
            };
            match cmd {
                command::QUIT => return Ok(()),
                command::PING => io.ok(STATUS_AUTOCOMMIT)?,
                command::INIT_DB => io.err(
                    ER_BAD_DB_ERROR,
                    "42000",
                    "this binlog server has no databases",
                )?,
                command::QUERY => {
                    let answers = query::answer(payload, &mut vars, &facts);
                    let n = answers.len();
                    for (i, a) in answers.into_iter().enumerate() {
                        let status =
                            STATUS_AUTOCOMMIT | if i + 1 < n { STATUS_MORE_RESULTS } else { 0 };
                        match a {
                            Answer::Ok => io.ok(status)?,
                            Answer::Rows { columns, rows } => {
                                io.result_set(&Answer::columns(&columns), &rows, status)?
                            }
                            Answer::Err {
                                code,
                                state,
                                message,
                            } => {
                                tracing::debug!(client = %peer, code, error = %message, "query refused");
                                io.err(code, state, &message)?
                            }
                        }
                    }
                }
                command::REGISTER_SLAVE => {
                    if payload.len() < 4 {
                        io.err(
                            ER_NET_PACKETS_OUT_OF_ORDER,
                            "08S01",
                            "malformed COM_REGISTER_SLAVE",
                        )?;
                    } else {
                        let id =
                            u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
                        tracing::debug!(client = %peer, server_id = id, "replica registered");
                        io.ok(STATUS_AUTOCOMMIT)?;
                    }
                }
                command::BINLOG_DUMP => {
                    // Dumps may wait for long; the write timeout still holds.
                    dump::serve_dump(self, io, &vars, payload)?;
                    io.flush()?;
                    // As a MariaDB primary does, the connection ends with the dump.
                    return Ok(());
                }
                other => io.err(
                    ER_UNKNOWN_COM_ERROR,
                    "08S01",
                    &format!(
                        "Unknown command {other:#04x}: this binlog server takes COM_QUERY \
                         (SET/SELECT/SHOW), COM_PING, COM_REGISTER_SLAVE, COM_BINLOG_DUMP and \
                         COM_QUIT"
                    ),
                )?,
            }
            io.flush()?;
        }
    }
}

fn new_scramble() -> io::Result<[u8; 20]> {
    protocol::new_scramble()
}

struct SessionFacts<'a> {
    svc: &'a Service,
    connection_id: u32,
    user: String,
}

const SYSVARS: &[&str] = &[
    "autocommit",
    "binlog_checksum",
    "character_set_server",
    "collation_server",
    "gtid_binlog_pos",
    "gtid_current_pos",
    "gtid_domain_id",
    "gtid_slave_pos",
    "gtid_strict_mode",
    "log_bin",
    "log_bin_basename",
    "lower_case_table_names",
    "max_allowed_packet",
    "net_read_timeout",
    "net_write_timeout",
    "port",
    "read_only",
    "server_id",
    "sql_mode",
    "system_time_zone",
    "time_zone",
    "version",
    "version_comment",
    "wait_timeout",
];

impl Facts for SessionFacts<'_> {
    fn sysvar(&self, name: &str) -> Option<Val> {
        let s = |v: &str| Some(Val::Str(v.as_bytes().to_vec()));
        let i = |v: i64| Some(Val::Int(v));
        match name {
            "autocommit" | "log_bin" | "read_only" => i(1),
            "binlog_checksum" => s(source::alg_name(self.svc.identity().alg)),
            "character_set_server" => s("utf8mb4"),
            "collation_server" => s("utf8mb4_general_ci"),
            "gtid_binlog_pos" | "gtid_current_pos" => match self.svc.end_state() {
                Ok(st) => s(&st.position()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the mirror's GTID state");
                    Some(Val::Null)
                }
            },
            "gtid_domain_id" | "gtid_strict_mode" | "lower_case_table_names" => i(0),
            "gtid_slave_pos" | "sql_mode" => s(""),
            "log_bin_basename" => {
                let snap = self.svc.published.snapshot();
                let base = snap
                    .files
                    .last()
                    .and_then(|f| f.rsplit_once('.').map(|(b, _)| b.to_owned()))
                    .unwrap_or_default();
                s(&self.svc.dir.join(base).display().to_string())
            }
            "max_allowed_packet" => i(1 << 30),
            "net_read_timeout" => i(30),
            "net_write_timeout" => i(60),
            "port" => i(i64::from(self.svc.port)),
            "server_id" => i(i64::from(self.svc.identity().server_id)),
            "system_time_zone" => s("UTC"),
            "time_zone" => s("SYSTEM"),
            "version" => s(&self.svc.identity().version),
            "version_comment" => s("parapply binlog server (a mirror of the primary's binlog)"),
            "wait_timeout" => i(600),
            _ => None,
        }
    }

    fn sysvar_names(&self) -> &'static [&'static str] {
        SYSVARS
    }

    fn binary_logs(&self) -> Vec<(String, u64)> {
        let snap = self.svc.published.snapshot();
        let n = snap.files.len();
        snap.files
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let len = if i + 1 == n {
                    snap.last_len
                } else {
                    std::fs::metadata(self.svc.dir.join(&f)).map_or(0, |m| m.len())
                };
                (f, len)
            })
            .collect()
    }

    fn master_status(&self) -> Option<(String, u64)> {
        let snap = self.svc.published.snapshot();
        snap.files.last().map(|f| (f.clone(), snap.last_len))
    }

    fn binlog_gtid_pos(&self, file: &str, pos: u64) -> Option<String> {
        let snap = self.svc.published.snapshot();
        let i = snap.files.iter().position(|f| f == file)?;
        if i + 1 == snap.files.len() && pos > snap.last_len {
            return None;
        }
        let mut r = FileReader::open(self.svc.dir.join(file)).ok()?;
        state_at(&mut r, pos).ok().map(|st| st.position())
    }

    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }

    fn connection_id(&self) -> u32 {
        self.connection_id
    }

    fn user(&self) -> String {
        self.user.clone()
    }
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    svc: Arc<Service>,
    opts: ServeOptions,
    poll_dir: bool,
}

impl Server {
    /// Binds the listening socket. `published`: the mirror's writer in this
    /// process (`parapply mirror --serve`); `None`: poll the directory
    /// (`parapply serve`).
    pub fn bind(
        opts: ServeOptions,
        published: Option<Arc<Published>>,
    ) -> Result<Server, ServeError> {
        if opts.max_clients == 0 {
            return Err(ServeError::Usage("max_clients must be at least 1".into()));
        }
        if opts.require_tls && opts.tls.is_none() {
            return Err(ServeError::Usage(
                "requiring TLS of the binlog server's clients needs its certificate and key \
                 (--serve-ssl-cert, --serve-ssl-key)"
                    .into(),
            ));
        }
        let listener = TcpListener::bind(&opts.listen).map_err(|error| ServeError::Listen {
            addr: opts.listen.clone(),
            error,
        })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let poll_dir = published.is_none();
        let published = match published {
            Some(p) => p,
            None => {
                if !opts.dir.is_dir() {
                    return Err(ServeError::Usage(format!(
                        "{}: not a directory",
                        opts.dir.display()
                    )));
                }
                let p = Arc::new(Published::new());
                source::poll_dir(&opts.dir, &p).map_err(|error| ServeError::Dir {
                    path: opts.dir.clone(),
                    error,
                })?;
                p
            }
        };
        let svc = Arc::new(Service::new(&opts, published, port)?);
        Ok(Server {
            listener,
            svc,
            opts,
            poll_dir,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared service (for tests: its identity and state).
    pub fn service(&self) -> Arc<Service> {
        self.svc.clone()
    }

    /// Accepts clients until the stop flag is set, then waits (up to 5 s)
    /// for client threads to end.
    pub fn run(self) -> Result<(), ServeError> {
        let addr = self
            .local_addr()
            .map_or_else(|_| self.opts.listen.clone(), |a| a.to_string());
        self.listener
            .set_nonblocking(true)
            .map_err(|error| ServeError::Listen {
                addr: addr.clone(),
                error,
            })?;
        tracing::info!(listen = %addr, dir = %self.opts.dir.display(), user = %self.opts.user, "binlog server listening");
        let mut last_poll = Instant::now();
        while !self.svc.stopping() {
            if self.poll_dir && last_poll.elapsed() >= self.opts.poll {
                if let Err(e) = source::poll_dir(&self.opts.dir, &self.svc.published) {
                    tracing::warn!(dir = %self.opts.dir.display(), error = %e, "cannot read the mirror directory");
                }
                last_poll = Instant::now();
            }
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(self.opts.poll.min(Duration::from_millis(20)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        self.svc.published.wake_all();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.svc.clients() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::info!(listen = %addr, "binlog server stopped");
        Ok(())
    }

    fn admit(&self, stream: TcpStream, peer: SocketAddr) {
        let active = &self.svc.clients;
        let setup = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_nodelay(true))
            .and_then(|()| stream.set_read_timeout(Some(self.opts.login_timeout)))
            .and_then(|()| stream.set_write_timeout(Some(self.opts.write_timeout)));
        if let Err(e) = setup {
            tracing::warn!(client = %peer, error = %e, "cannot set up the connection");
            return;
        }
        if active.fetch_add(1, Ordering::SeqCst) >= self.opts.max_clients {
            active.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(client = %peer, max = self.opts.max_clients, "too many clients; refusing one");
            let mut io = PacketIo::new(stream);
            let _ = io.err(ER_CON_COUNT_ERROR, "08004", "Too many connections");
            let _ = io.flush();
            return;
        }
        let svc = self.svc.clone();
        let idle = self.opts.idle_timeout;
        let tls = self.opts.tls.clone().map(Tls::Offered);
        let spawned = std::thread::Builder::new()
            .name("binlog-client".into())
            .spawn(move || {
                let s = IdleAfterLogin {
                    s: stream,
                    idle,
                    tls,
                };
                svc.handle(s);
                svc.clients.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::SeqCst);
            tracing::error!(error = %e, "cannot start a client thread");
        }
    }
}

/// A client's TLS: offered, or running over a clone of the socket.
enum Tls {
    Offered(Arc<rustls::ServerConfig>),
    On(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

/// A TCP stream whose read timeout becomes the idle timeout after the
/// login, with TLS when offered and asked for.
struct IdleAfterLogin {
    /// The socket, for its options (and the I/O without TLS).
    s: TcpStream,
    idle: Duration,
    tls: Option<Tls>,
}

impl Read for IdleAfterLogin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            Some(Tls::On(t)) => t.read(buf),
            _ => self.s.read(buf),
        }
    }
}

impl Write for IdleAfterLogin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.tls {
            Some(Tls::On(t)) => t.write(buf),
            _ => self.s.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match &mut self.tls {
            Some(Tls::On(t)) => t.write_vectored(bufs),
            _ => self.s.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.tls {
            Some(Tls::On(t)) => t.flush(),
            _ => self.s.flush(),
        }
    }
}

impl ClientStream for IdleAfterLogin {
    fn peer_closed(&self) -> bool {
        self.s.peer_closed()
    }
    fn peer(&self) -> String {
        self.s.peer()
    }
    fn logged_in(&self) {
        let _ = self.s.set_read_timeout(Some(self.idle));
    }
    fn tls_offered(&self) -> bool {
        matches!(self.tls, Some(Tls::Offered(_)))
    }
    fn start_tls(&mut self, ahead: &[u8]) -> io::Result<()> {
        let Some(Tls::Offered(config)) = &self.tls else {
            return ClientStream::start_tls(&mut self.s, ahead);
        };
        let mut c = rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        let mut rest = ahead;
        while !rest.is_empty() {
            c.read_tls(&mut rest)?;
            c.process_new_packets().map_err(io::Error::other)?;
        }
        let mut t = rustls::StreamOwned::new(c, self.s.try_clone()?);
        while t.conn.is_handshaking() {
            t.conn.complete_io(&mut t.sock)?;
        }
        self.tls = Some(Tls::On(Box::new(t)));
        Ok(())
    }
}

/// Binds and runs a server until `opts.stop` is set; see [`Server`].
pub fn serve(opts: ServeOptions, published: Option<Arc<Published>>) -> Result<(), ServeError> {
    Server::bind(opts, published)?.run()
}

/// Reads the mirror directory into a new [`Published`] (what a mirror
/// process publishes at start, before it writes).
pub fn published_from_dir(dir: &Path) -> io::Result<Arc<Published>> {
    let p = Arc::new(Published::new());
    if dir.is_dir() {
        source::poll_dir(dir, &p)?;
    }
    Ok(p)
}
