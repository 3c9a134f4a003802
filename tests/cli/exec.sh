#!/bin/sh
# Command-line tests of `calpa exec`: --check on 1, 2 and 4 ranks (mpirun,
# oversubscribed) for MLP and GPT plans of every method, a corrupted shard
# failing the check, bad input exiting 2 on every rank, a failing rank
# aborting the job.
. "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 \
       OMPI_MCA_rmaps_base_oversubscribe=1
# Under AddressSanitizer: OpenMPI keeps allocations at exit (its plugins,
# hwloc); suppress those (tests/lsan-mpi.supp) with exact unwinding, so
# calpa's own leaks still fail the run.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0" \
       LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$(cd "$(dirname "$0")/.." && pwd)/lsan-mpi.supp"
MLP=mlp:hidden=64,layers=4,activation=relu
GPT=gpt:hidden=64,layers=2,heads=4,seq=16,vocab=128,dropout=0,dtype=fp32,optimizer=sgd
C1='dgx-a100-80g:nodes=1,devices_per_node=1'
C2='dgx-a100-80g:nodes=1,devices_per_node=2'
C4='dgx-a100-80g:nodes=1,devices_per_node=4'

expect 0 "" -- exec --help
grep -q "usage: calpa exec" "$T/out" && ok || bad "--help prints no usage"
mpi=0; grep -q "MPI on" "$T/out" && command -v mpirun >/dev/null && mpi=1

# plan NAME MODEL CLUSTER ARGS... : writes $T/NAME.json
plan() {
    n=$1; m=$2; c=$3; shift 3
    "$CALPA" plan --model "$m" --cluster "$c" --global-batch 8 "$@" -o "$T/$n.json" >/dev/null 2>"$T/err" \
        || bad "plan $n: $(tail -c 300 "$T/err")"
}

# run NP NAME : exec --check --json of plan NAME on NP ranks passes
run() {
    np=$1; n=$2
    if [ "$np" = 1 ]; then set -- "$CALPA"; else set -- timeout 120 mpirun -np "$np" "$CALPA"; fi
    "$@" exec "$T/$n.json" --check --json --steps 2 >"$T/out" 2>"$T/err"; rc=$?
    if [ $rc != 0 ]; then bad "exec $n on $np ranks: exit $rc: $(grep -v '^\[' "$T/err" | head -c 400)"; return; fi
    jcheck '.check == "passed" and (.checks | length) > 3 and .ranks == '"$np"
}

# one rank, without mpirun: the JSON report
plan m1 "$MLP" "$C1" --method data --micro-batches 2
expect 0 "" -- exec "$T/m1.json" --check --json --steps 2
json_has iteration_time_s samples_per_s peak_memory_bytes check loss checks rank0_times_s
jcheck '.check == "passed" and .iteration_time_s > 0 and .samples_per_s > 0 and .peak_memory_bytes > 0'
jcheck '.rank0_times_s.operators.matmul > 0'
expect 0 "" -- exec "$T/m1.json" --json
jcheck '.check == "skipped"'
plan g1 "$GPT" "$C1" --method data --micro-batches 2
run 1 g1
MOE=moe:hidden=64,layers=2,heads=4,seq=16,vocab=128,dropout=0,dtype=fp32,optimizer=sgd
plan e1 "$MOE" "$C1" --method data --micro-batches 1
run 1 e1

# bad input: exit 2 with the reason
expect 2 "cannot open" -- exec "$T/none.json"
sed 's/"version":[^,]*,/"version": 99,/' "$T/m1.json" >"$T/v99.json"
expect 2 "version" -- exec "$T/v99.json"
plan m2dp "$MLP" "$C2" --method data --micro-batches 2
expect 2 "the plan uses 2 devices but MPI runs 1 ranks" -- exec "$T/m2dp.json"
expect 2 "" -- exec "$T/m1.json" --backend tpu

