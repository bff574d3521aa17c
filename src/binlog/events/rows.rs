//! Rows events: WRITE/UPDATE/DELETE_ROWS v1 (23–25), v2 (30–32, MySQL),
//! MariaDB's compressed forms (166–171) and MySQL's partial update (39).
//!
//! Post-header: table id (6 bytes; 4 in the old 6-byte layout), flags u16;
//! v2 adds the extra-data length u16 (counting itself) and the extra data.
//! The body — column count, column bitmaps and the row images — stays raw:
//! workers replay the whole event with `BINLOG`.

use serde::Serialize;

use crate::binlog::constants::{rows_flags, EventType};
use crate::binlog::cursor::Cursor;
use crate::binlog::error::DecodeError;

/// Which change a Rows event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowsKind {
    /// Inserted rows (after images).
    Write,
    /// Updated rows (before and after images).
    Update,
    /// Deleted rows (before images).
    Delete,
}

/// A decoded Rows event header; the row data stays raw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowsEvent<'a> {
    /// Insert, update or delete.
    pub kind: RowsKind,
    /// 1 or 2 (v2 carries extra data).
    pub version: u8,
    /// The body is compressed (MariaDB `log_bin_compress`).
    pub compressed: bool,
    /// Table id of the Table_map this event refers to.
    pub table_id: u64,
    /// Flags; see [`rows_flags`].
    pub flags: u16,
    /// v2 extra data, raw.
    #[serde(serialize_with = "super::ser_len")]
    pub extra_data: &'a [u8],
    /// Column count, bitmaps and row images, raw.
    #[serde(serialize_with = "super::ser_len")]
    pub rows: &'a [u8],
}

impl<'a> RowsEvent<'a> {
    /// Decodes the header of a Rows event of type `t`.
    pub fn decode(
        body: &'a [u8],
        t: EventType,
        post_header_len: usize,
    ) -> Result<Self, DecodeError> {
        let (kind, version, compressed) = match t.0 {
            20 | 23 => (RowsKind::Write, 1, false),
            21 | 24 => (RowsKind::Update, 1, false),
            22 | 25 => (RowsKind::Delete, 1, false),
            30 => (RowsKind::Write, 2, false),
            31 | 39 => (RowsKind::Update, 2, false),
            32 => (RowsKind::Delete, 2, false),
            166 => (RowsKind::Write, 1, true),
            167 => (RowsKind::Update, 1, true),
            168 => (RowsKind::Delete, 1, true),
            169 => (RowsKind::Write, 2, true),
            170 => (RowsKind::Update, 2, true),
            171 => (RowsKind::Delete, 2, true),
            other => {
                return Err(DecodeError::Invalid {
                    field: "type_code",
                    offset: 0,
                    what: format!("{other} is not a Rows event"),
                })
            }
        };
        let mut c = Cursor::new(body);
        let table_id = c.table_id(post_header_len)?;
        let flags = c.u16("flags")?;
        let mut extra_data: &[u8] = &[];
        if version == 2 && post_header_len >= 10 {
            let n = c.u16("extra_data_len")?;
            let n = usize::from(n).checked_sub(2).ok_or(DecodeError::Invalid {
                field: "extra_data_len",
                offset: 8,
                what: format!("{n} is less than its own 2 bytes"),
            })?;
            extra_data = c.take(n, "extra_data")?;
        }
        Ok(RowsEvent {
            kind,
            version,
            compressed,
            table_id,
            flags,
            extra_data,
            rows: c.rest(),
        })
    }

    /// The last Rows event of its statement.
    pub fn stmt_end(&self) -> bool {
        self.flags & rows_flags::STMT_END != 0
    }
}
