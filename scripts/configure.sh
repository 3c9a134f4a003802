#!/bin/sh
# configure.sh OUT NO_CUDA NO_MPI NO_NCCL - probes the optional parts of calpa
# by compiling and linking a one-line program each, prints one line per part,
# and writes make variables to OUT.  CUDA_HOME (default /usr/local/cuda) is
# honoured.  A part switched off (NO_CUDA=1, ...) is reported as such.
set -u
out=$1; no_cuda=${2:-}; no_mpi=${3:-}; no_nccl=${4:-}
cuda=${CUDA_HOME:-/usr/local/cuda}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$out")"
have_mpi=0; have_cuda=0; have_nccl=0; have_cublas=0
report() { # report NAME OK DETAIL
    if [ "$2" = 1 ]; then printf '  \342\234\223 %-8s %s\n' "$1" "$3"; else printf '  \342\234\227 %-8s %s\n' "$1" "$3"; fi
}
echo "calpa optional parts:"
if [ -n "$no_mpi" ]; then report MPI 0 "off (NO_MPI=1)"
else
    printf '#include <mpi.h>\nint main(int c,char**v){MPI_Init(&c,&v);MPI_Finalize();return 0;}\n' >"$tmp/m.c"
    if mpicc "$tmp/m.c" -o "$tmp/m" >/dev/null 2>&1; then have_mpi=1; report MPI 1 "$(command -v mpicc)"
    else report MPI 0 "no working mpicc (apt-get install libopenmpi-dev openmpi-bin)"; fi
fi
if [ -n "$no_cuda" ]; then report CUDA 0 "off (NO_CUDA=1)"; report cuBLAS 0 "off (NO_CUDA=1)"
else
    printf '#include <cuda_runtime.h>\nint main(void){int n=0;cudaGetDeviceCount(&n);return 0;}\n' >"$tmp/c.c"
    if [ -x "$cuda/bin/nvcc" ] && cc "$tmp/c.c" -I"$cuda/include" -L"$cuda/lib64" -lcudart -o "$tmp/c" >/dev/null 2>&1; then
        have_cuda=1; report CUDA 1 "$cuda ($("$cuda/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
        printf '#include <cublas_v2.h>\nint main(void){cublasHandle_t h;(void)h;return cublasGetVersion(0,0)==0;}\n' >"$tmp/b.c"
        if cc "$tmp/b.c" -I"$cuda/include" -L"$cuda/lib64" -lcublas -lcudart -o "$tmp/b" >/dev/null 2>&1; then have_cublas=1; report cuBLAS 1 "$cuda/lib64"
        else report cuBLAS 0 "cannot link -lcublas"; fi
    else report CUDA 0 "no nvcc/cudart under $cuda (set CUDA_HOME)"; report cuBLAS 0 "needs CUDA"; fi
fi
if [ -n "$no_nccl" ] || [ $have_cuda = 0 ]; then report NCCL 0 "$( [ -n "$no_nccl" ] && echo 'off (NO_NCCL=1)' || echo 'needs CUDA')"
else
    printf '#include <nccl.h>\nint main(void){int v=0;ncclGetVersion(&v);return 0;}\n' >"$tmp/n.c"
    if cc "$tmp/n.c" -I"$cuda/include" -L"$cuda/lib64" -lnccl -lcudart -o "$tmp/n" >/dev/null 2>&1; then have_nccl=1; report NCCL 1 "$cuda/lib64"
    else report NCCL 0 "cannot link -lnccl"; fi
fi
{
    echo "HAVE_MPI := $have_mpi"
    echo "HAVE_CUDA := $have_cuda"
    echo "HAVE_CUBLAS := $have_cublas"
    echo "HAVE_NCCL := $have_nccl"
    echo "CUDA_DIR := $cuda"
} >"$out"
