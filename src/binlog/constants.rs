//! Wire constants of the binlog format, grouped in one place.
//!
//! Type codes 0–42 are shared with MySQL; 160 and above are MariaDB's own.
//! Names follow the server's `Log_event_type` enum.

/// The four bytes every binlog and relay log file starts with.
pub const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
/// Length of the v4 common event header.
pub const HEADER_LEN: usize = 19;
/// Length of the CRC32 that ends each event when checksums are on.
pub const CHECKSUM_LEN: usize = 4;
/// Largest event the server can write (`MAX_MAX_ALLOWED_PACKET`) plus headroom
/// for the header and checksum. A header announcing more is corrupt.
pub const MAX_EVENT_SIZE: u32 = 1024 * 1024 * 1024 + 1024;

/// Event header flag: set in a Format_description event while the file is
/// being written; cleared when the server closes the file cleanly.
pub const LOG_EVENT_BINLOG_IN_USE_F: u16 = 0x1;
/// Event header flag: the statement must run without `USE` of its default
/// database (CREATE/DROP DATABASE: the database may not exist).
pub const LOG_EVENT_SUPPRESS_USE_F: u16 = 0x8;
/// Event header flag: the event was made up by the sender, not read from a
/// binlog (e.g. the fake Rotate a primary sends first).
pub const LOG_EVENT_ARTIFICIAL_F: u16 = 0x20;
/// Event header flag: written by a replica's IO thread into its relay log.
pub const LOG_EVENT_RELAY_LOG_F: u16 = 0x40;

/// Checksum algorithm "off" in a Format_description event.
pub const CHECKSUM_ALG_OFF: u8 = 0;
/// Checksum algorithm CRC32.
pub const CHECKSUM_ALG_CRC32: u8 = 1;
/// Checksum algorithm "undefined" (pre-checksum servers).
pub const CHECKSUM_ALG_UNDEF: u8 = 255;

/// An event type code with its server name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(pub u8);

macro_rules! event_types {
    ($($name:ident = $code:literal, $text:literal;)*) => {
        impl EventType {
            $(
                #[doc = concat!("`", $text, "` (", stringify!($code), ").")]
                pub const $name: EventType = EventType($code);
            )*

            /// The server's name of this type, or `Unknown` for codes it
            /// does not define.
            pub fn name(self) -> &'static str {
                match self.0 {
                    $($code => $text,)*
                    _ => "Unknown",
                }
            }
        }
    };
}

