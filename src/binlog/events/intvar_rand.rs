//! INTVAR (type 5) and RAND (type 13): session values a statement-format
//! Query needs to run the same way on the replica.

use serde::Serialize;

use crate::binlog::cursor::Cursor;
use crate::binlog::error::DecodeError;

/// `LAST_INSERT_ID()` (kind 1) or the next `INSERT_ID` (kind 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IntvarEvent {
    /// 1 = LAST_INSERT_ID, 2 = INSERT_ID.
    pub kind: u8,
    /// The value.
    pub value: u64,
}

impl IntvarEvent {
    /// Decodes an INTVAR body: kind u8, value u64.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body);
        Ok(IntvarEvent {
            kind: c.u8("type")?,
            value: c.u64("value")?,
        })
    }
}

/// The two seeds of `RAND()` at the statement's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RandEvent {
    /// `rand_seed1`.
    pub seed1: u64,
    /// `rand_seed2`.
    pub seed2: u64,
}

impl RandEvent {
    /// Decodes a RAND body: seed1 u64, seed2 u64.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body);
        Ok(RandEvent {
            seed1: c.u64("seed1")?,
            seed2: c.u64("seed2")?,
        })
    }
}
