//! The common event header and the decoded-event enum.

use serde::Serialize;

use super::constants::{EventType, HEADER_LEN};
use super::cursor::Cursor;
use super::error::DecodeError;
use super::events::*;

/// The 19-byte v4 header every event starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    /// Seconds since the epoch when the statement started on the primary.
    pub timestamp: u32,
    /// Event type.
    pub event_type: EventType,
    /// Server that wrote the event originally.
    pub server_id: u32,
    /// Whole event size: header, body and checksum.
    pub event_size: u32,
    /// End position of the event in the *primary's* binlog (0 for
    /// artificial events and some relay-log events).
    pub log_pos: u32,
    /// `LOG_EVENT_*` flags.
    pub flags: u16,
}

impl EventHeader {
    /// Decodes the common header from the first 19 bytes of `b`.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(b.get(..HEADER_LEN).unwrap_or(b));
        Ok(EventHeader {
            timestamp: c.u32("timestamp")?,
            event_type: EventType(c.u8("type_code")?),
            server_id: c.u32("server_id")?,
            event_size: c.u32("event_size")?,
            log_pos: c.u32("log_pos")?,
            flags: c.u16("flags")?,
        })
    }
}

/// A decoded event. Variants borrow from the event bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Event<'a> {
    /// Format_description (15).
    FormatDescription(FormatDescription),
    /// MariaDB GTID (162).
    Gtid(GtidEvent),
    /// MariaDB GTID_LIST (163).
    GtidList(GtidListEvent),
    /// MariaDB BINLOG_CHECKPOINT (161).
    BinlogCheckpoint(BinlogCheckpointEvent<'a>),
    /// MariaDB ANNOTATE_ROWS (160).
    AnnotateRows(AnnotateRowsEvent<'a>),
    /// QUERY (2) or QUERY_COMPRESSED (165).
    Query(QueryEvent<'a>),
    /// XID (16).
    Xid(XidEvent),
    /// XA_PREPARE (38).
    XaPrepare(XaPrepareEvent<'a>),
    /// INTVAR (5).
    Intvar(IntvarEvent),
    /// RAND (13).
    Rand(RandEvent),
    /// USER_VAR (14).
    UserVar(UserVarEvent<'a>),
    /// TABLE_MAP (19).
    TableMap(TableMapEvent<'a>),
    /// Any Rows event.
    Rows(RowsEvent<'a>),
    /// ROTATE (4).
    Rotate(RotateEvent<'a>),
    /// STOP (3): the server stopped; the file ends here.
    Stop,
    /// HEARTBEAT (27).
    Heartbeat(HeartbeatEvent<'a>),
    /// MySQL GTID (33) or ANONYMOUS_GTID (34).
    MySqlGtid(MySqlGtidEvent),
    /// MySQL PREVIOUS_GTIDS (35).
    PreviousGtids(PreviousGtidsEvent),
    /// MySQL TRANSACTION_PAYLOAD (40).
    TransactionPayload(TransactionPayloadEvent<'a>),
    /// Any other type: the body, undecoded.
    Other(#[serde(serialize_with = "super::events::ser_len")] &'a [u8]),
}

impl<'a> Event<'a> {
    /// Decodes the body of an event of type `t` (header and checksum removed)
    /// as the format description `fde` describes it.
    pub fn decode(
        t: EventType,
        body: &'a [u8],
        fde: &FormatDescription,
    ) -> Result<Event<'a>, DecodeError> {
        let phl = |default: usize| fde.post_header_len(t).unwrap_or(default);
        Ok(match t {
            EventType::FORMAT_DESCRIPTION => {
                // The reader hands the FDE its checksum bytes back; see reader.
                Event::FormatDescription(FormatDescription::decode(body)?)
            }
            EventType::GTID => Event::Gtid(GtidEvent::decode(body)?),
            EventType::GTID_LIST => Event::GtidList(GtidListEvent::decode(body)?),
            EventType::BINLOG_CHECKPOINT => {
                Event::BinlogCheckpoint(BinlogCheckpointEvent::decode(body)?)
            }
            EventType::ANNOTATE_ROWS => Event::AnnotateRows(AnnotateRowsEvent { query: body }),
            EventType::QUERY => Event::Query(QueryEvent::decode(body, phl(13), false)?),
            EventType::QUERY_COMPRESSED => Event::Query(QueryEvent::decode(body, phl(13), true)?),
            EventType::XID => Event::Xid(XidEvent::decode(body)?),
            EventType::XA_PREPARE => Event::XaPrepare(XaPrepareEvent::decode(body)?),
            EventType::INTVAR => Event::Intvar(IntvarEvent::decode(body)?),
            EventType::RAND => Event::Rand(RandEvent::decode(body)?),
            EventType::USER_VAR => Event::UserVar(UserVarEvent::decode(body)?),
            EventType::TABLE_MAP => Event::TableMap(TableMapEvent::decode(body, phl(8))?),
            t if t.is_rows() => Event::Rows(RowsEvent::decode(body, t, phl(8))?),
            EventType::ROTATE => Event::Rotate(RotateEvent::decode(body, phl(8))?),
            EventType::STOP => Event::Stop,
            EventType::HEARTBEAT => Event::Heartbeat(HeartbeatEvent { file: body }),
            EventType::MYSQL_GTID | EventType::ANONYMOUS_GTID => {
                Event::MySqlGtid(MySqlGtidEvent::decode(body)?)
            }
            EventType::PREVIOUS_GTIDS => Event::PreviousGtids(PreviousGtidsEvent::decode(body)?),
            EventType::TRANSACTION_PAYLOAD => {
                Event::TransactionPayload(TransactionPayloadEvent::decode(body)?)
            }
            _ => Event::Other(body),
        })
    }
}
