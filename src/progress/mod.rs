//! Progress on the target: per-shard applied-GTID watermarks and the
//! low-watermark, and the restart rule built on them.
//!
//! Two halves: [`state`] is pure (the watermarks as values, the restart
//! rule, the per-group decision the engine and `status` share, the
//! comparison of two replicas' states); [`tables`] is how the state lives on
//! a target (the SQL that creates, reads and writes the tables, and the row
//! events a worker sends instead of SQL). Reading and writing them over a
//! connection is [`crate::replica`]'s job.
//!
//! # The record
//!
//! Two tables in a schema of the target (default `parapply`):
//!
//! * `shard_progress (domain_id, shard) → seq_no, server_id, file, end_pos`:
//!   the last applied group of each shard, written by the worker **in the
//!   same transaction** as the group (or as the last group of a batch).
//!   Because one shard is applied in source order, everything of that shard
//!   up to `seq_no` is applied and nothing after it.
//! * `low_watermark (domain_id) → seq_no, server_id, file, end_pos`: a
//!   prefix of the source, in source order, that is entirely applied;
//!   written periodically by the engine, and after every barrier.
//!
//! A third table, `config`, keeps the shard-map fingerprint: watermarks are
//! only meaningful under the shard map that wrote them; the GTIDs that
//! creating these tables wrote in the target's own binary log (`own_gtids`:
//! not errant transactions); and, during a promotion, its freeze request
//! (`freeze`) and its persisted plan and progress (`promotion`). A fourth,
//! `sessions`, lists the connection ids of the running applier's workers.
//!
//! # A dead applier's statements
//!
//! When an applier dies (SIGKILL, a crash of its host), a statement it sent
//! may still be running on the target — a long DDL, say — and commit after a
//! new applier has read the state. So before reading the state, a new
//! applier takes the lock [`ProgressTables::applier_lock`] (only one applier
//! per target, whatever its schema) and waits until every connection listed in
//! `sessions` has left the server's process list; then the state is final.
//!
//! # The restart rule (exactly once)
//!
//! Reading restarts at the low-watermark's end position. A group
//! `d-s-n` found there is already applied iff
//!
//! 1. `n ≤ L[d]` (it is inside the applied prefix); or
//! 2. it is a shard group and `W[d, x] ≥ n` for one of its shards `x` — a
//!    later group of `x` (or the group itself) is applied, and groups of one
//!    shard are applied in order; a multi-shard group updates all its rows in
//!    its own transaction, so one row is as good as all; or
//! 3. it is a barrier (DDL, a non-transactional statement, an XA commit:
//!    work that cannot share a transaction with a progress row) and the
//!    target's binary log holds a GTID of domain `d` and server `s` with
//!    sequence number `≥ n`. A barrier runs alone after everything before it
//!    and before everything after it, and the primary's sequence numbers grow
//!    within a domain, so the target's last logged GTID of `(d, s)` reaches
//!    `n` exactly when the barrier committed. This is why parapply needs
//!    `log_bin` on the target (replicas that may be promoted have it anyway).
//!
//! Nothing is lost (every group not covered by these rules is applied again
//! from the start position) and nothing is applied twice (every group they
//! cover is skipped).
//!
//! # How a worker writes a shard row
//!
//! The first time a shard is applied its row is inserted with SQL (`INSERT …
//! ON DUPLICATE KEY UPDATE`). From then on the worker updates it as a row
//! event — a Table_map and an Update_rows event of `shard_progress`
//! ([`ProgressTables::shard_update_events`]) sent inside the group's own
//! `BINLOG` statement — as a statement of its own after the group's, or,
//! for a group of one row statement, merged into that statement (see
//! [`crate::apply::replay::TrailerUse`]) — which spares the server parsing
//! a statement per transaction. The events describe the table exactly as [`create_sql`]
//! makes it; [`ProgressTables::layout_sql`] lets the engine check that the
//! table on the target still has that layout before it uses them.
//!
//! [`create_sql`]: ProgressTables::create_sql

pub mod state;
pub mod tables;

pub use state::{
    catch_up_action, compare, decide, parse_gtid_list, Action, Applied, AppliedSet, Decision, Goal,
    GroupFacts, Lead, ReplicaState, Selection, ShardKey, StateOrder, Until, Watermark,
};
pub use tables::{escape, ProgressTables, StateParseError, SHARD_PROGRESS_LAYOUT};
