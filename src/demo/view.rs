//! What the demo shows: live progress lines (redrawn in place on a
//! terminal, one line every few seconds otherwise), the replicas' states
//! side by side, the promotion's plan and catch-up sets.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::progress::{compare, ReplicaState, StateOrder};
use crate::promote::{Plan, PromoteReport};

/// How often progress is printed when the output is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// One line of the live view.
#[derive(Debug, Clone, Default)]
pub(super) struct Line {
    /// `r1`, `sql`, `primary`.
    pub name: String,
    /// What runs there.
    pub what: &'static str,
    /// Groups applied (or orders written).
    pub done: u64,
    /// The goal, when there is one.
    pub goal: Option<u64>,
    /// Groups per second.
    pub rate: f64,
    /// Seconds behind, when known.
    pub lag: Option<f64>,
    /// Groups in flight, when known.
    pub in_flight: Option<u64>,
    /// Seconds it took to reach the goal.
    pub finished: Option<f64>,
}

impl Line {
    fn text(&self) -> String {
        let mut t = format!("{:<7} {:<11} {:>7}", self.name, self.what, self.done);
        if let Some(g) = self.goal {
            t.push_str(&format!("/{g:<7}"));
        }
        t.push_str(&format!(" {:>6.0}/s", self.rate));
        if let Some(l) = self.lag {
            t.push_str(&format!("  lag {l:>3.0} s"));
        }
        if let Some(f) = self.in_flight {
            t.push_str(&format!("  in flight {f:>5}"));
        }
        if let Some(s) = self.finished {
            t.push_str(&format!("  done in {s:.1} s"));
        }
        t
    }
}

/// The live view.
pub(super) struct Live {
    terminal: bool,
    drawn: usize,
    last_plain: Option<Instant>,
    started: Instant,
}

impl Live {
    /// A view that redraws in place (`terminal`) or prints now and then.
    pub fn new(terminal: bool) -> Live {
        Live {
            terminal,
            drawn: 0,
            last_plain: None,
            started: Instant::now(),
        }
    }

    /// Shows `lines`; `last`: the final state, always printed.
    pub fn show(&mut self, out: &mut dyn Write, lines: &[Line], last: bool) -> io::Result<()> {
        let elapsed = self.started.elapsed().as_secs_f64();
        if self.terminal {
            if self.drawn > 0 {
                write!(out, "\x1b[{}F", self.drawn)?;
            }
            for l in lines {
                writeln!(out, "\x1b[2K  {}", l.text())?;
            }
            self.drawn = lines.len();
        } else if last || self.last_plain.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
            writeln!(out, "  [{elapsed:>5.1} s]")?;
            for l in lines {
                writeln!(out, "    {}", l.text())?;
            }
            self.last_plain = Some(Instant::now());
        }
        if last {
            self.drawn = 0;
        }
        out.flush()
    }
}

/// How two replicas' states compare, for the summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PairOrder {
    /// One replica.
    pub a: String,
    /// The other.
    pub b: String,
    /// `equal`, `a_ahead`, `b_ahead` or `incomparable`.
    pub order: String,
    /// Databases where A holds groups B lacks.
    pub a_leads: Vec<String>,
    /// Databases where B holds groups A lacks.
    pub b_leads: Vec<String>,
}

/// Every pair of `states` compared.
pub(super) fn pair_orders(states: &[(String, ReplicaState)]) -> Vec<PairOrder> {
    let mut out = Vec::new();
    // Databases by name; the shards without a row of their own (the
    // low-watermark's) only when no database is named.
    let names = |v: Vec<crate::progress::state::Lead>| -> Vec<String> {
        let named: Vec<String> = v.iter().filter_map(|l| l.key.shard.clone()).collect();
        if named.is_empty() && !v.is_empty() {
            vec!["(databases without a row yet)".into()]
        } else {
            named
        }
    };
    for (i, (a, sa)) in states.iter().enumerate() {
        for (b, sb) in &states[i + 1..] {
            let (order, a_leads, b_leads) = match compare(sa, sb) {
                StateOrder::Equal => ("equal", vec![], vec![]),
                StateOrder::AAhead(l) => ("a_ahead", names(l), vec![]),
                StateOrder::BAhead(l) => ("b_ahead", vec![], names(l)),
                StateOrder::Incomparable { a_leads, b_leads } => {
                    ("incomparable", names(a_leads), names(b_leads))
                }
            };
            out.push(PairOrder {
                a: a.clone(),
                b: b.clone(),
                order: order.into(),
                a_leads,
                b_leads,
            });
        }
    }
    out
}

