//! From a [`Group`] to its [`Placement`]: which shards it belongs to, or
//! why it must run alone.
//!
//! # Rules
//!
//! | [`GroupKind`] | placement |
//! |---|---|
//! | `RowDml` | one shard per database (per table with [`ShardBy::Table`], per key bucket with [`ShardBy::Key`]: see [`super::keys`]), after merging |
//! | `StatementDml` | as `RowDml` if the server listed the databases it updated, else a barrier; with [`ShardBy::Table`] a barrier unless all its databases are merged; with [`ShardBy::Key`] a barrier |
//! | `Ddl`, `NonTransactional`, `Xa`, `Unknown` | a barrier |
//!
//! The databases the server lists for a statement are those it *updated*.
//! A statement that also reads another database (`INSERT INTO a.t SELECT …
//! FROM b.s`) may see that database at a different point than the primary
//! did, as with MySQL's database-parallel applier: with statement-format
//! binlogs, merge such databases into one shard (row format is immune: the
//! rows themselves are logged).
//!
//! A group that touches no database at all (a transaction without row
//! events, a statement that updated nothing) goes to [`Shard::none`], the
//! shard named `""`: such groups are ordered among themselves, in parallel
//! with everything else.
//!
//! # Merging
//!
//! `--shard-map "app=db1,db2;other=db3"` makes `db1` and `db2` one shard
//! named `app`, and `db3` a shard named `other` (for foreign keys across
//! databases, whose order the replica must keep). Under [`ShardBy::Table`] a
//! merged database stays whole: all its tables map to the merged shard.
//! A database absent from the map is its own shard, named after it.
//!
//! Two distinct keys that end up with the same name (a shard named like a
//! database outside the map, or `a.b` + `c` and `a` + `b.c` under
//! [`ShardBy::Table`]) merely share a shard: that serialises more, never
//! less, and their common watermark stays exact.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::group::{Group, GroupKind};

use super::keys::{self, KeyCatalog};
use super::{BarrierReason, Placement, Shard};

/// What a shard is made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ShardBy {
    /// One shard per database (the default): safe with foreign keys inside
    /// a database.
    #[default]
    Database,
    /// One shard per table (`db.table`): more parallelism within a
    /// database, for schemas without foreign keys between tables (merge a
    /// database with `--shard-map` to keep it whole). Statement-format DML
    /// becomes a barrier, since a statement does not name its tables.
    Table,
    /// Buckets of the primary and unique key values of the rows a group
    /// changes, this many (`key:K`): parallelism inside one table; see
    /// [`super::keys`]. Needs the target's key catalog
    /// ([`ShardMap::with_catalog`]); statement-format DML is a barrier.
    Key(u32),
}

/// Buckets of `--shard-by key` when no `:K` is given.
pub const DEFAULT_KEY_BUCKETS: u32 = 1024;

/// The most buckets `--shard-by key:K` takes (a progress row each, per
/// domain).
pub const MAX_KEY_BUCKETS: u32 = 65536;

impl ShardBy {
    /// `database`, `table` or `key`.
    pub fn as_str(self) -> &'static str {
        match self {
            ShardBy::Database => "database",
            ShardBy::Table => "table",
            ShardBy::Key(_) => "key",
        }
    }
}

impl fmt::Display for ShardBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardBy::Key(k) => write!(f, "key:{k}"),
            other => f.write_str(other.as_str()),
        }
    }
}

impl FromStr for ShardBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "database" => Ok(ShardBy::Database),
            "table" => Ok(ShardBy::Table),
            "key" => Ok(ShardBy::Key(DEFAULT_KEY_BUCKETS)),
            other => match other.strip_prefix("key:").map(str::parse::<u32>) {
                Some(Ok(k)) if (1..=MAX_KEY_BUCKETS).contains(&k) => Ok(ShardBy::Key(k)),
                Some(_) => Err(format!(
                    "`{other}`: the number of key buckets must be 1 to {MAX_KEY_BUCKETS}"
                )),
                None => Err(format!(
                    "unknown shard key `{other}`: expected `database`, `table`, `key` or `key:K`"
                )),
            },
        }
    }
}

