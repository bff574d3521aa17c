//! QUERY (type 2) and MariaDB's QUERY_COMPRESSED (type 165).
//!
//! Post-header (13 bytes in v4): thread id u32, execution time u32, default
//! db length u8, error code u16, status-variables length u16. Then the status
//! variables (a code byte each, then a value whose size the code implies),
//! the default db and a NUL, then the statement text. In QUERY_COMPRESSED the
//! text is compressed (see [`decompress`]).
//!
//! Status variables have no length of their own, so an unknown code cannot
//! be stepped over. Like the server, the decoder then skips the rest of the
//! status block (whose total length is known) and records the code in
//! [`QueryStatus::unknown_code`]; the event still decodes.

use std::borrow::Cow;
use std::io::Read;

use serde::Serialize;

use super::{ser_opt_text, ser_text};
use crate::binlog::constants::query_status as q;
use crate::binlog::cursor::Cursor;
use crate::binlog::error::DecodeError;

/// The databases a statement updated (MySQL's `Q_UPDATED_DB_NAMES`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdatedDbs<'a> {
    /// These databases (an empty name stands for "no database").
    Listed(#[serde(serialize_with = "ser_list")] Vec<&'a [u8]>),
    /// More than the server lists (`OVER_MAX_DBS_IN_EVENT_MTS`).
    TooMany,
}

fn ser_list<S: serde::Serializer>(v: &[&[u8]], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|b| String::from_utf8_lossy(b)))
}

/// The session context a Query event carries. Every field is `None` when the
/// server did not write it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueryStatus<'a> {
    /// `OPTION_*` bits of the session (autocommit, foreign/unique checks…).
    pub flags2: Option<u32>,
    /// `sql_mode` bits.
    pub sql_mode: Option<u64>,
    /// Catalog name (MySQL 5.0 only).
    #[serde(serialize_with = "ser_opt_text")]
    pub catalog: Option<&'a [u8]>,
    /// `auto_increment_increment`, `auto_increment_offset`.
    pub auto_increment: Option<(u16, u16)>,
    /// `character_set_client`, `collation_connection`, `collation_server`.
    pub charset: Option<(u16, u16, u16)>,
    /// `time_zone` name.
    #[serde(serialize_with = "ser_opt_text")]
    pub time_zone: Option<&'a [u8]>,
    /// `lc_time_names` number.
    pub lc_time_names: Option<u16>,
    /// `collation_database`.
    pub charset_database: Option<u16>,
    /// Bitmap of tables of a multi-table update.
    pub table_map_for_update: Option<u64>,
    /// Size written by a 4.x primary (relay logs).
    pub master_data_written: Option<u32>,
    /// Definer of a stored routine: user, host.
    #[serde(skip)]
    pub invoker: Option<(&'a [u8], &'a [u8])>,
    /// Databases the statement updated (MySQL).
    pub updated_db_names: Option<UpdatedDbs<'a>>,
    /// Microseconds of the statement's start (MySQL).
    pub microseconds: Option<u32>,
    /// `explicit_defaults_for_timestamp` (MySQL).
    pub explicit_defaults_for_timestamp: Option<u8>,
    /// Xid of a DDL logged with one (MySQL).
    pub ddl_logged_with_xid: Option<u64>,
    /// `default_collation_for_utf8mb4` (MySQL).
    pub default_collation_for_utf8mb4: Option<u16>,
    /// `sql_require_primary_key` (MySQL).
    pub sql_require_primary_key: Option<u8>,
    /// `default_table_encryption` (MySQL).
    pub default_table_encryption: Option<u8>,
    /// Microseconds of the statement's start (MariaDB).
    pub hrnow: Option<u32>,
    /// Xid of a DDL that carries one (MariaDB).
    pub xid: Option<u64>,
    /// The GTID's extra flags (MariaDB two-phase ALTER).
    pub gtid_flags3: Option<u8>,
    /// Start-alter seq_no of a commit/rollback ALTER (MariaDB).
    pub start_alter_seq_no: Option<u64>,
    /// Character-set → collation map (MariaDB 11), raw.
    #[serde(serialize_with = "ser_opt_len")]
    pub character_set_collations: Option<&'a [u8]>,
    /// The first unknown status code, after which the rest was skipped.
    pub unknown_code: Option<u8>,
}

fn ser_opt_len<S: serde::Serializer>(b: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
    match b {
        Some(b) => s.serialize_u64(b.len() as u64),
        None => s.serialize_none(),
    }
}