if [ "$mpi" = 1 ]; then
    plan m2tp "$MLP" "$C2" --method megatron --tp 2 --pp 1 --dp 1 --micro-batches 2
    plan m2pp "$MLP" "$C2" --method megatron --tp 1 --pp 2 --dp 1 --micro-batches 4 --schedule gpipe
    plan m4pp "$MLP" "$C4" --method megatron --tp 1 --pp 4 --dp 1 --micro-batches 4
    plan m4tpdp "$MLP" "$C4" --method megatron --tp 2 --pp 1 --dp 2 --micro-batches 2
    plan m4tppp "$MLP" "$C4" --method megatron --tp 2 --pp 2 --dp 1 --micro-batches 2
    plan m2z2 "$MLP" "$C2" --method zero2 --micro-batches 2
    plan m2z3 "$MLP" "$C2" --method zero3 --micro-batches 2
    plan m4alpa "$MLP" "$C4" --method alpa
    plan m2il "$MLP" "$C2" --method megatron --tp 1 --pp 2 --dp 1 --micro-batches 4 --schedule interleaved \
        --virtual-stages 2
    plan m2zb "$MLP" "$C2" --method megatron --tp 1 --pp 2 --dp 1 --micro-batches 4 --schedule zb-h1
    for p in m2dp m2tp m2pp m2z2 m2z3 m2il m2zb; do run 2 $p; done
    for p in m4pp m4tpdp m4tppp m4alpa; do run 4 $p; done

    plan g2dp "$GPT" "$C2" --method data --micro-batches 2
    plan g2tp "$GPT" "$C2" --method megatron --tp 2 --pp 1 --dp 1 --micro-batches 2
    plan g2pp "$GPT" "$C2" --method megatron --tp 1 --pp 2 --dp 1 --micro-batches 4
    plan g2ppg "$GPT" "$C2" --method megatron --tp 1 --pp 2 --dp 1 --micro-batches 4 --schedule gpipe
    plan g2z2 "$GPT" "$C2" --method zero2 --micro-batches 2
    plan g2z3 "$GPT" "$C2" --method zero3 --micro-batches 2
    plan g2alpa "$GPT" "$C2" --method alpa
    plan g4dp "$GPT" "$C4" --method data --micro-batches 2
    plan g4tp "$GPT" "$C4" --method megatron --tp 4 --pp 1 --dp 1 --micro-batches 2
    plan g4alpa "$GPT" "$C4" --method alpa
    # with the measured CPU profile Megatron splits the vocabulary of the loss
    plan g2tpv "$GPT" "$C2" --method megatron --tp 2 --pp 1 --dp 1 --micro-batches 2 \
        --profile traces/cpu-local.json
    plan g4ppdp "$GPT" "$C4" --method megatron --tp 1 --pp 2 --dp 2 --micro-batches 2
    for p in g2dp g2tp g2tpv g2pp g2ppg g2z2 g2z3 g2alpa; do run 2 $p; done
    run 4 g4ppdp

    # MoE: the top-2 gate and the dispatch/combine einsums
    plan e2alpa "$MOE" "$C2" --method alpa
    plan e2pp "$MOE" "$C2" --method megatron --tp 1 --pp 2 --dp 1 --micro-batches 2
    for p in e2alpa e2pp; do run 2 $p; done
    for p in g4dp g4tp g4alpa; do run 4 $p; done

    # an Alpa plan over meshes of different shapes: (1,1), a (2,1) data-parallel
    # mesh (its update ZeRO-sharded where dim 0 does not split the weight), (1,1);
    # the middle mesh all-gathers what the one-device stage after it pulls, and
    # the tied embedding's gradient crosses meshes of different sizes
    # tp 2 x pp 2: a stage sends an activation its producer holds split on the
    # tensor-parallel dim to a receiver that keeps it whole: gathered first
    plan g4tppp "$GPT" "$C4" --method megatron --tp 2 --pp 2 --dp 1 --micro-batches 2
    run 4 g4tppp
    plan g4mix "gpt:hidden=64,layers=3,heads=4,seq=16,vocab=128,dropout=0,dtype=fp32,optimizer=sgd" "$C4" --method alpa
    jq -e '[.stages[].submesh] == [[1,1],[1,2],[1,1]]' "$T/g4mix.json" >/dev/null && ok \
        || bad "g4mix: meshes $(jq -c '[.stages[].submesh]' "$T/g4mix.json")"
    timeout 120 mpirun -np 4 "$CALPA" exec "$T/g4mix.json" --check --json --steps 3 >"$T/out" 2>"$T/err"; rc=$?
    [ $rc = 0 ] && ok || bad "exec g4mix on 4 ranks: exit $rc: $(grep -v '^\[' "$T/err" | head -c 400)"
    jcheck '.check == "passed"'

    # Adam: first moments after step 1 against the reference, the weights for
    # replica agreement; passes after several steps, and can fail
    GPTA=gpt:hidden=64,layers=2,heads=4,seq=16,vocab=128,dropout=0,dtype=fp32,optimizer=adam
    plan g2adam "$GPTA" "$C2" --method megatron --tp 1 --pp 1 --dp 2 --micro-batches 2
    timeout 120 mpirun -np 2 "$CALPA" exec "$T/g2adam.json" --check --json --steps 4 >"$T/out" 2>"$T/err"; rc=$?
    [ $rc = 0 ] && ok || bad "exec g2adam: exit $rc: $(grep -v '^\[' "$T/err" | head -c 300)"
    jcheck '.check == "passed" and ([.checks[] | select(.compared == "first_moment_step1")] | length) > 10'
    timeout 120 mpirun -np 2 "$CALPA" exec "$T/g2adam.json" --check --corrupt l0.wq >"$T/out" 2>"$T/err"; rc=$?
    [ $rc = 1 ] && ok || bad "Adam with a corrupted shard: exit $rc, want 1"
    grep -q "FAIL (Adam: first moment after step 1)" "$T/out" && ok || bad "Adam corrupted: no FAIL line"

    # the check can fail: a corrupted shard on the last rank
    timeout 60 mpirun -np 2 "$CALPA" exec "$T/m2tp.json" --check --corrupt w2 >"$T/out" 2>"$T/err"; rc=$?
    [ $rc = 1 ] && ok || bad "corrupted shard: exit $rc, want 1"
    grep -q "^check  w2 .*FAIL" "$T/out" && ok || bad "corrupted shard: no FAIL line for w2"
    grep -q "^check  w1 .*pass" "$T/out" && ok || bad "corrupted shard: w1 should still pass"

    # device count != world size: exit 2 on every rank, no hang
    timeout 60 mpirun -np 2 "$CALPA" exec "$T/m4pp.json" >"$T/out" 2>"$T/err"; rc=$?
    [ $rc = 2 ] && ok || bad "4-device plan on 2 ranks: exit $rc, want 2"
    [ "$(grep -c 'the plan uses 4 devices but MPI runs 2 ranks' "$T/err")" = 2 ] && ok \
        || bad "4-device plan on 2 ranks: the reason not on both ranks"
    timeout 60 mpirun -np 2 "$CALPA" exec "$T/none.json" >"$T/out" 2>"$T/err"; rc=$?
    [ $rc = 2 ] && ok || bad "missing plan under mpirun: exit $rc, want 2"

    # one rank failing mid-run: the job aborts with its message (no hang)
    timeout 60 mpirun -np 2 "$CALPA" exec "$T/m2pp.json" --steps 4 --fail-rank 1 >"$T/out" 2>"$T/err"; rc=$?
    [ $rc != 0 ] && [ $rc != 124 ] && ok || bad "failing rank: exit $rc (124 = hang)"
    grep -q "rank 1: failing on purpose" "$T/err" && ok || bad "failing rank: its message is missing"

    # the loop on one machine: profile -> plan -> sim -> exec -> compare
    timeout 120 mpirun -np 2 "$CALPA" profile --backend cpu --quick -o "$T/cpu.json" >"$T/out" 2>"$T/err"; rc=$?
    [ $rc = 0 ] && ok || bad "profile --backend cpu: exit $rc: $(head -c 300 "$T/err")"
    grep -q "^#       size         count      type   redop    root     time   algbw   busbw #wrong" "$T/out" \
        && ok || bad "profile: no nccl-tests table"
    expect 0 "" -- profile show "$T/cpu.json" --json
    jq -e '[.operators[].op] | index("gelu") and index("layernorm") and index("loss_xent")' "$T/cpu.json" \
        >/dev/null && ok || bad "profile: no operator tables for gelu, layernorm, loss_xent"
    "$CALPA" plan --model "$MLP" --cluster "$C2" --global-batch 8 --method data --micro-batches 2 \
        --profile "$T/cpu.json" -o "$T/loop.json" >/dev/null 2>&1 || bad "plan with the measured profile"
    expect 0 "" -- sim "$T/loop.json" --profile "$T/cpu.json" --no-fold --timeline "$T/pred.json"
    timeout 60 mpirun -np 2 "$CALPA" exec "$T/loop.json" --timeline "$T/meas.json" >/dev/null 2>"$T/err" \
        && ok || bad "exec --timeline: $(head -c 300 "$T/err")"
    expect 0 "" -- compare "$T/pred.json" "$T/meas.json" --json
    jcheck '(.kinds | map(.kind) | index("matmul") != null) and (.kinds | map(.kind) | index("all_reduce") != null)'
    jcheck '.joined_tasks > 10 and .measured_iteration_time_s > 0 and .predicted_iteration_time_s > 0'
    expect 2 "" -- compare "$T/pred.json"
fi
# activations are released after their last use: a step's measured peak
# stays near the simulator's (holding every micro-batch's tensors to the end
# of the step, as exec once did, is several times it)
"$CALPA" plan --model gpt:hidden=256,layers=4,heads=8,seq=128,vocab=1024,dropout=0,dtype=fp32,optimizer=adam \
    --cluster dgx-h100:nodes=1,devices_per_node=1 --global-batch 8 --method data --micro-batches 4 \
    -o "$T/mem.json" >/dev/null 2>&1 || bad "plan for the memory check"
sim_peak=$("$CALPA" sim "$T/mem.json" --json | jq '.peak_memory_bytes')
exec_peak=$("$CALPA" exec "$T/mem.json" --json --steps 1 --warmup 0 | jq '.peak_memory_bytes')
if [ -n "$sim_peak" ] && [ -n "$exec_peak" ] && [ "$(echo "$exec_peak <= 1.25 * $sim_peak" | bc)" = 1 ]; then ok
else bad "exec peak $exec_peak bytes against the simulator's $sim_peak (more than 1.25x)"; fi
finish
