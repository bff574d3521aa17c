//! Replication filters (`--include-db`, `--exclude-db`, `--include-table`,
//! `--exclude-table`), with the meaning of the server's `replicate-do-db`,
//! `replicate-ignore-db`, `replicate-wild-do-table` and
//! `replicate-wild-ignore-table`.
//!
//! A table `db.t` is replicated iff its database passes the database rules
//! (in `--include-db` when any is given, not in `--exclude-db`) and the
//! table passes the table rules (matches an `--include-table` pattern when
//! any is given, matches no `--exclude-table` pattern). Patterns are
//! `db.table` with `LIKE` wildcards (`%` any run, `_` one character, `\`
//! escapes), as the wild rules take them; a name without wildcards is the
//! exact table (`replicate-do-table`).
//!
//! * Row events are filtered per Table_map: the Table_map of a filtered
//!   table and its Rows events leave the group. A statement whose last Rows
//!   event (the one closing the statement) is left out gets that flag on
//!   its last kept one.
//! * Statement events (a Query that is not BEGIN/COMMIT/ROLLBACK) are
//!   judged by their default database against the database rules, as the
//!   server judges `replicate-do-db` (a statement without one is left out
//!   when `--include-db` is given). Unlike the server's wild rules,
//!   parapply does not parse the statement for its tables: the table rules
//!   do not filter statements. A group whose statements are all filtered is
//!   left out whole; one with some kept keeps all of them.
//! * `--rewrite-db FROM->TO` renames the database of Table_map events and
//!   the default database of Query events before the other rules are
//!   judged (which see the new name); statement texts are not rewritten,
//!   as with `replicate-rewrite-db`.
//! * A group left with nothing to apply is empty ([`Filtered::Empty`]): the
//!   engine counts it as done, so the watermarks move past it and a
//!   restart does not read it again; the scheduler never sees it.

use std::str::FromStr;

use super::error::{DefiniteError, GroupRef};
use crate::binlog::constants::{rows_flags, HEADER_LEN};
use crate::binlog::{checksum, Event, EventType};
use crate::group::{EventSpan, Group, GroupKind};

/// A `db.table` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    db: String,
    table: String,
}

impl FromStr for TablePattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('.') {
            Some((db, table)) if !db.is_empty() && !table.is_empty() => Ok(TablePattern {
                db: db.to_string(),
                table: table.to_string(),
            }),
            _ => Err(format!(
                "`{s}`: expected db.table (LIKE wildcards % and _ allowed)"
            )),
        }
    }
}

impl TablePattern {
    fn matches(&self, db: &str, table: &str) -> bool {
        like(self.db.as_bytes(), db.as_bytes()) && like(self.table.as_bytes(), table.as_bytes())
    }
}

/// `LIKE` matching: `%`, `_`, `\` escaping.
fn like(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'%', rest)) => (0..=s.len()).any(|i| like(rest, &s[i..])),
        Some((b'_', rest)) => !s.is_empty() && like(rest, &s[1..]),
        Some((b'\\', rest)) if !rest.is_empty() => {
            s.first() == Some(&rest[0]) && like(&rest[1..], &s[1..])
        }
        Some((c, rest)) => s.first() == Some(c) && like(rest, &s[1..]),
    }
}

/// `--rewrite-db FROM->TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteDb {
    /// The primary's database.
    pub from: String,
    /// The target's.
    pub to: String,
}

impl FromStr for RewriteDb {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once("->") {
            Some((from, to)) if !from.trim().is_empty() && !to.trim().is_empty() => Ok(RewriteDb {
                from: from.trim().to_string(),
                to: to.trim().to_string(),
            }),
            _ => Err(format!("`{s}`: expected FROM->TO")),
        }
    }
}

/// The filter rules of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `--include-db`.
    pub include_db: Vec<String>,
    /// `--exclude-db`.
    pub exclude_db: Vec<String>,
    /// `--include-table`.
    pub include_table: Vec<TablePattern>,
    /// `--exclude-table`.
    pub exclude_table: Vec<TablePattern>,
    /// `--rewrite-db`: applied first; the other rules see the new names.
    pub rewrite_db: Vec<RewriteDb>,
}

/// What [`Filter::apply`] left of a group.
#[derive(Debug)]
pub enum Filtered {
    /// Something to apply (the group itself, or what is left of it).
    Keep(Group),
    /// Nothing to apply: done, as far as the watermarks go.
    Empty(Group),
}

