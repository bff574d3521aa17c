//! parapply — a parallel replication applier for MariaDB.
//!
//! (architecture map: filled in as the modules land)

pub mod binlog;
pub mod cli;
pub mod group;
pub mod inspect;
pub mod position;
pub mod sandbox;
