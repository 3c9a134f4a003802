#!/bin/sh
# bench-plan.sh BIN [suites] - how fast the planner is (measured, never
# asserted; the CPU seconds beside the wall time are the stable number on a shared
# machine): `calpa plan --method alpa` for GPT-39B on 8 p3.16xlarge nodes
# (64 V100s, global batch 1024), with its breakdown (clustering, intra-op
# problems and their time, DP, building the plan), with the micro-batch count
# searched and fixed at Alpa's 1024; the Megatron grid search on the same
# case in configurations per second.  With "suites", also the Alpa paper's
# GPT, MoE and Wide-ResNet suites on 1..64 GPUs under every method (slow:
# tens of minutes), as a table of predicted iteration times; GPUS=N (with
# "suites") runs only the suites' rows on N GPUs and skips the GPT-39B runs.
bin=${1:-bin/calpa}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
C8="p3.16xlarge:nodes=8"

run() { # run LABEL ARGS...: one plan, its wall time and the planner's breakdown
    label=$1; shift
    t0=$(date +%s.%N)
    echo "? ?" >"$T/cpu"
    tm=""; [ -x /usr/bin/time ] && tm="/usr/bin/time -f %U_%S -o $T/cpu"
    if $tm "$bin" plan "$@" --json >"$T/out" 2>"$T/err"; then
        t1=$(date +%s.%N)
        cpu=$(tr '_' ' ' <"$T/cpu" | awk '{ if ($1 == "?") print "?"; else printf "%.1f", $1 + $2 }')
        jq -r --arg l "$label" --arg w "$(echo "$t0 $t1" | awk '{printf "%.2f", $2-$1}')" --arg c "$cpu" '
          "\($l): wall \($w) s (CPU \($c) s, all processes; wall depends on the load); planner \(.planner.total_s*100|round/100) s = clustering \(.planner.clustering_s*1000|round/1000) s + stage costs \(.planner.stage_costs_s*100|round/100) s + DP \(.planner.dp_s*1000|round/1000) s + plan \(.planner.build_s*100|round/100) s",
          "   intra-op problems solved \(.planner.intra_op_problems) in \(.planner.intra_op_solve_s*100|round/100) s; ranges folded \(.planner.ranges_folded); cache hits \(.planner.cache_hits); stage-cost entries \(.planner.stage_cost_entries); micro-batch choices \(.planner.micro_batch_choices); configurations \(.planner.configurations)",
          "   plan: \(.micro_batches) micro-batches, \(.stages|length) stages \([.stages[] | "\(.layers[0])-\(.layers[1]):(\(.submesh|join(",")))->(\(.logical_mesh|join(",")))\(if .shard_options.force_batch_dim == 0 then "dp" else "" end)"] | join(" ")); predicted \(.predicted_iteration_time_s*1000|round/1000) s/iter, \(.tflops_per_device*10|round/10) TFLOP/s per GPU"' "$T/out"
        jq -r --arg l "$label" '"   configurations per second: \(.planner.configurations / .planner.total_s * 10 | round / 10)"' "$T/out" | grep -v "second: 0$" || true
    else
        echo "$label: exit $? ($(tail -1 "$T/err"))"
    fi
}

if [ -z "${GPUS:-}" ]; then
echo "GPT-39B, $C8 (64 GPUs), global batch 1024, recompute full; Alpa reports ~2393 s for this case"
run "alpa, micro-batches searched" --model gpt-39b --cluster "$C8" --global-batch 1024 --method alpa --recompute full
run "alpa, micro-batches 1024 (Alpa's)" --model gpt-39b --cluster "$C8" --global-batch 1024 --method alpa --recompute full --micro-batches 1024
run "alpa, 1024, cross-stage comm on" --model gpt-39b --cluster "$C8" --global-batch 1024 --method alpa --recompute full --micro-batches 1024 --cross-stage-comm on
run "alpa, 1024, gpipe" --model gpt-39b --cluster "$C8" --global-batch 1024 --method alpa --recompute full --micro-batches 1024 --schedule gpipe
run "alpa, 1024, zb-h1" --model gpt-39b --cluster "$C8" --global-batch 1024 --method alpa --recompute full --micro-batches 1024 --schedule zb-h1
run "megatron grid search" --model gpt-39b --cluster "$C8" --global-batch 1024 --method megatron --recompute full
run "megatron (1,4,16) as Alpa's manual suite" --model gpt-39b --cluster "$C8" --global-batch 1024 --method megatron --recompute full --tp 4 --pp 16 --dp 1 --micro-batches 1024

fi
[ "${2:-}" = suites ] || exit 0

# The Alpa paper's suites (published.md §1.2): model per GPU count, every method.
echo
echo "suite   gpus model          method          iter_s   TFLOP/s  stages (layers:submesh->logical)"
suite() { # suite NAME GPUS MODEL BATCH RECOMPUTE
    name=$1; g=$2; model=$3; batch=$4; rc=$5
    [ -n "${GPUS:-}" ] && [ "$g" != "$GPUS" ] && return
    nodes=$(( (g + 7) / 8 )); dpn=$g; [ "$g" -gt 8 ] && dpn=8
    cl="p3.16xlarge:nodes=$nodes,devices_per_node=$dpn"
    for m in alpa megatron data zero2 zero3 ppdp deepspeed-moe inter-only intra-only equal-layer equal-operator; do
        if "$bin" plan --model "$model" --cluster "$cl" --global-batch "$batch" --method $m --recompute "$rc" --ilp-time-limit 30 --json >"$T/s" 2>"$T/e"; then
            jq -r --arg n "$name" --arg g "$g" --arg m "$model" --arg me "$m" '"\($n)\t\($g)\t\($m)\t\($me)\t\(.predicted_iteration_time_s*1000|round/1000)\t\(.tflops_per_device*10|round/10)\t\(.micro_batches)mb \([.stages[] | "\(.layers[0])-\(.layers[1]):(\(.submesh|join(",")))->(\(.logical_mesh|join(",")))\(if .shard_options.force_batch_dim == 0 then "dp" else "" end)"] | join(" "))"' "$T/s"
        else
            printf '%s\t%s\t%s\t%s\tno plan: %s\n' "$name" "$g" "$model" "$m" "$(tail -1 "$T/e" | cut -c1-110)"
        fi
    done
}
suite gpt 1 gpt-350m 1024 full
suite gpt 2 gpt-760m 1024 full
suite gpt 4 gpt-1.3b 1024 full
suite gpt 8 gpt-2.6b 1024 full
suite gpt 16 gpt-6.7b 1024 full
suite gpt 32 gpt-15b 1024 full
suite gpt 64 gpt-39b 1024 full
suite moe 1 moe-380m 1024 full
suite moe 2 moe-690m 1024 full
suite moe 4 moe-1.3b 1024 full
suite moe 8 moe-2.4b 1024 full
suite moe 16 moe-10b 1024 full
suite moe 32 moe-27b 1024 full
suite moe 64 moe-70b 1024 full
suite wresnet 1 wresnet-250m 1536 full
suite wresnet 2 wresnet-500m 1536 full
suite wresnet 4 wresnet-1b 1536 full
suite wresnet 8 wresnet-2b 1536 full
suite wresnet 16 wresnet-4b 1536 full
suite wresnet 32 wresnet-6.8b 1536 full
suite wresnet 64 wresnet-13b 1536 full
