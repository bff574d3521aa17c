------------------------------- MODULE TraceLog -------------------------------
\* A failover, written by hand in the format promote's step log will be
\* generated in (README.md, "Trace validation").  p0 commits group 1 (shard
\* s1) and group 2 (s2); r1 mirrors both and applies 2 first, r2 mirrors and
\* applies 1 only, the two appliers' transactions open at the same time:
\* their states are incomparable.  p0 dies; promote freezes
\* both appliers and, told to, promotes r2, the replica behind in mirror:
\* r2 gets group 2 from r1's mirror, r1 gets group 1, r2 becomes writable at
\* position 2 of its binlog, writes group 3, and r1, re-pointed at that
\* position, receives and applies it.
Trace == <<
    [step |-> "OldPrimaryCommit", dom |-> 0, shards |-> {"s1"}, seq |-> 1],
    [step |-> "OldPrimaryCommit", dom |-> 0, shards |-> {"s2"}, seq |-> 2],
    [step |-> "MirrorReceive", replica |-> "r1"],
    [step |-> "MirrorReceive", replica |-> "r1"],
    [step |-> "ApplyBegin", replica |-> "r1", gtids |-> <<<<0, "p0", 2>>>>],
    [step |-> "MirrorReceive", replica |-> "r2"],
    [step |-> "ApplyBegin", replica |-> "r2", gtids |-> <<<<0, "p0", 1>>>>],
    [step |-> "ApplyCommit", replica |-> "r1", gtids |-> <<<<0, "p0", 2>>>>, wm |-> {<<0, "s1", 0>>, <<0, "s2", 2>>}, low |-> {<<0, 0>>}],
    [step |-> "ApplyCommit", replica |-> "r2", gtids |-> <<<<0, "p0", 1>>>>, wm |-> {<<0, "s1", 1>>}, low |-> {<<0, 1>>}],
    [step |-> "OldPrimaryCrash"],
    [step |-> "FreezeApplier", replica |-> "r1"],
    [step |-> "FreezeApplier", replica |-> "r2"],
    [step |-> "ChooseCandidate", replica |-> "r2"],
    [step |-> "CatchUp", replica |-> "r2", gtid |-> <<0, "p0", 2>>, wm |-> {<<0, "s2", 2>>}],
    [step |-> "CandidateCaughtUp"],
    [step |-> "CatchUp", replica |-> "r1", gtid |-> <<0, "p0", 1>>, wm |-> {<<0, "s1", 1>>}],
    [step |-> "MakeWritable", pos |-> 2],
    [step |-> "NewPrimaryCommit", dom |-> 0, shards |-> {"s1"}, seq |-> 3],
    [step |-> "Repoint", replica |-> "r1", pos |-> 2],
    [step |-> "PromoteDone"],
    [step |-> "MirrorReceive", replica |-> "r1"],
    [step |-> "ApplyBegin", replica |-> "r1", gtids |-> <<<<0, "r2", 3>>>>],
    [step |-> "ApplyCommit", replica |-> "r1", gtids |-> <<<<0, "r2", 3>>>>, wm |-> {<<0, "s1", 3>>, <<0, "s2", 2>>}]
>>
===============================================================================
