//! The row images of a Rows event, cut into column values.
//!
//! Workers replay Rows events verbatim; this split is for the scheduler,
//! which hashes the key columns' values (`--shard-by key`). A value is the
//! column's bytes as the image stores them, without a length prefix: equal
//! values of one column type and metadata have equal bytes (integers,
//! temporal types, DECIMAL, BIT, ENUM, SET and binary strings; text whose
//! collation is not a binary one is equal on more than its bytes, which the
//! caller must allow for).
//!
//! Layout (v1 and v2 alike, after the post-header and v2's extra data):
//! column count (length-encoded), the columns-present bitmap, for an
//! Update_rows event a second one for the after image, then the rows: each
//! image is a NULL bitmap over its present columns, then the values of the
//! present, non-NULL columns in column order, each sized by its type and
//! the Table_map's metadata. An Update_rows row is a before image followed
//! by an after image.

use crate::binlog::cursor::Cursor;
use crate::binlog::error::DecodeError;

use super::{RowsEvent, RowsKind, TableMapEvent};

/// One column of one row image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnValue<'a> {
    /// The image leaves the column out (`binlog_row_image=MINIMAL`/`NOBLOB`).
    Absent,
    /// SQL NULL.
    Null,
    /// The stored bytes, without a length prefix.
    Value(&'a [u8]),
}

fn invalid(field: &'static str, offset: usize, what: String) -> DecodeError {
    DecodeError::Invalid {
        field,
        offset,
        what,
    }
}

/// Bytes of a packed DECIMAL(precision, scale).
fn decimal_size(precision: usize, scale: usize) -> usize {
    const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
    let intg = precision.saturating_sub(scale);
    (intg / 9) * 4 + DIG2BYTES[intg % 9] + (scale / 9) * 4 + DIG2BYTES[scale % 9]
}

/// Little-endian unsigned integer of `n` bytes (1–4).
fn length_prefix(c: &mut Cursor<'_>, n: usize) -> Result<usize, DecodeError> {
    Ok(match n {
        1 => usize::from(c.u8("length")?),
        2 => usize::from(c.u16("length")?),
        3 => c.u24("length")? as usize,
        4 => c.u32("length")? as usize,
        other => {
            return Err(invalid(
                "metadata",
                c.offset(),
                format!("a length of {other} bytes"),
            ))
        }
    })
}

/// Reads one value of column type `t` with metadata `meta` (as
/// [`TableMapEvent::column_metadata`] returns it).
fn value<'a>(c: &mut Cursor<'a>, t: u8, meta: u16) -> Result<&'a [u8], DecodeError> {
    let fixed = |c: &mut Cursor<'a>, n: usize| c.take(n, "value");
    let lo = usize::from(meta & 0xff);
    let hi = usize::from(meta >> 8);
    match t {
        1 | 13 => fixed(c, 1),                    // TINY, YEAR
        2 => fixed(c, 2),                         // SHORT
        9 | 10 | 14 | 11 => fixed(c, 3),          // INT24, DATE, NEWDATE, TIME
        3 | 7 => fixed(c, 4),                     // LONG, TIMESTAMP
        8 | 12 => fixed(c, 8),                    // LONGLONG, DATETIME
        6 => fixed(c, 0),                         // NULL
        4 | 5 => fixed(c, lo.max(4)),             // FLOAT, DOUBLE: 4 or 8
        17 => fixed(c, 4 + lo.div_ceil(2)),       // TIMESTAMP2
        18 => fixed(c, 5 + lo.div_ceil(2)),       // DATETIME2
        19 => fixed(c, 3 + lo.div_ceil(2)),       // TIME2
        16 => fixed(c, hi + usize::from(lo > 0)), // BIT: bytes, then bits % 8
        246 => fixed(c, decimal_size(hi, lo)),    // NEWDECIMAL (precision, scale)
        247 | 248 => fixed(c, lo),                // ENUM, SET: their pack length
        15 | 253 => {
            // VARCHAR, VAR_STRING: one length byte below 256 bytes, else two.
            let n = length_prefix(c, if meta < 256 { 1 } else { 2 })?;
            c.take(n, "value")
        }
        249..=252 | 255 | 245 => {
            // BLOBs, GEOMETRY, JSON: a length of `meta` bytes.
            let n = length_prefix(c, lo)?;
            c.take(n, "value")
        }
        254 => {
            // STRING: (real type, length), the length's high bits folded
            // into the real type's byte.
            let (real, len) = if (hi & 0x30) != 0x30 {
                (hi | 0x30, lo | (((hi & 0x30) ^ 0x30) << 4))
            } else {
                (hi, lo)
            };
            match real {
                247 | 248 => fixed(c, len),
                _ => {
                    let n = length_prefix(c, if len < 256 { 1 } else { 2 })?;
                    c.take(n, "value")
                }
            }
        }
        other => Err(invalid(
            "column_type",
            c.offset(),
            format!("type {other} cannot be sized"),
        )),
    }
}

fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// One image: the NULL bitmap over the present columns, then the values.
fn image<'a>(
    c: &mut Cursor<'a>,
    tm: &TableMapEvent<'_>,
    meta: &[u16],
    present: &[u8],
) -> Result<Vec<ColumnValue<'a>>, DecodeError> {
    let n = tm.column_types.len();
    let count = (0..n).filter(|&i| bit(present, i)).count();
    let nulls = c.take(count.div_ceil(8), "null_bitmap")?;
    let mut out = Vec::with_capacity(n);
    let mut k = 0;
    for (i, (&t, &m)) in tm.column_types.iter().zip(meta).enumerate() {
        if !bit(present, i) {
            out.push(ColumnValue::Absent);
            continue;
        }
        let null = bit(nulls, k);
        k += 1;
        out.push(if null {
            ColumnValue::Null
        } else {
            ColumnValue::Value(value(c, t, m)?)
        });
    }
    Ok(out)
}

impl<'a> RowsEvent<'a> {
    /// Every row image of the event (an update's before image, then its
    /// after image, row after row), each with one value per column of
    /// `tm`, the Table_map of its table. A compressed event, a column count
    /// that differs from the Table_map's, or a value that runs past the
    /// event is an error.
    pub fn images(&self, tm: &TableMapEvent<'_>) -> Result<Vec<Vec<ColumnValue<'a>>>, DecodeError> {
        if self.compressed {
            return Err(invalid(
                "rows",
                0,
                "compressed row images are not split".into(),
            ));
        }
        let meta = tm.column_metadata()?;
        let mut c = Cursor::new(self.rows);
        let n = c.lenenc_len("column_count")?;
        if n != tm.column_types.len() {
            return Err(invalid(
                "column_count",
                0,
                format!(
                    "{n} columns, but the Table_map has {}",
                    tm.column_types.len()
                ),
            ));
        }
        let before = c.take(n.div_ceil(8), "columns_present")?;
        let after = match self.kind {
            RowsKind::Update => c.take(n.div_ceil(8), "columns_present_after")?,
            _ => before,
        };
        let mut out = Vec::new();
        while c.remaining() > 0 {
            out.push(image(&mut c, tm, &meta, before)?);
            if self.kind == RowsKind::Update {
                out.push(image(&mut c, tm, &meta, after)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::constants::EventType;

    fn table_map(types: &[u8], meta: &[u8]) -> Vec<u8> {
        let mut b = vec![7, 0, 0, 0, 0, 0, 1, 0];
        b.extend_from_slice(b"\x01d\0\x01t\0");
        b.push(types.len() as u8);
        b.extend_from_slice(types);
        b.push(meta.len() as u8);
        b.extend_from_slice(meta);
        b.push(0xff);
        b
    }

    #[test]
    fn splits_write_and_update_images() {
        // INT, VARCHAR(10), DECIMAL(10,2), CHAR(4)
        let tm_bytes = table_map(&[3, 15, 246, 254], &[10, 0, 10, 2, 254, 4]);
        let tm = TableMapEvent::decode(&tm_bytes, 8).unwrap();
        let mut w = vec![7, 0, 0, 0, 0, 0, 0, 0, 4, 0b1111];
        // Row: no NULLs; 5; "ab"; decimal (5 bytes for 10,2); "xy"
        w.push(0);
        w.extend_from_slice(&5u32.to_le_bytes());
        w.extend_from_slice(b"\x02ab");
        w.extend_from_slice(&[0x80, 0, 0, 1, 2]);
        w.extend_from_slice(b"\x02xy");
        // Row: column 1 NULL
        w.push(0b10);
        w.extend_from_slice(&6u32.to_le_bytes());
        w.extend_from_slice(&[0x80, 0, 0, 1, 3]);
        w.extend_from_slice(b"\x00");
        let ev = RowsEvent::decode(&w, EventType(23), 8).unwrap();
        let images = ev.images(&tm).unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(images[0][0], ColumnValue::Value(&5u32.to_le_bytes()[..]));
        assert_eq!(images[0][1], ColumnValue::Value(&b"ab"[..]));
        assert_eq!(images[0][3], ColumnValue::Value(&b"xy"[..]));
        assert_eq!(images[1][1], ColumnValue::Null);
        assert_eq!(images[1][3], ColumnValue::Value(&b""[..]));

        // Update with a minimal before image (column 0 only).
        let mut u = vec![7, 0, 0, 0, 0, 0, 0, 0, 4, 0b0001, 0b1111];
        u.push(0);
        u.extend_from_slice(&5u32.to_le_bytes());
        u.push(0b1110);
        u.extend_from_slice(&9u32.to_le_bytes());
        let ev = RowsEvent::decode(&u, EventType(24), 8).unwrap();
        let images = ev.images(&tm).unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(images[0][1], ColumnValue::Absent);
        assert_eq!(images[1][0], ColumnValue::Value(&9u32.to_le_bytes()[..]));
        assert_eq!(images[1][2], ColumnValue::Null);

        // Truncated: an error, not a panic.
        let ev = RowsEvent::decode(&w[..w.len() - 3], EventType(23), 8).unwrap();
        assert!(ev.images(&tm).is_err());
    }

    #[test]
    fn decimal_sizes() {
        assert_eq!(decimal_size(10, 2), 5);
        assert_eq!(decimal_size(18, 9), 8);
        assert_eq!(decimal_size(65, 30), 30);
    }
}
