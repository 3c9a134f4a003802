#!/bin/sh
# install-deps.sh - installs the Debian packages calpa needs, if any is missing.
# Run as root it installs them with apt-get; otherwise it prints the exact
# command to run and exits 1.  The Makefile calls it when a library is missing.
#   GLPK (intra-op ILP), cJSON (config/plan files), cmocka (tests),
#   gnuplot (plots), OpenMPI (multi-process exec), OpenBLAS (CPU GEMMs),
#   jq (command-line tests).
# `install-deps.sh --check` only tells (exit 0: nothing missing).
# CUDA, cuBLAS and NCCL come from the CUDA toolkit in $CUDA_HOME, not from here.
set -eu
PKGS="libglpk-dev libcjson-dev libcmocka-dev gnuplot-nox libopenmpi-dev openmpi-bin libopenblas-dev jq make gcc"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
[ "${1:-}" = "--check" ] && exit 1
cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" != 0 ]; then
    echo "calpa needs these Debian packages:$missing" >&2
    echo "run as root:  apt-get update && $cmd" >&2
    exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
