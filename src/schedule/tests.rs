//! Tests of the scheduler: scripts in `testdata/*.txt`, and property tests
//! against a simulated set of FIFO workers.
//!
//! # Script language
//!
//! A script is a sequence of commands, one a line. Blank lines and lines
//! starting with `#` are comments. The lines starting with `>` right after a
//! command are its expected output (a command with no output has none):
//!
//! ```text
//! new workers=2 budget=1000   a fresh scheduler (the default before any
//!     queue=4                 `new`: workers=2, budget=none = unlimited,
//!                             queue unlimited; `queue` is max_queue)
//! push 1 a,b 100              push group 1 on shards a and b, 100 bytes
//!                             (bytes default to 0); `-` is an empty shard
//!                             set; `!ddl` a barrier (any reason's
//!                             `as_str`: !ddl !unknown_databases
//!                             !unknown_tables !non_transactional !xa
//!                             !unclassified)
//! dispatch                    every group dispatchable now, as ID@WORKER:
//! > 1@0 2@1                   (or `none`)
//! complete 1 2                complete 1 then 2 (a worker's batch)
//! room 300                    has_room(300):
//! > no                        `yes` or `no`
//! watermark                   low_watermark:
//! > 2                         an id or `none`
//! status                      in flight, pending, bytes, per-worker backlog,
//! > in_flight=0 pending=0 bytes=0 backlog=0,0 barrier=none
//! ```
//!
//! Refused calls print `error: <message>`. After every command the
//! scheduler's internal bookkeeping is checked against a recomputation.
//!
//! A mismatch reports the file, the line and the actual output. With
//! `PARAPPLY_REWRITE_TESTDATA=1` the files are rewritten with the actual
//! output instead (review the diff before committing it).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::path::Path;

use proptest::prelude::*;

use super::*;

fn reason(name: &str) -> Option<BarrierReason> {
    [
        BarrierReason::Ddl,
        BarrierReason::UnknownDatabases,
        BarrierReason::UnknownTables,
        BarrierReason::UnknownRows,
        BarrierReason::NonTransactional,
        BarrierReason::Xa,
        BarrierReason::Unclassified,
    ]
    .into_iter()
    .find(|r| r.as_str() == name)
}

fn number(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("not a number: `{s}`"))
}

/// Runs one command; returns its output lines.
fn run_command(sched: &mut Scheduler, line: &str) -> Result<Vec<String>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let out = match words.as_slice() {
        ["new", args @ ..] => {
            let mut cfg = SchedulerConfig::new(2, u64::MAX);
            for arg in args {
                match arg.split_once('=') {
                    Some(("workers", n)) => cfg.workers = number(n)? as usize,
                    Some(("budget", "none")) => cfg.max_inflight_bytes = u64::MAX,
                    Some(("budget", n)) => cfg.max_inflight_bytes = number(n)?,
                    Some(("queue", n)) => cfg.max_queue = number(n)? as usize,
                    _ => return Err(format!("bad argument `{arg}`")),
                }
            }
            *sched = Scheduler::new(cfg);
            vec![]
        }
        ["push", id, placement, rest @ ..] => {
            let placement = match *placement {
                "-" => Placement::Shards(vec![]),
                p => match p.strip_prefix('!') {
                    Some(r) => Placement::Barrier(
                        reason(r).ok_or_else(|| format!("unknown barrier reason `{r}`"))?,
                    ),
                    None => Placement::shards(p.split(',')),
                },
            };
            let bytes = match rest {
                [] => 0,
                [b] => number(b)?,
                _ => return Err("push ID PLACEMENT [BYTES]".into()),
            };
            match sched.push(number(id)?, placement, bytes) {
                Ok(()) => vec![],
                Err(e) => vec![format!("error: {e}")],
            }
        }
        ["dispatch"] => {
            let ds = sched.ready();
            if ds.is_empty() {
                vec!["none".into()]
            } else {
                let ds: Vec<String> = ds.iter().map(Dispatch::to_string).collect();
                vec![ds.join(" ")]
            }
        }
        ["complete", ids @ ..] if !ids.is_empty() => {
            let ids = ids
                .iter()
                .map(|s| number(s))
                .collect::<Result<Vec<_>, _>>()?;
            match sched.complete_all(ids) {
                Ok(()) => vec![],
                Err(e) => vec![format!("error: {e}")],
            }
        }
        ["room", bytes] => {
            vec![if sched.has_room(number(bytes)?) {
                "yes"
            } else {
                "no"
            }
            .into()]
        }
        ["watermark"] => vec![match sched.low_watermark() {
            Some(id) => id.to_string(),
            None => "none".into(),
        }],
        ["status"] => {
            let backlog: Vec<String> = (0..sched.workers())
                .map(|w| sched.backlog(w).to_string())
                .collect();
            let barrier = match sched.barrier() {
                None => "none".to_string(),
                Some((id, r, true)) => format!("{id}:{}:running", r.as_str()),
                Some((id, r, false)) => format!("{id}:{}:waiting", r.as_str()),
            };
            vec![format!(
                "in_flight={} pending={} bytes={} backlog={} barrier={barrier}",
                sched.in_flight(),
                sched.pending(),
                sched.inflight_bytes(),
                backlog.join(","),
            )]
        }
        _ => return Err(format!("unknown command `{line}`")),
    };
    sched.check_invariants();
    Ok(out)
}

