//! A bounds-checked little-endian reader over an event body.
//!
//! Every length read from the wire is checked against the bytes that are
//! actually there before anything is sliced or allocated, so a corrupt length
//! field yields a [`DecodeError`] instead of a panic or a huge allocation.

use super::error::DecodeError;

/// Reads fields from a byte slice, front to back, without copying.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, at: 0 }
    }

    /// Offset of the next byte to read.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }

    /// The unread rest, consuming it.
    pub fn rest(&mut self) -> &'a [u8] {
        let r = &self.buf[self.at..];
        self.at = self.buf.len();
        r
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Short {
                field,
                offset: self.at,
                needed: n,
                available: self.remaining(),
            });
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize, field: &'static str) -> Result<(), DecodeError> {
        self.take(n, field).map(|_| ())
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Little-endian u16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    /// Little-endian 3-byte unsigned.
    pub fn u24(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.array::<3>(field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    /// Little-endian u32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    /// Little-endian 6-byte unsigned (table ids).
    pub fn u48(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let b = self.array::<6>(field)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], 0, 0,
        ]))
    }

    /// A table id: 6 bytes, or 4 in the old (5.1.0–5.1.15) layout whose
    /// post-header is 6 bytes long.
    pub fn table_id(&mut self, post_header_len: usize) -> Result<u64, DecodeError> {
        if post_header_len == 6 {
            Ok(u64::from(self.u32("table_id")?))
        } else {
            self.u48("table_id")
        }
    }

    /// Little-endian u64.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// Big-endian u64 (MySQL's GTID tag lengths and similar are not; uuids are bytes).
    pub fn bytes16(&mut self, field: &'static str) -> Result<[u8; 16], DecodeError> {
        self.array(field)
    }

    /// MySQL length-encoded integer (`net_field_length`).
    pub fn lenenc(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let first = self.u8(field)?;
        match first {
            0..=250 => Ok(u64::from(first)),
            252 => Ok(u64::from(self.u16(field)?)),
            253 => Ok(u64::from(self.u24(field)?)),
            254 => self.u64(field),
            _ => Err(DecodeError::Invalid {
                field,
                offset: self.at - 1,
                what: format!("length-encoded integer starts with {first:#x}"),
            }),
        }
    }

    /// A length-encoded integer used as a length: checked against what remains.
    pub fn lenenc_len(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let at = self.at;
        let n = self.lenenc(field)?;
        let remaining = self.remaining();
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= remaining)
            .ok_or(DecodeError::Short {
                field,
                offset: at,
                needed: usize::try_from(n).unwrap_or(usize::MAX),
                available: remaining,
            })
    }

    /// `len` bytes followed by a NUL that is checked and consumed.
    pub fn str_nul_terminated_len(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let s = self.take(len, field)?;
        let at = self.at;
        if self.u8(field)? != 0 {
            return Err(DecodeError::Invalid {
                field,
                offset: at,
                what: "missing NUL terminator".into(),
            });
        }
        Ok(s)
    }

    /// Bytes up to (not including) the next NUL; the NUL is consumed.
    pub fn str_nul(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let rest = &self.buf[self.at..];
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Invalid {
                field,
                offset: self.at,
                what: "no NUL terminator".into(),
            })?;
        let s = &rest[..n];
        self.at += n + 1;
        Ok(s)
    }

    /// A string prefixed by its one-byte length.
    pub fn str_u8(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.u8(field)?;
        self.take(usize::from(n), field)
    }
}
