#!/bin/sh
# Command-line tests of `calpa model`.
. "$(dirname "$0")/lib.sh"

expect 0 "" -- --help
expect 2 "unknown subcommand" -- no-such-subcommand
expect 0 "" -- model --help
grep -q "usage: calpa model" "$T/out" && ok || bad "model --help prints no usage"

expect 0 "" -- model gpt-350m --json
json_has params flops_per_iteration layers ops weight_bytes gradient_bytes optimizer_state_bytes flops
jcheck '.params == 355788800 and .layers == 24 and .config.hidden == 1024'
jcheck '.flops.recompute == 0'

expect 0 "" -- model gpt:hidden=1024,layers=4,heads=16,seq=1024,vocab=51200 --global-batch 8 --recompute full --json
jcheck '.global_batch == 8 and .recompute == "full" and .flops.recompute > 0'
jcheck '(.gemm_flops_per_iteration / .flops_megatron_formula - 1) | fabs < 1e-9'

expect 0 "" -- model gpt-2.6b:layers=16 --json
jcheck '.layers == 16 and .config.hidden == 2560'
expect 0 "" -- model moe-380m --recompute selective --json
jcheck '.ops_by_type.moe_dispatch > 0 and .flops.recompute > 0'
expect 0 "" -- model wresnet-250m --global-batch 2 --json
jcheck '.layers == 16 and .ops_by_type.conv2d > 0'
expect 0 "" -- model mlp:layers=2,batch=1024,hidden=128,bias=0,optimizer=sgd --json
jcheck '.params == 32768 and .optimizer_state_bytes == 0 and .ops == 9'
expect 0 "" -- model gpt-350m
grep -q "parameters" "$T/out" && ok || bad "model table lacks parameters"
expect 0 "" -- model --list
grep -qx "megatron-1t" "$T/out" && ok || bad "--list lacks megatron-1t"

printf '{"preset": "gpt-1.3b", "layers": 2}\n' >"$T/m.json"
expect 0 "" -- model "$T/m.json" --json
jcheck '.layers == 2 and .config.hidden == 2048'

# bad input: exit 2 with what is wrong and where
expect 2 "no-such-model" -- model no-such-model
expect 2 "'heads'" -- model gpt:hidden=1000,heads=7,layers=2,seq=128,vocab=100
expect 2 "'seq'" -- model gpt:seq=0
expect 2 "'layers'" -- model gpt:layers=-1
expect 2 "'hidden'" -- model gpt:hidden=1.5
expect 2 "unknown key 'bogus'" -- model gpt-350m:bogus=1
expect 2 "--global-batch" -- model gpt-350m --global-batch 0
expect 2 "--recompute" -- model gpt-350m --recompute sometimes
expect 2 "usage" -- model gpt-350m --no-such-option
expect 2 "missing SPEC" -- model
printf '{"family": "gpt",\n "hidden": }\n' >"$T/bad.json"
expect 2 "line 2" -- model "$T/bad.json"
expect 2 "bad.json" -- model "$T/bad.json"
expect 2 "missing.json" -- model "$T/missing.json"
finish