/// A decoded Query event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueryEvent<'a> {
    /// Thread id of the session on the primary (`pseudo_thread_id`).
    pub thread_id: u32,
    /// Seconds the statement ran on the primary.
    pub exec_time: u32,
    /// Error code the statement ended with on the primary (0 normally).
    pub error_code: u16,
    /// Session context.
    pub status: QueryStatus<'a>,
    /// Default database (`USE`), empty when none.
    #[serde(serialize_with = "ser_text")]
    pub db: &'a [u8],
    /// The statement text (decompressed for QUERY_COMPRESSED).
    #[serde(serialize_with = "ser_text")]
    pub query: Cow<'a, [u8]>,
}

impl<'a> QueryEvent<'a> {
    /// Decodes a Query body. `post_header_len` comes from the FDE (13 in v4).
    pub fn decode(
        body: &'a [u8],
        post_header_len: usize,
        compressed: bool,
    ) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body);
        let thread_id = c.u32("thread_id")?;
        let exec_time = c.u32("exec_time")?;
        let db_len = c.u8("db_len")?;
        let error_code = c.u16("error_code")?;
        let status_len = if post_header_len >= 13 {
            let n = c.u16("status_vars_len")?;
            c.skip(post_header_len - 13, "post_header")?;
            n
        } else {
            0
        };
        let status_block = c.take(usize::from(status_len), "status_vars")?;
        let status = decode_status(status_block, c.offset() - status_block.len())?;
        let db = c.str_nul_terminated_len(usize::from(db_len), "db")?;
        let text = c.rest();
        let query = if compressed {
            Cow::Owned(decompress(text, "query")?)
        } else {
            Cow::Borrowed(text)
        };
        Ok(QueryEvent {
            thread_id,
            exec_time,
            error_code,
            status,
            db,
            query,
        })
    }

    /// The statement with surrounding whitespace removed.
    pub fn sql(&self) -> &[u8] {
        self.query.trim_ascii()
    }

    /// `BEGIN` (or `START TRANSACTION`-style opening of a group).
    pub fn is_begin(&self) -> bool {
        self.sql().eq_ignore_ascii_case(b"BEGIN")
    }

    /// `COMMIT`: ends a group of non-transactional or mixed engines.
    pub fn is_commit(&self) -> bool {
        self.sql().eq_ignore_ascii_case(b"COMMIT")
    }

    /// `ROLLBACK` (not `ROLLBACK TO SAVEPOINT`): ends a group that was rolled back.
    pub fn is_rollback(&self) -> bool {
        self.sql().eq_ignore_ascii_case(b"ROLLBACK")
    }

    /// `XA START …`: opens the prepare part of an XA transaction.
    pub fn is_xa_start(&self) -> bool {
        starts_with_words(self.sql(), &[b"XA", b"START"])
            || starts_with_words(self.sql(), &[b"XA", b"BEGIN"])
    }
}

/// Whether `sql` starts with these words (ASCII case-insensitive, any spacing).
pub(crate) fn starts_with_words(sql: &[u8], words: &[&[u8]]) -> bool {
    let mut rest = sql;
    for w in words {
        rest = rest.trim_ascii_start();
        if rest.len() < w.len() || !rest[..w.len()].eq_ignore_ascii_case(w) {
            return false;
        }
        rest = &rest[w.len()..];
        if rest
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            return false;
        }
    }
    true
}

