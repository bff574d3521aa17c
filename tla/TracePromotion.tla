--------------------------- MODULE TracePromotion ---------------------------
(***************************************************************************)
(* Trace validation: is a recorded run a behaviour of Promotion?           *)
(*                                                                         *)
(* The run is the sequence `Trace` of module TraceLog (generated from the  *)
(* step log of `parapply promote` and of the appliers; its format is in    *)
(* README.md, "Trace validation").  Each record is one step: its field     *)
(* `step` names the action of Promotion, the other fields give the         *)
(* action's arguments and, optionally, values of the state after it.  The  *)
(* behaviours of TraceSpec are those of Spec whose i-th step is the        *)
(* action the i-th record names, with those arguments and observations.    *)
(*                                                                         *)
(* The trace is accepted when some behaviour follows it to its end: the    *)
(* check then reaches a state where TraceUnfinished is FALSE, i.e. the     *)
(* invariant TraceUnfinished is violated (tla/check expects that of a      *)
(* model marked `expect: trace-accepted`).  When no behaviour follows the  *)
(* whole trace, the checker explores every partial match and finds no      *)
(* violation (`expect: trace-rejected`).                                   *)
(***************************************************************************)
EXTENDS Promotion, TraceLog

VARIABLES tix,  \* how many records of the trace the behaviour has followed
          tr    \* Trace, evaluated once: `tla` does not cache a constant
                \* definition, and building a recorded run of a few hundred
                \* records at every reference made each step cost as much
                \* as the whole trace

(* The group of q with the GTID t = <<domain, server, seq_no>>. *)
HasGroup(q, t) ==
    \E g \in Elems(q) : g.dom = t[1] /\ g.srv = t[2] /\ g.seq = t[3]
GroupOf(q, t) ==
    CHOOSE g \in Elems(q) : g.dom = t[1] /\ g.srv = t[2] /\ g.seq = t[3]

(* The sequence of groups of q named by the sequence of GTIDs ts. *)
HasGroups(q, ts) == Len(ts) > 0 /\ \A j \in 1..Len(ts) : HasGroup(q, ts[j])
GroupsOf(q, ts)  == [j \in 1..Len(ts) |-> GroupOf(q, ts[j])]

(* The action record t names. *)
StepOf(t) ==
    CASE t.step = "OldPrimaryCommit" -> OldPrimaryCommitGroup(t.dom, t.shards)
      [] t.step = "OldPrimaryCrash"  -> OldPrimaryCrash
      [] t.step = "OldPrimaryForks"  -> OldPrimaryForks
      [] t.step = "ErrantWrite"      -> ErrantWriteOn(t.replica, t.dom, t.shard)
      [] t.step = "MirrorReceive"    -> MirrorReceiveOn(t.replica)
      [] t.step = "ApplyBegin"       ->
             /\ HasGroups(mirror[t.replica], t.gtids)
             /\ ApplyBeginWith(t.replica, GroupsOf(mirror[t.replica], t.gtids))
      [] t.step = "ApplyCommit"      ->
             /\ HasGroups(mirror[t.replica], t.gtids)
             /\ ApplyCommitOf(t.replica, GroupsOf(mirror[t.replica], t.gtids))
      [] t.step = "ApplierCrash"     -> ApplierCrashOn(t.replica)
      [] t.step = "FreezeApplier"    -> FreezeApplierOn(t.replica)
      [] t.step = "ChooseCandidate"  -> ChooseCandidateOf(t.replica)
      [] t.step = "Refuse"           -> Refuse
      [] t.step = "CatchUp"          ->
             /\ HasGroup(src, t.gtid)
             /\ CatchUpGroup(t.replica, GroupOf(src, t.gtid))
      [] t.step = "CandidateCaughtUp" -> CandidateCaughtUp
      [] t.step = "MakeWritable"     -> MakeWritable
      [] t.step = "Repoint"          -> RepointOn(t.replica)
      [] t.step = "PromoteDone"      -> PromoteDone
      [] t.step = "PromoteRerun"     -> PromoteRerunWith(t.replica)
      [] t.step = "NewPrimaryCommit" -> NewPrimaryCommitGroup(t.dom, t.shards)
      [] OTHER                       -> FALSE

(* The observations record t carries hold in the state after the step.     *)
(*  wm:   a set of <<domain, shard, W>>: t.replica's watermarks;           *)
(*  low:  a set of <<domain, L>>: t.replica's low-watermarks;              *)
(*  seq:  the seq_no the primary's commit got;                             *)
(*  pos:  MakeWritable: the re-point position persisted; Repoint: the      *)
(*        position in the new primary's binlog t.replica streams after     *)
(*        (so many transactions of it are not sent).                       *)
Observed(t) ==
    /\ "wm" \in DOMAIN t =>
           \A x \in t.wm : wm'[t.replica][x[1]][x[2]] = x[3]
    /\ "low" \in DOMAIN t =>
           \A x \in t.low : low'[t.replica][x[1]] = x[2]
    /\ "seq" \in DOMAIN t => log'[Len(log')].seq = t.seq
    /\ ("pos" \in DOMAIN t /\ t.step = "MakeWritable") => ppos' = <<t.pos>>
    /\ ("pos" \in DOMAIN t /\ t.step = "Repoint") =>
           rnext'[t.replica] = t.pos + 1

TraceInit == Init /\ tix = 0 /\ tr = Trace

TraceNext ==
    /\ tix < Len(tr)
    /\ StepOf(tr[tix + 1])
    /\ Observed(tr[tix + 1])
    /\ tix' = tix + 1
    /\ tr' = tr

TraceSpec == TraceInit /\ [][TraceNext]_<<vars, tix, tr>>

(* FALSE once the behaviour has followed the whole trace. *)
TraceUnfinished == tix < Len(tr)
=============================================================================
