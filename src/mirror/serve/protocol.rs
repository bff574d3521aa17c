//! The server side of the client/server protocol, as much as replication
//! clients use: packet framing with sequence numbers (16 MiB pieces in both
//! directions, bounded input), the v10 handshake, `mysql_native_password`
//! verification (also after an AuthSwitchRequest), and OK / ERR / EOF /
//! text result set packets.
//!
//! Input is bounded: a client packet announcing more than
//! [`MAX_CLIENT_PACKET`] bytes is refused before anything is allocated for
//! it. Output is buffered and flushed at the points where the client waits
//! for an answer, or when the buffer passes [`FLUSH_AT`]. Runs of binlog
//! events go out with vectored writes straight from the file's read buffer
//! ([`PacketIo::event_run`]): their bytes are never copied into the output
//! buffer.

use std::io::{self, BufRead, BufReader, IoSlice, Read, Write};
use std::ops::Range;

use sha1::{Digest, Sha1};

use super::ClientStream;
use crate::wire::native_password_token;

/// Largest payload of one physical packet; a payload this long continues in
/// the next packet.
pub const MAX_PACKET: usize = 0xff_ffff;
/// Largest logical packet accepted from a client. Replication clients send
/// short commands (a GTID state of a few KiB at most).
pub const MAX_CLIENT_PACKET: usize = 1 << 20;
/// Output is written to the socket once this much is buffered.
pub const FLUSH_AT: usize = 256 * 1024;

/// `write_all` over several buffers.
fn write_all_vectored<W: Write>(w: &mut W, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the connection takes no more bytes",
                ))
            }
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Capability flags.
pub mod caps {
    /// `CLIENT_LONG_PASSWORD`.
    pub const LONG_PASSWORD: u32 = 1;
    /// `CLIENT_FOUND_ROWS`.
    pub const FOUND_ROWS: u32 = 2;
    /// `CLIENT_LONG_FLAG`.
    pub const LONG_FLAG: u32 = 4;
    /// `CLIENT_CONNECT_WITH_DB`.
    pub const CONNECT_WITH_DB: u32 = 8;
    /// `CLIENT_PROTOCOL_41`.
    pub const PROTOCOL_41: u32 = 1 << 9;
    /// `CLIENT_SSL`.
    pub const SSL: u32 = 1 << 11;
    /// `CLIENT_TRANSACTIONS`.
    pub const TRANSACTIONS: u32 = 1 << 13;
    /// `CLIENT_SECURE_CONNECTION`.
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    /// `CLIENT_MULTI_STATEMENTS`.
    pub const MULTI_STATEMENTS: u32 = 1 << 16;
    /// `CLIENT_MULTI_RESULTS`.
    pub const MULTI_RESULTS: u32 = 1 << 17;
    /// `CLIENT_PLUGIN_AUTH`.
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    /// `CLIENT_CONNECT_ATTRS`.
    pub const CONNECT_ATTRS: u32 = 1 << 20;
    /// `CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA`.
    pub const PLUGIN_AUTH_LENENC: u32 = 1 << 21;
    /// What this server offers (and `SSL` when it has a certificate): no
    /// compression, classic EOF packets.
    pub const SERVER: u32 = LONG_PASSWORD
        | FOUND_ROWS
        | LONG_FLAG
        | CONNECT_WITH_DB
        | PROTOCOL_41
        | TRANSACTIONS
        | SECURE_CONNECTION
        | MULTI_STATEMENTS
        | MULTI_RESULTS
        | PLUGIN_AUTH
        | CONNECT_ATTRS
        | PLUGIN_AUTH_LENENC;
}

/// `SERVER_STATUS_AUTOCOMMIT`.
pub const STATUS_AUTOCOMMIT: u16 = 0x0002;
/// `SERVER_MORE_RESULTS_EXISTS`.
pub const STATUS_MORE_RESULTS: u16 = 0x0008;

const NATIVE_PASSWORD: &[u8] = b"mysql_native_password";

/// Why a connection ends early.
#[derive(Debug)]
pub enum ProtoError {
    /// The socket failed or the client went away.
    Io(io::Error),
    /// The client broke the protocol; the text says how (sent to the
    /// client as an ERR packet when possible).
    Bad(String),
}

