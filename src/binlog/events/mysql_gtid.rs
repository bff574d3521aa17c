//! MySQL's GTID (33) and ANONYMOUS_GTID (34) events, and PREVIOUS_GTIDS (35).
//!
//! GTID body: flags u8 (1 = may commit in parallel), source uuid (16 bytes),
//! gno u64; since 5.7 a logical-clock part: type byte (2), last_committed
//! u64, sequence_number u64; since 8.0 commit timestamps, transaction length
//! and server versions, kept raw here.
//!
//! PREVIOUS_GTIDS body: number of uuids u64 (in 8.3+, the high byte is a
//! format code: 1 = tagged), then per uuid: uuid, interval count u64, and
//! `[start, end)` u64 pairs. The tagged form is kept raw.

use serde::Serialize;

use crate::binlog::cursor::Cursor;
use crate::binlog::error::DecodeError;
use crate::position::format_uuid;

/// A decoded MySQL GTID or anonymous GTID event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MySqlGtidEvent {
    /// Flags (1 = the transaction may commit in parallel with others).
    pub flags: u8,
    /// Source server uuid.
    #[serde(serialize_with = "ser_uuid")]
    pub sid: [u8; 16],
    /// Transaction number (0 for anonymous).
    pub gno: u64,
    /// Logical clock: the last transaction committed before this one prepared.
    pub last_committed: Option<u64>,
    /// Logical clock: this transaction's number.
    pub sequence_number: Option<u64>,
}

fn ser_uuid<S: serde::Serializer>(sid: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_uuid(sid))
}

impl MySqlGtidEvent {
    /// Decodes a MySQL GTID / ANONYMOUS_GTID body.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body);
        let flags = c.u8("flags")?;
        let sid = c.bytes16("sid")?;
        let gno = c.u64("gno")?;
        let (mut last_committed, mut sequence_number) = (None, None);
        if c.remaining() >= 17 && c.u8("lt_type")? == 2 {
            last_committed = Some(c.u64("last_committed")?);
            sequence_number = Some(c.u64("sequence_number")?);
        }
        Ok(MySqlGtidEvent {
            flags,
            sid,
            gno,
            last_committed,
            sequence_number,
        })
    }
}

/// The GTID set executed before this file (MySQL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviousGtidsEvent {
    /// The set as MySQL prints it (`uuid:1-5:7-9,uuid2:1-3`); `None` for the
    /// tagged (8.3+) encoding, which is kept raw.
    pub gtid_set: Option<String>,
}

impl PreviousGtidsEvent {
    /// Decodes a PREVIOUS_GTIDS body.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body);
        let raw = c.u64("n_sids")?;
        if raw >> 56 != 0 {
            return Ok(PreviousGtidsEvent { gtid_set: None });
        }
        let n = raw & 0x00ff_ffff_ffff_ffff;
        if n > (c.remaining() / 24) as u64 {
            return Err(DecodeError::Short {
                field: "n_sids",
                offset: 0,
                needed: usize::try_from(n).unwrap_or(usize::MAX).saturating_mul(24),
                available: c.remaining(),
            });
        }
        let mut parts = Vec::new();
        for _ in 0..n {
            let sid = c.bytes16("sid")?;
            let k = c.u64("n_intervals")?;
            if k > (c.remaining() / 16) as u64 {
                return Err(DecodeError::Short {
                    field: "n_intervals",
                    offset: c.offset() - 8,
                    needed: usize::try_from(k).unwrap_or(usize::MAX).saturating_mul(16),
                    available: c.remaining(),
                });
            }
            let mut s = format_uuid(&sid);
            for _ in 0..k {
                let start = c.u64("interval_start")?;
                let end = c.u64("interval_end")?;
                if end.saturating_sub(start) <= 1 {
                    s.push_str(&format!(":{start}"));
                } else {
                    s.push_str(&format!(":{start}-{}", end - 1));
                }
            }
            parts.push(s);
        }
        Ok(PreviousGtidsEvent {
            gtid_set: Some(parts.join(",")),
        })
    }
}
