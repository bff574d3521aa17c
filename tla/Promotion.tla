----------------------------- MODULE Promotion -----------------------------
(***************************************************************************)
(* Parallel replication with per-shard watermarks, and the promotion of a  *)
(* new primary after the old one crashed: DESIGN.md, "Pipeline", points 4  *)
(* to 7, and issue 12 (`parapply promote`).                                *)
(*                                                                         *)
(* The old primary commits transaction groups, each in one GTID domain and *)
(* touching a non-empty set of shards (databases).  Every replica runs     *)
(* `parapply mirror`, which holds a prefix of the primary's binlog, and    *)
(* `parapply apply`, which applies the groups of that mirror: in source    *)
(* order within a (domain, shard), in any order across them.  An applier   *)
(* first decides what to apply (its check), then commits it (a later       *)
(* step); several consecutive groups of one shard may be committed as one  *)
(* target transaction, which the replica's own binlog logs as ONE          *)
(* transaction with the GTID of the batch's last group.  In the same       *)
(* target transaction the applier moves the watermark of each (domain,     *)
(* shard) the groups touch.  The applier decides from persisted state      *)
(* only (watermarks, its mirror), so a crash loses nothing but the         *)
(* transactions it had open.                                               *)
(*                                                                         *)
(* When the old primary has crashed, `parapply promote` freezes every      *)
(* applier (each finishes its open transaction and stops), checks that the *)
(* mirrors are prefixes of one stream and that no replica holds an errant  *)
(* transaction (else it refuses), persists its plan (candidate, source),   *)
(* applies to the candidate the catch-up set read from the longest mirror, *)
(* then to every other replica, persists the position where the           *)
(* candidate's binlog stands, makes the candidate writable and re-points   *)
(* the others at that position.  The new primary continues each domain's  *)
(* sequence of seq_nos.  Promote may crash at any step and be run again,   *)
(* even naming another candidate.                                          *)
(*                                                                         *)
(* Faults the environment may inject (constant Faults): the old primary    *)
(* losing the tail of its binlog and writing other groups in its place     *)
(* (so mirrors diverge), and a transaction written by hand on a replica    *)
(* (errant).  Promotion must refuse both.                                  *)
(*                                                                         *)
(* The constant Bug selects a deliberately broken variant, used to show    *)
(* that the properties below catch the mistake; "none" is the design.      *)
(* Every place where a variant departs from the design says BROKEN.        *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets

CONSTANTS
    Replicas,    \* the replica servers (model values or strings)
    Shards,      \* the shards (databases)
    Domains,     \* the GTID domains
    OldPrimary,  \* the server id of the primary that crashes
    MaxOld,      \* how many groups the old primary commits at most
    MaxNew,      \* how many groups the new primary commits at most
    MaxBatch,    \* how many groups an applier commits in one transaction, at most
    MaxReruns,   \* how many times `parapply promote` crashes and is rerun
    Faults,      \* a subset of {"fork", "errant"}: the faults that may happen
    Reduce,      \* TRUE for model checking: the reduction Quiet (below);
                 \* FALSE to check traces, whose steps interleave freely
    Bug          \* "none" (the design) or one of the broken variants:

\* "own_mirror"      promotion catches the candidate up from the candidate's own
\*                   mirror instead of the longest one;
\* "split_persist"   the applier commits a group's rows and its watermarks in
\*                   two separate target transactions;
\* "split_shards"    the applier commits a multi-shard group one shard at a
\*                   time, each part in a transaction of its own;
\* "low_max"         the low-watermark L is the highest per-shard watermark
\*                   instead of the end of the contiguously applied prefix;
\* "src_applied"     the catch-up source is the longest mirror cut at the
\*                   highest applied seq_no: groups received but applied
\*                   nowhere are dropped;
\* "repoint_gtid"    the others are re-pointed by their old GTID position (the
\*                   last GTID each logged) instead of by the position the
\*                   candidate's binlog had at convergence;
\* "no_freeze"       promotion does not wait for the appliers to stop;
\* "rerun_replan"    a rerun of promote, after the candidate was made
\*                   writable, starts over with the candidate it is given;
\* "rerun_position"  a rerun of promote takes the re-point position from the
\*                   candidate's binlog as it stands now, not the persisted one;
\* "no_prefix_check" promotion does not check that the mirrors are prefixes of
\*                   one stream;
\* "no_errant_check" promotion does not look for errant transactions;
\* "seq_last_logged" the new primary continues each domain from the seq_no of
\*                   the last GTID its binlog logged in it (MariaDB's default),
\*                   not from the highest any replica applied.
Bugs == {"none", "own_mirror", "split_persist", "split_shards", "low_max",
         "src_applied", "repoint_gtid", "no_freeze", "rerun_replan",
         "rerun_position", "no_prefix_check", "no_errant_check",
         "seq_last_logged"}

ASSUME
    /\ Replicas # {} /\ Shards # {} /\ Domains # {}
    /\ OldPrimary \notin Replicas
    /\ MaxOld \in Nat /\ MaxNew \in Nat /\ MaxBatch \in Nat \ {0}
    /\ MaxReruns \in Nat
    /\ Faults \subseteq {"fork", "errant"}
    /\ Reduce \in BOOLEAN
    /\ Bug \in Bugs

(***************************************************************************)
(* Transaction groups.  A group is named by its GTID: domain, the server   *)
(* that wrote it, seq_no; `v` tells apart the groups an old primary wrote  *)
(* at the same position after losing the tail of its binlog (fault         *)
(* "fork"): 1 for those, 0 otherwise.  `shards` is the group's shard set,  *)
(* as the scheduler computes it.  The rows a group writes in shard s are   *)
(* its "part" <<g, s>>; a replica holds the part once the target           *)
(* transaction that writes it has committed.                               *)
(***************************************************************************)
Servers   == Replicas \cup {OldPrimary}
ShardSets == (SUBSET Shards) \ {{}}
MaxSeq    == MaxOld + MaxNew + 1
Groups    == [dom : Domains, srv : Servers, seq : 1..MaxSeq,
              shards : ShardSets, v : {0, 1}]
Parts(g)  == {<<g, s>> : s \in g.shards}

(* An entry of a server's own binlog: one transaction, logged with one     *)
(* GTID (dom, srv, seq), holding the groups `gs` (several when an applier  *)
(* batched them; the GTID is then the last group's).                       *)
Entries   == [dom : Domains, srv : Servers, seq : 1..MaxSeq, gs : Seq(Groups)]
EntryOf(gs) == [dom |-> gs[Len(gs)].dom, srv |-> gs[Len(gs)].srv,
                seq |-> gs[Len(gs)].seq, gs |-> gs]

VARIABLES
    log,          \* The domain's stream, as a sequence of groups: the binlog
                  \* of the old primary; from promotion on, the catch-up
                  \* source (what no mirror received died with the old
                  \* primary) followed by the new primary's writes.
    primary,      \* The server that is, or is being made, the primary:
                  \* OldPrimary, then the candidate of promote's plan
                  \* (persisted).
    primaryUp,    \* TRUE while `primary` is up and accepts writes.
    phase,        \* "replicating": mirrors copy, appliers apply.
                  \* "freezing": promote has started and stops appliers.
                  \* "catchup_candidate", "catchup_others": catch-up.
                  \* "writable": the candidate is writable, the others are
                  \*   being re-pointed.  "promoted": all re-pointed.
                  \* "refused": promote refused (diverged mirror, errant
                  \*   transaction); the operator's turn.
                  \* Promote persists the phase: its progress.
    mirror,       \* mirror[r]: r's mirrored binlog, as a sequence of groups.
    wm,           \* wm[r][d][s]: watermark W of (domain d, shard s), persisted
                  \* in r's progress table: the seq_no of the last group of
                  \* (d, s) that r applied (0: none).
    low,          \* low[r][d]: the persisted low-watermark L of domain d.
    applied,      \* applied[r]: the parts r's tables hold.  Ghost.
    inflight,     \* inflight[r]: the transactions r's applier has open (its
                  \* workers'), each the sequence of groups it checked and is
                  \* applying.  Applier memory, lost in a crash.
    unpersisted,  \* unpersisted[r]: parts whose rows committed while their
                  \* watermark is not persisted yet.  Always empty except
                  \* in Bug "split_persist".
    frozen,       \* frozen[r]: promote asked r's applier to stop.
    blog,         \* blog[r]: r's own binlog, a sequence of entries.
    writable,     \* The servers with read_only=OFF that are up.
    src,          \* The catch-up source, in promote's persisted plan.
    ppos,         \* <<n>>: the re-point position promote persisted (the
                  \* candidate's binlog length at convergence); <<>> before.
    rnext,        \* rnext[r]: after r was re-pointed, the index in the new
                  \* primary's binlog of the next entry r's mirror receives;
                  \* 0 before.
    reruns,       \* How many times promote crashed and was run again.
    faulted,      \* Ghost: the faults that happened.
    twice         \* Ghost: the <<r, part>> that r applied while it already
                  \* held the part.  Empty while nothing is applied twice.

vars == <<log, primary, primaryUp, phase, mirror, wm, low, applied, inflight,
          unpersisted, frozen, blog, writable, src, ppos, rnext, reruns,
          faulted, twice>>

-----------------------------------------------------------------------------
(* Sequences and numbers. *)

Elems(q)       == {q[i] : i \in 1..Len(q)}
IsPrefix(p, q) == Len(p) <= Len(q) /\ SubSeq(q, 1, Len(p)) = p
Max(S)         == CHOOSE m \in S : \A n \in S : n <= m
Flatten(es)    == UNION {Elems(es[i].gs) : i \in 1..Len(es)}

(* The seq_no of the last group of domain d in q (0: none). *)
LastSeq(q, d) ==
    LET I == {i \in 1..Len(q) : q[i].dom = d}
    IN  IF I = {} THEN 0 ELSE q[Max(I)].seq

(* The longest mirror.  When the mirrors are prefixes of one stream, the   *)
(* mirrors of that length are all equal, so the choice is unique.          *)
Longest == CHOOSE m \in {mirror[r] : r \in Replicas} :
               \A r \in Replicas : Len(mirror[r]) <= Len(m)

(* The check promotion makes first: any two mirrors are ordered by the     *)
(* prefix relation, i.e. they are prefixes of one stream (the code         *)
(* compares checksums over their common length).                           *)
MirrorsComparable ==
    \A r1, r2 \in Replicas :
        IsPrefix(mirror[r1], mirror[r2]) \/ IsPrefix(mirror[r2], mirror[r1])

(* An errant transaction: a GTID in r's binlog that no mirror holds. *)
GtidInMirrors(e) ==
    \E r \in Replicas : \E g \in Elems(mirror[r]) :
        g.dom = e.dom /\ g.srv = e.srv /\ g.seq = e.seq
Errant(r) == \E i \in 1..Len(blog[r]) : ~GtidInMirrors(blog[r][i])

-----------------------------------------------------------------------------
(***************************************************************************)
(* What may be applied on replica r, decided from persisted state only:    *)
(* r's watermarks and the sequence q being applied (r's mirror for the     *)
(* applier, the catch-up source for promotion).                            *)
(***************************************************************************)

(* The part of group g in shard s is covered by r's watermark. *)
Covered(r, g, s) == g.seq <= wm[r][g.dom][s]

(* The part in shard s of group g of q can be applied on r now: r does not *)
(* have it, every earlier group of q in (g.dom, s) is covered (applied in  *)
(* source order), and r's applier has no transaction on s half done (only *)
(* in Bug "split_persist").                                                *)
PartReady(r, q, g, s) ==
    /\ ~Covered(r, g, s)
    /\ \A h \in Elems(q) :
           (h.dom = g.dom /\ h.seq < g.seq /\ s \in h.shards)
               => Covered(r, h, s)
    /\ \A p \in unpersisted[r] : p[2] # s

(* Group g of q can be applied on r now.  A multi-shard group waits until  *)
(* all its shards are ready.                                               *)
GroupReady(r, q, g) == \A s \in g.shards : PartReady(r, q, g, s)

(* r's watermarks after committing the parts P. *)
WmAfter(r, P) ==
    [d \in Domains |-> [s \in Shards |->
        Max({wm[r][d][s]} \cup {p[1].seq : p \in {x \in P : x[1].dom = d
                                                         /\ x[2] = s}})]]

(* r's low-watermark of domain d once its watermarks are w: the seq_no of  *)
(* the last group of d in the longest prefix of r's mirror whose groups of *)
(* d w covers.  L never moves back.                                        *)
LowAfter(r, w, d) ==
    LET q    == mirror[r]
        ends == {n \in 0..Len(q) :
                    \A i \in 1..n : q[i].dom = d =>
                        \A s \in q[i].shards : q[i].seq <= w[d][s]}
        L    == IF Bug = "low_max"
                THEN Max({w[d][s] : s \in Shards})                \* BROKEN
                ELSE LastSeq(SubSeq(q, 1, Max(ends)), d)
    IN  Max({low[r][d], L})

(* Commit on r's target, in ONE transaction, the parts P of the groups gs  *)
(* and their watermarks; r's binlog logs it as one entry.                  *)
Commit(r, gs, P) ==
    /\ applied' = [applied EXCEPT ![r] = @ \cup P]
    /\ wm' = [wm EXCEPT ![r] = WmAfter(r, P)]
    /\ blog' = [blog EXCEPT ![r] = Append(@, EntryOf(gs))]
    /\ twice' = twice \cup {<<r, p>> : p \in P \cap applied[r]}

AllParts(gs) == UNION {Parts(gs[i]) : i \in 1..Len(gs)}

(* A reduction for the model checker (with Reduce), not a property of the  *)
(* system: at most one applier transaction is open at a time, and while   *)
(* it is, the only other steps are promote's, the old primary's crash, and *)
(* that transaction's commit or its applier's crash.  The steps this holds *)
(* back (the old primary's commits, mirrors receiving, errant              *)
(* writes, another applier's check) neither read nor write what the open   *)
(* transaction reads or writes, so each can be taken just before the check *)
(* or just after the commit instead; and no property reads `inflight`.     *)
(* The interleavings that matter, an open transaction against promote and  *)
(* against a crash, are all kept.                                          *)
Quiet == ~Reduce \/ \A r \in Replicas : inflight[r] = {}

-----------------------------------------------------------------------------
Init ==
    /\ log = <<>>
    /\ primary = OldPrimary
    /\ primaryUp = TRUE
    /\ phase = "replicating"
    /\ mirror = [r \in Replicas |-> <<>>]
    /\ wm = [r \in Replicas |-> [d \in Domains |-> [s \in Shards |-> 0]]]
    /\ low = [r \in Replicas |-> [d \in Domains |-> 0]]
    /\ applied = [r \in Replicas |-> {}]
    /\ inflight = [r \in Replicas |-> {}]
    /\ unpersisted = [r \in Replicas |-> {}]
    /\ frozen = [r \in Replicas |-> FALSE]
    /\ blog = [r \in Replicas |-> <<>>]
    /\ writable = {OldPrimary}
    /\ src = <<>>
    /\ ppos = <<>>
    /\ rnext = [r \in Replicas |-> 0]
    /\ reruns = 0
    /\ faulted = {}
    /\ twice = {}

-----------------------------------------------------------------------------
(***************************************************************************)
(* The old primary and its faults.  Each action starts with the cheap      *)
(* tests (phase, Bug) before its quantifiers: the same formula either way, *)
(* and it spares the checker from expanding actions that cannot be taken.  *)
(***************************************************************************)

(* The old primary commits a group in domain d touching the shards S, with *)
(* d's next seq_no.                                                        *)
OldPrimaryCommitGroup(d, S) ==
    /\ phase = "replicating" /\ primary = OldPrimary /\ primaryUp
    /\ Len(log) < MaxOld
    /\ log' = Append(log, [dom |-> d, srv |-> OldPrimary,
                           seq |-> LastSeq(log, d) + 1, shards |-> S,
                           v |-> IF "fork" \in faulted THEN 1 ELSE 0])
    /\ UNCHANGED <<primary, primaryUp, phase, mirror, wm, low, applied,
                   inflight, unpersisted, frozen, blog, writable, src, ppos,
                   rnext, reruns, faulted, twice>>
OldPrimaryCommit ==
    /\ phase = "replicating" /\ primary = OldPrimary /\ primaryUp
    /\ Len(log) < MaxOld
    /\ Quiet
    /\ \E d \in Domains, S \in ShardSets : OldPrimaryCommitGroup(d, S)

(* The old primary crashes for good.  What of its binlog no mirror holds   *)
(* is lost; no replica can have applied it.                                *)
OldPrimaryCrash ==
    /\ phase = "replicating" /\ primary = OldPrimary /\ primaryUp
    /\ primaryUp' = FALSE
    /\ writable' = {}
    /\ UNCHANGED <<log, primary, phase, mirror, wm, low, applied, inflight,
                   unpersisted, frozen, blog, src, ppos, rnext, reruns,
                   faulted, twice>>

(* Fault "fork": the old primary loses the last group of its binlog (it    *)
(* crashed with the binlog not synced and restarted) and will write other  *)
(* groups at the same seq_nos.  A mirror that received the lost group now  *)
(* diverges from one that receives its replacement.                        *)
OldPrimaryForks ==
    /\ "fork" \in Faults /\ "fork" \notin faulted /\ Quiet
    /\ phase = "replicating" /\ primary = OldPrimary /\ primaryUp
    /\ log # <<>>
    /\ log' = SubSeq(log, 1, Len(log) - 1)
    /\ faulted' = faulted \cup {"fork"}
    /\ UNCHANGED <<primary, primaryUp, phase, mirror, wm, low, applied,
                   inflight, unpersisted, frozen, blog, writable, src, ppos,
                   rnext, reruns, twice>>

(* Fault "errant": someone writes on replica r by hand (read_only does not *)
(* stop a SUPER user).  The transaction gets r's server id and a seq_no    *)
(* above those r logged in domain d (which one matters to no property).    *)
ErrantWriteOn(r, d, s) ==
    /\ "errant" \in Faults /\ "errant" \notin faulted
    /\ phase = "replicating"
    /\ LET e == [dom |-> d, srv |-> r,
                 seq |-> Max({0} \cup {blog[r][i].seq : i \in {j \in 1..Len(blog[r]) :
                                                              blog[r][j].dom = d}}) + 1,
                 shards |-> {s}, v |-> 0]
       IN  /\ applied' = [applied EXCEPT ![r] = @ \cup Parts(e)]
           /\ blog' = [blog EXCEPT ![r] = Append(@, EntryOf(<<e>>))]
    /\ faulted' = faulted \cup {"errant"}
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, wm, low, inflight,
                   unpersisted, frozen, writable, src, ppos, rnext, reruns,
                   twice>>
ErrantWrite ==
    /\ "errant" \in Faults /\ "errant" \notin faulted
    /\ phase = "replicating"
    /\ Quiet
    /\ \E r \in Replicas, d \in Domains, s \in Shards : ErrantWriteOn(r, d, s)

(***************************************************************************)
(* Mirrors (src/mirror/): `parapply mirror` on replica r receives the next *)
(* transaction of its upstream's binlog: the old primary's, then, once r   *)
(* is re-pointed, the new primary's from the position it was given.        *)
(***************************************************************************)
MirrorReceiveOn(r) ==
    /\ primaryUp
    /\ \/ /\ phase = "replicating"
          /\ Len(mirror[r]) < Len(log)
          /\ mirror' = [mirror EXCEPT ![r] = Append(@, log[Len(@) + 1])]
          /\ UNCHANGED rnext
       \/ /\ phase \in {"writable", "promoted"} /\ r # primary
          /\ rnext[r] > 0 /\ rnext[r] <= Len(blog[primary])
          /\ mirror' = [mirror EXCEPT ![r] = @ \o blog[primary][rnext[r]].gs]
          /\ rnext' = [rnext EXCEPT ![r] = @ + 1]
    /\ UNCHANGED <<log, primary, primaryUp, phase, wm, low, applied, inflight,
                   unpersisted, frozen, blog, writable, src, ppos, reruns,
                   faulted, twice>>
MirrorReceive ==
    /\ primaryUp /\ phase \in {"replicating", "writable", "promoted"}
    /\ Quiet
    /\ \E r \in Replicas : MirrorReceiveOn(r)

(***************************************************************************)
(* Appliers (src/schedule/, src/apply/, src/progress.rs).  The applier of  *)
(* replica r reads r's mirror after its low-watermarks, skips what the     *)
(* watermarks cover, and applies groups: per (domain, shard) in source     *)
(* order, across them in any order.  Its check (what to apply) and its     *)
(* commit are two steps; between them only its memory (`inflight`) knows. *)
(* Appliers keep running after the old primary crashed, until promote      *)
(* freezes them; the new primary's applier stays stopped.                  *)
(*                                                                         *)
(* L is modelled as advanced in each group's transaction.  The design      *)
(* persists it periodically, i.e. later and lower; a lower L changes       *)
(* nothing the applier does (every group between it and the end of the     *)
(* contiguous prefix is covered and skipped anyway).                       *)
(***************************************************************************)
AppliersRun(r) ==
    /\ ~frozen[r] /\ phase # "refused"
    /\ ~(phase \in {"writable", "promoted"} /\ r = primary)

(* The groups of r's mirror in (d, s) that r's watermark does not cover,   *)
(* as a set of indices of the mirror.                                      *)
Pending(r, d, s) ==
    {i \in 1..Len(mirror[r]) : /\ mirror[r][i].dom = d
                               /\ s \in mirror[r][i].shards
                               /\ ~Covered(r, mirror[r][i], s)}

(* The k smallest indices of I, as a sequence of r's mirror's groups. *)
FirstGroups(r, I, k) ==
    [j \in 1..k |-> mirror[r][CHOOSE i \in I :
                                 Cardinality({x \in I : x < i}) = j - 1]]

(* gs is what r's applier may apply in one transaction: one group of its  *)
(* mirror, or a batch: the next Len(gs) groups of one (d, s) not covered,  *)
(* each touching s only.                                                   *)
IsBatch(r, gs) ==
    \/ Len(gs) = 1
    \/ /\ Len(gs) <= MaxBatch
       /\ \E s \in Shards :
              /\ \A j \in 1..Len(gs) : gs[j].shards = {s}
              /\ LET I == Pending(r, gs[1].dom, s)
                 IN  Cardinality(I) >= Len(gs) /\ gs = FirstGroups(r, I, Len(gs))

(* r's applier has a transaction open on (d, s). *)
OpenOn(r, d, s) ==
    \E b \in inflight[r] : \E j \in 1..Len(b) : b[j].dom = d /\ s \in b[j].shards

(* The check: the applier of r chooses to apply gs (a group of its mirror  *)
(* ready on r, or a batch starting with one), none of whose (domain,       *)
(* shard)s has a transaction open (a shard is applied in order), and       *)
(* opens the target transaction.                                           *)
ApplyBeginWith(r, gs) ==
    /\ Bug \notin {"split_persist", "split_shards"}
    /\ AppliersRun(r) /\ Quiet
    /\ \A s \in gs[1].shards : ~OpenOn(r, gs[1].dom, s)
    /\ gs[1].seq > low[r][gs[1].dom]
    /\ GroupReady(r, mirror[r], gs[1])
    /\ IsBatch(r, gs)
    /\ inflight' = [inflight EXCEPT ![r] = @ \cup {gs}]
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, wm, low, applied,
                   unpersisted, frozen, blog, writable, src, ppos, rnext,
                   reruns, faulted, twice>>

ApplyBeginOn(r) ==
    /\ Bug \notin {"split_persist", "split_shards"}
    /\ AppliersRun(r)
    /\ \/ \E g \in Elems(mirror[r]) : ApplyBeginWith(r, <<g>>)
       \/ /\ MaxBatch > 1
          /\ \E d \in Domains, s \in Shards, k \in 2..MaxBatch :
                 /\ Cardinality(Pending(r, d, s)) >= k
                 /\ ApplyBeginWith(r, FirstGroups(r, Pending(r, d, s), k))

ApplyBegin ==
    /\ Bug \notin {"split_persist", "split_shards"} /\ phase # "refused"
    /\ Quiet
    /\ \E r \in {x \in Replicas : ~frozen[x]} : ApplyBeginOn(r)

(* The commit of r's open transaction b: the groups' rows, the watermarks *)
(* of their shards and L, in the transaction opened by the check.  Nothing *)
(* is checked again.                                                       *)
ApplyCommitOf(r, b) ==
    /\ b \in inflight[r]
    /\ Commit(r, b, AllParts(b))
    /\ low' = [low EXCEPT ![r] =
                  [d \in Domains |-> LowAfter(r, WmAfter(r, AllParts(b)), d)]]
    /\ inflight' = [inflight EXCEPT ![r] = @ \ {b}]
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, unpersisted,
                   frozen, writable, src, ppos, rnext, reruns,
                   faulted>>
ApplyCommit ==
    \E r \in {x \in Replicas : inflight[x] # {}} : \E b \in inflight[r] :
        ApplyCommitOf(r, b)

(* BROKEN ("split_shards"): the applier commits the part of g in shard s   *)
(* alone, with that shard's watermark (check and commit in one step).      *)
ApplyShard ==
    /\ Bug = "split_shards"
    /\ \E r \in Replicas : \E g \in Elems(mirror[r]) : \E s \in g.shards :
           /\ AppliersRun(r)
           /\ g.seq > low[r][g.dom]
           /\ PartReady(r, mirror[r], g, s)
           /\ Commit(r, <<g>>, {<<g, s>>})
           /\ low' = [low EXCEPT ![r] =
                         [d \in Domains |-> LowAfter(r, WmAfter(r, {<<g, s>>}), d)]]
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, inflight,
                   unpersisted, frozen, writable, src, ppos, rnext, reruns,
                   faulted>>

(* BROKEN ("split_persist"): the applier commits the rows of g in a first  *)
(* transaction ...                                                         *)
ApplyRows ==
    /\ Bug = "split_persist"
    /\ \E r \in Replicas : \E g \in Elems(mirror[r]) :
           /\ AppliersRun(r)
           /\ g.seq > low[r][g.dom]
           /\ GroupReady(r, mirror[r], g)
           /\ applied' = [applied EXCEPT ![r] = @ \cup Parts(g)]
           /\ unpersisted' = [unpersisted EXCEPT ![r] = @ \cup Parts(g)]
           /\ blog' = [blog EXCEPT ![r] = Append(@, EntryOf(<<g>>))]
           /\ twice' = twice \cup {<<r, p>> : p \in Parts(g) \cap applied[r]}
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, wm, low, inflight,
                   frozen, writable, src, ppos, rnext, reruns,
                   faulted>>

(* ... and the watermarks of g's shards and L in a second one. *)
PersistWatermarks ==
    /\ Bug = "split_persist"
    /\ \E r \in Replicas : \E p \in unpersisted[r] :
           /\ wm' = [wm EXCEPT ![r] = WmAfter(r, Parts(p[1]))]
           /\ low' = [low EXCEPT ![r] =
                         [d \in Domains |-> LowAfter(r, WmAfter(r, Parts(p[1])), d)]]
           /\ unpersisted' = [unpersisted EXCEPT ![r] = @ \ Parts(p[1])]
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, applied, inflight,
                   frozen, blog, writable, src, ppos, rnext, reruns,
                   faulted, twice>>

(* The applier of r crashes and restarts from what it persisted: its       *)
(* memory is gone, and the target transactions it had open roll back.      *)
ApplierCrashOn(r) ==
    /\ inflight[r] # {} \/ unpersisted[r] # {}
    /\ inflight' = [inflight EXCEPT ![r] = {}]
    /\ unpersisted' = [unpersisted EXCEPT ![r] = {}]
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, wm, low, applied,
                   frozen, blog, writable, src, ppos, rnext, reruns,
                   faulted, twice>>
ApplierCrash ==
    \E r \in {x \in Replicas : inflight[x] # {} \/ unpersisted[x] # {}} :
        ApplierCrashOn(r)

(***************************************************************************)
(* Promotion (src/promote.rs): DESIGN.md point 7.  Every step reads and    *)
(* writes persisted state only: the targets (watermarks, read_only, each   *)
(* replica's binlog), the mirrors, and promote's own plan and progress     *)
(* (`phase`, `primary`, `src`, `ppos`).                                    *)
(***************************************************************************)

(* Freeze r: promote asks r's applier (through its target) to stop: it    *)
(* starts no new transaction, while the one it has open still commits (or  *)
(* rolls back if the applier crashes).  The first request starts the       *)
(* promotion.                                                              *)
FreezeApplierOn(r) ==
    /\ phase \in {"replicating", "freezing"} /\ ~primaryUp
    /\ ~frozen[r]
    /\ frozen' = [frozen EXCEPT ![r] = TRUE]
    /\ phase' = "freezing"
    /\ UNCHANGED <<log, primary, primaryUp, mirror, wm, low, applied,
                   inflight, unpersisted, blog, writable, src, ppos, rnext,
                   reruns, faulted, twice>>
FreezeApplier ==
    /\ phase \in {"replicating", "freezing"} /\ ~primaryUp
    /\ \E r \in Replicas : FreezeApplierOn(r)

(* Every applier was asked to stop and has no transaction open: frozen.   *)
(* BROKEN ("no_freeze"): promote does not wait for that.                   *)
AllFrozen ==
    Bug = "no_freeze" \/ \A r \in Replicas : frozen[r] /\ inflight[r] = {}

(* What promote checks before it changes anything. *)
SafeToPromote ==
    /\ Bug = "no_prefix_check" \/ MirrorsComparable                \* BROKEN
    /\ Bug = "no_errant_check" \/ \A r \in Replicas : ~Errant(r)   \* BROKEN

(* The catch-up source: the longest mirror. *)
HighApplied(d) == Max({wm[r][d][s] : r \in Replicas, s \in Shards})
Source ==
    CASE Bug = "src_applied" ->                                     \* BROKEN
            SubSeq(Longest, 1,
                   Max({0} \cup {i \in 1..Len(Longest) :
                                    \A j \in 1..i :
                                        Longest[j].seq <= HighApplied(Longest[j].dom)}))
      [] OTHER -> Longest

(* Choose the candidate c and persist the plan.  The operator may name any *)
(* replica; by default promote takes the one with the longest mirror,      *)
(* which is one of these choices.                                          *)
ChooseCandidateOf(c) ==
    /\ phase = "freezing" /\ AllFrozen /\ SafeToPromote
    /\ primary' = c
    /\ src' = IF Bug = "own_mirror" THEN mirror[c] ELSE Source     \* BROKEN
    /\ phase' = "catchup_candidate"
    /\ UNCHANGED <<log, primaryUp, mirror, wm, low, applied, inflight,
                   unpersisted, frozen, blog, writable, ppos, rnext, reruns,
                   faulted, twice>>
ChooseCandidate ==
    /\ phase = "freezing" /\ AllFrozen /\ SafeToPromote
    /\ \E c \in Replicas : ChooseCandidateOf(c)

(* A diverged mirror or an errant transaction: promote refuses, changing   *)
(* nothing (appliers stay frozen, nobody becomes writable).                *)
Refuse ==
    /\ phase = "freezing" /\ AllFrozen /\ ~SafeToPromote
    /\ phase' = "refused"
    /\ UNCHANGED <<log, primary, primaryUp, mirror, wm, low, applied,
                   inflight, unpersisted, frozen, blog, writable, src, ppos,
                   rnext, reruns, faulted, twice>>

(* The replicas being caught up: the candidate first, then the others. *)
CatchingUp == IF phase = "catchup_candidate" THEN {primary}
                                             ELSE Replicas \ {primary}

(* Apply to replica r a group g of r's catch-up set (for each (d, s), the  *)
(* source's groups after W_r[d][s]), read from the source: per shard in    *)
(* source order, one group per transaction with its watermarks.            *)
CatchUpGroup(r, g) ==
    /\ phase \in {"catchup_candidate", "catchup_others"}
    /\ r \in CatchingUp
    /\ GroupReady(r, src, g)
    /\ Commit(r, <<g>>, Parts(g))
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, low, inflight,
                   unpersisted, frozen, writable, src, ppos, rnext, reruns,
                   faulted>>
CatchUp ==
    /\ phase \in {"catchup_candidate", "catchup_others"}
    /\ \E r \in CatchingUp : \E g \in Elems(src) : CatchUpGroup(r, g)

(* r holds the whole source. *)
CaughtUp(r) == \A g \in Elems(src) : \A s \in g.shards : Covered(r, g, s)

CandidateCaughtUp ==
    /\ phase = "catchup_candidate"
    /\ CaughtUp(primary)
    /\ phase' = "catchup_others"
    /\ UNCHANGED <<log, primary, primaryUp, mirror, wm, low, applied,
                   inflight, unpersisted, frozen, blog, writable, src, ppos,
                   rnext, reruns, faulted, twice>>

(* Every replica holds the source.  Persist the re-point position (where   *)
(* the candidate's binlog stands now), then make the candidate writable.   *)
(* From here on the domain's stream is the source followed by the new      *)
(* primary's writes.                                                       *)
MakeWritable ==
    /\ phase = "catchup_others"
    /\ \A r \in Replicas : CaughtUp(r)
    /\ ppos' = <<Len(blog[primary])>>
    /\ writable' = writable \cup {primary}
    /\ primaryUp' = TRUE
    /\ log' = src
    /\ phase' = "writable"
    /\ UNCHANGED <<primary, mirror, wm, low, applied, inflight, unpersisted,
                   frozen, blog, src, rnext, reruns, faulted,
                   twice>>

(* Where a re-pointed r starts in the new primary's binlog: after the      *)
(* persisted position.  BROKEN ("repoint_gtid"): by r's old GTID position, *)
(* the last GTID r's binlog logged: the new primary sends what follows     *)
(* that GTID in its own binlog (or everything when r logged nothing).      *)
OldGtidStart(r) ==
    IF blog[r] = <<>> THEN 1
    ELSE LET e == blog[r][Len(blog[r])]
             I == {i \in 1..Len(blog[primary]) :
                       /\ blog[primary][i].dom = e.dom
                       /\ blog[primary][i].srv = e.srv
                       /\ blog[primary][i].seq = e.seq}
         IN  IF I = {} THEN 0 ELSE Max(I) + 1

(* Re-point r's mirror at the new primary, and let r's applier resume.  Its *)
(* mirror, seen as groups, holds the source, followed by what it receives; *)
(* r holds all of the source, so its low-watermarks move to its end.       *)
RepointOn(r) ==
    /\ phase = "writable" /\ r # primary /\ rnext[r] = 0
    /\ LET start == IF Bug = "repoint_gtid" THEN OldGtidStart(r)
                    ELSE ppos[1] + 1
       IN  /\ start > 0     \* an old GTID the new primary does not have: no start
           /\ rnext' = [rnext EXCEPT ![r] = start]
    /\ mirror' = [mirror EXCEPT ![r] = src]
    /\ low' = [low EXCEPT ![r] = [d \in Domains |-> Max({@[d], LastSeq(src, d)})]]
    /\ frozen' = [frozen EXCEPT ![r] = FALSE]
    /\ UNCHANGED <<log, primary, primaryUp, phase, wm, applied, inflight,
                   unpersisted, blog, writable, src, ppos, reruns,
                   faulted, twice>>
Repoint == phase = "writable" /\ \E r \in Replicas : RepointOn(r)

PromoteDone ==
    /\ phase = "writable"
    /\ \A r \in Replicas \ {primary} : rnext[r] > 0
    /\ phase' = "promoted"
    /\ UNCHANGED <<log, primary, primaryUp, mirror, wm, low, applied,
                   inflight, unpersisted, frozen, blog, writable, src, ppos,
                   rnext, reruns, faulted, twice>>

(* Promote crashes (kill -9) and is run again, naming candidate c.  It has *)
(* no memory beyond what it persisted, so the crash itself changes nothing *)
(* (any open catch-up transaction rolls back); what the rerun does:        *)
(*  - before the candidate is writable, it may take c as the new candidate *)
(*    (the source is persisted; every replica is caught up to it anyway);  *)
(*  - from then on it keeps the persisted candidate and position (and      *)
(*    reports that c was not taken).                                       *)
PromoteRerunWith(c) ==
    /\ phase \in {"catchup_candidate", "catchup_others", "writable"}
    /\ reruns < MaxReruns
    /\ reruns' = reruns + 1
    /\ \/ /\ phase # "writable" \/ Bug = "rerun_replan"            \* BROKEN
          /\ primary' = c
          /\ phase' = "catchup_candidate"
          /\ UNCHANGED ppos
       \/ /\ phase = "writable" /\ Bug # "rerun_replan"
          /\ ppos' = IF Bug = "rerun_position"                     \* BROKEN
                     THEN <<Len(blog[primary])>> ELSE ppos
          /\ UNCHANGED <<primary, phase>>
    /\ UNCHANGED <<log, primaryUp, mirror, wm, low, applied, inflight,
                   unpersisted, frozen, blog, writable, src, rnext,
                   faulted, twice>>
PromoteRerun ==
    /\ phase \in {"catchup_candidate", "catchup_others", "writable"}
    /\ reruns < MaxReruns
    /\ \E c \in Replicas : PromoteRerunWith(c)

(* The next seq_no of domain d on the new primary: above every seq_no any  *)
(* replica applied (the stream from promotion on holds all of them).       *)
(* BROKEN ("seq_last_logged"): after the last GTID its binlog logged in d. *)
NextSeq(d) ==
    IF Bug = "seq_last_logged" THEN LastSeq(blog[primary], d) + 1
    ELSE LastSeq(log, d) + 1

(* The new primary commits a group in domain d touching the shards S.  No  *)
(* applier applies its own writes, so its watermarks do not move.          *)
NewPrimaryCommitGroup(d, S) ==
    /\ phase \in {"writable", "promoted"} /\ primary \in writable
    /\ Len(log) - Len(src) < MaxNew
    /\ LET g == [dom |-> d, srv |-> primary, seq |-> NextSeq(d), shards |-> S,
                 v |-> 0]
       IN  /\ log' = Append(log, g)
           /\ applied' = [applied EXCEPT ![primary] = @ \cup Parts(g)]
           /\ blog' = [blog EXCEPT ![primary] = Append(@, EntryOf(<<g>>))]
    /\ UNCHANGED <<primary, primaryUp, phase, mirror, wm, low, inflight,
                   unpersisted, frozen, writable, src, ppos, rnext, reruns,
                   faulted, twice>>
NewPrimaryCommit ==
    /\ phase \in {"writable", "promoted"} /\ primary \in writable
    /\ Len(log) - Len(src) < MaxNew
    /\ Quiet
    /\ \E d \in Domains, S \in ShardSets : NewPrimaryCommitGroup(d, S)

-----------------------------------------------------------------------------
(* Every replica other than the primary holds the whole stream. *)
AllApplied ==
    \A r \in Replicas \ {primary} :
        /\ mirror[r] = log
        /\ \A g \in Elems(log) : Parts(g) \subseteq applied[r]

(* The end: promoted, the new primary wrote all it may, and every replica  *)
(* applied it; or promote refused.  An explicit stuttering step, so that   *)
(* the deadlock check still reports any other dead end.                    *)
Finished ==
    /\ \/ /\ phase = "promoted"
          /\ Len(log) - Len(src) = MaxNew
          /\ AllApplied
       \/ phase = "refused"
    /\ UNCHANGED vars

Next ==
    \/ OldPrimaryCommit
    \/ OldPrimaryCrash
    \/ OldPrimaryForks
    \/ ErrantWrite
    \/ MirrorReceive
    \/ ApplyBegin
    \/ ApplyCommit
    \/ ApplyShard
    \/ ApplyRows
    \/ PersistWatermarks
    \/ ApplierCrash
    \/ FreezeApplier
    \/ ChooseCandidate
    \/ Refuse
    \/ CatchUp
    \/ CandidateCaughtUp
    \/ MakeWritable
    \/ Repoint
    \/ PromoteDone
    \/ PromoteRerun
    \/ NewPrimaryCommit
    \/ Finished

(* Fairness.  Once the old primary is down, promotion runs to its end; and *)
(* mirrors and appliers keep going.  An applier may crash with a           *)
(* transaction open again and again, so its commit is only enabled now and *)
(* then: strong fairness says it does not crash forever.  Nothing forces   *)
(* the old primary to crash, anyone to write, or promote to crash.         *)
Fairness ==
    /\ WF_vars(FreezeApplier)
    /\ WF_vars(ChooseCandidate)
    /\ WF_vars(Refuse)
    /\ WF_vars(CatchUp)
    /\ WF_vars(CandidateCaughtUp)
    /\ WF_vars(MakeWritable)
    /\ WF_vars(Repoint)
    /\ WF_vars(PromoteDone)
    /\ WF_vars(MirrorReceive)
    /\ WF_vars(ApplyBegin)
    /\ SF_vars(ApplyCommit)

Spec == Init /\ [][Next]_vars /\ Fairness

-----------------------------------------------------------------------------
(***************************************************************************)
(* Properties.                                                             *)
(***************************************************************************)

TypeOK ==
    /\ log \in Seq(Groups) /\ Len(log) <= MaxSeq
    /\ primary \in Servers /\ primaryUp \in BOOLEAN
    /\ phase \in {"replicating", "freezing", "catchup_candidate",
                  "catchup_others", "writable", "promoted", "refused"}
    /\ \A r \in Replicas : mirror[r] \in Seq(Groups)
    /\ wm \in [Replicas -> [Domains -> [Shards -> 0..MaxSeq]]]
    /\ low \in [Replicas -> [Domains -> 0..MaxSeq]]
    /\ \A r \in Replicas : applied[r] \subseteq Groups \X Shards
    /\ \A r \in Replicas : \A b \in inflight[r] : b \in Seq(Groups)
    /\ \A r \in Replicas : unpersisted[r] \subseteq applied[r]
    /\ frozen \in [Replicas -> BOOLEAN]
    /\ \A r \in Replicas : blog[r] \in Seq(Entries)
    /\ writable \subseteq Servers
    /\ src \in Seq(Groups)
    /\ ppos \in Seq(Nat) /\ Len(ppos) <= 1
    /\ rnext \in [Replicas -> Nat]
    /\ reruns \in 0..MaxReruns
    /\ faulted \subseteq Faults
    /\ twice \subseteq Replicas \X (Groups \X Shards)

(* The stream describes the data only while the old primary did not fork,  *)
(* and again once promotion made the source the stream.                    *)
StreamIsHistory == "fork" \notin faulted \/ phase \in {"writable", "promoted"}

(* The parts, in (d, s), of the stream's groups with seq_no <= w, leaving  *)
(* out those r wrote itself.                                               *)
StreamParts(r, d, s, w) ==
    {<<g, s>> : g \in {h \in Elems(log) : /\ h.dom = d /\ s \in h.shards
                                          /\ h.srv # r /\ h.seq <= w}}

(* DESIGN.md point 4: the persisted watermarks describe exactly what each  *)
(* replica holds.  For every (d, s), the groups of (d, s) that r holds are *)
(* the stream's groups of (d, s) with seq_no <= W_r[d][s].                 *)
WatermarksExact ==
    StreamIsHistory =>
        \A r \in Replicas, d \in Domains, s \in Shards :
            {p \in applied[r] : p[2] = s /\ p[1].dom = d /\ p[1].srv # r}
                = StreamParts(r, d, s, wm[r][d][s])

(* No replica applied any part of a group twice. *)
NoGroupAppliedTwice == twice = {}

(* A replica holds all the parts of a multi-shard group, or none. *)
MultiShardGroupsAtomic ==
    \A r \in Replicas : \A p \in applied[r] : Parts(p[1]) \subseteq applied[r]

(* Every group up to the persisted low-watermark is applied. *)
LowWatermarkSound ==
    StreamIsHistory =>
        \A r \in Replicas, d \in Domains, s \in Shards :
            StreamParts(r, d, s, low[r][d]) \subseteq applied[r]

(* Every mirror is a prefix of the domain's one stream. *)
MirrorsArePrefixes ==
    StreamIsHistory => \A r \in Replicas : IsPrefix(mirror[r], log)

(* A replica holds only groups of the stream (and its own writes). *)
AppliedFromStream ==
    StreamIsHistory =>
        \A r \in Replicas : \A p \in applied[r] :
            p[1].srv = r \/ p[1] \in Elems(log)

(* Seq_nos grow along the stream in each domain, across the change of      *)
(* primary: the new primary continues each domain's sequence.              *)
SeqNosIncrease ==
    \A i, j \in 1..Len(log) :
        (i < j /\ log[i].dom = log[j].dom) => log[i].seq < log[j].seq

OldParts(r) == {p \in applied[r] : p[1].srv = OldPrimary}

(* Promotion has caught the candidate up. *)
CandidateDone == phase \in {"catchup_others", "writable", "promoted"}

(* Once the candidate has caught up, it holds every part of the old        *)
(* primary's groups that any replica holds.                                *)
NoAppliedGroupLost ==
    CandidateDone => \A r \in Replicas : OldParts(r) \subseteq applied[primary]

(* Every group a mirror received survives: when the candidate has caught  *)
(* up, it holds every group of the old primary that any mirror holds,      *)
(* applied anywhere or not.  (Mirrors only grow until they are re-pointed, *)
(* so at that moment they hold every group they ever received.)            *)
NoReceivedGroupLost ==
    phase = "catchup_others" =>
        \A r \in Replicas : \A g \in Elems(mirror[r]) :
            g.srv = OldPrimary => Parts(g) \subseteq applied[primary]

(* The new primary's writes. *)
NewGroups == {log[i] : i \in (Len(src) + 1)..Len(log)}

(* From the moment the candidate is writable, all replicas hold the same   *)
(* data apart from the new primary's writes: exactly the source's groups   *)
(* (nothing errant, nothing of a diverged history).                        *)
ReplicasConverged ==
    phase \in {"writable", "promoted"} =>
        \A r \in Replicas :
            {p \in applied[r] : p[1] \notin NewGroups} = AllParts(src)

(* At most one server accepts writes at any moment. *)
AtMostOneWritable == Cardinality(writable) <= 1

(* A re-pointed replica neither skips nor repeats anything: what its mirror *)
(* holds and what it will receive from the new primary's binlog make up    *)
(* the stream, and nothing it holds is sent again.                         *)
ToReceive(r) ==
    IF rnext[r] = 0 THEN {}
    ELSE Flatten(SubSeq(blog[primary], rnext[r], Len(blog[primary])))
RepointedNoSkipNoRepeat ==
    phase \in {"writable", "promoted"} =>
        \A r \in Replicas \ {primary} : rnext[r] > 0 =>
            /\ Elems(log) \subseteq Elems(mirror[r]) \cup ToReceive(r)
            /\ Elems(mirror[r]) \cap ToReceive(r) = {}

(* Promote refuses only what it must: a diverged mirror or an errant       *)
(* transaction.                                                            *)
RefusesOnlyWhenUnsafe == phase = "refused" => ~SafeToPromote

(* Watermarks and low-watermarks never go back, across the promotion too. *)
ProgressMonotonic ==
    [][\A r \in Replicas, d \in Domains :
           /\ low'[r][d] >= low[r][d]
           /\ \A s \in Shards : wm'[r][d][s] >= wm[r][d][s]]_<<wm, low>>

(* Liveness: once the old primary is down, promotion finishes or refuses. *)
PromotionFinishes == ~primaryUp ~> (phase \in {"promoted", "refused"})

(* Liveness: after a promotion, every replica ends up holding the whole    *)
(* stream of the new primary.                                              *)
ReplicasCatchUpWithNewPrimary == <>[](phase = "promoted" => AllApplied)

=============================================================================
