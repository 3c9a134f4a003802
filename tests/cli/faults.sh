#!/bin/sh
# Faults in `calpa exec` (the CALPA_FAULT hook, exec/runtime.h): a NaN or
# Inf in a gradient stops the run with exit 1 naming the step and tensor;
# under mpirun (2 ranks, skipped without MPI) a rank that fails or is
# SIGKILLed mid-step ends the whole job, with its message, instead of
# leaving the other rank waiting in a collective (timeout 60: 124 = hang).
. "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 \
       OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0" \
       LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$(cd "$(dirname "$0")/.." && pwd)/lsan-mpi.supp"
MLP=mlp:hidden=64,layers=4,activation=relu
plan() {
    n=$1; c=$2; shift 2
    "$CALPA" plan --model "$MLP" --cluster "$c" --global-batch 8 "$@" -o "$T/$n.json" >/dev/null 2>"$T/err" \
        || bad "plan $n: $(tail -c 300 "$T/err")"
}
plan one 'dgx-a100-80g:nodes=1,devices_per_node=1' --method data --micro-batches 2

# one rank, no mpirun: the poisoned gradient is named with its step
CALPA_FAULT=nan:step=1 "$CALPA" exec "$T/one.json" --steps 3 >"$T/out" 2>"$T/err"; rc=$?
[ $rc = 1 ] && ok || bad "nan: exit $rc, want 1"
grep -q "step 1: gradient '.*' holds NaN" "$T/err" && ok || bad "nan: no message: $(head -c 300 "$T/err")"
CALPA_FAULT=inf:step=2,tensor=dw2 "$CALPA" exec "$T/one.json" --steps 3 >"$T/out" 2>"$T/err"; rc=$?
[ $rc = 1 ] && ok || bad "inf: exit $rc, want 1"
grep -q "step 2: gradient 'dw2' holds Inf" "$T/err" && ok || bad "inf dw2: $(head -c 300 "$T/err")"
CALPA_FAULT=fail:step=1 "$CALPA" exec "$T/one.json" --steps 3 >"$T/out" 2>"$T/err"; rc=$?
[ $rc = 1 ] && ok || bad "fail on one rank: exit $rc, want 1"
grep -q "injected fault (CALPA_FAULT) at step 1" "$T/err" && ok || bad "fail: no message"
# no fault due (another rank, a later step): the run passes
CALPA_FAULT=fail:rank=3 "$CALPA" exec "$T/one.json" --steps 2 --check >"$T/out" 2>"$T/err"; rc=$?
[ $rc = 0 ] && ok || bad "a fault for rank 3 fired on rank 0: exit $rc"
# a bad hook is bad input
CALPA_FAULT=boom expect 2 "CALPA_FAULT 'boom': 'boom' is not one of fail|kill|nan|inf" -- exec "$T/one.json"
CALPA_FAULT=nan:rank=x expect 2 "key 'rank': 'x' is not an integer" -- exec "$T/one.json"
CALPA_FAULT=nan:when=now expect 2 "unknown key 'when'" -- exec "$T/one.json"

unset CALPA_FAULT
"$CALPA" exec --help | grep -q "MPI on" && command -v mpirun >/dev/null && mpi=1 || mpi=0
if [ "$mpi" = 1 ]; then
    plan pp 'dgx-a100-80g:nodes=1,devices_per_node=2' --method megatron --tp 1 --pp 2 --dp 1 \
        --micro-batches 4 --schedule gpipe
    plan dp 'dgx-a100-80g:nodes=1,devices_per_node=2' --method data --micro-batches 2
    # run2 FAULT PLAN: exec on 2 ranks with the fault; rc in $rc, stderr in $T/err
    run2() { CALPA_FAULT=$1 timeout 60 mpirun -np 2 "$CALPA" exec "$T/$2.json" --steps 4 >"$T/out" 2>"$T/err"; rc=$?; }
    for p in pp dp; do
        run2 fail:rank=1,step=2 $p
        [ $rc != 0 ] && [ $rc != 124 ] && ok || bad "$p: failing rank: exit $rc (124 = hang)"
        grep -q "rank 1: injected fault (CALPA_FAULT) at step 2" "$T/err" && ok \
            || bad "$p: failing rank: its message is missing: $(head -c 300 "$T/err")"
        run2 kill:rank=0,step=1 $p
        [ $rc != 0 ] && [ $rc != 124 ] && ok || bad "$p: killed rank: exit $rc (124 = hang)"
        grep -q "rank 0: killing itself (CALPA_FAULT) at step 1" "$T/err" && ok || bad "$p: killed rank: no message"
        run2 nan:rank=1,step=1 $p
        [ $rc = 1 ] && ok || bad "$p: NaN on rank 1: exit $rc, want 1"
        grep -q "rank 1: step 1: gradient '.*' holds NaN" "$T/err" && ok || bad "$p: NaN: $(head -c 300 "$T/err")"
    done
fi
finish
