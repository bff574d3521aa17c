//! What two servers must agree on after replication: every user database's
//! table checksums, columns, routines, triggers and views.

use std::collections::BTreeMap;

use super::{Result, Server};

/// The replicated state of a server's user databases (all but the system
/// schemas), each part keyed by its qualified name so that two snapshots
/// compare item by item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `CHECKSUM TABLE … EXTENDED` of each base table, by `db.table`.
    pub checksums: BTreeMap<String, u64>,
    /// Each column's type, collation, nullability and default, by
    /// `db.table.column` (views' columns too).
    pub columns: BTreeMap<String, String>,
    /// Each stored function's and procedure's kind, definer, body,
    /// characteristics and sql_mode, by `db.name`.
    pub routines: BTreeMap<String, String>,
    /// Each trigger's table, timing, event, order, body and definer, by
    /// `db.name`.
    pub triggers: BTreeMap<String, String>,
    /// Each view's definition, check option, definer and security, by
    /// `db.name`.
    pub views: BTreeMap<String, String>,
}

impl Snapshot {
    /// The snapshot of every user database of `server`.
    pub fn of(server: &Server) -> Result<Snapshot> {
        let dbs = server.databases()?;
        let names: Vec<&str> = dbs.iter().map(String::as_str).collect();
        Self::of_databases(server, &names)
    }

    /// The snapshot of `dbs` on `server`.
    pub fn of_databases(server: &Server, dbs: &[&str]) -> Result<Snapshot> {
        if dbs.is_empty() {
            return Ok(Snapshot::default());
        }
        let list = dbs
            .iter()
            .map(|d| format!("'{}'", d.replace('\\', "\\\\").replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(",");
        let keyed = |sql: String| -> Result<BTreeMap<String, String>> {
            Ok(server
                .query::<(String, Option<String>)>(&sql)?
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect())
        };
        Ok(Snapshot {
            checksums: server.checksums(dbs)?,
            columns: keyed(format!(
                "SELECT CONCAT_WS('.', TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME), \
                 CONCAT_WS(' | ', COLUMN_TYPE, IFNULL(COLLATION_NAME, '-'), IS_NULLABLE, \
                 IFNULL(COLUMN_DEFAULT, '-'), EXTRA, ORDINAL_POSITION) \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN ({list})"
            ))?,
            routines: keyed(format!(
                "SELECT CONCAT_WS('.', ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE), \
                 CONCAT_WS(' | ', DEFINER, IFNULL(DTD_IDENTIFIER, '-'), IS_DETERMINISTIC, \
                 SQL_DATA_ACCESS, SECURITY_TYPE, SQL_MODE, ROUTINE_DEFINITION) \
                 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN ({list})"
            ))?,
            triggers: keyed(format!(
                "SELECT CONCAT_WS('.', TRIGGER_SCHEMA, TRIGGER_NAME), \
                 CONCAT_WS(' | ', EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, \
                 ACTION_ORDER, DEFINER, SQL_MODE, ACTION_STATEMENT) \
                 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN ({list})"
            ))?,
            views: keyed(format!(
                "SELECT CONCAT_WS('.', TABLE_SCHEMA, TABLE_NAME), \
                 CONCAT_WS(' | ', CHECK_OPTION, DEFINER, SECURITY_TYPE, ALGORITHM, \
                 VIEW_DEFINITION) \
                 FROM information_schema.VIEWS WHERE TABLE_SCHEMA IN ({list})"
            ))?,
        })
    }

    /// The items in which `other` differs from `self`, one line each
    /// (`checksum db.t: 123 != 456`, `trigger db.tr: missing`, …); empty
    /// when the two are equal.
    pub fn differences(&self, other: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        diff_maps("checksum", &self.checksums, &other.checksums, &mut out);
        diff_maps("column", &self.columns, &other.columns, &mut out);
        diff_maps("routine", &self.routines, &other.routines, &mut out);
        diff_maps("trigger", &self.triggers, &other.triggers, &mut out);
        diff_maps("view", &self.views, &other.views, &mut out);
        out
    }

    /// The snapshot without database `db` (e.g. parapply's own progress
    /// database on a target).
    pub fn without_database(mut self, db: &str) -> Snapshot {
        let prefix = format!("{db}.");
        let keep = |k: &String| !k.starts_with(&prefix);
        self.checksums.retain(|k, _| keep(k));
        self.columns.retain(|k, _| keep(k));
        self.routines.retain(|k, _| keep(k));
        self.triggers.retain(|k, _| keep(k));
        self.views.retain(|k, _| keep(k));
        self
    }

    /// How many items the snapshot holds (tables, columns, routines,
    /// triggers, views).
    pub fn len(&self) -> usize {
        self.checksums.len()
            + self.columns.len()
            + self.routines.len()
            + self.triggers.len()
            + self.views.len()
    }

    /// Whether it holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One line per key whose value differs or that one side lacks.
fn diff_maps<V: PartialEq + std::fmt::Debug>(
    what: &str,
    want: &BTreeMap<String, V>,
    got: &BTreeMap<String, V>,
    out: &mut Vec<String>,
) {
    for (k, v) in want {
        match got.get(k) {
            None => out.push(format!("{what} {k}: missing")),
            Some(g) if g != v => out.push(format!("{what} {k}: {v:?} != {g:?}")),
            Some(_) => {}
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        out.push(format!("{what} {k}: extra"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_item() {
        let mut a = Snapshot::default();
        a.checksums.insert("d.t".into(), 1);
        a.triggers.insert("d.tr".into(), "body".into());
        let mut b = a.clone();
        assert!(a.differences(&b).is_empty());
        b.checksums.insert("d.t".into(), 2);
        b.triggers.clear();
        b.views.insert("d.v".into(), "select 1".into());
        assert_eq!(
            a.differences(&b),
            [
                "checksum d.t: 1 != 2",
                "trigger d.tr: missing",
                "view d.v: extra"
            ]
        );
        assert_eq!(a.len(), 2);
        b.checksums.insert("parapply.p".into(), 1);
        assert_eq!(b.without_database("parapply").checksums.len(), 1);
    }
}
