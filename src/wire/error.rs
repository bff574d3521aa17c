//! What can go wrong talking to a server, split by what the caller does.
//!
//! * [`WireError::Io`] and [`WireError::Protocol`] leave the connection
//!   unusable: reconnect ([`WireError::is_connection_lost`] says so).
//! * [`WireError::Server`] is an ERR packet: the connection is still good;
//!   deadlocks and lock-wait timeouts are worth a retry
//!   ([`WireError::is_deadlock`], [`WireError::is_lock_wait_timeout`]).
//! * [`WireError::Auth`], [`WireError::Tls`] and [`WireError::Url`] need
//!   an operator.
//!
//! No message ever contains a password: the password is only held in a
//! [`super::Secret`], whose `Debug` and `Display` print `***`.

use std::io;

use thiserror::Error;

/// `ER_LOCK_DEADLOCK`.
pub const ER_LOCK_DEADLOCK: u16 = 1213;
/// `ER_LOCK_WAIT_TIMEOUT`.
pub const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// `ER_ACCESS_DENIED_ERROR`.
pub const ER_ACCESS_DENIED_ERROR: u16 = 1045;
/// `ER_SERVER_SHUTDOWN`: the server is shutting down.
pub const ER_SERVER_SHUTDOWN: u16 = 1053;
/// `ER_NEW_ABORTING_CONNECTION`.
pub const ER_NEW_ABORTING_CONNECTION: u16 = 1184;
/// `ER_CONNECTION_KILLED` (MariaDB).
pub const ER_CONNECTION_KILLED: u16 = 1927;
/// `ER_MASTER_FATAL_ERROR_READING_BINLOG`: the primary cannot send the
/// requested binlog (purged, impossible position, GTID not found, …).
pub const ER_MASTER_FATAL_ERROR_READING_BINLOG: u16 = 1236;
/// `ER_SPECIFIC_ACCESS_DENIED_ERROR`: a privilege is missing.
pub const ER_SPECIFIC_ACCESS_DENIED_ERROR: u16 = 1227;

/// An error of a [`super::Conn`].
#[derive(Debug, Error)]
pub enum WireError {
    /// Connecting, reading or writing failed (includes timeouts and the
    /// server closing the connection). The connection is lost.
    #[error("{addr}: cannot {op}: {error}")]
    Io {
        /// `host:port` or the socket path.
        addr: String,
        /// What was being done: `connect`, `read from the server`, ….
        op: &'static str,
        /// The cause.
        error: io::Error,
    },
    /// The server answered a statement with an ERR packet.
    #[error("server error {code} ({state}) in statement {} of the batch: {message}", statement + 1)]
    Server {
        /// MariaDB error number, e.g. 1213.
        code: u16,
        /// SQLSTATE, e.g. `40001` (empty if the server sent none).
        state: String,
        /// The server's message.
        message: String,
        /// Index (from 0) of the failing statement in a multi-statement batch.
        statement: usize,
    },
    /// The server sent something this client cannot follow. The connection
    /// is lost.
    #[error("{addr}: protocol error: {what}")]
    Protocol {
        /// `host:port` or the socket path.
        addr: String,
        /// What was wrong.
        what: String,
    },
    /// Authentication failed or cannot be done.
    #[error("{addr}: cannot log in as `{user}`: {message}{}", code.map(|c| format!(" (error {c})")).unwrap_or_default())]
    Auth {
        /// `host:port` or the socket path.
        addr: String,
        /// The user name.
        user: String,
        /// Server error number, when the server refused (1045: wrong password).
        code: Option<u16>,
        /// What happened.
        message: String,
    },
    /// TLS cannot be set up as `--ssl-mode` asks: the server offers none,
    /// its certificate is refused, the handshake failed. Needs an operator.
    #[error("{addr}: {what}")]
    Tls {
        /// `host:port` or the socket path.
        addr: String,
        /// What failed, with the mode and a hint.
        what: String,
    },
    /// A connection URL is malformed or carries a password.
    #[error("connection URL `{url}`: {what}")]
    Url {
        /// The URL, any password replaced by `***`.
        url: String,
        /// What is wrong.
        what: String,
    },
}

impl WireError {
    /// Whether the message already names the server's address.
    pub fn names_addr(&self) -> bool {
        !matches!(self, WireError::Server { .. })
    }

    /// The server error number, for [`WireError::Server`] and refused logins.
    pub fn code(&self) -> Option<u16> {
        match self {
            WireError::Server { code, .. } => Some(*code),
            WireError::Auth { code, .. } => *code,
            _ => None,
        }
    }

    /// A deadlock (1213): the transaction was rolled back; retry it.
    pub fn is_deadlock(&self) -> bool {
        self.code() == Some(ER_LOCK_DEADLOCK)
    }

    /// A lock-wait timeout (1205): the statement was rolled back; retry.
    pub fn is_lock_wait_timeout(&self) -> bool {
        self.code() == Some(ER_LOCK_WAIT_TIMEOUT)
    }

    /// The connection is gone (I/O error, timeout, protocol desync, or the
    /// server said it is shutting down or killed the connection):
    /// reconnect before anything else.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            WireError::Io { .. } | WireError::Protocol { .. } => true,
            WireError::Server { code, .. } => matches!(
                *code,
                ER_SERVER_SHUTDOWN | ER_NEW_ABORTING_CONNECTION | ER_CONNECTION_KILLED
            ),
            WireError::Auth { .. } | WireError::Tls { .. } | WireError::Url { .. } => false,
        }
    }

    /// A read or connect timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, WireError::Io { error, .. }
            if matches!(error.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock))
    }
}
