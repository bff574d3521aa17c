//! parapply — a parallel replication applier for MariaDB.
//!
//! A replica server replays its primary's binlog on one SQL thread. parapply
//! replaces that thread as a sidecar process: it reads the primary's events
//! from a *mirrored binlog* (same file names and bytes as the primary's) or
//! from relay logs, applies the transactions of different databases in
//! parallel, records per database exactly what it applied, and uses that
//! record to promote a new primary when replicas hold incomparable states.
//! `../shared/DESIGN.md` is the contract between the parts; this page maps
//! it onto the modules.
//!
//! # Layers
//!
//! Top to bottom; a module uses modules of its own layer or of a lower one,
//! and no two modules use each other through any chain (`tests/layers.rs`
//! checks both on every test run, and fails on a library module missing
//! from its table). The library never imports the command line.
//!
//! | layer | modules | owns |
//! |---|---|---|
//! | binary | `src/main.rs`, `src/cli/` (not part of the library) | clap structs, one function per command, output (text/JSON; a closed stdout ends quietly), signals, password loading, `anyhow` |
//! | operations | [`catchup`], [`promote`], [`mod@bench`], [`corpus`] (feature `bench`), [`demo`] (feature `demo`) | procedures over several servers, built from the stages |
//! | stages | [`apply`] (engine, worker, replay), [`mirror`], [`inspect`] | one pipeline stage each, driven by an options struct (`ApplyOptions`, `MirrorOptions`, …) whose constructor holds every default |
//! | state | [`replica`], [`progress`], [`schedule`], [`metrics`] | one target server's parapply state (connect, preflight, applier lock, state read); the pure state and its tables; the pure scheduler; the Prometheus page and endpoint |
//! | test gear | [`sandbox`] (feature `testkit`) | throwaway servers, for tests and operations only |
//! | format and client | [`binlog`] (with `binlog::synth`, generated binlogs, feature `testkit`), [`group`], [`position`], [`text`], [`wire`] | bytes on disk and on the wire; text safe for a terminal |
//!
//! The default features (`bench`, which enables `testkit`) build everything;
//! `cargo build --no-default-features` builds the core library and the
//! production commands (`inspect`, `mirror`, `apply`, `status`) without the
//! test gear, so that they link neither the `mysql` client crate nor
//! `tempfile`: [`wire`] is the one client they use.
//!
//! ```text
//!  mirror dir / relay logs
//!         │  files, tailed as they grow
//!   ┌─────▼──────┐ groups  ┌───────────┐  per-worker queues  ┌──────────┐
//!   │ reader +   ├────────►│ scheduler ├────────────────────►│ worker k ├──► target
//!   │ grouper    │         │           │◄─── completions ────┤          │
//!   └────────────┘         └───────────┘                     └──────────┘
//! ```
//!
//! # Reader
//!
//! [`binlog`] holds the format: the event header, one decoder per event
//! family ([`binlog::events`]), the wire constants ([`binlog::constants`]),
//! and [`binlog::reader::BinlogReader`], which streams whole,
//! checksum-verified events from files or a directory's index, follows
//! rotation, tails growing files without spinning, never yields a partial
//! trailing event, and places every event in the primary's coordinates (also
//! in relay logs). [`group::Grouper`] cuts that stream into transaction
//! [`group::Group`]s: GTID, primary file and start/end positions, databases
//! and tables touched, [`group::GroupKind`] and the raw event bytes.
//! [`position`] defines file positions and GTIDs with their invariants.
//! `parapply inspect` ([`inspect`]) prints events or groups as text or JSON.
//!
//! # Mirror
//!
//! [`mirror`] (`parapply mirror`) connects to the primary as a replica and
//! writes its binlog byte for byte (same file names, offsets and bytes, plus
//! the index) into a directory the reader tails; it resumes after a crash
//! without duplicate, gap or reorder. [`wire`] is the minimal client it and
//! the workers use: raw-byte statements, the error of any statement of a
//! multi-statement batch, raw binlog-dump packets. [`mirror::serve`]
//! (`parapply mirror --serve`, `parapply serve`) serves a mirror over
//! MariaDB's replication protocol to replicas, `mariadb-binlog` and other
//! mirrors: by file and position or by GTID, following growth, only bytes
//! the mirror has fsynced.
//!
//! # Scheduler
//!
//! [`schedule::Scheduler`] is a pure state machine (no I/O): shards of a
//! group are its databases ([`schedule::ShardMap`] merges databases,
//! narrows to tables, or to buckets of the primary and unique key values in
//! the row images, [`schedule::keys`]); one shard's groups run in source
//! order on the worker the shard is bound to, different shards in parallel;
//! a group of several shards waits until they are on one worker; barriers
//! (DDL, XA, non-transactional or unclassifiable groups) run alone. A byte
//! budget bounds what is in flight, an optional limit each worker's queue.
//!
//! # Workers
//!
//! [`apply::worker`]: one [`wire`] connection each. [`apply::replay`] turns a
//! group into statements: row events as `BINLOG '<base64>'` after the
//! binlog's Format_description event, Query events with the session context
//! they carry, set as the server's SQL thread sets it (collations by number,
//! from the target's own list), each statement expected to end as the
//! primary logged it (success or the same error; otherwise
//! [`apply::DefiniteError::Diverged`]); a group the primary ended with
//! `ROLLBACK` is rolled back alone, and every barrier runs on one worker, so
//! a primary session's temporary tables live on one target session. The primary's GTID is kept, and the shard's watermark rides
//! in the group's own `BINLOG` statement as row events. A worker's backlog
//! (of any of its shards) is committed as one transaction in one round
//! trip (batching); without batching, waiting row transactions are chained
//! in one round trip, each committed on its own. Deadlocks are retried; a lost connection is
//! re-established and an in-doubt commit checked (after the lost session
//! has left the server); a target that stops answering counts as lost
//! within a bound ([`wire::ConnectOptions::probe_after`], a liveness probe
//! through a second connection). [`apply::ApplyMetrics`] and
//! [`mirror::MirrorMetrics`] hold the live figures that [`metrics`] serves
//! in the Prometheus text format.
//! [`apply::engine`] wires reader, scheduler and workers
//! ([`apply::engine::Engine`]: start, then a loop of named steps — dispatch,
//! admit, take reports, advance the low-watermark — and one shutdown that
//! every return goes through); it drains when its stop flag is set (the
//! binary sets it on SIGINT/SIGTERM), and the same loop run with a
//! [`progress::Selection::CatchUp`] applies a catch-up set. The commands
//! themselves (`parapply apply`, `status`, …) are the binary's.
//!
//! # Progress
//!
//! [`progress`]: the per-shard watermark rows written in each group's
//! transaction, the low-watermark, and the restart rule that makes a crash
//! lose nothing and repeat nothing (DDL included, through the target's
//! binlog state). [`progress::state`] is pure: the state as values, the one
//! per-group decision ([`progress::decide`]: apply, skip, pass over, stop)
//! that the engine and `status` share, and the comparison of two replicas'
//! states ([`progress::compare`]); [`progress::tables`] is their SQL and row
//! events.
//!
//! [`replica`]: one target server's parapply state through its control
//! connection — connect and reconnect, the preflight checks
//! (`ensure_*`), the applier lock, reading the state and the collations —
//! with plain inputs
//! and its own errors; the engine, `status` and promotion use it, and it
//! uses none of them.
//!
//! # Catch-up
//!
//! [`catchup`] (`parapply catchup`, docs/catchup.md): a replica's state
//! whoever applied it (parapply's tables, or the server's own SQL thread:
//! `gtid_slave_pos`, placed in a mirror), and the catch-up sets between two
//! states — the groups one holds and the other lacks, decided per group by
//! [`progress::decide`], in mirror order. Its pure core
//! ([`catchup::set`]: states and groups in, sets out) lets promotion plan
//! fleets without servers; the mirror is read from the earlier
//! low-watermark on, in parallel over files (rayon), without copying event
//! bytes; a mirror server is copied first. Applying a set is the engine's
//! run with [`progress::Selection::CatchUp`], checked after.
//!
//! # Promotion
//!
//! [`promote`] (`parapply promote`, operations layer; docs/promotion.md is
//! the runbook, `tla/Promotion.tla` the same algorithm model-checked):
//! freeze every applier through its target (the `freeze` row of the
//! progress `config` table, which a running engine polls and drains on),
//! check that the mirrors are prefixes of one stream and that no replica
//! holds errant transactions, plan ([`promote::plan`], pure: source = the
//! longest mirror, candidate given or ranked, what each replica lacks),
//! catch the candidate then every other replica up from the source through
//! the apply engine, persist the re-point position, make the candidate the
//! one writable server and re-point the others; its record on every replica
//! makes a rerun after kill -9 converge. [`trace`] writes promote's and the
//! engine's steps as TLA+ records, which the promotion tests check against
//! `tla/TracePromotion.tla`. [`promote::sim`] plans generated fleets.
//!
//! # Errors
//!
//! Every error names its place in the stream: [`binlog::ReadError`] carries
//! the file and byte position of the event concerned (`mariadb-bin.000003:1893:
//! checksum mismatch …`), [`binlog::DecodeError`] the field and offset inside
//! the event. The engine's errors ([`apply::ApplyError`]) are split by what
//! the caller does — transient (run again later) or definite (an operator
//! must act) — and a group's error names the group that failed
//! ([`apply::GroupRef`]: GTID, primary file:pos, databases); a failed run
//! still reports what it applied ([`apply::engine::ApplyFailure`]). `anyhow`
//! is used only in the binary (`src/cli/`).
//!
//! # Benchmarks
//!
//! [`mod@bench`] (`parapply bench`, feature `bench`): the end-to-end
//! comparison with MariaDB's own replication and `mariadb-binlog | mariadb`
//! on fresh durable replicas, six workloads, thread sweeps, charts and the
//! lag under steady load;
//! `benches/` holds the criterion suites (reader and grouper).
//! [`corpus`] (feature `bench`) runs MariaDB's own regression test files on
//! a throwaway primary and compares parapply's target with a stock replica
//! (`tests/corpus.rs`, `examples/mariadb_corpus.rs`).
//!
//! # Demo
//!
//! [`demo`] (`parapply demo`, feature `demo`, operations layer): the whole
//! story on throwaway servers — a primary under load, three replicas each
//! with a mirror and an applier (threads of one process), MariaDB's single
//! SQL thread racing them on the same binlog, the primary killed, the
//! replicas' incomparable states, [`promote::run`], new writes reaching the
//! others, and a summary measured on the servers (`tests/demo.rs`).
//!
//! # Test gear
//!
//! Feature `testkit` (on by default): [`sandbox`] starts throwaway
//! `mariadbd` servers (temp dir, free loopback port, removed on drop) for the
//! integration tests, the demo and benchmarks, through the `mysql` client
//! crate; `binlog::synth` writes synthetic binlogs for unit tests, fuzzing
//! and the reader benchmarks.

pub mod apply;
#[cfg(feature = "bench")]
pub mod bench;
pub mod binlog;
pub mod catchup;
#[cfg(feature = "bench")]
pub mod corpus;
#[cfg(feature = "demo")]
pub mod demo;
pub mod group;
pub mod inspect;
pub mod metrics;
pub mod mirror;
pub mod position;
pub mod progress;
pub mod promote;
pub mod replica;
#[cfg(feature = "testkit")]
pub mod sandbox;
pub mod schedule;
pub mod text;
pub mod trace;
pub mod wire;
