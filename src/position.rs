//! Positions in a binlog stream and global transaction ids.
//!
//! Two coordinate systems name a place in the primary's stream:
//!
//! * [`BinlogPos`] — a file name and a byte offset. In a *mirrored* binlog
//!   the file names and bytes are the primary's, so a position means the same
//!   event on every replica. In relay logs the reader translates back to the
//!   primary's coordinates using each event's `log_pos` and the primary's
//!   Rotate events.
//! * [`Gtid`] — MariaDB's `domain-server-seq` (or MySQL's `uuid:gno`).
//!   Within one domain on one primary `seq_no` grows strictly; that is the
//!   invariant the per-shard watermarks rely on (a watermark is a seq_no).
//!
//! Invariants written down here and relied upon elsewhere:
//!
//! 1. File names of one binlog sort in the order they were written (the
//!    server pads the numeric extension to six digits and never wraps in
//!    practice); [`BinlogPos`] orders by `(file, pos)` under that rule.
//! 2. `pos` is the offset of the *first byte* of an event (a start position),
//!    or the end of the last event (an end position, equal to the header's
//!    `log_pos`); both are event boundaries, never the inside of an event.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A place in a binlog: file name (no directory) and byte offset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BinlogPos {
    /// File name without directory, e.g. `mariadb-bin.000003`.
    pub file: String,
    /// Byte offset in that file.
    pub pos: u64,
}

impl BinlogPos {
    /// A position in `file` at byte `pos`.
    pub fn new(file: impl Into<String>, pos: u64) -> Self {
        BinlogPos {
            file: file.into(),
            pos,
        }
    }
}

impl fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl FromStr for BinlogPos {
    type Err = String;

    /// Parses `FILE:POS`, e.g. `mariadb-bin.000002:4`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (file, pos) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}` is not FILE:POS"))?;
        if file.is_empty() {
            return Err(format!("`{s}` has an empty file name"));
        }
        let pos = pos
            .parse::<u64>()
            .map_err(|_| format!("`{s}`: position `{pos}` is not a number"))?;
        Ok(BinlogPos::new(file, pos))
    }
}

/// A MariaDB global transaction id: `domain-server-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MariaGtid {
    /// Replication domain (`gtid_domain_id`); seq_no is ordered per domain.
    pub domain: u32,
    /// `server_id` of the server that first committed the transaction.
    pub server: u32,
    /// Sequence number, strictly growing within a domain on a primary.
    pub seq: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl FromStr for MariaGtid {
    type Err = String;

    /// Parses `domain-server-seq`, e.g. `0-1-4711`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().splitn(3, '-');
        let mut next = |what: &str| {
            parts
                .next()
                .ok_or_else(|| format!("`{s}` is not a GTID (domain-server-seq): no {what}"))
        };
        let domain = next("domain")?;
        let server = next("server id")?;
        let seq = next("sequence number")?;
        let bad = |what: &str| format!("`{s}` is not a GTID (domain-server-seq): bad {what}");
        Ok(MariaGtid {
            domain: domain.parse().map_err(|_| bad("domain"))?,
            server: server.parse().map_err(|_| bad("server id"))?,
            seq: seq.parse().map_err(|_| bad("sequence number"))?,
        })
    }
}

/// A global transaction id as written by either server family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Gtid {
    /// MariaDB `domain-server-seq`.
    Maria(MariaGtid),
    /// MySQL `uuid:gno` (the tag of tagged GTIDs is not kept).
    MySql {
        /// Source server uuid (16 bytes).
        sid: [u8; 16],
        /// Transaction number within that source.
        gno: u64,
    },
    /// MySQL's anonymous GTID (GTID mode off): no identity.
    Anonymous,
}

impl Gtid {
    /// The MariaDB GTID, if this is one.
    pub fn maria(&self) -> Option<MariaGtid> {
        match self {
            Gtid::Maria(g) => Some(*g),
            _ => None,
        }
    }
}

/// Formats a 16-byte uuid the way MySQL prints it.
pub fn format_uuid(sid: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in sid.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::Maria(g) => g.fmt(f),
            Gtid::MySql { sid, gno } => write!(f, "{}:{gno}", format_uuid(sid)),
            Gtid::Anonymous => f.write_str("ANONYMOUS"),
        }
    }
}

impl Serialize for Gtid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for MariaGtid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for BinlogPos {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where to start reading: a position, or the group that carries a GTID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// From the first event of the first file.
    Beginning,
    /// From the event that starts at this position.
    Pos(BinlogPos),
    /// From the GTID event of this transaction (inclusive).
    Gtid(MariaGtid),
}

impl FromStr for StartAt {
    type Err = String;

    /// `FILE:POS` or `domain-server-seq`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse().map(StartAt::Pos)
        } else {
            s.parse().map(StartAt::Gtid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_positions_and_gtids() {
        let p: BinlogPos = "mariadb-bin.000002:1893".parse().unwrap();
        assert_eq!(p, BinlogPos::new("mariadb-bin.000002", 1893));
        assert_eq!(p.to_string(), "mariadb-bin.000002:1893");
        let g: MariaGtid = "0-1-4711".parse().unwrap();
        assert_eq!((g.domain, g.server, g.seq), (0, 1, 4711));
        assert_eq!(Gtid::Maria(g).to_string(), "0-1-4711");
        assert!("0-1".parse::<MariaGtid>().is_err());
        assert!("a-1-2".parse::<MariaGtid>().is_err());
        assert!("x:y".parse::<BinlogPos>().is_err());
        assert_eq!(
            "7-2-9".parse::<StartAt>().unwrap(),
            StartAt::Gtid(MariaGtid {
                domain: 7,
                server: 2,
                seq: 9
            })
        );
    }

    #[test]
    fn formats_mysql_uuid() {
        let sid = [
            0x5e, 0x3d, 0x95, 0x2f, 0x51, 0x2b, 0x11, 0xea, 0x8b, 0x28, 0x02, 0x42, 0xac, 0x11,
            0x00, 0x02,
        ];
        let g = Gtid::MySql { sid, gno: 3 };
        assert_eq!(g.to_string(), "5e3d952f-512b-11ea-8b28-0242ac110002:3");
    }
}
