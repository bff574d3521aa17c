//! The binlog format: events, their decoding, and the file reader.
//!
//! A binlog file is the magic `\xfebin`, a Format_description event (FDE),
//! then events. Each event is a 19-byte header ([`EventHeader`]), a body, and
//! — when the FDE says CRC32 — a 4-byte checksum over header and body, which
//! the reader verifies for every event.
//!
//! * [`checksum`] — the CRC32 that ends each event, verified by the reader
//!   and the mirror.
//! * [`constants`] — type codes and flag bits, grouped in one place.
//! * [`events`] — one decoder per event family, borrowing from the bytes.
//! * [`Event`] — the decoded-event enum; unknown types pass through raw.
//! * [`reader`] — streams [`RawEvent`]s from files or a directory with an
//!   index, follows Rotate and the index, tails growing files.
//! * `synth` — synthetic binlogs for tests, fuzzing and benchmarks (test
//!   gear: built with the `testkit` feature and in unit tests only).

pub mod checksum;
pub mod constants;
pub mod cursor;
pub mod error;
mod event;
pub mod events;
pub mod reader;
#[cfg(any(test, feature = "testkit"))]
pub mod synth;

pub use constants::EventType;
pub use error::{DecodeError, ReadError};
pub use event::{Event, EventHeader};
pub use events::FormatDescription;
pub use reader::{BinlogReader, RawEvent, ReaderOptions, Source};
