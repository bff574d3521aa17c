//! TABLE_MAP (type 19): binds a table id to `db.table` and its column types
//! for the Rows events that follow in the same group.
//!
//! Post-header: table id (6 bytes; 4 in the 5.1.0–5.1.15 layout whose
//! post-header is 6 bytes long), flags u16. Body: db length u8, db, NUL,
//! table length u8, table, NUL, column count (length-encoded), one type byte
//! per column, metadata length (length-encoded) and metadata, the
//! NULL-ability bitmap, then optional metadata (MySQL 8 / MariaDB 10.5
//! `binlog_row_metadata`) kept raw.

use serde::Serialize;

use super::ser_text;
use crate::binlog::cursor::Cursor;
use crate::binlog::error::DecodeError;

/// A decoded TABLE_MAP event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableMapEvent<'a> {
    /// Table id the Rows events refer to.
    pub table_id: u64,
    /// Flags.
    pub flags: u16,
    /// Database name.
    #[serde(serialize_with = "ser_text")]
    pub db: &'a [u8],
    /// Table name.
    #[serde(serialize_with = "ser_text")]
    pub table: &'a [u8],
    /// One `MYSQL_TYPE_*` code per column.
    pub column_types: &'a [u8],
    /// Type metadata, per column as [`TableMapEvent::column_metadata`] splits it.
    #[serde(skip)]
    pub metadata: &'a [u8],
    /// Bit i set: column i may be NULL.
    #[serde(skip)]
    pub null_bitmap: &'a [u8],
    /// Optional metadata TLVs (column names, signedness, charsets…), raw.
    #[serde(serialize_with = "super::ser_len")]
    pub optional_metadata: &'a [u8],
}

impl<'a> TableMapEvent<'a> {
    /// Decodes a TABLE_MAP body; `post_header_len` from the FDE (8, or 6).
    pub fn decode(body: &'a [u8], post_header_len: usize) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body);
        let table_id = c.table_id(post_header_len)?;
        let flags = c.u16("flags")?;
        if post_header_len > 8 {
            c.skip(post_header_len - 8, "post_header")?;
        }
        let db_len = c.u8("db_len")?;
        let db = c.str_nul_terminated_len(usize::from(db_len), "db")?;
        let t_len = c.u8("table_len")?;
        let table = c.str_nul_terminated_len(usize::from(t_len), "table")?;
        let ncols = c.lenenc_len("column_count")?;
        let column_types = c.take(ncols, "column_types")?;
        let mlen = c.lenenc_len("metadata_len")?;
        let metadata = c.take(mlen, "metadata")?;
        let null_bitmap = c.take(ncols.div_ceil(8), "null_bitmap")?;
        let optional_metadata = c.rest();
        Ok(TableMapEvent {
            table_id,
            flags,
            db,
            table,
            column_types,
            metadata,
            null_bitmap,
            optional_metadata,
        })
    }

    /// The metadata of each column, as the server packs it per type
    /// (0, 1 or 2 bytes; two bytes read little-endian except for the
    /// string types, which store `real_type`, `length` in that order).
    pub fn column_metadata(&self) -> Result<Vec<u16>, DecodeError> {
        let mut c = Cursor::new(self.metadata);
        self.column_types
            .iter()
            .map(|&t| {
                Ok(match t {
                    // FLOAT, DOUBLE, BLOBs, GEOMETRY, JSON, TIMESTAMP2, DATETIME2, TIME2
                    4 | 5 | 249..=252 | 255 | 245 | 17..=19 => u16::from(c.u8("metadata")?),
                    // VARCHAR, VAR_STRING, BIT: two bytes little-endian
                    15 | 253 | 16 => c.u16("metadata")?,
                    // NEWDECIMAL (precision, scale), STRING/ENUM/SET (real type, length)
                    246 | 254 | 247 | 248 => {
                        let hi = c.u8("metadata")?;
                        let lo = c.u8("metadata")?;
                        (u16::from(hi) << 8) | u16::from(lo)
                    }
                    _ => 0,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_names_types_and_metadata() {
        let mut b = vec![0x2a, 0, 0, 0, 0, 0, 1, 0];
        b.extend_from_slice(b"\x04shop\0\x05items\0");
        b.push(3); // columns
        b.extend_from_slice(&[3, 15, 246]); // LONG, VARCHAR, NEWDECIMAL
        b.push(4);
        b.extend_from_slice(&[0xc8, 0x00, 10, 2]);
        b.push(0b110);
        let t = TableMapEvent::decode(&b, 8).unwrap();
        assert_eq!(
            (t.table_id, t.db, t.table),
            (42, &b"shop"[..], &b"items"[..])
        );
        assert_eq!(t.column_metadata().unwrap(), vec![0, 200, (10 << 8) | 2]);
        // A column count larger than the event is an error.
        let mut bad = b.clone();
        bad[20] = 250;
        assert!(TableMapEvent::decode(&bad, 8).is_err());
    }
}