/// A `--shard-map` that does not parse. The messages leave out the
/// option's name, for the caller to add.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardMapError {
    /// An entry without `=`.
    #[error("entry `{entry}`: expected NAME=DB[,DB...]")]
    MissingEquals {
        /// The entry.
        entry: String,
    },
    /// `=db1,db2`.
    #[error("entry `{entry}`: the shard name is empty")]
    EmptyShardName {
        /// The entry.
        entry: String,
    },
    /// `app=` or `app=db1,,db2`.
    #[error("shard `{shard}`: a database name is empty")]
    EmptyDatabase {
        /// The shard.
        shard: String,
    },
    /// `app=db1;app=db2`.
    #[error("shard `{shard}` is defined twice")]
    DuplicateShard {
        /// The shard.
        shard: String,
    },
    /// `app=db1;other=db1` (or `app=db1,db1`).
    #[error("database `{db}` is in shard `{first}` and in shard `{second}`")]
    DatabaseInTwoShards {
        /// The database.
        db: String,
        /// The shard that lists it first.
        first: String,
        /// The shard that lists it again.
        second: String,
    },
}

/// Maps groups to shards: the shard key ([`ShardBy`]) and the databases
/// merged into one shard (`--shard-map`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardMap {
    by: ShardBy,
    /// Database → the merged shard it belongs to.
    merge: HashMap<String, Shard>,
    /// Merged shard → its databases, sorted (for the fingerprint).
    shards: BTreeMap<String, BTreeSet<String>>,
    /// The target's keys, for [`ShardBy::Key`].
    catalog: Option<Arc<KeyCatalog>>,
}

impl ShardMap {
    /// No merged databases.
    pub fn new(by: ShardBy) -> Self {
        ShardMap {
            by,
            ..ShardMap::default()
        }
    }