impl From<io::Error> for ProtoError {
    fn from(e: io::Error) -> Self {
        ProtoError::Io(e)
    }
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoError::Io(e) => write!(f, "{e}"),
            ProtoError::Bad(s) => f.write_str(s),
        }
    }
}

/// A client connection's packets.
pub struct PacketIo<S: Read + Write> {
    io: BufReader<S>,
    out: Vec<u8>,
    /// Sequence number of the next packet (either direction).
    pub seq: u8,
    /// Bytes left in the physical packet being streamed, and whether more
    /// of the logical packet follows it.
    chunk_left: usize,
    total_left: usize,
    last_chunk_full: bool,
    /// Packet headers of [`Self::event_run`] (kept for their allocation).
    heads: Vec<[u8; 5]>,
}

impl<S: Read + Write> PacketIo<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Self {
        PacketIo {
            io: BufReader::with_capacity(16 * 1024, stream),
            out: Vec::with_capacity(64 * 1024),
            seq: 0,
            chunk_left: 0,
            total_left: 0,
            last_chunk_full: false,
            heads: Vec::new(),
        }
    }

    /// The stream (for socket options).
    pub fn stream(&self) -> &S {
        self.io.get_ref()
    }

    /// The stream, to change it (TLS), and the bytes read ahead of it
    /// (a client sends its TLS hello right after the SSLRequest).
    fn stream_mut(&mut self) -> (&mut S, Vec<u8>) {
        let ahead = self.io.buffer().to_vec();
        self.io.consume(ahead.len());
        (self.io.get_mut(), ahead)
    }

    /// Reads one logical packet into `buf`. `Ok(false)`: the client closed
    /// the connection cleanly before a new packet.
    pub fn read_packet(&mut self, buf: &mut Vec<u8>) -> Result<bool, ProtoError> {
        buf.clear();
        loop {
            let mut h = [0u8; 4];
            let mut got = 0;
            while got < 4 {
                match self.io.read(&mut h[got..]) {
                    Ok(0) if got == 0 && buf.is_empty() => return Ok(false),
                    Ok(0) => {
                        return Err(ProtoError::Io(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the client closed the connection inside a packet",
                        )))
                    }
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
            if h[3] != self.seq {
                return Err(ProtoError::Bad(format!(
                    "packets out of order: sequence number {}, expected {}",
                    h[3], self.seq
                )));
            }
            self.seq = self.seq.wrapping_add(1);
            if buf.len() + len > MAX_CLIENT_PACKET {
                return Err(ProtoError::Bad(format!(
                    "a packet larger than {MAX_CLIENT_PACKET} bytes (this server takes \
                     replication commands, which are short)"
                )));
            }
            let start = buf.len();
            buf.resize(start + len, 0);
            self.io.read_exact(&mut buf[start..])?;
            if len < MAX_PACKET {
                return Ok(true);
            }
        }
    }

    /// Starts a logical packet of `len` bytes, written with [`Self::put`].
    pub fn begin(&mut self, len: usize) {
        self.total_left = len;
        self.open_chunk();
    }

    fn open_chunk(&mut self) {
        let n = self.total_left.min(MAX_PACKET);
        self.out
            .extend_from_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8, self.seq]);
        self.seq = self.seq.wrapping_add(1);
        self.chunk_left = n;
        self.last_chunk_full = n == MAX_PACKET;
    }

    /// Appends bytes of the packet begun with [`Self::begin`].
    pub fn put(&mut self, mut b: &[u8]) -> io::Result<()> {
        while !b.is_empty() {
            if self.chunk_left == 0 {
                if self.total_left == 0 {
                    return Err(io::Error::other(
                        "internal: more bytes than the packet announced",
                    ));
                }
                self.open_chunk();
            }
            let k = self.chunk_left.min(b.len());
            self.out.extend_from_slice(&b[..k]);
            self.chunk_left -= k;
            self.total_left -= k;
            b = &b[k..];
            if self.out.len() >= FLUSH_AT {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Ends the packet begun with [`Self::begin`].
    pub fn end(&mut self) -> io::Result<()> {
        if self.total_left != 0 || self.chunk_left != 0 {
            return Err(io::Error::other("internal: packet shorter than announced"));
        }
        if self.last_chunk_full {
            // A payload of a multiple of 16 MiB ends with an empty packet.
            self.total_left = 0;
            self.open_chunk();
        }
        if self.out.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes one whole logical packet.
    pub fn packet(&mut self, payload: &[u8]) -> io::Result<()> {
        self.begin(payload.len());
        self.put(payload)?;
        self.end()
    }

    /// Sends binlog events, each as one packet (an OK byte and the event),
    /// after whatever is buffered: `spans` are the events' ranges in
    /// `bytes`, each shorter than [`MAX_PACKET`] - 1. The bytes go to the
    /// socket with vectored writes (a few hundred events per system call),
    /// without a copy into the output buffer.
    pub fn event_run(&mut self, bytes: &[u8], spans: &[Range<usize>]) -> io::Result<()> {
        let mut heads = std::mem::take(&mut self.heads);
        heads.clear();
        for s in spans {
            let n = s.len() + 1;
            if n >= MAX_PACKET {
                self.heads = heads;
                return Err(io::Error::other(
                    "internal: an event of a run does not fit one packet",
                ));
            }
            heads.push([n as u8, (n >> 8) as u8, (n >> 16) as u8, self.seq, 0]);
            self.seq = self.seq.wrapping_add(1);
        }
        let mut iov = Vec::with_capacity(1 + 2 * spans.len());
        iov.push(IoSlice::new(&self.out));
        for (h, s) in heads.iter().zip(spans) {
            iov.push(IoSlice::new(h));
            iov.push(IoSlice::new(&bytes[s.clone()]));
        }
        let r = write_all_vectored(self.io.get_mut(), &mut iov);
        drop(iov);
        self.out.clear();
        self.heads = heads;
        r
    }

    /// Sends what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.io.get_mut().write_all(&self.out)?;
            self.out.clear();
        }
        self.io.get_mut().flush()
    }

    /// An OK packet.
    pub fn ok(&mut self, status: u16) -> io::Result<()> {
        let mut p = vec![0x00, 0, 0];
        p.extend_from_slice(&status.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes());
        self.packet(&p)
    }

    /// An ERR packet.
    pub fn err(&mut self, code: u16, state: &str, message: &str) -> io::Result<()> {
        let mut p = Vec::with_capacity(9 + message.len());
        p.push(0xff);
        p.extend_from_slice(&code.to_le_bytes());
        p.push(b'#');
        let mut st = [b'H', b'Y', b'0', b'0', b'0'];
        for (d, s) in st.iter_mut().zip(state.bytes()) {
            *d = s;
        }
        p.extend_from_slice(&st);
        // MariaDB limits messages to 512 bytes; keep them whole-ish.
        let msg = truncate_utf8(message, 1024);
        p.extend_from_slice(msg.as_bytes());
        self.packet(&p)
    }

    /// An EOF packet.
    pub fn eof(&mut self, status: u16) -> io::Result<()> {
        let mut p = vec![0xfe, 0, 0];
        p.extend_from_slice(&status.to_le_bytes());
        self.packet(&p)
    }

    /// A text result set: column definitions, rows, EOF.
    pub fn result_set(
        &mut self,
        columns: &[Column],
        rows: &[Vec<Option<Vec<u8>>>],
        status: u16,
    ) -> io::Result<()> {
        let mut p = Vec::new();
        put_lenenc(&mut p, columns.len() as u64);
        self.packet(&p)?;
        for c in columns {
            p.clear();
            put_lenenc_str(&mut p, b"def");
            put_lenenc_str(&mut p, b"");
            put_lenenc_str(&mut p, b"");
            put_lenenc_str(&mut p, b"");
            put_lenenc_str(&mut p, c.name.as_bytes());
            put_lenenc_str(&mut p, c.name.as_bytes());
            p.push(0x0c);
            let (charset, len, flags): (u16, u32, u16) = match c.kind {
                ColumnKind::Int => (63, 21, 0x0080 | 0x0001),
                ColumnKind::Text => (33, 1024, 0),
            };
            p.extend_from_slice(&charset.to_le_bytes());
            p.extend_from_slice(&len.to_le_bytes());
            p.push(match c.kind {
                ColumnKind::Int => 0x08,
                ColumnKind::Text => 0xfd,
            });
            p.extend_from_slice(&flags.to_le_bytes());
            p.push(0);
            p.extend_from_slice(&[0, 0]);
            self.packet(&p)?;
        }
        self.eof(status)?;
        for row in rows {
            p.clear();
            for v in row {
                match v {
                    Some(b) => put_lenenc_str(&mut p, b),
                    None => p.push(0xfb),
                }
            }
            self.packet(&p)?;
        }
        self.eof(status)
    }

    /// Reads the client's next login packet; `what` names the step for the
    /// error of a client that leaves.
    fn read_login_packet(&mut self, buf: &mut Vec<u8>, what: &str) -> Result<(), ProtoError> {
        if !self.read_packet(buf)? {
            return Err(ProtoError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the client closed the connection {what}"),
            )));
        }
        Ok(())
    }
}

