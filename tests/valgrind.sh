#!/bin/sh
# valgrind.sh BIN BUILD - memcheck over a representative subset: a few
# cmocka binaries of BUILD/tests and the main commands of BIN on small
# inputs (model, cluster, plan with the ILP, sim with a timeline, profile).
# Any memory error or definitely lost block fails it (exit 1).  A few
# minutes; CI runs it once on the plain build (.ci/run).
set -u
bin=$1; build=$2
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
# the planner runs in-process (--jobs 1); forked sweep/plan workers stay silent
vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --track-origins=no --child-silent-after-fork=yes
    --suppressions=$(dirname "$0")/valgrind.supp"
fail=0; n=0
run() {
    n=$((n + 1))
    # shellcheck disable=SC2086
    $vg "$@" >"$T/out" 2>"$T/err"; rc=$?
    if [ $rc = 99 ] || grep -q "^==[0-9]*== " "$T/err"; then
        fail=$((fail + 1)); echo "valgrind: $*: memory errors or leaks" >&2; grep "^==" "$T/err" | head -30 >&2
    elif [ $rc != 0 ] && [ $rc != "${want:-0}" ]; then
        fail=$((fail + 1)); echo "valgrind: $*: exit $rc" >&2; tail -5 "$T/err" >&2
    fi
}
export OPENBLAS_NUM_THREADS=1
# (test_plan plans many models: minutes under memcheck; plans are read and
# written by the fuzz replays and the plan/sim runs below)
for t in tests/test_common tests/test_models tests/test_cluster tests/test_profile tests/test_evq \
         fuzz-replay/fuzz_plan fuzz-replay/fuzz_cluster_json fuzz-replay/fuzz_profile; do
    [ -x "$build/$t" ] && run "$build/$t"
done
MLP=mlp:hidden=32,layers=2
GPT=gpt:hidden=64,layers=2,heads=4,seq=16,vocab=128
run "$bin" model "$GPT" --json
run "$bin" model moe:hidden=64,layers=2,heads=4,seq=16,vocab=128,experts=4,expert_group=16
run "$bin" cluster p3.16xlarge:nodes=2 --json
run "$bin" plan --model "$MLP" --cluster p3.16xlarge:devices_per_node=4 --global-batch 8 --method alpa --jobs 1 \
    -o "$T/p.json"
run "$bin" plan --model "$GPT" --cluster dgx-a100-80g:nodes=1,devices_per_node=2 --global-batch 8 \
    --method megatron --tp 1 --pp 2 --dp 1 --micro-batches 4 --jobs 1 -o "$T/g.json"
run "$bin" sim "$T/p.json" --json
run "$bin" sim "$T/g.json" --no-fold --timeline "$T/tl.json"
run "$bin" profile show traces/cpu-local.json --json
want=2 run "$bin" model gpt:batch=1099511627776,seq=16777216,vocab=67108864
want=2 run "$bin" plan --model "$GPT" --cluster dgx-a100-80g:nodes=0 --global-batch 8
echo "valgrind: $n runs, $fail failed"
[ $fail = 0 ]