/// Runs a script; returns the mismatches (as messages) and the script with
/// the actual outputs.
fn run_script(name: &str, text: &str) -> (Vec<String>, String) {
    let mut sched = Scheduler::new(SchedulerConfig::new(2, u64::MAX));
    let mut failures = Vec::new();
    let mut rewritten = String::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let lineno = i + 1;
        i += 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            rewritten.push_str(line);
            rewritten.push('\n');
            continue;
        }
        if trimmed.starts_with('>') {
            failures.push(format!(
                "{name}:{lineno}: expected output without a command: {line}"
            ));
            continue;
        }
        let mut expected = Vec::new();
        while i < lines.len() && lines[i].starts_with('>') {
            expected.push(lines[i].trim_start_matches('>').trim().to_string());
            i += 1;
        }
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_command(&mut sched, trimmed)
        }));
        let actual = match run {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                failures.push(format!("{name}:{lineno}: {e}"));
                vec![]
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                failures.push(format!("{name}:{lineno}: `{trimmed}` panicked: {msg}"));
                // The state may be inconsistent: the rest of the file is moot.
                break;
            }
        };
        let _ = writeln!(rewritten, "{line}");
        for out in &actual {
            let _ = writeln!(rewritten, "> {out}");
        }
        if actual != expected {
            failures.push(format!(
                "{name}:{lineno}: `{trimmed}`\n  expected:\n{}\n  actual:\n{}",
                show(&expected),
                show(&actual)
            ));
        }
    }
    (failures, rewritten)
}