impl<S: ClientStream> PacketIo<S> {
    /// Greets the client, reads its login and checks it: `Ok(Some(user))`
    /// when the client logged in as `user` with the right password (an OK
    /// packet has been sent), `Ok(None)` when it was refused (an ERR packet
    /// has been sent). A client's SSLRequest starts TLS when the stream
    /// offers it ([`ClientStream::tls_offered`]); a login without TLS is
    /// refused when [`Handshake::require_tls`] is set.
    pub fn handshake(
        &mut self,
        h: &Handshake<'_>,
        scramble: &[u8; 20],
    ) -> Result<Option<String>, ProtoError> {
        let server_caps = if self.stream().tls_offered() {
            caps::SERVER | caps::SSL
        } else {
            caps::SERVER
        };
        self.seq = 0;
        let mut g = Vec::with_capacity(128);
        g.push(10);
        g.extend_from_slice(h.version.as_bytes());
        g.push(0);
        g.extend_from_slice(&h.connection_id.to_le_bytes());
        g.extend_from_slice(&scramble[..8]);
        g.push(0);
        g.extend_from_slice(&(server_caps as u16).to_le_bytes());
        g.push(45);
        g.extend_from_slice(&STATUS_AUTOCOMMIT.to_le_bytes());
        g.extend_from_slice(&((server_caps >> 16) as u16).to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0u8; 6]);
        g.extend_from_slice(&0u32.to_le_bytes()); // MariaDB extended capabilities
        g.extend_from_slice(&scramble[8..]);
        g.push(0);
        g.extend_from_slice(NATIVE_PASSWORD);
        g.push(0);
        self.packet(&g)?;
        self.flush()?;

