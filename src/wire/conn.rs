//! The connection: packets, handshake, authentication, commands, results.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rustls::{ClientConnection, StreamOwned};
use sha1::{Digest, Sha1};

use super::error::WireError;
use super::ConnectOptions;

/// Largest payload of one packet; a payload this long continues in the next.
const MAX_PACKET: usize = 0xff_ffff;
/// Largest packet this client accepts from the server (1 GiB, the server's
/// own upper limit for `max_allowed_packet`).
const MAX_ACCEPTED: u32 = 1 << 30;

mod caps {
    pub const LONG_PASSWORD: u32 = 1;
    pub const CONNECT_WITH_DB: u32 = 8;
    pub const PROTOCOL_41: u32 = 1 << 9;
    pub const TRANSACTIONS: u32 = 1 << 13;
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    pub const MULTI_STATEMENTS: u32 = 1 << 16;
    pub const MULTI_RESULTS: u32 = 1 << 17;
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    pub const LOCAL_FILES: u32 = 1 << 7;
    pub const SSL: u32 = 1 << 11;
}

/// `SERVER_MORE_RESULTS_EXISTS`: another result of the batch follows.
const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

/// Command bytes.
pub mod command {
    /// `COM_QUIT`.
    pub const QUIT: u8 = 0x01;
    /// `COM_QUERY`.
    pub const QUERY: u8 = 0x03;
    /// `COM_PING`.
    pub const PING: u8 = 0x0e;
    /// `COM_BINLOG_DUMP`.
    pub const BINLOG_DUMP: u8 = 0x12;
    /// `COM_REGISTER_SLAVE`.
    pub const REGISTER_SLAVE: u8 = 0x15;
}

use super::auth::{self, ED25519, NATIVE_PASSWORD};
use super::tls;

/// One row of a text result set: each column's bytes, `None` for NULL.
pub type Row = Vec<Option<Vec<u8>>>;

/// What one statement of a batch returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Rows changed (OK packet); 0 for a result set.
    pub affected_rows: u64,
    /// `LAST_INSERT_ID()` (OK packet).
    pub last_insert_id: u64,
    /// Number of warnings.
    pub warnings: u16,
    /// Server status flags after the statement.
    pub status: u16,
    /// Column names of the result set (empty when there is none).
    pub columns: Vec<String>,
    /// Rows of the result set (empty when there is none).
    pub rows: Vec<Row>,
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<StreamOwned<ClientConnection, Stream>>),
    /// Only while the plain stream is being wrapped in TLS.
    Gone,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the TLS handshake failed")
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Gone => Err(gone()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Gone => Err(gone()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tls(s) => s.flush(),
            _ => Ok(()),
        }
    }
}

impl Stream {
    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(read)?;
                s.set_write_timeout(write)
            }
            Stream::Unix(s) => {
                s.set_read_timeout(read)?;
                s.set_write_timeout(write)
            }
            Stream::Tls(s) => s.sock.set_timeouts(read, write),
            Stream::Gone => Ok(()),
        }
    }
}

/// A connection to a server; see the [module doc](super).
pub struct Conn {
    io: BufReader<Stream>,
    addr: String,
    /// Sequence number of the next packet.
    seq: u8,
    server_version: String,
    connection_id: u32,
    /// When the connection was opened.
    opened: std::time::Instant,
    /// Set when an exchange failed half-way: the stream cannot be trusted.
    broken: bool,
    write_timeout: Option<Duration>,
    /// The bytes to send for the next `LOAD DATA LOCAL INFILE` request of
    /// the server ([`Conn::set_local_infile`]); no file is ever read.
    local_infile: Option<Vec<u8>>,
    /// [`ConnectOptions::probe_after`], with the options a probe connects
    /// with.
    probe: Option<(Duration, Box<ConnectOptions>)>,
    /// Whether the connection runs over TLS.
    tls: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("addr", &self.addr)
            .field("connection_id", &self.connection_id)
            .field("server_version", &self.server_version)
            .finish_non_exhaustive()
    }
}

/// Reads little-endian fields from a packet, with errors naming the field.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, at: 0 }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| format!("packet too short for {what}"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    /// A length-encoded integer; `None` for the NULL marker 0xfb.
    fn lenenc(&mut self, what: &str) -> Result<Option<u64>, String> {
        let first = self.u8(what)?;
        let n = match first {
            0xfb => return Ok(None),
            0xfc => 2,
            0xfd => 3,
            0xfe => 8,
            0xff => return Err(format!("{what}: 0xff is not a length")),
            v => return Ok(Some(u64::from(v))),
        };
        let s = self.take(n, what)?;
        Ok(Some(
            s.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x)),
        ))
    }
    fn lenenc_int(&mut self, what: &str) -> Result<u64, String> {
        self.lenenc(what)?
            .ok_or_else(|| format!("{what}: unexpected NULL"))
    }
    fn lenenc_bytes(&mut self, what: &str) -> Result<Option<&'a [u8]>, String> {
        match self.lenenc(what)? {
            None => Ok(None),
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| format!("{what}: length {n}"))?;
                self.take(n, what).map(Some)
            }
        }
    }
    fn nul_str(&mut self, what: &str) -> Result<&'a [u8], String> {
        let rest = &self.b[self.at..];
        let n = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| format!("{what} is not NUL-terminated"))?;
        self.at += n + 1;
        Ok(&rest[..n])
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.at..];
        self.at = self.b.len();
        s
    }
    fn is_empty(&self) -> bool {
        self.at >= self.b.len()
    }
}

