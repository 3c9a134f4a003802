# lib.sh - helpers for the command-line tests (sourced). Each test script
# counts its checks and exits 1 if any failed.
# CALPA is the binary under test (default bin/calpa).
CALPA=${CALPA:-bin/calpa}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
n_ok=0; n_bad=0
ok()  { n_ok=$((n_ok + 1)); }
bad() { n_bad=$((n_bad + 1)); echo "FAIL $(basename "$0"): $*" >&2; }

# expect CODE NEEDLE -- ARGS... : exit code CODE; NEEDLE (may be empty) in stderr
expect() {
    code=$1; needle=$2; shift 3
    "$CALPA" "$@" >"$T/out" 2>"$T/err"; rc=$?
    if [ "$rc" != "$code" ]; then bad "calpa $*: exit $rc, want $code ($(head -c 300 "$T/err"))"; return; fi
    if [ -n "$needle" ] && ! grep -qF -- "$needle" "$T/err"; then
        bad "calpa $*: stderr lacks '$needle': $(head -c 300 "$T/err")"; return; fi
    ok
}

# json_has KEY... : $T/out is one JSON object with these top-level keys
json_has() {
    for k in "$@"; do
        if ! jq -e --arg k "$k" 'has($k)' "$T/out" >/dev/null 2>&1; then bad "JSON lacks key '$k'"; return; fi
    done
    ok
}

# jcheck FILTER : jq filter is true on $T/out
jcheck() {
    if jq -e "$1" "$T/out" >/dev/null 2>&1; then ok; else bad "jq '$1' is not true on $(head -c 300 "$T/out")"; fi
}

finish() {
    [ "$n_bad" = 0 ] && return 0
    echo "$(basename "$0"): $n_ok ok, $n_bad failed" >&2
    exit 1
}