/// The applied prefix of `db` in `s`: the seq_no up to which it holds the
/// database's groups.
fn held(s: &ReplicaState, db: &str) -> u64 {
    let low = s.low.values().map(|w| w.seq_no).max().unwrap_or(0);
    let row = s
        .shards
        .iter()
        .filter(|((_, shard), _)| shard == db)
        .map(|(_, w)| w.seq_no)
        .max()
        .unwrap_or(0);
    low.max(row)
}

/// The states side by side: one row per database, the applied prefix
/// (seq_no) of each replica, `*` where a replica is behind another; then
/// each pair, incomparable ones marked (in red on a terminal).
pub(super) fn states_table(
    states: &[(String, ReplicaState)],
    dbs: &[String],
    pairs: &[PairOrder],
    color: bool,
) -> String {
    let mut t = format!("  {:<10}", "database");
    for (n, _) in states {
        t.push_str(&format!(" {n:>9}"));
    }
    t.push('\n');
    for d in dbs {
        let row: Vec<u64> = states.iter().map(|(_, s)| held(s, d)).collect();
        let top = row.iter().copied().max().unwrap_or(0);
        t.push_str(&format!("  {d:<10}"));
        for v in row {
            let mark = if v < top { "*" } else { " " };
            t.push_str(&format!(" {v:>8}{mark}"));
        }
        t.push('\n');
    }
    t.push_str(
        "  (the seq_no up to which each replica holds the database's transactions; * behind)\n",
    );
    for p in pairs {
        let text = match p.order.as_str() {
            "incomparable" => format!(
                "{} / {}: INCOMPARABLE — {} alone holds transactions of {}; {} alone of {}",
                p.a,
                p.b,
                p.a,
                p.a_leads.join(", "),
                p.b,
                p.b_leads.join(", ")
            ),
            "a_ahead" => format!("{} / {}: {} holds all of {} and more", p.a, p.b, p.a, p.b),
            "b_ahead" => format!("{} / {}: {} holds all of {} and more", p.a, p.b, p.b, p.a),
            _ => format!("{} / {}: equal", p.a, p.b),
        };
        if color && p.order == "incomparable" {
            t.push_str(&format!("  \x1b[1;31m{text}\x1b[0m\n"));
        } else {
            t.push_str(&format!("  {text}\n"));
        }
    }
    t
}

/// The promotion's plan: the candidate, the source, and the catch-up set
/// each replica is about to apply.
pub(super) fn plan_text(p: &Plan) -> String {
    let mut t = format!(
        "  candidate: {} ({}, {})\n  catch-up source: the mirror of {} ({} bytes); \
         groups no mirror holds: {}\n",
        p.candidate, p.chosen_by, p.why, p.source, p.source_bytes, p.lost_groups
    );
    for r in &p.replicas {
        t.push_str(&format!(
            "  catch-up set for {:<4} {:>6} groups {:>9} bytes  ({} the candidate)\n",
            r.name, r.lacks_groups, r.lacks_bytes, r.versus_candidate
        ));
    }
    t
}

/// The promotion's steps as they were done.
pub(super) fn report_text(r: &PromoteReport) -> String {
    let mut t = format!(
        "  {} promoted in {:.2} s (writable after {:.2} s, catch-up {:.2} s); \
         the others follow it from {}\n",
        r.primary, r.seconds, r.writable_after, r.catch_up_seconds, r.repoint
    );
    for s in &r.steps {
        t.push_str(&format!(
            "    {:<18} {:<4} {:>6} groups {:>7.2} s  {}\n",
            s.step,
            s.replica.as_deref().unwrap_or("-"),
            s.groups,
            s.seconds,
            s.detail
        ));
    }
    t
}
