//! Small events: XID, ROTATE, ANNOTATE_ROWS, HEARTBEAT, TRANSACTION_PAYLOAD.

use serde::Serialize;

use super::ser_text;
use crate::binlog::cursor::Cursor;
use crate::binlog::error::DecodeError;

/// XID (type 16): commits a transaction of a transactional engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct XidEvent {
    /// The server's internal transaction id.
    pub xid: u64,
}

impl XidEvent {
    /// Decodes an XID body: xid u64.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        Ok(XidEvent {
            xid: Cursor::new(body).u64("xid")?,
        })
    }
}

/// ROTATE (type 4): the stream continues in another file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotateEvent<'a> {
    /// Position in the next file where the stream continues (4).
    pub position: u64,
    /// Name of the next file.
    #[serde(serialize_with = "ser_text")]
    pub next_file: &'a [u8],
}

impl<'a> RotateEvent<'a> {
    /// Decodes a ROTATE body: position u64 (post-header), then the name.
    pub fn decode(body: &'a [u8], post_header_len: usize) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body);
        let position = if post_header_len >= 8 {
            let p = c.u64("position")?;
            c.skip(post_header_len - 8, "post_header")?;
            p
        } else {
            4
        };
        Ok(RotateEvent {
            position,
            next_file: c.rest(),
        })
    }
}

/// ANNOTATE_ROWS (type 160): the SQL text of the statement whose row
/// events follow (informational).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnotateRowsEvent<'a> {
    /// The statement text.
    #[serde(serialize_with = "ser_text")]
    pub query: &'a [u8],
}

/// HEARTBEAT (type 27): sent by a primary when idle; never in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeartbeatEvent<'a> {
    /// The primary's current binlog file.
    #[serde(serialize_with = "ser_text")]
    pub file: &'a [u8],
}

/// TRANSACTION_PAYLOAD (type 40, MySQL 8.0.20+): a whole transaction,
/// compressed. Body: fields of (type, length, value), each a length-encoded
/// integer, until type 0; then the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransactionPayloadEvent<'a> {
    /// 0 = zstd, 255 = none.
    pub compression_type: u64,
    /// Size of the payload after decompression.
    pub uncompressed_size: u64,
    /// The (compressed) payload.
    #[serde(serialize_with = "super::ser_len")]
    pub payload: &'a [u8],
}

impl<'a> TransactionPayloadEvent<'a> {
    /// Decodes a TRANSACTION_PAYLOAD body.
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body);
        let mut compression_type = 255;
        let mut uncompressed_size = 0;
        let mut payload_size = None;
        loop {
            let field = c.lenenc("field_type")?;
            if field == 0 {
                break;
            }
            let len = c.lenenc_len("field_length")?;
            let value = c.take(len, "field_value")?;
            let v = Cursor::new(value).lenenc("field_value")?;
            match field {
                1 => payload_size = Some(v),
                2 => compression_type = v,
                3 => uncompressed_size = v,
                _ => {}
            }
        }
        let payload = c.rest();
        if let Some(n) = payload_size {
            if n != payload.len() as u64 {
                return Err(DecodeError::Invalid {
                    field: "payload_size",
                    offset: c.offset(),
                    what: format!("declared {n} bytes, {} present", payload.len()),
                });
            }
        }
        Ok(TransactionPayloadEvent {
            compression_type,
            uncompressed_size,
            payload,
        })
    }
}
