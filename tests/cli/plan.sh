#!/bin/sh
# Command-line tests of `calpa plan` and `calpa plan show`: JSON keys, plan
# files that read back identically, exit codes, no file on failure.
. "$(dirname "$0")/lib.sh"

M="gpt:hidden=128,layers=6,heads=8,seq=64,vocab=512"
C="p3.16xlarge:nodes=1,devices_per_node=4"

expect 0 "" -- plan --help
grep -q "usage: calpa plan" "$T/out" && ok || bad "plan --help prints no usage"

# Bad usage: exit 2.
expect 2 "--model and --cluster are required" -- plan --cluster "$C"
expect 2 "option --method" -- plan --model "$M" --cluster "$C" --method best
expect 2 "option --schedule" -- plan --model "$M" --cluster "$C" --schedule pipedream
expect 2 "option --recompute" -- plan --model "$M" --cluster "$C" --recompute some
expect 2 "exclude each other" -- plan --model "$M" --cluster "$C" --micro-batches 4 --micro-batch-size 4
expect 2 "option --cross-stage-comm" -- plan --model "$M" --cluster "$C" --cross-stage-comm maybe
expect 2 "" -- plan --model "$M" --cluster "$C" --no-such-option
expect 2 "unexpected argument" -- plan --model "$M" --cluster "$C" extra
expect 2 "only --method megatron" -- plan --model "$M" --cluster "$C" --global-batch 16 --tp 2
expect 2 "" -- plan --model no-such-model --cluster "$C"
expect 2 "" -- plan --model "$M" --cluster no-such-cluster

# Every method: JSON keys, a plan file, and `plan show --json` of it equals it.
for m in alpa megatron data zero2 zero3 ppdp inter-only intra-only equal-layer equal-operator; do
    extra=""; [ "$m" = alpa ] && extra="--micro-batches 4"
    expect 0 "" -- plan --model "$M" --cluster "$C" --global-batch 16 --method $m $extra -o "$T/$m.json" --json
    json_has method micro_batches stages predicted_iteration_time_s plan_time_s fits_memory planner
    jcheck ".method == \"$m\" and .fits_memory == true and (.stages | length) >= 1 and .format == \"calpa-plan\" and .version == 1"
    jcheck '[.stages[] | (.layers | length) == 2 and (.submesh | length) == 2 and (.logical_mesh | length) == 2 and (.devices | length) == .submesh[0] * .submesh[1]] | all'
    jcheck '.stages[0].layers[0] == 0 and .stages[-1].layers[1] == 5'
    expect 0 "" -- plan show "$T/$m.json" --json
    jq -S 'del(.planner)' "$T/$m.json" >"$T/a" 2>/dev/null
    jq -S . "$T/out" >"$T/b" 2>/dev/null
    cmp -s "$T/a" "$T/b" && ok || bad "plan show --json of the $m plan differs from the file"
done
expect 0 "" -- plan --model "moe:hidden=128,layers=4,heads=8,seq=64,vocab=512,experts=4,expert_group=128" --cluster "$C" --global-batch 16 --method deepspeed-moe --json
jcheck '.method == "deepspeed-moe" and (.stages | length) == 1'

# Human output of plan show.
expect 0 "" -- plan show "$T/megatron.json"
for s in "plan            megatron" "stage layers" "iteration" "memory          fits"; do
    grep -qF "$s" "$T/out" && ok || bad "plan show lacks '$s'"
done
expect 0 "" -- plan show "$T/alpa.json" --ops
grep -q "operators (letter per mesh dim" "$T/out" && ok || bad "plan show --ops lists no operators"

