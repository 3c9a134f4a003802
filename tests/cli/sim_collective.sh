#!/bin/sh
# Command-line tests of `calpa sim-collective`.
. "$(dirname "$0")/lib.sh"

expect 0 "" -- sim-collective --help
grep -q "usage: calpa sim-collective" "$T/out" && ok || bad "--help prints no usage"

# nccl-tests' table: header lines, then one row per size with both blocks
expect 0 "" -- sim-collective --op all_reduce --cluster dgx-a100-80g --devices 8 -b 8 -e 128M -f 2
grep -q "^#       size         count      type   redop    root     time   algbw   busbw #wrong" "$T/out" \
    && ok || bad "table lacks the nccl-tests column header"
rows=$(grep -vc '^#' "$T/out")
[ "$rows" = 25 ] && ok || bad "8 B .. 128 MiB by 2 should give 25 rows, got $rows"
grep -q "^   134217728      33554432     float     sum      -1 " "$T/out" && ok || bad "last row is not 128 MiB float sum"
grep -q "Avg bus bandwidth" "$T/out" && ok || bad "no Avg bus bandwidth footer"

# JSON: ring all-reduce on one NVSwitch node at line rate is 2(n-1)(alpha + S/(nB))
expect 0 "" -- sim-collective --op all_reduce --cluster dgx-a100-80g:intra_bw_GBps=100 --devices 8 \
    -b 8M -e 8M --eff 1 --json
json_has op cluster devices rows avg_busbw_bytes_per_s
jcheck '.rows | length == 1'
jcheck '.rows[0] | (.size_bytes == 8388608 and .count == 2097152 and .algo == "ring")'
jcheck '.rows[0] | (.time_s - 14 * (1e-6 + 8388608 / 8 / 1e11) | fabs) < 1e-12'
jcheck '.rows[0] | ((.busbw_bytes_per_s / .algbw_bytes_per_s) - 1.75 | fabs) < 1e-12'
jcheck '.rows[0] | ((.algbw_bytes_per_s * .time_s) - .size_bytes | fabs) < 1e-3'

# sizes with K/M/G suffixes; the factor; all_gather's size is the total, count per rank
expect 0 "" -- sim-collective --op all_gather --cluster dgx-a100-80g --devices 4 -b 1K -e 1M -f 32 --dtype fp16 --json
jcheck '[.rows[].size_bytes] == [1024, 32768, 1048576]'
jcheck '.rows[0].count == 128 and .dtype == "fp16"'
jcheck '.rows[0] | ((.busbw_bytes_per_s / .algbw_bytes_per_s) - 0.75 | fabs) < 1e-12'

# NCCL-like selection across nodes: tree for small, ring for large
expect 0 "" -- sim-collective --op all_reduce --cluster dgx-a100-80g:nodes=4 -b 64K -e 256M -f 4096 --json
jcheck '[.rows[].algo] == ["tree", "ring"]'
expect 0 "" -- sim-collective --op all_reduce --cluster dgx-a100-80g:nodes=2 -b 1M -e 1M --algo hierarchical --json
jcheck '.rows[0].algo == "hierarchical"'

# every op runs; same input twice gives the same output
for op in all_to_all sendrecv broadcast reduce_scatter; do
    expect 0 "" -- sim-collective --op $op --cluster p3.16xlarge:nodes=2 -b 1M -e 4M -f 4 --json
    jcheck '.rows | length == 2 and all(.[]; .time_s > 0)'
done
"$CALPA" sim-collective --op all_reduce --cluster dgx-a100-80g:nodes=2 -b 8 -e 64M -f 8 >"$T/a" 2>&1
"$CALPA" sim-collective --op all_reduce --cluster dgx-a100-80g:nodes=2 -b 8 -e 64M -f 8 >"$T/b" 2>&1
cmp -s "$T/a" "$T/b" && ok || bad "two runs differ"
expect 0 "" -- sim-collective --op broadcast --cluster dgx-a100-80g --root 3 -b 1M -e 1M
grep -q "^     1048576        262144     float    none       3 " "$T/out" && ok || bad "broadcast row lacks root 3"

# bad input: exit 2 with what is wrong and where
expect 2 "--op" -- sim-collective --op all_reduse --cluster dgx-a100-80g
expect 2 "missing --op" -- sim-collective --cluster dgx-a100-80g
expect 2 "missing --cluster" -- sim-collective --op all_reduce
expect 2 "--devices: 9 is more than the 8 devices" -- sim-collective --op all_reduce --cluster dgx-a100-80g --devices 9
expect 2 "needs at least 2 devices" -- sim-collective --op all_reduce --cluster dgx-a100-80g --devices 1
expect 2 "minbytes 1024 is larger than maxbytes 8" -- sim-collective --op all_reduce --cluster dgx-a100-80g -b 1K -e 8
expect 2 "'12Q'" -- sim-collective --op all_reduce --cluster dgx-a100-80g -b 12Q
expect 2 "-b/--minbytes: size must be >= 1" -- sim-collective --op all_reduce --cluster dgx-a100-80g -b 0
expect 2 "--stepfactor" -- sim-collective --op all_reduce --cluster dgx-a100-80g -f 1
expect 2 "--algo: 'tree' applies to all_reduce only" -- sim-collective --op all_gather --cluster dgx-a100-80g --algo tree
expect 2 "--algo" -- sim-collective --op all_reduce --cluster dgx-a100-80g --algo fastest
expect 2 "'ring' does not apply to all_to_all" -- sim-collective --op all_to_all --cluster dgx-a100-80g --algo ring
expect 2 "--dtype" -- sim-collective --op all_reduce --cluster dgx-a100-80g --dtype int8
expect 2 "--eff" -- sim-collective --op all_reduce --cluster dgx-a100-80g --eff 1.5
expect 2 "--root" -- sim-collective --op broadcast --cluster dgx-a100-80g --devices 4 --root 4
expect 2 "no-such-cluster" -- sim-collective --op all_reduce --cluster no-such-cluster
expect 2 "usage" -- sim-collective --op all_reduce --cluster dgx-a100-80g --bogus
finish