/// The fields of an ERR packet (first byte 0xff).
fn parse_err(p: &[u8]) -> (u16, String, String) {
    let code = match p.get(1..3) {
        Some(c) => u16::from_le_bytes([c[0], c[1]]),
        None => 0,
    };
    let rest = p.get(3..).unwrap_or(&[]);
    let (state, msg) = match rest.first() {
        Some(b'#') if rest.len() >= 6 => (&rest[1..6], &rest[6..]),
        _ => (&[][..], rest),
    };
    (
        code,
        String::from_utf8_lossy(state).into_owned(),
        String::from_utf8_lossy(msg).into_owned(),
    )
}

/// `SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))`; empty for an
/// empty password.
pub(crate) fn native_password(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let h1 = Sha1::digest(password);
    let h2 = Sha1::digest(h1);
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(h2);
    let h3 = h.finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

impl Conn {
    /// Connects and logs in.
    pub fn connect(o: &ConnectOptions) -> Result<Conn, WireError> {
        let addr = o.addr();
        let io_err = |op: &'static str, error: io::Error| WireError::Io {
            addr: addr.clone(),
            op,
            error,
        };
        let stream = match &o.socket {
            Some(path) => {
                Stream::Unix(UnixStream::connect(path).map_err(|e| io_err("connect", e))?)
            }
            None => {
                let addrs = (o.host.as_str(), o.port)
                    .to_socket_addrs()
                    .map_err(|e| io_err("resolve the host name", e))?;
                let mut last = io::Error::new(io::ErrorKind::NotFound, "no address found");
                let mut found = None;
                for a in addrs {
                    match TcpStream::connect_timeout(&a, o.connect_timeout) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let s = found.ok_or_else(|| io_err("connect", last))?;
                s.set_nodelay(true)
                    .map_err(|e| io_err("set TCP_NODELAY on", e))?;
                if let Some(idle) = o.keepalive {
                    let ka = socket2::TcpKeepalive::new()
                        .with_time(idle)
                        .with_interval((idle / 3).max(Duration::from_secs(1)))
                        .with_retries(3);
                    socket2::SockRef::from(&s)
                        .set_tcp_keepalive(&ka)
                        .map_err(|e| io_err("set TCP keepalive on", e))?;
                }
                Stream::Tcp(s)
            }
        };
        // The handshake is bounded by the connect timeout, then the caller's.
        stream
            .set_timeouts(Some(o.connect_timeout), Some(o.connect_timeout))
            .map_err(|e| io_err("set timeouts on", e))?;
        let mut conn = Conn {
            io: BufReader::with_capacity(1 << 16, stream),
            addr: addr.clone(),
            seq: 0,
            server_version: String::new(),
            connection_id: 0,
            opened: std::time::Instant::now(),
            broken: false,
            write_timeout: o.write_timeout,
            local_infile: None,
            probe: None,
            tls: false,
        };
        conn.handshake(o)?;
        let read_timeout = match o.probe_after {
            Some(after) => {
                let mut p = o.clone();
                p.probe_after = None;
                p.database = None;
                p.read_timeout = Some(o.connect_timeout);
                p.write_timeout = Some(o.connect_timeout);
                conn.probe = Some((after, Box::new(p)));
                Some(after)
            }
            None => o.read_timeout,
        };
        conn.io
            .get_ref()
            .set_timeouts(read_timeout, o.write_timeout)
            .map_err(|e| io_err("set timeouts on", e))?;
        Ok(conn)
    }

    /// The server's version (`10.11.6-MariaDB-…`, without the `5.5.5-`
    /// prefix MariaDB adds for old clients).
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// The server's id of this connection (`CONNECTION_ID()`).
    pub fn connection_id(&self) -> u32 {
        self.connection_id
    }

    /// How long ago the connection was opened.
    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }

    /// `host:port` or the socket path.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Wraps the stream in TLS (after the SSLRequest) and completes the
    /// TLS handshake, so that a refused certificate is reported here.
    fn start_tls(&mut self, o: &ConnectOptions) -> Result<(), WireError> {
        let tls_err = |conn: &Conn, what: String| WireError::Tls {
            addr: conn.addr.clone(),
            what,
        };
        self.broken = true;
        if !self.io.buffer().is_empty() {
            return Err(self.protocol("the server sent data before the TLS handshake"));
        }
        let Some(config) = o.tls.config() else {
            return Err(tls_err(self, "TLS is disabled".into()));
        };
        let name = tls::server_name(&o.host, o.socket.is_some()).map_err(|e| tls_err(self, e))?;
        let c = ClientConnection::new(config.clone(), name)
            .map_err(|e| tls_err(self, tls::explain(&e, &o.tls)))?;
        let plain = std::mem::replace(self.io.get_mut(), Stream::Gone);
        let mut s = StreamOwned::new(c, plain);
        while s.conn.is_handshaking() {
            if let Err(e) = s.conn.complete_io(&mut s.sock) {
                let what = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(r) => tls::explain(r, &o.tls),
                    None => return Err(self.io_err("complete the TLS handshake", e)),
                };
                return Err(tls_err(self, what));
            }
        }
        *self.io.get_mut() = Stream::Tls(Box::new(s));
        self.tls = true;
        self.broken = false;
        Ok(())
    }

    /// Changes the read timeout (`None`: wait forever); the liveness probe
    /// ([`ConnectOptions::probe_after`]) is off from then on.
    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> Result<(), WireError> {
        self.probe = None;
        let w = self.write_timeout;
        self.io
            .get_ref()
            .set_timeouts(t, w)
            .map_err(|e| self.io_err("set timeouts on", e))
    }

    fn io_err(&self, op: &'static str, error: io::Error) -> WireError {
        // `read_exact` says "failed to fill whole buffer" when the peer
        // closed the connection: say that.
        let error = if error.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )
        } else {
            error
        };
        WireError::Io {
            addr: self.addr.clone(),
            op,
            error,
        }
    }

    fn protocol(&mut self, what: impl Into<String>) -> WireError {
        self.broken = true;
        WireError::Protocol {
            addr: self.addr.clone(),
            what: what.into(),
        }
    }

    fn check_usable(&self) -> Result<(), WireError> {
        if self.broken {
            return Err(WireError::Protocol {
                addr: self.addr.clone(),
                what: "the connection is unusable after an earlier error; reconnect".into(),
            });
        }
        Ok(())
    }

    /// Reads one logical packet (joining 16 MiB continuations) into `out`,
    /// replacing its contents.
    pub fn read_packet_into(&mut self, out: &mut Vec<u8>) -> Result<(), WireError> {
        out.clear();
        self.await_answer()?;
        loop {
            let mut h = [0u8; 4];
            if let Err(e) = self.io.read_exact(&mut h) {
                self.broken = true;
                return Err(self.io_err("read from the server", e));
            }
            let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
            if h[3] != self.seq {
                let what = format!(
                    "packet sequence number wrong: got {}, expected {}",
                    h[3], self.seq
                );
                return Err(self.protocol(what));
            }
            self.seq = self.seq.wrapping_add(1);
            if out.len() + len > MAX_ACCEPTED as usize {
                let what = format!("packet larger than {MAX_ACCEPTED} bytes");
                return Err(self.protocol(what));
            }
            let start = out.len();
            out.resize(start + len, 0);
            if let Err(e) = self.io.read_exact(&mut out[start..]) {
                self.broken = true;
                return Err(self.io_err("read from the server", e));
            }
            if len < MAX_PACKET {
                return Ok(());
            }
        }
    }

    /// Waits until the next packet starts to arrive. With a liveness probe
    /// ([`ConnectOptions::probe_after`]), each time the wait reaches it a
    /// second connection checks that the server answers and still runs
    /// this connection; the wait goes on only if so. Nothing of the stream
    /// is consumed.
    fn await_answer(&mut self) -> Result<(), WireError> {
        let Some((after, _)) = &self.probe else {
            return Ok(());
        };
        let after = *after;
        let started = std::time::Instant::now();
        loop {
            match self.io.fill_buf() {
                // Data, or the end of the stream (the read reports it).
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if let Err(why) = self.probe() {
                        self.broken = true;
                        let waited = started.elapsed().as_secs_f64();
                        return Err(WireError::Io {
                            addr: self.addr.clone(),
                            op: "wait for the server's answer",
                            error: io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!("no answer for {waited:.0} s (liveness probe every {} s), and {why}", after.as_secs_f64()),
                            ),
                        });
                    }
                    tracing::debug!(addr = %self.addr, connection = self.connection_id, waited_s = started.elapsed().as_secs(), "still waiting for the server: it answers and runs this connection's statement");
                }
                Err(e) => {
                    self.broken = true;
                    return Err(self.io_err("read from the server", e));
                }
            }
        }
    }

    /// One liveness probe: through a new connection, the server answers
    /// and still lists this connection (a half-open one it has dropped is
    /// not listed). The error says which failed.
    fn probe(&self) -> Result<(), String> {
        let Some((_, o)) = &self.probe else {
            return Ok(());
        };
        let mut c = Conn::connect(o).map_err(|e| format!("a second connection failed: {e}"))?;
        let listed = c
            .query_value(&format!(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {}",
                self.connection_id
            ))
            .map_err(|e| format!("the server did not answer a second connection: {e}"))?;
        if listed.as_deref() != Some("1") {
            return Err(format!(
                "the server no longer has connection {} (a half-open connection)",
                self.connection_id
            ));
        }
        Ok(())
    }

    /// Reads one logical packet.
    pub fn read_packet(&mut self) -> Result<Vec<u8>, WireError> {
        let mut v = Vec::new();
        self.read_packet_into(&mut v)?;
        Ok(v)
    }

    /// Writes one logical packet, split into 16 MiB pieces as needed.
    fn write_packet(&mut self, payload: &[u8]) -> Result<(), WireError> {
        let mut chunks = payload.chunks(MAX_PACKET);
        let mut small = Vec::new();
        loop {
            let chunk = chunks.next().unwrap_or(&[]);
            let n = chunk.len();
            // n < 2^24 by construction of the chunks.
            let h = [n as u8, (n >> 8) as u8, (n >> 16) as u8, self.seq];
            self.seq = self.seq.wrapping_add(1);
            let stream = self.io.get_mut();
            let r = if n < 1 << 16 {
                small.clear();
                small.extend_from_slice(&h);
                small.extend_from_slice(chunk);
                stream.write_all(&small)
            } else {
                stream.write_all(&h).and_then(|()| stream.write_all(chunk))
            };
            if let Err(e) = r.and_then(|()| stream.flush()) {
                self.broken = true;
                return Err(self.io_err("write to the server", e));
            }
            // A payload of an exact multiple of 16 MiB ends with an empty packet.
            if n < MAX_PACKET {
                return Ok(());
            }
        }
    }

    /// Sends a command packet (`cmd` then `payload`), starting a new exchange.
    pub fn write_command(&mut self, cmd: u8, payload: &[u8]) -> Result<(), WireError> {
        self.check_usable()?;
        self.seq = 0;
        let mut p = Vec::with_capacity(1 + payload.len());
        p.push(cmd);
        p.extend_from_slice(payload);
        self.write_packet(&p)
    }

    /// A server error from an ERR packet, for statement `statement`.
    pub fn server_error(p: &[u8], statement: usize) -> WireError {
        let (code, state, message) = parse_err(p);
        WireError::Server {
            code,
            state,
            message,
            statement,
        }
    }

    /// Sends a command answered by OK or ERR (e.g. `COM_REGISTER_SLAVE`).
    pub fn simple_command(&mut self, cmd: u8, payload: &[u8]) -> Result<(), WireError> {
        self.write_command(cmd, payload)?;
        let p = self.read_packet()?;
        match p.first() {
            Some(0x00) => Ok(()),
            Some(0xff) => Err(Conn::server_error(&p, 0)),
            _ => Err(self.protocol(format!(
                "command {cmd:#04x}: expected OK or ERR, got a packet starting {:02x?}",
                &p[..p.len().min(8)]
            ))),
        }
    }

    /// `COM_PING`.
    pub fn ping(&mut self) -> Result<(), WireError> {
        self.simple_command(command::PING, &[])
    }

    /// `COM_QUIT`, then closes the connection.
    pub fn quit(mut self) -> Result<(), WireError> {
        self.send_quit()
    }

    fn send_quit(&mut self) -> Result<(), WireError> {
        if self.broken {
            return Ok(());
        }
        self.broken = true;
        let _ = self
            .io
            .get_ref()
            .set_timeouts(Some(Duration::from_secs(1)), Some(Duration::from_secs(1)));
        self.seq = 0;
        self.write_packet(&[command::QUIT])
    }

    /// Runs one or more `;`-separated statements (sent as one `COM_QUERY`)
    /// and returns one [`Outcome`] per statement. On the first ERR packet it
    /// stops (the server runs nothing after a failed statement) and returns
    /// [`WireError::Server`] with the index of the failing statement.
    pub fn execute(&mut self, sql: &[u8]) -> Result<Vec<Outcome>, WireError> {
        let result = self.execute_inner(sql);
        // A LOCAL INFILE content is for the query it was set for only.
        self.local_infile = None;
        result
    }

    fn execute_inner(&mut self, sql: &[u8]) -> Result<Vec<Outcome>, WireError> {
        self.write_command(command::QUERY, sql)?;
        let mut outcomes = Vec::new();
        let mut buf = Vec::new();
        loop {
            let outcome = self.read_result(&mut buf, outcomes.len())?;
            let more = outcome.status & SERVER_MORE_RESULTS_EXISTS != 0;
            outcomes.push(outcome);
            if !more {
                return Ok(outcomes);
            }
        }
    }

    /// Like [`Conn::execute`] for `sql` holding exactly `statements`
    /// statements, but reads one result per statement whatever the server's
    /// more-results flag says: the OK packet of a `BINLOG` statement that
    /// applied row events does not announce the results of the statements
    /// after it (DESIGN.md), though the server runs them and sends them.
    /// The caller must count right: a result never sent is waited for.
    pub fn execute_counted(
        &mut self,
        sql: &[u8],
        statements: usize,
    ) -> Result<Vec<Outcome>, WireError> {
        self.write_command(command::QUERY, sql)?;
        let mut outcomes = Vec::with_capacity(statements);
        let mut buf = Vec::new();
        while outcomes.len() < statements {
            let outcome = self.read_result(&mut buf, outcomes.len())?;
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Reads the result of the `statement`-th statement of a query.
    fn read_result(&mut self, buf: &mut Vec<u8>, statement: usize) -> Result<Outcome, WireError> {
        self.read_packet_into(buf)?;
        match buf.first().copied() {
            Some(0x00) => self.parse_ok(buf),
            Some(0xff) => Err(Conn::server_error(buf, statement)),
            Some(0xfb) => match self.local_infile.take() {
                Some(data) => self.send_local_infile(&data, buf, statement),
                None => Err(self.refuse_local_infile(statement)),
            },
            Some(_) => self.read_result_set(buf, statement),
            None => Err(self.protocol("empty response packet")),
        }
    }

    /// Runs one statement and returns the rows of its result set (empty if
    /// it has none).
    pub fn query_rows(&mut self, sql: &str) -> Result<Vec<Row>, WireError> {
        let mut outcomes = self.execute(sql.as_bytes())?;
        if outcomes.len() != 1 {
            return Err(WireError::Protocol {
                addr: self.addr.clone(),
                what: format!(
                    "query_rows runs one statement; the server returned {} results",
                    outcomes.len()
                ),
            });
        }
        Ok(outcomes.pop().map(|o| o.rows).unwrap_or_default())
    }

    /// The first column of the first row of `sql`, as text (`None` if there
    /// is no row or it is NULL).
    pub fn query_value(&mut self, sql: &str) -> Result<Option<String>, WireError> {
        let rows = self.query_rows(sql)?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn parse_ok(&mut self, p: &[u8]) -> Result<Outcome, WireError> {
        let mut r = Reader::new(&p[1..]);
        let parsed = (|| -> Result<Outcome, String> {
            Ok(Outcome {
                affected_rows: r.lenenc_int("affected rows")?,
                last_insert_id: r.lenenc_int("last insert id")?,
                status: r.u16("status")?,
                warnings: r.u16("warnings")?,
                ..Outcome::default()
            })
        })();
        parsed.map_err(|e| self.protocol(format!("OK packet: {e}")))
    }

    /// Whether `p` is an EOF packet (0xfe and shorter than 9 bytes).
    fn is_eof(p: &[u8]) -> bool {
        p.first() == Some(&0xfe) && p.len() < 9
    }

    fn read_result_set(&mut self, first: &[u8], statement: usize) -> Result<Outcome, WireError> {
        let count = Reader::new(first)
            .lenenc_int("column count")
            .map_err(|e| self.protocol(e))?;
        let mut columns = Vec::new();
        let mut buf = Vec::new();
        for _ in 0..count {
            self.read_packet_into(&mut buf)?;
            let name = (|| -> Result<Vec<u8>, String> {
                let mut r = Reader::new(&buf);
                for what in ["catalog", "schema", "table", "org_table"] {
                    r.lenenc_bytes(what)?;
                }
                Ok(r.lenenc_bytes("name")?.unwrap_or_default().to_vec())
            })()
            .map_err(|e| self.protocol(format!("column definition: {e}")))?;
            columns.push(String::from_utf8_lossy(&name).into_owned());
        }
        self.read_packet_into(&mut buf)?;
        if !Conn::is_eof(&buf) {
            return Err(self.protocol("no EOF packet after the column definitions"));
        }
        let mut rows = Vec::new();
        loop {
            self.read_packet_into(&mut buf)?;
            if Conn::is_eof(&buf) {
                let mut r = Reader::new(&buf[1..]);
                let warnings = r.u16("warnings").unwrap_or(0);
                let status = r.u16("status").unwrap_or(0);
                return Ok(Outcome {
                    warnings,
                    status,
                    columns,
                    rows,
                    ..Outcome::default()
                });
            }
            if buf.first() == Some(&0xff) {
                return Err(Conn::server_error(&buf, statement));
            }
            let mut r = Reader::new(&buf);
            let mut row = Vec::with_capacity(columns.len());
            for _ in 0..count {
                match r.lenenc_bytes("column value") {
                    Ok(v) => row.push(v.map(<[u8]>::to_vec)),
                    Err(e) => return Err(self.protocol(format!("row: {e}"))),
                }
            }
            rows.push(row);
        }
    }

    /// Answers a `LOAD DATA LOCAL INFILE` request with an empty file and
    /// reports it.
    /// Makes `data` the content the next `LOAD DATA LOCAL INFILE` of this
    /// connection sends, whatever file name the statement gives: the client
    /// never reads a local file. Used once, then forgotten (with the next
    /// command, whether a LOCAL request came or not).
    pub fn set_local_infile(&mut self, data: Vec<u8>) {
        self.local_infile = Some(data);
    }

    /// Answers the server's LOCAL INFILE request with `data` (in packets of
    /// at most 1 MiB, then an empty one) and reads the statement's result.
    fn send_local_infile(
        &mut self,
        data: &[u8],
        buf: &mut Vec<u8>,
        statement: usize,
    ) -> Result<Outcome, WireError> {
        for chunk in data.chunks(1 << 20) {
            self.write_packet(chunk)?;
        }
        self.write_packet(&[])?;
        self.read_packet_into(buf)?;
        match buf.first().copied() {
            Some(0x00) => self.parse_ok(buf),
            Some(0xff) => Err(Conn::server_error(buf, statement)),
            _ => Err(self.protocol("no OK or ERR packet after LOCAL INFILE data")),
        }
    }

    fn refuse_local_infile(&mut self, statement: usize) -> WireError {
        let refused = WireError::Server {
            code: 0,
            state: String::new(),
            message: "LOAD DATA LOCAL INFILE is not supported by this client".into(),
            statement,
        };
        if let Err(e) = self.write_packet(&[]) {
            return e;
        }
        match self.read_packet() {
            Ok(_) => refused,
            Err(e) => e,
        }
    }

    fn handshake(&mut self, o: &ConnectOptions) -> Result<(), WireError> {
        let p = self.read_packet()?;
        if p.first() == Some(&0xff) {
            let (code, _, message) = parse_err(&p);
            return Err(WireError::Auth {
                addr: self.addr.clone(),
                user: o.user.clone(),
                code: Some(code),
                message,
            });
        }
        let g = parse_greeting(&p).map_err(|e| self.protocol(format!("server greeting: {e}")))?;
        let version = String::from_utf8_lossy(&g.version).into_owned();
        self.server_version = version
            .strip_prefix("5.5.5-")
            .unwrap_or(&version)
            .to_owned();
        self.connection_id = g.id;
        let needed = caps::PROTOCOL_41 | caps::SECURE_CONNECTION | caps::PLUGIN_AUTH;
        if g.caps & needed != needed {
            let what = format!(
                "server {} lacks PROTOCOL_41, SECURE_CONNECTION or PLUGIN_AUTH",
                self.server_version
            );
            return Err(self.protocol(what));
        }

        let mut flags = caps::LONG_PASSWORD
            | caps::PROTOCOL_41
            | caps::TRANSACTIONS
            | caps::SECURE_CONNECTION
            | caps::MULTI_STATEMENTS
            | caps::MULTI_RESULTS
            | caps::PLUGIN_AUTH
            | caps::LOCAL_FILES;
        if o.database.is_some() {
            flags |= caps::CONNECT_WITH_DB;
        }
        let use_tls = o
            .tls
            .wanted(g.caps & caps::SSL != 0, o.socket.is_some())
            .map_err(|what| {
                self.broken = true;
                WireError::Tls {
                    addr: self.addr.clone(),
                    what,
                }
            })?;
        if use_tls {
            flags |= caps::SSL;
            // The SSLRequest: the response's fixed head, alone.
            let head = handshake_response(o, flags, &[], NATIVE_PASSWORD);
            self.write_packet(&head[..32])?;
            self.start_tls(o)?;
        }
        let password = o.password.as_ref().map(|s| s.expose()).unwrap_or("");
        let advertised = String::from_utf8_lossy(&g.plugin).into_owned();
        // Answer the advertised plugin if it is ours; otherwise offer the
        // native one and let the server switch.
        let plugin = if auth::SUPPORTED.contains(&advertised.as_str()) {
            advertised.clone()
        } else {
            tracing::debug!(plugin = %advertised, "server offers another plugin; answering mysql_native_password");
            NATIVE_PASSWORD.to_owned()
        };
        let auth_err = |conn: &mut Conn, code: Option<u16>, message: String| {
            conn.broken = true;
            WireError::Auth {
                addr: conn.addr.clone(),
                user: o.user.clone(),
                code,
                message,
            }
        };
        let (mut exchange, first) =
            auth::Exchange::start(&plugin, password.as_bytes(), &g.scramble, self.tls)
                .map_err(|e| auth_err(self, None, e))?;
        self.write_packet(&handshake_response(o, flags, &first, &plugin))?;
        let mut switched = false;
        loop {
            let p = self.read_packet()?;
            match p.first().copied() {
                Some(0x00) => return Ok(()),
                Some(0xff) => {
                    let (code, _, message) = parse_err(&p);
                    return Err(auth_err(self, Some(code), message));
                }
                Some(0xfe) if !switched => {
                    switched = true;
                    let mut r = Reader::new(&p[1..]);
                    let name = r.nul_str("plugin name").unwrap_or(&[]).to_vec();
                    let name = String::from_utf8_lossy(&name).into_owned();
                    // The native and SHA-256 nonces end with a NUL;
                    // ed25519's is 32 raw bytes (its last one may be 0).
                    let data = r.rest();
                    let data = match name.as_str() {
                        ED25519 => data,
                        _ => data.strip_suffix(&[0]).unwrap_or(data),
                    };
                    let (x, answer) =
                        auth::Exchange::start(&name, password.as_bytes(), data, self.tls)
                            .map_err(|e| auth_err(self, None, e))?;
                    exchange = x;
                    self.write_packet(&answer)?;
                }
                Some(0x01) => match exchange.more(&p[1..]) {
                    Ok(Some(answer)) => self.write_packet(&answer)?,
                    Ok(None) => {}
                    Err(e) => return Err(auth_err(self, None, e)),
                },
                other => {
                    let message = format!(
                        "unexpected authentication packet starting with {other:02x?} \
                         (plugin `{plugin}`; supported: {})",
                        auth::SUPPORTED.join(", ")
                    );
                    return Err(auth_err(self, None, message));
                }
            }
        }
    }
}

/// What the server's greeting (the initial handshake packet) says.
struct Greeting {
    version: Vec<u8>,
    id: u32,
    caps: u32,
    scramble: Vec<u8>,
    plugin: Vec<u8>,
}

/// Parses the server's greeting (protocol version 10).
fn parse_greeting(p: &[u8]) -> Result<Greeting, String> {
    let mut r = Reader::new(p);
    let proto = r.u8("protocol version")?;
    if proto != 10 {
        return Err(format!("handshake protocol version {proto}, expected 10"));
    }
    let version = r.nul_str("server version")?.to_vec();
    let id = r.u32("connection id")?;
    let mut scramble = r.take(8, "scramble")?.to_vec();
    r.u8("filler")?;
    let mut caps = u32::from(r.u16("capabilities")?);
    let mut plugin = Vec::new();
    if !r.is_empty() {
        r.u8("collation")?;
        r.u16("status")?;
        caps |= u32::from(r.u16("capabilities (upper)")?) << 16;
        let data_len = usize::from(r.u8("auth data length")?);
        r.take(10, "reserved")?;
        if caps & caps::SECURE_CONNECTION != 0 {
            let n = data_len.saturating_sub(8).max(13);
            let part2 = r.take(n, "scramble part 2")?;
            // The last byte is a NUL terminator.
            scramble.extend_from_slice(&part2[..n - 1]);
        }
        if caps & caps::PLUGIN_AUTH != 0 && !r.is_empty() {
            let rest = r.rest();
            let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
            plugin = rest[..end].to_vec();
        }
    }
    Ok(Greeting {
        version,
        id,
        caps,
        scramble,
        plugin,
    })
}

/// The client's handshake response: capabilities, the user, the answer
/// `auth` of `plugin` (at most 250 bytes), the database, the plugin. Its
/// first 32 bytes are the SSLRequest.
fn handshake_response(o: &ConnectOptions, flags: u32, auth: &[u8], plugin: &str) -> Vec<u8> {
    let mut resp = Vec::with_capacity(64 + o.user.len());
    resp.extend_from_slice(&flags.to_le_bytes());
    resp.extend_from_slice(&MAX_ACCEPTED.to_le_bytes());
    resp.push(o.collation);
    resp.extend_from_slice(&[0u8; 23]);
    resp.extend_from_slice(o.user.as_bytes());
    resp.push(0);
    resp.push(auth.len() as u8);
    resp.extend_from_slice(auth);
    if let Some(db) = &o.database {
        resp.extend_from_slice(db.as_bytes());
        resp.push(0);
    }
    resp.extend_from_slice(plugin.as_bytes());
    resp.push(0);
    resp
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Best effort: the server cleans up a vanished client as well.
        let _ = self.send_quit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::auth::tests::{server_decrypt, server_fast_check, server_key};
    use crate::wire::auth::CACHING_SHA2;
    use std::net::TcpListener;

    /// One packet of a fake server: (sequence number, payload).
    fn read_pkt(s: &mut TcpStream) -> (u8, Vec<u8>) {
        let mut h = [0u8; 4];
        s.read_exact(&mut h).unwrap();
        let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
        let mut p = vec![0; len];
        s.read_exact(&mut p).unwrap();
        (h[3], p)
    }

    fn write_pkt(s: &mut TcpStream, seq: u8, p: &[u8]) {
        let n = p.len();
        let mut b = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq];
        b.extend_from_slice(p);
        s.write_all(&b).unwrap();
    }

    /// A MySQL 8 style greeting advertising `plugin`, without TLS.
    fn greeting(nonce: &[u8; 20], plugin: &str) -> Vec<u8> {
        let caps = caps::LONG_PASSWORD
            | caps::PROTOCOL_41
            | caps::SECURE_CONNECTION
            | caps::PLUGIN_AUTH
            | caps::MULTI_STATEMENTS
            | caps::MULTI_RESULTS;
        let mut g = vec![10];
        g.extend_from_slice(b"8.0.36\0");
        g.extend_from_slice(&7u32.to_le_bytes());
        g.extend_from_slice(&nonce[..8]);
        g.push(0);
        g.extend_from_slice(&(caps as u16).to_le_bytes());
        g.push(45);
        g.extend_from_slice(&2u16.to_le_bytes());
        g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0; 10]);
        g.extend_from_slice(&nonce[8..]);
        g.push(0);
        g.extend_from_slice(plugin.as_bytes());
        g.push(0);
        g
    }

    /// The plugin name and the auth answer of a handshake response.
    fn parse_response(p: &[u8]) -> (String, Vec<u8>) {
        let mut r = Reader::new(&p[32..]);
        r.nul_str("user").unwrap();
        let n = usize::from(r.u8("len").unwrap());
        let auth = r.take(n, "auth").unwrap().to_vec();
        let plugin = String::from_utf8(r.nul_str("plugin").unwrap().to_vec()).unwrap();
        (plugin, auth)
    }

    /// Runs `server` on one accepted connection and connects to it as
    /// `u` with password `pw`.
    fn against(server: impl FnOnce(TcpStream) + Send + 'static) -> Result<Conn, WireError> {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || server(l.accept().unwrap().0));
        let mut o = ConnectOptions::new("127.0.0.1", port, "u");
        o.password = Some(crate::wire::Secret::new("pw8"));
        let c = Conn::connect(&o);
        t.join().unwrap();
        c
    }

    const OK: &[u8] = &[0, 0, 0, 2, 0, 0, 0];

    /// A MySQL 8 primary: caching_sha2_password in the greeting, a cache
    /// miss, the full authentication with the server's RSA key (no TLS).
    #[test]
    fn caching_sha2_full_authentication_with_the_servers_key() {
        let nonce = *b"abcdefghij0123456789";
        let c = against(move |mut s| {
            let (key, pem) = server_key();
            write_pkt(&mut s, 0, &greeting(&nonce, CACHING_SHA2));
            let (seq, resp) = read_pkt(&mut s);
            let (plugin, token) = parse_response(&resp);
            assert_eq!((seq, plugin.as_str()), (1, CACHING_SHA2));
            assert!(server_fast_check(b"pw8", &nonce, &token));
            write_pkt(&mut s, 2, &[1, 4]); // perform full authentication
            assert_eq!(read_pkt(&mut s), (3, vec![2]), "asks for the key");
            let mut more = vec![1];
            more.extend_from_slice(&pem);
            write_pkt(&mut s, 4, &more);
            let (seq, c) = read_pkt(&mut s);
            assert_eq!(seq, 5);
            assert_eq!(server_decrypt(&key, &nonce, &c), b"pw8");
            write_pkt(&mut s, 6, OK);
        });
        let c = c.unwrap();
        assert_eq!(c.server_version(), "8.0.36");
    }

    /// A user of caching_sha2_password on a server whose default is the
    /// native plugin: AuthSwitchRequest, then a cache hit (`0x01 0x03`).
    #[test]
    fn auth_switch_to_caching_sha2_and_fast_authentication() {
        let nonce = *b"ABCDEFGHIJ0123456789";
        let c = against(move |mut s| {
            write_pkt(&mut s, 0, &greeting(&nonce, NATIVE_PASSWORD));
            let (_, resp) = read_pkt(&mut s);
            assert_eq!(parse_response(&resp).0, NATIVE_PASSWORD);
            let fresh = *b"zyxwvutsrqponmlkjihg";
            let mut sw = vec![0xfe];
            sw.extend_from_slice(CACHING_SHA2.as_bytes());
            sw.push(0);
            sw.extend_from_slice(&fresh);
            sw.push(0);
            write_pkt(&mut s, 2, &sw);
            let (seq, token) = read_pkt(&mut s);
            assert_eq!(seq, 3);
            assert!(server_fast_check(b"pw8", &fresh, &token));
            write_pkt(&mut s, 4, &[1, 3]);
            write_pkt(&mut s, 5, OK);
        });
        c.unwrap();
    }

    /// A server that refuses the full authentication is an Auth error with
    /// its code.
    #[test]
    fn a_refused_full_authentication_is_an_auth_error() {
        let nonce = *b"abcdefghij0123456789";
        let e = against(move |mut s| {
            write_pkt(&mut s, 0, &greeting(&nonce, CACHING_SHA2));
            read_pkt(&mut s);
            write_pkt(&mut s, 2, &[1, 4]);
            read_pkt(&mut s);
            let mut err = vec![0xff, 0x15, 0x04, b'#'];
            err.extend_from_slice(b"28000Access denied for user 'u'");
            write_pkt(&mut s, 4, &err);
        })
        .unwrap_err();
        assert_eq!(e.code(), Some(1045), "{e}");
        assert!(!e.to_string().contains("pw8"));
    }

    #[test]
    fn native_password_scramble() {
        // The empty password sends an empty response.
        assert!(native_password(b"", b"01234567890123456789").is_empty());
        let a = native_password(b"secret", b"01234567890123456789");
        let b = native_password(b"secret", b"abcdefghijabcdefghij");
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }

    #[test]
    fn parses_err_packets() {
        let mut p = vec![0xff, 0xbd, 0x04, b'#'];
        p.extend_from_slice(b"40001Deadlock found");
        assert_eq!(
            parse_err(&p),
            (1213, "40001".to_owned(), "Deadlock found".to_owned())
        );
        assert_eq!(parse_err(&[0xff, 0x10, 0x04, b'x']).2, "x");
    }

    #[test]
    fn lenenc() {
        let b = [0xfc, 0x01, 0x02, 0xfb, 0x05];
        let mut r = Reader::new(&b);
        assert_eq!(r.lenenc("a").unwrap(), Some(0x0201));
        assert_eq!(r.lenenc("b").unwrap(), None);
        assert_eq!(r.lenenc("c").unwrap(), Some(5));
        assert!(r.lenenc("d").is_err());
    }
}
