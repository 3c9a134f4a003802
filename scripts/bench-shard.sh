#!/bin/sh
# bench-shard.sh BIN - how fast the intra-op pass (calpa shard) solves: the
# ILP's size, GLPK's solve time and the whole command's wall time for the
# cases of the issue (measures; asserts nothing).  Costs: abstract units
# without --cluster, seconds (and the device memory as the budget) with it.
bin=${1:-bin/calpa}
printf '%-58s %-10s %11s %7s %6s %6s %8s %7s\n' case status objective vars bins rows solve_s wall_s
run() { # label, then the calpa shard arguments
    label=$1; shift
    t0=$(date +%s.%N)
    out=$("$bin" shard "$@" --json 2>/dev/null)
    t1=$(date +%s.%N)
    [ -n "$out" ] || { printf '%-58s failed\n' "$label"; return; }
    echo "$out" | jq -r --arg l "$label" --arg w "$(echo "$t1 - $t0" | bc)" \
        '[$l, .status, (if .objective == null then "-" else (.objective | tostring | .[0:10]) end),
          .ilp_vars, .ilp_int_vars, .ilp_rows, (.solve_time_s | tostring | .[0:6]),
          ($w | tostring | .[0:6])] | @tsv' |
        awk -F'\t' '{ printf "%-58s %-10s %11s %7s %6s %6s %8.2f %7.2f\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
}
run "gpt-39b:layers=6, 2x4, abstract units"            gpt-39b:layers=6 --mesh 2x4
run "gpt-39b:layers=6, 2x4, p3.16xlarge, batch 8, 60 s" gpt-39b:layers=6 --mesh 2x4 --cluster p3.16xlarge --global-batch 8 --time-limit 60
run "gpt-39b:layers=6, 2x4, p3.16xlarge, batch 8, fold" gpt-39b:layers=6 --mesh 2x4 --cluster p3.16xlarge --global-batch 8 --fold-layers
run "gpt-39b (48 layers), batch 8, 8x8, no budget"     gpt-39b --global-batch 8 --mesh 8x8 --cluster p3.16xlarge:nodes=8 --memory-budget 0
run "gpt-39b (48 layers), batch 8, 8x8, 14.4 GiB"      gpt-39b --global-batch 8 --mesh 8x8 --cluster p3.16xlarge:nodes=8
run "gpt-39b (48 layers), batch 8, 8x8, 18 GiB, 30 s"  gpt-39b --global-batch 8 --mesh 8x8 --cluster p3.16xlarge:nodes=8 --memory-budget 18GiB --time-limit 30
run "gpt-39b (48 layers), batch 8, 8x8, 18 GiB, fold"  gpt-39b --global-batch 8 --mesh 8x8 --cluster p3.16xlarge:nodes=8 --memory-budget 18GiB --fold-layers
run "wresnet-4b, 2x4, abstract units"                  wresnet-4b --mesh 2x4
run "wresnet-4b, 2x4, p3.16xlarge, batch 48"           wresnet-4b --mesh 2x4 --cluster p3.16xlarge --global-batch 48
