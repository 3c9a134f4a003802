#!/bin/sh
# bench-model.sh BIN - how long building the training graph takes for the
# largest presets (operators per second), so graph building never becomes
# the planner's bottleneck.
bin=${1:-bin/calpa}
for m in gpt-39b megatron-1t moe-70b wresnet-13b; do
    t0=$(date +%s.%N)
    ops=$("$bin" model "$m" --recompute full --json | jq .ops)
    t1=$(date +%s.%N)
    echo "$m $ops" "$t0" "$t1" | awk '{ printf "%-14s %6d ops  %.3f s  %.0f ops/s\n", $1, $2, $4-$3, $2/($4-$3) }'
done