event_types! {
    UNKNOWN = 0, "Unknown";
    START_V3 = 1, "Start_v3";
    QUERY = 2, "Query";
    STOP = 3, "Stop";
    ROTATE = 4, "Rotate";
    INTVAR = 5, "Intvar";
    LOAD = 6, "Load";
    SLAVE = 7, "Slave";
    CREATE_FILE = 8, "Create_file";
    APPEND_BLOCK = 9, "Append_block";
    EXEC_LOAD = 10, "Exec_load";
    DELETE_FILE = 11, "Delete_file";
    NEW_LOAD = 12, "New_load";
    RAND = 13, "RAND";
    USER_VAR = 14, "User_var";
    FORMAT_DESCRIPTION = 15, "Format_desc";
    XID = 16, "Xid";
    BEGIN_LOAD_QUERY = 17, "Begin_load_query";
    EXECUTE_LOAD_QUERY = 18, "Execute_load_query";
    TABLE_MAP = 19, "Table_map";
    PRE_GA_WRITE_ROWS = 20, "Write_rows_event_old";
    PRE_GA_UPDATE_ROWS = 21, "Update_rows_event_old";
    PRE_GA_DELETE_ROWS = 22, "Delete_rows_event_old";
    WRITE_ROWS_V1 = 23, "Write_rows_v1";
    UPDATE_ROWS_V1 = 24, "Update_rows_v1";
    DELETE_ROWS_V1 = 25, "Delete_rows_v1";
    INCIDENT = 26, "Incident";
    HEARTBEAT = 27, "Heartbeat";
    IGNORABLE = 28, "Ignorable";
    ROWS_QUERY = 29, "Rows_query";
    WRITE_ROWS_V2 = 30, "Write_rows";
    UPDATE_ROWS_V2 = 31, "Update_rows";
    DELETE_ROWS_V2 = 32, "Delete_rows";
    MYSQL_GTID = 33, "Gtid_mysql";
    ANONYMOUS_GTID = 34, "Anonymous_Gtid";
    PREVIOUS_GTIDS = 35, "Previous_gtids";
    TRANSACTION_CONTEXT = 36, "Transaction_context";
    VIEW_CHANGE = 37, "View_change";
    XA_PREPARE = 38, "XA_prepare";
    PARTIAL_UPDATE_ROWS = 39, "Update_rows_partial";
    TRANSACTION_PAYLOAD = 40, "Transaction_payload";
    HEARTBEAT_V2 = 41, "Heartbeat_v2";
    MYSQL_GTID_TAGGED = 42, "Gtid_tagged_log";
    ANNOTATE_ROWS = 160, "Annotate_rows";
    BINLOG_CHECKPOINT = 161, "Binlog_checkpoint";
    GTID = 162, "Gtid";
    GTID_LIST = 163, "Gtid_list";
    START_ENCRYPTION = 164, "Start_encryption";
    QUERY_COMPRESSED = 165, "Query_compressed";
    WRITE_ROWS_COMPRESSED_V1 = 166, "Write_rows_compressed_v1";
    UPDATE_ROWS_COMPRESSED_V1 = 167, "Update_rows_compressed_v1";
    DELETE_ROWS_COMPRESSED_V1 = 168, "Delete_rows_compressed_v1";
    WRITE_ROWS_COMPRESSED = 169, "Write_rows_compressed";
    UPDATE_ROWS_COMPRESSED = 170, "Update_rows_compressed";
    DELETE_ROWS_COMPRESSED = 171, "Delete_rows_compressed";
}

impl EventType {
    /// Row events of every flavour (v1, v2, MariaDB-compressed, MySQL partial).
    pub fn is_rows(self) -> bool {
        matches!(self.0, 20..=25 | 30..=32 | 39 | 166..=171)
    }

    /// Query or compressed Query.
    pub fn is_query(self) -> bool {
        self == EventType::QUERY || self == EventType::QUERY_COMPRESSED
    }

