#!/bin/sh
# exec-accuracy.sh [BIN] - the simulator against exec on this machine: profile
# the CPU backend on 2 ranks, plan a small GPT three ways (Megatron dp 2, tp 2,
# pp 2) with that profile, simulate each plan, run it under mpirun, and print
# `calpa compare` per plan and a summary of the iteration-time errors.
# OUT=dir keeps the files (default: a temporary directory); PROFILE=file uses
# an existing profile instead of measuring one; STEPS=n timed steps (5);
# REPEAT=r runs each plan r times and reports the run of median iteration
# time (default 1; 3 or 5 on a shared machine whose speed drifts).
set -eu
BIN=${1:-bin/calpa}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
OUT=${OUT:-$(mktemp -d)}
STEPS=${STEPS:-5}
REPEAT=${REPEAT:-1}
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 \
       OMPI_MCA_rmaps_base_oversubscribe=1
M=gpt:hidden=256,layers=2,heads=4,seq=64,vocab=1024,dropout=0,dtype=fp32,optimizer=sgd
CL='dgx-a100-80g:nodes=1,devices_per_node=2'
P=${PROFILE:-$OUT/cpu.json}
[ -n "${PROFILE:-}" ] || mpirun -np 2 "$BIN" profile --backend cpu -o "$P" >"$OUT/profile.log"
summary=""
for spec in "dp:--tp 1 --pp 1 --dp 2" "tp:--tp 2 --pp 1 --dp 1" "pp:--tp 1 --pp 2 --dp 1"; do
    n=${spec%%:*}; args=${spec#*:}
    # shellcheck disable=SC2086
    "$BIN" plan --model "$M" --cluster "$CL" --global-batch 16 --method megatron $args \
        --micro-batches 2 --profile "$P" -o "$OUT/$n.plan.json" >/dev/null
    "$BIN" sim "$OUT/$n.plan.json" --profile "$P" --no-fold --timeline "$OUT/$n.pred.json" >/dev/null
    : >"$OUT/$n.runs"
    r=1
    while [ "$r" -le "$REPEAT" ]; do
        mpirun -np 2 "$BIN" exec "$OUT/$n.plan.json" --steps "$STEPS" --warmup 2 \
            --timeline "$OUT/$n.meas.$r.json" --json >"$OUT/$n.exec.$r.json"
        echo "$(jq -r .iteration_time_s "$OUT/$n.exec.$r.json") $r" >>"$OUT/$n.runs"
        r=$((r + 1))
    done
    med=$(sort -g "$OUT/$n.runs" | awk -v n="$REPEAT" 'NR == int((n + 1) / 2) { print $2 }')
    cp "$OUT/$n.meas.$med.json" "$OUT/$n.meas.json"
    cp "$OUT/$n.exec.$med.json" "$OUT/$n.exec.json"
    echo "== $n ($args): run $med of $REPEAT (median iteration time)"
    "$BIN" compare "$OUT/$n.pred.json" "$OUT/$n.meas.json" | tee "$OUT/$n.compare.txt"
    summary="$summary$(printf '%s %s' "$n" "$(grep '^iteration' "$OUT/$n.compare.txt")")
"
done
echo "== iteration time: predicted, measured, error"
printf '%s' "$summary"
echo "(files in $OUT)"
