#!/bin/sh
# Determinism: the same inputs give byte-identical plan files, `sim --json`
# output, timelines and sweep TSVs run after run, with any worker count
# (plan --jobs, sweep -j, sweep under mpirun).  Wall-clock values are the
# only exceptions, dropped before comparing: plan files' "plan_time_s",
# sim --json's "sim_wall_s" and "events_per_s", the TSV's plan_time_s column
# (the last).
. "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0" \
       LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$(cd "$(dirname "$0")/.." && pwd)/lsan-mpi.supp"
GPT=gpt:hidden=128,layers=4,heads=4,seq=64,vocab=512
MLP=mlp:hidden=64,layers=4,activation=relu
C4='p3.16xlarge:devices_per_node=4'

# same FILE1 FILE2 WHAT PATTERN: identical once lines matching PATTERN go
same() {
    grep -v "$4" "$1" >"$T/a"; grep -v "$4" "$2" >"$T/b"
    if cmp -s "$T/a" "$T/b"; then ok; else bad "$3 differ: $(diff "$T/a" "$T/b" | head -5)"; fi
}
WALL_PLAN='"plan_time_s":'
WALL_SIM='"sim_wall_s":\|"events_per_s":'

n=0
for spec in "$GPT alpa" "$GPT megatron" "$MLP alpa" "$GPT zero3"; do
    m=${spec% *}; meth=${spec#* }; n=$((n + 1))
    for run in 1 2 3; do
        jobs=1; [ $run = 3 ] && jobs=2
        "$CALPA" plan --model "$m" --cluster "$C4" --global-batch 16 --method "$meth" --jobs $jobs \
            -o "$T/p$n.$run.json" >/dev/null 2>"$T/err" || bad "plan $meth: $(head -c 300 "$T/err")"
    done
    grep -q "$WALL_PLAN" "$T/p$n.1.json" && ok || bad "plan file without plan_time_s"
    same "$T/p$n.1.json" "$T/p$n.2.json" "plan files of $m $meth (two runs)" "$WALL_PLAN"
    same "$T/p$n.1.json" "$T/p$n.3.json" "plan files of $m $meth (--jobs 1 vs 2)" "$WALL_PLAN"
    for run in 1 2; do  # one timeline name: the JSON quotes it
        "$CALPA" sim "$T/p$n.1.json" --json --timeline "$T/tl.json" >"$T/s$n.$run.json" 2>"$T/err" \
            || bad "sim $meth: $(head -c 300 "$T/err")"
        mv "$T/tl.json" "$T/t$n.$run.json"
    done
    jq . "$T/s$n.1.json" >"$T/s$n.1p.json"; jq . "$T/s$n.2.json" >"$T/s$n.2p.json"
    same "$T/s$n.1p.json" "$T/s$n.2p.json" "sim --json of $m $meth" "$WALL_SIM"
    cmp -s "$T/t$n.1.json" "$T/t$n.2.json" && ok || bad "timelines of $m $meth differ"
done

# sweeps: -j1, -j2, again -j2, and 2 ranks under mpirun give the same rows
cat >"$T/s.json" <<JSON
{"name": "det", "methods": ["alpa", "data", "megatron"], "options": {"micro_batches": 2},
 "cases": [{"model": "$MLP", "devices": 1, "global_batch": 8},
           {"model": "$MLP", "devices": 2, "global_batch": 8},
           {"model": "$GPT", "devices": 4, "global_batch": 8}]}
JSON
"$CALPA" sweep "$T/s.json" -o "$T/j1.tsv" -j 1 --quiet 2>"$T/err" || bad "sweep -j1: $(head -c 300 "$T/err")"
"$CALPA" sweep "$T/s.json" -o "$T/j2.tsv" -j 2 --quiet 2>"$T/err" || bad "sweep -j2: $(head -c 300 "$T/err")"
"$CALPA" sweep "$T/s.json" -o "$T/j2b.tsv" -j 2 --quiet 2>"$T/err" || bad "sweep -j2 again"
head -1 "$T/j1.tsv" | awk -F'\t' '{ exit $NF != "plan_time_s" }' && ok || bad "plan_time_s is not the last column"
drop_wall() { awk -F'\t' 'BEGIN { OFS = "\t" } { NF--; print }' "$1"; }
drop_wall "$T/j1.tsv" >"$T/a1"; drop_wall "$T/j2.tsv" >"$T/a2"; drop_wall "$T/j2b.tsv" >"$T/a3"
[ "$(wc -l <"$T/a1")" = 10 ] && ok || bad "sweep rows: $(wc -l <"$T/a1")"
cmp -s "$T/a1" "$T/a2" && ok || bad "sweep -j1 and -j2 differ: $(diff "$T/a1" "$T/a2" | head -4)"
cmp -s "$T/a2" "$T/a3" && ok || bad "two sweeps -j2 differ"
if "$CALPA" exec --help | grep -q "MPI on" && command -v mpirun >/dev/null; then
    timeout 300 mpirun -np 2 "$CALPA" sweep "$T/s.json" -o "$T/mpi.tsv" --quiet >/dev/null 2>"$T/err" \
        || bad "sweep under mpirun: $(head -c 300 "$T/err")"
    drop_wall "$T/mpi.tsv" >"$T/a4"
    cmp -s "$T/a1" "$T/a4" && ok || bad "sweep -j1 and 2 MPI ranks differ: $(diff "$T/a1" "$T/a4" | head -4)"
fi
finish
