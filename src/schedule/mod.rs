//! The dependency scheduler: which transaction group may be applied next,
//! and by which worker.
//!
//! Like raft-rs's `RawNode`, [`Scheduler`] is a pure state machine: no I/O,
//! no threads, no clocks. The engine drives it:
//!
//! 1. it asks [`Scheduler::has_room`] for the next group's bytes, then
//!    [`Scheduler::push`]es the group with its [`Placement`] (from
//!    [`ShardMap::placement`]), in source order, under a [`GroupId`] that
//!    grows with every push;
//! 2. it calls [`Scheduler::poll_dispatch`] (or [`Scheduler::ready`]) and
//!    appends each [`Dispatch`]ed group to the named worker's FIFO queue;
//! 3. when a worker has committed groups it reports them with
//!    [`Scheduler::complete`] (several at once when it batched them), and
//!    goes back to 1 or 2.
//!
//! Everything the scheduler decides follows from pushes and completions, so
//! it is tested deterministically from scripts (`testdata/*.txt`) and by
//! property tests against a simulated set of FIFO workers.
//!
//! # Shards
//!
//! A group's *shards* are the units that must be applied in source order:
//! its databases by default, widened (several databases as one shard, for
//! cross-database foreign keys) or narrowed (one shard per table) by the
//! [`ShardMap`]. A group the scheduler cannot place on shards is a
//! *barrier* ([`BarrierReason`]).
//!
//! # Rules of dispatch
//!
//! 1. **Shards.** A shard with dispatched-but-incomplete groups is *bound*
//!    to the worker they were sent to. A group may be dispatched when none
//!    of its shards has an earlier undispatched group (per-shard source
//!    order) and all of its bound shards are bound to one worker W: it goes
//!    to W, pipelined behind the earlier groups of those shards (allowed
//!    because a worker applies its queue in order). If none of its shards is
//!    bound it goes to the least-loaded worker (fewest dispatched-incomplete
//!    groups; ties go to the lowest index). A group whose shards are bound
//!    to two or more workers *waits* until they are all bound to at most
//!    one; while it waits it still blocks its shards (later groups of those
//!    shards cannot overtake it), but groups of other shards can. Among
//!    dispatchable groups, the oldest goes first.
//! 2. **Barriers.** A barrier is dispatched only when every earlier group is
//!    complete, and nothing after it is dispatched until it completes: it is
//!    the only group in flight (on worker 0, the least loaded of idle
//!    workers).
//! 3. **Parallelism.** Groups of different shards run in parallel on
//!    different workers and may complete out of order.
//! 4. **Memory.** The bytes of the groups pushed and not yet complete stay
//!    within `max_inflight_bytes`, except for a group larger than the
//!    budget, which is admitted only when nothing else is outstanding and
//!    then runs alone (nothing else fits until it completes). The engine
//!    asks [`Scheduler::has_room`]; [`Scheduler::push`] refuses what does
//!    not fit.
//! 5. **Liveness.** If every dispatched group eventually completes, every
//!    pushed group is eventually dispatched: a group waits only on earlier
//!    groups, so there is no cycle, and a waiting group keeps later groups
//!    off its shards, so the workers its shards are bound to drain.
//! 6. **Queues.** A worker holds at most `max_queue` dispatched,
//!    incomplete groups. A group rule 1 sends to a full worker stays
//!    undispatched until that worker has room; when every worker is full
//!    nothing is dispatched. (Unlimited by default; key shards need a
//!    limit, see below.)
//!
//! # What a group waits for (the writeset rule)
//!
//! Read as a dependency graph, the shard queues are "the last writer of
//! each shard": a group depends on the earlier groups that share a shard
//! with it, and on nothing else. It is dispatched once each of them is
//! complete or dispatched to the one worker it goes to (which applies them
//! before it) — MySQL's WRITESET rule, with pipelining. What else can hold
//! it is capacity, never another group's shards: a free slot in a queue
//! (rule 6), and, once dispatched, the groups ahead of it in its worker's
//! queue. With one shard per key bucket (`--shard-by key`) most groups
//! touch several shards; unlimited queues would then put thousands of
//! groups in flight, nearly every new group would share a bucket with one
//! of them, and those spread over several workers would wait (rule 1).
//! A short queue per worker keeps the in-flight set, and so the chance of
//! sharing a bucket, small: the engine sets `max_queue` under key shards.
//!
//! Completions need not arrive in queue order: the scheduler only counts,
//! per shard and per worker, what is still incomplete. What it relies on is
//! that a worker applies the groups of one shard in the order they were
//! dispatched to it.
//!
//! # Low watermark
//!
//! [`Scheduler::low_watermark`] is the largest pushed id such that every
//! pushed id up to it is complete: the point a restart may resume from.
//!
//! # Cost
//!
//! Every call is O(shards of the group touched · log n) or better, plus a
//! scan over the workers to find the least loaded: each shard keeps a queue
//! of its undispatched groups, each group a count of the shards on which an
//! earlier group is still queued, and only groups at the head of all their
//! queues are ever examined. Groups behind a barrier are held in one queue
//! and enter the shard queues when it completes.

