#!/bin/sh
# run-tests.sh BIN TEST... - runs each cmocka test binary, then the
# command-line tests (tests/cli/*.sh) against BIN, and ends with one line
# "N passed, N failed".  Exit status 1 if anything failed.
set -u
bin=$1; shift
pass=0; fail=0; failed=""
for t in "$@"; do
    if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $(basename "$t")"; fi
done
for t in tests/cli/*.sh; do
    [ -f "$t" ] || continue
    if CALPA="$bin" sh "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