# Megatron as given: 2 stages of (1,2), TP on mesh dim 1.
expect 0 "" -- plan --model "$M" --cluster "$C" --global-batch 16 --method megatron --tp 2 --pp 2 --dp 1 --micro-batch-size 4 --recompute full --schedule 1f1b --json
jcheck '.micro_batches == 4 and (.stages | length) == 2 and .stages[0].submesh == [1,2] and .stages[0].logical_mesh == [1,2] and .recompute == "full" and .schedule == "1f1b"'
jcheck '.stages[0].devices == [0,1] and .stages[1].devices == [2,3]'
# Interleaved: 4 chunks on 2 meshes.
expect 0 "" -- plan --model "$M" --cluster "$C" --global-batch 16 --method megatron --tp 2 --pp 2 --dp 1 --micro-batches 4 --schedule interleaved --virtual-stages 2 --json
jcheck '(.stages | length) == 4 and .meshes == 2 and .virtual_stages == 2 and .stages[2].devices == .stages[0].devices'
# Schedules and cross-stage communication change the prediction, not the keys.
expect 0 "" -- plan --model "$M" --cluster "$C" --global-batch 16 --method megatron --tp 1 --pp 4 --dp 1 --micro-batches 4 --schedule gpipe --cross-stage-comm on --json
jcheck '.schedule == "gpipe" and .cross_stage_comm == true and ([.stages[] | .p2p_time_s > 0] | any)'
# Megatron's letters (no ILP): dp 1 is tensor parallel on every stage.
expect 0 "" -- plan --model "$M" --cluster "$C" --global-batch 16 --method megatron --tp 2 --pp 2 --dp 1 --micro-batches 4 --json
jcheck '.note | test("no ILP")'
jcheck '[.stages[] | .ilp_status == "none" and ([.op_strategy[] | .[0][0:1] == "-" and (.[0][1:2] | test("[nefvs-]"))] | all) and ([.op_strategy[] | .[0][1:2] == "f"] | any)] | all'
# Run settings: in the file, in plan show, bad values refused.
expect 0 "" -- plan --model "$M" --cluster "$C" --global-batch 16 --method megatron --tp 2 --pp 1 --dp 2 --micro-batches 2 --seq-parallel --zero 1 --dp-overlap --bucket-mb 4 --no-scatter-gather -o "$T/settings.json" --json
jcheck '.seq_parallel == true and .zero == 1 and .dp_overlap == true and .bucket_bytes == 4194304 and .scatter_gather == false'
jcheck '[.stages[].op_strategy[] | .[0][1:2] == "s"] | any'
expect 0 "" -- plan show "$T/settings.json"
grep -qF "run settings    sequence parallel on, dp overlap on (buckets 4.00 MiB), ZeRO 1, scatter/gather off" "$T/out" && ok || bad "plan show lacks the run settings"
expect 0 "" -- plan --model "$M" --cluster "$C" --global-batch 16 --method data --json
jcheck '.seq_parallel == false and .zero == 0 and .dp_overlap == false and .scatter_gather == true'
expect 2 "option --zero" -- plan --model "$M" --cluster "$C" --global-batch 16 --method megatron --zero 4
expect 2 "only --method megatron" -- plan --model "$M" --cluster "$C" --global-batch 16 --method data --seq-parallel

# Impossible requests: exit 1, a reason, no plan file.
rm -f "$T/no.json"
expect 1 "does not divide the 8 attention heads" -- plan --model "$M" --cluster "$C" --global-batch 16 --method megatron --tp 3 -o "$T/no.json"
[ ! -e "$T/no.json" ] && ok || bad "a failed plan wrote its file"
expect 1 "= 8 devices" -- plan --model "$M" --cluster "$C" --global-batch 16 --method megatron --tp 2 --pp 2 --dp 2 -o "$T/no.json"
expect 1 "fits" -- plan --model gpt-2.6b --cluster "$C" --global-batch 16 --method data -o "$T/no.json"
expect 1 "not divisible" -- plan --model "$M" --cluster "$C" --global-batch 15 --method megatron --micro-batches 4 -o "$T/no.json"
expect 1 "not a mixture-of-experts" -- plan --model "$M" --cluster "$C" --global-batch 16 --method deepspeed-moe -o "$T/no.json"
[ ! -e "$T/no.json" ] && ok || bad "a failed plan wrote its file"

# plan show: bad files.
expect 2 "give exactly one PLAN file" -- plan show
echo '{"format": "calpa-profile", "version": 1}' >"$T/bad.json"
expect 2 "key 'format'" -- plan show "$T/bad.json"
echo '{' >"$T/bad2.json"
expect 2 "" -- plan show "$T/bad2.json"
expect 2 "" -- plan show "$T/missing.json"
# a fixed Megatron configuration that does not fit: exit 1, nothing written,
# unless --allow-oom
rm -f "$T/oom.json"
expect 1 "does not fit" -- plan --model gpt-39b --cluster p3.16xlarge:nodes=1 --global-batch 64 --method megatron --tp 8 --pp 1 --dp 1 --micro-batch-size 1 -o "$T/oom.json"
[ ! -e "$T/oom.json" ] && ok || bad "an OOM plan was written"
expect 0 "" -- plan --model gpt-39b --cluster p3.16xlarge:nodes=1 --global-batch 64 --method megatron --tp 8 --pp 1 --dp 1 --micro-batch-size 1 -o "$T/oom.json" --allow-oom --json
jcheck '.fits_memory == false'
[ -s "$T/oom.json" ] && ok || bad "--allow-oom wrote nothing"
# the fastest micro-batch count's plan, built whole, overflows (individual stage
# costs add per-layer memory): the next count that fits is built instead
expect 0 "does not fit; trying the next" -- plan --model moe-380m --cluster p3.16xlarge:nodes=1,devices_per_node=1 \
    --global-batch 1024 --recompute full --method alpa --stage-cost individual --verbose --json
jcheck '.fits_memory == true and .micro_batches == 32'
finish
