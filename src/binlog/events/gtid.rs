//! MariaDB GTID event (type 162): starts every transaction group.
//!
//! Body: seq_no u64, domain_id u32, flags2 u8; then, by flag, a group-commit
//! id u64 (`GROUP_COMMIT_ID`), an XA xid (`PREPARED_XA`/`COMPLETED_XA`:
//! formatID u32, gtrid length u8, bqual length u8, data); then, when bytes
//! remain (10.5+), flags_extra u8 and by those flags: the number of extra
//! engines u8, the start-alter seq_no u64 (commit/rollback of a two-phase
//! ALTER), the thread id u32 (11.x). The server id is the event header's.

use serde::Serialize;

use crate::binlog::constants::{gtid_flags, gtid_flags_extra};
use crate::binlog::cursor::Cursor;
use crate::binlog::error::DecodeError;

/// The xid of an XA transaction, as carried by its GTID event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XaXid {
    /// XA format id.
    pub format_id: u32,
    /// Global transaction id part.
    pub gtrid: Vec<u8>,
    /// Branch qualifier part.
    pub bqual: Vec<u8>,
}

/// A decoded MariaDB GTID event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GtidEvent {
    /// Sequence number within the domain.
    pub seq_no: u64,
    /// Replication domain.
    pub domain_id: u32,
    /// `flags2`; see [`gtid_flags`].
    pub flags: u8,
    /// Group-commit id, when `GROUP_COMMIT_ID` is set.
    pub commit_id: Option<u64>,
    /// XA xid, when `PREPARED_XA` or `COMPLETED_XA` is set.
    pub xa_xid: Option<XaXid>,
    /// `flags_extra`; see [`gtid_flags_extra`].
    pub flags_extra: u8,
    /// Number of extra engines (`MULTI_ENGINE`).
    pub extra_engines: Option<u8>,
    /// Seq_no of the start of a two-phase ALTER this group commits or rolls back.
    pub start_alter_seq_no: Option<u64>,
    /// Originating thread id (`THREAD_ID`, 11.x).
    pub thread_id: Option<u32>,
}

impl GtidEvent {
    /// Decodes a GTID event body.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body);
        let seq_no = c.u64("seq_no")?;
        let domain_id = c.u32("domain_id")?;
        let flags = c.u8("flags2")?;
        let commit_id = if flags & gtid_flags::GROUP_COMMIT_ID != 0 {
            Some(c.u64("commit_id")?)
        } else {
            None
        };
        let xa_xid = if flags & (gtid_flags::PREPARED_XA | gtid_flags::COMPLETED_XA) != 0 {
            let format_id = c.u32("xid.formatID")?;
            let gtrid_len = c.u8("xid.gtrid_length")?;
            let bqual_len = c.u8("xid.bqual_length")?;
            let gtrid = c.take(usize::from(gtrid_len), "xid.gtrid")?.to_vec();
            let bqual = c.take(usize::from(bqual_len), "xid.bqual")?.to_vec();
            Some(XaXid {
                format_id,
                gtrid,
                bqual,
            })
        } else {
            None
        };
        let mut ev = GtidEvent {
            seq_no,
            domain_id,
            flags,
            commit_id,
            xa_xid,
            flags_extra: 0,
            extra_engines: None,
            start_alter_seq_no: None,
            thread_id: None,
        };
        if c.remaining() > 0 {
            ev.flags_extra = c.u8("flags_extra")?;
            if ev.flags_extra & gtid_flags_extra::MULTI_ENGINE != 0 {
                ev.extra_engines = Some(c.u8("extra_engines")?);
            }
            if ev.flags_extra & (gtid_flags_extra::COMMIT_ALTER | gtid_flags_extra::ROLLBACK_ALTER)
                != 0
            {
                ev.start_alter_seq_no = Some(c.u64("sa_seq_no")?);
            }
            if ev.flags_extra & gtid_flags_extra::THREAD_ID != 0 {
                ev.thread_id = Some(c.u32("thread_id")?);
            }
        }
        Ok(ev)
    }

    /// The group is a single statement without BEGIN.
    pub fn standalone(&self) -> bool {
        self.flags & gtid_flags::STANDALONE != 0
    }
    /// Only transactional engines are touched.
    pub fn transactional(&self) -> bool {
        self.flags & gtid_flags::TRANSACTIONAL != 0
    }
    /// The group is DDL.
    pub fn ddl(&self) -> bool {
        self.flags & gtid_flags::DDL != 0
    }
    /// Part of an XA transaction (prepare or completion).
    pub fn xa(&self) -> bool {
        self.flags & (gtid_flags::PREPARED_XA | gtid_flags::COMPLETED_XA) != 0
    }
    /// The names of the set flags, for people.
    pub fn flag_names(&self) -> Vec<&'static str> {
        flag_names(self.flags, self.flags_extra)
    }
}

/// The names of the set bits of `flags2` and `flags_extra`, for people.
pub fn flag_names(flags: u8, flags_extra: u8) -> Vec<&'static str> {
    let mut v = Vec::new();
    for (bit, name) in [
        (gtid_flags::STANDALONE, "standalone"),
        (gtid_flags::GROUP_COMMIT_ID, "group_commit_id"),
        (gtid_flags::TRANSACTIONAL, "transactional"),
        (gtid_flags::ALLOW_PARALLEL, "allow_parallel"),
        (gtid_flags::WAITED, "waited"),
        (gtid_flags::DDL, "ddl"),
        (gtid_flags::PREPARED_XA, "prepared_xa"),
        (gtid_flags::COMPLETED_XA, "completed_xa"),
    ] {
        if flags & bit != 0 {
            v.push(name);
        }
    }
    for (bit, name) in [
        (gtid_flags_extra::MULTI_ENGINE, "multi_engine"),
        (gtid_flags_extra::START_ALTER, "start_alter"),
        (gtid_flags_extra::COMMIT_ALTER, "commit_alter"),
        (gtid_flags_extra::ROLLBACK_ALTER, "rollback_alter"),
        (gtid_flags_extra::THREAD_ID, "thread_id"),
    ] {
        if flags_extra & bit != 0 {
            v.push(name);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_all_optional_parts() {
        let mut b = Vec::new();
        b.extend_from_slice(&42u64.to_le_bytes());
        b.extend_from_slice(&7u32.to_le_bytes());
        b.push(gtid_flags::GROUP_COMMIT_ID | gtid_flags::PREPARED_XA | gtid_flags::TRANSACTIONAL);
        b.extend_from_slice(&99u64.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&[2, 1, b'a', b'b', b'c']);
        b.push(gtid_flags_extra::MULTI_ENGINE | gtid_flags_extra::COMMIT_ALTER);
        b.push(2);
        b.extend_from_slice(&40u64.to_le_bytes());
        let g = GtidEvent::decode(&b).unwrap();
        assert_eq!((g.seq_no, g.domain_id, g.commit_id), (42, 7, Some(99)));
        let x = g.xa_xid.as_ref().unwrap();
        assert_eq!(
            (x.gtrid.as_slice(), x.bqual.as_slice()),
            (&b"ab"[..], &b"c"[..])
        );
        assert_eq!((g.extra_engines, g.start_alter_seq_no), (Some(2), Some(40)));
        assert!(g.transactional() && g.xa() && !g.standalone());
        // A truncated optional part is an error, not a panic.
        assert!(GtidEvent::decode(&b[..b.len() - 3]).is_err());
    }
}
