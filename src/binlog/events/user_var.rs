//! USER_VAR (type 14): a user variable a statement-format Query reads.
//!
//! Body: name length u32, name, is_null u8; unless null: value type u8
//! (0 string, 1 real, 2 int, 3 row, 4 decimal), charset u32, value length
//! u32, value; then optionally a flags byte (1 = unsigned).

use serde::Serialize;

use super::ser_text;
use crate::binlog::cursor::Cursor;
use crate::binlog::error::DecodeError;

/// The value of a user variable, bytes as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserVarValue<'a> {
    /// 0 string, 1 real, 2 int, 3 row, 4 decimal.
    pub value_type: u8,
    /// Collation number of a string value.
    pub charset: u32,
    /// The value's bytes.
    #[serde(serialize_with = "super::ser_len")]
    pub value: &'a [u8],
    /// Flags (1 = unsigned integer), when written.
    pub flags: Option<u8>,
}

/// A decoded USER_VAR event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserVarEvent<'a> {
    /// Variable name without the `@`.
    #[serde(serialize_with = "ser_text")]
    pub name: &'a [u8],
    /// `None` when the variable is NULL.
    pub value: Option<UserVarValue<'a>>,
}

impl<'a> UserVarEvent<'a> {
    /// Decodes a USER_VAR body.
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body);
        let n = c.u32("name_length")?;
        let name = c.take(usize::try_from(n).unwrap_or(usize::MAX), "name")?;
        let is_null = c.u8("is_null")?;
        if is_null != 0 {
            return Ok(UserVarEvent { name, value: None });
        }
        let value_type = c.u8("value_type")?;
        let charset = c.u32("charset")?;
        let len = c.u32("value_length")?;
        let value = c.take(usize::try_from(len).unwrap_or(usize::MAX), "value")?;
        let flags = if c.remaining() > 0 {
            Some(c.u8("flags")?)
        } else {
            None
        };
        Ok(UserVarEvent {
            name,
            value: Some(UserVarValue {
                value_type,
                charset,
                value,
                flags,
            }),
        })
    }
}
