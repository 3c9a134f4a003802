#!/bin/sh
# Command-line tests of `calpa cluster`.
. "$(dirname "$0")/lib.sh"

expect 0 "" -- cluster --help
grep -q "usage: calpa cluster" "$T/out" && ok || bad "cluster --help prints no usage"
expect 2 "missing SPEC" -- cluster
expect 2 "exactly one" -- cluster p3.16xlarge dgx-h100
expect 2 "" -- cluster p3.16xlarge --no-such-option

# Presets and their numbers.
expect 0 "" -- cluster p3.16xlarge:nodes=8 --json
json_has name nodes devices_per_node devices device intra inter groups
jcheck '.name == "p3.16xlarge:nodes=8" and .nodes == 8 and .devices_per_node == 8 and .devices == 64'
jcheck '.device | .name == "v100-16g" and .peak_flops_fp16 == 125e12 and .peak_flops_fp32 == 15.7e12 and .peak_flops_bf16 == 0 and .memory_bytes == 17179869184 and .memory_bw_bytes_per_s == 900e9'
jcheck '.intra | .topology == "hybrid_cube_mesh" and .bw_bytes_per_s == 150e9 and .pcie_bw_bytes_per_s == 10e9 and .latency_s > 0 and (.nvlinks | length) == 8'
jcheck '[.intra.nvlinks[] | add] == [6,6,6,6,6,6,6,6]'
jcheck '.inter | .bw_bytes_per_s == 3.125e9 and .latency_s > 0 and .topology == "fat_tree"'
jcheck '(.groups | length) == 1 and .heterogeneous == false'

expect 0 "" -- cluster dgx-a100-80g:nodes=64,inter_bw_Gbps=800,intra_bw_GBps=150 --json
jcheck '.devices == 512 and .inter.bw_bytes_per_s == 100e9 and .intra.bw_bytes_per_s == 150e9 and .intra.topology == "nvswitch"'
expect 0 "" -- cluster dgx-a100-80g --json
jcheck '.device.memory_bw_bytes_per_s == 2039e9 and .device.peak_flops_bf16 == 312e12 and .intra.bw_bytes_per_s == 300e9 and .inter.bw_bytes_per_s == 200e9'
expect 0 "" -- cluster dgx-h100 --json
jcheck '.device.peak_flops_bf16 == 989e12 and .device.memory_bw_bytes_per_s == 3350e9 and .intra.bw_bytes_per_s == 450e9 and .inter.bw_bytes_per_s == 400e9'
expect 0 "" -- cluster dgx-h100:device=a100-40g --json
jcheck '.device.name == "a100-40g" and .device.memory_bw_bytes_per_s == 1555e9'

# Human output: groups, totals, links.
expect 0 "" -- cluster p3.16xlarge:nodes=2
for s in "hybrid_cube_mesh" "16 devices" "NV2" "PCIe" "ring over all 8 GPUs: 150 GB/s" "25 Gb/s" "PFLOP/s"; do
    grep -qF "$s" "$T/out" && ok || bad "human output lacks '$s'"
done

# Rings over device sets: the cube mesh's pairs.
expect 0 "" -- cluster p3.16xlarge --ring 0,3 --json
jcheck '.ring.ring_bw_bytes_per_s == 50e9 and .ring.nodes == 1'
expect 0 "" -- cluster p3.16xlarge --ring 0,5 --json
jcheck '.ring.ring_bw_bytes_per_s == 10e9'
expect 0 "" -- cluster p3.16xlarge:nodes=2 --ring 0,8 --json
jcheck '.ring.ring_bw_bytes_per_s == 3.125e9 and .ring.nodes == 2'
expect 2 "option --ring: '9' is not a device id" -- cluster p3.16xlarge --ring 0,9
expect 2 "appears twice" -- cluster p3.16xlarge --ring 1,1

# JSON output loads back to the same cluster.
"$CALPA" cluster dgx-a100-80g:nodes=4,nics=4 --json >"$T/a.json"
expect 0 "" -- cluster "$T/a.json" --json
cmp -s "$T/a.json" "$T/out" && ok || bad "cluster FILE --json is not a fixed point"
cat >"$T/het.json" <<'JSON'
{"name": "mixed",
 "groups": [{"preset": "dgx-a100-80g", "nodes": 2},
            {"name": "old", "nodes": 4, "devices_per_node": 8, "device": "v100-16g",
             "intra": {"topology": "hybrid_cube_mesh", "bw_bytes_per_s": 150e9, "latency_s": 1e-6},
             "inter": {"bw_bytes_per_s": 3.125e9, "nics": 1, "latency_s": 25e-6}}],
 "inter_group": {"bw_bytes_per_s": 2e9, "latency_s": 5e-5}}
JSON
expect 0 "" -- cluster "$T/het.json" --json
jcheck '.devices == 48 and .nodes == 6 and .heterogeneous == true and (.groups | length) == 2 and .inter_group.bw_bytes_per_s == 2e9'
jcheck '.groups[1].device.name == "v100-16g" and (.groups[1].intra.nvlinks | length) == 8'
cp "$T/out" "$T/het2.json"
expect 0 "" -- cluster "$T/het2.json" --json
cmp -s "$T/het2.json" "$T/out" && ok || bad "heterogeneous round trip differs"
expect 0 "" -- cluster "$T/het.json"
grep -qF "between groups" "$T/out" && ok || bad "human output lacks the inter-group link"
echo '{"preset": "dgx-h100", "nodes": 4}' >"$T/p.json"
expect 0 "" -- cluster "$T/p.json" --json
jcheck '.devices == 32 and .name == "p"'

# Bad input: exit 2, naming the spec or file, the key and the value.
expect 2 "cluster 'nope': unknown cluster preset 'nope'" -- cluster nope
expect 2 "cluster 'p3.16xlarge:gpus=4': unknown key 'gpus'" -- cluster p3.16xlarge:gpus=4
expect 2 "key 'nodes': 0 is out of range" -- cluster p3.16xlarge:nodes=0
expect 2 "key 'nodes': -1 is out of range" -- cluster p3.16xlarge:nodes=-1
expect 2 "key 'nodes': '1.5' is not an integer" -- cluster p3.16xlarge:nodes=1.5
expect 2 "key 'devices_per_node': 0 is out of range" -- cluster dgx-h100:devices_per_node=0
expect 2 "key 'device': 'k80' is not a device preset" -- cluster dgx-h100:device=k80
expect 2 "key 'intra_bw_GBps': 0 must be > 0" -- cluster dgx-h100:intra_bw_GBps=0
expect 2 "exceeds the 8 GPUs" -- cluster p3.16xlarge:devices_per_node=12
printf '{"preset": "dgx-h100",\n "nodes": }\n' >"$T/broken.json"
expect 2 "broken.json: malformed JSON at line 2" -- cluster "$T/broken.json"
echo '{"preset": "dgx-h100", "nodes": 0}' >"$T/zero.json"
expect 2 "zero.json': key 'nodes': 0 is out of range" -- cluster "$T/zero.json"
echo '{"groups": [{"nodes": 1, "devices_per_node": 8, "device": "v100-16g"}]}' >"$T/nointra.json"
expect 2 "nointra.json': groups[0]: missing key 'intra'" -- cluster "$T/nointra.json"
expect 2 "cannot open" -- cluster "$T/absent.json"

finish
