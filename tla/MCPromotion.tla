---------------------------- MODULE MCPromotion ----------------------------
(***************************************************************************)
(* Checker glue for Promotion: nothing but what a model configuration      *)
(* needs beyond the specification.  The constants themselves are set in    *)
(* the models/*.cfg files.                                                 *)
(***************************************************************************)
EXTENDS Promotion, TLC

(* Replicas are interchangeable, and so are shards.  For TLC's SYMMETRY;   *)
(* `tla` takes the same reduction as `--symmetry Replicas --symmetry       *)
(* Shards`.                                                                *)
Symmetry == Permutations(Replicas) \cup Permutations(Shards)
=============================================================================
