#!/bin/sh
# gpu-check.sh - everything issue 8 asks of one GPU, in one run (83 s on an H200,
# from a bundle), writing under $OUT (default results/gpu):
#   1. build calpa with the CUDA backend (nvcc, sm_80 + sm_90) and run its
#      kernels against the CPU loops (tests/test_cuda.c), or take a prebuilt
#      bundle (see --bundle below) when the machine lacks the packages;
#   2. exec --check a small GPT on the GPU against the CPU reference;
#   3. profile the GPU (cuBLAS GEMM sweep, memory-bound kernel, our GEMM entry
#      vs raw cuBLAS on the same shapes) into <gpu>-measured.json;
#   4. plan a GPT that fills the GPU (gpt-1.3b, float32, 1 device) with
#      recompute off and on, simulate each (predicted timeline), exec each
#      (measured timeline), compare per operator and iteration;
#   5. calibrate the profile on the recompute-off run, then predict both runs
#      again (the recompute-on run held out) and compare again.
# Files back (at most 8, as the device tool returns them): summary.txt,
# gpu-check.log, <gpu>-measured.json, <gpu>-calibrated.json (and -calibrated-bf16),
# runs.tar.gz.
#
#   sh scripts/gpu-check.sh                run the check (needs an NVIDIA GPU)
#   sh scripts/gpu-check.sh --bundle DIR   on a build machine: build calpa
#       without MPI and NCCL (one GPU needs neither) and copy it with the shared
#       libraries a bare CUDA image lacks (GLPK, cJSON, OpenBLAS, ...) into DIR;
#       on the GPU machine, CALPA_BUNDLE=DIR sh scripts/gpu-check.sh uses it
#       (.gpu-bundle, the default DIR, is git-ignored: name it in the device
#       tool's carry list).
# Environment: OUT, CALPA_BUNDLE (default .gpu-bundle), CALPA_BIN (a calpa to
# use as is), GPU_CHECK_MODEL (default gpt-1.3b:dtype=fp32,dropout=0),
# GPU_CHECK_BATCH (8), GPU_CHECK_QUICK=1 (a smaller profile sweep).
# Exit 0: every step ran; 1: no GPU / no calpa to run, or a step failed (the
# others still ran; summary.txt says which).
set -eu
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--bundle" ]; then
    dir=${2:?usage: gpu-check.sh --bundle DIR}
    make BUILD=build/gpu-bundle BIN=bin/calpa-gpu-bundle NO_MPI=1 NO_NCCL=1 -j"$(nproc)" \
        bin/calpa-gpu-bundle build/gpu-bundle/tests/test_cuda >&2
    mkdir -p "$dir/bin" "$dir/lib"
    cp bin/calpa-gpu-bundle "$dir/bin/calpa"
    cp build/gpu-bundle/tests/test_cuda "$dir/bin/test_cuda"
    # every shared library outside the CUDA toolkit, glibc and the C++ runtime (the
    # image has newer ones, which CUDA's libraries may need)
    ldd bin/calpa-gpu-bundle build/gpu-bundle/tests/test_cuda | awk '$3 ~ /^\// {print $3}' | sort -u \
        | grep -Ev '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so|/cuda[^/]*/' \
        | while read -r so; do cp -L "$so" "$dir/lib/"; done
    du -sh "$dir" >&2
    echo "gpu-check: bundle in $dir (carry it; then CALPA_BUNDLE=$dir sh scripts/gpu-check.sh)" >&2
    exit 0
fi

OUT=${OUT:-results/gpu}
MODEL=${GPU_CHECK_MODEL:-gpt-1.3b:dtype=fp32,dropout=0}
BATCH=${GPU_CHECK_BATCH:-8}
SMALL=gpt:hidden=256,layers=2,heads=8,seq=128,vocab=1024,dropout=0,dtype=fp32,optimizer=adam
C1='dgx-h100:nodes=1,devices_per_node=1'

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "gpu-check: no NVIDIA GPU here (nvidia-smi is missing or lists none): nothing was run" >&2
    exit 1
fi

