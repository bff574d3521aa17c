//! A minimal synchronous MariaDB/MySQL client, written from the protocol.
//!
//! parapply needs three things the `mysql` crate does not give: statements
//! as raw bytes (a statement-format binlog event may carry bytes that are
//! not UTF-8), the error of *any* statement of a multi-statement batch
//! (with the index of the one that failed), and the raw packets of a binlog
//! dump. This module speaks just enough of the client/server protocol for
//! that, over TCP or a Unix socket:
//!
//! * handshake v10 with `CLIENT_PROTOCOL_41 | SECURE_CONNECTION |
//!   PLUGIN_AUTH | MULTI_STATEMENTS | MULTI_RESULTS | LOCAL_FILES` (and
//!   `CONNECT_WITH_DB` when a database is given), TLS by `--ssl-mode`
//!   ([`tls`], rustls; `CLIENT_SSL` and an SSLRequest first); no
//!   compression;
//! * `LOAD DATA LOCAL INFILE` answered with bytes the caller gave for that
//!   query ([`Conn::set_local_infile`]); the client never reads a file, and
//!   refuses a request it has no bytes for;
//! * authentication with `mysql_native_password`, MariaDB's `ed25519` and
//!   MySQL's `caching_sha2_password`/`sha256_password` ([`auth`]), also
//!   after an AuthSwitchRequest; an empty password works;
//! * `COM_QUERY` with raw bytes and text result sets (classic EOF packets:
//!   `CLIENT_DEPRECATE_EOF` is not requested), following
//!   `SERVER_MORE_RESULTS_EXISTS` through a multi-statement batch;
//! * packets of 16 MiB and more, split and joined in both directions;
//! * `COM_PING`, `COM_QUIT`, connect/read/write timeouts, TCP keepalive,
//!   and a liveness probe for long waits ([`ConnectOptions::probe_after`]);
//! * raw commands and packets ([`Conn::write_command`],
//!   [`Conn::read_packet_into`]) for the binlog dump of [`crate::mirror`].
//!
//! # Errors
//!
//! [`WireError`] splits by what the caller does (reconnect, retry, stop).
//! An error in the middle of an exchange marks the connection broken: every
//! later call fails at once instead of reading a desynchronised stream.
//!
//! # Secrets
//!
//! A password lives only in a [`Secret`]; URLs with a password are refused
//! ([`ConnectOptions::from_url`]), so it never shows in `ps`, a log line or
//! an error message.

pub mod auth;
mod conn;
mod error;
pub mod tls;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use conn::{command, Conn, Outcome, Row};
pub use error::*;
pub use tls::{ClientTls, SslMode, TlsOptions};