pub mod keys;
mod shard_map;
#[cfg(test)]
mod tests;

pub use keys::KeyCatalog;
pub use shard_map::{ShardBy, ShardMap, ShardMapError, DEFAULT_KEY_BUCKETS, MAX_KEY_BUCKETS};

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

/// Identifies a pushed group; assigned by the caller, strictly increasing in
/// push order (gaps are allowed).
pub type GroupId = u64;

/// A unit of ordering: groups of one shard are applied in source order.
///
/// Its name is what the progress table records per shard: a database name, a
/// merged shard's name from `--shard-map`, or `db.table` with
/// [`ShardBy::Table`]. The empty name is the shard of groups that touch no
/// database (see [`Shard::none`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard(pub Arc<str>);

impl Shard {
    /// A shard named `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Shard(name.into())
    }

    /// The shard of groups that touch no database (a transaction with no
    /// row events, a statement that updated nothing): the empty name. No
    /// database and no `--shard-map` shard has that name.
    pub fn none() -> Self {
        Shard(Arc::from(""))
    }

    /// Its name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Shard {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(no database)")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// The worker every barrier is dispatched to. Barriers run alone, so this
/// costs no parallelism; it keeps the temporary tables a primary session
/// creates (in statement format, always inside barriers) on one target
/// session, where that session's later statements find them.
pub const BARRIER_WORKER: usize = 0;

/// Why a group runs alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BarrierReason {
    /// DDL: may change what any later group means.
    Ddl,
    /// Statement-format DML whose databases the server did not list (its
    /// default database alone proves nothing).
    UnknownDatabases,
    /// Statement-format DML under [`ShardBy::Table`]: a statement does not
    /// say which tables it touched.
    UnknownTables,
    /// Under [`ShardBy::Key`]: a statement (it does not say which rows it
    /// touched), or row events whose keys cannot be read.
    UnknownRows,
    /// Touches non-transactional tables: cannot be rolled back or batched.
    NonTransactional,
    /// Part of an XA transaction.
    Xa,
    /// Something the reader could not classify.
    Unclassified,
    /// The first group after the primary started anew: the temporary
    /// tables of its earlier sessions are dropped on the barrier worker's
    /// session first.
    PrimaryStart,
}

impl BarrierReason {
    /// A short name for logs, status and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BarrierReason::Ddl => "ddl",
            BarrierReason::UnknownDatabases => "unknown_databases",
            BarrierReason::UnknownTables => "unknown_tables",
            BarrierReason::UnknownRows => "unknown_rows",
            BarrierReason::NonTransactional => "non_transactional",
            BarrierReason::Xa => "xa",
            BarrierReason::Unclassified => "unclassified",
            BarrierReason::PrimaryStart => "primary_start",
        }
    }
}

