#!/bin/sh
# Bounds: every size a user gives is checked.  Per class (zero, negative,
# non-numeric, absurd: products past 64 bits, more devices than the planner
# represents, links slower than the clock can count) the command exits 2
# naming the key and the limit, without overflowing or allocating; large
# legitimate inputs (a 100k-device cluster, a 1000-layer model, a
# 10k-case sweep) work.
. "$(dirname "$0")/lib.sh"
MLP=mlp:hidden=64,layers=2
C1='dgx-a100-80g:nodes=1,devices_per_node=1'

# zero
expect 2 "key 'layers': 0 is out of range [1, 10000]" -- model gpt:layers=0
expect 2 "key 'hidden': 0 is out of range" -- model mlp:hidden=0
expect 2 "key 'nodes': 0 is out of range [1, 1048576]" -- cluster dgx-a100-80g:nodes=0
expect 2 "key 'intra_bw_GBps': 0 must be > 0" -- cluster dgx-a100-80g:intra_bw_GBps=0
expect 2 "option --global-batch: 0 is out of range" -- plan --model "$MLP" --cluster "$C1" --global-batch 0
expect 2 "option --micro-batches: 0 is out of range" -- plan --model "$MLP" --cluster "$C1" --micro-batches 0
expect 2 "option --steps: 0 is out of range" -- exec x.json --steps 0
# negative
expect 2 "key 'seq': -1 is out of range" -- model gpt:seq=-1
expect 2 "key 'nics': -1 is out of range [1, 64]" -- cluster dgx-a100-80g:nics=-1
expect 2 "key 'inter_bw_Gbps': -5 is out of range" -- cluster dgx-a100-80g:inter_bw_Gbps=-5
expect 2 "option --tp: -2 is out of range" -- plan --model "$MLP" --cluster "$C1" --tp -2
# non-numeric
expect 2 "key 'vocab': 'lots' is not an integer" -- model gpt:vocab=lots
expect 2 "key 'dropout': 'nan' is not a number" -- model gpt:dropout=nan
expect 2 "key 'nodes': 'eight' is not an integer" -- cluster dgx-a100-80g:nodes=eight
expect 2 "key 'intra_bw_GBps': 'inf' is not a number" -- cluster dgx-a100-80g:intra_bw_GBps=inf
expect 2 "option --global-batch: 'many' is not an integer" -- model gpt-350m --global-batch many
printf '{"family": "gpt", "layers": "many"}\n' >"$T/m.json"
expect 2 "key 'layers': 'many' is not an integer" -- model "$T/m.json"
printf '{"preset": "dgx-h100", "nodes": "x"}\n' >"$T/c.json"
expect 2 "key 'nodes': 'x' is not an integer" -- cluster "$T/c.json"

# absurd: products past 64 bits
expect 2 "batch x seq x vocab (logits) = 1099511627776 x 16777216 x 67108864 is more than the limit of 2^60 elements" \
    -- model gpt:batch=1099511627776,seq=16777216,vocab=67108864
expect 2 "batch x seq x vocab (logits) = 1099511627776 x 1024 x 51200 is more than the limit" \
    -- model gpt-350m --global-batch 1099511627776
expect 2 "experts x hidden x hidden x ffn_mult (expert weights)" -- model moe:experts=65536,hidden=1048576,heads=16,ffn_mult=1024
expect 2 "576 x channels^2 x width^2" -- model wresnet:channels=65536,width=1024
expect 2 "key 'layers': 100000 is out of range [1, 10000]" -- model gpt:layers=100000
# micro-batches past what schedules and the simulator hold (65536): refused, not allocated
expect 2 "micro-batches: 1073741824 (global batch 1073741824) is more than the limit of 65536" \
    -- plan --model "$MLP" --cluster 'dgx-a100-80g:nodes=1,devices_per_node=2' --global-batch 1073741824 \
       --micro-batches 1073741824 --method megatron --tp 1 --pp 2 --dp 1
expect 2 "micro-batches: 1099511627776 (global batch 1099511627776) is more than the limit" \
    -- plan --model "$MLP" --cluster "$C1" --global-batch 1099511627776 --micro-batch-size 1
# more devices than the planner represents (2^24)
expect 2 "more than 16777216 devices" -- cluster dgx-a100-80g:nodes=1048576,devices_per_node=1024
expect 2 "key 'nodes': 2000000 is out of range [1, 1048576]" -- cluster dgx-a100-80g:nodes=2000000
cat >"$T/two.json" <<'JSON'
{"groups": [{"preset": "dgx-a100-80g", "nodes": 1048576, "devices_per_node": 16},
            {"preset": "dgx-h100", "nodes": 1048576, "devices_per_node": 16}]}
JSON
expect 2 "more than 16777216 devices" -- cluster "$T/two.json"
# links and devices whose times would not fit the simulator's clock
expect 2 "key 'inter.bw_bytes_per_s': 1.25e-292 is outside [1e+06, 1e+16]" -- cluster dgx-a100-80g:inter_bw_Gbps=1e-300
cat >"$T/lat.json" <<'JSON'
{"name": "slow", "nodes": 2, "devices_per_node": 2, "device": "a100-80g",
 "intra": {"topology": "nvswitch", "bw_bytes_per_s": 3e11, "latency_s": 1e9},
 "inter": {"bw_bytes_per_s": 2e11, "nics": 8, "latency_s": 5e-6}}
