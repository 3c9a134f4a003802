#!/bin/sh
# run.sh BUILD SECONDS NAME... - fuzzes each harness BUILD/fuzz-bin/fuzz_NAME
# for SECONDS under libFuzzer, one after the other at nice 19, starting from
# tests/fuzz/corpus/NAME (new inputs go to BUILD/corpus/NAME, crashes to
# BUILD/crashes/), and prints one line per harness: executions, execs/s,
# corpus size, crashes.  Exit 1 if any harness crashed.
# FUZZ_ARGS adds libFuzzer flags (e.g. -jobs, -max_len).
set -u
build=$(cd "$1" && pwd); secs=$2; shift 2
cd "$(dirname "$0")/../.."
dict=tests/fuzz/calpa.dict
mkdir -p "$build/crashes" "$build/logs"
total_crash=0
printf '%-14s %14s %10s %8s %8s\n' harness executions exec/s corpus crashes
for n in "$@"; do
    bin=$build/fuzz-bin/fuzz_$n
    mkdir -p "$build/corpus/$n"
    log=$build/logs/$n.log
    # -timeout: an input taking 10 s is a hang; -rss_limit_mb: so is 2 GiB
    nice -n 19 "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -dict="$dict" -artifact_prefix="$build/crashes/$n-" \
        ${FUZZ_ARGS:-} "$build/corpus/$n" "$PWD/tests/fuzz/corpus/$n" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corp=$(ls "$build/corpus/$n" | wc -l)
    crashes=$(ls "$build/crashes" 2>/dev/null | grep -c "^$n-")
    [ "$rc" != 0 ] && [ "$crashes" = 0 ] && crashes="rc=$rc"
    printf '%-14s %14s %10s %8s %8s\n' "$n" "${execs:-?}" "${rate:-?}" "$corp" "$crashes"
    [ "$crashes" != 0 ] && total_crash=1 && grep -m3 -E "ERROR|SUMMARY|fuzz:|CHECK" "$log" | sed 's/^/    /'
done
[ $total_crash = 0 ] || echo "crashes under $build/crashes (logs in $build/logs); add each to tests/fuzz/regress/NAME/"
exit $total_crash
