----------------------------- MODULE Promotion -----------------------------
(***************************************************************************)
(* Parallel replication with per-shard watermarks, and the promotion of a  *)
(* new primary after the old one crashed: DESIGN.md, "Pipeline", points 4  *)
(* to 7.                                                                   *)
(*                                                                         *)
(* One GTID domain.  The old primary commits transaction groups; each      *)
(* touches a non-empty set of shards (databases).  Every replica runs      *)
(* `parapply mirror`, which holds a prefix of the primary's binlog, and    *)
(* `parapply apply`, which applies the groups of that mirror: in source    *)
(* order within a shard, in any order across shards.  In the same target   *)
(* transaction as a group, the applier sets the watermark of each shard    *)
(* the group touches to the group's seq_no.  The applier decides what to   *)
(* apply from persisted state only, so a crash and restart of it is        *)
(* harmless.                                                               *)
(*                                                                         *)
(* When the old primary has crashed, `parapply promote` freezes appliers   *)
(* and mirrors, checks that the mirrors are prefixes of one stream, picks  *)
(* a candidate, applies to it the catch-up set read from the longest       *)
(* mirror, then does the same for every other replica, so that all reach   *)
(* one position; it then makes the candidate writable and re-points the    *)
(* others at it.  The new primary continues the domain's sequence of       *)
(* seq_nos, and replication goes on from it.                               *)
(*                                                                         *)
(* The constant Bug selects a deliberately broken variant, used to show    *)
(* that the properties below catch the mistake; "none" is the design.      *)
(* Every place where a variant departs from the design says BROKEN.        *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets

CONSTANTS
    Replicas,    \* the replica servers (model values)
    Shards,      \* the shards (databases) of the domain (model values)
    OldPrimary,  \* the server id of the primary that crashes (model value)
    MaxOld,      \* how many groups the old primary commits at most
    MaxNew,      \* how many groups the new primary commits at most
    Bug          \* "none" (the design) or one of the broken variants:

\* "own_mirror"    promotion catches the candidate up from the candidate's own
\*                 mirror instead of the longest one;
\* "split_persist" the applier commits a group's rows and its watermarks in two
\*                 separate target transactions;
\* "split_shards"  the applier commits a multi-shard group one shard at a time,
\*                 each part in a transaction of its own with that shard's
\*                 watermark;
\* "low_max"       the low-watermark L is taken as the highest per-shard
\*                 watermark instead of the end of the contiguously applied
\*                 prefix.
Bugs == {"none", "own_mirror", "split_persist", "split_shards", "low_max"}

ASSUME
    /\ Replicas # {} /\ Shards # {}
    /\ OldPrimary \notin Replicas
    /\ MaxOld \in Nat /\ MaxNew \in Nat
    /\ Bug \in Bugs

(***************************************************************************)
(* Transaction groups.  A group is named by the server that wrote it and   *)
(* its seq_no (a MariaDB GTID is domain-server-seq; there is one domain).  *)
(* `shards` is the group's shard set, as the scheduler computes it.  The   *)
(* rows a group writes in shard s are its "part" <<g, s>>; a replica holds *)
(* the part once the target transaction that writes it has committed.      *)
(***************************************************************************)
Servers   == Replicas \cup {OldPrimary}
ShardSets == (SUBSET Shards) \ {{}}
MaxSeq    == MaxOld + MaxNew
Groups    == [srv : Servers, seq : 1..MaxSeq, shards : ShardSets]
Parts(g)  == {<<g, s>> : s \in g.shards}

VARIABLES
    log,          \* The domain's stream, as a sequence of groups: the binlog
                  \* of the current primary.  Seq_nos increase along it.  At
                  \* promotion it is cut back to the convergence point (what
                  \* no mirror received died with the old primary); the new
                  \* primary's writes follow.
    primary,      \* The server that is, or is being made, the primary:
                  \* OldPrimary, then the candidate from its choice on.
    primaryUp,    \* TRUE while `primary` is up and accepts writes.
    phase,        \* "replicating": mirrors copy, appliers apply.
                  \* "frozen", "catchup_candidate", "catchup_others": the
                  \*   steps of promotion; appliers and mirrors are stopped.
                  \* "promoted": the candidate is the writable primary, and
                  \*   the others replicate from it.
    mirror,       \* mirror[r]: r's mirrored binlog, as a sequence of groups.
    wm,           \* wm[r][s]: watermark W of shard s, persisted in r's
                  \* progress table: the seq_no of the last group of s that r
                  \* applied (0: none).
    low,          \* low[r]: the persisted low-watermark L of r: every group
                  \* up to it is applied, and the reader restarts after it.
    applied,      \* applied[r]: the parts r's tables hold.  Ghost: the data
                  \* itself, which no component reads; the properties state
                  \* what the watermarks must say about it.
    unpersisted,  \* unpersisted[r]: parts whose rows committed while their
                  \* watermark is not persisted yet: applier memory, lost in
                  \* a crash.  Always empty except in Bug "split_persist".
    src,          \* The catch-up source of the promotion (the longest mirror
                  \* when promotion checked the mirrors).
    twice         \* Ghost: the <<r, part>> that r applied while it already
                  \* held the part.  Empty while nothing is applied twice.

vars == <<log, primary, primaryUp, phase, mirror, wm, low, applied,
          unpersisted, src, twice>>

-----------------------------------------------------------------------------
(* Sequences and numbers. *)

Elems(q)       == {q[i] : i \in 1..Len(q)}
IsPrefix(p, q) == Len(p) <= Len(q) /\ SubSeq(q, 1, Len(p)) = p
LastSeq(q)     == IF q = <<>> THEN 0 ELSE q[Len(q)].seq
Max(S)         == CHOOSE m \in S : \A n \in S : n <= m

(* The longest mirror.  When the mirrors are prefixes of one stream, the   *)
(* mirrors of that length are all equal, so the choice is unique.          *)
Longest == CHOOSE m \in {mirror[r] : r \in Replicas} :
               \A r \in Replicas : Len(mirror[r]) <= Len(m)

(* The check promotion makes first: any two mirrors are ordered by the     *)
(* prefix relation, i.e. they are prefixes of one stream.                  *)
MirrorsComparable ==
    \A r1, r2 \in Replicas :
        IsPrefix(mirror[r1], mirror[r2]) \/ IsPrefix(mirror[r2], mirror[r1])

-----------------------------------------------------------------------------
(***************************************************************************)
(* What may be applied on replica r, decided from persisted state only:    *)
(* r's watermarks and the sequence q being applied (r's mirror for the     *)
(* applier, the catch-up source for promotion).                            *)
(***************************************************************************)

(* The part of group g in shard s is covered by r's watermark. *)
Covered(r, g, s) == g.seq <= wm[r][s]

(* The part in shard s of group g of q can be applied on r now: r does not *)
(* have it (by its watermark), every earlier group of q in shard s is      *)
(* covered (a shard is applied in source order; seq_nos grow along q), and *)
(* r's applier has no transaction on s half done (only in Bug              *)
(* "split_persist").                                                       *)
PartReady(r, q, g, s) ==
    /\ ~Covered(r, g, s)
    /\ \A h \in Elems(q) :
           (h.seq < g.seq /\ s \in h.shards) => Covered(r, h, s)
    /\ \A p \in unpersisted[r] : p[2] # s

(* Group g of q can be applied on r now.  A multi-shard group waits until  *)
(* all its shards are ready.                                               *)
GroupReady(r, q, g) == \A s \in g.shards : PartReady(r, q, g, s)

(* r's watermarks after committing the parts P of group g. *)
WmAfter(r, g, P) ==
    [s \in Shards |-> IF <<g, s>> \in P THEN g.seq ELSE wm[r][s]]

(* r's low-watermark L once its watermarks are w: the seq_no that ends the *)
(* longest prefix of r's mirror whose groups w covers.  L never moves      *)
(* back.                                                                   *)
LowAfter(r, w) ==
    LET q    == mirror[r]
        ends == {n \in 0..Len(q) :
                    \A i \in 1..n : \A s \in q[i].shards : q[i].seq <= w[s]}
        n    == Max(ends)
        L    == IF Bug = "low_max"
                THEN Max({w[s] : s \in Shards})           \* BROKEN
                ELSE IF n = 0 THEN 0 ELSE q[n].seq
    IN  Max({low[r], L})

(* Commit on r's target, in ONE transaction, the parts P of group g and    *)
(* the watermarks of their shards (the applier's transactions also carry   *)
(* L, see Apply).  `twice` records any part r held already.                *)
Commit(r, g, P) ==
    /\ applied' = [applied EXCEPT ![r] = @ \cup P]
    /\ wm' = [wm EXCEPT ![r] = WmAfter(r, g, P)]
    /\ twice' = twice \cup {<<r, p>> : p \in P \cap applied[r]}

-----------------------------------------------------------------------------
Init ==
    /\ log = <<>>
    /\ primary = OldPrimary
    /\ primaryUp = TRUE
    /\ phase = "replicating"
    /\ mirror = [r \in Replicas |-> <<>>]
    /\ wm = [r \in Replicas |-> [s \in Shards |-> 0]]
    /\ low = [r \in Replicas |-> 0]
    /\ applied = [r \in Replicas |-> {}]
    /\ unpersisted = [r \in Replicas |-> {}]
    /\ src = <<>>
    /\ twice = {}

-----------------------------------------------------------------------------
(***************************************************************************)
(* Actions.  Each starts with the cheap tests (phase, Bug) before its      *)
(* quantifiers: the same formula either way, and it spares the checker     *)
(* from expanding actions that cannot be taken.                            *)
(***************************************************************************)

(* The old primary commits a group touching a set of shards, with the      *)
(* domain's next seq_no.                                                   *)
OldPrimaryCommit ==
    /\ phase = "replicating" /\ primary = OldPrimary /\ primaryUp
    /\ Len(log) < MaxOld
    /\ \E S \in ShardSets :
           log' = Append(log, [srv |-> OldPrimary, seq |-> LastSeq(log) + 1,
                               shards |-> S])
    /\ UNCHANGED <<primary, primaryUp, phase, mirror, wm, low, applied,
                   unpersisted, src, twice>>

(* The old primary crashes for good.  What of its binlog no mirror holds   *)
(* is lost; no replica can have applied it.                                *)
OldPrimaryCrash ==
    /\ phase = "replicating" /\ primary = OldPrimary /\ primaryUp
    /\ primaryUp' = FALSE
    /\ UNCHANGED <<log, primary, phase, mirror, wm, low, applied,
                   unpersisted, src, twice>>

(***************************************************************************)
(* Mirrors (src/mirror.rs): `parapply mirror` on replica r receives the    *)
(* next group of the primary's binlog.  Promotion stops it.                *)
(***************************************************************************)
MirrorReceive ==
    /\ phase \in {"replicating", "promoted"} /\ primaryUp
    /\ \E r \in Replicas \ {primary} :
           /\ Len(mirror[r]) < Len(log)
           /\ mirror' = [mirror EXCEPT ![r] = Append(@, log[Len(@) + 1])]
    /\ UNCHANGED <<log, primary, primaryUp, phase, wm, low, applied,
                   unpersisted, src, twice>>

(***************************************************************************)
(* Appliers (src/schedule.rs, src/apply/, src/progress.rs).  The applier   *)
(* of replica r reads r's mirror after its low-watermark L, skips what the *)
(* watermarks cover, and commits groups: per shard in source order, across *)
(* shards in any order.  Appliers keep running after the old primary       *)
(* crashed, until promotion freezes them; the new primary's applier stays  *)
(* stopped.                                                                *)
(*                                                                         *)
(* L is modelled as advanced in each group's transaction.  The design      *)
(* persists it periodically, i.e. later and lower; but a lower L changes   *)
(* nothing the applier does, since every group between it and the end of   *)
(* the contiguous prefix is covered by the watermarks and skipped anyway,  *)
(* so checking the highest L the design allows covers the others.          *)
(***************************************************************************)
AppliersRun == phase \in {"replicating", "promoted"}

(* The applier of r commits group g of its mirror, the watermarks of g's   *)
(* shards and L, all in one target transaction.                            *)
Apply ==
    /\ AppliersRun
    /\ Bug \notin {"split_persist", "split_shards"}
    /\ \E r \in Replicas \ {primary} : \E g \in Elems(mirror[r]) :
           /\ g.seq > low[r]
           /\ GroupReady(r, mirror[r], g)
           /\ Commit(r, g, Parts(g))
           /\ low' = [low EXCEPT ![r] = LowAfter(r, WmAfter(r, g, Parts(g)))]
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, unpersisted, src>>

(* BROKEN ("split_shards"): the applier commits the part of g in shard s   *)
(* alone, with that shard's watermark.                                     *)
ApplyShard ==
    /\ AppliersRun
    /\ Bug = "split_shards"
    /\ \E r \in Replicas \ {primary} : \E g \in Elems(mirror[r]) :
       \E s \in g.shards :
           /\ g.seq > low[r]
           /\ PartReady(r, mirror[r], g, s)
           /\ Commit(r, g, {<<g, s>>})
           /\ low' = [low EXCEPT ![r] = LowAfter(r, WmAfter(r, g, {<<g, s>>}))]
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, unpersisted, src>>

(* BROKEN ("split_persist"): the applier commits the rows of g in a first  *)
(* transaction ...                                                         *)
ApplyRows ==
    /\ AppliersRun
    /\ Bug = "split_persist"
    /\ \E r \in Replicas \ {primary} : \E g \in Elems(mirror[r]) :
           /\ g.seq > low[r]
           /\ GroupReady(r, mirror[r], g)
           /\ applied' = [applied EXCEPT ![r] = @ \cup Parts(g)]
           /\ unpersisted' = [unpersisted EXCEPT ![r] = @ \cup Parts(g)]
           /\ twice' = twice \cup {<<r, p>> : p \in Parts(g) \cap applied[r]}
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, wm, low, src>>

(* ... and the watermarks of g's shards and L in a second one. *)
PersistWatermarks ==
    /\ AppliersRun
    /\ Bug = "split_persist"
    /\ \E r \in Replicas \ {primary} : \E p \in unpersisted[r] :
           /\ wm' = [wm EXCEPT ![r] = WmAfter(r, p[1], Parts(p[1]))]
           /\ low' = [low EXCEPT ![r] =
                         LowAfter(r, WmAfter(r, p[1], Parts(p[1])))]
           /\ unpersisted' = [unpersisted EXCEPT ![r] = @ \ Parts(p[1])]
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, applied, src,
                   twice>>

(* The applier of r crashes and restarts from what it persisted.  Its      *)
(* memory is gone, and a target transaction open at the crash rolls back   *)
(* without a trace.  The design's applier keeps nothing in memory that it  *)
(* cannot rebuild from the progress table and the mirror, so there a crash *)
(* changes no state at all: a stuttering step, which every behaviour may   *)
(* take anywhere.  It is a step of its own only when there is memory to    *)
(* lose (Bug "split_persist").                                             *)
ApplierCrash ==
    /\ AppliersRun
    /\ \E r \in Replicas \ {primary} :
           /\ unpersisted[r] # {}
           /\ unpersisted' = [unpersisted EXCEPT ![r] = {}]
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, wm, low, applied,
                   src, twice>>

(***************************************************************************)
(* Promotion (src/promote.rs): DESIGN.md point 7.  Every step reads and    *)
(* writes persisted state only, so after a crash of `parapply promote` or  *)
(* of a target in the middle, running promotion again continues it.        *)
(***************************************************************************)

(* Freeze appliers and mirrors, letting open transactions finish. *)
Freeze ==
    /\ phase = "replicating" /\ ~primaryUp
    /\ \A r \in Replicas : unpersisted[r] = {}
    /\ phase' = "frozen"
    /\ UNCHANGED <<log, primary, primaryUp, mirror, wm, low, applied,
                   unpersisted, src, twice>>

(* Check that the mirrors are prefixes of one stream (if not, promotion    *)
(* stops here: no step is possible), and choose the candidate c.  The      *)
(* operator may name any replica; by default promotion takes the one with  *)
(* the longest mirror, which is one of these choices.  The catch-up source *)
(* is the longest mirror.                                                  *)
ChooseCandidate ==
    /\ phase = "frozen"
    /\ MirrorsComparable
    /\ \E c \in Replicas :
           /\ primary' = c
           /\ src' = IF Bug = "own_mirror" THEN mirror[c]     \* BROKEN
                                           ELSE Longest
    /\ phase' = "catchup_candidate"
    /\ UNCHANGED <<log, primaryUp, mirror, wm, low, applied, unpersisted,
                   twice>>

(* The replicas being caught up: the candidate first, then the others. *)
CatchingUp == IF phase = "catchup_candidate" THEN {primary}
                                             ELSE Replicas \ {primary}

(* Apply to replica r a group g of r's catch-up set (for each shard s, the *)
(* source's groups of s after W_r[s]), read from the source: per shard in  *)
(* source order, one group per transaction with its watermarks, as the     *)
(* applier does.                                                           *)
CatchUp ==
    /\ phase \in {"catchup_candidate", "catchup_others"}
    /\ \E r \in CatchingUp : \E g \in Elems(src) :
           /\ GroupReady(r, src, g)
           /\ Commit(r, g, Parts(g))
    /\ UNCHANGED <<log, primary, primaryUp, phase, mirror, low, unpersisted,
                   src>>

(* r holds the whole source: for each shard s, W_r[s] reaches the last     *)
(* group of s in the source.                                               *)
CaughtUp(r) == \A g \in Elems(src) : \A s \in g.shards : Covered(r, g, s)

(* The candidate has caught up; the others' turn. *)
CandidateCaughtUp ==
    /\ phase = "catchup_candidate"
    /\ CaughtUp(primary)
    /\ phase' = "catchup_others"
    /\ UNCHANGED <<log, primary, primaryUp, mirror, wm, low, applied,
                   unpersisted, src, twice>>

(* Every replica has reached the same position.  Make the candidate        *)
(* writable, and re-point the others' mirrors at it, from where its binlog *)
(* stands now.  From here on the domain's stream is the source followed by *)
(* the new primary's writes, and each mirror holds (seen as groups) the    *)
(* source.                                                                 *)
Promote ==
    /\ phase = "catchup_others"
    /\ \A r \in Replicas : CaughtUp(r)
    /\ phase' = "promoted"
    /\ primaryUp' = TRUE
    /\ log' = src
    /\ mirror' = [r \in Replicas |-> src]
    /\ UNCHANGED <<primary, wm, low, applied, unpersisted, src, twice>>

(* The new primary commits a group touching a set of shards.  It continues *)
(* the domain's sequence: the seq_no after the stream's last, which is the *)
(* highest seq_no any replica applied.  No applier applies its own writes, *)
(* so its watermarks do not move.                                          *)
NewPrimaryCommit ==
    /\ phase = "promoted" /\ primaryUp
    /\ Len(log) - Len(src) < MaxNew
    /\ \E S \in ShardSets :
           /\ log' = Append(log, [srv |-> primary, seq |-> LastSeq(log) + 1,
                                  shards |-> S])
           /\ applied' = [applied EXCEPT ![primary] = @ \cup
                             Parts([srv |-> primary, seq |-> LastSeq(log) + 1,
                                    shards |-> S])]
    /\ UNCHANGED <<primary, primaryUp, phase, mirror, wm, low, unpersisted,
                   src, twice>>

-----------------------------------------------------------------------------
(* Every replica other than the primary holds the whole stream. *)
AllApplied ==
    \A r \in Replicas \ {primary} :
        /\ mirror[r] = log
        /\ \A g \in Elems(log) : Parts(g) \subseteq applied[r]

(* The end: promoted, the new primary wrote all it may, and every replica  *)
(* applied it.  An explicit stuttering step, so that the checker's         *)
(* deadlock check still reports any other dead end (a promotion that       *)
(* cannot finish, say).                                                    *)
Finished ==
    /\ phase = "promoted"
    /\ Len(log) - Len(src) = MaxNew
    /\ AllApplied
    /\ UNCHANGED vars

Next ==
    \/ OldPrimaryCommit
    \/ OldPrimaryCrash
    \/ MirrorReceive
    \/ Apply
    \/ ApplyShard
    \/ ApplyRows
    \/ PersistWatermarks
    \/ ApplierCrash
    \/ Freeze
    \/ ChooseCandidate
    \/ CatchUp
    \/ CandidateCaughtUp
    \/ Promote
    \/ NewPrimaryCommit
    \/ Finished

(* Fairness.  Once the old primary is down, promotion runs to its end; and *)
(* mirrors and appliers keep going.  Nothing forces the old primary to     *)
(* crash, or anyone to write.  Weak fairness of each action as a whole is  *)
(* enough: a step of one replica never disables the steps of another, and  *)
(* there are finitely many groups to receive and apply.                    *)
Fairness ==
    /\ WF_vars(Freeze)
    /\ WF_vars(ChooseCandidate)
    /\ WF_vars(CatchUp)
    /\ WF_vars(CandidateCaughtUp)
    /\ WF_vars(Promote)
    /\ WF_vars(MirrorReceive)
    /\ WF_vars(Apply)

Spec == Init /\ [][Next]_vars /\ Fairness

-----------------------------------------------------------------------------
(***************************************************************************)
(* Properties.                                                             *)
(***************************************************************************)

TypeOK ==
    /\ log \in Seq(Groups) /\ Len(log) <= MaxSeq
    /\ primary \in Servers /\ primaryUp \in BOOLEAN
    /\ phase \in {"replicating", "frozen", "catchup_candidate",
                  "catchup_others", "promoted"}
    /\ \A r \in Replicas : mirror[r] \in Seq(Groups)
    /\ wm \in [Replicas -> [Shards -> 0..MaxSeq]]
    /\ low \in [Replicas -> 0..MaxSeq]
    /\ \A r \in Replicas : applied[r] \subseteq Groups \X Shards
    /\ \A r \in Replicas : unpersisted[r] \subseteq applied[r]
    /\ src \in Seq(Groups)
    /\ twice \subseteq Replicas \X (Groups \X Shards)

(* The parts, in shard s, of the stream's groups with seq_no <= w, leaving *)
(* out those r wrote itself (a server does not apply its own writes).      *)
StreamParts(r, s, w) ==
    {<<g, s>> : g \in {h \in Elems(log) : /\ s \in h.shards
                                          /\ h.srv # r
                                          /\ h.seq <= w}}

(* DESIGN.md point 4: the persisted watermarks describe exactly what each  *)
(* replica holds.  For every shard s, the groups of s that r holds are the *)
(* stream's groups of s with seq_no <= W_r[s], no more, no fewer.  This is *)
(* what makes restart, catch-up sets and promotion sound.                  *)
WatermarksExact ==
    \A r \in Replicas, s \in Shards :
        {p \in applied[r] : p[2] = s /\ p[1].srv # r}
            = StreamParts(r, s, wm[r][s])

(* No replica applied any part of a group twice. *)
NoGroupAppliedTwice == twice = {}

(* A replica holds all the parts of a multi-shard group, or none. *)
MultiShardGroupsAtomic ==
    \A r \in Replicas : \A p \in applied[r] : Parts(p[1]) \subseteq applied[r]

(* Every group up to the persisted low-watermark L is applied, so the      *)
(* reader, restarting after L, skips nothing that is missing.              *)
LowWatermarkSound ==
    \A r \in Replicas, s \in Shards :
        StreamParts(r, s, low[r]) \subseteq applied[r]

(* Every mirror is a prefix of the domain's one stream. *)
MirrorsArePrefixes == \A r \in Replicas : IsPrefix(mirror[r], log)

(* A replica holds only groups of the stream. *)
AppliedFromStream ==
    \A r \in Replicas : \A p \in applied[r] : p[1] \in Elems(log)

(* Seq_nos grow along the stream, across the change of primary. *)
SeqNosIncrease ==
    \A i, j \in 1..Len(log) : i < j => log[i].seq < log[j].seq

OldParts(r) == {p \in applied[r] : p[1].srv = OldPrimary}

(* Nothing is lost: once the candidate has caught up, it holds every part  *)
(* of the old primary's groups that any replica holds.  A replica never    *)
(* loses a part, so this covers all that any replica applied before the    *)
(* crash.                                                                  *)
NoAppliedGroupLost ==
    phase \in {"catchup_others", "promoted"} =>
        \A r \in Replicas : OldParts(r) \subseteq applied[primary]

(* After promotion all replicas hold the same groups of the old primary:   *)
(* exactly the groups of the catch-up source, whole.                       *)
ReplicasConverged ==
    phase = "promoted" =>
        \A r \in Replicas : OldParts(r) = UNION {Parts(g) : g \in Elems(src)}

(* Watermarks and low-watermarks never go back, across the promotion too. *)
ProgressMonotonic ==
    [][\A r \in Replicas :
           /\ low'[r] >= low[r]
           /\ \A s \in Shards : wm'[r][s] >= wm[r][s]]_<<wm, low>>

(* Liveness: once the old primary is down, promotion finishes. *)
PromotionFinishes == ~primaryUp ~> (phase = "promoted")

(* Liveness: after a promotion, every replica ends up holding the whole    *)
(* stream of the new primary.                                              *)
ReplicasCatchUpWithNewPrimary == <>[](phase = "promoted" => AllApplied)

=============================================================================
