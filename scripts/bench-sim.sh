#!/bin/sh
# bench-sim.sh BIN - simulator speed: GPT-3 175B on 1024 A100s (TP 8, PP 8,
# DP 16, 1F1B, 64 micro-batches, full recompute), a 16384-GPU plan (GPT-1T,
# TP 8, PP 64, DP 32, 128 micro-batches), and the validate tables.  Prints
# wall time and events per second; asserts nothing.
set -e
bin=${1:-bin/calpa}
run() {
    label=$1; shift
    start=$(date +%s.%N)
    out=$("$bin" sim --megatron "$@" --json)
    end=$(date +%s.%N)
    echo "$out" | jq -r --arg l "$label" --arg w "$(echo "$end - $start" | bc)" \
        '"\($l): iteration \(.iteration_time_s | . * 1000 | round / 1000) s, \(.tflops_per_device | round) TFLOP/s per GPU, \(.devices) GPUs (\(.simulated_devices) simulated), \(.events) events, \(.tasks) tasks, sim \(.sim_wall_s * 1000 | round) ms (\(.events_per_s | round) events/s), process \($w | tonumber * 1000 | round) ms"'
}
run "gpt-175b 1024 GPUs tp8 pp8 dp16 1f1b m=64" --model gpt-175b --cluster dgx-a100-80g:nodes=128 \
    --tp 8 --pp 8 --dp 16 --global-batch 1024 --recompute full
run "gpt-175b 1024 GPUs interleaved v=2 seq-par" --model gpt-175b --cluster dgx-a100-80g:nodes=128 \
    --tp 8 --pp 8 --dp 16 --global-batch 1024 --recompute selective --seq-parallel \
    --schedule interleaved --virtual-stages 2
run "gpt-1t 16384 GPUs tp8 pp64 dp32 1f1b m=128" --model gpt-1t --cluster dgx-a100-80g:nodes=2048 \
    --tp 8 --pp 64 --dp 32 --global-batch 4096 --recompute full
start=$(date +%s.%N)
"$bin" validate >/dev/null
end=$(date +%s.%N)
echo "validate (14 rows, 8 to 3072 GPUs): $(echo "$end - $start" | bc) s"