        let mut buf = Vec::new();
        self.read_login_packet(&mut buf, "before logging in")?;
        let mut resp = parse_login(&buf).map_err(ProtoError::Bad)?;
        if resp.ssl_request {
            if server_caps & caps::SSL == 0 {
                return Err(ProtoError::Bad(
                    "an SSLRequest, but this server offered no TLS".into(),
                ));
            }
            let (stream, ahead) = self.stream_mut();
            stream.start_tls(&ahead)?;
            self.read_login_packet(&mut buf, "after the TLS handshake")?;
            resp = parse_login(&buf).map_err(ProtoError::Bad)?;
            if resp.ssl_request {
                return Err(ProtoError::Bad("a second SSLRequest".into()));
            }
        } else if h.require_tls {
            self.err(
                ER_SECURE_TRANSPORT_REQUIRED,
                "08004",
                "Connections using insecure transport are prohibited: this binlog server \
                 requires TLS (connect with --ssl-mode required or stricter)",
            )?;
            self.flush()?;
            return Ok(None);
        }
        let mut token = resp.auth.clone();
        if resp.plugin.as_deref().is_some_and(|p| p != NATIVE_PASSWORD) {
            // Ask for mysql_native_password with the same scramble.
            let mut sw = vec![0xfe];
            sw.extend_from_slice(NATIVE_PASSWORD);
            sw.push(0);
            sw.extend_from_slice(scramble);
            sw.push(0);
            self.packet(&sw)?;
            self.flush()?;
            self.read_login_packet(&mut buf, "during authentication")?;
            token = buf.clone();
        }
        let user = String::from_utf8_lossy(&resp.user).into_owned();
        let user_ok = resp.user == h.user.as_bytes();
        let password_ok = check_native_password(&token, scramble, h.password_hash);
        if user_ok && password_ok {
            self.ok(STATUS_AUTOCOMMIT)?;
            self.flush()?;
            return Ok(Some(user));
        }
        let msg = format!(
            "Access denied for user '{}'@'{}' (using password: {})",
            truncate_utf8(&user, 80),
            h.peer_host,
            if token.is_empty() { "NO" } else { "YES" }
        );
        self.err(ER_ACCESS_DENIED_ERROR, "28000", &msg)?;
        self.flush()?;
        Ok(None)
    }
}