fn show(lines: &[String]) -> String {
    if lines.is_empty() {
        return "    (nothing)".into();
    }
    lines
        .iter()
        .map(|l| format!("    > {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn testdata() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/schedule/testdata");
    let rewrite = std::env::var_os("PARAPPLY_REWRITE_TESTDATA").is_some();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata directory")
        .map(|e| e.expect("testdata entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scripts in {}", dir.display());
    let mut failures = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("read script");
        let name = format!(
            "src/schedule/testdata/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let (f, rewritten) = run_script(&name, &text);
        if rewrite && rewritten != text {
            std::fs::write(path, rewritten).expect("rewrite script");
        } else {
            failures.extend(f);
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n\n"));
}

#[test]
fn script_mismatch_names_file_line_and_actual_output() {
    let (failures, rewritten) = run_script("x.txt", "push 1 a\n\ndispatch\n> 1@1\n");
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].starts_with("x.txt:3: `dispatch`"),
        "{}",
        failures[0]
    );
    assert!(failures[0].contains("> 1@0"), "{}", failures[0]);
    assert_eq!(rewritten, "push 1 a\n\ndispatch\n> 1@0\n");
}

// ---------------------------------------------------------------------------
// Property tests: a simulation with FIFO workers, checked against an oracle
// that recomputes the rules from the history.

/// A group of the generated stream.
#[derive(Clone, Debug)]
struct Gen {
    /// Indices into `SHARDS`; empty for a barrier.
    shards: Vec<usize>,
    bytes: u64,
}

const SHARDS: [&str; 5] = ["a", "b", "c", "d", "e"];

fn gen_group() -> impl Strategy<Value = Gen> {
    let shards = prop_oneof![
        1 => Just(vec![]),
        6 => proptest::sample::subsequence(vec![0, 1, 2, 3, 4], 1..=1),
        3 => proptest::sample::subsequence(vec![0, 1, 2, 3, 4], 2..=3),
    ];
    let bytes = prop_oneof![9 => 0u64..=120, 1 => 400u64..=600];
    (shards, bytes).prop_map(|(shards, bytes)| Gen { shards, bytes })
}

/// The simulated system and everything it observed.
struct Sim {
    sched: Scheduler,
    budget: u64,
    /// Rule 6's limit.
    queue: usize,
    stream: Vec<Gen>,
    /// Ids: not consecutive, to test gaps.
    ids: Vec<GroupId>,
    pushed: usize,
    queues: Vec<VecDeque<GroupId>>,
    dispatched: HashMap<GroupId, usize>,
    completed: HashSet<GroupId>,
    /// Per shard, the last completed id.
    last_completed: HashMap<usize, GroupId>,
}

impl Sim {
    fn new(workers: usize, budget: u64, queue: usize, stream: Vec<Gen>) -> Self {
        let ids = (0..stream.len() as u64).map(|i| 3 * i + 7).collect();
        Sim {
            sched: Scheduler::new(SchedulerConfig {
                workers,
                max_inflight_bytes: budget,
                max_queue: queue,
            }),
            budget,
            queue,
            stream,
            ids,
            pushed: 0,
            queues: vec![VecDeque::new(); workers],
            dispatched: HashMap::new(),
            completed: HashSet::new(),
            last_completed: HashMap::new(),
        }
    }

    fn gen(&self, id: GroupId) -> &Gen {
        &self.stream[((id - 7) / 3) as usize]
    }

    fn shares_shard(&self, a: GroupId, b: GroupId) -> bool {
        let (a, b) = (self.gen(a), self.gen(b));
        a.shards.iter().any(|s| b.shards.contains(s))
    }

    fn least_loaded(&self) -> usize {
        (0..self.queues.len())
            .min_by_key(|&w| (self.queues[w].len(), w))
            .unwrap_or(0)
    }

    /// The oracle: where the rules allow `g` (pushed, undispatched) to go
    /// now, if anywhere.
    fn allowed(&self, g: GroupId) -> Option<usize> {
        let earlier = &self.ids[..self.pushed];
        let earlier = earlier.iter().copied().filter(|&h| h < g);
        let running = |h: &GroupId| self.dispatched.contains_key(h) && !self.completed.contains(h);
        if self.gen(g).shards.is_empty() {
            // Rule 2: every earlier group complete, nothing in flight.
            let all_done = earlier.clone().all(|h| self.completed.contains(&h));
            let nothing_running = !self.dispatched.keys().any(running);
            return (all_done && nothing_running).then_some(BARRIER_WORKER);
        }
        let mut bound = None;
        for h in earlier {
            if self.gen(h).shards.is_empty() && !self.completed.contains(&h) {
                return None; // behind an incomplete barrier
            }
            if !self.shares_shard(g, h) {
                continue;
            }
            match self.dispatched.get(&h) {
                None => return None, // an earlier group of a shard is queued
                Some(&w) if !self.completed.contains(&h) => match bound {
                    Some(b) if b != w => return None, // bound to two workers
                    _ => bound = Some(w),
                },
                Some(_) => {}
            }
        }
        // Rule 6: the worker it goes to must have room.
        let w = bound.unwrap_or_else(|| self.least_loaded());
        (self.queues[w].len() < self.queue).then_some(w)
    }

    fn undispatched(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.ids[..self.pushed]
            .iter()
            .copied()
            .filter(|id| !self.dispatched.contains_key(id))
    }

    fn outstanding_bytes(&self) -> u64 {
        self.ids[..self.pushed]
            .iter()
            .filter(|id| !self.completed.contains(id))
            .map(|&id| self.gen(id).bytes)
            .sum()
    }

    /// Pushes the next group if it fits; returns whether it did.
    fn push(&mut self) -> bool {
        let Some(g) = self.stream.get(self.pushed) else {
            return false;
        };
        let id = self.ids[self.pushed];
        let placement = if g.shards.is_empty() {
            Placement::Barrier(BarrierReason::Ddl)
        } else {
            Placement::shards(g.shards.iter().map(|&s| SHARDS[s]))
        };
        let bytes = g.bytes;
        if !self.sched.has_room(bytes) {
            let refused = self.sched.push(id, placement, bytes);
            assert!(
                matches!(refused, Err(ScheduleError::NoRoom { .. })),
                "{refused:?}"
            );
            return false;
        }
        self.sched.push(id, placement, bytes).expect("push");
        self.pushed += 1;
        // Rule 4.
        let outstanding = self.sched.outstanding();
        assert_eq!(self.sched.inflight_bytes(), self.outstanding_bytes());
        assert!(
            self.sched.inflight_bytes() <= self.budget || outstanding == 1,
            "{} bytes outstanding in {outstanding} groups, budget {}",
            self.sched.inflight_bytes(),
            self.budget
        );
        true
    }

    /// Polls once; checks the answer against the oracle.
    fn dispatch(&mut self) -> bool {
        let Some(d) = self.sched.poll_dispatch() else {
            // Work-conserving: nothing the rules allow is left behind.
            let stuck: Vec<_> = self
                .undispatched()
                .filter(|&g| self.allowed(g).is_some())
                .collect();
            assert!(
                stuck.is_empty(),
                "dispatchable but not dispatched: {stuck:?}"
            );
            return false;
        };
        assert!(
            self.ids[..self.pushed].contains(&d.id),
            "dispatched {} never pushed",
            d.id
        );
        assert!(
            !self.dispatched.contains_key(&d.id),
            "{} dispatched twice",
            d.id
        );
        assert_eq!(self.allowed(d.id), Some(d.worker), "dispatch {d}");
        // Oldest first.
        let older: Vec<_> = self
            .undispatched()
            .filter(|&g| g < d.id && self.allowed(g).is_some())
            .collect();
        assert!(older.is_empty(), "{d} dispatched before older {older:?}");
        self.dispatched.insert(d.id, d.worker);
        self.queues[d.worker].push_back(d.id);
        true
    }

    /// Worker `w` commits the first `n` groups of its queue as one batch.
    fn complete(&mut self, w: usize, n: usize) {
        let batch: Vec<GroupId> = self.queues[w].drain(..n).collect();
        self.sched
            .complete_all(batch.iter().copied())
            .expect("complete");
        for id in batch {
            self.completed.insert(id);
            for s in self.gen(id).shards.clone() {
                let last = self.last_completed.insert(s, id);
                assert!(
                    last < Some(id),
                    "shard {}: {id} completed after {last:?}",
                    SHARDS[s]
                );
            }
        }
        let prefix = self.ids[..self.pushed]
            .iter()
            .take_while(|id| self.completed.contains(id))
            .last()
            .copied();
        assert_eq!(self.sched.low_watermark(), prefix, "low watermark");
    }

    /// One step chosen by `c`.
    fn step(&mut self, c: u32) {
        match c % 3 {
            0 => {
                self.push();
            }
            1 => {
                self.dispatch();
            }
            _ => {
                let c = (c / 3) as usize;
                let workers = self.queues.len();
                if let Some(w) = (0..workers)
                    .map(|i| (c + i) % workers)
                    .find(|&w| !self.queues[w].is_empty())
                {
                    let n = 1 + (c / workers) % self.queues[w].len();
                    self.complete(w, n);
                }
            }
        }
        self.sched.check_invariants();
    }

    /// Runs to the end without choices: push what fits, dispatch, complete
    /// the head of every queue.
    fn drain(&mut self) {
        for _ in 0..10 * (self.stream.len() + 1) {
            while self.push() {}
            while self.dispatch() {}
            if self.pushed == self.stream.len() && self.sched.is_idle() {
                return;
            }
            for w in 0..self.queues.len() {
                if !self.queues[w].is_empty() {
                    self.complete(w, 1);
                }
            }
            self.sched.check_invariants();
        }
        panic!(
            "no progress: {} of {} pushed, {} in flight, {} pending",
            self.pushed,
            self.stream.len(),
            self.sched.in_flight(),
            self.sched.pending()
        );
    }

    fn check_end(&self) {
        assert_eq!(self.dispatched.len(), self.stream.len());
        assert_eq!(self.completed.len(), self.stream.len());
        assert!(self.sched.is_idle());
        assert_eq!(self.sched.inflight_bytes(), 0);
        assert_eq!(self.sched.in_flight(), 0);
        assert_eq!(self.sched.active_shards(), 0);
        assert_eq!(self.sched.low_watermark(), self.ids.last().copied());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_streams_obey_the_rules(
        workers in 1usize..=4,
        budget in 50u64..=500,
        queue in prop_oneof![1 => 1usize..=3, 1 => Just(usize::MAX)],
        stream in proptest::collection::vec(gen_group(), 0..60),
        choices in proptest::collection::vec(any::<u32>(), 0..400),
    ) {
        let mut sim = Sim::new(workers, budget, queue, stream);
        for c in choices {
            sim.step(c);
        }
        sim.drain();
        sim.check_end();
    }
}

#[test]
fn refused_calls_leave_the_state_unchanged() {
    let mut s = Scheduler::new(SchedulerConfig::new(0, 10));
    assert_eq!(s.workers(), 1);
    s.push(5, Placement::shards(["a"]), 8).unwrap();
    assert_eq!(
        s.push(5, Placement::shards(["b"]), 1),
        Err(ScheduleError::OutOfOrder { id: 5, last: 5 })
    );
    assert_eq!(
        s.push(6, Placement::Shards(vec![]), 1),
        Err(ScheduleError::NoShards { id: 6 })
    );
    assert_eq!(
        s.push(6, Placement::shards(["b"]), 3),
        Err(ScheduleError::NoRoom {
            id: 6,
            bytes: 3,
            inflight: 8,
            budget: 10
        })
    );
    assert_eq!(s.complete(5), Err(ScheduleError::NotDispatched { id: 5 }));
    assert_eq!(s.complete(4), Err(ScheduleError::Unknown { id: 4 }));
    s.check_invariants();
    assert_eq!(s.ready(), vec![Dispatch { id: 5, worker: 0 }]);
    s.complete(5).unwrap();
    assert_eq!(s.complete(5), Err(ScheduleError::Unknown { id: 5 }));
    assert!(s.is_idle());
    assert_eq!(s.low_watermark(), Some(5));
}

/// A group of the key-shard property test: the keys it writes.
#[derive(Clone, Debug)]
struct KeyedGroup {
    keys: Vec<u8>,
}

fn keyed_group() -> impl Strategy<Value = KeyedGroup> {
    proptest::collection::vec(0u8..24, 1..=4).prop_map(|keys| KeyedGroup { keys })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Key shards as the engine uses them: each key maps to one of
    /// `buckets` buckets, a group's shards are the buckets of its keys,
    /// worker queues are short. Whatever the order in which workers
    /// complete their queues' heads, two groups that write a common key
    /// complete in source order, and every group completes.
    #[test]
    fn groups_sharing_a_key_complete_in_source_order(
        workers in 1usize..=4,
        queue in 1usize..=3,
        buckets in 1u8..=16,
        stream in proptest::collection::vec(keyed_group(), 1..50),
        choices in proptest::collection::vec(any::<u32>(), 0..600),
    ) {
        let mut sched = Scheduler::new(SchedulerConfig {
            workers,
            max_inflight_bytes: u64::MAX,
            max_queue: queue,
        });
        for (id, g) in stream.iter().enumerate() {
            let shards = g.keys.iter().map(|k| format!("#{}", k % buckets));
            sched.push(id as GroupId, Placement::shards(shards), 1).unwrap();
        }
        let mut queues = vec![VecDeque::new(); workers];
        let mut order = Vec::new();
        let mut choices = choices.into_iter();
        while order.len() < stream.len() {
            for d in sched.ready() {
                queues[d.worker].push_back(d.id);
            }
            sched.check_invariants();
            let c = choices.next().unwrap_or(0) as usize;
            let w = (0..workers)
                .map(|i| (c + i) % workers)
                .find(|&w| !queues[w].is_empty())
                .expect("something in flight while groups remain");
            let n = 1 + (c / workers) % queues[w].len();
            let batch: Vec<GroupId> = queues[w].drain(..n).collect();
            sched.complete_all(batch.iter().copied()).unwrap();
            order.extend(batch);
        }
        prop_assert!(sched.is_idle());
        let place: HashMap<GroupId, usize> =
            order.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        for (a, ga) in stream.iter().enumerate() {
            for (b, gb) in stream.iter().enumerate().skip(a + 1) {
                if ga.keys.iter().any(|k| gb.keys.contains(k)) {
                    prop_assert!(
                        place[&(a as GroupId)] < place[&(b as GroupId)],
                        "groups {a} and {b} share a key but completed out of order: {order:?}"
                    );
                }
            }
        }
    }
}
