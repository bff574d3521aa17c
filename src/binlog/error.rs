//! What can go wrong reading a binlog, and where.
//!
//! [`DecodeError`] describes a malformed event body (offsets are inside the
//! event). [`ReadError`] is what the reader returns: it always names the file
//! and the byte position of the event concerned, so an operator can look at
//! it with `mariadb-binlog --start-position`. Messages include their cause
//! (which is therefore not also chained as `source()`).

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// A malformed event body. Offsets are relative to the start of the body
/// (the first byte after the 19-byte header).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A field runs past the end of the event.
    #[error("{field} at body offset {offset} needs {needed} bytes, {available} left")]
    Short {
        /// The field being read.
        field: &'static str,
        /// Body offset where it starts.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
        /// Bytes that are left.
        available: usize,
    },
    /// A field holds a value that cannot be right.
    #[error("{field} at body offset {offset}: {what}")]
    Invalid {
        /// The field being read.
        field: &'static str,
        /// Body offset where it starts.
        offset: usize,
        /// What is wrong.
        what: String,
    },
}

/// An error of the binlog reader, with the file and position it concerns.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// The file does not start with the binlog magic `\xfebin`.
    #[error("{file} is not a binlog: it does not start with the magic bytes fe 62 69 6e")]
    BadMagic {
        /// The file.
        file: String,
    },
    /// The first event is not a Format_description event.
    #[error("{file}:{pos}: expected a Format_description event, found event type {type_code}")]
    NoFormatDescription {
        /// The file.
        file: String,
        /// Position of the offending event.
        pos: u64,
        /// Its type code.
        type_code: u8,
    },
    /// The binlog is in a format this reader does not handle.
    #[error("{file}:{pos}: unsupported binlog: {what}")]
    Unsupported {
        /// The file.
        file: String,
        /// Position of the event that shows it.
        pos: u64,
        /// What is unsupported.
        what: String,
    },
    /// An event header announces a size that cannot be right.
    #[error("{file}:{pos}: corrupt event header: {what}")]
    BadHeader {
        /// The file.
        file: String,
        /// Position of the event.
        pos: u64,
        /// What is wrong.
        what: String,
    },
    /// The CRC32 stored in the event does not match its bytes.
    #[error(
        "{file}:{pos}: checksum mismatch in {type_name} event: stored {stored:#010x}, computed {computed:#010x}"
    )]
    Checksum {
        /// The file.
        file: String,
        /// Position of the event.
        pos: u64,
        /// Event type name.
        type_name: &'static str,
        /// CRC stored in the event.
        stored: u32,
        /// CRC computed over the event.
        computed: u32,
    },
    /// The file ends in the middle of an event although it is complete
    /// (closed, or followed by another file).
    #[error("{file}:{pos}: truncated event: {needed} bytes announced, {available} present")]
    Truncated {
        /// The file.
        file: String,
        /// Position where the partial event starts.
        pos: u64,
        /// Bytes the event needs (header or whole event).
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// An event body is malformed.
    #[error("{file}:{pos}: malformed {type_name} event: {cause}")]
    Decode {
        /// The file.
        file: String,
        /// Position of the event.
        pos: u64,
        /// Event type name.
        type_name: &'static str,
        /// What is malformed.
        cause: DecodeError,
    },
    /// A transaction group's events do not fit together (a Rows event
    /// whose table id no Table_map of its group declared, say): the server
    /// would skip such rows silently.
    #[error("{file}:{pos}: corrupt transaction group {group}: {what}")]
    CorruptGroup {
        /// The file.
        file: String,
        /// Position of the offending event.
        pos: u64,
        /// The group: GTID and start position.
        group: String,
        /// What is wrong.
        what: String,
    },
    /// The index file or the directory is not usable.
    #[error("{}: {what}", path.display())]
    Index {
        /// The index file or directory.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The requested start position or GTID cannot be found.
    #[error("start not found: {what}")]
    StartNotFound {
        /// What was looked for and where.
        what: String,
    },
}
