#!/bin/sh
# Command-line tests of `calpa calibrate` on the CPU backend (a tiny GPT on
# one rank: exec --json --timeline, then the fit: the error it minimises must
# not grow, the calibrated profile must load), `profile import-nccl-tests` on
# the sample logs of tests/data, and the CUDA backend's selection errors on
# a machine without a GPU (or without the CUDA backend built).
. "$(dirname "$0")/lib.sh"
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0" \
       LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$(cd "$(dirname "$0")/.." && pwd)/lsan-mpi.supp"
GPT=gpt:hidden=64,layers=2,heads=4,seq=16,vocab=128,dropout=0,dtype=fp32,optimizer=sgd
C1='dgx-a100-80g:nodes=1,devices_per_node=1'
P=traces/cpu-local.json

"$CALPA" plan --model "$GPT" --cluster "$C1" --global-batch 8 --method data --micro-batches 2 \
    --profile "$P" -o "$T/p.json" >/dev/null 2>"$T/err" || bad "plan: $(head -c 300 "$T/err")"
"$CALPA" exec "$T/p.json" --json --steps 2 --timeline "$T/tl.json" >"$T/run.json" 2>"$T/err" \
    || bad "exec --timeline: $(head -c 300 "$T/err")"
cp "$T/run.json" "$T/out"
jcheck '.timeline == "'"$T/tl.json"'"'

# with the timeline: every task a sample
expect 0 "" -- calibrate --profile "$P" --measured "$T/run.json" -o "$T/cal.json" --json
json_has profile output samples parameters kinds kind_rms_error_s iterations
jcheck '.samples > 50 and (.kinds | length) > 5'
jcheck '.kind_rms_error_s.after <= .kind_rms_error_s.before'
jcheck '.parameters.after.gemm_scale > 0 and .parameters.after.op_overhead_s >= 0'
jcheck '(.iterations | length) == 1 and .iterations[0].measured_s > 0 and .iterations[0].after_s > 0'
expect 0 "" -- profile show "$T/cal.json" --json
jcheck '.source == "measured" and (.notes | map(test("calibrated by calpa calibrate")) | any)'
# the table form names the parameters and the iteration
expect 0 "" -- calibrate --profile "$P" --measured "$T/run.json" -o "$T/cal2.json"
grep -q "^GEMM time scale" "$T/out" && grep -q "^RMS over op kinds" "$T/out" && ok || bad "calibrate table: $(head -c 300 "$T/out")"
# without a timeline: rank 0's per-kind totals
jq 'del(.timeline)' "$T/run.json" >"$T/run-nt.json"
expect 0 "" -- calibrate --profile "$P" --measured "$T/run-nt.json" --measured "$T/run.json" -o "$T/cal3.json" --json
jcheck '.kind_rms_error_s.after <= .kind_rms_error_s.before and (.iterations | length) == 2'

# a profile with measured operator kinds: each kind's table gets its own scale
"$CALPA" profile --backend cpu --quick -o "$T/cpuq.json" >/dev/null 2>"$T/err" || bad "profile --quick: $(head -c 300 "$T/err")"
expect 0 "" -- calibrate --profile "$T/cpuq.json" --measured "$T/run.json" -o "$T/cal4.json" --json
jcheck '(.parameters.after.operator_table_scales | length) > 3 and .kind_rms_error_s.after <= .kind_rms_error_s.before'

# bad usage and input: exit 2 with what and where
expect 2 "missing --profile" -- calibrate --measured "$T/run.json" -o "$T/x.json"
expect 2 "give at least one --measured" -- calibrate --profile "$P" -o "$T/x.json"
expect 2 "cannot open" -- calibrate --profile "$P" --measured "$T/none.json" -o "$T/x.json"
expect 2 "not a 'calpa exec --json' report" -- calibrate --profile "$P" --measured "$P" -o "$T/x.json"
jq '.plan = "'"$T"'/none-plan.json"' "$T/run.json" >"$T/run-bad.json"
expect 2 "none-plan.json" -- calibrate --profile "$P" --measured "$T/run-bad.json" -o "$T/x.json"
[ ! -e "$T/x.json" ] && ok || bad "calibrate wrote a profile on bad input"

# nccl-tests logs into a profile
D=tests/data
expect 0 "" -- profile import-nccl-tests $D/nccl-all_reduce_perf-8gpu.log $D/nccl-allgather-2node.log \
    $D/nccl-multi.log --base traces/h100-analytic.json -o "$T/imp.json" --json
jcheck '(.tables | length) == 5 and (.tables | map(.kind)) == ["all_reduce","all_gather","reduce_scatter","all_to_all","sendrecv"]'
jcheck '.tables[1].scope == "inter_node" and .tables[1].group_size == 16 and .tables[0].samples == 28'
expect 0 "" -- profile show "$T/imp.json" --json
jcheck '[.collectives[] | select(.kind == "all_reduce" and .group_size == 8 and .scope == "intra_node") | .form] == ["samples"]'
expect 0 "" -- profile import-nccl-tests $D/nccl-multi.log -o "$T/imp.json"   # into itself
expect 2 "nccl-bad-row.log:15: out-of-place time '12.0O' is not a number" -- \
    profile import-nccl-tests $D/nccl-bad-row.log --base "$P" -o "$T/y.json"
expect 2 "nccl-bad-wrong.log:21: 3 wrong elements" -- profile import-nccl-tests $D/nccl-bad-wrong.log --base "$P" -o "$T/y.json"
expect 2 "cannot tell which collective" -- profile import-nccl-tests $D/nccl-unnamed.log --base "$P" -o "$T/y.json"
expect 2 "does not exist yet: give --base" -- profile import-nccl-tests $D/nccl-multi.log -o "$T/y.json"
expect 2 "" -- profile import-nccl-tests -o "$T/y.json"
[ ! -e "$T/y.json" ] && ok || bad "import wrote a profile on bad input"

# the CUDA backend: a bad value is usage (2); no GPU or no CUDA build is a failed run (1)
expect 2 "not one of cpu|cuda" -- exec "$T/p.json" --backend tpu
expect 2 "not one of cpu|cuda" -- profile --backend tpu -o "$T/z.json"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    expect 1 "--backend cuda: " -- exec "$T/p.json" --backend cuda
    grep -Eq "no usable CUDA GPU|built without the CUDA backend" "$T/err" && ok || bad "exec --backend cuda: reason: $(cat "$T/err")"
    expect 1 "profile --backend cuda: " -- profile --backend cuda -o "$T/z.json"
    [ ! -e "$T/z.json" ] && ok || bad "profile --backend cuda wrote a profile without a GPU"
    # the GPU check script says why it cannot run, and runs nothing
    OUT="$T/gpu" sh scripts/gpu-check.sh >"$T/out" 2>"$T/err"; rc=$?
    [ $rc = 1 ] && grep -q "no NVIDIA GPU" "$T/err" && ok || bad "gpu-check.sh without a GPU: exit $rc: $(head -c 300 "$T/err")"
fi
finish
