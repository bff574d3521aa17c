---------------------------- MODULE MCPromotion ----------------------------
(***************************************************************************)
(* Checker glue for Promotion: nothing but what a model configuration      *)
(* needs beyond the specification.  The constants themselves are set in    *)
(* the models/*.cfg files.                                                 *)
(***************************************************************************)
EXTENDS Promotion, TLC

(* Replicas are interchangeable, and so are shards and domains.  For TLC's *)
(* SYMMETRY; `tla` takes the same reduction as `--symmetry Replicas        *)
(* --symmetry Shards --symmetry Domains`.                                  *)
Symmetry == Permutations(Replicas) \cup Permutations(Shards)
                \cup Permutations(Domains)

(* A VIEW for models of the design (Bug = "none"). Before the candidate is *)
(* writable, the order of the transactions in a replica's binlog is read   *)
(* by nothing the design does (the errant check asks which GTIDs are       *)
(* there; the re-point position is a count), so the view holds the set of  *)
(* them. From the moment the candidate is writable, the replicas' binlogs  *)
(* up to the persisted position no longer influence anything the design    *)
(* does (replicas stream the new primary's binlog after that position; the *)
(* old GTIDs in them are read only by broken variants and by the errant    *)
(* check, which is over). Nor do, then, the mirror and low-watermarks of   *)
(* the new primary (its applier is stopped for good) and of a replica not  *)
(* re-pointed yet (it holds the whole source, and re-pointing sets its     *)
(* mirror to the source and its low-watermarks to the source's end); and   *)
(* the properties hold of those whatever they are (such a mirror is a      *)
(* prefix of the source, such an L at most its end). States that differ    *)
(* only there are the same state for the checker.                          *)
Idle(r) == r = primary \/ rnext[r] = 0
DesignView ==
    IF phase \notin {"writable", "promoted"}
    THEN <<log, primary, primaryUp, phase, mirror, wm, low, applied, inflight,
           unpersisted, frozen, [r \in Replicas |-> Elems(blog[r])],
           writable, src, ppos, rnext, reruns, faulted, twice>>
    ELSE
    <<log, primary, primaryUp, phase,
      [r \in Replicas |-> IF Idle(r) THEN <<>> ELSE mirror[r]],
      wm,
      [r \in Replicas |-> IF Idle(r) THEN <<>> ELSE low[r]],
      applied, inflight, unpersisted, frozen,
      [r \in Replicas |->
          IF r = primary THEN SubSeq(blog[r], ppos[1] + 1, Len(blog[r]))
          ELSE <<>>],
      writable, src, ppos, rnext, reruns, faulted, twice>>
=============================================================================
