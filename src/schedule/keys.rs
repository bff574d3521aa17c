//! Key-level shards (`--shard-by key[:K]`): a row group's shards are the
//! buckets of the primary and unique key values its rows carry.
//!
//! # Buckets
//!
//! For each row image of each Rows event (an update's before and after
//! images both), and for each unique key of the table (the primary key
//! included), the bucket is `hash(database, table, key name, key values)
//! mod K`; the shard of bucket `n` is named `#n`. Two groups that could
//! conflict on a key — the same primary key value, or a unique value one
//! of them frees and the other takes — share a bucket. A key with a NULL
//! in its columns constrains nothing and adds no bucket.
//!
//! Values are hashed as their bytes in the row image where equal values
//! have equal bytes (numbers, temporal types, DECIMAL, BIT, ENUM, SET,
//! binary strings; text under a `_bin` collation with its trailing spaces
//! cut, since those collations pad). Where equality is wider than the bytes
//! — text under a case- or accent-insensitive collation, a prefix of a
//! column, FLOAT and DOUBLE (`-0` equals `0`) — the column is left out of
//! the hash: the key's other columns still spread its values, and a key
//! made only of such columns puts all of its values in one bucket per
//! table. Leaving a column out only makes more groups share a bucket.
//!
//! The hash (FNV-1a, 64 bits) is fixed: a restart must find every group in
//! the buckets whose watermarks counted it.
//!
//! # Where keys come from
//!
//! The target's `information_schema` ([`KeyCatalog::queries`]): columns,
//! unique indexes, foreign keys, triggers. The engine reads it at start
//! and again after each DDL, before it places any group that follows the
//! DDL. (A Table_map's optional metadata, `binlog_row_metadata=FULL`, names
//! the primary key but no other unique key, so it cannot replace this.)
//!
//! # Fallbacks
//!
//! | table | shard |
//! |---|---|
//! | in a database merged by `--shard-map` | the merged shard |
//! | with foreign keys (either side) | one shard per set of databases linked by foreign keys, named after the first of them |
//! | without a primary key, with triggers, unknown to the target | `db.table` |
//! | keys that cannot be read from this event (a compressed event, a key column missing from the image, a column count the catalog does not know) | the whole group is a barrier ([`BarrierReason::UnknownRows`]) |
//!
//! Such a table's groups are ordered among themselves; they do not
//! conflict with other tables' keys (a trigger's own writes are logged as
//! row events of their tables, with their keys).
//!
//! [`BarrierReason::UnknownRows`]: super::BarrierReason::UnknownRows

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::binlog::constants::HEADER_LEN;
use crate::binlog::events::{ColumnValue, RowsEvent, TableMapEvent};
use crate::binlog::EventType;
use crate::group::Group;

use super::Shard;

/// How a key column's value is hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// Its bytes: equal values have equal bytes.
    Bytes,
    /// Its bytes without trailing spaces (text under a padding `_bin`
    /// collation).
    TrimSpaces,
    /// Not at all: equality is wider than the bytes.
    Skip,
}

/// One column of a unique key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyColumn {
    /// Its position in the table (0-based; the row image's order).
    pub index: usize,
    /// How it is hashed.
    pub compare: Compare,
}

/// A unique key (the primary key included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UniqueKey {
    /// The index name (`PRIMARY` for the primary key).
    pub name: String,
    /// Its columns, in index order.
    pub columns: Vec<KeyColumn>,
}

/// Why a table is not split by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// No primary key: one shard for the table.
    NoPrimaryKey,
    /// Triggers: one shard for the table.
    Triggers,
    /// Foreign keys: the shard of its databases linked by foreign keys.
    ForeignKeys(Shard),
}

/// What the scheduler knows of one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableKeys {
    /// Its number of columns.
    pub columns: usize,
    /// Its unique keys, the primary key first.
    pub keys: Vec<UniqueKey>,
    /// Set when the table is not split by key.
    pub fallback: Option<Fallback>,
}

/// The unique keys of a target's tables, read from its `information_schema`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyCatalog {
    tables: HashMap<(String, String), TableKeys>,
}

