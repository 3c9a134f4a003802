#!/bin/sh
# reproduce-paper.sh [BIN] - runs every built-in suite (scripts/suites/) and
# writes results/<suite>.tsv, .png and .svg: the Alpa paper's figure set as
# calpa predicts it.  JOBS=N worker processes (default: one per CPU);
# RESUME=1 keeps the rows of an earlier, interrupted run; SUITES="a b" runs
# only those.  Prints each suite's wall time and the total.
set -u
BIN=${1:-bin/calpa}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 1)}
SUITES=${SUITES:-"alpa-e2e-gpt alpa-e2e-moe alpa-e2e-wresnet alpa-intra-ablation alpa-inter-ablation planning-time"}
mkdir -p results
t_all=$(date +%s)
rc=0
for s in $SUITES; do
    set -- -j "$JOBS" -o "results/$s.tsv" --plot "results/$s.png" --plot "results/$s.svg"
    [ -f "scripts/suites/$s.ref.tsv" ] && set -- "$@" --reference "scripts/suites/$s.ref.tsv"
    [ "${RESUME:-0}" = 1 ] && set -- "$@" --resume
    t0=$(date +%s)
    "$BIN" sweep "$s" "$@" || rc=$?
    echo "reproduce-paper: $s took $(( $(date +%s) - t0 )) s"
done
echo "reproduce-paper: all suites took $(( $(date +%s) - t_all )) s (results/)"
exit $rc