    /// Parses `NAME=DB[,DB...][;NAME=DB[,DB...]...]`. Whitespace around
    /// names and empty entries (`a=x;;b=y;`) are ignored; an empty spec
    /// merges nothing. A database may be in one shard only.
    pub fn parse(spec: &str, by: ShardBy) -> Result<Self, ShardMapError> {
        let mut map = ShardMap::new(by);
        for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, dbs)) = entry.split_once('=') else {
                return Err(ShardMapError::MissingEquals {
                    entry: entry.to_owned(),
                });
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(ShardMapError::EmptyShardName {
                    entry: entry.to_owned(),
                });
            }
            if map.shards.contains_key(name) {
                return Err(ShardMapError::DuplicateShard {
                    shard: name.to_owned(),
                });
            }
            let shard = Shard::new(name);
            let mut members = BTreeSet::new();
            for db in dbs.split(',').map(str::trim) {
                if db.is_empty() {
                    return Err(ShardMapError::EmptyDatabase {
                        shard: name.to_owned(),
                    });
                }
                if let Some(first) = map.merge.get(db) {
                    return Err(ShardMapError::DatabaseInTwoShards {
                        db: db.to_owned(),
                        first: first.as_str().to_owned(),
                        second: name.to_owned(),
                    });
                }
                map.merge.insert(db.to_owned(), shard.clone());
                members.insert(db.to_owned());
            }
            map.shards.insert(name.to_owned(), members);
        }
        Ok(map)
    }

    /// The shard key.
    pub fn by(&self) -> ShardBy {
        self.by
    }

    /// The same map placing groups by the keys in `catalog` (used only
    /// under [`ShardBy::Key`]).
    pub fn with_catalog(mut self, catalog: Arc<KeyCatalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Replaces the key catalog (after DDL).
    pub fn set_catalog(&mut self, catalog: Arc<KeyCatalog>) {
        self.catalog = Some(catalog);
    }

    /// The merged shard `db` belongs to, if any.
    pub fn merged(&self, db: &str) -> Option<&Shard> {
        self.merge.get(db)
    }

    /// The shard of database `db` under [`ShardBy::Database`]: its merged
    /// shard, or itself.
    pub fn shard_of_database(&self, db: &str) -> Shard {
        self.merged(db).cloned().unwrap_or_else(|| Shard::new(db))
    }

    /// The shard of table `db.table` under [`ShardBy::Table`]: its
    /// database's merged shard, or `db.table`.
    pub fn shard_of_table(&self, db: &str, table: &str) -> Shard {
        self.merged(db)
            .cloned()
            .unwrap_or_else(|| Shard::new(format!("{db}.{table}")))
    }

    /// Where `g` goes (see the module documentation for the rules).
    pub fn placement(&self, g: &Group) -> Placement {
        if g.after_primary_start {
            return Placement::Barrier(BarrierReason::PrimaryStart);
        }
        match g.kind {
            GroupKind::RowDml | GroupKind::StatementDml if !g.databases_exact => {
                Placement::Barrier(BarrierReason::UnknownDatabases)
            }
            GroupKind::RowDml | GroupKind::StatementDml => match self.by {
                ShardBy::Database => {
                    shards(g.databases.iter().map(|db| self.shard_of_database(db)))
                }
                ShardBy::Table => self.table_placement(g),
                ShardBy::Key(_) if g.kind != GroupKind::RowDml => {
                    Placement::Barrier(BarrierReason::UnknownRows)
                }
                ShardBy::Key(k) => self.key_placement(g, k),
            },
            GroupKind::Ddl => Placement::Barrier(BarrierReason::Ddl),
            GroupKind::NonTransactional => Placement::Barrier(BarrierReason::NonTransactional),
            GroupKind::Xa => Placement::Barrier(BarrierReason::Xa),
            GroupKind::Unknown => Placement::Barrier(BarrierReason::Unclassified),
        }
    }

    /// [`ShardBy::Table`]: the tables of its Table_map events, each under its
    /// database's merged shard if it has one. A database known without its
    /// tables (any statement's) is placed only if it is merged.
    fn table_placement(&self, g: &Group) -> Placement {
        let mut set = BTreeSet::new();
        for (db, table) in &g.tables {
            set.insert(self.shard_of_table(db, table));
        }
        let has_tables =
            |db: &String| g.kind == GroupKind::RowDml && g.tables.iter().any(|(d, _)| d == db);
        for db in &g.databases {
            match self.merged(db) {
                Some(shard) => {
                    set.insert(shard.clone());
                }
                None if has_tables(db) => {}
                None => return Placement::Barrier(BarrierReason::UnknownTables),
            }
        }
        shards(set)
    }

    /// [`ShardBy::Key`]: the buckets of its rows' keys (see [`super::keys`]).
    /// Without a catalog every table is unknown: one shard per table.
    fn key_placement(&self, g: &Group, buckets: u32) -> Placement {
        let empty = KeyCatalog::default();
        let catalog = self.catalog.as_deref().unwrap_or(&empty);
        match keys::group_shards(g, catalog, buckets, |db| self.merged(db)) {
            Ok(set) => shards(set),
            Err(keys::UnknownRows) => Placement::Barrier(BarrierReason::UnknownRows),
        }
    }

    /// Text identifying this configuration, the same for equivalent specs
    /// (`by=database;app=db1,db2;other=db3`, shards and databases sorted):
    /// the progress table keeps it, and a restart under a different map is
    /// refused, because its watermarks would count other shards.
    pub fn fingerprint(&self) -> String {
        let mut out = format!("by={}", self.by);
        for (name, dbs) in &self.shards {
            out.push(';');
            out.push_str(name);
            out.push('=');
            for (i, db) in dbs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(db);
            }
        }
        out
    }
}