/// The `mysql_native_password` answer to `scramble` for `password`:
/// `SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))`, empty for an
/// empty password.
pub fn native_password_token(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    conn::native_password(password, scramble)
}

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from a file; one trailing newline is removed.
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Secret> {
        let text = std::fs::read_to_string(path)?;
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        Ok(Secret(text.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Host name or IP address (ignored when `socket` is set).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Unix socket path; used instead of TCP when set.
    pub socket: Option<PathBuf>,
    /// User name.
    pub user: String,
    /// Password; `None` is the empty password.
    pub password: Option<Secret>,
    /// Default database.
    pub database: Option<String>,
    /// Limit for establishing the TCP connection.
    pub connect_timeout: Duration,
    /// Limit for each read; `None` waits forever.
    pub read_timeout: Option<Duration>,
    /// Limit for each write; `None` waits forever.
    pub write_timeout: Option<Duration>,
    /// Connection collation id sent in the handshake (45 =
    /// `utf8mb4_general_ci`); `SET NAMES` changes it later.
    pub collation: u8,
    /// TCP keepalive: probes start after the connection has been idle this
    /// long (then every third of it, three times), so that a peer host
    /// that vanished is noticed by the kernel. `None`: the system default
    /// (usually off).
    pub keepalive: Option<Duration>,
    /// Liveness: when an answer has been awaited this long, a second
    /// connection asks the server whether it still answers and still runs
    /// this connection's statement; if so the wait goes on, otherwise the
    /// connection counts as lost ([`WireError::is_connection_lost`]). A
    /// stopped server (`SIGSTOP`) or a half-open connection is then
    /// noticed within about twice this time plus `connect_timeout`, while
    /// a statement that runs for an hour is waited for. Replaces
    /// `read_timeout` for the waits between packets. `None`: off.
    pub probe_after: Option<Duration>,
    /// TLS ([`tls`]); the default is none.
    pub tls: ClientTls,
}

impl ConnectOptions {
    /// Options for `user@host:port` with the defaults: no password, no
    /// database, 10 s connect timeout, no read/write timeout, utf8mb4.
    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>) -> Self {
        ConnectOptions {
            host: host.into(),
            port,
            socket: None,
            user: user.into(),
            password: None,
            database: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: None,
            write_timeout: None,
            collation: 45,
            keepalive: None,
            probe_after: None,
            tls: ClientTls::disabled(),
        }
    }

    /// Parses `mysql://USER@HOST[:PORT]/[DB][?socket=PATH]` (`mariadb://`
    /// is accepted too; the port defaults to 3306; IPv6 hosts go in
    /// brackets; `%XX` escapes are decoded in the user and database).
    ///
    /// A password in the URL (`USER:PASSWORD@`) is refused: it would show in
    /// `ps` and in logs. Give it in an environment variable or a file.
    pub fn from_url(url: &str) -> Result<Self, WireError> {
        let shown = redact_url(url);
        let bad = |what: &str| WireError::Url {
            url: shown.clone(),
            what: what.to_owned(),
        };
        let rest = url
            .strip_prefix("mysql://")
            .or_else(|| url.strip_prefix("mariadb://"))
            .ok_or_else(|| bad("must start with mysql://"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| bad("no user: write mysql://USER@HOST:PORT/"))?;
        if userinfo.contains(':') {
            return Err(bad(
                "a password in the URL is refused (it would show in `ps` and logs); \
                 give it in the password environment variable or password file of this \
                 connection instead",
            ));
        }
        let user = percent_decode(userinfo).ok_or_else(|| bad("bad %-escape in the user"))?;
        if user.is_empty() {
            return Err(bad("empty user name"));
        }
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, after) = h
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = match port {
            None => 3306,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad(&format!("port `{p}` is not a number from 0 to 65535")))?,
        };
        let mut o = ConnectOptions::new(host, port, user);
        let db = path.trim_end_matches('/');
        if !db.is_empty() {
            o.database =
                Some(percent_decode(db).ok_or_else(|| bad("bad %-escape in the database"))?);
        }
        for kv in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("socket", v)) => {
                    let v = percent_decode(v).ok_or_else(|| bad("bad %-escape in socket"))?;
                    o.socket = Some(PathBuf::from(v));
                }
                _ => return Err(bad(&format!("unknown parameter `{kv}` (known: socket)"))),
            }
        }
        Ok(o)
    }

    /// `host:port` or the socket path, for messages.
    pub fn addr(&self) -> String {
        match &self.socket {
            Some(s) => s.display().to_string(),
            None if self.host.contains(':') => format!("[{}]:{}", self.host, self.port),
            None => format!("{}:{}", self.host, self.port),
        }
    }
}

/// The URL with anything between `://` and `@` after a `:` replaced by `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let o = ConnectOptions::from_url("mysql://repl@db1.example:3307/").unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.user.as_str()),
            ("db1.example", 3307, "repl")
        );
        assert!(o.database.is_none() && o.password.is_none());
        let o = ConnectOptions::from_url("mysql://a%40b@[::1]/shop").unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.user.as_str()),
            ("::1", 3306, "a@b")
        );
        assert_eq!(o.database.as_deref(), Some("shop"));
        assert_eq!(o.addr(), "[::1]:3306");
        let o = ConnectOptions::from_url("mysql://root@localhost/?socket=/tmp/x.sock").unwrap();
        assert_eq!(
            o.socket.as_deref(),
            Some(std::path::Path::new("/tmp/x.sock"))
        );
        assert!(ConnectOptions::from_url("http://root@h/").is_err());
        assert!(ConnectOptions::from_url("mysql://h:3306/").is_err());
        assert!(ConnectOptions::from_url("mysql://u@h:99999/").is_err());
    }

    #[test]
    fn refuses_and_hides_a_password_in_the_url() {
        let e = ConnectOptions::from_url("mysql://repl:hunter2@db1:3306/").unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("repl:***@db1:3306"), "{text}");
        assert!(text.contains("environment variable"), "{text}");
        // Which variable depends on the connection: the caller names it.
        assert!(!text.contains("PARAPPLY_"), "{text}");
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
    }
}