impl Filter {
    /// No rule: every group is kept as it is.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    fn database(&self, db: &str) -> bool {
        (self.include_db.is_empty() || self.include_db.iter().any(|d| d == db))
            && !self.exclude_db.iter().any(|d| d == db)
    }

    /// Whether `db.table` is replicated.
    pub fn table(&self, db: &str, table: &str) -> bool {
        self.database(db)
            && (self.include_table.is_empty()
                || self.include_table.iter().any(|p| p.matches(db, table)))
            && !self.exclude_table.iter().any(|p| p.matches(db, table))
    }

    /// The group without what the rules leave out; an event that cannot be
    /// decoded is an error (the group, and the event's type and offset).
    pub fn apply(&self, g: Group) -> Result<Filtered, DefiniteError> {
        if self.is_empty() || g.events.is_empty() {
            return Ok(Filtered::Keep(g));
        }
        let g = self.rewrite(g);
        let fde = g.format.clone();
        let mut dropped_maps: Vec<u64> = Vec::new();
        let mut keep: Vec<bool> = Vec::with_capacity(g.events.len());
        // Indexes of events whose STMT_END flag is to be set.
        let mut close: Vec<usize> = Vec::new();
        let mut last_kept_rows: Option<usize> = None;
        let (mut statements, mut kept_statements, mut kept_rows) = (0, 0, 0);
        for (i, span) in g.events.iter().enumerate() {
            let bytes = &g.bytes[span.offset..span.offset + span.len];
            let t = span.event_type;
            let decodable = t == EventType::TABLE_MAP || t.is_rows() || t.is_query();
            if !decodable {
                keep.push(true);
                continue;
            }
            let body = &bytes[HEADER_LEN..bytes.len() - fde.checksum_len()];
            let ev = match Event::decode(t, body, &fde) {
                Ok(ev) => ev,
                Err(e) => {
                    let message = format!("{} event at offset {}: {e}", t.name(), span.offset);
                    return Err(DefiniteError::Filter {
                        group: GroupRef::of(&g),
                        message,
                    });
                }
            };
            let k = match ev {
                Event::TableMap(m) => {
                    let ok = self.table(
                        &String::from_utf8_lossy(m.db),
                        &String::from_utf8_lossy(m.table),
                    );
                    if !ok {
                        dropped_maps.push(m.table_id);
                    }
                    ok
                }
                Event::Rows(r) => {
                    let ok = !dropped_maps.contains(&r.table_id);
                    if ok {
                        kept_rows += 1;
                        last_kept_rows = Some(i);
                    }
                    if r.stmt_end() {
                        if let Some(j) = last_kept_rows.take().filter(|_| !ok) {
                            close.push(j);
                        }
                        dropped_maps.clear();
                    }
                    ok
                }
                Event::Query(q) if q.is_begin() || q.is_commit() || q.is_rollback() => true,
                Event::Query(q) => {
                    statements += 1;
                    // No default database: left out under --include-db,
                    // as replicate-do-db leaves it out.
                    let ok = self.database(&String::from_utf8_lossy(q.db));
                    kept_statements += usize::from(ok);
                    ok
                }
                _ => true,
            };
            keep.push(k);
        }
        if statements > 0 && kept_statements > 0 {
            // Some statements kept: all of them (see the module doc).
            for (k, span) in keep.iter_mut().zip(&g.events) {
                if span.event_type.is_query() {
                    *k = true;
                }
            }
        }
        if kept_rows == 0 && kept_statements == 0 {
            return Ok(Filtered::Empty(g));
        }
        if keep.iter().all(|k| *k) {
            return Ok(Filtered::Keep(g));
        }
        let mut g = rebuild(g, &keep, &close, fde.checksum_len());
        retable(&mut g, self);
        Ok(Filtered::Keep(g))
    }
}

impl Filter {
    /// The new name of database `db`, if `--rewrite-db` renames it.
    fn renamed(&self, db: &[u8]) -> Option<&str> {
        self.rewrite_db
            .iter()
            .find(|r| r.from.as_bytes() == db)
            .map(|r| r.to.as_str())
    }

