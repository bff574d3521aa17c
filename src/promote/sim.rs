//! Planning at fleet scale, by simulation (no servers): a stream of
//! single-shard groups over `shards` shards, `replicas` mirrors cut at
//! random lengths and states applied out of order inside them (each shard
//! its own random prefix of what the replica's mirror holds), planned by
//! the same pure [`plan::plan`] a real promotion uses. What a replica
//! lacks is computed from an index of the source (per shard, the seq_nos
//! and their cumulative bytes) by binary search — the counting
//! [`crate::replica::pending`] does by reading the mirror, done here
//! without a mirror on disk.
//!
//! `parapply promote --simulate REPLICAS,SHARDS[,GROUPS_PER_SHARD]` prints
//! the times; docs/benchmarks.md has the figures.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use super::plan::{self, Facts};
use crate::position::BinlogPos;
use crate::progress::{ReplicaState, Watermark};

/// What one simulation measured.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Replicas.
    pub replicas: usize,
    /// Shards.
    pub shards: usize,
    /// Groups in the source.
    pub groups: u64,
    /// Seconds to generate the fleet (not planning).
    pub generate_seconds: f64,
    /// Seconds to compute what each replica lacks (index + searches).
    pub lacks_seconds: f64,
    /// Seconds of [`plan::plan`] (ranking, comparisons of every pair).
    pub plan_seconds: f64,
    /// Pairs of replicas found incomparable.
    pub incomparable_pairs: usize,
    /// The candidate chosen.
    pub candidate: String,
}

/// A small deterministic generator (xorshift64*), so runs repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// Per shard, the seq_nos of its groups in the source and the bytes of
/// the source's groups of that shard up to each.
type Index = BTreeMap<String, Vec<(u64, u64)>>;

/// Groups of shard `s` after `w`, and their bytes.
fn lacks_in(index: &Index, state: &ReplicaState) -> (u64, u64) {
    let mut groups = 0;
    let mut bytes = 0;
    let low = state.low.get(&0).map_or(0, |w| w.seq_no);
    for (shard, seqs) in index {
        let w = state
            .shards
            .get(&(0, shard.clone()))
            .map_or(0, |w| w.seq_no)
            .max(low);
        let i = seqs.partition_point(|(seq, _)| *seq <= w);
        groups += (seqs.len() - i) as u64;
        let total = seqs.last().map_or(0, |x| x.1);
        let before = if i == 0 { 0 } else { seqs[i - 1].1 };
        bytes += total - before;
    }
    (groups, bytes)
}

/// Simulates and plans a fleet of `replicas` replicas over `shards`
/// shards with `per_shard` groups each on average.
pub fn simulate(replicas: usize, shards: usize, per_shard: u64, seed: u64) -> SimReport {
    let t = Instant::now();
    let mut rng = Rng(seed | 1);
    let total = shards as u64 * per_shard;
    // The stream: group i (seq i+1) of a random shard, 200–1200 bytes.
    let mut stream: Vec<(usize, u64)> = Vec::with_capacity(total as usize);
    for _ in 0..total {
        stream.push((rng.below(shards as u64) as usize, 200 + rng.below(1000)));
    }
    let names: Vec<String> = (0..shards).map(|s| format!("db{s:05}")).collect();
    // Mirrors: within the last 10% of the stream; states: per shard a
    // random prefix of what the mirror holds of it.
    let mut cuts = Vec::new();
    let mut states = Vec::new();
    for _ in 0..replicas {
        let cut = total - rng.below(total / 10 + 1);
        let mut per: Vec<u64> = vec![0; shards];
        let mut seen: Vec<Vec<u64>> = vec![Vec::new(); shards];
        for (i, (s, _)) in stream.iter().enumerate().take(cut as usize) {
            seen[*s].push(i as u64 + 1);
        }
        for (s, v) in seen.iter().enumerate() {
            if !v.is_empty() {
                let keep = v.len() - rng.below(v.len() as u64 / 5 + 1) as usize;
                per[s] = if keep == 0 { 0 } else { v[keep - 1] };
            }
        }
        let mut st = ReplicaState::default();
        for (s, w) in per.iter().enumerate() {
            if *w > 0 {
                st.shards.insert(
                    (0, names[s].clone()),
                    Watermark {
                        seq_no: *w,
                        server_id: 1,
                        end: BinlogPos::new("mariadb-bin.000001", *w * 700),
                    },
                );
            }
        }
        cuts.push(cut);
        states.push(st);
    }
    let generate_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut index: Index = BTreeMap::new();
    let mut cum: Vec<u64> = vec![0; shards];
    for (i, (s, b)) in stream.iter().enumerate() {
        cum[*s] += b;
        index
            .entry(names[*s].clone())
            .or_default()
            .push((i as u64 + 1, cum[*s]));
    }
    let bytes_upto: Vec<u64> = stream
        .iter()
        .scan(0u64, |acc, (_, b)| {
            *acc += b;
            Some(*acc)
        })
        .collect();
    let facts: Vec<Facts> = states
        .into_iter()
        .zip(&cuts)
        .enumerate()
        .map(|(i, (state, cut))| {
            let (lacks_groups, lacks_bytes) = lacks_in(&index, &state);
            Facts {
                name: format!("r{i:03}"),
                unhealthy: None,
                mirror_bytes: bytes_upto[*cut as usize - 1],
                mirror_end: None,
                lacks_groups,
                lacks_bytes,
                state,
                errant: Vec::new(),
                native: false,
            }
        })
        .collect();
    let lacks_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let p = plan::plan(&facts, None).expect("a simulated fleet has a candidate");
    let plan_seconds = t.elapsed().as_secs_f64();
    SimReport {
        replicas,
        shards,
        groups: total,
        generate_seconds,
        lacks_seconds,
        plan_seconds,
        incomparable_pairs: p.incomparable_pairs.len(),
        candidate: p.candidate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_fleet_is_planned_and_its_states_are_incomparable() {
        let r = simulate(5, 20, 10, 7);
        assert_eq!((r.replicas, r.shards, r.groups), (5, 20, 200));
        // Each replica keeps a random prefix per shard: some pairs must
        // be incomparable (the point of the simulation).
        assert!(r.incomparable_pairs > 0, "{r:?}");
        assert!(r.incomparable_pairs <= 10);
        assert!(r.candidate.starts_with('r'));
    }

    #[test]
    fn lacks_counts_the_groups_after_each_watermark() {
        let mut index = Index::new();
        index.insert("a".into(), vec![(1, 10), (3, 30), (5, 60)]);
        index.insert("b".into(), vec![(2, 5), (4, 9)]);
        let mut st = ReplicaState::default();
        st.shards.insert(
            (0, "a".into()),
            Watermark {
                seq_no: 3,
                server_id: 1,
                end: BinlogPos::new("f", 1),
            },
        );
        // a: seq 5 (30 bytes); b: 2 and 4 (9 bytes).
        assert_eq!(lacks_in(&index, &st), (3, 39));
    }
}
