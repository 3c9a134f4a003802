#!/bin/sh
# alpa-plans.sh BIN [ROW...] - our Alpa plans for the rows of the Alpa paper's
# suites whose plans Alpa published (shared/reference/published.md §1.4), with
# Alpa's own settings per row: its micro-batch count, auto layers, logical
# space, imbalance tolerance, full recompute, small_power_of_two submeshes.
# Prints one markdown row per case (model, GPUs, NB, stages, s/iter, TFLOP/s per
# GPU, planning wall time); README's "Our Alpa plans beside the plans Alpa
# found" table is this output.  Slow: tens of minutes for every row.
bin=${1:-bin/calpa}; shift 2>/dev/null
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
rows="gpt-1.3b:4:128:6 gpt-2.6b:8:128:8 gpt-6.7b:16:64:8 gpt-15b:32:128:16 gpt-39b:64:1024:16
moe-1.3b:4:32:8 moe-2.4b:8:32:8 moe-10b:16:16:8 moe-27b:32:128:8 moe-70b:64:64:8
wresnet-4b:16:32:16 wresnet-6.8b:32:32:16 wresnet-13b:64:38:16"
[ $# -gt 0 ] && rows="$*"
echo "| model | GPUs | NB | ours | s/iter, TFLOP/s per GPU | planning time |"
echo "|---|---|---|---|---|---|"
for r in $rows; do
    IFS=: read -r model g nb layers <<EOF
$r
EOF
    nodes=$(( (g + 7) / 8 )); dpn=$g; [ "$g" -gt 8 ] && dpn=8
    cl="p3.16xlarge:nodes=$nodes,devices_per_node=$dpn"
    batch=1024; space=all; tol=1.0
    case $model in
    wresnet-13b) batch=1520; space=single_node_model_parallel; tol=0.25 ;;
    wresnet-*) batch=1536; space=single_node_model_parallel; tol=0.25 ;;
    esac
    t0=$(date +%s)
    if "$bin" plan --model "$model" --cluster "$cl" --global-batch "$batch" --micro-batches "$nb" \
        --auto-layers "$layers" --logical-space "$space" --imbalance-tolerance "$tol" \
        --recompute full --ilp-time-limit 30 --json >"$T/p" 2>"$T/e"; then
        w=$(( $(date +%s) - t0 ))
        jq -r --arg m "$model" --arg g "$g" --arg w "$w" '"| \($m) | \($g) | \(.micro_batches) | \([.stages[] | "\(.layers[0])-\(.layers[1]) (\(.submesh|join(",")))→(\(.logical_mesh|join(",")))\(if .shard_options.force_batch_dim == 0 then " dp" else "" end)"] | join(", ")) | \(.predicted_iteration_time_s*10|round/10) s, \(.tflops_per_device*10|round/10) | \($w) s |"' "$T/p"
    else
        echo "| $model | $g | $nb | no plan: $(tail -1 "$T/e" | cut -c1-120) | — | $(( $(date +%s) - t0 )) s |"
    fi
done
