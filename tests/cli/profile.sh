#!/bin/sh
# Command-line tests of `calpa profile`.
. "$(dirname "$0")/lib.sh"

expect 0 "" -- profile --help
grep -q "usage: calpa profile show" "$T/out" && ok || bad "profile --help prints no usage"
expect 0 "" -- profile show --help
grep -q "usage: calpa profile show FILE" "$T/out" && ok || bad "profile show --help"
expect 0 "" -- profile analytic --help
grep -q "usage: calpa profile analytic" "$T/out" && ok || bad "profile analytic --help"
expect 2 "missing SUBCOMMAND" -- profile
expect 2 "unknown subcommand 'list'" -- profile list
grep -q "usage: calpa profile" "$T/err" && ok || bad "unknown sub-subcommand prints no usage"
expect 2 "missing FILE" -- profile show
expect 2 "give --device or --cluster" -- profile analytic
expect 2 "has no reference cluster" -- profile analytic --device k80
expect 2 "differs from the device" -- profile analytic --device h100-80g --cluster p3.16xlarge

# The shipped analytic traces are what the generator makes, byte for byte.
for d in v100:v100-16g a100:a100-80g h100:h100-80g; do
    f=traces/${d%%:*}-analytic.json
    expect 0 "" -- profile analytic --device "${d#*:}" -o "$T/gen.json"
    cmp -s "$f" "$T/gen.json" && ok || bad "$f differs from 'calpa profile analytic --device ${d#*:}'"
done
expect 0 "" -- profile analytic --cluster dgx-a100-80g
jcheck '.format == "calpa-profile" and .version == 1 and .source == "analytic" and .device == "a100-80g"'

# show: JSON keys and numbers.
expect 0 "" -- profile show traces/a100-analytic.json --json
json_has file device source reference_cluster notes peak_flops_fp32 peak_flops_fp16 peak_flops_bf16 gemm memory collectives
jcheck '.device == "a100-80g" and .source == "analytic" and .peak_flops_bf16 == 312e12'
jcheck '[.gemm[] | select(.dtype == "bf16")] | length == 3'
jcheck '[.gemm[] | select(.dtype == "bf16" and .m == 8192) | .flops_per_s] | .[0] > 250e12 and .[0] < 268e12'
jcheck '[.gemm[] | select(.dtype == "bf16") | .flops_per_s] | . == sort'
jcheck '.memory | length == 3 and (.[2].bw_bytes_per_s > 1.8e12)'
jcheck '[.collectives[] | select(.kind == "all_reduce" and .group_size == 8 and .scope == "intra_node")] | length == 1'
jcheck '[.collectives[] | select(.kind == "all_reduce" and .group_size == 8) | .points[2].busbw_bytes_per_s] | .[0] > 230e9 and .[0] < 240e9'
jcheck '[.collectives[].points[] | .busbw_bytes_per_s <= .algbw_bytes_per_s * 2] | all'
expect 0 "" -- profile show traces/v100-analytic.json --json
jcheck '.peak_flops_bf16 == 0 and ([.gemm[] | select(.dtype == "bf16")] | length == 0)'
jcheck '[.collectives[] | select(.scope == "intra_node") | .group_size] | unique == [8]'
expect 0 "" -- profile show traces/h100-analytic.json
for s in "device h100-80g" "source analytic" "GEMM" "TFLOP/s" "memory-bound" "all_reduce" "busbw"; do
    grep -qF "$s" "$T/out" && ok || bad "profile show lacks '$s'"
done

# Bad profiles: exit 2 naming the file, the key and the value.
jq '.version = 2' traces/a100-analytic.json >"$T/v2.json"
expect 2 "v2.json: key 'version': 2 is not supported" -- profile show "$T/v2.json"
jq 'del(.memory)' traces/a100-analytic.json >"$T/nomem.json"
expect 2 "nomem.json: missing key 'memory'" -- profile show "$T/nomem.json"
jq '.gemm[1].time_s[0][0][3] = -0.5' traces/a100-analytic.json >"$T/neg.json"
expect 2 "neg.json: key 'gemm[1].time_s[0][0][3]': -0.5 must be > 0" -- profile show "$T/neg.json"
jq '.collectives[0].kind = "gossip"' traces/a100-analytic.json >"$T/kind.json"
expect 2 "kind.json: key 'collectives[0].kind': 'gossip' is not one of" -- profile show "$T/kind.json"
printf '{"format": "calpa-profile",\n "version": 1,,\n}\n' >"$T/broken.json"
expect 2 "broken.json: malformed JSON at line 2" -- profile show "$T/broken.json"
expect 2 "cannot open" -- profile show "$T/absent.json"

finish
