#!/bin/sh
# bench.sh BIN - benchmarks that measure and print (no assertions).
# Each part lives in its own script under scripts/bench-*.sh.
set -e
bin=${1:-bin/calpa}
for b in scripts/bench-*.sh; do
    [ -f "$b" ] || continue
    echo "== $b"
    sh "$b" "$bin"
done