JSON
expect 2 "key 'intra.latency_s': 1e+09 is outside [0, 1]" -- cluster "$T/lat.json"
sed 's/"device": "a100-80g"/"device": {"name": "x", "peak_flops_fp32": 1e-9, "peak_flops_fp16": 0, "peak_flops_bf16": 0, "memory_bytes": 8e10, "memory_bw_bytes_per_s": 2e12}/' \
    "$T/lat.json" | sed 's/"latency_s": 1e9/"latency_s": 1e-6/' >"$T/dev.json"
expect 2 "key 'device.peak_flops_fp32': 1e-09 is outside [1e+06, 1e+18]" -- cluster "$T/dev.json"
# a profile whose GEMM axes multiply to 8e9 times but that holds none: refused, nothing allocated
axis=$(seq -s, 1 2000)
printf '{"format": "calpa-profile", "version": 1, "device": "x", "source": "measured",
 "peak_flops_fp32": 1e13, "peak_flops_fp16": 1e14, "peak_flops_bf16": 0, "memory_bw_bytes_per_s": 1e12,
 "kernel_launch_s": 0, "op_overhead_s": 0, "collective_bw_efficiency": 1,
 "gemm": [{"dtype": "fp32", "m": [%s], "n": [%s], "k": [%s], "time_s": []}],
 "memory": {"bytes": [1], "time_s": [1]}, "collectives": []}\n' "$axis" "$axis" "$axis" >"$T/prof.json"
expect 2 "time_s' must be a list of 2000 lists" -- profile show "$T/prof.json"
jq '.memory.time_s[0] = 1e300' traces/cpu-local.json >"$T/prof2.json"
expect 2 "key 'memory.time_s[0]': 1e+300 is more than 1e+06" -- profile show "$T/prof2.json"
jq '.peak_flops_fp32 = 1e-9' traces/cpu-local.json >"$T/prof3.json"
expect 2 "key 'peak_flops_fp32': 1e-09 is outside [1e+06, 1e+18]" -- profile show "$T/prof3.json"

# a plan file edited by hand: its model and stages are checked like a spec
"$CALPA" plan --model "$MLP" --cluster 'dgx-a100-80g:nodes=1,devices_per_node=2' --global-batch 8 \
    --method data --micro-batches 2 -o "$T/p.json" >/dev/null 2>"$T/err" || bad "plan: $(cat "$T/err")"
jq '.model.hidden = 0' "$T/p.json" >"$T/p1.json"
expect 2 "key 'hidden': 0 is out of range" -- sim "$T/p1.json"
jq '.model.batch = 1099511627776 | .model.hidden = 16777216' "$T/p.json" >"$T/p2.json"
expect 2 "is more than the limit of 2^60 elements" -- sim "$T/p2.json"
jq '.stages[0].devices = [1, 1]' "$T/p.json" >"$T/p3.json"
expect 2 "device 1 is listed twice" -- sim "$T/p3.json"
jq '.stages[0].layers = [0, 7]' "$T/p.json" >"$T/p4.json"
expect 2 "stages[0].layers': [0, 7] is not a layer range of the model's 2 layers" -- sim "$T/p4.json"
jq '.global_batch = 9' "$T/p.json" >"$T/p5.json"
expect 2 "key 'global_batch': 9 is not micro_batches x micro_batch_size" -- sim "$T/p5.json"
sed 's/"compute_time_s":[^,]*,/"compute_time_s": 1e999,/' "$T/p.json" >"$T/p6.json"
expect 2 "compute_time_s': inf is not a finite number" -- sim "$T/p6.json"

# large legitimate inputs
expect 0 "" -- cluster dgx-a100-80g:nodes=12500
grep -q "12500 nodes, 100000 devices" "$T/out" && ok || bad "100k-device cluster: $(head -1 "$T/out")"
expect 0 "" -- cluster dgx-a100-80g:nodes=12500 --json
cp "$T/out" "$T/100k.json"
expect 0 "" -- cluster "$T/100k.json" --json
cmp -s "$T/100k.json" "$T/out" && ok || bad "the 100k-device cluster does not read back equal"
# ... planned and simulated: a data-parallel GPT over all 100k devices (the
# simulator prices a collective of more than 4096 ranks in closed form)
expect 0 "" -- plan --model gpt:hidden=64,layers=2,heads=4,seq=16,vocab=128 --cluster dgx-a100-80g:nodes=12500 \
    --global-batch 100000 --method data -o "$T/p100k.json"
expect 0 "" -- sim "$T/p100k.json" --json
jcheck '.devices == 100000 and .iteration_time_s > 0'
expect 0 "" -- model gpt:layers=1000,hidden=256,heads=4 --json
jcheck '.layers == 1000'
awk 'BEGIN { printf "{\"name\": \"big\", \"methods\": [\"data\"], \"cluster\": \"dgx-a100-80g\", \"cases\": [\n"
             for (i = 1; i <= 10000; i++)
                 printf "%s{\"model\": \"mlp:hidden=%d,layers=2\", \"devices\": %d}\n", (i > 1 ? "," : ""), i, 2 ^ (i % 4)
             print "]}" }' >"$T/big.json"
expect 0 "" -- sweep "$T/big.json" --dry-run
grep -q "suite big: 10000 cases, 10000 jobs" "$T/out" && ok || bad "10k-case suite: $(head -1 "$T/out")"
[ "$(wc -l <"$T/out")" = 10001 ] && ok || bad "10k-case suite: $(wc -l <"$T/out") lines"
finish
