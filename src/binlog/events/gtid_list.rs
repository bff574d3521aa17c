//! GTID_LIST (type 163) and BINLOG_CHECKPOINT (type 161) events.
//!
//! GTID_LIST opens every MariaDB binlog file: the last GTID of each domain
//! written before this file (the binlog state at the file's start), which is
//! what lets a reader find the file that holds a given GTID without scanning
//! the whole binlog. Body: count u32 (low 28 bits; the high 4 are flags),
//! then per entry domain u32, server u32, seq_no u64.
//!
//! BINLOG_CHECKPOINT names the oldest file crash recovery must read. Body:
//! name length u32, then the name.

use serde::Serialize;

use super::ser_text;
use crate::binlog::cursor::Cursor;
use crate::binlog::error::DecodeError;
use crate::position::MariaGtid;

/// The binlog state at the start of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GtidListEvent {
    /// Flags from the high 4 bits of the count.
    pub flags: u8,
    /// Last GTID of each domain before this point.
    pub gtids: Vec<MariaGtid>,
}

impl GtidListEvent {
    /// Decodes a GTID_LIST body.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body);
        let raw = c.u32("count")?;
        let count = usize::try_from(raw & 0x0fff_ffff).unwrap_or(usize::MAX);
        let flags = u8::try_from(raw >> 28).unwrap_or(0);
        if count > c.remaining() / 16 {
            return Err(DecodeError::Short {
                field: "gtid_list",
                offset: 4,
                needed: count.saturating_mul(16),
                available: c.remaining(),
            });
        }
        let mut gtids = Vec::with_capacity(count);
        for _ in 0..count {
            gtids.push(MariaGtid {
                domain: c.u32("domain_id")?,
                server: c.u32("server_id")?,
                seq: c.u64("seq_no")?,
            });
        }
        Ok(GtidListEvent { flags, gtids })
    }
}

/// The oldest binlog file that crash recovery needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BinlogCheckpointEvent<'a> {
    /// The file name.
    #[serde(serialize_with = "ser_text")]
    pub file: &'a [u8],
}

impl<'a> BinlogCheckpointEvent<'a> {
    /// Decodes a BINLOG_CHECKPOINT body.
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body);
        let n = c.u32("binlog_file_len")?;
        let file = c.take(usize::try_from(n).unwrap_or(usize::MAX), "binlog_file")?;
        Ok(BinlogCheckpointEvent { file })
    }
}
