#!/bin/sh
# demo.sh BIN - the main job on a built-in default: the Alpa paper's 8-GPU
# GPT point (GPT-2.6B on one p3.16xlarge node): the model, the cluster, the
# hardware profile, Alpa's plan for it, and that plan simulated with its
# timeline (open results/demo-timeline.json in https://ui.perfetto.dev).
set -e
bin=${1:-bin/calpa}
mkdir -p results
run() { echo "\$ calpa $*"; "$bin" "$@"; echo; }
run model gpt-2.6b --recompute full
run cluster p3.16xlarge
run profile show traces/v100-analytic.json
run plan --model gpt-2.6b --cluster p3.16xlarge --global-batch 1024 --recompute full \
    --micro-batches 128 -o results/demo-plan.json
run sim results/demo-plan.json --timeline results/demo-timeline.json