impl fmt::Display for BarrierReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BarrierReason::Ddl => "DDL",
            BarrierReason::UnknownDatabases => "statement with unknown databases",
            BarrierReason::UnknownTables => "statement with unknown tables",
            BarrierReason::UnknownRows => "group with unknown rows",
            BarrierReason::NonTransactional => "non-transactional group",
            BarrierReason::Xa => "XA transaction",
            BarrierReason::Unclassified => "unclassified group",
            BarrierReason::PrimaryStart => "first group after a primary start",
        })
    }
}

/// How a group is ordered against the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// In source order with the other groups of these shards (non-empty;
    /// duplicates are ignored), in parallel with everything else.
    Shards(Vec<Shard>),
    /// Alone: after everything before it, before everything after it.
    Barrier(BarrierReason),
}

impl Placement {
    /// Shards named `names`.
    pub fn shards<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Arc<str>>,
    {
        Placement::Shards(names.into_iter().map(Shard::new).collect())
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Shards(shards) => {
                for (i, s) in shards.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{s}")?;
                }
                Ok(())
            }
            Placement::Barrier(reason) => write!(f, "barrier ({reason})"),
        }
    }
}

/// "Append group `id` to worker `worker`'s queue."
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dispatch {
    /// The group.
    pub id: GroupId,
    /// The worker's index, below [`SchedulerConfig::workers`].
    pub worker: usize,
}

impl fmt::Display for Dispatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.worker)
    }
}

/// How the scheduler is sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Number of workers (at least 1; 0 is taken as 1).
    pub workers: usize,
    /// Budget for the bytes of groups pushed and not yet complete.
    pub max_inflight_bytes: u64,
    /// Dispatched, incomplete groups one worker holds at most (its queue:
    /// what it may batch or chain); `usize::MAX` for no limit, 0 is taken
    /// as 1. See rule 6 of the module doc.
    pub max_queue: usize,
}

impl SchedulerConfig {
    /// `workers` workers, a byte budget, no limit on a worker's queue.
    pub fn new(workers: usize, max_inflight_bytes: u64) -> Self {
        SchedulerConfig {
            workers,
            max_inflight_bytes,
            max_queue: usize::MAX,
        }
    }
}

/// A call the scheduler refuses; each one is a bug in the caller, and the
/// scheduler's state is unchanged by it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Ids must increase in push order.
    #[error("group {id} pushed after group {last}: ids must increase in push order")]
    OutOfOrder {
        /// The refused id.
        id: GroupId,
        /// The last id pushed.
        last: GroupId,
    },
    /// [`Placement::Shards`] with no shard.
    #[error("group {id} has an empty shard set")]
    NoShards {
        /// The refused group.
        id: GroupId,
    },
    /// The group does not fit the byte budget (see [`Scheduler::has_room`]).
    #[error("group {id} ({bytes} bytes) does not fit: {inflight} of {budget} bytes in flight")]
    NoRoom {
        /// The refused group.
        id: GroupId,
        /// Its size.
        bytes: u64,
        /// Bytes outstanding.
        inflight: u64,
        /// The budget.
        budget: u64,
    },
    /// Completion of an id that was never pushed or is already complete.
    #[error("group {id} completed, but it was never pushed or is already complete")]
    Unknown {
        /// The id.
        id: GroupId,
    },
    /// Completion of a group that was not dispatched.
    #[error("group {id} completed, but it was never dispatched")]
    NotDispatched {
        /// The id.
        id: GroupId,
    },
}

/// Where a pushed, incomplete group stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Behind a barrier (or a barrier itself), not yet in the shard queues.
    Gated,
    /// In the queues of its shards, `ahead` of which hold an earlier group.
    Queued { ahead: usize },
    /// Dispatched to `worker`.
    Running { worker: usize },
}

