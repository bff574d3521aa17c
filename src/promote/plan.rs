//! The plan of a promotion, as a pure function of what promote read: every
//! replica's state, the length of its mirror, what it lacks of the catch-up
//! source, its health and its errant transactions. No I/O here, so that the
//! same function plans a real promotion and a simulated fleet
//! ([`super::sim`]).
//!
//! * The **source** is the longest mirror: every mirror is a prefix of it
//!   (checked before), so it holds every group any mirror received.
//! * The **candidate** is the one the operator named, or the first of the
//!   ranking: healthy first, then the longest mirror, then the fewest groups
//!   to catch up, then the name. Any candidate ends complete: it is caught
//!   up from the source, not from its own mirror.
//! * **Lost**: what a mirror holds beyond the source — nothing, by
//!   construction; computed anyway, and shown.
//! * **Incomparable pairs**: the pairs of replicas whose states no single
//!   order explains (DESIGN.md point 5), which is why the source is the
//!   union of every mirror rather than the most advanced replica.

use serde::Serialize;

use crate::position::{BinlogPos, MariaGtid};
#[cfg(test)]
use crate::progress::compare;
use crate::progress::{ReplicaState, StateOrder};

/// What promote knows of one replica.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The operator's name for it.
    pub name: String,
    /// `None` when usable; otherwise why not.
    pub unhealthy: Option<String>,
    /// Its applied state.
    pub state: ReplicaState,
    /// Bytes of its mirror (0 for a replica without one).
    pub mirror_bytes: u64,
    /// Where its mirror ends.
    pub mirror_end: Option<BinlogPos>,
    /// Groups of the source it has not applied.
    pub lacks_groups: u64,
    /// Their bytes.
    pub lacks_bytes: u64,
    /// GTIDs in its binary log that no mirror holds.
    pub errant: Vec<MariaGtid>,
    /// Replicated by MariaDB's own SQL thread (no parapply applier).
    pub native: bool,
}

/// One line of the ranking.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    /// Rank, 1 first.
    pub rank: usize,
    /// The replica.
    pub name: String,
    /// Whether it may be promoted.
    pub healthy: bool,
    /// Bytes of its mirror.
    pub mirror_bytes: u64,
    /// Groups it lacks.
    pub lacks_groups: u64,
}

/// Per replica, what the promotion will do to it.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaPlan {
    /// The replica.
    pub name: String,
    /// Groups of the source it lacks (catch-up applies them).
    pub lacks_groups: u64,
    /// Their bytes.
    pub lacks_bytes: u64,
    /// Bytes of its mirror.
    pub mirror_bytes: u64,
    /// Where its mirror ends.
    pub mirror_end: Option<String>,
    /// Its state against the candidate's: `equal`, `ahead`, `behind`,
    /// `incomparable`.
    pub versus_candidate: String,
    /// Errant GTIDs in its binary log.
    pub errant: Vec<String>,
    /// Replicated by MariaDB's own SQL thread.
    pub native: bool,
}

/// The plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The replica to promote.
    pub candidate: String,
    /// `operator` (`--candidate`) or `ranking`.
    pub chosen_by: String,
    /// Why, in words.
    pub why: String,
    /// The replica whose mirror is the catch-up source (the longest).
    pub source: String,
    /// Bytes of the source.
    pub source_bytes: u64,
    /// The ranking, best first.
    pub ranking: Vec<Ranked>,
    /// Per replica, in the order given.
    pub replicas: Vec<ReplicaPlan>,
    /// Pairs of replicas whose states are incomparable.
    pub incomparable_pairs: Vec<(String, String)>,
    /// Groups a mirror received that promoting now would lose: 0.
    pub lost_groups: u64,
    /// Bytes a mirror received beyond the source: 0.
    pub lost_bytes: u64,
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No replica given.
    #[error("no replica given")]
    NoReplica,
    /// The candidate named is not one of the replicas.
    #[error("the candidate `{0}` is not one of the replicas given")]
    UnknownCandidate(String),
    /// The candidate cannot be promoted.
    #[error("the candidate `{name}` cannot be promoted: {why}")]
    Unfit {
        /// The candidate.
        name: String,
        /// Why.
        why: String,
    },
    /// No replica can be promoted.
    #[error("no replica can be promoted: {0}")]
    NoneFit(String),
}

