//! Binlog format (in progress).