/// Schemas whose tables are never split (the server's own).
const SYSTEM: &str = "('mysql','information_schema','performance_schema','sys')";

/// A text cell of an `information_schema` row.
fn cell(row: &[Option<Vec<u8>>], i: usize) -> Option<String> {
    row.get(i)?
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn number(row: &[Option<Vec<u8>>], i: usize) -> Option<usize> {
    cell(row, i)?.parse().ok()
}

/// How a column of `data_type` under `collation` (`None`: not text) is
/// hashed.
fn compare_of(data_type: &str, collation: Option<&str>) -> Compare {
    let t = data_type.to_ascii_lowercase();
    if matches!(t.as_str(), "float" | "double" | "real" | "double precision") {
        return Compare::Skip;
    }
    let Some(coll) = collation.map(str::to_ascii_lowercase) else {
        return Compare::Bytes;
    };
    let ascii_space = ["latin1_", "utf8mb3_", "utf8mb4_", "utf8_", "ascii_"]
        .iter()
        .any(|p| coll.starts_with(p));
    if coll.ends_with("_nopad_bin") && ascii_space {
        Compare::Bytes
    } else if coll.ends_with("_bin") && ascii_space {
        Compare::TrimSpaces
    } else {
        Compare::Skip
    }
}

impl KeyCatalog {
    /// The four queries whose rows [`KeyCatalog::from_rows`] reads, in
    /// its argument order: columns, unique index columns, foreign keys,
    /// triggers.
    pub fn queries() -> [String; 4] {
        [
            format!(
                "SELECT TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION, COLUMN_NAME, DATA_TYPE, \
                 COLLATION_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA NOT IN {SYSTEM}"
            ),
            format!(
                "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART \
                 FROM information_schema.STATISTICS \
                 WHERE NON_UNIQUE = 0 AND TABLE_SCHEMA NOT IN {SYSTEM}"
            ),
            format!(
                "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, \
                 REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA NOT IN {SYSTEM}"
            ),
            format!(
                "SELECT EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS \
                 WHERE EVENT_OBJECT_SCHEMA NOT IN {SYSTEM}"
            ),
        ]
    }

    /// Builds the catalog from the rows of [`KeyCatalog::queries`]. Rows
    /// that do not parse are left out (their table then has fewer keys or
    /// none: the safe side, as a table without a primary key is not split).
    pub fn from_rows(
        columns: &[Vec<Option<Vec<u8>>>],
        indexes: &[Vec<Option<Vec<u8>>>],
        foreign_keys: &[Vec<Option<Vec<u8>>>],
        triggers: &[Vec<Option<Vec<u8>>>],
    ) -> Self {
        type Name = (String, String);
        // Table → column name → (index, compare), and its column count.
        let mut cols: HashMap<Name, HashMap<String, (usize, Compare)>> = HashMap::new();
        for r in columns {
            let (Some(db), Some(t), Some(pos), Some(name), Some(ty)) =
                (cell(r, 0), cell(r, 1), number(r, 2), cell(r, 3), cell(r, 4))
            else {
                continue;
            };
            let compare = compare_of(&ty, cell(r, 5).as_deref());
            cols.entry((db, t))
                .or_default()
                .insert(name.to_ascii_lowercase(), (pos.saturating_sub(1), compare));
        }
        // Table → index → (seq, column, prefix).
        type IndexParts = BTreeMap<String, Vec<(usize, String, bool)>>;
        let mut idx: HashMap<Name, IndexParts> = HashMap::new();
        for r in indexes {
            let (Some(db), Some(t), Some(index), Some(seq), Some(col)) =
                (cell(r, 0), cell(r, 1), cell(r, 2), number(r, 3), cell(r, 4))
            else {
                continue;
            };
            let prefix = cell(r, 5).is_some();
            idx.entry((db, t))
                .or_default()
                .entry(index)
                .or_default()
                .push((seq, col.to_ascii_lowercase(), prefix));
        }
        let fk_shards = fk_shards(foreign_keys);
        let triggered: BTreeSet<Name> = triggers
            .iter()
            .filter_map(|r| Some((cell(r, 0)?, cell(r, 1)?)))
            .collect();

        let mut tables = HashMap::new();
        for (name, columns) in cols {
            let mut keys = Vec::new();
            let mut complete = true;
            for (index, mut parts) in idx.remove(&name).unwrap_or_default() {
                parts.sort();
                let mut key = UniqueKey {
                    name: index.clone(),
                    columns: Vec::new(),
                };
                for (_, col, prefix) in parts {
                    let Some(&(i, compare)) = columns.get(&col) else {
                        complete = false;
                        continue;
                    };
                    let compare = if prefix { Compare::Skip } else { compare };
                    key.columns.push(KeyColumn { index: i, compare });
                }
                if index == "PRIMARY" {
                    keys.insert(0, key);
                } else {
                    keys.push(key);
                }
            }
            let fallback = if let Some(shard) = fk_shards.get(&name) {
                Some(Fallback::ForeignKeys(shard.clone()))
            } else if triggered.contains(&name) {
                Some(Fallback::Triggers)
            } else if !complete || keys.first().is_none_or(|k| k.name != "PRIMARY") {
                Some(Fallback::NoPrimaryKey)
            } else {
                None
            };
            tables.insert(
                name,
                TableKeys {
                    columns: columns.len(),
                    keys,
                    fallback,
                },
            );
        }
        KeyCatalog { tables }
    }

    /// Adds or replaces a table (tests, and callers that know a table's keys).
    pub fn insert(&mut self, db: &str, table: &str, keys: TableKeys) {
        self.tables.insert((db.to_owned(), table.to_owned()), keys);
    }

    /// What is known of `db.table`.
    pub fn table(&self, db: &str, table: &str) -> Option<&TableKeys> {
        self.tables.get(&(db.to_owned(), table.to_owned()))
    }

    /// Number of tables known.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether no table is known.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

/// Table → the shard of its databases linked by foreign keys (a union of
/// databases over every foreign key, named after the smallest name in it).
fn fk_shards(rows: &[Vec<Option<Vec<u8>>>]) -> HashMap<(String, String), Shard> {
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    fn root(parent: &mut BTreeMap<String, String>, x: &str) -> String {
        let mut r = x.to_owned();
        while let Some(p) = parent.get(&r).filter(|p| **p != r) {
            r = p.clone();
        }
        parent.insert(x.to_owned(), r.clone());
        r
    }
    let mut edges = Vec::new();
    for r in rows {
        let (Some(db), Some(t), Some(rdb), Some(rt)) =
            (cell(r, 0), cell(r, 1), cell(r, 2), cell(r, 3))
        else {
            continue;
        };
        parent.entry(db.clone()).or_insert_with(|| db.clone());
        parent.entry(rdb.clone()).or_insert_with(|| rdb.clone());
        let (a, b) = (root(&mut parent, &db), root(&mut parent, &rdb));
        // The smaller name becomes the root: the set's name.
        if a < b {
            parent.insert(b, a);
        } else if b < a {
            parent.insert(a, b);
        }
        edges.push(((db, t), (rdb, rt)));
    }
    let mut out = HashMap::new();
    for (child, referenced) in edges {
        let shard = Shard::new(root(&mut parent, &child.0));
        out.insert(child, shard.clone());
        out.insert(referenced, shard);
    }
    out
}

/// FNV-1a, 64 bits: fixed, so that buckets survive restarts and upgrades.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A length-prefixed field, so that `("ab", "c")` and `("a", "bc")`
    /// differ.
    fn field(&mut self, bytes: &[u8]) {
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }
}

/// The name of bucket `n`.
pub fn bucket_shard(n: u64) -> Shard {
    Shard::new(format!("#{n}"))
}

/// The bucket of one key's values in one row image: `None` if a key column
/// is missing from the image (the keys cannot be known), `Some(None)` if one
/// is NULL (the key constrains nothing).
pub fn key_bucket(
    db: &str,
    table: &str,
    key: &UniqueKey,
    image: &[ColumnValue<'_>],
    buckets: u32,
) -> Option<Option<u64>> {
    let mut h = Fnv::new();
    h.field(db.as_bytes());
    h.field(table.as_bytes());
    h.field(key.name.as_bytes());
    for col in &key.columns {
        match image.get(col.index)? {
            ColumnValue::Absent => return None,
            ColumnValue::Null => return Some(None),
            ColumnValue::Value(v) => match col.compare {
                Compare::Bytes => h.field(v),
                Compare::TrimSpaces => {
                    let end = v.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
                    h.field(&v[..end]);
                }
                Compare::Skip => h.field(&[]),
            },
        }
    }
    Some(Some(h.0 % u64::from(buckets.max(1))))
}

/// Why a group's keys cannot be known: it becomes a barrier.
#[derive(Debug)]
pub struct UnknownRows;

/// The shards of a row group under `--shard-by key:buckets` (see the module
/// doc); `merged` gives a database's `--shard-map` shard.
pub fn group_shards<'m>(
    g: &Group,
    catalog: &KeyCatalog,
    buckets: u32,
    merged: impl Fn(&str) -> Option<&'m Shard>,
) -> Result<BTreeSet<Shard>, UnknownRows> {
    let mut out = BTreeSet::new();
    let mut maps: HashMap<u64, TableMapEvent<'_>> = HashMap::new();
    let checksum = g.format.checksum_len();
    for (t, raw) in g.event_bytes() {
        let body = raw
            .get(HEADER_LEN..raw.len().saturating_sub(checksum))
            .ok_or(UnknownRows)?;
        if t == EventType::TABLE_MAP {
            let phl = g.format.post_header_len(t).unwrap_or(8);
            let tm = TableMapEvent::decode(body, phl).map_err(|_| UnknownRows)?;
            maps.insert(tm.table_id, tm);
            continue;
        }
        if !t.is_rows() {
            continue;
        }
        let phl = g.format.post_header_len(t).unwrap_or(8);
        let ev = RowsEvent::decode(body, t, phl).map_err(|_| UnknownRows)?;
        let tm = maps.get(&ev.table_id).ok_or(UnknownRows)?;
        let db = String::from_utf8_lossy(tm.db);
        let table = String::from_utf8_lossy(tm.table);
        if let Some(shard) = merged(&db) {
            out.insert(shard.clone());
            continue;
        }
        let keys = match catalog.table(&db, &table) {
            None
            | Some(TableKeys {
                fallback: Some(Fallback::NoPrimaryKey | Fallback::Triggers),
                ..
            }) => {
                out.insert(Shard::new(format!("{db}.{table}")));
                continue;
            }
            Some(TableKeys {
                fallback: Some(Fallback::ForeignKeys(shard)),
                ..
            }) => {
                out.insert(shard.clone());
                continue;
            }
            Some(k) => k,
        };
        if keys.columns != tm.column_types.len() {
            return Err(UnknownRows);
        }
        for image in ev.images(tm).map_err(|_| UnknownRows)? {
            for key in &keys.keys {
                if let Some(n) = key_bucket(&db, &table, key, &image, buckets).ok_or(UnknownRows)? {
                    out.insert(bucket_shard(n));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of an `information_schema` answer, one a line, cells split
    /// on whitespace, `-` for NULL.
    fn rows(text: &str) -> Vec<Vec<Option<Vec<u8>>>> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.split_whitespace()
                    .map(|c| (c != "-").then(|| c.as_bytes().to_vec()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn catalog_from_information_schema_rows() {
        let columns = rows(
            "d t      1 id    int     -
             d t      2 email varchar utf8mb4_general_ci
             d t      3 code  varchar utf8mb4_bin
             d nopk   1 x     int     -
             d child  1 id    int     -
             e parent 1 id    int     -
             d trig   1 id    int     -",
        );
        let indexes = rows(
            "d t      u       2 code  -
             d t      u       1 email -
             d t      PRIMARY 1 id    -
             d child  PRIMARY 1 id    -
             e parent PRIMARY 1 id    -
             d trig   PRIMARY 1 id    -",
        );
        let fks = rows("d child e parent");
        let triggers = rows("d trig");
        let c = KeyCatalog::from_rows(&columns, &indexes, &fks, &triggers);
        let t = c.table("d", "t").unwrap();
        assert_eq!(t.columns, 3);
        assert_eq!(t.fallback, None);
        assert_eq!(t.keys[0].name, "PRIMARY");
        assert_eq!(
            t.keys[1].columns,
            vec![
                KeyColumn {
                    index: 1,
                    compare: Compare::Skip
                },
                KeyColumn {
                    index: 2,
                    compare: Compare::TrimSpaces
                }
            ]
        );
        assert_eq!(
            c.table("d", "nopk").unwrap().fallback,
            Some(Fallback::NoPrimaryKey)
        );
        let fk = Some(Fallback::ForeignKeys(Shard::new("d")));
        assert_eq!(c.table("d", "child").unwrap().fallback, fk);
        assert_eq!(c.table("e", "parent").unwrap().fallback, fk);
        assert_eq!(
            c.table("d", "trig").unwrap().fallback,
            Some(Fallback::Triggers)
        );
        assert!(c.table("d", "missing").is_none());
    }

    #[test]
    fn buckets_follow_equality() {
        let key = UniqueKey {
            name: "u".into(),
            columns: vec![
                KeyColumn {
                    index: 0,
                    compare: Compare::TrimSpaces,
                },
                KeyColumn {
                    index: 1,
                    compare: Compare::Skip,
                },
            ],
        };
        let b = |a: &'static [u8], ci: &'static [u8]| {
            key_bucket(
                "d",
                "t",
                &key,
                &[ColumnValue::Value(a), ColumnValue::Value(ci)],
                1 << 20,
            )
        };
        // Trailing spaces and the skipped column do not count.
        assert_eq!(b(b"abc", b"X"), b(b"abc  ", b"x"));
        assert_ne!(b(b"abc", b"X"), b(b"abd", b"X"));
        // NULL: no bucket; absent: unknown.
        assert_eq!(
            key_bucket("d", "t", &key, &[ColumnValue::Null, ColumnValue::Null], 8),
            Some(None)
        );
        assert_eq!(
            key_bucket("d", "t", &key, &[ColumnValue::Absent, ColumnValue::Null], 8),
            None
        );
        // The hash is fixed (a restart must find the same buckets).
        let pk = UniqueKey {
            name: "PRIMARY".into(),
            columns: vec![KeyColumn {
                index: 0,
                compare: Compare::Bytes,
            }],
        };
        let v = 42u32.to_le_bytes();
        assert_eq!(
            key_bucket("db", "t", &pk, &[ColumnValue::Value(&v)], 1024),
            Some(Some(FIXED_BUCKET_OF_42))
        );
    }

    /// Bucket of `db.t` PRIMARY = 42 (INT) among 1024, computed once: a
    /// change of the hash would move watermarks under a running replica.
    const FIXED_BUCKET_OF_42: u64 = 741;

    use crate::binlog::synth;
    use crate::group::{EventSpan, GroupEnd, GroupKind};
    use proptest::prelude::*;
    use std::sync::Arc;

    /// A group of one Table_map and one Write_rows event of
    /// `d.t (id INT PRIMARY KEY, v VARCHAR(255) UNIQUE)` (synth's table).
    fn write_group(rows: &[(i32, Vec<u8>)]) -> Group {
        let meta = synth::EventMeta {
            timestamp: 1,
            server_id: 1,
            flags: 0,
        };
        let mut bytes = Vec::new();
        let mut events = Vec::new();
        let mut body = Vec::new();
        synth::table_map_body(&mut body, 7, "d", "t");
        let start = bytes.len();
        synth::push_event(&mut bytes, 4, meta, EventType::TABLE_MAP, &body);
        events.push(EventSpan {
            offset: start,
            len: bytes.len() - start,
            event_type: EventType::TABLE_MAP,
        });
        body.clear();
        let rows: Vec<(i32, &[u8])> = rows.iter().map(|(i, v)| (*i, &v[..])).collect();
        synth::write_rows_body(&mut body, 7, &rows);
        let start = bytes.len();
        synth::push_event(&mut bytes, 100, meta, EventType::WRITE_ROWS_V1, &body);
        events.push(EventSpan {
            offset: start,
            len: bytes.len() - start,
            event_type: EventType::WRITE_ROWS_V1,
        });
        Group {
            gtid: None,
            server_id: 1,
            file: Arc::from("bin.000001"),
            start_pos: 4,
            end_pos: 200,
            source_file: Arc::from("bin.000001"),
            source_pos: 4,
            databases: vec!["d".into()],
            databases_exact: true,
            tables: vec![("d".into(), "t".into())],
            kind: GroupKind::RowDml,
            end: GroupEnd::Commit,
            after_primary_start: false,
            gtid_flags: 0,
            commit_id: None,
            timestamp: 1,
            events,
            bytes,
            format: Arc::new(synth::format_description()),
        }
    }

    fn catalog(v: Compare) -> KeyCatalog {
        let mut c = KeyCatalog::default();
        let col = |index, compare| KeyColumn { index, compare };
        c.insert(
            "d",
            "t",
            TableKeys {
                columns: 2,
                keys: vec![
                    UniqueKey {
                        name: "PRIMARY".into(),
                        columns: vec![col(0, Compare::Bytes)],
                    },
                    UniqueKey {
                        name: "v".into(),
                        columns: vec![col(1, v)],
                    },
                ],
                fallback: None,
            },
        );
        c
    }

    /// The hash, written out again from the module doc.
    fn expected(key: &str, value: &[u8], buckets: u32) -> Shard {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut field = |b: &[u8]| {
            for &x in (b.len() as u64).to_le_bytes().iter().chain(b) {
                h ^= u64::from(x);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for f in [&b"d"[..], b"t", key.as_bytes(), value] {
            field(f);
        }
        bucket_shard(h % u64::from(buckets))
    }

    proptest! {
        /// A group's buckets are exactly those of its rows' keys: each row
        /// adds the bucket of its primary key and of its unique value, and
        /// nothing else does.
        #[test]
        fn a_groups_buckets_are_exact(
            rows in proptest::collection::vec((any::<i32>(), proptest::collection::vec(b'a'..=b'c', 0..4)), 1..8),
            buckets in 1u32..=4096,
        ) {
            let g = write_group(&rows);
            let got = group_shards(&g, &catalog(Compare::Bytes), buckets, |_| None).unwrap();
            let mut want = BTreeSet::new();
            for (id, v) in &rows {
                want.insert(expected("PRIMARY", &id.to_le_bytes(), buckets));
                want.insert(expected("v", v, buckets));
            }
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn fallbacks_and_unknown_rows() {
        let g = write_group(&[(1, b"x".to_vec())]);
        // Unknown table: the table's own shard.
        let set = group_shards(&g, &KeyCatalog::default(), 64, |_| None).unwrap();
        assert_eq!(set, BTreeSet::from([Shard::new("d.t")]));
        // A merged database: its shard.
        let app = Shard::new("app");
        let set = group_shards(&g, &catalog(Compare::Bytes), 64, |_| Some(&app)).unwrap();
        assert_eq!(set, BTreeSet::from([app.clone()]));
        // Foreign keys: the linked databases' shard.
        let mut c = catalog(Compare::Bytes);
        let mut t = c.table("d", "t").unwrap().clone();
        t.fallback = Some(Fallback::ForeignKeys(Shard::new("d")));
        c.insert("d", "t", t.clone());
        let set = group_shards(&g, &c, 64, |_| None).unwrap();
        assert_eq!(set, BTreeSet::from([Shard::new("d")]));
        // A column count the catalog does not know: unknown rows.
        t.fallback = None;
        t.columns = 3;
        c.insert("d", "t", t);
        assert!(group_shards(&g, &c, 64, |_| None).is_err());
        // A key column under a case-insensitive collation is not hashed.
        let a = group_shards(
            &write_group(&[(1, b"x".to_vec())]),
            &catalog(Compare::Skip),
            1 << 16,
            |_| None,
        )
        .unwrap();
        let b = group_shards(
            &write_group(&[(1, b"X".to_vec())]),
            &catalog(Compare::Skip),
            1 << 16,
            |_| None,
        )
        .unwrap();
        assert_eq!(a, b);
    }
}