/// The plan for `facts` with the candidate `candidate` if named.
pub fn plan(facts: &[Facts], candidate: Option<&str>) -> Result<Plan, PlanError> {
    let source = facts
        .iter()
        .max_by(|a, b| {
            a.mirror_bytes
                .cmp(&b.mirror_bytes)
                .then_with(|| b.name.cmp(&a.name))
        })
        .ok_or(PlanError::NoReplica)?;
    let fit = |f: &Facts| -> Option<String> {
        if let Some(why) = &f.unhealthy {
            Some(why.clone())
        } else if f.native {
            Some("a replica run by MariaDB's own SQL thread has no parapply state to keep".into())
        } else {
            None
        }
    };
    let mut order: Vec<&Facts> = facts.iter().collect();
    order.sort_by(|a, b| {
        fit(a)
            .is_some()
            .cmp(&fit(b).is_some())
            .then_with(|| b.mirror_bytes.cmp(&a.mirror_bytes))
            .then_with(|| a.lacks_groups.cmp(&b.lacks_groups))
            .then_with(|| a.name.cmp(&b.name))
    });
    let ranking: Vec<Ranked> = order
        .iter()
        .enumerate()
        .map(|(i, f)| Ranked {
            rank: i + 1,
            name: f.name.clone(),
            healthy: fit(f).is_none(),
            mirror_bytes: f.mirror_bytes,
            lacks_groups: f.lacks_groups,
        })
        .collect();
    let (chosen, chosen_by) = match candidate {
        Some(c) => {
            let f = facts
                .iter()
                .find(|f| f.name == c)
                .ok_or_else(|| PlanError::UnknownCandidate(c.to_string()))?;
            if let Some(why) = fit(f) {
                return Err(PlanError::Unfit {
                    name: c.to_string(),
                    why,
                });
            }
            (f, "operator")
        }
        None => {
            let f = order[0];
            if let Some(why) = fit(f) {
                return Err(PlanError::NoneFit(format!("{}: {why}", f.name)));
            }
            (f, "ranking")
        }
    };
    let why = format!(
        "{}; mirror {} bytes (longest {} bytes, on {}); lacks {} groups ({} bytes), caught up from \
         the longest mirror",
        if chosen_by == "operator" {
            "named with --candidate"
        } else {
            "first of the ranking (healthy, longest mirror, fewest groups to catch up)"
        },
        chosen.mirror_bytes,
        source.mirror_bytes,
        source.name,
        chosen.lacks_groups,
        chosen.lacks_bytes
    );
    let dense = Dense::of(facts);
    let ci = facts
        .iter()
        .position(|f| f.name == chosen.name)
        .expect("the candidate is one of the facts");
    let replicas = facts
        .iter()
        .enumerate()
        .map(|(i, f)| ReplicaPlan {
            name: f.name.clone(),
            lacks_groups: f.lacks_groups,
            lacks_bytes: f.lacks_bytes,
            mirror_bytes: f.mirror_bytes,
            mirror_end: f.mirror_end.as_ref().map(|p| p.to_string()),
            versus_candidate: dense.order(i, ci).to_string(),
            errant: f.errant.iter().map(|g| g.to_string()).collect(),
            native: f.native,
        })
        .collect();
    let mut incomparable_pairs = Vec::new();
    for i in 0..facts.len() {
        for j in i + 1..facts.len() {
            if dense.order(i, j) == "incomparable" {
                incomparable_pairs.push((facts[i].name.clone(), facts[j].name.clone()));
            }
        }
    }
    let lost_bytes = facts
        .iter()
        .map(|f| f.mirror_bytes.saturating_sub(source.mirror_bytes))
        .sum();
    Ok(Plan {
        candidate: chosen.name.clone(),
        chosen_by: chosen_by.to_string(),
        why,
        source: source.name.clone(),
        source_bytes: source.mirror_bytes,
        ranking,
        replicas,
        incomparable_pairs,
        lost_groups: 0,
        lost_bytes,
    })
}

/// [`compare`]'s order of two states, as a word.
pub fn order_word(o: &StateOrder) -> &'static str {
    match o {
        StateOrder::Equal => "equal",
        StateOrder::AAhead(_) => "ahead",
        StateOrder::BAhead(_) => "behind",
        StateOrder::Incomparable { .. } => "incomparable",
    }
}

/// Every state as one vector over the union of the states' shard keys:
/// per `(domain, shard)` the seq_no up to which the state holds that
/// shard's groups (`max(W, L)`), per domain the low-watermark for the
/// shards without a row — what [`compare`] compares, laid out once so
/// that comparing every pair of a fleet is a walk over two slices.
struct Dense {
    rows: Vec<Vec<u64>>,
}

