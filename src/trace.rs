//! Step logs in the format of `tla/TracePromotion.tla` (tla/README.md,
//! "Trace validation"): `parapply promote` and the apply engine under it
//! write one TLA+ record per step of the spec — a freeze, the plan, each
//! catch-up transaction, the switch, each re-point, each transaction an
//! applier commits — so that a recorded run can be checked against the
//! spec with `tla/check`.
//!
//! A [`TraceSink`] appends records, one per line, to a file shared by every
//! thread and process that writes the run (opened in append mode; each
//! record is one `write` of a whole line, so records of concurrent writers
//! never mix and a killed process leaves whole lines). [`module`] turns the
//! lines (with the records the test harness adds: the old primary's
//! commits, the mirrors receiving) into the module `TraceLog` the checker
//! reads.
//!
//! Names: a replica is the name promote was given for it; a server in a
//! GTID is the name of the server with that `server_id` (the old primary's
//! name for its own), given by the caller; a shard is a database name.
//!
//! An applier transaction is logged when its commit succeeded, as its check
//! (`ApplyBegin`) immediately followed by its commit (`ApplyCommit`): a
//! behaviour in which the check happened just before the commit, which the
//! spec allows whenever the real order does (nothing else the trace shows
//! can depend on the moment of the check).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::position::MariaGtid;

/// Where one writer's trace records go, and how it names servers.
#[derive(Debug, Clone)]
pub struct TraceSink {
    file: Arc<Mutex<File>>,
    /// The replica this writer acts on (an applier's target).
    replica: String,
    /// `server_id → name`, for the GTIDs of the records.
    servers: Arc<BTreeMap<u32, String>>,
    /// Transactions are promote's catch-up (`CatchUp` records), not the
    /// applier's steady state (`ApplyBegin`/`ApplyCommit`).
    catch_up: bool,
}

impl TraceSink {
    /// Appends to `path` (created when missing).
    pub fn open(path: &Path, servers: BTreeMap<u32, String>) -> std::io::Result<TraceSink> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(TraceSink {
            file: Arc::new(Mutex::new(file)),
            replica: String::new(),
            servers: Arc::new(servers),
            catch_up: false,
        })
    }

    /// The same file, for the applier (or catch-up, when `catch_up`) of
    /// `replica`.
    pub fn for_replica(&self, replica: &str, catch_up: bool) -> TraceSink {
        TraceSink {
            replica: replica.to_string(),
            catch_up,
            ..self.clone()
        }
    }

    /// The replica this writer acts on.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Appends records, as one write (they stay together). A failure to
    /// write is logged, not fatal: the trace is evidence, not state.
    pub fn write(&self, records: &[String]) {
        if records.is_empty() {
            return;
        }
        let mut text = String::new();
        for r in records {
            text.push_str(r);
            text.push('\n');
        }
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f.write_all(text.as_bytes()) {
            tracing::warn!(error = %e, "writing the trace failed");
        }
    }

    /// A GTID as a TLA+ triple `<<domain, "server", seq>>`.
    pub fn gtid(&self, g: MariaGtid) -> String {
        let server = self
            .servers
            .get(&g.server)
            .cloned()
            .unwrap_or_else(|| g.server.to_string());
        format!("<<{}, {}, {}>>", g.domain, quote(&server), g.seq)
    }

    /// A target transaction of this writer's replica committed the groups
    /// `gtids` (in order; several for a batch, one transaction), or, when
    /// `separate`, one transaction per group (chained single-statement
    /// transactions).
    pub fn committed(&self, gtids: &[MariaGtid], separate: bool) {
        let r = quote(&self.replica);
        let mut out = Vec::new();
        if self.catch_up {
            for g in gtids {
                out.push(format!(
                    "[step |-> \"CatchUp\", replica |-> {r}, gtid |-> {}]",
                    self.gtid(*g)
                ));
            }
        } else {
            let txs: Vec<&[MariaGtid]> = if separate {
                gtids.chunks(1).collect()
            } else {
                vec![gtids]
            };
            for t in txs {
                let list = t
                    .iter()
                    .map(|g| self.gtid(*g))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push(format!(
                    "[step |-> \"ApplyBegin\", replica |-> {r}, gtids |-> <<{list}>>]"
                ));
                out.push(format!(
                    "[step |-> \"ApplyCommit\", replica |-> {r}, gtids |-> <<{list}>>]"
                ));
            }
        }
        self.write(&out);
    }

    /// A step of promote: `step` with the fields `fields` (already TLA+
    /// values).
    pub fn step(&self, step: &str, fields: &[(&str, String)]) {
        self.write(&[record(step, fields)]);
    }
}

/// One record: `[step |-> "STEP", name |-> value, …]`.
pub fn record(step: &str, fields: &[(&str, String)]) -> String {
    let mut s = format!("[step |-> {}", quote(step));
    for (k, v) in fields {
        s.push_str(&format!(", {k} |-> {v}"));
    }
    s.push(']');
    s
}

/// A TLA+ string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A set of TLA+ strings.
pub fn string_set<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<String> = items.into_iter().map(quote).collect();
    format!("{{{}}}", v.join(", "))
}

/// The module `TraceLog` holding `records` in order, with `comment` lines
/// above (each prefixed with `\* `).
pub fn module(comment: &str, records: &[String]) -> String {
    let mut s = String::from(
        "------------------------------- MODULE TraceLog -------------------------------\n",
    );
    for line in comment.lines() {
        s.push_str("\\* ");
        s.push_str(line);
        s.push('\n');
    }
    s.push_str("Trace == <<\n");
    for (i, r) in records.iter().enumerate() {
        s.push_str("    ");
        s.push_str(r);
        if i + 1 < records.len() {
            s.push(',');
        }
        s.push('\n');
    }
    s.push_str(">>\n");
    s.push_str("===============================================================================\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_module_have_the_format_of_the_readme() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trace");
        let sink = TraceSink::open(&path, BTreeMap::from([(1, "p0".to_string())])).unwrap();
        let r1 = sink.for_replica("r1", false);
        let g = |seq| MariaGtid {
            domain: 0,
            server: 1,
            seq,
        };
        r1.committed(&[g(1), g(2)], false);
        sink.for_replica("r2", true).committed(&[g(3)], false);
        sink.step("ChooseCandidate", &[("replica", quote("r\"2"))]);
        let lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(
            lines,
            [
                "[step |-> \"ApplyBegin\", replica |-> \"r1\", gtids |-> <<<<0, \"p0\", 1>>, <<0, \"p0\", 2>>>>]",
                "[step |-> \"ApplyCommit\", replica |-> \"r1\", gtids |-> <<<<0, \"p0\", 1>>, <<0, \"p0\", 2>>>>]",
                "[step |-> \"CatchUp\", replica |-> \"r2\", gtid |-> <<0, \"p0\", 3>>]",
                "[step |-> \"ChooseCandidate\", replica |-> \"r\\\"2\"]",
            ]
        );
        let m = module("a run", &lines);
        assert!(m.starts_with("------------------------------- MODULE TraceLog"));
        assert!(m.contains("\\* a run\nTrace == <<\n    [step |-> \"ApplyBegin\""));
        assert!(m.contains("\"ChooseCandidate\", replica |-> \"r\\\"2\"]\n>>\n===="));
    }
}