    /// Events that describe the stream rather than belong to a transaction:
    /// they are never part of a transaction group.
    pub fn is_control(self) -> bool {
        matches!(
            self,
            EventType::FORMAT_DESCRIPTION
                | EventType::START_V3
                | EventType::ROTATE
                | EventType::STOP
                | EventType::GTID_LIST
                | EventType::BINLOG_CHECKPOINT
                | EventType::HEARTBEAT
                | EventType::HEARTBEAT_V2
                | EventType::PREVIOUS_GTIDS
                | EventType::START_ENCRYPTION
                | EventType::INCIDENT
        )
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Flags of MariaDB's GTID event (`flags2`).
pub mod gtid_flags {
    /// The group is one statement without BEGIN/COMMIT (DDL, or a statement
    /// on non-transactional tables).
    pub const STANDALONE: u8 = 1;
    /// A group-commit id follows: groups with the same id committed together
    /// on the primary and can be applied in parallel.
    pub const GROUP_COMMIT_ID: u8 = 2;
    /// Only transactional tables are touched: safe to roll back.
    pub const TRANSACTIONAL: u8 = 4;
    /// The primary allows this group to be applied in parallel.
    pub const ALLOW_PARALLEL: u8 = 8;
    /// The group waited for a row lock of another group on the primary.
    pub const WAITED: u8 = 16;
    /// The group is DDL.
    pub const DDL: u8 = 32;
    /// The group is the prepare part of an XA transaction (an XID follows).
    pub const PREPARED_XA: u8 = 64;
    /// The group completes (commits or rolls back) an XA transaction.
    pub const COMPLETED_XA: u8 = 128;
}

/// Extra flags of MariaDB's GTID event (`flags_extra`, 10.5+).
pub mod gtid_flags_extra {
    /// The transaction touched more than one engine; a count follows.
    pub const MULTI_ENGINE: u8 = 1;
    /// First half of a two-phase (binlog_alter_two_phase) ALTER.
    pub const START_ALTER: u8 = 2;
    /// Commits a two-phase ALTER; the start-alter seq_no follows.
    pub const COMMIT_ALTER: u8 = 4;
    /// Rolls back a two-phase ALTER; the start-alter seq_no follows.
    pub const ROLLBACK_ALTER: u8 = 8;
    /// The originating thread id follows (11.x).
    pub const THREAD_ID: u8 = 16;
}

/// Status-variable codes of a Query event.
pub mod query_status {
    pub const FLAGS2: u8 = 0;
    pub const SQL_MODE: u8 = 1;
    pub const CATALOG: u8 = 2;
    pub const AUTO_INCREMENT: u8 = 3;
    pub const CHARSET: u8 = 4;
    pub const TIME_ZONE: u8 = 5;
    pub const CATALOG_NZ: u8 = 6;
    pub const LC_TIME_NAMES: u8 = 7;
    pub const CHARSET_DATABASE: u8 = 8;
    pub const TABLE_MAP_FOR_UPDATE: u8 = 9;
    pub const MASTER_DATA_WRITTEN: u8 = 10;
    pub const INVOKER: u8 = 11;
    /// MySQL: the databases a statement updated.
    pub const UPDATED_DB_NAMES: u8 = 12;
    /// MySQL: microseconds of the statement's start.
    pub const MICROSECONDS: u8 = 13;
    pub const COMMIT_TS: u8 = 14;
    pub const COMMIT_TS2: u8 = 15;
    pub const EXPLICIT_DEFAULTS_FOR_TIMESTAMP: u8 = 16;
    pub const DDL_LOGGED_WITH_XID: u8 = 17;
    pub const DEFAULT_COLLATION_FOR_UTF8MB4: u8 = 18;
    pub const SQL_REQUIRE_PRIMARY_KEY: u8 = 19;
    pub const DEFAULT_TABLE_ENCRYPTION: u8 = 20;
    /// MariaDB: microseconds of the statement's start.
    pub const HRNOW: u8 = 128;
    /// MariaDB: the xid of a DDL that is logged with one.
    pub const XID: u8 = 129;
    /// MariaDB: the GTID's extra flags (two-phase ALTER).
    pub const GTID_FLAGS3: u8 = 130;
    /// MariaDB 11: character-set → collation mapping.
    pub const CHARACTER_SET_COLLATIONS: u8 = 131;
    /// MySQL's `OVER_MAX_DBS_IN_EVENT_MTS`: too many databases to list.
    pub const OVER_MAX_DBS: u8 = 254;
}

/// Flags of Rows events.
pub mod rows_flags {
    /// The last Rows event of a statement.
    pub const STMT_END: u16 = 1;
    /// Foreign key checks were off.
    pub const NO_FOREIGN_KEY_CHECKS: u16 = 2;
    /// Unique checks were off.
    pub const RELAXED_UNIQUE_CHECKS: u16 = 4;
    /// The row images are complete (all columns).
    pub const COMPLETE_ROWS: u16 = 8;
}

/// Flag of Table_map events: `TM_BIT_LEN_EXACT_F`, set by every server
/// since MySQL 5.1.
pub const TM_BIT_LEN_EXACT_F: u16 = 0x1;

/// Column types (`enum_field_types`) as Table_map events name them; only
/// the ones parapply writes itself.
pub mod column_type {
    /// `MYSQL_TYPE_LONG`: INT, 4 bytes little-endian in a row image.
    pub const LONG: u8 = 3;
    /// `MYSQL_TYPE_LONGLONG`: BIGINT, 8 bytes little-endian.
    pub const LONGLONG: u8 = 8;
    /// `MYSQL_TYPE_VARCHAR`: metadata is the maximum length in bytes (2
    /// bytes); a value is a 1-byte length (maximum below 256) or a 2-byte
    /// one, then the bytes.
    pub const VARCHAR: u8 = 15;
    /// `MYSQL_TYPE_TIMESTAMP2`: metadata is the fractional precision (1
    /// byte); a value is 4 bytes big-endian seconds, then
    /// `(precision + 1) / 2` bytes big-endian of the fraction.
    pub const TIMESTAMP2: u8 = 17;
}