mkdir -p "$OUT/runs"
LOG="$OUT/gpu-check.log"
SUM="$OUT/summary.txt"
: >"$LOG"
: >"$SUM"
failed=""
say() { echo "$*" | tee -a "$SUM" "$LOG" >&2; }
# js FILTER FILE: a jq one-liner of a JSON report (its head without jq)
js() { if command -v jq >/dev/null 2>&1; then jq -c "$1" "$2"; else head -c 400 "$2"; fi; }
# step NAME SECONDS CMD...: runs CMD under a timeout, output to the log; a
# failure is recorded and the script goes on (later steps may still work)
step() {
    _name=$1; _secs=$2; shift 2
    _t0=$(date +%s)
    echo "=== $_name: $*" >>"$LOG"
    if timeout "$_secs" "$@" >>"$LOG" 2>&1; then _st=0; else _st=$?; fi
    say "$(printf '%-28s %s in %ss' "$_name" "$([ $_st = 0 ] && echo ok || echo "FAILED (exit $_st$([ $_st = 124 ] && echo ', timed out'))")" $(( $(date +%s) - _t0 )))"
    [ $_st = 0 ] || failed="$failed $_name"
    return 0
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >>"$SUM" 2>&1 || true
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
case "$GPU" in
    *H200*) TAG=h200 ;; *H100*) TAG=h100 ;; *A100*) TAG=a100 ;;
    *) TAG=$(echo "$GPU" | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9-') ;;
esac
say "gpu-check on $GPU ($(date -u +%Y-%m-%dT%H:%M:%SZ)), results in $OUT"

# 1. a calpa with the CUDA backend
BUNDLE=${CALPA_BUNDLE:-.gpu-bundle}
if [ -n "${CALPA_BIN:-}" ]; then
    B=$CALPA_BIN
elif [ -x "$BUNDLE/bin/calpa" ]; then
    B=$BUNDLE/bin/calpa
    LD_LIBRARY_PATH="$(cd "$BUNDLE/lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # the toolkit's cuBLAS where the image keeps it
    for d in "${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/lib64; do
        [ -d "$d" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
    done
    export LD_LIBRARY_PATH
    # the CUDA kernels against the CPU loops, entry by entry (tests/test_cuda.c)
    [ -x "$BUNDLE/bin/test_cuda" ] && step test-cuda 120 "$BUNDLE/bin/test_cuda"
elif sh scripts/install-deps.sh --check; then
    B=bin/calpa-gpu
    step build 300 make BUILD=build/gpu BIN="$B" NO_MPI=1 -j"$(nproc)"
    # the CUDA kernels against the CPU loops, entry by entry (tests/test_cuda.c)
    step test-cuda 120 sh -c "make BUILD=build/gpu BIN=$B NO_MPI=1 build/gpu/tests/test_cuda && build/gpu/tests/test_cuda"
else
    echo "gpu-check: the packages calpa builds with are missing here (scripts/install-deps.sh) and" \
         "there is no bundle in $BUNDLE: make one with 'sh scripts/gpu-check.sh --bundle $BUNDLE'" \
         "on a build machine and carry it" >&2
    exit 1
fi
# cuBLAS from PyTorch's wheels when the toolkit's is not where the binary looks
if [ -x "$B" ] && ldd "$B" | grep -q "libcublas.*not found"; then
    d=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(os.path.dirname(nvidia.cublas.__file__), "lib"))' 2>/dev/null || true)
    [ -n "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if [ ! -x "$B" ] || ldd "$B" | grep -q "not found"; then
    ldd "$B" 2>&1 | grep "not found" >>"$SUM" || true
    say "gpu-check: $B cannot run here (missing shared libraries above)"
    exit 1
fi
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$(nproc)}"

# 2. the GPU against the CPU reference, a small GPT
R=$OUT/runs
step plan-small 120 "$B" plan --model "$SMALL" --cluster "$C1" --global-batch 8 --method data \
    --micro-batches 2 -o "$R/small.json"
step check-small 120 sh -c "'$B' exec '$R/small.json' --backend cuda --check --json --steps 2 >'$R/check-small.json'"
[ -s "$R/check-small.json" ] && say "  check: $(js '{check, loss, iteration_time_s, worst_rel_err: ([.checks[].rel_err] | max)}' "$R/check-small.json")"
# the same in bf16: its GEMMs in bf16 math on the GPU, against the float32 CPU
step plan-small-bf16 120 "$B" plan --model "$(echo "$SMALL" | sed 's/dtype=fp32/dtype=bf16/')" --cluster "$C1" \
    --global-batch 8 --method data --micro-batches 2 -o "$R/small-bf16.json"
step check-small-bf16 120 sh -c "'$B' exec '$R/small-bf16.json' --backend cuda --check --json --steps 2 >'$R/check-small-bf16.json'"
[ -s "$R/check-small-bf16.json" ] && say "  check bf16: $(js '{check, check_tolerance, worst_rel_err: ([.checks[].rel_err] | max)}' "$R/check-small-bf16.json")"

# 3. the GPU's profile (the GEMM table, our GEMM entry vs raw cuBLAS)
PROF=$OUT/$TAG-measured.json
step profile 240 sh -c "'$B' profile --backend cuda -o '$PROF' ${GPU_CHECK_QUICK:+--quick} >'$R/profile.txt'"
if [ -s "$R/profile.txt" ]; then
    sed -n '/ours vs raw cuBLAS/,/^#$/p' "$R/profile.txt" >>"$SUM"
    sed -n '/ours with bf16 math/,/^#$/p' "$R/profile.txt" >>"$SUM"
    sed -n '/backend calls as exec makes them/,/^#$/p' "$R/profile.txt" >>"$SUM"
    grep '^# wrote' "$R/profile.txt" >>"$SUM" || true
fi
# an independent raw cuBLAS: PyTorch's fp32 matmul (TF32 off) on the same shapes
if command -v python3 >/dev/null 2>&1 && python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    step torch-gemm 120 python3 - <<'EOF'
import torch
torch.backends.cuda.matmul.allow_tf32 = False
for m, n, k in [(1024, 1024, 1024), (4096, 4096, 4096), (8192, 8192, 8192), (2048, 8192, 2048), (2048, 2048, 8192), (16384, 16384, 16384)]:
    a = torch.rand(m, k, device="cuda"); b = torch.rand(k, n, device="cuda")
    for _ in range(2): a @ b
    ts = []
    for _ in range(5):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); a @ b; e.record(); e.synchronize(); ts.append(s.elapsed_time(e) * 1e3)
    ts.sort()
    print("# torch fp32 matmul %6d %6d %6d %12.2f us %8.2f TFLOP/s" % (m, n, k, ts[2], 2 * m * n * k / ts[2] / 1e6))