/// `ER_ACCESS_DENIED_ERROR`.
pub const ER_ACCESS_DENIED_ERROR: u16 = 1045;
/// `ER_SECURE_TRANSPORT_REQUIRED` (MariaDB's `require_secure_transport`).
pub const ER_SECURE_TRANSPORT_REQUIRED: u16 = 3159;

/// What the greeting says and whom it lets in.
pub struct Handshake<'a> {
    /// Server version as sent (`5.5.5-` + the primary's version).
    pub version: &'a str,
    /// This connection's id.
    pub connection_id: u32,
    /// The one user allowed in.
    pub user: &'a str,
    /// `SHA1(SHA1(password))` of that user.
    pub password_hash: &'a [u8; 20],
    /// The client's address, for the access-denied message.
    pub peer_host: &'a str,
    /// Refuse a login without TLS.
    pub require_tls: bool,
}

/// The parsed handshake response.
#[derive(Debug, Default)]
pub struct Login {
    /// An SSLRequest (the client wants TLS before logging in).
    pub ssl_request: bool,
    /// User name.
    pub user: Vec<u8>,
    /// Authentication response.
    pub auth: Vec<u8>,
    /// Client plugin, when given.
    pub plugin: Option<Vec<u8>>,
}

/// Parses a HandshakeResponse41 (or an SSLRequest).
pub fn parse_login(p: &[u8]) -> Result<Login, String> {
    let mut r = Fields::new(p);
    let client_caps = r.u32("capabilities")?;
    if client_caps & caps::PROTOCOL_41 == 0 {
        return Err("the client does not speak protocol 4.1".into());
    }
    r.u32("max packet size")?;
    r.u8("character set")?;
    r.take(23, "reserved bytes")?;
    if r.is_empty() && client_caps & caps::SSL != 0 {
        return Ok(Login {
            ssl_request: true,
            ..Login::default()
        });
    }
    let user = r.nul_str("user name")?.to_vec();
    let auth = if client_caps & caps::PLUGIN_AUTH_LENENC != 0 {
        let n = r.lenenc("auth response length")?;
        let n = usize::try_from(n).map_err(|_| "auth response length too large".to_string())?;
        r.take(n, "auth response")?.to_vec()
    } else if client_caps & caps::SECURE_CONNECTION != 0 {
        let n = usize::from(r.u8("auth response length")?);
        r.take(n, "auth response")?.to_vec()
    } else {
        r.nul_str("auth response")?.to_vec()
    };
    if client_caps & caps::CONNECT_WITH_DB != 0 && !r.is_empty() {
        r.nul_str("database")?;
    }
    let plugin = if client_caps & caps::PLUGIN_AUTH != 0 && !r.is_empty() {
        let rest = r.rest();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        Some(rest[..end].to_vec())
    } else {
        None
    };
    Ok(Login {
        ssl_request: false,
        user,
        auth,
        plugin,
    })
}

/// `SHA1(SHA1(password))`, what the server keeps of a password.
pub fn password_hash(password: &str) -> [u8; 20] {
    let h1 = Sha1::digest(password.as_bytes());
    Sha1::digest(h1).into()
}

