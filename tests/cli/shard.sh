#!/bin/sh
# Command-line tests of `calpa shard` (the intra-op pass).
. "$(dirname "$0")/lib.sh"
MLP=mlp:layers=2,batch=1024,hidden=128,bias=0,optimizer=sgd

expect 0 "" -- shard --help
grep -q "usage: calpa shard" "$T/out" && ok || bad "shard --help prints no usage"

# The contract: JSON keys, status, Alpa's 2-layer DP objective 2*AR(128*128*4) (+-1 %).
expect 0 "" -- shard $MLP --mesh 4x1 --alpha 1,1 --beta 1,1 --json
json_has objective status solve_time_s ilp_vars ilp_rows collectives ops weights
jcheck '.status == "optimal" and (.objective - 196610.02 | fabs) < 1966'
jcheck '.collectives | has("all_reduce") and has("all_gather") and has("reduce_scatter") and has("all_to_all")'
jcheck '[.weights[] | .spec] == ["RR", "RR"] and (.ops | length) == 9 and .ops[0].name == "dense1"'
jcheck '.ilp_vars > 0 and .ilp_rows > 0 and .solve_time_s >= 0'

# Model parallel: Megatron's column then row split, one all-reduce.
expect 0 "" -- shard mlp:layers=2,batch=128,hidden=1024,bias=0,optimizer=sgd --mesh 1x4 --json
jcheck '[.weights[] | .spec] == ["RS1", "S1R"] and .collectives.all_reduce == 1'

# 2D mesh: batch on mesh dim 0 by default; --force-batch-dim none frees it.
expect 0 "" -- shard $MLP --mesh 2x2 --beta 1,0.1 --json
jcheck '.force_batch_dim == 0 and ([.weights[] | .spec] == ["RS1", "S1R"])'
expect 0 "" -- shard $MLP --mesh 2x2 --force-batch-dim none --json
jcheck '.force_batch_dim == null'

# Force DP and the rewrites.
expect 0 "" -- shard $MLP --mesh 2x2 --force-dp --prefer-reduce-scatter --json
jcheck '.ilp_mesh == [4, 1] and .collectives.reduce_scatter == 2 and .collectives.all_gather == 2'
expect 0 "" -- shard $MLP --mesh 4x1 --zero3 --json
jcheck '.collectives.reduce_scatter == 2 and ([.weights[] | .spec] == ["S0R", "S0R"])'

# Human output.
expect 0 "" -- shard $MLP --mesh 4x1
for s in "status       optimal" "objective" "variables" "constraints" "all_reduce 3" "dense2.dB" "RR = S0R x S0R (allreduce @ 0)" "w1"; do
    grep -qF "$s" "$T/out" && ok || bad "human output lacks '$s'"
done

# Seconds from a cluster: its device memory gives the budget.
expect 0 "" -- shard $MLP --mesh 2x4 --cluster p3.16xlarge --json
jcheck '.cost_unit == "seconds" and .memory_budget_bytes > 1.5e10 and .status == "optimal" and .objective < 1'

# A memory budget too small for any plan: exit 1, the smallest budget that works.
expect 1 "smallest budget that admits a plan is" -- shard $MLP --mesh 4x1 --memory-budget 100000
expect 1 "" -- shard $MLP --mesh 4x1 --memory-budget 100000 --json
jcheck '.status == "infeasible" and .min_budget_bytes > 100000 and .objective == null'
need=$(jq '.min_budget_bytes' "$T/out")
expect 0 "" -- shard $MLP --mesh 4x1 --memory-budget "$need" --json
jcheck ".status == \"optimal\" and .peak_bytes <= $need"

# Bad input: exit 2 with what and where.
expect 2 "option --mesh: '4x0'" -- shard $MLP --mesh 4x0
expect 2 "option --mesh: 'four'" -- shard $MLP --mesh four
expect 2 "--mesh RxC is required" -- shard $MLP
expect 2 "missing MODEL" -- shard --mesh 2x2
expect 2 "" -- shard $MLP --mesh 2x2 --no-such-option
expect 2 "has 8 devices but cluster" -- shard $MLP --mesh 2x4 --cluster p3.16xlarge:nodes=2
expect 2 "option --force-batch-dim: '2'" -- shard $MLP --mesh 2x2 --force-batch-dim 2
expect 2 "option --alpha" -- shard $MLP --mesh 2x2 --alpha 1
expect 2 "option --memory-budget" -- shard $MLP --mesh 2x2 --memory-budget lots
expect 2 "unknown preset or family" -- shard nosuchmodel --mesh 2x2
expect 2 "batch dimension (6) is not divisible by mesh dim 0" -- shard mlp:batch=6 --mesh 4x1 --force-dp
finish