EOF
    grep '^# torch' "$LOG" >>"$SUM" || true
fi
[ -s "$PROF" ] || { say "gpu-check: no measured profile, planning with the analytic one"; PROF=traces/h100-analytic.json; }

# 4. a GPT that fills the GPU, recompute off and on: predicted vs measured.
# One timed step after one warm-up: the runtime does its permutes, adds and
# slicing on the host over managed memory (README), so a 1.3B step is slow.
# and the model in bf16 (its GEMMs on tensor cores, recompute off)
for mode in none full bf16; do
    P=$R/big-$mode.json
    M=$MODEL rc=$mode
    [ "$mode" = bf16 ] && M=$(echo "$MODEL" | sed 's/dtype=fp32/dtype=bf16/') rc=none
    step "plan-big-$mode" 180 "$B" plan --model "$M" --cluster "$C1" --global-batch "$BATCH" --method data \
        --micro-batches 4 --recompute "$rc" --profile "$PROF" -o "$P"
    step "sim-big-$mode" 120 "$B" sim "$P" --profile "$PROF" --no-fold --timeline "$R/pred-$mode.json" --json
    step "exec-big-$mode" 240 sh -c "'$B' exec '$P' --backend cuda --json --steps 1 --warmup 1 --timeline '$R/meas-$mode.json' >'$R/run-$mode.json'"
    step "compare-before-$mode" 60 sh -c "'$B' compare '$R/pred-$mode.json' '$R/meas-$mode.json' >'$R/compare-before-$mode.txt'"
    [ -s "$R/run-$mode.json" ] && say "  exec $mode: $(js '{iteration_time_s, samples_per_s, peak_memory_bytes}' "$R/run-$mode.json")"
    [ -s "$R/compare-before-$mode.txt" ] && { echo "compare before calibration, recompute $mode:"; cat "$R/compare-before-$mode.txt"; } >>"$SUM"
done

# 5. calibrate on the recompute-off run, predict both again: the recompute-on
# run is held out (the per-kind fit is exact in sample when every kind has
# its own table; a run the fit never saw is the honest test)
CAL=$OUT/$TAG-calibrated.json
if [ -s "$R/run-none.json" ]; then
    step calibrate 120 sh -c "'$B' calibrate --profile '$PROF' --measured '$R/run-none.json' -o '$CAL' >'$R/calibrate.txt'"
    [ -s "$R/calibrate.txt" ] && { echo "calibrated on the recompute-off run:"; cat "$R/calibrate.txt"; } >>"$SUM"
    if [ -s "$CAL" ] && [ -s "$R/run-full.json" ]; then
        # the "before" columns here are the calibrated profile's errors on the held-out run
        step heldout 120 sh -c "'$B' calibrate --profile '$CAL' --measured '$R/run-full.json' -o '$R/cal-heldout.json' >'$R/heldout.txt'"
        [ -s "$R/heldout.txt" ] && { echo "held out (recompute on), calibrated profile = 'before' columns:"; cat "$R/heldout.txt"; } >>"$SUM"
    fi
    # bf16 on its own (its GEMMs are another table): in sample only
    if [ -s "$R/run-bf16.json" ]; then
        step calibrate-bf16 120 sh -c "'$B' calibrate --profile '$PROF' --measured '$R/run-bf16.json' -o '$OUT/$TAG-calibrated-bf16.json' >'$R/calibrate-bf16.txt'"
        [ -s "$R/calibrate-bf16.txt" ] && { echo "calibrated on the bf16 run (in sample):"; cat "$R/calibrate-bf16.txt"; } >>"$SUM"
    fi
    for mode in none full; do
        if [ ! -s "$CAL" ] || [ ! -s "$R/run-$mode.json" ]; then continue; fi
        step "sim-after-$mode" 120 "$B" sim "$R/big-$mode.json" --profile "$CAL" --no-fold --timeline "$R/pred-after-$mode.json" --json
        step "compare-after-$mode" 60 sh -c "'$B' compare '$R/pred-after-$mode.json' '$R/meas-$mode.json' >'$R/compare-after-$mode.txt'"
        [ -s "$R/compare-after-$mode.txt" ] && { echo "compare after calibration, recompute $mode:"; cat "$R/compare-after-$mode.txt"; } >>"$SUM"
    done
else
    failed="$failed calibrate"
fi

tar -czf "$OUT/runs.tar.gz" -C "$OUT" runs && rm -rf "$R"
if [ -n "$failed" ]; then say "gpu-check: failed:$failed (see $LOG)"; exit 1; fi
say "gpu-check: every step ran"