impl Dense {
    fn of(facts: &[Facts]) -> Dense {
        let mut keys: std::collections::BTreeMap<(u32, Option<&str>), usize> =
            std::collections::BTreeMap::new();
        for f in facts {
            for (d, s) in f.state.shards.keys() {
                keys.insert((*d, Some(s.as_str())), 0);
                keys.insert((*d, None), 0);
            }
            for d in f.state.low.keys() {
                keys.insert((*d, None), 0);
            }
        }
        for (i, v) in keys.values_mut().enumerate() {
            *v = i;
        }
        let rows = facts
            .iter()
            .map(|f| {
                let mut row = vec![0u64; keys.len()];
                for ((d, s), &i) in &keys {
                    let low = f.state.low.get(d).map_or(0, |w| w.seq_no);
                    row[i] = match s {
                        None => low,
                        Some(s) => f
                            .state
                            .shards
                            .get(&(*d, s.to_string()))
                            .map_or(0, |w| w.seq_no)
                            .max(low),
                    };
                }
                row
            })
            .collect();
        Dense { rows }
    }

    /// State `a` against state `b`: `equal`, `ahead`, `behind` or
    /// `incomparable`.
    fn order(&self, a: usize, b: usize) -> &'static str {
        let (mut ahead, mut behind) = (false, false);
        for (x, y) in self.rows[a].iter().zip(&self.rows[b]) {
            ahead |= x > y;
            behind |= x < y;
            if ahead && behind {
                return "incomparable";
            }
        }
        match (ahead, behind) {
            (false, false) => "equal",
            (true, false) => "ahead",
            _ => "behind",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Watermark;

    fn state(wm: &[(&str, u64)]) -> ReplicaState {
        let mut s = ReplicaState::default();
        for (shard, seq) in wm {
            s.shards.insert(
                (0, shard.to_string()),
                Watermark {
                    seq_no: *seq,
                    server_id: 1,
                    end: BinlogPos::new("b.000001", *seq * 100),
                },
            );
        }
        s
    }

    fn facts(name: &str, wm: &[(&str, u64)], bytes: u64, lacks: u64) -> Facts {
        Facts {
            name: name.into(),
            unhealthy: None,
            state: state(wm),
            mirror_bytes: bytes,
            mirror_end: None,
            lacks_groups: lacks,
            lacks_bytes: lacks * 10,
            errant: Vec::new(),
            native: false,
        }
    }

    #[test]
    fn the_longest_mirror_is_the_source_and_ranks_first() {
        let f = [
            facts("r1", &[("a", 5), ("b", 1)], 300, 4),
            facts("r2", &[("a", 1), ("b", 5)], 500, 4),
            facts("r3", &[("a", 2), ("b", 2), ("c", 9)], 400, 6),
        ];
        let p = plan(&f, None).unwrap();
        assert_eq!(p.source, "r2");
        assert_eq!(p.candidate, "r2");
        assert_eq!(p.chosen_by, "ranking");
        let names: Vec<_> = p.ranking.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["r2", "r3", "r1"]);
        assert_eq!(p.incomparable_pairs.len(), 3);
        assert_eq!((p.lost_groups, p.lost_bytes), (0, 0));
        assert_eq!(p.replicas[0].versus_candidate, "incomparable");
    }

    #[test]
    fn a_named_candidate_is_taken_even_when_it_lags() {
        let f = [
            facts("r1", &[("a", 5)], 300, 0),
            facts("r2", &[("a", 1)], 100, 4),
        ];
        let p = plan(&f, Some("r2")).unwrap();
        assert_eq!((p.candidate.as_str(), p.source.as_str()), ("r2", "r1"));
        assert_eq!(p.replicas[0].versus_candidate, "ahead");
        assert_eq!(
            plan(&f, Some("r9")).unwrap_err(),
            PlanError::UnknownCandidate("r9".into())
        );
    }

    #[test]
    fn the_dense_order_is_compare_s() {
        let f = [
            facts("r1", &[("a", 5), ("b", 1)], 300, 4),
            facts("r2", &[("a", 1), ("b", 5)], 500, 4),
            facts("r3", &[("a", 5), ("b", 5)], 400, 6),
            facts("r4", &[("a", 5)], 400, 6),
            facts("r5", &[("a", 5), ("b", 1)], 300, 4),
        ];
        let d = Dense::of(&f);
        for i in 0..f.len() {
            for j in 0..f.len() {
                assert_eq!(
                    d.order(i, j),
                    order_word(&compare(&f[i].state, &f[j].state)),
                    "{} vs {}",
                    f[i].name,
                    f[j].name
                );
            }
        }
    }

    #[test]
    fn unhealthy_and_native_replicas_are_not_candidates() {
        let mut f = vec![
            facts("r1", &[("a", 5)], 300, 0),
            facts("r2", &[("a", 1)], 100, 4),
        ];
        f[0].unhealthy = Some("unreachable".into());
        assert_eq!(plan(&f, None).unwrap().candidate, "r2");
        assert!(matches!(plan(&f, Some("r1")), Err(PlanError::Unfit { .. })));
        f[1].native = true;
        assert!(matches!(plan(&f, None), Err(PlanError::NoneFit(_))));
    }
}