fn decode_status(block: &[u8], base: usize) -> Result<QueryStatus<'_>, DecodeError> {
    let mut c = Cursor::new(block);
    let mut s = QueryStatus::default();
    let shifted = |e: DecodeError| match e {
        DecodeError::Short {
            field,
            offset,
            needed,
            available,
        } => DecodeError::Short {
            field,
            offset: offset + base,
            needed,
            available,
        },
        DecodeError::Invalid {
            field,
            offset,
            what,
        } => DecodeError::Invalid {
            field,
            offset: offset + base,
            what,
        },
    };
    while c.remaining() > 0 {
        let code = c.u8("status code").map_err(shifted)?;
        let r: Result<(), DecodeError> = (|| {
            match code {
                q::FLAGS2 => s.flags2 = Some(c.u32("Q_FLAGS2")?),
                q::SQL_MODE => s.sql_mode = Some(c.u64("Q_SQL_MODE")?),
                q::CATALOG => {
                    let n = c.u8("Q_CATALOG")?;
                    s.catalog = Some(c.str_nul_terminated_len(usize::from(n), "Q_CATALOG")?);
                }
                q::AUTO_INCREMENT => {
                    s.auto_increment =
                        Some((c.u16("Q_AUTO_INCREMENT")?, c.u16("Q_AUTO_INCREMENT")?))
                }
                q::CHARSET => {
                    s.charset = Some((
                        c.u16("Q_CHARSET")?,
                        c.u16("Q_CHARSET")?,
                        c.u16("Q_CHARSET")?,
                    ))
                }
                q::TIME_ZONE => s.time_zone = Some(c.str_u8("Q_TIME_ZONE")?),
                q::CATALOG_NZ => s.catalog = Some(c.str_u8("Q_CATALOG_NZ")?),
                q::LC_TIME_NAMES => s.lc_time_names = Some(c.u16("Q_LC_TIME_NAMES")?),
                q::CHARSET_DATABASE => s.charset_database = Some(c.u16("Q_CHARSET_DATABASE")?),
                q::TABLE_MAP_FOR_UPDATE => {
                    s.table_map_for_update = Some(c.u64("Q_TABLE_MAP_FOR_UPDATE")?)
                }
                q::MASTER_DATA_WRITTEN => {
                    s.master_data_written = Some(c.u32("Q_MASTER_DATA_WRITTEN")?)
                }
                q::INVOKER => s.invoker = Some((c.str_u8("Q_INVOKER")?, c.str_u8("Q_INVOKER")?)),
                q::UPDATED_DB_NAMES => {
                    let n = c.u8("Q_UPDATED_DB_NAMES")?;
                    s.updated_db_names = Some(if n == q::OVER_MAX_DBS {
                        UpdatedDbs::TooMany
                    } else {
                        let mut dbs = Vec::with_capacity(usize::from(n));
                        for _ in 0..n {
                            dbs.push(c.str_nul("Q_UPDATED_DB_NAMES")?);
                        }
                        UpdatedDbs::Listed(dbs)
                    });
                }
                q::MICROSECONDS => s.microseconds = Some(c.u24("Q_MICROSECONDS")?),
                q::EXPLICIT_DEFAULTS_FOR_TIMESTAMP => {
                    s.explicit_defaults_for_timestamp =
                        Some(c.u8("Q_EXPLICIT_DEFAULTS_FOR_TIMESTAMP")?)
                }
                q::DDL_LOGGED_WITH_XID => {
                    s.ddl_logged_with_xid = Some(c.u64("Q_DDL_LOGGED_WITH_XID")?)
                }
                q::DEFAULT_COLLATION_FOR_UTF8MB4 => {
                    s.default_collation_for_utf8mb4 =
                        Some(c.u16("Q_DEFAULT_COLLATION_FOR_UTF8MB4")?)
                }
                q::SQL_REQUIRE_PRIMARY_KEY => {
                    s.sql_require_primary_key = Some(c.u8("Q_SQL_REQUIRE_PRIMARY_KEY")?)
                }
                q::DEFAULT_TABLE_ENCRYPTION => {
                    s.default_table_encryption = Some(c.u8("Q_DEFAULT_TABLE_ENCRYPTION")?)
                }
                q::HRNOW => s.hrnow = Some(c.u24("Q_HRNOW")?),
                q::XID => s.xid = Some(c.u64("Q_XID")?),
                q::GTID_FLAGS3 => {
                    let f = c.u8("Q_GTID_FLAGS3")?;
                    s.gtid_flags3 = Some(f);
                    if f & (crate::binlog::constants::gtid_flags_extra::COMMIT_ALTER
                        | crate::binlog::constants::gtid_flags_extra::ROLLBACK_ALTER)
                        != 0
                    {
                        s.start_alter_seq_no = Some(c.u64("Q_GTID_FLAGS3")?);
                    }
                }
                q::CHARACTER_SET_COLLATIONS => {
                    let start = c.offset();
                    let n = c.u8("Q_CHARACTER_SET_COLLATIONS")?;
                    c.skip(usize::from(n) * 4, "Q_CHARACTER_SET_COLLATIONS")?;
                    s.character_set_collations = Some(&block[start..c.offset()]);
                }
                other => {
                    s.unknown_code = Some(other);
                    c.rest();
                }
            }
            Ok(())
        })();
        r.map_err(shifted)?;
    }
    Ok(s)
}

