#!/bin/sh
# Command-line tests of `calpa sweep`: a small suite end to end into a TSV
# with the documented columns and a PNG/SVG plot, --resume, bad suites and
# options (exit 2 naming the problem).
. "$(dirname "$0")/lib.sh"

expect 0 "" -- sweep --help
grep -q "usage: calpa sweep SUITE" "$T/out" && ok || bad "sweep --help prints no usage"
expect 2 "give exactly one SUITE" -- sweep
expect 2 "no built-in suite" -- sweep no-such-suite
expect 2 "option --jobs" -- sweep alpa-e2e-gpt -j 0
expect 2 "must end in .png or .svg" -- sweep alpa-e2e-gpt --plot x.pdf
"$CALPA" sweep --list >"$T/out" 2>&1 && grep -q '^alpa-e2e-gpt$' "$T/out" && grep -q '^planning-time$' "$T/out" \
    && ok || bad "sweep --list lacks the built-in suites: $(cat "$T/out")"

M=gpt:hidden=128,layers=2,heads=4,seq=64,vocab=512
cat >"$T/s.json" <<JSON
{"name": "cli", "methods": ["alpa", "data"], "options": {"micro_batches": 2},
 "plot": {"type": "bars", "y": "pflops", "linear": "alpa"},
 "cases": [{"model": "$M", "devices": 1, "global_batch": 8},
           {"model": "$M", "devices": 2, "global_batch": 8},
           {"name": "too-big", "model": "gpt-39b", "devices": 2, "global_batch": 8, "methods": ["data"]}]}
JSON
expect 0 "5 rows (0 resumed, 1 not ok)" -- sweep "$T/s.json" -o "$T/r.tsv" --plot "$T/f.png" --plot "$T/f.svg"
hdr="suite	case	method	devices	model	params	global_batch	micro_batches	stages	iteration_time_s	samples_per_s	tflops_per_device	pflops	peak_memory_bytes	fits_memory	status	note	plan_time_s"
[ "$(head -1 "$T/r.tsv")" = "$hdr" ] && ok || bad "TSV header: $(head -1 "$T/r.tsv")"
[ "$(wc -l <"$T/r.tsv")" = 6 ] && ok || bad "TSV rows: $(wc -l <"$T/r.tsv")"
awk -F'\t' 'NR > 1 && NF != 18 { exit 1 }' "$T/r.tsv" && ok || bad "a row without 18 fields"
awk -F'\t' '$2 == "too-big" { if ($15 != 0 || $16 == "ok") exit 1; found = 1 } END { exit !found }' "$T/r.tsv" \
    && ok || bad "the impossible case is not recorded as such"
[ "$(head -c 4 "$T/f.png" | od -An -c | tr -d ' ')" = '211PNG' ] && ok || bad "f.png is not a PNG"
grep -q '<svg' "$T/f.svg" && grep -q '</svg>' "$T/f.svg" && ok || bad "f.svg is not an SVG"
[ -f "$T/r.tsv.partial" ] && bad "the stream file is left behind" || ok

# --resume: a finished file plans nothing; an interrupted stream keeps its rows
expect 0 "5 resumed" -- sweep "$T/s.json" -o "$T/r.tsv" --resume
head -3 "$T/r.tsv" >"$T/r2.tsv.partial"
expect 0 "2 resumed" -- sweep "$T/s.json" -o "$T/r2.tsv" --resume
cut -f1-17 "$T/r.tsv" >"$T/a"; cut -f1-17 "$T/r2.tsv" >"$T/b"
cmp -s "$T/a" "$T/b" && ok || bad "a resumed sweep differs"
# -j2 gives the same rows but for the wall-clock column
expect 0 "" -- sweep "$T/s.json" -o "$T/r3.tsv" -j 2 --quiet
cut -f1-17 "$T/r3.tsv" >"$T/b"
cmp -s "$T/a" "$T/b" && ok || bad "-j2 differs from -j1"
# two ranks of a launcher: rank 1 first, rank 0 gathers
OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=1 "$CALPA" sweep "$T/s.json" -o "$T/r4.tsv" --quiet || bad "rank 1"
OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 "$CALPA" sweep "$T/s.json" -o "$T/r4.tsv" --quiet || bad "rank 0"
cut -f1-17 "$T/r4.tsv" >"$T/b"
cmp -s "$T/a" "$T/b" && ok || bad "two ranks differ from -j1"
# plot only, with a reference overlay
printf 'method\tdevices\tpflops\nalpa\t1\t0.001\n' >"$T/ref.tsv"
expect 0 "" -- sweep "$T/s.json" --plot-only "$T/r.tsv" --plot "$T/g.png" --reference "$T/ref.tsv"
[ -s "$T/g.png" ] && ok || bad "--plot-only wrote no PNG"
# gnuplot missing: the TSV is written, exit 1 with the install line
mkdir "$T/bin"; ln -s "$(command -v awk)" "$T/bin/awk"
PATH="$T/bin" "$(cd "$(dirname "$CALPA")" && pwd)/$(basename "$CALPA")" sweep "$T/s.json" -o "$T/r5.tsv" \
    --plot "$T/h.png" --quiet 2>"$T/err"; rc=$?
[ "$rc" = 1 ] && grep -q "apt-get install gnuplot-nox" "$T/err" && [ -s "$T/r5.tsv" ] && ok \
    || bad "without gnuplot: exit $rc, $(cat "$T/err")"

# bad suites: exit 2 naming the file, the case and the key
printf '{"methods": ["alpa"], "cases": [{"model": "gpt-350m"}, {"model": "gpt-350m", "name": "b", "devicez": 2}]}' >"$T/bad.json"
expect 2 "cases[1].devicez" -- sweep "$T/bad.json"
grep -qF "$T/bad.json" "$T/err" && ok || bad "the message does not name the file"
printf '{"methods": ["alpa"], "cases": [{"model": "gpt-350m", "options": {"schedule": "zigzag"}}]}' >"$T/bad2.json"
expect 2 "cases[0].options.schedule" -- sweep "$T/bad2.json"
printf '{"methods": ["alpa"], "cases": [' >"$T/bad3.json"
expect 2 "bad3.json" -- sweep "$T/bad3.json"
finish