/// Checks a `mysql_native_password` token against the stored hash: the
/// token XOR `SHA1(scramble + hash)` must be a value whose SHA1 is the hash.
pub fn check_native_password(token: &[u8], scramble: &[u8; 20], hash: &[u8; 20]) -> bool {
    if token.len() != 20 {
        return false;
    }
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(hash);
    let mask = h.finalize();
    let h1: Vec<u8> = token.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect();
    let candidate: [u8; 20] = Sha1::digest(&h1).into();
    // Constant time: compare every byte.
    candidate
        .iter()
        .zip(hash.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// A scramble from the OS's random source: 20 printable, non-NUL bytes
/// as MariaDB sends them.
pub fn new_scramble() -> io::Result<[u8; 20]> {
    let mut raw = [0u8; 20];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    let mut s = [0u8; 20];
    for (d, r) in s.iter_mut().zip(raw) {
        *d = 33 + (r % 94);
    }
    Ok(s)
}

/// The token a client sends for `password` (for tests and fuzzing).
pub fn client_token(password: &str, scramble: &[u8; 20]) -> Vec<u8> {
    native_password_token(password.as_bytes(), scramble)
}

/// A result column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Its type.
    pub kind: ColumnKind,
}

/// Column types this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `BIGINT UNSIGNED`.
    Int,
    /// `VARCHAR`.
    Text,
}