/// Inflates MariaDB's compressed event payload (`log_bin_compress`).
///
/// Layout: one header byte `0b1AAA_0LLL` (A: algorithm, 0 = zlib; L: bytes of
/// the length), the uncompressed length big-endian in L bytes, then a zlib
/// stream. The length is checked against what actually inflates, and nothing
/// is allocated up front beyond what the input can produce.
pub fn decompress(data: &[u8], field: &'static str) -> Result<Vec<u8>, DecodeError> {
    let mut c = Cursor::new(data);
    let head = c.u8(field)?;
    if head & 0xe0 != 0x80 || (head >> 4) & 0x07 != 0 {
        return Err(DecodeError::Invalid {
            field,
            offset: 0,
            what: format!("unknown compression header {head:#04x}"),
        });
    }
    let lenlen = usize::from(head & 0x07);
    if lenlen == 0 || lenlen > 4 {
        return Err(DecodeError::Invalid {
            field,
            offset: 0,
            what: format!("compressed length in {lenlen} bytes"),
        });
    }
    let len = c
        .take(lenlen, field)?
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let mut out = Vec::with_capacity(usize::try_from(len.min(64 * 1024)).unwrap_or(0));
    flate2::read::ZlibDecoder::new(c.rest())
        .take(len + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Invalid {
            field,
            offset: 1 + lenlen,
            what: format!("zlib: {e}"),
        })?;
    if out.len() as u64 != len {
        return Err(DecodeError::Invalid {
            field,
            offset: 1 + lenlen,
            what: format!("inflated to {} bytes, header says {len}", out.len()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_body(status: &[u8], db: &[u8], sql: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&5u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.push(u8::try_from(db.len()).unwrap());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&u16::try_from(status.len()).unwrap().to_le_bytes());
        b.extend_from_slice(status);
        b.extend_from_slice(db);
        b.push(0);
        b.extend_from_slice(sql);
        b
    }

    #[test]
    fn decodes_status_variables_of_both_servers() {
        let mut st = vec![q::FLAGS2];
        st.extend_from_slice(&0x4000u32.to_le_bytes());
        st.push(q::SQL_MODE);
        st.extend_from_slice(&0x5410_0000u64.to_le_bytes());
        st.push(q::CHARSET);
        st.extend_from_slice(&[33, 0, 33, 0, 8, 0]);
        st.extend_from_slice(&[q::TIME_ZONE, 6]);
        st.extend_from_slice(b"+00:00");
        st.push(q::UPDATED_DB_NAMES);
        st.extend_from_slice(b"\x02a\0bb\0");
        st.push(q::HRNOW);
        st.extend_from_slice(&[1, 2, 3]);
        st.push(q::XID);
        st.extend_from_slice(&9u64.to_le_bytes());
        let body = query_body(&st, b"shop", b"  commit ");
        let ev = QueryEvent::decode(&body, 13, false).unwrap();
        assert_eq!(ev.db, b"shop");
        assert!(ev.is_commit() && !ev.is_begin());
        let s = &ev.status;
        assert_eq!(s.flags2, Some(0x4000));
        assert_eq!(s.charset, Some((33, 33, 8)));
        assert_eq!(s.time_zone, Some(&b"+00:00"[..]));
        assert_eq!(
            s.updated_db_names,
            Some(UpdatedDbs::Listed(vec![&b"a"[..], &b"bb"[..]]))
        );
        assert_eq!((s.hrnow, s.xid), (Some(0x030201), Some(9)));
    }

    #[test]
    fn unknown_status_code_skips_rest_of_block() {
        let mut st = vec![q::LC_TIME_NAMES, 0, 0, 200, 1, 2, 3];
        st.push(q::FLAGS2);
        let body = query_body(&st, b"", b"BEGIN");
        let ev = QueryEvent::decode(&body, 13, false).unwrap();
        assert_eq!(ev.status.lc_time_names, Some(0));
        assert_eq!(ev.status.unknown_code, Some(200));
        assert!(ev.is_begin());
    }

    #[test]
    fn truncated_status_is_an_error_with_offset() {
        let st = vec![q::SQL_MODE, 1, 2];
        let body = query_body(&st, b"", b"x");
        let err = QueryEvent::decode(&body, 13, false).unwrap_err();
        assert!(
            matches!(err, DecodeError::Short { offset: 14, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn words() {
        assert!(starts_with_words(b"XA START 'x'", &[b"XA", b"START"]));
        assert!(starts_with_words(b"xa   begin", &[b"XA", b"BEGIN"]));
        assert!(!starts_with_words(b"XA STARTED", &[b"XA", b"START"]));
    }

    #[test]
    fn decompress_round_trip_and_lies() {
        use std::io::Write;
        let text = b"INSERT INTO t VALUES (1),(2),(3),(4),(5),(6),(7),(8)".repeat(10);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).unwrap();
        let z = z.finish().unwrap();
        let len = u16::try_from(text.len()).unwrap().to_be_bytes();
        let mut data = vec![0x82, len[0], len[1]];
        data.extend_from_slice(&z);
        assert_eq!(decompress(&data, "q").unwrap(), text);
        data[2] ^= 1;
        assert!(decompress(&data, "q").is_err());
        assert!(decompress(&[0x12, 0], "q").is_err());
    }
}
