//! Format_description event (type 15): describes the events that follow.
//!
//! Body: binlog version u16, server version (50 bytes, NUL padded), creation
//! timestamp u32, common header length u8, then one post-header length per
//! event type. Servers that know checksums (MariaDB ≥ 5.3, MySQL ≥ 5.6.1)
//! append the checksum algorithm (1 byte); the 4 bytes after it are the
//! event's own checksum, present whatever the algorithm.

use serde::Serialize;

use crate::binlog::constants::{
    EventType, CHECKSUM_ALG_CRC32, CHECKSUM_ALG_OFF, CHECKSUM_ALG_UNDEF, CHECKSUM_LEN, HEADER_LEN,
};
use crate::binlog::cursor::Cursor;
use crate::binlog::error::DecodeError;

const SERVER_VERSION_LEN: usize = 50;

/// The description of a binlog's format, from its Format_description event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FormatDescription {
    /// Binlog format version; 4 for every server since MySQL 5.0.
    pub binlog_version: u16,
    /// Version string of the server that wrote the file.
    pub server_version: String,
    /// Creation time (0 unless written at server start).
    pub create_timestamp: u32,
    /// Common header length (19 for v4).
    pub header_len: u8,
    /// Post-header length of each event type, indexed by `type_code - 1`.
    #[serde(skip)]
    pub post_header_lens: Vec<u8>,
    /// Checksum algorithm: 0 off, 1 CRC32, 255 undefined (pre-checksum server).
    pub checksum_alg: u8,
    /// The whole event as read (header, body, checksum): workers replay it
    /// with `BINLOG` before any row event. Empty when decoded from a body alone.
    #[serde(skip)]
    pub raw_event: Vec<u8>,
}

impl FormatDescription {
    /// Decodes a Format_description body. `body` is everything after the
    /// common header, *including* the trailing checksum bytes (their presence
    /// is only known once the server version has been read).
    pub fn decode(body_with_checksum: &[u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body_with_checksum);
        let binlog_version = c.u16("binlog_version")?;
        let version = c.take(SERVER_VERSION_LEN, "server_version")?;
        let end = version
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(version.len());
        let server_version = String::from_utf8_lossy(&version[..end]).into_owned();
        let create_timestamp = c.u32("create_timestamp")?;
        let header_len = c.u8("header_len")?;
        if usize::from(header_len) != HEADER_LEN {
            return Err(DecodeError::Invalid {
                field: "header_len",
                offset: c.offset() - 1,
                what: format!("common header length {header_len}, only v4 (19) is supported"),
            });
        }
        let rest = c.rest();
        let (post_header_lens, checksum_alg) = if checksum_aware(&server_version) {
            if rest.len() < 1 + CHECKSUM_LEN {
                return Err(DecodeError::Short {
                    field: "checksum_alg",
                    offset: body_with_checksum.len() - rest.len(),
                    needed: 1 + CHECKSUM_LEN,
                    available: rest.len(),
                });
            }
            let n = rest.len() - 1 - CHECKSUM_LEN;
            (rest[..n].to_vec(), rest[n])
        } else {
            (rest.to_vec(), CHECKSUM_ALG_UNDEF)
        };
        if !matches!(
            checksum_alg,
            CHECKSUM_ALG_OFF | CHECKSUM_ALG_CRC32 | CHECKSUM_ALG_UNDEF
        ) {
            return Err(DecodeError::Invalid {
                field: "checksum_alg",
                offset: body_with_checksum.len() - 1 - CHECKSUM_LEN,
                what: format!("unknown checksum algorithm {checksum_alg}"),
            });
        }
        Ok(FormatDescription {
            binlog_version,
            server_version,
            create_timestamp,
            header_len,
            post_header_lens,
            checksum_alg,
            raw_event: Vec::new(),
        })
    }

    /// Whether every event described by this FDE ends with a CRC32.
    pub fn has_crc32(&self) -> bool {
        self.checksum_alg == CHECKSUM_ALG_CRC32
    }

    /// Bytes of checksum at the end of this FDE event itself.
    pub fn own_checksum_len(&self) -> usize {
        if self.checksum_alg == CHECKSUM_ALG_UNDEF {
            0
        } else {
            CHECKSUM_LEN
        }
    }

    /// Bytes of checksum at the end of each following event.
    pub fn checksum_len(&self) -> usize {
        if self.has_crc32() {
            CHECKSUM_LEN
        } else {
            0
        }
    }

    /// Post-header length the writer declared for `t`, if it declared one.
    pub fn post_header_len(&self, t: EventType) -> Option<usize> {
        let i = usize::from(t.0).checked_sub(1)?;
        self.post_header_lens.get(i).map(|&n| usize::from(n))
    }

    /// Whether the writer was a MariaDB server.
    pub fn is_mariadb(&self) -> bool {
        self.server_version.contains("MariaDB")
    }
}

/// Whether a server of this version writes the checksum algorithm byte.
fn checksum_aware(version: &str) -> bool {
    let v = version_triple(version);
    if version.contains("MariaDB") {
        v >= (5, 3, 0)
    } else {
        v >= (5, 6, 1)
    }
}

/// The leading `X.Y.Z` of a version string; missing parts are 0.
fn version_triple(version: &str) -> (u32, u32, u32) {
    let mut nums = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (
        nums.next().unwrap_or(0),
        nums.next().unwrap_or(0),
        nums.next().unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_rules() {
        assert_eq!(
            version_triple("10.11.19-MariaDB-0+deb12u1-log"),
            (10, 11, 19)
        );
        assert!(checksum_aware("10.11.19-MariaDB-log"));
        assert!(checksum_aware("5.6.1-log"));
        assert!(!checksum_aware("5.6.0"));
        assert!(!checksum_aware("5.1.23-rc-debug-log"));
        assert!(checksum_aware("8.0.31"));
    }
}
