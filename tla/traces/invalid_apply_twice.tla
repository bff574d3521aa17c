------------------------------- MODULE TraceLog -------------------------------
\* Invalid: the trace valid_failover.tla with one step added: promote applies
\* group 2 to r1 again during catch-up, although r1 had applied it (its
\* watermark of s2 is 2).  No behaviour of the spec does that.
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
    [step |-> "CatchUp", replica |-> "r1", gtid |-> <<0, "p0", 2>>],
    [step |-> "MakeWritable", pos |-> 2],
    [step |-> "NewPrimaryCommit", dom |-> 0, shards |-> {"s1"}, seq |-> 3],
    [step |-> "Repoint", replica |-> "r1", pos |-> 2],
    [step |-> "PromoteDone"],
    [step |-> "MirrorReceive", replica |-> "r1"],
    [step |-> "ApplyBegin", replica |-> "r1", gtids |-> <<<<0, "r2", 3>>>>],
    [step |-> "ApplyCommit", replica |-> "r1", gtids |-> <<<<0, "r2", 3>>>>, wm |-> {<<0, "s1", 3>>, <<0, "s2", 2>>}]
>>
===============================================================================
