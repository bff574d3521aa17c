//! XA_PREPARE (type 38): ends the prepare part of an XA transaction.
//!
//! Body: one_phase u8, formatID u32, gtrid length u32, bqual length u32,
//! then the gtrid and bqual bytes (each at most 64).

use serde::Serialize;

use super::ser_text;
use crate::binlog::cursor::Cursor;
use crate::binlog::error::DecodeError;

const XIDDATASIZE: u32 = 128;

/// A decoded XA_PREPARE event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XaPrepareEvent<'a> {
    /// `XA COMMIT … ONE PHASE`.
    pub one_phase: bool,
    /// XA format id.
    pub format_id: u32,
    /// Global transaction id part.
    #[serde(serialize_with = "ser_text")]
    pub gtrid: &'a [u8],
    /// Branch qualifier part.
    #[serde(serialize_with = "ser_text")]
    pub bqual: &'a [u8],
}

impl<'a> XaPrepareEvent<'a> {
    /// Decodes an XA_PREPARE body.
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body);
        let one_phase = c.u8("one_phase")? != 0;
        let format_id = c.u32("formatID")?;
        let gl = c.u32("gtrid_length")?;
        let bl = c.u32("bqual_length")?;
        if gl.saturating_add(bl) > XIDDATASIZE {
            return Err(DecodeError::Invalid {
                field: "xid",
                offset: 5,
                what: format!("gtrid {gl} + bqual {bl} bytes exceed {XIDDATASIZE}"),
            });
        }
        let gtrid = c.take(usize::try_from(gl).unwrap_or(usize::MAX), "gtrid")?;
        let bqual = c.take(usize::try_from(bl).unwrap_or(usize::MAX), "bqual")?;
        Ok(XaPrepareEvent {
            one_phase,
            format_id,
            gtrid,
            bqual,
        })
    }
}
