#!/bin/sh
# Command-line tests of `calpa sim` and `calpa validate`.
. "$(dirname "$0")/lib.sh"

expect 0 "" -- sim --help
grep -q "usage: calpa sim PLAN" "$T/out" && ok || bad "sim --help prints no usage"
expect 2 "expected one PLAN file" -- sim
expect 2 "$T/none.json" -- sim "$T/none.json"
printf '{"format": "calpa-plan", "version": 1' >"$T/bad.json"
expect 2 "$T/bad.json" -- sim "$T/bad.json"
printf '{"format": "calpa-plan", "version": 99}' >"$T/v99.json"
expect 2 "version" -- sim "$T/v99.json"
expect 2 "option --algo" -- sim "$T/v99.json" --algo nope

# A small Megatron plan (TP 2 x PP 2 x DP 4 on two DGX nodes), simulated.
M=gpt:hidden=512,layers=4,heads=8,seq=256,vocab=4096
expect 0 "" -- plan --model $M --cluster dgx-a100-80g:nodes=2 --global-batch 32 --method megatron \
    --tp 2 --pp 2 --dp 4 --micro-batches 8 --recompute full -o "$T/plan.json"
expect 0 "" -- sim "$T/plan.json" --json --timeline "$T/tl.json"
json_has iteration_time_s samples_per_s tflops_per_device bubble_fraction compute_s exposed_comm_s \
    peak_memory_bytes fits_memory events sim_wall_s
jcheck '.iteration_time_s > 0 and .samples_per_s > 0 and .tflops_per_device > 0'
jcheck '.exposed_comm_s | has("tp") and has("dp") and has("pp") and has("ep")'
jcheck '.fits_memory == true and .devices == 16 and .simulated_devices == 2'
jcheck '.bubble_fraction > 0 and .bubble_fraction < 1 and .compute_s < .iteration_time_s'
jcheck '(.samples_per_s * .iteration_time_s - 32 | fabs) < 1e-6'
# the timeline: X slices in microseconds, processes and threads named, a memory counter
jq -e '[.traceEvents[] | select(.ph == "X") | (.ts >= 0 and .dur >= 0 and (.args.task >= 0))] | all and length > 100' \
    "$T/tl.json" >/dev/null && ok || bad "timeline slices"
jq -e '[.traceEvents[] | select(.ph == "M" and .name == "thread_name") | .args.name] | index("compute") != null' \
    "$T/tl.json" >/dev/null && ok || bad "timeline thread names"
jq -e '[.traceEvents[] | select(.ph == "C" and .name == "memory")] | length > 2' \
    "$T/tl.json" >/dev/null && ok || bad "timeline memory counter"
# no overlapping slices on one track
jq -e '[.traceEvents[] | select(.ph == "X")] | group_by([.pid, .tid]) | map(sort_by(.ts) |
       [range(1; length) as $i | .[$i].ts >= .[$i - 1].ts + .[$i - 1].dur - 1e-6] | all) | all' \
    "$T/tl.json" >/dev/null && ok || bad "timeline slices overlap"
# a plan too large for the memory the simulator may use: exit 1 with the reason
# (estimated from the first program), not the kernel's OOM killer
CALPA_SIM_MEMORY=100000 "$CALPA" sim "$T/plan.json" >"$T/out" 2>"$T/err"; rc=$?
[ $rc = 1 ] && ok || bad "sim over CALPA_SIM_MEMORY: exit $rc, want 1"
grep -q "simulating this plan needs about .* GiB .*more than the 0.00 GiB it may use" "$T/err" && ok \
    || bad "sim over CALPA_SIM_MEMORY: $(head -c 300 "$T/err")"
CALPA_SIM_MEMORY=1e12 "$CALPA" sim "$T/plan.json" >/dev/null 2>&1 && ok || bad "sim under a large CALPA_SIM_MEMORY"
CALPA_SIM_MEMORY=lots "$CALPA" sim "$T/plan.json" >"$T/out" 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "CALPA_SIM_MEMORY='lots': expected a positive number of bytes" "$T/err" && ok \
    || bad "a bad CALPA_SIM_MEMORY: exit $rc, $(head -c 200 "$T/err")"
# determinism: the same plan twice gives the same timeline, byte for byte
expect 0 "" -- sim "$T/plan.json" --timeline "$T/tl2.json"
cmp -s "$T/tl.json" "$T/tl2.json" && ok || bad "two runs gave different timelines"
grep -q "iteration time" "$T/out" && ok || bad "sim table lacks the iteration time"
# every device, unfolded: the same iteration time
expect 0 "" -- sim "$T/plan.json" --json --no-fold
jcheck '.simulated_devices == 16'
t1=$(jq .iteration_time_s "$T/out")
expect 0 "" -- sim "$T/plan.json" --json
t2=$(jq .iteration_time_s "$T/out")
[ "$t1" = "$t2" ] && ok || bad "folded $t2 s != unfolded $t1 s"

# a plan naming an operator the model does not have: exit 2, file and key named
jq '.stages[0].op_strategy["nonexistent"] = ["b-", "R"]' "$T/plan.json" >"$T/badop.json"
expect 2 "stages[0].op_strategy: operator 'nonexistent'" -- sim "$T/badop.json"
# Megatron plans built in place: every schedule runs; GPipe and 1F1B take the same time
for s in gpipe 1f1b interleaved zb-h1; do
    expect 0 "" -- sim --megatron --model $M --cluster dgx-a100-80g:nodes=2 --tp 2 --pp 2 --dp 4 \
        --global-batch 32 --schedule $s --json
    jcheck ".schedule == \"$s\" and .iteration_time_s > 0"
done
expect 2 "needs --model" -- sim --megatron --tp 2
expect 2 "tp x pp x dp = 32 devices" -- sim --megatron --model $M --cluster dgx-a100-80g --tp 4 --pp 2 \
    --dp 4 --global-batch 32

# An Alpa plan (the ILP's per-operator letters): the simulator and the planner's own
# estimate (the same oracle, without contention) agree within 25 %
expect 0 "" -- plan --model gpt:hidden=256,layers=4,heads=8,seq=128,vocab=1024 \
    --cluster dgx-a100-80g:nodes=1,devices_per_node=4 --global-batch 16 --method alpa \
    --micro-batches 4 --ilp-time-limit 5 -o "$T/alpa.json"
pred=$(jq .predicted_iteration_time_s "$T/alpa.json")
expect 0 "" -- sim "$T/alpa.json" --json
jcheck ".iteration_time_s > 0.75 * $pred and .iteration_time_s < 1.25 * $pred"

# validate: the quick rows, both tables
expect 0 "" -- validate --help
expect 2 "option --table" -- validate --table t9
expect 0 "" -- validate --quick --json
json_has rows summary
jcheck '[.rows[] | select(.table == "korthikanti-t5")] | length == 4'
jcheck '[.rows[] | select(.table == "megatron-t1")] | length == 4'
jcheck '[.rows[] | .predicted > 0 and (.error_pct | fabs) < 50] | all'
jcheck '.summary["korthikanti-t5"].avg_abs_error_pct < 10'
finish
