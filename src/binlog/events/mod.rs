//! Decoders for each binlog event, one file per event family.
//!
//! Each decoder takes the event *body* (the bytes after the 19-byte common
//! header, without the trailing checksum) and borrows from it wherever the
//! bytes are only looked at. Workers replay row images verbatim; [`ColumnValue`]
//! splits them for the key-level scheduler.

mod format_description;
mod gtid;
mod gtid_list;
mod intvar_rand;
mod misc;
mod mysql_gtid;
mod query;
mod row_image;
mod rows;
mod table_map;
mod user_var;
mod xa_prepare;

pub use format_description::FormatDescription;
pub use gtid::{flag_names as gtid_flag_names, GtidEvent, XaXid};
pub use gtid_list::{BinlogCheckpointEvent, GtidListEvent};
pub use intvar_rand::{IntvarEvent, RandEvent};
pub use misc::{AnnotateRowsEvent, HeartbeatEvent, RotateEvent, TransactionPayloadEvent, XidEvent};
pub use mysql_gtid::{MySqlGtidEvent, PreviousGtidsEvent};
pub use query::{QueryEvent, QueryStatus, UpdatedDbs};
pub use row_image::ColumnValue;
pub use rows::{RowsEvent, RowsKind};
pub use table_map::TableMapEvent;
pub use user_var::{UserVarEvent, UserVarValue};
pub use xa_prepare::XaPrepareEvent;

use serde::Serializer;

/// Serializes bytes as text (lossy UTF-8): names and SQL are text in practice.
pub(crate) fn ser_text<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(b))
}

/// Serializes an optional byte string as text.
pub(crate) fn ser_opt_text<S: Serializer>(b: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
    match b {
        Some(b) => s.serialize_str(&String::from_utf8_lossy(b)),
        None => s.serialize_none(),
    }
}

/// Serializes raw bytes as their length (row images, payloads).
pub(crate) fn ser_len<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(b.len() as u64)
}
