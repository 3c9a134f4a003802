#!/bin/sh
# Atomic outputs: a writer that dies mid-write leaves the old file (or
# none), never a truncated one.  Deterministically: the file-size limit
# (ulimit -f) kills the writer with SIGXFSZ in the middle of a 4 MB
# timeline; then SIGKILL at a spread of moments during plan + sim runs.
# Also: a sweep's finished rows survive its death (.partial, --resume).
. "$(dirname "$0")/lib.sh"
GPT=gpt:hidden=64,layers=4,heads=4,seq=16,vocab=128
"$CALPA" plan --model "$GPT" --cluster dgx-a100-80g:nodes=1,devices_per_node=4 --global-batch 256 \
    --method megatron --tp 1 --pp 4 --dp 1 --micro-batches 128 -o "$T/g.json" >/dev/null 2>"$T/err" \
    || bad "plan: $(head -c 300 "$T/err")"
echo '{"old": true}' >"$T/old.json"

# valid_or_old FILE WHAT: FILE is the old content, or absent, or whole JSON
valid_or_old() {
    if [ ! -e "$1" ] || cmp -s "$1" "$T/old.json" || jq -e . "$1" >/dev/null 2>&1; then ok
    else bad "$2: $1 is neither the old file nor whole JSON ($(wc -c <"$1") bytes)"; fi
}

# the whole timeline is 4 MB; 1 MB of file size allowed kills the writer in the middle
cp "$T/old.json" "$T/tl.json"
# (the outer subshell keeps the shell's "File size limit exceeded" off the output)
( (ulimit -f 2048; exec "$CALPA" sim "$T/g.json" --no-fold --timeline "$T/tl.json") >/dev/null 2>&1
  echo $? >"$T/rc" ) 2>/dev/null; rc=$(cat "$T/rc")
[ $rc -ge 128 ] && ok || bad "the size limit did not kill the writer (exit $rc)"
cmp -s "$T/tl.json" "$T/old.json" && ok || bad "killed mid-write: the old timeline is gone or changed"
# the same through a plan file
cp "$T/old.json" "$T/p.json"
( (ulimit -f 4; exec "$CALPA" plan --model "$GPT" --cluster dgx-a100-80g:nodes=1,devices_per_node=4 \
    --global-batch 256 --method megatron --tp 2 --pp 2 --dp 1 --micro-batches 4 -o "$T/p.json") \
    >/dev/null 2>&1; echo $? >"$T/rc" ) 2>/dev/null; rc=$(cat "$T/rc")
[ $rc -ge 128 ] && ok || bad "the size limit did not kill the plan writer (exit $rc)"
cmp -s "$T/p.json" "$T/old.json" && ok || bad "plan killed mid-write: the old plan is gone or changed"
rm -f "$T"/*.tmp.*

# SIGKILL at moments spread over the run (the check holds whenever it lands)
for d in 0.05 0.15 0.3 0.45 0.6 0.8; do
    cp "$T/old.json" "$T/tl.json"
    "$CALPA" sim "$T/g.json" --no-fold --timeline "$T/tl.json" >/dev/null 2>&1 &
    pid=$!
    sleep $d
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    valid_or_old "$T/tl.json" "SIGKILL after $d s"
done

# a sweep killed after its first rows keeps them: --resume plans only the rest
M=mlp:hidden=32,layers=2
cat >"$T/s.json" <<JSON
{"name": "kill", "methods": ["data", "megatron"], "options": {"micro_batches": 2},
 "cases": [{"model": "$M", "devices": 1, "global_batch": 8},
           {"model": "$M", "devices": 2, "global_batch": 8},
           {"model": "$M", "devices": 4, "global_batch": 8}]}
JSON
expect 0 "" -- sweep "$T/s.json" -o "$T/full.tsv" --quiet
head -3 "$T/full.tsv" >"$T/r.tsv.partial"  # what a sweep killed after two rows leaves
expect 0 "2 resumed" -- sweep "$T/s.json" -o "$T/r.tsv" --resume
cut -f1-17 "$T/full.tsv" >"$T/a"; cut -f1-17 "$T/r.tsv" >"$T/b"
cmp -s "$T/a" "$T/b" && ok || bad "the resumed sweep differs from the full one"
finish