    /// `g` with the databases of its Table_map and Query events renamed
    /// (`--rewrite-db`). Statement texts are not rewritten: a statement
    /// that names its tables' database itself still writes there, as with
    /// the server's `replicate-rewrite-db`.
    fn rewrite(&self, mut g: Group) -> Group {
        if self.rewrite_db.is_empty() {
            return g;
        }
        let fde = g.format.clone();
        let checksum_len = fde.checksum_len();
        let mut bytes = Vec::with_capacity(g.bytes.len());
        let mut events = Vec::with_capacity(g.events.len());
        for span in &g.events {
            let ev = &g.bytes[span.offset..span.offset + span.len];
            let t = span.event_type;
            let phl = fde.post_header_len(t).unwrap_or(0);
            // Where the database name's length byte and the name lie.
            let place = if t == EventType::TABLE_MAP {
                let at = HEADER_LEN + phl;
                ev.get(at).map(|&n| (at, at + 1, usize::from(n)))
            } else if t.is_query() && phl >= 13 {
                let vars = u16::from_le_bytes([ev[HEADER_LEN + 11], ev[HEADER_LEN + 12]]);
                let at = HEADER_LEN + 8;
                ev.get(at)
                    .map(|&n| (at, HEADER_LEN + phl + usize::from(vars), usize::from(n)))
            } else {
                None
            };
            let offset = bytes.len();
            let new = place.and_then(|(len_at, db_at, n)| {
                let db = ev.get(db_at..db_at + n)?;
                let to = self.renamed(db)?;
                let mut out = Vec::with_capacity(ev.len() + to.len());
                out.extend_from_slice(&ev[..db_at]);
                out.extend_from_slice(to.as_bytes());
                out.extend_from_slice(&ev[db_at + n..]);
                out[len_at] = u8::try_from(to.len()).ok()?;
                let size = u32::try_from(out.len()).ok()?;
                out[9..13].copy_from_slice(&size.to_le_bytes());
                if checksum_len == 4 {
                    let crc = checksum::compute(&out)?;
                    let n = out.len();
                    out[n - 4..].copy_from_slice(&crc.to_le_bytes());
                }
                Some(out)
            });
            bytes.extend_from_slice(new.as_deref().unwrap_or(ev));
            events.push(EventSpan {
                offset,
                len: bytes.len() - offset,
                event_type: t,
            });
        }
        g.bytes = bytes;
        g.events = events;
        for (db, _) in g.tables.iter_mut() {
            if let Some(to) = self.renamed(db.as_bytes()) {
                *db = to.to_string();
            }
        }
        g.tables.sort();
        for db in g.databases.iter_mut() {
            if let Some(to) = self.renamed(db.as_bytes()) {
                *db = to.to_string();
            }
        }
        g.databases.sort();
        g.databases.dedup();
        g
    }
}

/// `g` with the kept events only; the events in `close` get the STMT_END
/// flag (and a new checksum).
fn rebuild(mut g: Group, keep: &[bool], close: &[usize], checksum_len: usize) -> Group {
    let mut bytes = Vec::with_capacity(g.bytes.len());
    let mut events = Vec::with_capacity(g.events.len());
    for (i, span) in g.events.iter().enumerate() {
        if !keep[i] {
            continue;
        }
        let offset = bytes.len();
        bytes.extend_from_slice(&g.bytes[span.offset..span.offset + span.len]);
        if close.contains(&i) {
            let ev = &mut bytes[offset..];
            // Post-header: table id (6 bytes), then the flags.
            let at = HEADER_LEN + 6;
            let flags = u16::from_le_bytes([ev[at], ev[at + 1]]) | rows_flags::STMT_END;
            ev[at..at + 2].copy_from_slice(&flags.to_le_bytes());
            if checksum_len == 4 {
                if let Some(crc) = checksum::compute(ev) {
                    let n = ev.len();
                    ev[n - 4..].copy_from_slice(&crc.to_le_bytes());
                }
            }
        }
        events.push(EventSpan {
            offset,
            len: span.len,
            event_type: span.event_type,
        });
    }
    g.bytes = bytes;
    g.events = events;
    g
}

/// The tables and databases a rebuilt row group touches.
fn retable(g: &mut Group, filter: &Filter) {
    g.tables.retain(|(db, t)| filter.table(db, t));
    if g.kind == GroupKind::RowDml && g.databases_exact {
        let mut dbs: Vec<String> = g.tables.iter().map(|(d, _)| d.clone()).collect();
        dbs.dedup();
        g.databases = dbs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_the_wild_rules() {
        let p: TablePattern = "db%.t\\_%".parse().unwrap();
        assert!(p.matches("db1", "t_a"));
        assert!(!p.matches("db1", "tx"));
        assert!(!p.matches("xdb", "t_a"));
        assert!("nodot".parse::<TablePattern>().is_err());
        let f = Filter {
            include_db: vec!["a".into(), "b".into()],
            exclude_table: vec!["b.secret%".parse().unwrap()],
            ..Filter::default()
        };
        assert!(f.table("a", "x") && f.table("b", "x"));
        assert!(!f.table("b", "secret_1") && !f.table("c", "x"));
        let f = Filter {
            include_table: vec!["a.t_".parse().unwrap()],
            exclude_db: vec!["b".into()],
            ..Filter::default()
        };
        assert!(f.table("a", "t1") && !f.table("a", "t12") && !f.table("b", "t1"));
    }
}