#[derive(Debug)]
struct Entry {
    /// Sorted, without duplicates; empty for a barrier.
    shards: Vec<Shard>,
    barrier: Option<BarrierReason>,
    bytes: u64,
    state: State,
}

#[derive(Debug, Default)]
struct ShardState {
    /// Undispatched groups, in push order.
    queued: VecDeque<GroupId>,
    /// Dispatched, incomplete groups.
    running: usize,
    /// The worker they run on (`Some` iff `running > 0`).
    bound: Option<usize>,
}

/// The dependency scheduler; see the [module documentation](self) for its
/// rules.
#[derive(Debug)]
pub struct Scheduler {
    budget: u64,
    /// Dispatched, incomplete groups per worker.
    loads: Vec<usize>,
    /// A worker's queue holds at most this many.
    max_queue: usize,
    /// Per worker, groups that may go only to it and found its queue full:
    /// back in `ready` when it has room again.
    parked: Vec<Vec<GroupId>>,
    in_flight: usize,
    /// Every pushed, incomplete group.
    groups: HashMap<GroupId, Entry>,
    /// Shards with queued or running groups.
    shards: HashMap<Shard, ShardState>,
    /// Queued groups at the head of all their shard queues, not known to
    /// wait (a waiting group leaves it and returns when one of its shards
    /// is unbound).
    ready: BTreeSet<GroupId>,
    /// The first incomplete barrier and everything pushed after it.
    gate: VecDeque<GroupId>,
    /// Incomplete groups that are not gated.
    active: usize,
    /// Bytes of every pushed, incomplete group.
    bytes: u64,
    /// Pushed ids from the oldest incomplete one on.
    order: VecDeque<GroupId>,
    last_pushed: Option<GroupId>,
    watermark: Option<GroupId>,
}