/// Sorted, deduplicated shards; [`Shard::none`] for no shard at all.
fn shards(shards: impl IntoIterator<Item = Shard>) -> Placement {
    let mut v: Vec<Shard> = shards
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if v.is_empty() {
        v.push(Shard::none());
    }
    Placement::Shards(v)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::binlog::events::FormatDescription;

    fn group(kind: GroupKind, dbs: &[&str], exact: bool, tables: &[(&str, &str)]) -> Group {
        Group {
            gtid: None,
            server_id: 1,
            file: Arc::from("bin.000001"),
            start_pos: 4,
            end_pos: 100,
            source_file: Arc::from("bin.000001"),
            source_pos: 4,
            end: crate::group::GroupEnd::Commit,
            after_primary_start: false,
            databases: dbs.iter().map(|s| s.to_string()).collect(),
            databases_exact: exact,
            tables: tables
                .iter()
                .map(|(d, t)| (d.to_string(), t.to_string()))
                .collect(),
            kind,
            gtid_flags: 0,
            commit_id: None,
            timestamp: 0,
            events: Vec::new(),
            bytes: Vec::new(),
            format: Arc::new(FormatDescription {
                binlog_version: 4,
                server_version: "10.11.0-MariaDB".into(),
                create_timestamp: 0,
                header_len: 19,
                post_header_lens: Vec::new(),
                checksum_alg: 1,
                raw_event: Vec::new(),
            }),
        }
    }

    fn rows(tables: &[(&str, &str)]) -> Group {
        let dbs: BTreeSet<&str> = tables.iter().map(|(d, _)| *d).collect();
        let dbs: Vec<&str> = dbs.into_iter().collect();
        group(GroupKind::RowDml, &dbs, true, tables)
    }

    fn placed(p: Placement) -> String {
        match p {
            Placement::Shards(s) => s
                .iter()
                .map(|s| format!("[{}]", s.as_str()))
                .collect::<Vec<_>>()
                .join(" "),
            Placement::Barrier(r) => format!("barrier:{}", r.as_str()),
        }
    }

    #[test]
    fn parse_accepts_a_map_and_ignores_blanks() {
        let m = ShardMap::parse(" app = db1 , db2 ; other=db3;; ", ShardBy::Database).unwrap();
        assert_eq!(m.merged("db1").map(Shard::as_str), Some("app"));
        assert_eq!(m.merged("db2").map(Shard::as_str), Some("app"));
        assert_eq!(m.merged("db3").map(Shard::as_str), Some("other"));
        assert_eq!(m.merged("db4"), None);
        assert_eq!(m.shard_of_database("db4").as_str(), "db4");
        assert_eq!(m.shard_of_table("db4", "t").as_str(), "db4.t");
        assert_eq!(m.shard_of_table("db1", "t").as_str(), "app");
        assert_eq!(
            ShardMap::parse("", ShardBy::Table).unwrap(),
            ShardMap::new(ShardBy::Table)
        );
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let err = |spec: &str| {
            ShardMap::parse(spec, ShardBy::Database)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("app=db1,db2;other=db2"),
            "database `db2` is in shard `app` and in shard `other`"
        );
        assert_eq!(
            err("app=db1,db1"),
            "database `db1` is in shard `app` and in shard `app`"
        );
        assert_eq!(err("app=db1;app=db2"), "shard `app` is defined twice");
        assert_eq!(err("=db1"), "entry `=db1`: the shard name is empty");
        assert_eq!(err("app="), "shard `app`: a database name is empty");
        assert_eq!(err("app=db1,,db2"), "shard `app`: a database name is empty");
        assert_eq!(err("app"), "entry `app`: expected NAME=DB[,DB...]");
    }

    #[test]
    fn fingerprint_is_canonical() {
        let a = ShardMap::parse("z=d2,d1;a=d3", ShardBy::Database).unwrap();
        let b = ShardMap::parse(" a=d3 ; z=d1,d2 ", ShardBy::Database).unwrap();
        assert_eq!(a.fingerprint(), "by=database;a=d3;z=d1,d2");
        assert_eq!(a.fingerprint(), b.fingerprint());
        let t = ShardMap::parse("a=d3;z=d1,d2", ShardBy::Table).unwrap();
        assert_eq!(t.fingerprint(), "by=table;a=d3;z=d1,d2");
        assert_eq!(
            ShardMap::new(ShardBy::Database).fingerprint(),
            "by=database"
        );
        assert_ne!(
            ShardMap::parse("a=d1,d2", ShardBy::Database)
                .unwrap()
                .fingerprint(),
            ShardMap::parse("a=d1;b=d2", ShardBy::Database)
                .unwrap()
                .fingerprint()
        );
    }

    #[test]
    fn shard_by_parses() {
        assert_eq!("database".parse::<ShardBy>(), Ok(ShardBy::Database));
        assert_eq!("table".parse::<ShardBy>(), Ok(ShardBy::Table));
        assert!("rows".parse::<ShardBy>().unwrap_err().contains("`rows`"));
    }

    #[test]
    fn row_dml_by_database() {
        let m = ShardMap::parse("app=db1,db2", ShardBy::Database).unwrap();
        let g = rows(&[("db1", "a"), ("db2", "b"), ("db3", "c"), ("db3", "d")]);
        assert_eq!(placed(m.placement(&g)), "[app] [db3]");
        let g = rows(&[("db4", "a")]);
        assert_eq!(placed(m.placement(&g)), "[db4]");
        // An empty transaction: the shard of no database.
        let g = rows(&[]);
        assert_eq!(placed(m.placement(&g)), "[]");
        // Row groups always know their databases; if one did not:
        let g = group(GroupKind::RowDml, &["db1"], false, &[("db1", "a")]);
        assert_eq!(placed(m.placement(&g)), "barrier:unknown_databases");
    }

    #[test]
    fn row_dml_by_table() {
        let m = ShardMap::parse("app=db1,db2", ShardBy::Table).unwrap();
        let g = rows(&[("db1", "a"), ("db2", "b"), ("db3", "c"), ("db3", "d")]);
        assert_eq!(placed(m.placement(&g)), "[app] [db3.c] [db3.d]");
        let g = rows(&[]);
        assert_eq!(placed(m.placement(&g)), "[]");
        // A database without its tables cannot be placed unless merged.
        let g = group(GroupKind::RowDml, &["db1", "db3"], true, &[("db3", "c")]);
        assert_eq!(placed(m.placement(&g)), "[app] [db3.c]");
        let g = group(GroupKind::RowDml, &["db4"], true, &[]);
        assert_eq!(placed(m.placement(&g)), "barrier:unknown_tables");
    }

    #[test]
    fn statement_dml() {
        let by_db = ShardMap::parse("app=db1,db2", ShardBy::Database).unwrap();
        let by_table = ShardMap::parse("app=db1,db2", ShardBy::Table).unwrap();
        // Databases listed by the server (MySQL's updated-db-names).
        let g = group(GroupKind::StatementDml, &["db1", "db3"], true, &[]);
        assert_eq!(placed(by_db.placement(&g)), "[app] [db3]");
        assert_eq!(placed(by_table.placement(&g)), "barrier:unknown_tables");
        let g = group(GroupKind::StatementDml, &["db1", "db2"], true, &[]);
        assert_eq!(placed(by_table.placement(&g)), "[app]");
        // A statement mixed with row events of a table in an unmerged
        // database: still unknown tables.
        let g = group(GroupKind::StatementDml, &["db3"], true, &[("db3", "t")]);
        assert_eq!(placed(by_table.placement(&g)), "barrier:unknown_tables");
        // Listed as updating nothing.
        let g = group(GroupKind::StatementDml, &[], true, &[]);
        assert_eq!(placed(by_db.placement(&g)), "[]");
        assert_eq!(placed(by_table.placement(&g)), "[]");
        // Only the default database is known: proves nothing.
        let g = group(GroupKind::StatementDml, &["db1"], false, &[]);
        assert_eq!(placed(by_db.placement(&g)), "barrier:unknown_databases");
        assert_eq!(placed(by_table.placement(&g)), "barrier:unknown_databases");
    }

    #[test]
    fn other_kinds_are_barriers() {
        for by in [ShardBy::Database, ShardBy::Table] {
            let m = ShardMap::new(by);
            let cases = [
                (GroupKind::Ddl, "barrier:ddl"),
                (GroupKind::NonTransactional, "barrier:non_transactional"),
                (GroupKind::Xa, "barrier:xa"),
                (GroupKind::Unknown, "barrier:unclassified"),
            ];
            for (kind, want) in cases {
                // Even with databases known exactly.
                let g = group(kind, &["db1"], true, &[("db1", "t")]);
                assert_eq!(placed(m.placement(&g)), want, "{kind:?} by {by}");
            }
        }
    }
}
