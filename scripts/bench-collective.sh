#!/bin/sh
# bench-collective.sh BIN - how fast the network/collective simulator runs:
# one collective alone per line, with the simulated time, the flows it took
# and flows simulated per second of wall time (measures; asserts nothing).
bin=${1:-bin/calpa}
printf '%-26s %-14s %6s %-12s %10s %10s %8s %10s\n' cluster op devs algo size sim_ms flows flows/s
run() { # cluster op devices algo size
    t0=$(date +%s.%N)
    out=$("$bin" sim-collective --cluster "$1" --op "$2" --devices "$3" --algo "$4" -b "$5" -e "$5" --json) || return
    t1=$(date +%s.%N)
    echo "$out" | jq -r --arg c "$1" --arg op "$2" --arg d "$3" --arg s "$5" --arg w "$(echo "$t1 - $t0" | bc)" \
        '.rows[0] | [$c, $op, $d, .algo, $s, (.time_s * 1e3 | tostring | .[0:8]),
          .flows, (.flows / ($w | tonumber) | floor)] | @tsv' |
        awk -F'\t' '{ printf "%-26s %-14s %6s %-12s %10s %10s %8s %10s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
}
run dgx-a100-80g all_reduce 8 ring 1G
run dgx-a100-80g:nodes=2 all_reduce 16 ring 1G
run dgx-a100-80g:nodes=16 all_reduce 128 auto 1G
run dgx-a100-80g:nodes=128 all_reduce 1024 ring 1G
run dgx-a100-80g:nodes=128 all_reduce 1024 tree 1G
run dgx-a100-80g:nodes=128 all_reduce 1024 hierarchical 1G
run dgx-a100-80g:nodes=128 all_gather 1024 ring 1G
run dgx-a100-80g:nodes=16 all_to_all 128 auto 256M
run p3.16xlarge:nodes=8 all_reduce 64 auto 256M