/// Appends a length-encoded integer.
pub fn put_lenenc(p: &mut Vec<u8>, v: u64) {
    if v < 251 {
        p.push(v as u8);
    } else if v < 1 << 16 {
        p.push(0xfc);
        p.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v < 1 << 24 {
        p.push(0xfd);
        p.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
    } else {
        p.push(0xfe);
        p.extend_from_slice(&v.to_le_bytes());
    }
}

/// Appends a length-encoded string.
pub fn put_lenenc_str(p: &mut Vec<u8>, s: &[u8]) {
    put_lenenc(p, s.len() as u64);
    p.extend_from_slice(s);
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Reads fields of a client packet, with errors naming the field.
pub struct Fields<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    /// Starts at the packet's first byte.
    pub fn new(b: &'a [u8]) -> Self {
        Fields { b, at: 0 }
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("packet too short for the {what}"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    /// One byte.
    pub fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }
    /// A little-endian u16.
    pub fn u16(&mut self, what: &str) -> Result<u16, String> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    /// A little-endian u32.
    pub fn u32(&mut self, what: &str) -> Result<u32, String> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    /// A length-encoded integer.
    pub fn lenenc(&mut self, what: &str) -> Result<u64, String> {
        let n = match self.u8(what)? {
            0xfc => 2,
            0xfd => 3,
            0xfe => 8,
            v @ 0..=0xfa => return Ok(u64::from(v)),
            v => return Err(format!("{what}: {v:#04x} is not a length")),
        };
        let s = self.take(n, what)?;
        Ok(s.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    }
    /// A NUL-terminated string (without the NUL).
    pub fn nul_str(&mut self, what: &str) -> Result<&'a [u8], String> {
        let rest = &self.b[self.at..];
        let n = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| format!("the {what} is not NUL-terminated"))?;
        self.at += n + 1;
        Ok(&rest[..n])
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.at..];
        self.at = self.b.len();
        s
    }
    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.at >= self.b.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_password_round_trip() {
        let scramble = *b"abcdefghij0123456789";
        let hash = password_hash("s3cret");
        let token = client_token("s3cret", &scramble);
        assert!(check_native_password(&token, &scramble, &hash));
        assert!(!check_native_password(
            &client_token("wrong", &scramble),
            &scramble,
            &hash
        ));
        assert!(!check_native_password(&[], &scramble, &hash));
        assert!(!check_native_password(&token[..19], &scramble, &hash));
    }

    /// A stream that takes at most 7 bytes per write, as a congested
    /// socket may.
    struct Trickle(Vec<u8>);

    impl Read for Trickle {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let n = b.len().min(7);
            self.0.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut left = 7;
            for b in bufs {
                let n = b.len().min(left);
                self.0.extend_from_slice(&b[..n]);
                left -= n;
                if left == 0 {
                    break;
                }
            }
            Ok(7 - left)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_event_run_is_the_packets_one_by_one() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let spans = [0..19, 19..300, 300..301, 400..1000];
        let mut one = PacketIo::new(std::io::Cursor::new(Vec::new()));
        one.seq = 250;
        one.ok(0).unwrap();
        for s in &spans {
            let mut p = vec![0];
            p.extend_from_slice(&bytes[s.clone()]);
            one.packet(&p).unwrap();
        }
        one.ok(0).unwrap();
        one.flush().unwrap();
        let mut run = PacketIo::new(Trickle(Vec::new()));
        run.seq = 250;
        run.ok(0).unwrap();
        run.event_run(&bytes, &spans).unwrap();
        run.ok(0).unwrap();
        run.flush().unwrap();
        assert_eq!(run.seq, one.seq);
        assert_eq!(run.io.into_inner().0, one.io.into_inner().into_inner());
        let mut io = PacketIo::new(std::io::Cursor::new(Vec::new()));
        let too_long = 0..MAX_PACKET - 1;
        let spans = std::slice::from_ref(&too_long);
        assert!(io.event_run(&vec![0; MAX_PACKET], spans).is_err());
    }

    #[test]
    fn splits_and_joins_large_packets() {
        let payload = vec![7u8; MAX_PACKET + 10];
        let mut io = PacketIo::new(std::io::Cursor::new(Vec::new()));
        io.packet(&payload).unwrap();
        io.flush().unwrap();
        let written = io.io.into_inner().into_inner();
        assert_eq!(written.len(), payload.len() + 8);
        assert_eq!(&written[..4], &[0xff, 0xff, 0xff, 0]);
        assert_eq!(&written[MAX_PACKET + 4..MAX_PACKET + 8], &[10, 0, 0, 1]);
        // An exact multiple ends with an empty packet.
        let mut io = PacketIo::new(std::io::Cursor::new(Vec::new()));
        io.packet(&vec![1u8; MAX_PACKET]).unwrap();
        io.flush().unwrap();
        let written = io.io.into_inner().into_inner();
        assert_eq!(&written[written.len() - 4..], &[0, 0, 0, 1]);
    }

    #[test]
    fn refuses_oversized_and_out_of_order_packets() {
        let mut big = vec![0xff, 0xff, 0xff, 0];
        big.extend(vec![0u8; 16]);
        let mut io = PacketIo::new(std::io::Cursor::new(big));
        let mut buf = Vec::new();
        // 16 MiB announced, only 16 bytes there: refused before reading,
        // since more than MAX_CLIENT_PACKET is announced.
        assert!(matches!(io.read_packet(&mut buf), Err(ProtoError::Bad(_))));
        assert!(buf.capacity() < MAX_CLIENT_PACKET);
        let mut io = PacketIo::new(std::io::Cursor::new(vec![1, 0, 0, 5, 3]));
        assert!(matches!(io.read_packet(&mut buf), Err(ProtoError::Bad(_))));
        let mut io = PacketIo::new(std::io::Cursor::new(Vec::<u8>::new()));
        assert!(!io.read_packet(&mut buf).unwrap());
    }

    #[test]
    fn parses_a_login() {
        let mut p = Vec::new();
        let c = caps::PROTOCOL_41 | caps::SECURE_CONNECTION | caps::PLUGIN_AUTH;
        p.extend_from_slice(&c.to_le_bytes());
        p.extend_from_slice(&(1u32 << 24).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&[0u8; 23]);
        p.extend_from_slice(b"repl\0");
        p.push(20);
        p.extend_from_slice(&[9u8; 20]);
        p.extend_from_slice(b"mysql_native_password\0");
        let l = parse_login(&p).unwrap();
        assert_eq!(l.user, b"repl");
        assert_eq!(l.auth, vec![9u8; 20]);
        assert_eq!(l.plugin.as_deref(), Some(&b"mysql_native_password"[..]));
        assert!(parse_login(&p[..40]).is_err());
    }
}