impl Scheduler {
    /// An idle scheduler.
    pub fn new(cfg: SchedulerConfig) -> Self {
        Scheduler {
            budget: cfg.max_inflight_bytes,
            loads: vec![0; cfg.workers.max(1)],
            max_queue: cfg.max_queue.max(1),
            parked: vec![Vec::new(); cfg.workers.max(1)],
            in_flight: 0,
            groups: HashMap::new(),
            shards: HashMap::new(),
            ready: BTreeSet::new(),
            gate: VecDeque::new(),
            active: 0,
            bytes: 0,
            order: VecDeque::new(),
            last_pushed: None,
            watermark: None,
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.loads.len()
    }

    /// Whether a group of `bytes` may be pushed now: the bytes outstanding
    /// plus `bytes` fit the budget, or nothing is outstanding (a group
    /// larger than the budget then runs alone: nothing else fits while it
    /// is outstanding).
    pub fn has_room(&self, bytes: u64) -> bool {
        self.groups.is_empty() || self.bytes.saturating_add(bytes) <= self.budget
    }

    /// Accepts the next group in source order.
    ///
    /// Refused (state unchanged) if `id` is not greater than every id pushed
    /// before, if `placement` has no shard, or if the group does not fit
    /// ([`Scheduler::has_room`]).
    pub fn push(
        &mut self,
        id: GroupId,
        placement: Placement,
        bytes: u64,
    ) -> Result<(), ScheduleError> {
        if let Some(last) = self.last_pushed.filter(|&last| id <= last) {
            return Err(ScheduleError::OutOfOrder { id, last });
        }
        let (mut shards, barrier) = match placement {
            Placement::Shards(shards) if shards.is_empty() => {
                return Err(ScheduleError::NoShards { id })
            }
            Placement::Shards(shards) => (shards, None),
            Placement::Barrier(reason) => (Vec::new(), Some(reason)),
        };
        if !self.has_room(bytes) {
            return Err(ScheduleError::NoRoom {
                id,
                bytes,
                inflight: self.bytes,
                budget: self.budget,
            });
        }
        shards.sort_unstable();
        shards.dedup();
        self.last_pushed = Some(id);
        self.order.push_back(id);
        self.bytes = self.bytes.saturating_add(bytes);
        let gated = barrier.is_some() || !self.gate.is_empty();
        self.groups.insert(
            id,
            Entry {
                shards,
                barrier,
                bytes,
                state: State::Gated,
            },
        );
        if gated {
            self.gate.push_back(id);
        } else {
            self.enqueue(id);
        }
        Ok(())
    }

    /// The next group to dispatch, if any may go now. Each pushed group is
    /// returned exactly once; the caller must append it to the named
    /// worker's queue.
    pub fn poll_dispatch(&mut self) -> Option<Dispatch> {
        if let Some(&barrier) = self.gate.front() {
            if self.active == 0 {
                let gated = self
                    .groups
                    .get(&barrier)
                    .is_some_and(|e| e.state == State::Gated);
                // While it runs, nothing else is pushed into the shard
                // queues, so `ready` is empty. Every barrier goes to the
                // same worker (all are idle): statement-format groups are
                // barriers, and a primary session's temporary tables live
                // on the one target session that applied its CREATE.
                return gated.then(|| self.start(barrier, BARRIER_WORKER));
            }
        }
        while let Some(&id) = self.ready.first() {
            // Every queue full: nothing may go (rule 6); the ready groups
            // stay ready.
            if self.loads.iter().all(|&l| l >= self.max_queue) {
                return None;
            }
            self.ready.pop_first();
            match self.target(id) {
                Some(worker) if self.loads[worker] < self.max_queue => {
                    return Some(self.start(id, worker))
                }
                // Only this worker may take it, and its queue is full;
                // back in `ready` when it has room.
                Some(worker) => self.parked[worker].push(id),
                // Waits; back in `ready` when one of its shards is unbound.
                None => continue,
            }
        }
        None
    }

    /// Every group that may be dispatched now, in dispatch order.
    pub fn ready(&mut self) -> Vec<Dispatch> {
        std::iter::from_fn(|| self.poll_dispatch()).collect()
    }

    /// Records that group `id` is applied and committed.
    ///
    /// Refused (state unchanged) if `id` is not a dispatched, incomplete
    /// group.
    pub fn complete(&mut self, id: GroupId) -> Result<(), ScheduleError> {
        let worker = match self.groups.get(&id) {
            None => return Err(ScheduleError::Unknown { id }),
            Some(Entry {
                state: State::Running { worker },
                ..
            }) => *worker,
            Some(_) => return Err(ScheduleError::NotDispatched { id }),
        };
        let Some(entry) = self.groups.remove(&id) else {
            return Err(ScheduleError::Unknown { id });
        };
        self.bytes = self.bytes.saturating_sub(entry.bytes);
        self.in_flight -= 1;
        self.loads[worker] -= 1;
        if self.loads[worker] + 1 == self.max_queue {
            for parked in std::mem::take(&mut self.parked[worker]) {
                if matches!(
                    self.groups.get(&parked),
                    Some(Entry {
                        state: State::Queued { ahead: 0 },
                        ..
                    })
                ) {
                    self.ready.insert(parked);
                }
            }
        }
        if entry.barrier.is_some() {
            self.gate.pop_front();
            self.release_gate();
        } else {
            self.active -= 1;
            for shard in &entry.shards {
                self.shard_done(shard);
            }
        }
        while let Some(&first) = self.order.front() {
            if self.groups.contains_key(&first) {
                break;
            }
            self.watermark = Some(first);
            self.order.pop_front();
        }
        Ok(())
    }

    /// [`Scheduler::complete`] for each id in turn (a worker's batch);
    /// stops at the first refused id, the ones before it staying complete.
    pub fn complete_all(
        &mut self,
        ids: impl IntoIterator<Item = GroupId>,
    ) -> Result<(), ScheduleError> {
        ids.into_iter().try_for_each(|id| self.complete(id))
    }

    /// Dispatched, incomplete groups.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Pushed groups not yet dispatched.
    pub fn pending(&self) -> usize {
        self.groups.len() - self.in_flight
    }

    /// Pushed, incomplete groups (pending or in flight).
    pub fn outstanding(&self) -> usize {
        self.groups.len()
    }

    /// Whether every pushed group is complete.
    pub fn is_idle(&self) -> bool {
        self.groups.is_empty()
    }

    /// Bytes of the pushed, incomplete groups: what the budget bounds.
    pub fn inflight_bytes(&self) -> u64 {
        self.bytes
    }

    /// The largest pushed id such that every pushed id up to it is
    /// complete; `None` until the first pushed group completes.
    pub fn low_watermark(&self) -> Option<GroupId> {
        self.watermark
    }

    /// Dispatched, incomplete groups of `worker` (0 for an index out of
    /// range).
    pub fn backlog(&self, worker: usize) -> usize {
        self.loads.get(worker).copied().unwrap_or(0)
    }

    /// The oldest incomplete barrier, which holds back everything pushed
    /// after it, and whether it is dispatched.
    pub fn barrier(&self) -> Option<(GroupId, BarrierReason, bool)> {
        let id = *self.gate.front()?;
        let entry = self.groups.get(&id)?;
        Some((
            id,
            entry.barrier?,
            matches!(entry.state, State::Running { .. }),
        ))
    }

    /// Shards with queued or dispatched groups.
    pub fn active_shards(&self) -> usize {
        self.shards.len()
    }

    /// Puts a non-barrier group into the queues of its shards.
    fn enqueue(&mut self, id: GroupId) {
        let Scheduler {
            groups,
            shards,
            ready,
            active,
            ..
        } = self;
        let Some(entry) = groups.get_mut(&id) else {
            return;
        };
        let mut ahead = 0;
        for shard in &entry.shards {
            let state = shards.entry(shard.clone()).or_default();
            if !state.queued.is_empty() {
                ahead += 1;
            }
            state.queued.push_back(id);
        }
        entry.state = State::Queued { ahead };
        if ahead == 0 {
            ready.insert(id);
        }
        *active += 1;
    }

    /// Where a group at the head of all its shard queues may go: the one
    /// worker its bound shards are bound to, the least loaded if none is
    /// bound, `None` if they are bound to several.
    fn target(&self, id: GroupId) -> Option<usize> {
        let entry = self.groups.get(&id)?;
        let mut target = None;
        for shard in &entry.shards {
            if let Some(w) = self.shards.get(shard).and_then(|s| s.bound) {
                match target {
                    Some(t) if t != w => return None,
                    _ => target = Some(w),
                }
            }
        }
        Some(target.unwrap_or_else(|| self.least_loaded()))
    }

    fn least_loaded(&self) -> usize {
        let mut best = 0;
        for (w, &load) in self.loads.iter().enumerate() {
            if load < self.loads[best] {
                best = w;
            }
        }
        best
    }

    /// Dispatches `id` (at the head of its shard queues, or the gate's
    /// barrier) to `worker`.
    fn start(&mut self, id: GroupId, worker: usize) -> Dispatch {
        self.loads[worker] += 1;
        self.in_flight += 1;
        let Some(entry) = self.groups.get_mut(&id) else {
            return Dispatch { id, worker };
        };
        entry.state = State::Running { worker };
        let shards = std::mem::take(&mut entry.shards);
        for shard in &shards {
            let Some(state) = self.shards.get_mut(shard) else {
                continue;
            };
            let head = state.queued.pop_front();
            debug_assert_eq!(head, Some(id), "dispatched group not at its shard's head");
            state.running += 1;
            state.bound = Some(worker);
            // The next group of this shard has one shard fewer ahead.
            if let Some(&next) = state.queued.front() {
                if let Some(Entry {
                    state: State::Queued { ahead },
                    ..
                }) = self.groups.get_mut(&next)
                {
                    *ahead -= 1;
                    if *ahead == 0 {
                        self.ready.insert(next);
                    }
                }
            }
        }
        if let Some(entry) = self.groups.get_mut(&id) {
            entry.shards = shards;
        }
        Dispatch { id, worker }
    }

    /// One running group of `shard` completed.
    fn shard_done(&mut self, shard: &Shard) {
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        state.running -= 1;
        if state.running > 0 {
            return;
        }
        state.bound = None;
        match state.queued.front() {
            None => {
                self.shards.remove(shard);
            }
            // Its next group may have been waiting for this shard to be
            // unbound.
            Some(&next) => {
                if matches!(
                    self.groups.get(&next),
                    Some(Entry {
                        state: State::Queued { ahead: 0 },
                        ..
                    })
                ) {
                    self.ready.insert(next);
                }
            }
        }
    }

    /// The gate's barrier completed: the groups up to the next barrier
    /// enter the shard queues.
    fn release_gate(&mut self) {
        while let Some(&id) = self.gate.front() {
            if self.groups.get(&id).is_some_and(|e| e.barrier.is_some()) {
                break;
            }
            self.gate.pop_front();
            self.enqueue(id);
        }
    }

    /// Checks the internal bookkeeping against a recomputation from scratch.
    #[cfg(test)]
    fn check_invariants(&self) {
        let mut loads = vec![0; self.loads.len()];
        let mut bytes = 0;
        let mut active = 0;
        for (&id, e) in &self.groups {
            bytes += e.bytes;
            if let State::Running { worker } = e.state {
                loads[worker] += 1;
            }
            if e.barrier.is_none() && e.state != State::Gated {
                active += 1;
            }
            if let State::Queued { ahead } = e.state {
                let actual = e
                    .shards
                    .iter()
                    .filter(|s| self.shards[*s].queued.front() != Some(&id))
                    .count();
                assert_eq!(ahead, actual, "group {id}: shards ahead");
            }
        }
        assert_eq!(loads, self.loads, "loads");
        assert!(
            self.loads.iter().all(|&l| l <= self.max_queue),
            "a queue over {}: {:?}",
            self.max_queue,
            self.loads
        );
        for (w, parked) in self.parked.iter().enumerate() {
            assert!(
                parked.is_empty() || self.loads[w] == self.max_queue,
                "worker {w} has room but groups {parked:?} are parked on it"
            );
        }
        assert_eq!(self.in_flight, loads.iter().sum::<usize>(), "in flight");
        assert_eq!(bytes, self.bytes, "bytes");
        assert_eq!(active, self.active, "active");
        for (shard, s) in &self.shards {
            assert!(!s.queued.is_empty() || s.running > 0, "{shard:?} empty");
            assert_eq!(s.bound.is_some(), s.running > 0, "{shard:?} bound");
            let running: Vec<_> = self
                .groups
                .values()
                .filter(|e| e.shards.contains(shard))
                .filter_map(|e| match e.state {
                    State::Running { worker } => Some(worker),
                    _ => None,
                })
                .collect();
            assert_eq!(running.len(), s.running, "{shard:?} running");
            assert!(
                running.iter().all(|&w| Some(w) == s.bound),
                "{shard:?} has groups running on workers {running:?} but is bound to {:?}",
                s.bound
            );
        }
        for id in &self.ready {
            assert_eq!(
                self.groups[id].state,
                State::Queued { ahead: 0 },
                "ready {id}"
            );
        }
        if let Some(first) = self.gate.front() {
            assert!(
                self.groups[first].barrier.is_some(),
                "gate starts with a barrier"
            );
        }
        let oldest = self.groups.keys().min();
        assert_eq!(self.order.front(), oldest, "order");
    }
}
